"""Built-in services of the emulated host, written as ordinary trio code on its TCP streams.

On every interface tcpip6 brings up: TCP echo (RFC 862, port 7; it closes its side once the
peer has half-closed and everything is echoed), discard (RFC 863, port 9), and a small
HTTP/1.1 server (port 80, h11) serving a status page of the host — bindings, worker pools,
counters — as text (`/`) or JSON (`/status.json`). They answer while tcpip6's receive path runs;
after the knot they fall silent with the rest of IPv6.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import h11
import trio

from ndisemu.params import CRITICAL
from tcpip6.sockets import TcpStream

from .status import SERVE_SCHEMA_VERSION, ServeStatus

if TYPE_CHECKING:
    from .host import EmulatedHost

ECHO, DISCARD, HTTP = 7, 9, 80


def status(host: EmulatedHost) -> ServeStatus:
    crit = host.kernel.queue(CRITICAL)
    return {
        "schema_version": SERVE_SCHEMA_VERSION,
        "host": host.name,
        "executor": host.params.executor,
        "virtual_time": round(host.kernel.now, 6),
        "deadlock": host.deadlock.as_dict() if host.deadlock is not None else None,
        "interfaces": [
            {"adapter": s.adapter, "phase": s.phase.value, "mac": s.mac.hex(":"),
             "addresses": [f"{a.address.hex()}:{a.state.value}" for a in s.stack.addresses]
             if s.stack is not None else []}
            for s in host.tcpip6_states()],
        "critical_queue": {"workers": len(crit.workers), "blocked": crit.blocked,
                           "pending": len(crit.pending), "dynamic": crit.dynamic,
                           "started": crit.processed, "completed": crit.completed},
        "heartbeat": {"beats": len(host.heartbeat.beats), "last": host.heartbeat.last_beat},
        "counters": dict(host.tcpip6.counters),
    }


def status_text(host: EmulatedHost) -> str:
    s = status(host)
    lines = [f"tcpip6-lab emulated host {s['host']} ({s['executor']} executor), "
             f"t={s['virtual_time']:.3f}s",
             f"critical queue: {s['critical_queue']['blocked']}/{s['critical_queue']['workers']}"
             f" workers blocked, {s['critical_queue']['pending']} queued",
             "deadlock: " + ("yes" if s["deadlock"] else "no")]
    for i in s["interfaces"]:
        lines.append(f"  {i['adapter']} {i['phase']} {i['mac']} {' '.join(i['addresses'])}")
    return "\n".join(lines) + "\n"


async def echo(stream: TcpStream) -> None:
    async with stream:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)
        await stream.send_eof()  # the peer half-closed and everything was echoed


async def discard(stream: TcpStream) -> None:
    async with stream:
        while await stream.receive_some(65536):
            pass


async def http(stream: TcpStream, host: EmulatedHost) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                target = event.target.decode(errors="replace")
                if target == "/status.json":
                    body = json.dumps(status(host), indent=2).encode()
                    ctype = b"application/json"
                    code = 200
                elif target == "/":
                    body, ctype, code = status_text(host).encode(), b"text/plain", 200
                else:
                    body, ctype, code = b"not found\n", b"text/plain", 404
                headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                           (b"server", b"tcpip6-lab")]
                await stream.send_all(conn.send(h11.Response(status_code=code, headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=body)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
            elif isinstance(event, h11.ConnectionClosed) or conn.our_state is h11.MUST_CLOSE:
                return
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return


async def serve_interface(host: EmulatedHost, adapter: str) -> None:
    """Run the services of one interface until cancelled."""
    sockets = host.sockets
    handlers = {ECHO: echo, DISCARD: discard}

    async with trio.open_nursery() as nursery:
        async def accept_loop(port: int) -> None:
            listener = await sockets.open_tcp_listener(adapter, port, backlog=64)
            while True:
                stream = await listener.accept()
                if port == HTTP:
                    nursery.start_soon(_guard, http(stream, host))
                else:
                    nursery.start_soon(_guard, handlers[port](stream))

        for port in (ECHO, DISCARD, HTTP):
            nursery.start_soon(accept_loop, port)


async def _guard(coro: Any) -> None:
    """One connection's failure (a reset peer, a protocol error) never ends the service."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError,
                             h11.ProtocolError):
        await coro


def enable(host: EmulatedHost, nursery: trio.Nursery) -> None:
    """Start the services on each interface as tcpip6 brings it up."""
    def up(adapter: str) -> None:
        nursery.start_soon(serve_interface, host, adapter)

    host.tcpip6.on_up.append(up)
