"""Built-in services of the emulated host, written as ordinary trio code on its TCP streams.

On every interface tcpip6 brings up: TCP echo (RFC 862, port 7; it closes its side once the
peer has half-closed and everything is echoed), discard (RFC 863, port 9), and a small
HTTP/1.1 server (port 80, h11, persistent connections) serving a status page of the host —
bindings, worker pools, pending OIDs, the applications' error counts, the wait-for chain once
proven — as HTML to browsers (it refreshes itself), as text to other clients (`/`), or as JSON
(`/status.json`), and `/favicon.ico`. The stack's own UDP echo (port 7) answers beside them.
`serve` and `demo` run them by default (`--no-services`: none, the UDP echo included). They
answer while tcpip6's receive path runs; after the knot they fall silent with the rest of IPv6.
"""

from __future__ import annotations

import contextlib
import html
import json
from typing import TYPE_CHECKING, Any

import h11
import trio

from ndisemu.executive.core import WorkerState
from ndisemu.params import CRITICAL
from tcpip6.sockets import TcpStream
from tcpip6.wire.ipv6 import addr_str

from .status import SERVE_SCHEMA_VERSION, ServeStatus

if TYPE_CHECKING:
    from .host import EmulatedHost

ECHO, DISCARD, HTTP = 7, 9, 80
#: where the services listen on every interface (what `serve` prints)
LISTEN_POINTS = (("tcp", ECHO, "echo (RFC 862)"), ("tcp", DISCARD, "discard (RFC 863)"),
                 ("tcp", HTTP, "HTTP status page: / (HTML or text), /status.json"),
                 ("udp", ECHO, "echo (RFC 862, the stack's own)"))
REFRESH = 2  # seconds between the HTML page's reloads
#: a 16x16 favicon: a tiny SVG (browsers ask for /favicon.ico and accept SVG there)
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
           b'<rect width="16" height="16" rx="3" fill="#1b4f72"/>'
           b'<text x="8" y="12" font-size="10" text-anchor="middle" fill="#fff">6</text></svg>')


def status(host: EmulatedHost) -> ServeStatus:
    crit = host.kernel.queue(CRITICAL)
    k = host.kernel
    return {
        "schema_version": SERVE_SCHEMA_VERSION,
        "host": host.name,
        "executor": host.params.executor,
        "virtual_time": round(k.now, 6),
        "deadlock": host.deadlock.as_dict() if host.deadlock is not None else None,
        "wait_for_chain": host.deadlock.render(limit=8) if host.deadlock is not None else None,
        "interfaces": [
            {"adapter": s.adapter, "phase": s.phase.value, "mac": s.mac.hex(":"),
             "link_local": addr_str(s.stack.link_local) if s.stack is not None else None,
             "addresses": [{"address": addr_str(a.address), "prefix_len": a.prefix_len,
                            "state": a.state.value} for a in s.stack.addresses]
             if s.stack is not None else [],
             "oid_pending": s.current is not None}
            for s in host.tcpip6_states()],
        "critical_queue": {"workers": len(crit.workers), "blocked": crit.blocked,
                           "pending": len(crit.pending), "dynamic": crit.dynamic,
                           "max_threads": crit.spec.max_threads,
                           "started": crit.processed, "completed": crit.completed,
                           "worker_states": [
                               "blocked" if w.state is WorkerState.BLOCKED else
                               "running" if w.state is WorkerState.RUNNING else "idle"
                               for w in crit.workers]},
        "tcpip6": {"bound": host.bound(), "failed": host.failed(),
                   "interfaces": len(host.tcpip6.interfaces),
                   "oids_pending": host.tcpip6_oids_pending()},
        "ipv4_bound": host.ipv4_bound(),
        "heartbeat": {"beats": host.heartbeat.count, "last": host.heartbeat.last_beat,
                      "stopped": host.heartbeat.stopped(k.now, 2 * k.params.balance_period)},
        "applications": host.applications.as_dict() if host.applications is not None else None,
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
        addrs = " ".join(f"{a['address']}:{a['state']}" for a in i["addresses"])
        lines.append(f"  {i['adapter']} {i['phase']} {i['mac']} {addrs}")
    apps = s["applications"]
    if apps is not None:
        for name, t in apps["totals"].items():
            lines.append(f"application {name}: {t['ok']} ok, {t['failures']} failed "
                         f"({t['timeouts']} timeouts) of {t['attempts']}")
    return "\n".join(lines) + "\n"


_HTML_STYLE = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
.grid span{display:inline-block;width:1.3em;height:1.3em;margin:1px;border-radius:3px}
.blocked{background:#c0392b}.running{background:#27ae60}.idle{background:#bbb}
.absent{background:#fff;border:1px dashed #bbb}.bad{color:#c0392b;font-weight:bold}
.ok{color:#1e8449}pre{background:#f6f6f6;padding:.6em;overflow-x:auto}"""


def status_html(host: EmulatedHost) -> str:
    """The status page for a person: it reloads itself every REFRESH seconds."""
    s = status(host)
    e = html.escape
    q = s["critical_queue"]
    grid = "".join(f'<span class="{st}" title="worker {n}: {st}"></span>'
                   for n, st in enumerate(q["worker_states"]))
    grid += '<span class="absent" title="not created"></span>' * max(
        0, q["max_threads"] - q["workers"])
    dl = s["deadlock"]
    verdict = (f'<p class="bad" id="verdict">DEADLOCK — {q["blocked"]}/{q["workers"]} critical '
               'workers blocked; IPv6 has stopped answering</p>' if dl is not None else
               '<p class="ok" id="verdict">no deadlock detected</p>')
    rows = "".join(
        f"<tr><td>{e(i['adapter'])}</td><td>{e(i['phase'])}</td><td>{e(i['mac'])}</td>"
        f"<td>{'<br>'.join(e(a['address'] + '/' + str(a['prefix_len']) + ' ' + a['state']) for a in i['addresses'])}</td>"  # noqa: E501
        f"<td>{'yes' if i['oid_pending'] else ''}</td></tr>"
        for i in s["interfaces"])
    apps = s["applications"]
    app_rows = ""
    if apps is not None:
        app_rows = "".join(
            f"<tr><td>{e(name)}</td><td>{t['attempts']}</td><td>{t['ok']}</td>"
            f"<td class=\"{'bad' if t['failures'] else ''}\">{t['failures']}</td>"
            f"<td>{t['timeouts']}</td><td>{e(t['last_error'] or '')}</td></tr>"
            for name, t in apps["totals"].items())
    chain = (f"<h2>Wait-for chain</h2><pre>{e(s['wait_for_chain'])}</pre>"
             if s["wait_for_chain"] else "")
    hb = s["heartbeat"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH}">
<title>tcpip6-lab {e(s['host'])}</title><style>{_HTML_STYLE}</style></head><body>
<h1>tcpip6-lab emulated host {e(s['host'])} ({e(s['executor'])} executor)</h1>
<p>t = {s['virtual_time']:.3f}s · tcpip6 bound {s['tcpip6']['bound']}/{s['tcpip6']['interfaces']}
· IPv4 bound {s['ipv4_bound']} · heartbeat {'<span class="bad">STOPPED</span>' if hb['stopped']
else 'beating'} ({hb['beats']} beats)</p>
{verdict}
<h2>Critical worker pool</h2>
<div class="grid" id="pool">{grid}</div>
<p>{q['blocked']} blocked / {q['workers']} threads (at most {q['max_threads']}),
{q['pending']} work items queued, {s['tcpip6']['oids_pending']} tcpip6 OIDs pending</p>
<h2>Bindings</h2>
<table id="bindings"><tr><th>adapter</th><th>tcpip6</th><th>MAC</th><th>addresses</th>
<th>OID pending</th></tr>{rows}</table>
<h2>Applications</h2>
<table id="applications"><tr><th>application</th><th>attempts</th><th>ok</th><th>failed</th>
<th>timeouts</th><th>last error</th></tr>{app_rows}</table>
{chain}
<p><a href="/status.json">status.json</a></p>
</body></html>
"""


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
                code, ctype, body = respond(host, event)
                headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                           (b"cache-control", b"no-store"), (b"server", b"tcpip6-lab")]
                await stream.send_all(conn.send(h11.Response(status_code=code, headers=headers)))
                if event.method != b"HEAD":
                    await stream.send_all(conn.send(h11.Data(data=body)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
            elif isinstance(event, h11.ConnectionClosed) or conn.our_state is h11.MUST_CLOSE:
                return
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return


def respond(host: EmulatedHost, request: h11.Request) -> tuple[int, bytes, bytes]:
    """(status, content type, body) for one request."""
    target = request.target.decode(errors="replace").split("?", 1)[0]
    if request.method not in (b"GET", b"HEAD"):
        return 405, b"text/plain", b"method not allowed\n"
    if target == "/status.json":
        return 200, b"application/json", json.dumps(status(host), indent=2).encode()
    if target == "/favicon.ico":
        return 200, b"image/svg+xml", FAVICON
    if target in ("/", "/index.html"):
        accept = b",".join(v for k, v in request.headers if k == b"accept")
        if b"text/html" in accept or target == "/index.html":
            return 200, b"text/html; charset=utf-8", status_html(host).encode()
        return 200, b"text/plain; charset=utf-8", status_text(host).encode()
    return 404, b"text/plain", b"not found\n"


async def serve_interface(host: EmulatedHost, adapter: str) -> None:
    """Run the services of one interface until cancelled or the interface ends."""
    sockets = host.sockets
    handlers = {ECHO: echo, DISCARD: discard}

    with host.while_up(adapter):
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
