"""UDP endpoints for the sans-IO host: sockets by port, the RFC 862 echo service.

Theory of operation: :class:`UdpStack` demultiplexes verified datagrams (the wire codec already
enforced RFC 8200 §8.1's non-zero checksum) by destination port to a :class:`UdpSocket`, whose
receive queue is bounded (``udp_queue_len``; overflow drops the newest datagram and counts
``drop.QUEUE_FULL``, as a full socket buffer does). With no socket bound on the port and the
echo service enabled, port 7 answers every unicast datagram with the same data (RFC 862);
datagrams from port 7 are not echoed, so two echo services cannot ping-pong forever. With no
taker at all :meth:`UdpStack.deliver` returns None and the host sends ICMPv6 Port Unreachable
(RFC 4443 §3.1 code 4).

Sending goes through the host's output path (source selection, next hop, neighbor resolution,
fragmentation): :meth:`UdpSocket.sendto` returns the frames to transmit, like every sans-IO call.
ICMPv6 errors quoting a datagram we sent are queued on the sending socket (``errors``), as a
connected BSD socket would report ECONNREFUSED.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from tcpip6.errors import SocketError
from tcpip6.stack import constants as c
from tcpip6.stack.context import StackContext
from tcpip6.wire import udp
from tcpip6.wire.drops import DropReason
from tcpip6.wire.icmpv6 import IcmpError
from tcpip6.wire.ipv6 import NH_UDP
from tcpip6.wire.udp import UdpDatagram

ECHO_PORT: Final = 7  # RFC 862

Output = Callable[[bytes, bytes, int, bytes, float], list[bytes]]
"""``(src, dst, next_header, upper_layer_bytes, now) -> frames``"""


@dataclass(frozen=True, slots=True)
class UdpMessage:
    """A received datagram."""

    data: bytes
    src: bytes
    src_port: int
    dst: bytes
    dst_port: int
    now: float


class UdpSocket:
    """A bound UDP port (sans-IO: ``sendto`` returns frames, ``recv`` never blocks)."""

    def __init__(self, stack: UdpStack, port: int, queue_len: int) -> None:
        self._stack = stack
        self.port = port
        self.queue: deque[UdpMessage] = deque()
        self.queue_len = queue_len
        self.errors: deque[IcmpError] = deque(maxlen=16)
        self.closed = False

    def sendto(self, data: bytes, address: tuple[bytes, int], now: float) -> list[bytes]:
        """Frames carrying ``data`` to ``(ipv6_address, port)``."""
        if self.closed:
            raise SocketError("sendto on a closed socket")
        dst, port = address
        if len(dst) != 16 or not 0 < port <= 0xFFFF:
            raise SocketError(f"bad destination {address!r}")
        return self._stack.send(self.port, dst, port, data, now)

    def recv(self) -> UdpMessage | None:
        return self.queue.popleft() if self.queue else None

    def recvfrom(self) -> tuple[bytes, tuple[bytes, int]] | None:
        """Socket-style: ``(data, (source_address, source_port))`` or None when empty."""
        m = self.recv()
        return None if m is None else (m.data, (m.src, m.src_port))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._stack.unbind(self)


class UdpStack:
    """Ports of one interface (see module docstring)."""

    def __init__(
        self,
        ctx: StackContext,
        output: Output,
        select_source: Callable[[bytes], bytes | None],
    ) -> None:
        self._ctx = ctx
        self._output = output
        self._select_source = select_source
        self.sockets: dict[int, UdpSocket] = {}

    def bind(self, port: int = 0) -> UdpSocket:
        """Bind ``port`` (0: an ephemeral port, RFC 6335 §6 range, drawn from the rng)."""
        if port == 0:
            for _ in range(64):
                cand = self._ctx.rng.randint(c.EPHEMERAL_FIRST, c.EPHEMERAL_LAST)
                if cand not in self.sockets:
                    port = cand
                    break
            else:
                raise SocketError("no free ephemeral port found")
        if not 0 < port <= 0xFFFF:
            raise SocketError(f"port {port} out of range")
        if port in self.sockets:
            raise SocketError(f"port {port} already bound (EADDRINUSE)")
        sock = UdpSocket(self, port, self._ctx.config.udp_queue_len)
        self.sockets[port] = sock
        return sock

    def unbind(self, sock: UdpSocket) -> None:
        if self.sockets.get(sock.port) is sock:
            del self.sockets[sock.port]

    def send(self, sport: int, dst: bytes, dport: int, data: bytes, now: float) -> list[bytes]:
        src = self._select_source(dst)
        if src is None:
            return self._ctx.drop(DropReason.NO_SOURCE)
        counters = self._ctx.counters
        counters["udp.tx"] += 1
        out = self._output(src, dst, NH_UDP, udp.datagram(src, dst, sport, dport, data), now)
        counters["tx"] += len(out)  # a local send: no handle_* call counts these frames
        return out

    def deliver(
        self, src: bytes, dst: bytes, d: UdpDatagram, multicast: bool, now: float
    ) -> list[bytes] | None:
        """Hand a datagram to its socket; None if nobody takes it (port unreachable)."""
        counters = self._ctx.counters
        counters["udp.rx"] += 1
        sock = self.sockets.get(d.dst_port)
        if sock is not None:
            if len(sock.queue) >= sock.queue_len:
                return self._ctx.drop(DropReason.QUEUE_FULL)
            sock.queue.append(UdpMessage(bytes(d.payload), src, d.src_port, dst, d.dst_port, now))
            return []
        if d.dst_port == ECHO_PORT and self._ctx.config.udp_echo:
            if multicast or d.src_port == ECHO_PORT:
                counters["udp.echo_refused"] += 1
                return []
            counters["udp.echo"] += 1
            counters["udp.tx"] += 1
            reply = udp.datagram(dst, src, ECHO_PORT, d.src_port, d.payload)
            return self._output(dst, src, NH_UDP, reply, now)
        return None

    def on_error(self, err: IcmpError, sport: int) -> None:
        sock = self.sockets.get(sport)
        if sock is not None:
            sock.errors.append(err)
