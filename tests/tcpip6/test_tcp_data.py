"""TCP data transfer: both directions with half-close, an echo service between two hosts,
Nagle, delayed ACKs, window scaling, zero windows and persist probes, buffer bounds."""

# mypy: disable-error-code="comparison-overlap"
# (states change behind method calls; mypy keeps the narrowing of an earlier assert)
from __future__ import annotations

import itertools
import random

import pytest

from tcpip6.errors import ConnectionClosed, WouldBlock
from tcpip6.stack.host import Ipv6Host
from tcpip6.stack.tcp import TcpConnection
from tcpip6.stack.tcpconn import TcpState
from tcpip6.wire.tcp import ACK, FIN, PSH, TcpSegment
from tests.tcpip6.tcp_helpers import Pair, data_segments, forge, lan, parse_tcp

S = TcpState


def test_data_both_ways_with_half_close() -> None:
    p = Pair()
    c, s, _ = p.connect()
    c.pop_events()
    s.pop_events()
    up = random.Random(1).randbytes(50_000)
    assert p.transfer(c, 0, s, up) == up  # client writes, then shuts its write side
    p.run_for(0.1)  # the ACK of the FIN
    assert c.state is S.FIN_WAIT_2 and s.state is S.CLOSE_WAIT
    assert s.recv() == b"" and s.recv() == b""  # EOF stays EOF
    assert [e.kind.value for e in s.pop_events()] == ["data", "eof"]
    # the half-closed client still receives
    down = random.Random(2).randbytes(30_000)
    assert p.transfer(s, 1, c, down) == down
    assert s.state is S.LAST_ACK or s.state is S.CLOSED
    p.run_for(1.0)
    assert s.state is S.CLOSED and c.state is S.TIME_WAIT
    assert [e.kind.value for e in s.pop_events()][-1] == "closed"
    with pytest.raises(ConnectionClosed):
        c.send(b"late", p.now)
    fins = [(i, seg) for _, i, seg in p.segments() if seg.flags & FIN]
    assert [i for i, _ in fins] == [0, 1]  # one FIN each way, none retransmitted


def echo_app(lst_host: int, conns: list[TcpConnection]):  # type: ignore[no-untyped-def]
    """A test-level echo service: echo what arrives, half-close after the peer's EOF."""
    pending: dict[TcpConnection, bytearray] = {}

    def app(p: Pair) -> None:
        for conn in conns:
            buf = pending.setdefault(conn, bytearray())
            while conn.readable and (chunk := conn.recv(1 << 16)):
                buf += chunk
            n = min(len(buf), conn.send_space)
            if n:
                p.send(lst_host, conn.send(bytes(buf[:n]), p.now))
                del buf[:n]
            if conn.eof and not buf and conn.state is S.CLOSE_WAIT:
                p.send(lst_host, conn.close(p.now))

    return app


def test_echo_over_two_hosts() -> None:
    p = Pair(delay=0.002)
    c, s, _ = p.connect(port=7)
    data = random.Random(3).randbytes(400_000)
    got = bytearray()
    view = memoryview(data)
    pos = 0
    echo = echo_app(1, [s])

    def app(q: Pair) -> None:
        nonlocal pos
        echo(q)
        if pos < len(data) and c.send_space:
            n = min(c.send_space, len(data) - pos)
            q.send(0, c.send(view[pos : pos + n], q.now))
            pos += n
            if pos == len(data):
                q.send(0, c.shutdown_write(q.now))
        while c.readable and (chunk := c.recv()):
            got.extend(chunk)

    assert p.run_for(60.0, app=app, stop=lambda: c.eof and not c.rbuf)
    assert bytes(got) == data
    p.run_for(1.0)
    assert s.state is S.CLOSED and c.state is S.TIME_WAIT


def small_writes(p: Pair, c: TcpConnection, n: int, gap: float) -> None:
    for i in range(n):
        p.send(0, c.send(bytes([65 + i]), p.now))
        p.run_for(gap)


def test_nagle_coalesces_small_writes() -> None:
    p = Pair(delay=0.01)
    c, s, _ = p.connect()
    p.log.clear()
    small_writes(p, c, 10, 0.001)  # ten 1-byte writes within one RTT (20 ms)
    p.run_for(1.0)
    sizes = [len(seg.payload) for _, seg in data_segments(p.segments(sender=0))]
    assert sizes[0] == 1 and sum(sizes) == 10 and len(sizes) <= 3  # RFC 9293 §3.7.4
    assert s.recv() == b"ABCDEFGHIJ"


def test_nodelay_sends_every_write() -> None:
    p = Pair(delay=0.01, tcp_a=lan(nodelay=True))
    c, s, _ = p.connect()
    assert c.nodelay
    p.log.clear()
    small_writes(p, c, 10, 0.001)
    p.run_for(1.0)
    sizes = [len(seg.payload) for _, seg in data_segments(p.segments(sender=0))]
    assert sizes == [1] * 10
    assert s.recv() == b"ABCDEFGHIJ"
    c.nodelay = False  # TCP_NODELAY can be switched per connection
    small_writes(p, c, 5, 0.001)
    p.run_for(1.0)
    assert len(data_segments(p.segments(sender=0))) <= 10 + 3


def ack_delays(p: Pair) -> list[float]:
    """For each data segment B received: time until B's next ACK covering it left."""
    out = []
    acks = [(t, seg.ack) for t, _, seg in p.segments(sender=1) if seg.flags & ACK]
    for t, seg in data_segments(p.segments(sender=0)):
        arrive = t + p.delay
        end = (seg.seq + len(seg.payload)) & 0xFFFFFFFF
        covered = [ta for ta, ack in acks if ta >= arrive and (ack - end) & 0xFFFFFFFF < 1 << 31]
        out.append(min(covered) - arrive)
    return out


def test_delayed_ack_bound() -> None:
    p = Pair(delay=0.005)
    c, _, _ = p.connect()
    p.log.clear()
    p.send(0, c.send(b"one small segment", p.now))
    p.run_for(2.0)
    (delay,) = ack_delays(p)
    assert delay == pytest.approx(0.2)  # held, but no longer than 200 ms
    assert p.b.counters["tcp.delayed_acks"] == 1
    # two full-sized segments: acknowledged at once (RFC 9293 §3.8.6.3 MUST-58)
    p.log.clear()
    p.send(0, c.send(bytes(2 * c.smss), p.now))
    p.run_for(2.0)
    assert ack_delays(p) == [pytest.approx(0.0), pytest.approx(0.0)]
    assert p.b.counters["tcp.delayed_acks"] == 1


def test_no_delayed_ack_when_configured_off() -> None:
    p = Pair(delay=0.005, tcp_b=lan(delayed_ack=0.0))
    c, _, _ = p.connect()
    p.log.clear()
    p.send(0, c.send(b"x", p.now))
    p.run_for(1.0)
    assert ack_delays(p) == [pytest.approx(0.0)]


def test_bulk_acks_every_second_segment() -> None:
    p = Pair(delay=0.002)
    c, s, _ = p.connect()
    p.log.clear()
    data = random.Random(4).randbytes(1_000_000)
    assert p.transfer(c, 0, s, data) == data
    assert max(ack_delays(p)) <= 0.2 + 1e-9
    data_n = len(data_segments(p.segments(sender=0)))
    ack_n = len(p.segments(sender=1))
    assert data_n / 2 - 5 <= ack_n <= data_n / 2 + 60  # about one ACK per two segments


@pytest.mark.parametrize("scaling", [True, False])
def test_window_scaling_large_transfer(scaling: bool) -> None:
    cfg = lan(recv_buffer=4 << 20, send_buffer=4 << 20, window_scaling=scaling)
    p = Pair(tcp_cfg=cfg, delay=0.01)  # 20 ms RTT: the window limits the rate
    c, s, _ = p.connect()
    syn = p.segments(sender=0)[0][2]
    assert syn.wscale == (7 if scaling else None)  # 4 MiB >> 7 fits 16 bits
    data = random.Random(5).randbytes(8_000_000)
    inflight = 0

    def watch(_: Pair) -> None:
        nonlocal inflight
        inflight = max(inflight, c.snd_nxt - c.snd_una)

    t0 = p.now
    got = bytearray()
    view = memoryview(data)
    pos = 0

    def app(q: Pair) -> None:
        nonlocal pos
        watch(q)
        while pos < len(data) and c.send_space:
            n = min(c.send_space, len(data) - pos)
            q.send(0, c.send(view[pos : pos + n], q.now))
            pos += n
        while s.readable:
            got.extend(s.recv(1 << 22))

    assert p.run_for(600.0, app=app, stop=lambda: len(got) == len(data))
    assert bytes(got) == data
    elapsed = p.now - t0
    if scaling:
        assert inflight > 1_000_000  # far beyond 64 KiB
        assert max(seg.window for _, _, seg in p.segments(sender=1)[1:]) << 7 > 65535
        assert elapsed < 2.0
    else:
        assert inflight <= 65535
        assert elapsed > 8_000_000 / 65535 * 0.02 * 0.9  # one 64 KiB window per RTT


def test_zero_window_and_persist_probes() -> None:
    p = Pair(tcp_b=lan(recv_buffer=16384), tcp_a=lan(max_retries=3))
    c, s, _ = p.connect()
    data = random.Random(6).randbytes(60_000)
    p.send(0, c.send(data, p.now))
    p.run_for(30.0)  # the receiving application does not read
    assert len(s.rbuf) == 16384 and s.rcv_adv == s.rcv_nxt  # the window is closed
    assert c.snd_wnd == 0 and c.state is S.ESTABLISHED  # no give-up (RFC 1122 §4.2.2.17)
    full_at = max(t for t, seg in data_segments(p.segments(sender=0)) if len(seg.payload) > 1)
    probes = [t for t, seg in data_segments(p.segments(sender=0))
              if len(seg.payload) == 1 and t > full_at]  # fmt: skip
    assert len(probes) >= 5 > 3  # more probes than max_retries: probing never gives up
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert all(g2 == pytest.approx(2 * g1) for g1, g2 in itertools.pairwise(gaps))
    assert p.a.counters["tcp.persist_probes"] == len(probes)
    # each probe was answered by an ACK still offering nothing
    assert all(seg.window == 0 for t, _, seg in p.segments(sender=1) if t > probes[0])
    # the application reads: a window update opens the window, the rest flows
    got = bytearray(s.recv(1 << 20))
    deadline = p.b.next_deadline()
    assert deadline is not None and deadline <= p.now  # the update is due at once
    got += p.transfer(c, 0, s, b"", until=60.0, close=True)
    assert bytes(got) == data


def test_send_buffer_bound_and_writable_event() -> None:
    p = Pair(tcp_a=lan(send_buffer=8192), delay=0.01)
    c, s, _ = p.connect()
    c.pop_events()
    with pytest.raises(WouldBlock):
        c.send(bytes(10_000), p.now)
    assert c.unsent == 0  # all or nothing
    assert c.send_space == 8192
    p.send(0, c.send(bytes(8192), p.now))
    assert c.send_space == 0 and not c.writable
    with pytest.raises(WouldBlock):
        c.send(b"x", p.now)
    p.run_for(1.0)
    assert c.send_space == 8192
    assert [e.kind.value for e in c.pop_events()] == ["writable"]
    assert c in p.a.pop_tcp_ready()
    assert len(s.recv(1 << 20)) == 8192
    with pytest.raises(WouldBlock):
        s.recv()


def test_data_sent_before_the_handshake_completes_is_queued() -> None:
    p = Pair(delay=0.01)
    lst = p.b.tcp_listen(99)
    c, frames = p.a.tcp_connect((p.b_addr, 99), p.now)
    p.send(0, frames)
    assert c.send(b"early bird", p.now) == []  # SYN-SENT: buffered
    assert c.shutdown_write(p.now) == []  # FIN deferred too
    p.run_for(1.0)
    srv = lst.accept()
    assert srv is not None and srv.recv() == b"early bird" and srv.recv() == b""
    assert c.state is S.FIN_WAIT_2
    flags = [seg.flags for _, seg in data_segments(p.segments(sender=0))]
    assert flags == [ACK | PSH | FIN]  # the data and the FIN in one segment


def test_window_never_shrinks_and_sws_avoidance() -> None:
    p = Pair(tcp_b=lan(recv_buffer=20000))
    c, s, _ = p.connect()
    p.send(0, c.send(bytes(50_000), p.now))
    p.run_for(5.0)
    edges = []
    for _, _, seg in p.segments(sender=1)[1:]:
        edges.append((seg.ack + (seg.window << s.rcv_wscale)) & 0xFFFFFFFF)
    rel = [(e - edges[0]) & 0xFFFFFFFF for e in edges]
    assert rel == sorted(rel)  # the right edge never moves left (RFC 9293 §3.8.6.2.2)
    assert s.rcv_adv == s.rcv_nxt  # closed
    t_read = p.now
    s.recv(100)  # a small read does not open a silly window (nor send an update)
    p.run_for(10.0)
    later = [seg for t, _, seg in p.segments(sender=1) if t >= t_read]
    assert later and all(seg.window == 0 for seg in later)  # answers to probes only
    t_read = p.now
    s.recv(5000)  # more than an MSS: the window opens at once, and the sender fills it
    p.run_for(3.0)
    update = next(seg for t, _, seg in p.segments(sender=1) if t >= t_read)
    assert update.window == 5100
    assert len(s.rbuf) == 20000


def test_orphaned_connection_in_persist_is_dropped() -> None:
    p = Pair(tcp_b=lan(recv_buffer=4096), tcp_a=lan(max_retries=3))
    c, _, _ = p.connect()
    p.send(0, c.send(bytes(20_000), p.now))
    p.send(0, c.close(p.now))  # the application is gone; the peer never reads
    p.run_for(600.0)
    assert c.state is S.CLOSED and c.error == "timeout"  # RFC 6429
    fired = p.a.counters["tcp.persist_probes"] + p.a.counters["tcp.sws_override"]
    assert fired == 3 and p.a.counters["tcp.persist_probes"] >= 1  # max_retries expirations
    assert p.a.counters["tcp.orphan_persist_timeouts"] == 1


def test_a_zero_window_probe_byte_taken_by_the_peer_is_acknowledged() -> None:
    """The probe carries one new byte beyond the window without advancing SND.MAX (pure ACKs
    keep an acceptable SEQ); if the window had opened, the peer's ACK of it is valid."""
    p = Pair(delay=0.01)
    c, _, _ = p.connect()
    p.drop = lambda sender, frame: sender == 0  # we play B
    forge(p, 0, c, ACK, window=0)
    una = c.snd_una
    assert c.send(b"probe me", p.now) == [] and c.snd_wnd == 0
    p.run_for(0.5)  # the persist timer sends one byte
    (probe,) = [seg for _, _, seg in p.segments(sender=0) if seg.payload]
    assert bytes(probe.payload) == b"p" and c.snd_max == una
    replies = forge(p, 0, c, ACK, ack=una + 1, window=1000)  # B took it; its window opened
    assert p.a.counters["drop.BAD_ACK"] == 0 and c.snd_una == una + 1
    assert [bytes(seg.payload) for _, seg in replies] == [b"robe me"]


def _fed(batched: bool, frames: list[bytes], host_b: Ipv6Host, now: float) -> list[TcpSegment]:
    """B's TCP output for `frames`: as one receive batch, or one frame at a time."""
    if batched:
        out = host_b.handle_batch(frames, now)
    else:
        out = [f for frame in frames for f in host_b.handle_frame(frame, now)]
    segs = [parse_tcp(f) for f in out]
    return [s[1] for s in segs if s is not None]


@pytest.mark.parametrize("batched", [True, False])
def test_a_receive_batch_is_acknowledged_once_at_its_end(batched: bool) -> None:
    """In-order segments of one receive batch get one (stretch) ACK after the batch, as
    Linux's GRO gives one per NAPI poll; one at a time, every second segment is acknowledged
    (RFC 9293 §3.8.6.3). The same data arrives either way."""
    p = Pair(delay=0.002, tcp_a=lan(initial_window=10))
    c, s, _ = p.connect()
    data = random.Random(5).randbytes(8 * c.smss)
    frames = c.send(data, p.now)
    assert len(frames) == 8
    segs = _fed(batched, frames, p.b, p.now)
    end = (s.rcv_nxt) & 0xFFFFFFFF
    assert s.recv(1 << 20) == data
    assert all(seg.flags & ACK and not seg.payload for seg in segs)
    if batched:
        assert [seg.ack for seg in segs] == [end]
        assert p.b.counters["tcp.batch_acks"] == 1
    else:
        assert len(segs) == 4 and segs[-1].ack == end
        assert p.b.counters["tcp.batch_acks"] == 0


def test_a_batch_still_acknowledges_out_of_order_data_at_once() -> None:
    """A gap in a batch: the duplicate ACK for the out-of-order segment goes at once (RFC 5681
    §4.2), and the batch ends with the ACK of whatever arrived in order."""
    p = Pair(delay=0.002, tcp_a=lan(initial_window=10))
    c, s, _ = p.connect()
    frames = c.send(bytes(6 * c.smss), p.now)
    assert len(frames) == 6
    start = s.rcv_nxt & 0xFFFFFFFF
    segs = _fed(True, frames[:2] + frames[3:], p.b, p.now)  # the third is lost
    acks = [seg.ack for seg in segs]
    two = (start + 2 * c.smss) & 0xFFFFFFFF
    assert acks == [two, two, two]  # a dup ACK for each of the three out-of-order segments
    assert p.b.counters["tcp.batch_acks"] == 0  # the first dup ACK carried the in-order data
    segs = _fed(True, frames[2:3], p.b, p.now)  # the gap filled: acknowledged at once
    assert [seg.ack for seg in segs] == [(start + 6 * c.smss) & 0xFFFFFFFF]


def test_a_stretch_ack_never_covers_more_than_half_the_receive_buffer() -> None:
    """The sender must not run dry: within a batch, an ACK goes as soon as half the receive
    buffer is unacknowledged; the rest of the batch is acknowledged at its end."""
    p = Pair(delay=0.002, tcp_a=lan(initial_window=10), tcp_b=lan(recv_buffer=8192))
    c, s, _ = p.connect()
    start = s.rcv_nxt
    frames = c.send(bytes(20_000), p.now)
    assert len(frames) >= 5
    segs = _fed(True, frames, p.b, p.now)
    acked = [(seg.ack - start) & 0xFFFFFFFF for seg in segs]
    assert len(acked) == 2
    assert 4096 <= acked[0] < 4096 + c.smss  # the first to pass half of 8192
    assert acked[1] == (s.rcv_nxt - start) & 0xFFFFFFFF  # the batch's end: everything
