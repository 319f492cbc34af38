"""The emulated peer: the host on the far side of every memory cable.

One `PeerPort` (tcpip6.stack.peer: an IPv6 and an IPv4 responder that can also ping) per
adapter, each on the other end of that adapter's cable. The peer pings every adapter over IPv6
and IPv4 in rounds and keeps per-adapter statistics: what `storm --traffic`, the demo's live view
and the traffic tests read to see IPv6 stop answering while IPv4 goes on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ndisemu.backends.memory import MemoryCableEnd
from ndisemu.kernel import Kernel, Timer
from ndisemu.params import HISTORY_KEPT
from tcpip6.errors import Tcpip6Error, WouldBlock
from tcpip6.stack.peer import PeerPort
from tcpip6.stack.tcpconn import TcpConnection
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac

from .params import adapter_ipv4, peer_ipv4, peer_mac, peer_ula, service_mac

PING_IDENT = 0x6C61  # "la": the identifier of every echo request the peer sends
#: pings per adapter remembered while unanswered (64 rounds of IPv6 and IPv4): a dead adapter
#: costs bounded memory
OUTSTANDING_LIMIT = 128


@dataclass
class PingStats:
    sent: int = 0
    answered: int = 0
    last_sent: float | None = None
    last_answered: float | None = None
    #: the latest round trips (ModelParams.history_kept of them); `answered` counts them all
    rtts: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_KEPT))

    def ok_since(self, t: float) -> bool:
        return self.last_answered is not None and self.last_answered >= t


@dataclass(eq=False)
class PeerSide:
    """The peer's port on one adapter's cable."""

    index: int
    adapter: str
    port: PeerPort
    end: MemoryCableEnd
    target6: bytes
    target4: bytes
    v6: PingStats = field(default_factory=PingStats)
    v4: PingStats = field(default_factory=PingStats)
    outstanding: dict[tuple[int, int], float] = field(default_factory=dict)
    services: PeerServices | None = None


class EmulatedPeer:
    """The peer host: a port on each adapter's cable, pinging in rounds."""

    def __init__(self, kernel: Kernel, *, ipv4: bool = True, keep: int = HISTORY_KEPT) -> None:
        self.kernel = kernel
        self.keep = keep  # round trips kept per adapter and family
        self.ipv4 = ipv4  # whether the emulated host has an IPv4 binder to answer pings
        self.sides: dict[str, PeerSide] = {}
        self._seq = 0
        self.services = False  # run PeerServices on every cable (enable_services)

    def enable_services(self) -> None:
        """Run the peer services (tcpip6lab.apps' counterpart) on every cable, now and later."""
        self.services = True
        for side in self.sides.values():
            if side.services is None:
                side.services = PeerServices(self.kernel, side)

    def connect(self, index: int, adapter: str, adapter_mac: bytes,
                end: MemoryCableEnd) -> PeerSide:
        """Put the peer's port for adapter `index` on `end` of its cable."""
        port = PeerPort(peer_mac(index), peer_ipv4(index))
        side = PeerSide(index, adapter, port, end, link_local_from_mac(adapter_mac),
                        adapter_ipv4(index), PingStats(rtts=deque(maxlen=self.keep)),
                        PingStats(rtts=deque(maxlen=self.keep)))
        self.sides[adapter] = side
        end.attach(lambda frame: self._receive(side, frame))
        if self.services:
            side.services = PeerServices(self.kernel, side)
        return side

    def _receive(self, side: PeerSide, frame: bytes) -> None:
        now = self.kernel.now
        if side.services is not None:
            side.services.receive(frame)
        for out in side.port.handle_frame(frame, now):
            side.end.transmit(out)
        for reply in side.port.pop_replies():
            sent = side.outstanding.pop((reply.family, reply.seq), None)
            if sent is None:
                continue
            stats = side.v6 if reply.family == 6 else side.v4
            stats.answered += 1
            stats.last_answered = now
            stats.rtts.append(now - sent)

    def ping_all(self, *, ipv6: bool = True, ipv4: bool = True) -> None:
        """One round of `ping -6` and `ping` to every adapter that exists."""
        now = self.kernel.now
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        for side in self.sides.values():
            if ipv6:
                side.v6.sent += 1
                side.v6.last_sent = now
                side.outstanding[(6, seq)] = now
                for f in side.port.ping6(side.target6, now, PING_IDENT, seq):
                    side.end.transmit(f)
            if ipv4 and self.ipv4:
                side.v4.sent += 1
                side.v4.last_sent = now
                side.outstanding[(4, seq)] = now
                for f in side.port.ping4(side.target4, now, PING_IDENT, seq):
                    side.end.transmit(f)
            if len(side.outstanding) > OUTSTANDING_LIMIT:
                for key in sorted(side.outstanding,
                                  key=side.outstanding.__getitem__)[:-OUTSTANDING_LIMIT]:
                    del side.outstanding[key]

    def start_pinging(self, interval: float, *, start: float | None = None) -> None:
        """A round every `interval` virtual seconds from `start` (default: now)."""
        def round_() -> None:
            self.ping_all()
            self.kernel.call_later(interval, round_)

        self.kernel.call_at(self.kernel.now if start is None else start, round_)


class PeerServices:
    """The peer's services on one memory cable: a second instance of the IPv6 host stack
    (tcpip6.stack, MAC `service_mac(index)`) beside the pinging port, running TCP echo and the
    lookup responder of tcpip6lab.apps. Sans-IO, driven by the frames of the cable and the
    host kernel's timers (it is the far side of the wire: it never knots)."""

    def __init__(self, kernel: Kernel, side: PeerSide) -> None:
        from tcpip6.stack.context import HostConfig
        from tcpip6.stack.host import Ipv6Host

        from .apps import PEER_ECHO, PEER_LOOKUP

        self.kernel = kernel
        self.side = side
        self.stack = Ipv6Host(service_mac(side.index), config=HostConfig(
            dad_transmits=0, startup_delay=False, accept_ra=False, udp_echo=False))
        self.stack.add_address(peer_ula(side.index), 64)
        self.echo = self.stack.tcp_listen(PEER_ECHO, 64)
        self.lookup = self.stack.udp_socket(PEER_LOOKUP)
        self.conns: list[TcpConnection] = []
        self._timer: Timer | None = None
        self.answered = 0
        self._send(self.stack.start(kernel.now))

    @property
    def address(self) -> bytes:
        return self.stack.link_local

    def receive(self, frame: bytes) -> None:
        now = self.kernel.now
        out = self.stack.handle_frame(frame, now)
        self._send(out + self._serve(now))

    def _serve(self, now: float) -> list[bytes]:
        out: list[bytes] = []
        self.stack.pop_tcp_ready()
        while (conn := self.echo.accept()) is not None:
            self.conns.append(conn)
        for conn in list(self.conns):
            try:
                while conn.readable and conn.error is None:
                    try:
                        data = conn.recv(65536)
                    except WouldBlock:
                        break
                    if not data:  # end of the request stream: close our side
                        out += conn.close(now)
                        self.conns.remove(conn)
                        break
                    out += conn.send(data, now)
            except Tcpip6Error:
                self.conns.remove(conn)
                continue
            if conn.error is not None and conn in self.conns:
                self.conns.remove(conn)
        while (got := self.lookup.recvfrom()) is not None:
            data, src = got
            parts = data.split()
            if len(parts) == 3 and parts[0] == b"Q":
                answer = b"A %s %s %s\n" % (parts[1], parts[2],
                                            addr_str(peer_ula(self.side.index)).encode())
                out += self.lookup.sendto(answer, src, now)
                self.answered += 1
        return out

    def _send(self, frames: list[bytes]) -> None:
        for f in frames:
            self.side.end.transmit(f)
        deadline = self.stack.next_deadline()
        if deadline is not None and (self._timer is None or self._timer.cancelled
                                     or self._timer.when != deadline):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.kernel.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.kernel.now
        self._send(self.stack.handle_timer(now) + self._serve(now))
