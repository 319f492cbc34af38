"""The peer services on Linux's side of real devices: `python -m tcpip6lab.peerd`.

`serve` and `demo` start one inside the namespace of Linux's side (TAP or veth backends) and stop
it at exit; the applications of the emulated host (tcpip6lab.apps) talk to it over each
adapter: TCP echo (RFC 862) on PEER_ECHO, and the lookup service on UDP PEER_LOOKUP
("Q <id> nicNNN.peer.lab" -> "A <id> nicNNN.peer.lab <Linux's ULA on that adapter>"). Kernel
sockets, IPv6 only (IPV6_V6ONLY) on every address of the namespace. It prints `ready` once both
listen, and a one-line error (exit 2) if a port is taken. With --parent PID it ends as soon as
that process is gone (no orphan keeps a namespace alive after a SIGKILLed `serve`).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import trio

from tcpip6.wire.ipv6 import addr_str

from .apps import PEER_ECHO, PEER_LOOKUP
from .params import peer_ula


def answer(query: bytes) -> bytes | None:
    parts = query.split()
    if len(parts) != 3 or parts[0] != b"Q":
        return None
    name = parts[2].decode(errors="replace")
    label = name.split(".", 1)[0]
    if not (label.startswith("nic") and label[3:].isdigit()):
        return None
    return b"A %s %s %s\n" % (parts[1], parts[2], addr_str(peer_ula(int(label[3:]))).encode())


async def echo(stream: trio.SocketStream) -> None:
    try:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


async def lookup(sock: trio.socket.SocketType) -> None:
    while True:
        data, addr = await sock.recvfrom(2048)
        reply = answer(data)
        if reply is not None:
            await sock.sendto(reply, addr)


async def watch_parent(parent: int, nursery: trio.Nursery) -> None:
    # Polled: a parent's death signals nothing to a trio task (PR_SET_PDEATHSIG fires when the
    # spawning *thread* ends, and trio spawns from its worker threads).
    while os.getppid() == parent:  # noqa: ASYNC110
        await trio.sleep(0.5)
    nursery.cancel_scope.cancel()


async def main(echo_port: int, lookup_port: int, parent: int | None = None) -> None:
    tcp = trio.socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp = trio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    await tcp.bind(("::", echo_port))
    tcp.listen(128)
    await udp.bind(("::", lookup_port))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, echo, [trio.SocketListener(tcp)])
        nursery.start_soon(lookup, udp)
        if parent is not None:
            nursery.start_soon(watch_parent, parent, nursery)


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tcpip6lab.peerd")
    p.add_argument("--echo", type=int, default=PEER_ECHO)
    p.add_argument("--lookup", type=int, default=PEER_LOOKUP)
    p.add_argument("--parent", type=int, default=None, metavar="PID")
    args = p.parse_args(argv)
    try:
        trio.run(main, args.echo, args.lookup, args.parent)
    except OSError as exc:
        sys.stderr.write(f"tcpip6lab.peerd: error: {exc.strerror or exc}\n")
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(cli())
