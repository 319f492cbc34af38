"""TCP endpoints of one interface: demultiplexing, listeners, opens, RST for closed ports.

Theory of operation: :class:`TcpStack` owns the connection table, keyed by the 4-tuple
``(local address, local port, remote address, remote port)``, and the listeners, keyed by port
(any local address). A verified segment (:mod:`tcpip6.wire.tcp`) goes to its connection, else to
a listener (RFC 9293 §3.10.7.2: RST ignored, ACK answered by <SEQ=SEG.ACK><CTL=RST>, a SYN
creates an embryonic connection in SYN-RECEIVED), else is answered per §3.10.7.1 (no RST for a
RST; <SEQ=SEG.ACK><CTL=RST> for an ACK, otherwise <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>).
A segment to a multicast destination never gets here (§3.9.1 MUST-57: dropped by the host).

Each :class:`TcpListener` bounds two queues: embryonic connections (``TcpConfig.syn_backlog``;
a SYN beyond it is dropped and counted ``drop.BACKLOG_FULL``, the peer retransmits) and
connections that completed the handshake but were not accepted yet (the ``backlog`` argument of
:meth:`listen`; the handshake's last ACK is dropped while it is full, as Linux does, and a new SYN
is refused the same way). Connections move to the accept queue when they reach ESTABLISHED.
A SYN to a 4-tuple still in TIME-WAIT here opens a new connection when it is newer (its
timestamp, else its sequence number: RFC 6191), as Linux does. The table itself is bounded
(``TcpConfig.max_connections``, every state counted): at the bound a SYN is dropped
(``drop.BACKLOG_FULL`` and ``tcp.conn_table_full``) and an active open fails.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Hashable

from tcpip6.errors import ConfigError, SocketError
from tcpip6.stack import constants as c
from tcpip6.stack.context import StackContext
from tcpip6.stack.icmp import TokenBucket
from tcpip6.stack.tcpcc import ALGORITHMS, CongestionControl
from tcpip6.stack.tcpconn import (
    MASK,
    TcpConnection,
    TcpEvent,
    TcpEventKind,
    TcpInput,
    TcpState,
)
from tcpip6.wire import tcp
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ipv6 import NH_TCP, UNSPECIFIED
from tcpip6.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

__all__ = [
    "TcpConnection", "TcpEvent", "TcpEventKind", "TcpInput", "TcpListener", "TcpStack",
    "TcpState",
]  # fmt: skip

Output = Callable[[bytes, bytes, int, bytes, float], list[bytes]]
"""``(src, dst, next_header, upper_layer_bytes, now) -> frames``"""

Key = tuple[bytes, int, bytes, int]


class TcpListener:
    """A passive open on ``port`` (LISTEN). :meth:`accept` hands out established
    connections; an "accept" event says one is waiting."""

    def __init__(self, stack: TcpStack, port: int, backlog: int) -> None:
        self._stack = stack
        self.port = port
        self.backlog = backlog
        self.accept_queue: deque[TcpConnection] = deque()
        self.embryonic: dict[TcpConnection, None] = {}
        self.closed = False
        self._events: deque[TcpEvent] = deque()

    @property
    def pending(self) -> int:
        """Connections waiting in the accept queue."""
        return len(self.accept_queue)

    def has_pending(self) -> bool:
        """Whether a connection waits in the accept queue: a predicate for a socket layer's
        wait (`Tcpip6Binder.wake_when`), native code when compiled, unlike a lambda there."""
        return bool(self.accept_queue)

    def accept(self) -> TcpConnection | None:
        """The oldest established connection, or None."""
        if not self.accept_queue:
            return None
        conn = self.accept_queue.popleft()
        conn.mark_accepted()
        return conn

    def pop_events(self) -> list[TcpEvent]:
        ev = list(self._events)
        self._events.clear()
        return ev

    def close(self, now: float) -> list[bytes]:
        """Stop listening: embryonic and unaccepted connections are reset."""
        if self.closed:
            return []
        self.closed = True
        out: list[bytes] = []
        for conn in [*self.embryonic, *self.accept_queue]:
            out += conn.abort(now)
        self.embryonic.clear()
        self.accept_queue.clear()
        self._stack.unlisten(self)
        return out

    def _event(self, kind: TcpEventKind, now: float) -> None:
        if not any(e.kind is kind for e in self._events):
            self._events.append(TcpEvent(kind, now))
        self._stack.notify(self)

    def __repr__(self) -> str:
        return f"TcpListener(port={self.port}, pending={self.pending})"


class TcpStack:
    """Connections and listeners of one interface (see module docstring)."""

    def __init__(
        self,
        ctx: StackContext,
        output: Output,
        select_source: Callable[[bytes], bytes | None],
        path_mtu: Callable[[bytes, float], int],
        confirm: Callable[[bytes, float], None],
        large_output: Output | None = None,
    ) -> None:
        cfg = ctx.config.tcp
        if cfg.congestion_control not in ALGORITHMS:
            raise ConfigError(
                f"tcp.congestion_control {cfg.congestion_control!r}: not one of "
                + ", ".join(sorted(ALGORITHMS))
            )
        self.cfg = cfg
        self._ctx = ctx
        self.counters = ctx.counters
        self.timers = ctx.timers
        self.rng = ctx.rng
        self._output = output
        # Task offload (HostConfig.tx_checksum_offload / lso_max_size; ndisemu/offload.py): the
        # NIC finishes TCP checksums, and takes large sends (`large_output`: not fragmented).
        hc = ctx.config
        self.emit = tcp.emit_partial if hc.tx_checksum_offload else tcp.emit
        self.lso_max = hc.lso_max_size if (hc.tx_checksum_offload and large_output) else 0
        self.lso_min_segments = hc.lso_min_segments
        self._large_output = large_output if large_output is not None else output
        self._select_source = select_source
        self._path_mtu = path_mtu
        self._confirm = confirm
        self.conns: dict[Key, TcpConnection] = {}
        self.listeners: dict[int, TcpListener] = {}
        self._secret = ctx.rng.getrandbits(128).to_bytes(16, "big")  # RFC 6528 secretkey
        self._challenge = TokenBucket(float(cfg.challenge_ack_limit), cfg.challenge_ack_limit)
        self._ready: dict[TcpConnection | TcpListener, None] = {}
        self._confirmed: dict[bytes, float] = {}
        # A receive batch (begin_batch .. end_batch): the connections whose every-second-segment
        # ACK waits for the batch's end.
        self.batching = False
        self._batch_acks: dict[TcpConnection, None] = {}

    # --- what connections use -------------------------------------------------------------------

    @property
    def link_mss(self) -> int:
        """The MSS we announce: interface MTU - 60 (RFC 9293 §3.7.1, RFC 6691)."""
        return self._ctx.params.link_mtu - c.TCP_HEADERS

    def path_mss(self, dst: bytes, now: float) -> int:
        return self._path_mtu(dst, now) - c.TCP_HEADERS

    pseudo_sum = staticmethod(tcp.pseudo_sum)

    def new_cc(self, smss: int) -> CongestionControl:
        return ALGORITHMS[self.cfg.congestion_control](smss, self.cfg.initial_window)

    def output(self, conn: TcpConnection, segment: bytes, now: float) -> list[bytes]:
        self.counters["tcp.tx"] += 1
        return self._output(conn.local_addr, conn.remote_addr, NH_TCP, segment, now)

    def output_large(self, conn: TcpConnection, segment: bytes, now: float) -> list[bytes]:
        """A large send (task offload): one packet beyond the link MTU, for the NIC to cut."""
        self.counters["tcp.tx"] += 1
        self.counters["tcp.lso_tx"] += 1
        return self._large_output(conn.local_addr, conn.remote_addr, NH_TCP, segment, now)

    def notify(self, obj: TcpConnection | TcpListener) -> None:
        self._ready[obj] = None

    def challenge_ok(self, now: float) -> bool:
        return self._challenge.take(now)

    def confirm(self, conn: TcpConnection, now: float) -> None:
        """RFC 4861 §7.3.1: forward progress confirms the neighbor (at most once a second)."""
        dst = conn.remote_addr
        last = self._confirmed.get(dst)
        if last is None or now - last >= 1.0 or now < last:
            if len(self._confirmed) > 1024:
                self._confirmed.clear()
            self._confirmed[dst] = now
            self._confirm(dst, now)

    def can_establish(self, conn: TcpConnection) -> bool:
        lst = conn.listener
        return lst is not None and not lst.closed and len(lst.accept_queue) < lst.backlog

    def established(self, conn: TcpConnection, now: float) -> None:
        lst = conn.listener
        if lst is None or lst.closed:
            return
        lst.embryonic.pop(conn, None)
        lst.accept_queue.append(conn)
        lst._event(TcpEventKind.ACCEPT, now)

    def detach(self, conn: TcpConnection) -> None:
        """A connection reached CLOSED: forget it."""
        key = (conn.local_addr, conn.local_port, conn.remote_addr, conn.remote_port)
        if self.conns.get(key) is conn:
            del self.conns[key]
        lst = conn.listener
        if lst is not None:
            lst.embryonic.pop(conn, None)
            if conn in lst.accept_queue:
                lst.accept_queue.remove(conn)

    def unlisten(self, lst: TcpListener) -> None:
        if self.listeners.get(lst.port) is lst:
            del self.listeners[lst.port]

    # --- application entry points ---------------------------------------------------------------

    def pop_ready(self) -> list[TcpConnection | TcpListener]:
        """Connections and listeners with new events since the last call, in order."""
        if not self._ready:  # the common case: after every batch of frames
            return []
        ready = list(self._ready)
        self._ready.clear()
        return ready

    def listen(self, port: int, backlog: int = 16) -> TcpListener:
        if not 0 < port <= 0xFFFF:
            raise SocketError(f"port {port} out of range")
        if backlog < 1:
            raise SocketError("backlog must be >= 1")
        if port in self.listeners:
            raise SocketError(f"port {port} already listening (EADDRINUSE)")
        lst = TcpListener(self, port, backlog)
        self.listeners[port] = lst
        return lst

    def connect(
        self,
        address: tuple[bytes, int],
        now: float,
        *,
        local_port: int = 0,
        src: bytes | None = None,
    ) -> tuple[TcpConnection, list[bytes]]:
        """Active open (RFC 9293 §3.10.1): the connection in SYN-SENT and the SYN's frames."""
        dst, port = address
        if len(dst) != 16 or dst[0] == 0xFF or dst == UNSPECIFIED:
            raise SocketError("destination must be a unicast IPv6 address")
        if not 0 < port <= 0xFFFF:
            raise SocketError(f"port {port} out of range")
        if src is None:
            src = self._select_source(dst)
            if src is None:
                raise SocketError("no usable source address (EADDRNOTAVAIL)")
        if local_port:
            if not 0 < local_port <= 0xFFFF:
                raise SocketError(f"port {local_port} out of range")
            key = (src, local_port, dst, port)
            old = self.conns.get(key)
            if old is not None:  # a TIME-WAIT one included (RFC 9293 §3.6.1)
                raise SocketError(f"4-tuple in use, {old.state.value} (EADDRINUSE)")
        else:
            local_port = self._ephemeral(src, dst, port)
            key = (src, local_port, dst, port)
        if len(self.conns) >= self.cfg.max_connections:
            self.counters["tcp.conn_table_full"] += 1
            raise SocketError(f"{len(self.conns)} connections, the bound (ENOBUFS)")
        conn = TcpConnection(self, (src, local_port), (dst, port), self.isn(key, now), now)
        self.conns[key] = conn
        self.counters["tcp.active_opens"] += 1
        out = conn.open_active(now)
        self.counters["tx"] += len(out)
        return conn, out

    def _ephemeral(self, src: bytes, dst: bytes, port: int) -> int:
        """RFC 6056 §3.3.1 (algorithm 1): random, retried on collision."""
        for _ in range(256):
            cand = self.rng.randint(c.EPHEMERAL_FIRST, c.EPHEMERAL_LAST)
            if cand not in self.listeners and (src, cand, dst, port) not in self.conns:
                return cand
        raise SocketError("no free ephemeral port (EADDRNOTAVAIL)")

    def isn(self, key: Key, now: float) -> int:
        """RFC 6528 §3: M + F(localip, localport, remoteip, remoteport, secretkey)."""
        h = hashlib.sha256(self._secret)
        h.update(key[0] + key[1].to_bytes(2, "big") + key[2] + key[3].to_bytes(2, "big"))
        f = int.from_bytes(h.digest()[:4], "big")
        return (int(now * 250_000) + f) & MASK

    # --- receive ----------------------------------------------------------------------------------

    def begin_batch(self) -> None:
        """Segments up to `end_batch` arrived together (one receive item's frames): in-order
        data is acknowledged once, at the end (a stretch ACK, as Linux's GRO gives one per NAPI
        poll), not every second segment."""
        self.batching = True

    def ack_at_batch_end(self, conn: TcpConnection) -> None:
        self._batch_acks[conn] = None

    def end_batch(self, now: float) -> list[bytes]:
        """The batch's deferred ACKs, one per connection, in the order they were deferred."""
        self.batching = False
        if not self._batch_acks:
            return []
        conns = list(self._batch_acks)
        self._batch_acks.clear()
        out: list[bytes] = []
        for conn in conns:
            acks = conn.batch_ack(now)
            if acks:
                self.counters["tcp.batch_acks"] += 1
                out += acks
        return out

    def rx(self, src: bytes, dst: bytes, seg: TcpSegment, now: float) -> list[bytes]:
        """A verified segment from ``src`` to our ``dst``; returns the frames to transmit."""
        self.counters["tcp.rx"] += 1
        conn = self.conns.get((dst, seg.dst_port, src, seg.src_port))
        if conn is not None:
            lst = self.listeners.get(seg.dst_port)
            if (lst is not None and seg.flags & (SYN | ACK | RST | FIN) == SYN
                    and conn.reusable_by(seg)):
                self.counters["tcp.time_wait_reused"] += 1
                conn.end_time_wait(now)
                return self._listen_rx(lst, src, dst, seg, now)
            return conn.on_segment(seg, now)
        lst = self.listeners.get(seg.dst_port)
        if lst is not None:
            return self._listen_rx(lst, src, dst, seg, now)
        return self._closed_rx(src, dst, seg, now)

    def _listen_rx(
        self, lst: TcpListener, src: bytes, dst: bytes, seg: TcpSegment, now: float
    ) -> list[bytes]:
        """RFC 9293 §3.10.7.2."""
        f = seg.flags
        counters = self.counters
        if f & RST:
            counters["drop." + DropReason.NO_CONNECTION.value] += 1
            return []
        if f & ACK:
            counters["drop." + DropReason.NO_CONNECTION.value] += 1
            return self._rst(dst, src, seg.dst_port, seg.src_port, seg.ack, 0, RST, now)
        if not f & SYN or f & FIN:
            counters["drop." + DropReason.BAD_FLAGS.value] += 1
            return []
        if len(lst.embryonic) >= self.cfg.syn_backlog or len(lst.accept_queue) >= lst.backlog:
            counters["drop." + DropReason.BACKLOG_FULL.value] += 1
            return []
        if len(self.conns) >= self.cfg.max_connections:
            counters["drop." + DropReason.BACKLOG_FULL.value] += 1
            counters["tcp.conn_table_full"] += 1
            return []
        key = (dst, lst.port, src, seg.src_port)
        conn = TcpConnection(self, (dst, lst.port), (src, seg.src_port), self.isn(key, now), now,
                             listener=lst)  # fmt: skip
        self.conns[key] = conn
        lst.embryonic[conn] = None
        counters["tcp.passive_opens"] += 1
        return conn.open_passive(seg, now)

    def _closed_rx(self, src: bytes, dst: bytes, seg: TcpSegment, now: float) -> list[bytes]:
        """RFC 9293 §3.10.7.1: CLOSED — a RST for anything but a RST."""
        self.counters["drop." + DropReason.PORT_CLOSED.value] += 1
        f = seg.flags
        if f & RST:
            return []
        if f & ACK:
            return self._rst(dst, src, seg.dst_port, seg.src_port, seg.ack, 0, RST, now)
        seglen = len(seg.payload) + (1 if f & SYN else 0) + (1 if f & FIN else 0)
        return self._rst(dst, src, seg.dst_port, seg.src_port, 0, (seg.seq + seglen) & MASK,
                         RST | ACK, now)  # fmt: skip

    def _rst(
        self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
        now: float,
    ) -> list[bytes]:  # fmt: skip
        self.counters["tcp.rst_tx"] += 1
        seg = self.emit(tcp.pseudo_sum(src, dst), sport, dport, seq, ack, flags, 0, b"", b"")
        return self._output(src, dst, NH_TCP, seg, now)

    # --- timers and ICMPv6 ----------------------------------------------------------------------

    def on_timer(self, key: Hashable, now: float) -> list[bytes]:
        assert isinstance(key, tuple)
        conn = key[1]
        assert isinstance(conn, TcpConnection)
        return conn.on_timer(now)

    def on_packet_too_big(
        self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, now: float
    ) -> list[bytes]:
        """RFC 8201 §5.2 / RFC 9293 §3.7.2: the router already lowered the path MTU; the
        connection quoted (if the quoted sequence number is in flight, RFC 5927 §4.1) lowers its
        MSS and sends again in smaller segments."""
        conn = self.conns.get((src, sport, dst, dport))
        if conn is None:
            self.counters["tcp.icmp_no_connection"] += 1
            return []
        return conn.on_pmtu(seq, self.path_mss(dst, now), now)

    def on_error(self, src: bytes, dst: bytes, sport: int, dport: int, kind: str) -> None:
        """Other ICMPv6 errors are soft errors (RFC 9293 §3.9.2.2 MUST-56): recorded only."""
        conn = self.conns.get((src, sport, dst, dport))
        self.counters["tcp.icmp_soft_errors"] += 1
        if conn is not None:
            conn.soft_error = kind
