"""Two Ipv6Host instances on a simulated link, in virtual time, for the TCP tests.

:class:`Pair` is a small discrete-event simulator: every frame a host emits arrives at the other
host ``delay`` seconds later (plus an extra ``reorder_delay`` for a reordered frame); frames may
be lost, duplicated or reordered with probabilities drawn from a seeded ``random.Random``, or
dropped by a test's ``drop`` hook. When no frame is in flight, time jumps to the earliest host
deadline. An optional ``rate`` (bytes/s) serializes each direction, which makes a bottleneck.
Every frame put on the wire is logged as ``(time, sender, frame)``.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from tcpip6.errors import MalformedFrame
from tcpip6.stack.context import HostConfig, TcpConfig
from tcpip6.stack.host import Ipv6Host
from tcpip6.stack.tcp import TcpConnection, TcpListener
from tcpip6.stack.tcpconn import TcpState
from tcpip6.wire import tcp
from tcpip6.wire.ipv6 import NH_TCP, Ipv6Header, packet
from tcpip6.wire.tcp import TcpSegment

A_MAC = bytes.fromhex("02000000a001")
B_MAC = bytes.fromhex("02000000b001")
INF = float("inf")


def host_config(tcp_cfg: TcpConfig | None = None, **kw: Any) -> HostConfig:
    kw.setdefault("startup_delay", False)
    kw.setdefault("dad_transmits", 0)
    kw.setdefault("max_rtr_solicitations", 0)
    return HostConfig(tcp=tcp_cfg if tcp_cfg is not None else TcpConfig(), **kw)


def lan(**kw: Any) -> TcpConfig:
    """A LAN-speed TCP configuration for tests: a 300 ms minimum RTO (Windows' MinRto), above
    the peer's 200 ms delayed ACK plus the link RTT, so a lone segment does not time out."""
    kw.setdefault("rto_min", 0.3)
    return TcpConfig(**kw)


class Pair:
    """Host A (index 0) and host B (index 1) on one link (see module docstring)."""

    def __init__(
        self,
        seed: int = 1,
        *,
        tcp_cfg: TcpConfig | None = None,
        tcp_a: TcpConfig | None = None,
        tcp_b: TcpConfig | None = None,
        delay: float = 0.001,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        reorder_delay: float = 0.003,
        rate: float | None = None,
        mtu: int = 1500,
    ) -> None:
        base = tcp_cfg if tcp_cfg is not None else lan()
        self.a = Ipv6Host(A_MAC, mtu, rng=random.Random(seed),
                          config=host_config(tcp_a if tcp_a is not None else base))
        self.b = Ipv6Host(B_MAC, mtu, rng=random.Random(seed + 1000),
                          config=host_config(tcp_b if tcp_b is not None else base))  # fmt: skip
        self.hosts = [self.a, self.b]
        self.rng = random.Random(seed * 7919 + 17)
        self.delay = delay
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.reorder_delay = reorder_delay
        self.rate = rate
        self.now = 0.0
        self.log: list[tuple[float, int, bytes]] = []
        self.drop: Callable[[int, bytes], bool] | None = None  # (sender, frame) -> drop it?
        self.lost = 0
        self._busy = [0.0, 0.0]
        self._q: list[tuple[float, int, int, bytes]] = []
        self._seq = itertools.count()
        self.events = 0
        for i, h in enumerate(self.hosts):
            self.send(i, h.start(0.0))
        self.run(until=0.01)
        # resolve each other (pings both ways), so injected segments are answered at once
        self.send(0, self.a.ping(self.b_addr, self.now, 1, 1))
        self.send(1, self.b.ping(self.a_addr, self.now, 1, 1))
        self.run(until=0.05 + 4 * delay)
        self.log.clear()

    @property
    def a_addr(self) -> bytes:
        return self.a.link_local

    @property
    def b_addr(self) -> bytes:
        return self.b.link_local

    def send(self, sender: int, frames: Iterable[bytes]) -> None:
        rng = self.rng
        for f in frames:
            self.log.append((self.now, sender, f))
            if self.drop is not None and self.drop(sender, f):
                self.lost += 1
                continue
            if self.loss and rng.random() < self.loss:
                self.lost += 1
                continue
            t = self.now
            if self.rate:
                t = max(t, self._busy[sender]) + len(f) / self.rate
                self._busy[sender] = t
            t += self.delay
            if self.reorder and rng.random() < self.reorder:
                t += self.reorder_delay
            heapq.heappush(self._q, (t, next(self._seq), 1 - sender, f))
            if self.duplicate and rng.random() < self.duplicate:
                heapq.heappush(self._q, (t + self.delay, next(self._seq), 1 - sender, f))

    def run(
        self,
        until: float = INF,
        *,
        stop: Callable[[], bool] | None = None,
        app: Callable[[Pair], None] | None = None,
        max_events: int = 5_000_000,
    ) -> bool:
        """Process events up to ``until``; True as soon as ``stop()`` holds."""
        hosts = self.hosts
        q = self._q
        while True:
            if stop is not None and stop():
                return True
            t_frame = q[0][0] if q else INF
            t_timer = INF
            for h in hosts:
                d = h.next_deadline()
                if d is not None and d < t_timer:
                    t_timer = d
            t = t_frame if t_frame <= t_timer else t_timer
            if t > until:
                if until != INF:
                    self.now = max(self.now, until)
                return False
            if t > self.now:
                self.now = t
            if t_frame <= t_timer:
                _, _, dst, frame = heapq.heappop(q)
                self.send(dst, hosts[dst].handle_frame(frame, self.now))
            else:
                for i, h in enumerate(hosts):
                    d = h.next_deadline()
                    if d is not None and d <= self.now:
                        self.send(i, h.handle_timer(self.now))
            if app is not None:
                app(self)
            self.events += 1
            assert self.events < max_events, "event storm"

    def run_for(self, seconds: float, **kw: Any) -> bool:
        return self.run(until=self.now + seconds, **kw)

    # --- TCP conveniences -------------------------------------------------------------------------

    def connect(
        self, port: int = 5000, backlog: int = 16, *, client: int = 0
    ) -> tuple[TcpConnection, TcpConnection, TcpListener]:
        """Listen on the other host, connect, run until established; (client, server, lst)."""
        srv_host = self.hosts[1 - client]
        lst = srv_host.tcp_listen(port, backlog)
        dst = srv_host.link_local
        conn, frames = self.hosts[client].tcp_connect((dst, port), self.now)
        self.send(client, frames)
        ok = self.run_for(10.0, stop=lambda: lst.pending > 0 and conn.state is TcpState.ESTABLISHED)
        assert ok, f"no handshake: {conn.state}"
        srv = lst.accept()
        assert srv is not None
        return conn, srv, lst

    def transfer(
        self,
        src: TcpConnection,
        src_index: int,
        dst: TcpConnection,
        data: bytes,
        *,
        until: float = 3600.0,
        chunk: int = 1 << 16,
        close: bool = True,
        read: bool = True,
    ) -> bytes:
        """Write ``data`` into ``src`` as space allows (then half-close), read ``dst`` until
        EOF (or until everything arrived when ``close`` is False); return what arrived."""
        got = bytearray()
        view = memoryview(data)
        state = {"pos": 0, "shut": False, "eof": False}

        def app(p: Pair) -> None:
            pos = state["pos"]
            while pos < len(data):
                space = src.send_space
                if not space:
                    break
                n = min(chunk, space, len(data) - pos)
                p.send(src_index, src.send(view[pos : pos + n], p.now))
                pos += n
            state["pos"] = pos
            if close and pos == len(data) and not state["shut"]:
                state["shut"] = True
                p.send(src_index, src.shutdown_write(p.now))
            if read:
                while dst.readable and not state["eof"]:
                    b = dst.recv(1 << 20)
                    if not b:
                        state["eof"] = True
                    got.extend(b)

        def done() -> bool:
            return bool(state["eof"]) if close else len(got) >= len(data)

        app(self)
        self.run(until=self.now + until, stop=done, app=app)
        return bytes(got)

    def segments(self, sender: int | None = None) -> list[tuple[float, int, TcpSegment]]:
        """Every TCP segment in the log (optionally only ``sender``'s)."""
        out = []
        for t, i, f in self.log:
            if sender is not None and i != sender:
                continue
            seg = parse_tcp(f)
            if seg is not None:
                out.append((t, i, seg[1]))
        return out


def forge(
    p: Pair,
    to: int,
    conn: TcpConnection,
    flags: int,
    *,
    seq: int | None = None,
    ack: int | None = None,
    payload: bytes = b"",
    ts: tuple[int, int] | bool | None = True,
    window: int = 4096,
    sack: tuple[tuple[int, int], ...] = (),
) -> list[tuple[Ipv6Header, TcpSegment]]:
    """Hand host ``to`` a segment "from the peer" of its connection ``conn``: SEQ defaults to
    conn's RCV.NXT, ACK to its SND.NXT, a timestamp one above TS.Recent (``ts=True``) when the
    connection uses them (``sack``: internal sequence numbers); returns the TCP segments the
    host answered with."""
    if seq is None:
        seq = conn.rcv_nxt
    if ack is None:
        ack = conn.snd_nxt
    opts = b""
    if ts is True:
        ts = ((conn.ts_recent + 1) & 0xFFFFFFFF, 0) if conn.ts_ok else None
    if ts:
        opts = tcp.ts_option(*ts)
    if sack:
        opts += tcp.options(sack=tuple((a & 0xFFFFFFFF, b & 0xFFFFFFFF) for a, b in sack))
    seg = tcp.build(conn.remote_addr, conn.local_addr, conn.remote_port, conn.local_port,
                    seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window, opts, payload)
    src_mac = p.hosts[1 - to].mac
    frame = (p.hosts[to].mac + src_mac + b"\x86\xdd"
             + packet(conn.remote_addr, conn.local_addr, NH_TCP, 64, seg))  # fmt: skip
    out = p.hosts[to].handle_frame(frame, p.now)
    return [x for f in out if (x := parse_tcp(f)) is not None]


def parse_tcp(frame: bytes) -> tuple[Ipv6Header, TcpSegment] | None:
    """(IPv6 header, TCP segment) of an Ethernet frame carrying TCP directly, else None."""
    if len(frame) < 54 or frame[12:14] != b"\x86\xdd" or frame[20] != NH_TCP:
        return None
    ip, payload = Ipv6Header.parse(memoryview(frame)[14:])
    try:
        return ip, tcp.parse(ip.src, ip.dst, payload)
    except MalformedFrame:
        return None


def data_segments(segs: list[tuple[float, int, TcpSegment]]) -> list[tuple[float, TcpSegment]]:
    return [(t, s) for t, _, s in segs if len(s.payload)]


__all__ = ["Pair", "data_segments", "forge", "host_config", "lan", "parse_tcp", "replace"]
