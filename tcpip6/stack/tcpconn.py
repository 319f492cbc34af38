"""One TCP connection, sans-IO: the RFC 9293 state machine with its reliability machinery.

Theory of operation. A :class:`TcpConnection` is driven from three sides, each passing ``now``
and returning the frames to transmit: segments from :meth:`on_segment` (demultiplexed by
:class:`~tcpip6.stack.tcp.TcpStack`), its one timer from :meth:`on_timer`, and the application
(:meth:`send`, :meth:`recv`, :meth:`shutdown_write`, :meth:`close`, :meth:`abort`). What the
application should hear about goes to a small coalescing event queue (:meth:`pop_events`); the
stack also lists the connection in :meth:`~tcpip6.stack.tcp.TcpStack.pop_ready` so a driver
knows whom to wake.

**State machine.** :data:`TRANSITIONS` is the RFC 9293 §3.3.2 diagram as a table
``{state: {input: next_state}}``; :meth:`_go` is the only place that changes ``state`` and raises
:class:`~tcpip6.errors.IllegalTransition` for a missing row. The per-segment path of a
connection in ESTABLISHED never consults the table (no transition happens there).

**Sequence numbers** are kept unbounded internally: the ISS/IRS are the wire values and every
later number is a plain Python int that may pass 2**32. A received 32-bit number is mapped to
the internal number closest to a reference (``rcv_nxt`` for SEQ, ``snd_una`` for ACK), so all
comparisons are ordinary ``<`` — no modular arithmetic on the hot path. BSD's three send
variables are used: ``snd_una <= snd_nxt <= snd_max`` (``snd_nxt`` is pulled back to
``snd_una`` for go-back-N after a timeout; ``snd_max`` is the highest sequence sent). Segments
without data carry SND.MAX, as BSD's do: after a go-back-N, SND.NXT can lie below the peer's
RCV.NXT, and two ends answering each other's "unacceptable" ACKs would never stop.

**Buffers.** The send buffer is one ``bytearray`` holding every byte from the oldest
unacknowledged one (acknowledged bytes are deleted from the front, which CPython does in O(1));
segments are cut from it at any sequence number, so retransmission needs no per-segment records.
The receive buffer is a ``bytearray`` of in-order data; out-of-order data sits in a short list of
merged ``[start, end, bytearray]`` blocks (bounded by ``ooo_max_segments`` and by the window).

**Segment arrival** follows RFC 9293 §3.10.7.3 (SYN-SENT) and §3.10.7.4 (others), in order:
PAWS (RFC 7323 §5.3); a SYN in a synchronized state gets a challenge ACK (RFC 5961 §4.2); the
acceptability test (an unacceptable segment is answered with an ACK, an unacceptable RST is
dropped); RST only with exactly SEG.SEQ = RCV.NXT, any other in-window RST gets a challenge ACK
(RFC 5961 §3.2); ACK acceptability (RFC 5961 §5.2); then ACK processing, text and FIN. In
TIME-WAIT a RST is ignored (RFC 1337).

**Sending** (:meth:`_push`) cuts segments of at most the effective MSS (RFC 9293 §3.7.1: the
peer's MSS option or 1220, the path MTU minus 60, minus the options carried), within
min(cwnd, SND.WND) (RFC 5681), with sender silly-window avoidance (§3.8.6.2.1) and Nagle
(§3.7.4; ``nodelay`` turns it off). The FIN goes on the segment that carries the last byte.

**Reliability.** RTO per RFC 6298 (SRTT/RTTVAR, 1 s initial, configurable minimum, doubling
backoff, Karn's rule: no samples from retransmitted segments unless timestamps say which copy
was acknowledged, RFC 7323 §4). Fast retransmit on DupThresh duplicate ACKs (RFC 5681 §3.2);
recovery is RFC 6675 (scoreboard, IsLost, pipe, NextSeg; SACKed data is never retransmitted)
when SACK was negotiated, else NewReno (RFC 6582) with window inflation and partial ACKs.
Limited transmit (RFC 3042). A zero window is probed by the persist timer with one byte of new
data that does not advance SND.NXT (RFC 9293 §3.8.6.1); probing never gives up while ACKs come
(RFC 1122 §4.2.2.17) unless the application closed the connection (an orphan: after
``max_retries`` probes it is dropped, as RFC 6429 allows).

**Receiving.** ACKs are delayed (``delayed_ack``, 200 ms by default) but sent at once for every
second segment (RFC 9293 §3.8.6.3 / RFC 5681 §4.2), for out-of-order data and for data that
fills a gap (RFC 5681 §4.2), and for a FIN. In-order segments that arrive in one receive batch
(`TcpStack.begin_batch`: the frames one tcpip6 receive item drains) are acknowledged once, at
the batch's end — what Linux's GRO does with the segments of one NAPI poll (a stretch ACK,
which RFC 5681 §4.2 and RFC 9293 §3.8.6.3 leave to the receiver's judgement: "SHOULD") — or
as soon as half the receive buffer is unacknowledged; a batch of one frame acknowledges as
above. SACK blocks (RFC 2018 §4: the block holding the
newest segment first, then the most recently reported ones) go on every ACK while out-of-order
data is held. The offered window never shrinks and grows only by min(buffer/2, MSS) steps
(receiver SWS avoidance, §3.8.6.2.2); a window update is sent when reading frees two segments
or half the buffer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, Final

from tcpip6.errors import ConnectionClosed, ConnectionReset, IllegalTransition, WouldBlock
from tcpip6.stack import constants as c
from tcpip6.stack.tcpcc import CongestionControl
from tcpip6.wire.drops import DropReason
from tcpip6.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpSegment, options, ts_option

if TYPE_CHECKING:
    from tcpip6.stack.tcp import TcpListener, TcpStack

MASK: Final = 0xFFFFFFFF
HALF: Final = 0x80000000



def _overlap(spans: list[Any], s: int, e: int) -> tuple[int, int]:
    """In sorted, disjoint [start, end, ...] spans: the index range [i, j) of those that
    touch [s, e] (i == j: none, and i is where [s, e] goes)."""
    n = len(spans)
    i = 0
    while i < n and spans[i][1] < s:
        i += 1
    j = i
    while j < n and spans[j][0] <= e:
        j += 1
    return i, j

class TcpState(Enum):
    """RFC 9293 §3.3.2 (LISTEN belongs to :class:`~tcpip6.stack.tcp.TcpListener`)."""

    CLOSED = "CLOSED"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"


class TcpInput(Enum):
    """What moves the state machine."""

    ACTIVE_OPEN = "ACTIVE_OPEN"  # connect(): SYN sent
    PASSIVE_OPEN = "PASSIVE_OPEN"  # a listener took a SYN: SYN-ACK sent
    RCV_SYN = "RCV_SYN"  # SYN without ACK in SYN-SENT: simultaneous open
    RCV_SYN_ACK = "RCV_SYN_ACK"  # SYN-ACK acknowledging our SYN
    RCV_ACK_OF_SYN = "RCV_ACK_OF_SYN"
    CLOSE = "CLOSE"  # shutdown_write/close: the FIN is queued
    RCV_FIN = "RCV_FIN"
    RCV_ACK_OF_FIN = "RCV_ACK_OF_FIN"
    TIMEOUT_2MSL = "TIMEOUT_2MSL"
    RCV_RST = "RCV_RST"
    ABORT = "ABORT"  # abort(), or close() with unread data, or an embryonic connection dropped
    GIVE_UP = "GIVE_UP"  # retransmissions exhausted, orphaned FIN-WAIT-2 timeout


_S = TcpState
_I = TcpInput
_ENDS: Final = {_I.RCV_RST: _S.CLOSED, _I.ABORT: _S.CLOSED, _I.GIVE_UP: _S.CLOSED}

TRANSITIONS: dict[TcpState, dict[TcpInput, TcpState]] = {
    _S.CLOSED: {_I.ACTIVE_OPEN: _S.SYN_SENT, _I.PASSIVE_OPEN: _S.SYN_RECEIVED},
    _S.SYN_SENT: {_I.RCV_SYN_ACK: _S.ESTABLISHED, _I.RCV_SYN: _S.SYN_RECEIVED,
                  _I.CLOSE: _S.CLOSED, **_ENDS},
    _S.SYN_RECEIVED: {_I.RCV_ACK_OF_SYN: _S.ESTABLISHED, **_ENDS},
    _S.ESTABLISHED: {_I.CLOSE: _S.FIN_WAIT_1, _I.RCV_FIN: _S.CLOSE_WAIT, **_ENDS},
    _S.FIN_WAIT_1: {_I.RCV_ACK_OF_FIN: _S.FIN_WAIT_2, _I.RCV_FIN: _S.CLOSING, **_ENDS},
    _S.FIN_WAIT_2: {_I.RCV_FIN: _S.TIME_WAIT, **_ENDS},
    _S.CLOSE_WAIT: {_I.CLOSE: _S.LAST_ACK, **_ENDS},
    _S.CLOSING: {_I.RCV_ACK_OF_FIN: _S.TIME_WAIT, **_ENDS},
    _S.LAST_ACK: {_I.RCV_ACK_OF_FIN: _S.CLOSED, **_ENDS},
    _S.TIME_WAIT: {_I.TIMEOUT_2MSL: _S.CLOSED, _I.ABORT: _S.CLOSED},  # RST ignored: RFC 1337
}  # fmt: skip

_SYNCHRONIZED: Final = frozenset({_S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2, _S.CLOSE_WAIT,
                           _S.CLOSING, _S.LAST_ACK, _S.TIME_WAIT})  # fmt: skip
_CAN_SEND: Final = frozenset({_S.ESTABLISHED, _S.CLOSE_WAIT, _S.FIN_WAIT_1, _S.CLOSING,
                              _S.LAST_ACK})
_RECV_TEXT: Final = frozenset({_S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2})  # RFC 9293 step 7
_APP_SEND: Final = frozenset({_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED, _S.CLOSE_WAIT})
# The states as Final names for the code below (per segment, per timer): on CPython 3.11
# ``_S.ESTABLISHED`` in a function is a call of EnumType.__getattr__ (about 900 instructions)
# per read, a Final name a C static in the wheel (bench/README.md, "fifth round"). The
# tables above keep the enum's own spelling.
_CLOSED: Final = _S.CLOSED
_SYN_SENT: Final = _S.SYN_SENT
_SYN_RECEIVED: Final = _S.SYN_RECEIVED
_ESTABLISHED: Final = _S.ESTABLISHED
_FIN_WAIT_1: Final = _S.FIN_WAIT_1
_FIN_WAIT_2: Final = _S.FIN_WAIT_2
_CLOSE_WAIT: Final = _S.CLOSE_WAIT
_CLOSING: Final = _S.CLOSING
_LAST_ACK: Final = _S.LAST_ACK
_TIME_WAIT: Final = _S.TIME_WAIT

# the one "main" timer slot: these uses exclude one another (RFC 9293 §3.8.6.1: persist only
# while nothing is outstanding; TIME-WAIT and FIN-WAIT-2 have nothing to retransmit)
_T_NONE, _T_REXMIT, _T_PERSIST, _T_2MSL, _T_FW2 = range(5)


class TcpEventKind(StrEnum):
    """What a connection (or listener) tells its application; the value is the stable name."""

    CONNECTED = "connected"  # ESTABLISHED reached (send() data now leaves)
    DATA = "data"  # recv() has bytes
    EOF = "eof"  # the peer's FIN: recv() returns b"" once the buffer is drained
    WRITABLE = "writable"  # ACKs freed at least half the send buffer
    RESET = "reset"  # connection refused/reset/timed out (detail says which); it is CLOSED
    CLOSED = "closed"  # the connection reached CLOSED and left the stack; nothing follows
    ACCEPT = "accept"  # (listener) a connection waits in the accept queue


# the kinds told per segment, as Final names (see _CLOSED above)
_DATA: Final = TcpEventKind.DATA
_WRITABLE: Final = TcpEventKind.WRITABLE
_EOF: Final = TcpEventKind.EOF


@dataclass(frozen=True, slots=True)
class TcpEvent:
    kind: TcpEventKind
    now: float
    detail: str = ""


class TcpConnection:
    """One connection (see module docstring). Created by :meth:`TcpStack.connect` or a
    listener; the application uses the public methods and properties only."""

    __slots__ = (
        "_ack_now", "_app_closed", "_armed", "_deferred_close", "_events", "_fin_queued", "_key",
        "_mss_base", "_now", "_ooo", "_ooo_fin", "_partial_seen", "_pending", "_persist_n",
        "_probe_end", "_psum", "_retries", "_rtt_seq", "_rtt_time", "_sack_recent", "_sacked",
        "_sb", "_sbuf", "_sbuf_start", "_segs_unacked", "_snd_end", "_stack", "_syn_lost", "_t_ack",
        "_t_kind", "_t_main", "_ts_offset", "_visible", "cc", "dupacks", "eof",
        "error", "high_rxt", "in_recovery", "irs", "iss", "last_ack_sent", "listener",
        "local_addr", "local_port", "max_snd_wnd", "nodelay", "our_mss", "passive",
        "peer_mss", "rbuf", "rcv_adv", "rcv_nxt", "rcv_wscale", "recover", "recv_buffer",
        "remote_addr", "remote_port", "rto", "rttvar", "sack_ok", "send_buffer", "smss",
        "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2", "snd_wnd", "snd_wscale",
        "soft_error", "srtt", "state", "ts_ok", "ts_recent", "ts_recent_age", "want_wscale",
    )  # fmt: skip

    def __init__(
        self,
        stack: TcpStack,
        local: tuple[bytes, int],
        remote: tuple[bytes, int],
        iss: int,
        now: float,
        listener: TcpListener | None = None,
    ) -> None:
        cfg = stack.cfg
        self._stack = stack
        self.local_addr, self.local_port = local
        self.remote_addr, self.remote_port = remote
        self._key = (self.local_addr, self.local_port, self.remote_addr, self.remote_port)
        self._psum = stack.pseudo_sum(self.local_addr, self.remote_addr)
        self.listener = listener
        self.passive = listener is not None
        self._visible = listener is None  # embryonic passive connections are the stack's own
        self.state = _CLOSED
        self.error: str | None = None  # "refused" / "reset" / "timeout" / "aborted"
        self.soft_error: str | None = None  # the last ICMPv6 error about us (RFC 9293 §3.9.2.2)
        self.eof = False
        self.nodelay = cfg.nodelay
        self._now = now
        # send side
        self.iss = iss
        self.snd_una = self.snd_nxt = self.snd_max = iss
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.send_buffer = cfg.send_buffer
        self._sbuf = bytearray()
        self._sbuf_start = iss + 1  # sequence number of _sbuf[0]
        self._snd_end = iss + 1  # sequence number after the last buffered byte
        self._fin_queued = False
        self._deferred_close = False
        self._app_closed = False
        # receive side
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0  # right edge of the window offered so far (never moves left)
        self.recv_buffer = cfg.recv_buffer
        self.rbuf = bytearray()
        self._ooo: list[list[Any]] = []  # [start, end, bytearray], sorted, disjoint
        self._ooo_fin: int | None = None
        self._sack_recent: list[int] = []  # starts of recently received out-of-order segments
        self._segs_unacked = 0
        self._ack_now = False
        self.last_ack_sent = 0
        # options (RFC 9293 §3.7.1, RFC 7323, RFC 2018)
        self.our_mss = stack.link_mss
        self.peer_mss = c.TCP_IPV6_DEFAULT_MSS
        self._mss_base = min(self.our_mss, stack.path_mss(self.remote_addr, now))
        self.smss = self._mss_base
        ws = 0
        while (cfg.recv_buffer >> ws) > 0xFFFF and ws < 14:
            ws += 1
        self.want_wscale = ws if cfg.window_scaling else None
        self.rcv_wscale = self.snd_wscale = 0
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_recent_age = now
        self._ts_offset = stack.rng.getrandbits(32)  # RFC 7323 §5.4: per-connection offset
        self.sack_ok = False
        self._sb: list[list[int]] = []  # SACK scoreboard: [start, end] above snd_una, sorted
        self._sacked = 0
        # RTT / RTO (RFC 6298)
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = cfg.rto_initial
        self._rtt_seq: int | None = None
        self._rtt_time = 0.0
        self._retries = 0
        self._syn_lost = False
        self._persist_n = 0
        self._probe_end = 0  # the end of an outstanding zero-window probe (beyond SND.MAX)
        # congestion control and recovery
        self.cc: CongestionControl = stack.new_cc(self.smss)
        self.dupacks = 0
        self.in_recovery = False
        self.recover = iss
        self.high_rxt = iss
        self._partial_seen = False
        # timers and events
        self._t_main: float | None = None
        self._t_kind = _T_NONE
        self._t_ack: float | None = None
        self._armed: float | None = None
        self._events: deque[TcpEvent] = deque()
        self._pending: set[TcpEventKind] = set()

    # --- public API ---------------------------------------------------------------------------

    @property
    def local(self) -> tuple[bytes, int]:
        return self.local_addr, self.local_port

    @property
    def remote(self) -> tuple[bytes, int]:
        return self.remote_addr, self.remote_port

    @property
    def readable(self) -> bool:
        """recv() will not raise WouldBlock: data, EOF or an error is there."""
        return bool(self.rbuf) or self.eof or self.error is not None

    @property
    def send_space(self) -> int:
        """How many bytes :meth:`send` accepts now (0 once the write side is shut)."""
        if self.state not in _APP_SEND or self._fin_queued or self.error is not None:
            return 0
        return max(0, self.send_buffer - len(self._sbuf))

    @property
    def writable(self) -> bool:
        return self.send_space > 0

    # Predicates for a socket layer's waits (`Tcpip6Binder.wake_when`, checked after every call
    # into the stack): bound methods of this class are native code when compiled, where a lambda
    # in the (interpreted) socket layer is a Python frame per check.

    def is_readable(self) -> bool:
        """`readable`, as a method."""
        return self.readable

    def can_send(self) -> bool:
        """send() takes data now, or the connection failed (the caller sees the error)."""
        return self.send_space > 0 or self.error is not None

    @property
    def unsent(self) -> int:
        """Buffered bytes not yet acknowledged (sent or not)."""
        return len(self._sbuf)

    def pop_events(self) -> list[TcpEvent]:
        """Events since the last call; "data" and "writable" are coalesced (one pending)."""
        ev = list(self._events)
        self._events.clear()
        self._pending.clear()
        return ev

    def send(self, data: bytes | bytearray | memoryview, now: float) -> list[bytes]:
        """Buffer all of ``data`` and return the segments that may leave now.

        All or nothing: if ``len(data) > send_space`` nothing is taken and :class:`WouldBlock`
        is raised (send ``data[:send_space]`` and wait for a "writable" event). Raises
        :class:`ConnectionReset` after a reset/timeout and :class:`ConnectionClosed` after
        shutdown_write/close. Data sent before the handshake completes is queued.
        """
        self._check_alive()
        if self._fin_queued or self._app_closed or self.state not in _APP_SEND:
            raise ConnectionClosed("send after shutdown_write/close (EPIPE)")
        n = len(data)
        if not n:
            return []
        if n > self.send_buffer - len(self._sbuf):
            raise WouldBlock(f"send buffer: {self.send_space} bytes free, {n} offered")
        self._now = now
        self._sbuf += data
        self._snd_end += n
        out: list[bytes] = []
        if self.state in _CAN_SEND:
            self._push(now, out)
        return self._done(out)

    def recv(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` of in-order data; b"" at EOF. Raises :class:`WouldBlock` when
        nothing is there yet, :class:`ConnectionReset` after a reset. When reading opens the
        window by two segments or half the buffer, a window update is scheduled as a timer due
        at once (the driver sees it in ``next_deadline``)."""
        rbuf = self.rbuf
        if rbuf:
            if max_bytes >= len(rbuf):
                data = bytes(rbuf)
                rbuf.clear()
            else:
                data = bytes(rbuf[:max_bytes])
                del rbuf[:max_bytes]
            if self.state in _RECV_TEXT:
                self._maybe_window_update()
            return data
        if self.error is not None:
            raise ConnectionReset(self.error)
        if self.eof:
            return b""
        if self._app_closed:
            raise ConnectionClosed("recv after close")
        raise WouldBlock("no data yet")

    def shutdown_write(self, now: float) -> list[bytes]:
        """Half-close: queue a FIN behind the buffered data (RFC 9293 §3.10.4 CLOSE)."""
        self._check_alive()
        if self._fin_queued or self._deferred_close:
            return []
        self._now = now
        st = self.state
        if st is _SYN_SENT or st is _SYN_RECEIVED:
            self._deferred_close = True  # RFC 9293 §3.10.4: queued until ESTABLISHED
            return []
        if st is not _ESTABLISHED and st is not _CLOSE_WAIT:
            return []
        out: list[bytes] = []
        self._fin_queued = True
        self._go(_I.CLOSE, now)
        self._push(now, out)
        return self._done(out)

    def close(self, now: float) -> list[bytes]:
        """The application is done: FIN after the buffered data (like shutdown_write) and no
        more reading. Unread data, or data arriving later, resets the connection instead
        (RFC 1122 §4.2.2.13). In SYN-SENT the connection is simply deleted (§3.10.4)."""
        self._now = now
        if self.state is _CLOSED or self._app_closed:
            return []
        self._app_closed = True
        if self.error is not None:
            return []
        if self.rbuf:
            self._stack.counters["tcp.rst_unread_on_close"] += 1
            return self.abort(now)
        if self.state is _SYN_SENT:
            self._go(_I.CLOSE, now)
            return []
        out = self.shutdown_write(now)
        if self.state is _FIN_WAIT_2:
            self._set_main(_T_FW2, now + self._stack.cfg.fin_wait_2_timeout)
            self._sched()
        return out

    def abort(self, now: float) -> list[bytes]:
        """Reset the connection (RFC 9293 §3.10.5 ABORT) and go to CLOSED. The RST carries
        SND.MAX — BSD's choice: after a go-back-N SND.NXT may lag what the peer has, and a RST
        must match RCV.NXT exactly to count (RFC 5961 §3.2)."""
        self._now = now
        st = self.state
        if st is _CLOSED:
            return []
        out: list[bytes] = []
        if st is not _SYN_SENT and st is not _TIME_WAIT:
            self._emit_rst(self.snd_max, now, out)
        self._app_closed = True
        if self.error is None:
            self.error = "aborted"
        self._go(_I.ABORT, now)
        return self._done(out)

    def info(self) -> dict[str, Any]:
        """A snapshot for status pages and tests."""
        return {
            "state": self.state.value, "local_port": self.local_port,
            "remote_port": self.remote_port, "snd_una": self.snd_una & MASK,
            "snd_nxt": self.snd_nxt & MASK, "snd_wnd": self.snd_wnd, "rcv_nxt": self.rcv_nxt & MASK,
            "rcv_wnd": self.rcv_adv - self.rcv_nxt, "cwnd": self.cc.cwnd,
            "ssthresh": self.cc.ssthresh, "cc": self.cc.name, "smss": self.smss, "srtt": self.srtt,
            "rto": self.rto, "in_recovery": self.in_recovery, "sack": self.sack_ok,
            "timestamps": self.ts_ok, "wscale": (self.snd_wscale, self.rcv_wscale),
            "unacked": len(self._sbuf), "unread": len(self.rbuf), "ooo_blocks": len(self._ooo),
        }  # fmt: skip

    def __repr__(self) -> str:
        return f"TcpConnection({self.local_port}->{self.remote_port} {self.state.value})"

    # --- called by the stack ----------------------------------------------------------------------

    def mark_accepted(self) -> None:
        """The application took this connection from its listener's accept queue."""
        self._visible = True
        if self._events:
            self._stack.notify(self)

    def on_pmtu(self, seq: int, path_mss: int, now: float) -> list[bytes]:
        """A Packet Too Big quoted ``seq`` (wire value): RFC 5927 §4.1 — only if it is in
        flight; then a smaller MSS and the outstanding data again, without a congestion
        response (the loss was not congestion; RFC 8201 §5.2)."""
        una = self.snd_una
        s = una + ((seq - una + HALF) & MASK) - HALF
        counters = self._stack.counters
        if not una <= s < self.snd_max or self.state not in _CAN_SEND:
            counters["tcp.pmtu_ignored"] += 1
            return []
        base = min(self.peer_mss, path_mss)
        if base >= self._mss_base:
            return []
        counters["tcp.pmtu_lowered"] += 1
        self._now = now
        self._set_mss(base)
        self.snd_nxt = una
        self._rtt_seq = None
        out: list[bytes] = []
        self._push(now, out)
        self._sched()
        return out

    def open_active(self, now: float) -> list[bytes]:
        self._go(_I.ACTIVE_OPEN, now)
        out: list[bytes] = []
        self._send_syn(now, out)
        self._sched()
        return out

    def open_passive(self, seg: TcpSegment, now: float) -> list[bytes]:
        """A listener's SYN (RFC 9293 §3.10.7.2): IRS, options, SYN-ACK. Data on the SYN is
        not taken (it is not acknowledged, so the peer sends it again)."""
        self.irs = seg.seq
        self.rcv_nxt = self.rcv_adv = seg.seq + 1
        self._negotiate(seg, now)
        self.snd_wnd = seg.window  # never scaled on a SYN (RFC 7323 §2.2)
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = seg.seq
        self._go(_I.PASSIVE_OPEN, now)
        out: list[bytes] = []
        self._send_syn(now, out)
        self._sched()
        return out

    def _negotiate(self, seg: TcpSegment, now: float) -> None:
        cfg = self._stack.cfg
        if seg.mss is not None:  # a silly small MSS is raised to 64 (Linux uses 48)
            self.peer_mss = max(seg.mss, 64)
        if self.want_wscale is not None and seg.wscale is not None:  # RFC 7323 §2.2
            self.snd_wscale = seg.wscale
            self.rcv_wscale = self.want_wscale
        else:
            self.want_wscale = None
        if cfg.timestamps and seg.tsval is not None:  # RFC 7323 §3.2
            self.ts_ok = True
            self.ts_recent = seg.tsval
            self.ts_recent_age = now
        self.sack_ok = cfg.sack and seg.sack_permitted  # RFC 2018 §2
        self._set_mss(min(self.peer_mss, self._mss_base))

    def _set_mss(self, base: int) -> None:
        self._mss_base = base
        self.smss = base - (12 if self.ts_ok else 0)
        self.cc.set_mss(self.smss)

    # --- segment arrival ------------------------------------------------------------------------

    def on_segment(self, seg: TcpSegment, now: float) -> list[bytes]:
        self._now = now
        out: list[bytes] = []
        if self.state is _SYN_SENT:
            self._rx_syn_sent(seg, now, out)
        else:
            self._rx(seg, now, out)
        if self.state is not _CLOSED:
            if self.state in _CAN_SEND:
                self._push(now, out)
            if self._ack_now:
                self._emit(self.snd_max, ACK, b"", now, out)
            self._sched()
        return out

    def batch_ack(self, now: float) -> list[bytes]:
        """The ACK deferred to the end of a receive batch (`TcpStack.end_batch`), unless a
        segment sent since carried it."""
        out: list[bytes] = []
        if self._segs_unacked and self.state is not _CLOSED:
            self._now = now
            self._emit(self.snd_max, ACK, b"", now, out)
            self._sched()
        return out

    def _drop(self, reason: DropReason) -> None:
        self._stack.counters["drop." + reason.value] += 1

    def _rx_syn_sent(self, seg: TcpSegment, now: float, out: list[bytes]) -> None:
        """RFC 9293 §3.10.7.3."""
        flags = seg.flags
        ack_ok = False
        ack = 0
        if flags & ACK:
            ack = self.snd_una + ((seg.ack - self.snd_una + HALF) & MASK) - HALF
            if ack <= self.iss or ack > self.snd_max:
                if not flags & RST:
                    self._emit_rst(seg.ack, now, out)
                return self._drop(DropReason.BAD_ACK)
            ack_ok = True
        if flags & RST:
            if ack_ok:  # RFC 5961 §3.2: in SYN-SENT acceptable when it acknowledges the SYN
                self._stack.counters["tcp.rst_rx"] += 1
                return self._reset("refused", now)
            return self._drop(DropReason.NO_CONNECTION)
        if not flags & SYN:
            return self._drop(DropReason.NO_CONNECTION)
        self.irs = seg.seq
        self.rcv_nxt = seg.seq + 1
        self.rcv_adv = self.rcv_nxt + min(self.recv_buffer, 0xFFFF)  # what our SYN offered
        self._negotiate(seg, now)
        self.snd_wnd = seg.window  # unscaled on a SYN (RFC 7323 §2.2)
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = seg.seq
        if not ack_ok:  # simultaneous open (RFC 9293 §3.5 figure 8)
            self._go(_I.RCV_SYN, now)
            self._send_syn(now, out, again=True)
            return None
        self.snd_wl2 = ack
        self._ack_new(ack, seg, now)
        self._go(_I.RCV_SYN_ACK, now)
        self._ack_now = True
        if seg.payload or flags & FIN:  # text on a SYN-ACK: continue at step six
            self._text(self.irs + 1, seg.payload, flags, now, out)
        return None

    def _rx(self, seg: TcpSegment, now: float, out: list[bytes]) -> None:
        """RFC 9293 §3.10.7.4 for SYN-RECEIVED and the synchronized states."""
        st = self.state
        flags = seg.flags
        rn = self.rcv_nxt
        seq = rn + ((seg.seq - rn + HALF) & MASK) - HALF
        counters = self._stack.counters
        if flags & SYN and st is _SYN_RECEIVED and seq == self.irs:
            if not flags & (ACK | RST):  # the peer did not hear our SYN-ACK
                counters["tcp.syn_dup"] += 1
                self._send_syn(now, out, again=True)
                return None
            flags &= ~SYN  # simultaneous open: SYN-ACK in SYN-RECEIVED, the SYN is old
            seq += 1
        if flags & SYN and not flags & RST:  # RFC 5961 §4.2: whatever the sequence number
            # (checked before PAWS, so no timestamp test stands between a SYN and its answer)
            if st is _SYN_RECEIVED and self.passive:  # RFC 9293 §3.10.7.4 fourth: LISTEN
                self._drop(DropReason.NO_CONNECTION)
                return self._go(_I.ABORT, now)
            return self._challenge_ack(now)
        payload = seg.payload
        plen = len(payload)
        if self.ts_ok:  # RFC 7323 §5.3 R1 (PAWS)
            tsval = seg.tsval
            if tsval is None:
                if not flags & RST:
                    return self._drop(DropReason.NO_TIMESTAMP)  # RFC 7323 §3.2
            elif (
                not flags & RST
                and (tsval - self.ts_recent) & MASK >= HALF
                and now - self.ts_recent_age < c.TCP_TS_MAX_IDLE
            ):
                self._ack_now = True
                return self._drop(DropReason.PAWS)
        # first: sequence number acceptable? (RFC 9293 §3.10.7.4)
        wnd = self.rcv_adv - rn
        seglen = plen + (1 if flags & FIN else 0)
        if seglen == 0:
            ok = rn <= seq <= rn + wnd
        else:
            ok = seq < rn + wnd and seq + seglen > rn
            if not ok and wnd == 0 and seq == rn:
                ok = True  # "special allowance ... valid ACKs, URGs, and RSTs": text trimmed
        if not ok:
            if flags & RST:
                return self._drop(DropReason.OUT_OF_WINDOW)
            if st is _TIME_WAIT and flags & FIN:  # a retransmitted FIN: ACK, restart 2MSL
                self._set_main(_T_2MSL, now + self._stack.cfg.time_wait)
            self._ack_now = True
            return self._drop(DropReason.OUT_OF_WINDOW)
        # second: RST (RFC 5961 §3.2)
        if flags & RST:
            if seq != rn:
                return self._challenge_ack(now)
            counters["tcp.rst_rx"] += 1
            if st is _TIME_WAIT:  # RFC 1337: no TIME-WAIT assassination
                return self._drop(DropReason.NO_CONNECTION)
            if st is _SYN_RECEIVED and self.passive:  # back to LISTEN: just forget it
                return self._go(_I.ABORT, now)
            return self._reset("refused" if st is _SYN_RECEIVED else "reset", now)
        # RFC 7323 §4.3: TS.Recent from the segment that the last ACK sent covers
        if (
            self.ts_ok
            and seg.tsval is not None
            and seq <= self.last_ack_sent
            and (seg.tsval - self.ts_recent) & MASK < HALF
        ):
            self.ts_recent = seg.tsval
            self.ts_recent_age = now
        # fifth: ACK
        if not flags & ACK:
            return self._drop(DropReason.NO_CONNECTION)
        una = self.snd_una
        ack = una + ((seg.ack - una + HALF) & MASK) - HALF
        if st is _SYN_RECEIVED:
            if not una < ack <= self.snd_max:
                self._emit_rst(seg.ack, now, out)
                return self._drop(DropReason.BAD_ACK)
            if self.passive and not self._stack.can_establish(self):
                return self._drop(DropReason.BACKLOG_FULL)  # the peer retransmits
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            self._ack_new(ack, seg, now)
            una = ack
            self._go(_I.RCV_ACK_OF_SYN, now)
        if ack > self.snd_max:  # RFC 9293: acks something not yet sent
            if ack <= self._probe_end:  # ... but our zero-window probe's byte
                self.snd_max = ack
            else:
                self._ack_now = True
                return self._drop(DropReason.BAD_ACK)
        if ack < una - self.max_snd_wnd:  # RFC 5961 §5.2: too old
            self._ack_now = True
            return self._drop(DropReason.BAD_ACK)
        self._on_ack(seg, seq, ack, plen, flags, now, out)
        st = self.state
        if st is _CLOSED or st is _TIME_WAIT:
            return None
        # seventh and eighth: text and FIN
        if plen or flags & FIN:
            if seq < rn:  # trim what we already have
                d = rn - seq
                payload = payload[d:]
                seq = rn
            right = rn + wnd
            if seq + len(payload) > right:
                payload = payload[: max(0, right - seq)]
                flags &= ~FIN
                self._ack_now = True
                counters["tcp.rx_beyond_window"] += 1
            self._text(seq, payload, flags, now, out)
        return None

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2/§7: an ACK with our current numbers, rate limited."""
        if self._stack.challenge_ok(now):
            self._stack.counters["tcp.challenge_acks"] += 1
            self._ack_now = True
        else:
            self._stack.counters["tcp.challenge_acks_limited"] += 1
        self._drop(DropReason.CHALLENGE_ACK)

    # --- ACK processing -------------------------------------------------------------------------

    def _on_ack(
        self, seg: TcpSegment, seq: int, ack: int, plen: int, flags: int, now: float,
        out: list[bytes],
    ) -> None:  # fmt: skip
        una = self.snd_una
        wnd = seg.window << self.snd_wscale
        if ack > una:
            self._ack_new(ack, seg, now)
            if self.sack_ok and (seg.sack or self._sb):
                self._sack_update(seg.sack)
            self._after_new_ack(ack - una, now, out)
        else:
            sacked = self._sacked
            if self.sack_ok and seg.sack:
                self._sack_update(seg.sack)
            if ack == una and self.snd_max > una and self.snd_nxt > una and (
                self._sacked > sacked  # RFC 6675 §2: SACKs new data (a Linux receiver's
                # window moves with nearly every ACK, so (e) below would rarely hold)
                or (not plen and not flags & (SYN | FIN) and wnd == self.snd_wnd and wnd)
            ):  # RFC 5681 §2 duplicate ACK (a zero window's answers are not)
                self._dupack(now, out)
        # window update (RFC 9293 §3.10.7.4: SND.WL1 < SEG.SEQ or = with SND.WL2 =< SEG.ACK)
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            self.snd_wnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            if wnd and self._t_kind == _T_PERSIST:
                self._set_main(_T_NONE, None)
                self._persist_n = 0
        if self._fin_queued and self.snd_una > self._snd_end:  # our FIN is acknowledged
            st = self.state
            if st is _FIN_WAIT_1:
                self._go(_I.RCV_ACK_OF_FIN, now)
                if self._app_closed:  # orphaned: do not wait forever for the peer's FIN
                    self._set_main(_T_FW2, now + self._stack.cfg.fin_wait_2_timeout)
                else:
                    self._set_main(_T_NONE, None)
            elif st is _CLOSING or st is _LAST_ACK:
                self._go(_I.RCV_ACK_OF_FIN, now)

    def _ack_new(self, ack: int, seg: TcpSegment, now: float) -> None:
        """SND.UNA advances: free the buffer, take an RTT sample (RFC 6298 §3, RFC 7323 §4)."""
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        start = self._sbuf_start
        if ack > start:
            n = min(ack, self._snd_end) - start
            if n > 0:
                del self._sbuf[:n]
                self._sbuf_start = start + n
        self._retries = 0
        if self.ts_ok:
            if seg.tsecr:
                r = ((self._tsval(now) - seg.tsecr) & MASK) / 1000.0
                if r < 600.0:
                    self._rtt_sample(r)
        elif self._rtt_seq is not None and ack >= self._rtt_seq:
            self._rtt_sample(now - self._rtt_time)
            self._rtt_seq = None
        self._stack.confirm(self, now)

    def _after_new_ack(self, acked: int, now: float, out: list[bytes]) -> None:
        ack = self.snd_una
        cc = self.cc
        restart = True
        if self.in_recovery:
            if ack >= self.recover:  # full ACK: recovery ends (RFC 6582 step 5, RFC 6675)
                self.in_recovery = False
                cc.on_recovery_end(now)
                if not self.sack_ok:  # RFC 6582 §3.2 step 5, full acknowledgment option (1)
                    flight = self.snd_max - ack
                    cc.cwnd = min(cc.ssthresh, max(flight, self.smss) + self.smss)
            elif not self.sack_ok:  # NewReno partial ACK (RFC 6582 §3.2 step 5)
                self._retransmit(ack, now, out)
                cc.cwnd = max(cc.cwnd - acked + (self.smss if acked >= self.smss else 0),
                              self.smss)  # fmt: skip
                restart = not self._partial_seen  # "impatient" variant (RFC 6582 §4.1)
                self._partial_seen = True
            elif self.high_rxt < ack:
                self.high_rxt = ack
        else:
            cc.on_ack(acked, self.snd_max - ack, self.srtt, now)
        self.dupacks = 0
        if restart and self._t_kind == _T_REXMIT:  # RFC 6298 (5.3)
            self._t_main = now + self.rto
        # buffer space: wake a writer once half the buffer is free again
        space = self.send_buffer - len(self._sbuf)
        if space >= self.send_buffer >> 1 and space - acked < self.send_buffer >> 1:
            self._event(_WRITABLE, now)

    def _dupack(self, now: float, out: list[bytes]) -> None:
        self.dupacks += 1
        counters = self._stack.counters
        counters["tcp.dupacks_rx"] += 1
        thresh = self._stack.cfg.dup_thresh
        if self.in_recovery:
            if not self.sack_ok:  # RFC 6582 step 3 (RFC 5681 §3.2 step 4): inflate
                self.cc.cwnd += self.smss
            return
        lost = self.sack_ok and self._sacked > (thresh - 1) * self.smss  # RFC 6675 IsLost
        # RFC 6582 §3.2 step 2: only if the ACK covers more than the last recovery point
        if (self.dupacks >= thresh or lost) and self.snd_una >= self.recover:
            self._enter_recovery(now, out)

    def _enter_recovery(self, now: float, out: list[bytes]) -> None:
        """Fast retransmit (RFC 5681 §3.2, RFC 6582 §3.2 step 2, RFC 6675 §5 (4))."""
        counters = self._stack.counters
        counters["tcp.fast_retransmits"] += 1
        cc = self.cc
        cc.on_congestion(self.snd_max - self.snd_una, now)
        self.in_recovery = True
        self._partial_seen = False
        self.recover = self.snd_max
        una = self.snd_una
        if self.sack_ok:
            self.high_rxt = una
            end = self._sb[0][0] if self._sb else self.snd_max
            n = min(end - una, self._seg_max())
            self._retransmit(una, now, out, n)
            self.high_rxt = una + n
        else:
            self._retransmit(una, now, out)
            cc.cwnd = cc.ssthresh + self._stack.cfg.dup_thresh * self.smss

    # --- SACK scoreboard (RFC 6675 §3, §4) --------------------------------------------------------

    def _sack_update(self, blocks: tuple[tuple[int, int], ...]) -> None:
        una = self.snd_una
        mx = self.snd_max
        sb = self._sb
        while sb and sb[0][1] <= una:
            sb.pop(0)
        if sb and sb[0][0] < una:
            sb[0][0] = una
        for left, right in blocks:
            s = una + ((left - una + HALF) & MASK) - HALF
            e = una + ((right - una + HALF) & MASK) - HALF
            if e <= una or e > mx or s >= e:
                continue  # old (D-SACK, RFC 2883) or bogus: ignored
            if s < una:
                s = una
            self._stack.counters["tcp.sack_blocks_rx"] += 1
            i, j = _overlap(sb, s, e)
            if i == j:
                sb.insert(i, [s, e])
            else:
                sb[i:j] = [[min(s, sb[i][0]), max(e, sb[j - 1][1])]]
        self._sacked = sum(b - a for a, b in sb)

    def _sacked_below(self, limit: int) -> int:
        total = 0
        for s, e in self._sb:
            if s >= limit:
                break
            total += min(e, limit) - s
        return total

    def _lost_boundary(self) -> int:
        """Unsacked bytes below this are lost: more than (DupThresh-1)*SMSS bytes are SACKed
        above them (RFC 6675 §4 IsLost)."""
        limit = (self._stack.cfg.dup_thresh - 1) * self.smss
        acc = 0
        for s, e in reversed(self._sb):
            acc += e - s
            if acc > limit:
                return s
        return self.snd_una

    def _pipe(self, lost_boundary: int) -> int:
        """RFC 6675 §4 SetPipe over ranges: unsacked bytes not lost, plus retransmitted ones."""
        una = self.snd_una
        unsacked = self.snd_max - una - self._sacked
        lost = max(0, lost_boundary - una - self._sacked_below(lost_boundary))
        hr = self.high_rxt
        rexmit = max(0, hr - una - self._sacked_below(hr)) if hr > una else 0
        return unsacked - lost + rexmit

    def _next_hole(self, lost_boundary: int) -> tuple[int, int] | None:
        """RFC 6675 §4 NextSeg rule (1): the first unsacked, lost byte above HighRxt."""
        cur = max(self.high_rxt, self.snd_una)
        for s, e in self._sb:
            if cur < s:
                return (cur, min(s, lost_boundary)) if cur < lost_boundary else None
            if cur < e:
                cur = e
        return None

    # --- text and FIN ---------------------------------------------------------------------------

    def _text(
        self, seq: int, payload: memoryview, flags: int, now: float, out: list[bytes]
    ) -> None:
        st = self.state
        n = len(payload)
        if n:
            if st not in _RECV_TEXT:
                self._stack.counters["tcp.rx_text_ignored"] += 1  # after the peer's FIN
            elif self._app_closed:  # RFC 1122 §4.2.2.13: data after close -> RST
                self._stack.counters["tcp.rst_data_after_close"] += 1
                self._emit_rst(self.snd_max, now, out)
                self.error = "aborted"
                self._go(_I.ABORT, now)
                return
            elif seq == self.rcv_nxt:
                self.rbuf += payload
                self.rcv_nxt = seq + n
                if self._ooo:
                    self._ooo_drain()
                    self._ack_now = True  # RFC 5681 §4.2: the segment filled a gap
                else:
                    self._segs_unacked += 1
                    delay = self._stack.cfg.delayed_ack
                    if self._segs_unacked >= 2 or not delay:  # RFC 9293 §3.8.6.3 MUST-58
                        # In a receive batch one ACK at its end (see there), unless half
                        # the buffer is unacknowledged: the sender must not run dry.
                        if self._stack.batching and \
                                self.rcv_nxt - self.last_ack_sent < self.recv_buffer >> 1:
                            self._stack.ack_at_batch_end(self)
                        else:
                            self._ack_now = True
                    elif self._t_ack is None:
                        self._t_ack = now + delay
                self._event(_DATA, now)
            else:
                self._ooo_insert(seq, payload)
                self._ack_now = True  # RFC 5681 §4.2: out of order -> immediate (dup) ACK
        if flags & FIN:
            fin = seq + n
            if fin == self.rcv_nxt:
                self._rcv_fin(now)
            elif fin > self.rcv_nxt:
                self._ooo_fin = fin
                self._ack_now = True
        elif self._ooo_fin is not None and self._ooo_fin == self.rcv_nxt:
            self._rcv_fin(now)

    def _rcv_fin(self, now: float) -> None:
        self._ooo_fin = None
        st = self.state
        if st is _SYN_RECEIVED or st is _SYN_SENT:
            return
        self.rcv_nxt += 1
        self._ack_now = True
        if not self.eof:
            self.eof = True
            self._event(_EOF, now)
        if st is _ESTABLISHED or st is _FIN_WAIT_1 or st is _FIN_WAIT_2:
            self._go(_I.RCV_FIN, now)

    def _ooo_insert(self, s: int, data: memoryview) -> None:
        e = s + len(data)
        ooo = self._ooo
        recent = self._sack_recent
        if s in recent:
            recent.remove(s)
        recent.insert(0, s)
        del recent[4:]
        counters = self._stack.counters
        counters["tcp.rx_ooo"] += 1
        if ooo and ooo[-1][1] == s:  # the usual case: extends the last block
            last = ooo[-1]
            last[2] += data
            last[1] = e
            return
        n = len(ooo)
        i, j = _overlap(ooo, s, e)
        if i == j:
            if n >= self._stack.cfg.ooo_max_segments:
                recent.pop(0)
                self._drop(DropReason.OOO_FULL)
                return
            ooo.insert(i, [s, e, bytearray(data)])
            return
        first, last = ooo[i], ooo[j - 1]
        buf = bytearray()
        if first[0] < s:
            buf += first[2][: s - first[0]]
        buf += data
        if last[1] > e:
            buf += last[2][e - last[0] :]
        ooo[i:j] = [[min(s, first[0]), max(e, last[1]), buf]]

    def _ooo_drain(self) -> None:
        ooo = self._ooo
        rn = self.rcv_nxt
        while ooo and ooo[0][0] <= rn:
            s, e, buf = ooo.pop(0)
            if e > rn:
                self.rbuf += memoryview(buf)[rn - s :]
                rn = e
        self.rcv_nxt = rn

    def _sack_blocks(self) -> list[tuple[int, int]]:
        """RFC 2018 §4: the block with the newest segment first, then recent ones."""
        limit = 3 if self.ts_ok else 4
        blocks: list[tuple[int, int]] = []
        for s in self._sack_recent:
            for b in self._ooo:
                if b[0] <= s < b[1]:
                    blk = (b[0] & MASK, b[1] & MASK)
                    if blk not in blocks:
                        blocks.append(blk)
                    break
            if len(blocks) >= limit:
                return blocks
        # blocks not among the recent ones (a reversed copy: mypyc fails on reversed() here)
        for b in self._ooo[::-1]:
            if len(blocks) >= limit:
                break
            blk = (b[0] & MASK, b[1] & MASK)
            if blk not in blocks:
                blocks.append(blk)
        return blocks

    # --- sending --------------------------------------------------------------------------------

    def _seg_max(self) -> int:
        """Payload bytes a segment may carry now (RFC 9293 §3.7.1: MSS minus options)."""
        n = self.smss
        if self._ooo and self.sack_ok:
            k = min(len(self._ooo), 3 if self.ts_ok else 4)
            n -= 4 + 8 * k
        return n

    def _push(self, now: float, out: list[bytes]) -> None:
        """Send what the windows allow, then keep the retransmit/persist timer right."""
        cc = self.cc
        if self.in_recovery and self.sack_ok:
            self._sack_send(now, out)
        else:
            lt = self.dupacks if self.dupacks <= 2 and not self.in_recovery else 0
            extra = lt * self.smss if lt and self._stack.cfg.limited_transmit else 0  # RFC 3042
            while self._send_one(now, out, self.snd_una + cc.cwnd + extra):
                pass
        self._arm_timers(now)

    def _arm_timers(self, now: float) -> None:
        """RFC 6298 (5.1)/(5.2) and the persist timer (RFC 9293 §3.8.6.1): retransmission
        while data is in flight, persist while data waits for a window, else neither."""
        kind = self._t_kind
        if self.snd_nxt > self.snd_una or (self.snd_max > self.snd_una and self.snd_wnd):
            if kind != _T_REXMIT:
                self._set_main(_T_REXMIT, now + self.rto)
        elif self.snd_nxt < self._snd_end and self.state in _CAN_SEND:
            if kind != _T_PERSIST:
                self._set_main(_T_PERSIST, now + self._persist_interval())
        elif kind in (_T_REXMIT, _T_PERSIST):
            self._set_main(_T_NONE, None)

    def _persist_interval(self) -> float:
        return min(max(self.rto, 0.2) * (1 << min(self._persist_n, 16)),
                   self._stack.cfg.rto_max)  # fmt: skip

    def _send_one(
        self, now: float, out: list[bytes], cwnd_edge: int, force: bool = False
    ) -> bool:
        """One segment of new (or, after a timeout, go-back-N) data from SND.NXT; ``force``
        skips silly-window avoidance and Nagle (the override timeout)."""
        nxt = self.snd_nxt
        end = self._snd_end
        left = end - nxt
        if left <= 0:
            if self._fin_queued and nxt == end:  # the FIN alone (it needs no window)
                self._emit(nxt, ACK | FIN, b"", now, out)
                self.snd_nxt = nxt + 1
                if nxt + 1 > self.snd_max:
                    self.snd_max = nxt + 1
                else:
                    self._stack.counters["tcp.retransmits"] += 1
                return True
            return False
        cap = left
        if nxt < self.snd_max and self._sb:  # go-back-N: skip what the receiver SACKed since
            for s, e in self._sb:  # the timeout (RFC 6675 §5.1; never resend SACKed data)
                if s <= nxt < e:
                    self.snd_nxt = e
                    return self._send_one(now, out, cwnd_edge, force)
                if nxt < s:
                    cap = min(left, s - nxt)  # stop short of the next SACKed block
                    break
        edge = self.snd_una + self.snd_wnd
        if cwnd_edge < edge:
            edge = cwnd_edge
        seg_max = self._seg_max()
        n = edge - nxt
        stack = self._stack
        if stack.lso_max and n > seg_max and cap > seg_max and nxt >= self.snd_max \
                and self._mss_base == stack.link_mss:
            # Task offload: one large send of whole segments (or the rest of the data), which
            # the NIC cuts at seg_max — the size it derives from the link MTU and this
            # segment's headers, so only while our MSS is the link's (ndisemu/offload.py).
            big = min(n, cap, stack.lso_max)
            if big < left:
                big -= big % seg_max
            if big > seg_max and -(-big // seg_max) >= stack.lso_min_segments:
                return self._send_large(nxt, big, left, now, out)
        if n > seg_max:
            n = seg_max
        if n > cap:
            n = cap
        if n <= 0:
            return False
        if n < seg_max and nxt >= self.snd_max and not force:  # a small new segment
            if n < left:  # limited by a window: RFC 9293 §3.8.6.2.1 (Fs = 1/2)
                if n < self.max_snd_wnd >> 1:
                    return False
            elif not (self.nodelay or nxt == self.snd_una or self._fin_queued):
                return False  # Nagle (RFC 9293 §3.7.4)
        flags = ACK
        if n == left:
            flags = ACK | PSH | FIN if self._fin_queued else ACK | PSH
        start = nxt - self._sbuf_start
        self._emit(nxt, flags, self._sbuf[start : start + n], now, out)
        nxt += n + 1 if flags & FIN else n
        self.snd_nxt = nxt
        if nxt > self.snd_max:
            if self._rtt_seq is None and not self.ts_ok:
                self._rtt_seq = nxt
                self._rtt_time = now
            self.snd_max = nxt
        else:
            self._stack.counters["tcp.retransmits"] += 1
        return True

    def _send_large(self, nxt: int, n: int, left: int, now: float, out: list[bytes]) -> bool:
        """``n`` bytes of new data from SND.NXT as one large send (see :meth:`_send_one`)."""
        flags = ACK
        if n == left:
            flags = ACK | PSH | FIN if self._fin_queued else ACK | PSH
        start = nxt - self._sbuf_start
        self._emit(nxt, flags, self._sbuf[start : start + n], now, out, large=True)
        nxt += n + 1 if flags & FIN else n
        self.snd_nxt = nxt
        if self._rtt_seq is None and not self.ts_ok:
            self._rtt_seq = nxt
            self._rtt_time = now
        self.snd_max = nxt
        return True

    def _sack_send(self, now: float, out: list[bytes]) -> None:
        """RFC 6675 §5 (C): while cwnd - pipe >= 1 SMSS, send NextSeg()."""
        smss = self.smss
        lb = self._lost_boundary()
        pipe = self._pipe(lb)
        cwnd = self.cc.cwnd
        seg_max = self._seg_max()
        while cwnd - pipe >= smss:
            hole = self._next_hole(lb)
            if hole is not None:  # rule (1)
                s, e = hole
                n = min(e - s, seg_max)
                self._retransmit(s, now, out, n)
                self.high_rxt = s + n
                pipe += n
                continue
            before = self.snd_nxt  # rule (2): new data
            if not self._send_one(now, out, before + cwnd - pipe):
                break
            pipe += max(1, self.snd_nxt - before)

    def _retransmit(self, seq: int, now: float, out: list[bytes], n: int | None = None) -> None:
        """Send [seq, seq+n) again (n defaults to one segment), with the FIN if it ends there."""
        end = self._snd_end
        sent = min(self.snd_max, end)  # only what went before: never new bytes here
        if n is None or n > sent - seq:
            n = min(self._seg_max(), sent - seq)
        if n < 0:
            n = 0
        flags = ACK
        if self._fin_queued and seq + n == end and self.snd_max > end:
            flags |= FIN
        elif not n:
            return
        start = seq - self._sbuf_start
        self._emit(seq, flags | (PSH if seq + n == end else 0),
                   self._sbuf[start : start + n], now, out)  # fmt: skip
        self._rtt_seq = None  # Karn's rule (RFC 6298 §3)
        self._stack.counters["tcp.retransmits"] += 1

    def _send_syn(self, now: float, out: list[bytes], again: bool = False) -> None:
        """SYN or SYN-ACK with our options (RFC 9293 §3.7.1, RFC 7323, RFC 2018)."""
        cfg = self._stack.cfg
        synack = self.state is _SYN_RECEIVED
        ts = None
        if cfg.timestamps and (not synack or self.ts_ok):
            ts = (self._tsval(now), self.ts_recent if synack else 0)
        opts = options(
            mss=self.our_mss, wscale=self.want_wscale,
            sack_permitted=cfg.sack and (not synack or self.sack_ok), ts=ts,
        )  # fmt: skip
        self._emit(self.iss, SYN | ACK if synack else SYN, b"", now, out, opts)
        self.snd_nxt = self.iss + 1
        if self.snd_max < self.snd_nxt:
            self.snd_max = self.snd_nxt
        if again:
            self._rtt_seq = None
        elif self._rtt_seq is None and not cfg.timestamps:
            self._rtt_seq = self.iss + 1
            self._rtt_time = now
        if self._t_kind != _T_REXMIT:
            self._set_main(_T_REXMIT, now + self.rto)

    def _window_field(self, syn: bool) -> int:
        """The window to offer (RFC 9293 §3.8.6.2.2 receiver SWS avoidance; never shrink,
        RFC 7323 §2.4), scaled unless on a SYN (RFC 7323 §2.2)."""
        rn = self.rcv_nxt
        free = self.recv_buffer - len(self.rbuf)
        cur = self.rcv_adv - rn
        if cur < 0:
            cur = 0
        wnd = free if free - cur >= min(self.recv_buffer >> 1, self.our_mss) else cur
        if syn:
            field = min(wnd, 0xFFFF)
            shift = 0
        else:
            shift = self.rcv_wscale
            field = wnd >> shift
            if field > 0xFFFF:
                field = 0xFFFF
            if (field << shift) < cur:  # rounding must not move the right edge left
                field = min(0xFFFF, (cur + (1 << shift) - 1) >> shift)
        adv = rn + (field << shift)
        if adv > self.rcv_adv:
            self.rcv_adv = adv
        return field

    def _maybe_window_update(self) -> None:
        """After recv(): when the window we could offer is at least twice the one offered and
        larger by an MSS (Linux's rule, within §3.8.6.2.2), a window update is due — scheduled
        for "now" through the timer, so the driver sees it in ``next_deadline``."""
        cur = max(self.rcv_adv - self.rcv_nxt, 0)
        free = self.recv_buffer - len(self.rbuf)
        if (
            free >= 2 * cur
            and free - cur >= min(self.recv_buffer >> 1, self.our_mss)
            and (self._t_ack is None or self._t_ack > self._now)
        ):
            self._t_ack = self._now
            self._sched()

    def _emit(
        self, seq: int, flags: int, payload: bytes | bytearray, now: float, out: list[bytes],
        opts: bytes | None = None, large: bool = False,
    ) -> None:  # fmt: skip
        if opts is None:
            opts = ts_option(self._tsval(now), self.ts_recent) if self.ts_ok else b""
            if self._ooo and self.sack_ok:
                blocks = self._sack_blocks()
                opts += options(sack=blocks)
                self._stack.counters["tcp.sack_blocks_tx"] += len(blocks)
        ack = 0
        if flags & ACK:
            ack = self.rcv_nxt & MASK
            self.last_ack_sent = self.rcv_nxt
            self._t_ack = None
            self._segs_unacked = 0
            self._ack_now = False
        stack = self._stack
        seg = stack.emit(self._psum, self.local_port, self.remote_port, seq & MASK, ack, flags,
                         self._window_field(bool(flags & SYN)), opts, payload)  # fmt: skip
        out += stack.output_large(self, seg, now) if large else stack.output(self, seg, now)

    def _emit_rst(self, seq: int, now: float, out: list[bytes]) -> None:
        """<SEQ=seq><CTL=RST> (``seq`` internal or a wire value: only its low 32 bits go)."""
        seg = self._stack.emit(self._psum, self.local_port, self.remote_port, seq & MASK, 0,
                               RST, 0, b"", b"")  # fmt: skip
        self._stack.counters["tcp.rst_tx"] += 1
        out += self._stack.output(self, seg, now)

    def _tsval(self, now: float) -> int:
        return (int(now * 1000.0) + self._ts_offset) & MASK  # 1 ms clock (RFC 7323 §5.4)

    # --- RTT and timers -------------------------------------------------------------------------

    def _rtt_sample(self, r: float) -> None:
        """RFC 6298 §2.2/§2.3 (G = 1 ms, the timestamp clock)."""
        if self.srtt is None:
            self.srtt = r
            self.rttvar = r / 2.0
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        cfg = self._stack.cfg
        rto = self.srtt + max(0.001, 4.0 * self.rttvar)
        self.rto = min(max(rto, cfg.rto_min), cfg.rto_max)  # §2.4, §2.5

    def _set_main(self, kind: int, when: float | None) -> None:
        self._t_kind = kind
        self._t_main = when

    def _sched(self) -> None:
        """Keep the one host timer of this connection at its earliest deadline. A deadline that
        moved later is left armed: the early wake-up finds nothing due and re-arms (cheaper
        than a heap push per ACK)."""
        a = self._t_ack
        m = self._t_main
        when = a if m is None or (a is not None and a < m) else m
        armed = self._armed
        if when is None:
            if armed is not None:
                self._stack.timers.cancel(("tcp", self))
                self._armed = None
        elif armed is None or when < armed:
            self._stack.timers.set(("tcp", self), when)
            self._armed = when

    def on_timer(self, now: float) -> list[bytes]:
        self._armed = None
        self._now = now
        out: list[bytes] = []
        if self._t_ack is not None and self._t_ack <= now:
            self._t_ack = None
            if self.state is not _CLOSED:
                self._stack.counters["tcp.delayed_acks"] += 1
                self._emit(self.snd_max, ACK, b"", now, out)
        if self._t_main is not None and self._t_main <= now:
            kind = self._t_kind
            self._set_main(_T_NONE, None)
            if kind == _T_REXMIT:
                self._on_rexmit(now, out)
            elif kind == _T_PERSIST:
                self._on_persist(now, out)
            elif kind == _T_2MSL:
                self._go(_I.TIMEOUT_2MSL, now)
            elif kind == _T_FW2:
                self._stack.counters["tcp.fin_wait_2_timeouts"] += 1
                self._go(_I.GIVE_UP, now)
        if self.state is not _CLOSED:
            self._sched()
        return out

    def _on_rexmit(self, now: float, out: list[bytes]) -> None:
        """RFC 6298 §5 (5.4)-(5.7); RFC 5681 §3.1 loss window; RFC 6675 §5.1."""
        st = self.state
        cfg = self._stack.cfg
        counters = self._stack.counters
        if st not in (_SYN_SENT, _SYN_RECEIVED) and self.snd_max <= self.snd_una:
            return  # nothing outstanding any more
        self._retries += 1
        self.rto = min(self.rto * 2.0, cfg.rto_max)  # (5.5)
        self._rtt_seq = None  # Karn
        if st is _SYN_SENT or st is _SYN_RECEIVED:
            limit = cfg.syn_retries if st is _SYN_SENT else cfg.synack_retries
            if self._retries > limit:
                counters["tcp.handshake_timeouts"] += 1
                if st is _SYN_RECEIVED and self.passive:
                    self._go(_I.ABORT, now)  # an embryonic connection just goes
                else:
                    self._reset("timeout", now)
                return
            counters["tcp.syn_retransmits"] += 1
            self._syn_lost = True
            self._send_syn(now, out, again=True)
            self._set_main(_T_REXMIT, now + self.rto)
            return
        if self._retries > cfg.max_retries:  # RFC 9293 §3.8.3 R2
            counters["tcp.timeouts"] += 1
            self._reset("timeout", now)
            return
        counters["tcp.rto"] += 1
        cc = self.cc
        if self._retries == 1:  # RFC 5681 §3.1: ssthresh only on the first timeout
            cc.on_rto(self.snd_max - self.snd_una, now)
        else:
            cc.cwnd = self.smss
        self.in_recovery = False
        self.recover = self.snd_max  # RFC 6582 §3.2 step 1 after a timeout
        self.dupacks = 0
        self._sb.clear()  # RFC 6675 §5.1 / RFC 2018 §8: the receiver may have reneged
        self._sacked = 0
        self.high_rxt = self.snd_una
        self.snd_nxt = self.snd_una  # go-back-N
        if self.snd_wnd == 0 and self.snd_una < self._snd_end:
            self._set_main(_T_PERSIST, now + self._persist_interval())
            return
        self._push(now, out)
        if self._t_kind != _T_REXMIT:
            self._set_main(_T_REXMIT, now + self.rto)  # (5.6)

    def _on_persist(self, now: float, out: list[bytes]) -> None:
        """Zero-window probe: one byte of new data beyond the window (RFC 9293 §3.8.6.1)."""
        nxt = self.snd_nxt
        self._persist_n += 1
        if self._app_closed and self._persist_n > self._stack.cfg.max_retries:
            self._stack.counters["tcp.orphan_persist_timeouts"] += 1  # RFC 6429 allows it
            self._reset("timeout", now)
            return
        if nxt < self._snd_end:
            if self.snd_wnd == 0:
                self._stack.counters["tcp.persist_probes"] += 1
                start = nxt - self._sbuf_start
                self._emit(nxt, ACK, self._sbuf[start : start + 1], now, out)
                self._probe_end = nxt + 1  # SND.MAX stays: pure ACKs keep an acceptable SEQ
            else:  # a small window held back by SWS avoidance: the override timeout
                self._stack.counters["tcp.sws_override"] += 1
                self._send_one(now, out, nxt + self.snd_wnd, force=True)  # §3.8.6.2.1
        self._arm_timers(now)

    # --- state changes --------------------------------------------------------------------------

    def reusable_by(self, seg: TcpSegment) -> bool:
        """A SYN to this TIME-WAIT connection's 4-tuple opens a new incarnation (RFC 9293
        §3.6.1's allowance, RFC 6191), as Linux decides it (tcp_timewait_state_process): not
        older than TS.Recent (PAWS), and either its sequence number is above RCV.NXT or its
        timestamp is newer. A challenge ACK instead would leave the peer's connect retrying
        until 2*MSL ends."""
        if self.state is not _TIME_WAIT:
            return False
        ts = seg.tsval if self.ts_ok else None
        if ts is not None and 0 < (self.ts_recent - ts) & MASK < HALF:
            return False  # PAWS: older than what this incarnation saw
        return (0 < (seg.seq - self.rcv_nxt) & MASK < HALF
                or (ts is not None and 0 < (ts - self.ts_recent) & MASK < HALF))

    def end_time_wait(self, now: float) -> None:
        """Leave TIME-WAIT at once for a new incarnation (`reusable_by`)."""
        self._go(_I.ABORT, now)

    def _go(self, inp: TcpInput, now: float) -> None:
        try:
            nxt = TRANSITIONS[self.state][inp]
        except KeyError:
            raise IllegalTransition(f"TCP: {inp.value} in {self.state.value}") from None
        prev = self.state
        self.state = nxt
        counters = self._stack.counters
        if nxt is _ESTABLISHED:
            self._established(prev, now)
        elif nxt is _TIME_WAIT:
            self._t_ack = None
            self._set_main(_T_2MSL, now + self._stack.cfg.time_wait)
            counters["tcp.time_wait"] += 1
        elif nxt is _CLOSED:
            self._closed(now)

    def _established(self, prev: TcpState, now: float) -> None:
        self._stack.counters["tcp.established"] += 1
        if self._syn_lost and self.srtt is None:
            self.rto = max(self.rto, c.TCP_RTO_AFTER_SYN_LOSS)  # RFC 6298 §5.7
        elif self.srtt is None:
            self.rto = self._stack.cfg.rto_initial
        self._retries = 0
        if self._t_kind == _T_REXMIT and self.snd_max <= self.snd_una:
            self._set_main(_T_NONE, None)
        if self.passive:
            self._stack.established(self, now)
        self._event(TcpEventKind.CONNECTED, now)
        if self._deferred_close:
            self._deferred_close = False
            self._fin_queued = True
            self._go(_I.CLOSE, now)

    def _reset(self, reason: str, now: float) -> None:
        """The connection is refused/reset/timed out: flush everything (RFC 9293 §3.10.7.4)."""
        self.error = reason
        self._stack.counters["tcp.resets." + reason] += 1
        self.rbuf.clear()
        self._sbuf.clear()
        self._ooo.clear()
        self._event(TcpEventKind.RESET, now, reason)
        self._go(_I.GIVE_UP if reason == "timeout" else _I.RCV_RST, now)

    def _closed(self, now: float) -> None:
        self._t_ack = None
        self._set_main(_T_NONE, None)
        if self._armed is not None:
            self._stack.timers.cancel(("tcp", self))
            self._armed = None
        self._event(TcpEventKind.CLOSED, now)
        self._stack.detach(self)

    def _check_alive(self) -> None:
        if self.error is not None:
            raise ConnectionReset(self.error)

    def _event(self, kind: TcpEventKind, now: float, detail: str = "") -> None:
        if kind is _DATA or kind is _WRITABLE:
            if kind in self._pending:
                return
            self._pending.add(kind)
        self._events.append(TcpEvent(kind, now, detail))
        if self._visible:
            self._stack.notify(self)

    def _done(self, out: list[bytes]) -> list[bytes]:
        """End of an application call: arm the timer, count the frames as sent."""
        if self.state is not _CLOSED:
            self._sched()
        if out:
            self._stack.counters["tx"] += len(out)
        return out
