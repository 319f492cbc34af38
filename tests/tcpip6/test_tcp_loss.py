"""TCP reliability: fast retransmit with SACK (RFC 6675) and NewReno (RFC 6582), reordering,
RTO timing and backoff with Karn's rule (RFC 6298), congestion control, Path MTU (RFC 8201),
and a 10 MB transfer under 1 % loss."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable

import pytest
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Ether

from tcpip6.stack.tcpcc import Cubic, NewReno, initial_window
from tcpip6.stack.tcpconn import TcpState
from tcpip6.wire.ipv6 import addr_str
from tcpip6.wire.tcp import ACK
from tests.tcpip6.tcp_helpers import A_MAC, B_MAC, Pair, data_segments, forge, lan, parse_tcp

S = TcpState


def drop_data(nth: set[int]) -> Callable[[int, bytes], bool]:
    """Drop the first transmission of A's nth data segments (0-based, in sending order)."""
    seen: dict[int, int] = {}

    def hook(sender: int, frame: bytes) -> bool:
        if sender != 0:
            return False
        seg = parse_tcp(frame)
        if seg is None or not seg[1].payload:
            return False
        if seg[1].seq in seen:
            return False  # a retransmission
        seen[seg[1].seq] = len(seen)
        return seen[seg[1].seq] in nth

    return hook


def dropped_seqs(p: Pair, nth: set[int]) -> set[int]:
    firsts: list[int] = []
    for _, seg in data_segments(p.segments(sender=0)):
        if seg.seq not in firsts:
            firsts.append(seg.seq)
    return {firsts[i] for i in nth}


def retransmitted_seqs(p: Pair) -> list[int]:
    seen: set[int] = set()
    again = []
    for _, seg in data_segments(p.segments(sender=0)):
        if seg.seq in seen:
            again.append(seg.seq)
        seen.add(seg.seq)
    return again


def test_fast_retransmit_with_sack_blocks() -> None:
    p = Pair(delay=0.005)
    c, s, _ = p.connect()
    p.log.clear()
    p.drop = drop_data({4})
    data = random.Random(1).randbytes(200_000)
    assert p.transfer(c, 0, s, data) == data
    lost = dropped_seqs(p, {4})
    assert retransmitted_seqs(p) == sorted(lost)  # exactly the lost segment, once
    assert p.a.counters["tcp.fast_retransmits"] == 1 and p.a.counters["tcp.rto"] == 0
    # the receiver's duplicate ACKs carried SACK blocks starting right after the hole
    (hole,) = lost
    hole_end = hole + c.smss
    sacks = [seg.sack for _, _, seg in p.segments(sender=1) if seg.sack]
    assert len(sacks) >= 3
    assert all(blocks[0][0] == hole_end & 0xFFFFFFFF for blocks in sacks)
    assert p.b.counters["tcp.sack_blocks_tx"] >= 3 and p.a.counters["tcp.sack_blocks_rx"] >= 3


def test_sacked_data_is_not_retransmitted() -> None:
    p = Pair(delay=0.005)
    c, s, _ = p.connect()
    p.log.clear()
    p.drop = drop_data({10, 13, 17})
    data = random.Random(2).randbytes(300_000)
    assert p.transfer(c, 0, s, data) == data
    # three holes in one window: each hole, nothing else (RFC 6675 NextSeg)
    assert sorted(retransmitted_seqs(p)) == sorted(dropped_seqs(p, {10, 13, 17}))
    assert p.a.counters["tcp.fast_retransmits"] == 1 and p.a.counters["tcp.rto"] == 0
    assert max(len(seg.sack) for _, _, seg in p.segments(sender=1)) >= 2  # several blocks


def test_newreno_partial_acks_without_sack() -> None:
    p = Pair(delay=0.005, tcp_cfg=lan(sack=False))
    c, s, _ = p.connect()
    assert not c.sack_ok
    p.log.clear()
    p.drop = drop_data({10, 13})
    data = random.Random(3).randbytes(300_000)
    assert p.transfer(c, 0, s, data) == data
    assert not any(seg.sack for _, _, seg in p.segments(sender=1))
    # one fast retransmit, the second hole retransmitted on the partial ACK (RFC 6582)
    assert p.a.counters["tcp.fast_retransmits"] == 1 and p.a.counters["tcp.rto"] == 0
    assert retransmitted_seqs(p) == sorted(dropped_seqs(p, {10, 13}))


def test_reordering_and_duplicates_recover() -> None:
    p = Pair(delay=0.002, reorder=0.1, duplicate=0.05, seed=4)
    c, s, _ = p.connect()
    data = random.Random(4).randbytes(1_000_000)
    assert p.transfer(c, 0, s, data) == data
    assert p.b.counters["tcp.rx_ooo"] > 10
    assert p.b.counters["drop.OUT_OF_WINDOW"] > 0  # the duplicates, answered and dropped


def test_rto_backoff_and_give_up() -> None:
    p = Pair(delay=0.001, tcp_a=lan(max_retries=4))
    c, s, _ = p.connect()
    p.send(0, c.send(b"x" * 100, p.now))
    p.run_for(1.0)
    assert s.recv() == b"x" * 100
    assert c.rto == pytest.approx(0.3)  # srtt tiny: the configured minimum
    p.log.clear()
    p.drop = lambda sender, frame: sender == 0  # the path dies
    t0 = p.now
    p.send(0, c.send(b"y" * 100, p.now))
    p.run_for(60.0)
    times = [t - t0 for t, seg in data_segments(p.segments(sender=0))]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.3, 0.6, 1.2, 2.4])  # RFC 6298 (5.5): doubling
    assert c.state is S.CLOSED and c.error == "timeout"  # RFC 9293 §3.8.3 R2
    assert [e.kind.value for e in c.pop_events()][-2:] == ["reset", "closed"]
    assert p.a.counters["tcp.rto"] == 4 and p.a.counters["tcp.timeouts"] == 1


def test_karn_no_sample_from_a_retransmission() -> None:
    p = Pair(delay=0.05, tcp_cfg=lan(timestamps=False))  # RTT 100 ms, no TS to disambiguate
    c, s, _ = p.connect()
    srtt0, rto0 = c.srtt, c.rto
    assert srtt0 == pytest.approx(0.1)
    p.drop = drop_data({0})
    p.send(0, c.send(b"first", p.now))
    p.run_for(0.35)  # RTO fires at 0.3 s
    assert p.a.counters["tcp.rto"] == 1
    p.run_for(2.0)
    assert s.recv() == b"first"
    # the ACK of the retransmission was ambiguous: no sample, the backed-off RTO stays
    assert c.srtt == srtt0 and c.rto == pytest.approx(2 * rto0)
    p.send(0, c.send(b"second", p.now))  # a fresh segment gives a sample again
    p.run_for(2.0)
    assert c.srtt != srtt0 and c.rto < 2 * rto0


def test_rtt_estimator_with_timestamps() -> None:
    p = Pair(delay=0.05, tcp_cfg=lan(rto_min=0.01))
    c, s, _ = p.connect()
    data = random.Random(5).randbytes(500_000)
    assert p.transfer(c, 0, s, data) == data
    assert c.srtt is not None and 0.1 <= c.srtt < 0.35  # RTT 100 ms (+ delayed ACKs)
    assert c.rto == pytest.approx(c.srtt + max(0.001, 4 * c.rttvar))  # RFC 6298 (2.3), G


def test_ten_megabytes_under_one_percent_loss() -> None:
    p = Pair(delay=0.001, loss=0.01, seed=10)
    c, s, _ = p.connect()
    data = random.Random(10).randbytes(10 * 1024 * 1024)
    got = p.transfer(c, 0, s, data, until=600.0)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    assert p.lost > 100
    assert p.a.counters["tcp.fast_retransmits"] > 10 and p.a.counters["tcp.retransmits"] > 50
    assert p.b.counters["tcp.sack_blocks_tx"] > 0


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_congestion_control_under_loss_both_directions(cc: str) -> None:
    p = Pair(delay=0.002, loss=0.02, seed=11, tcp_cfg=lan(congestion_control=cc))
    c, s, _ = p.connect()
    assert c.cc.name == cc
    up = random.Random(11).randbytes(1_500_000)
    down = random.Random(12).randbytes(700_000)
    got_up = bytearray()
    got_down = bytearray()
    pos = [0, 0]

    def app(q: Pair) -> None:
        for i, (conn, data) in enumerate(((c, up), (s, down))):
            while pos[i] < len(data) and conn.send_space:
                n = min(conn.send_space, len(data) - pos[i])
                q.send(i, conn.send(data[pos[i] : pos[i] + n], q.now))
                pos[i] += n
        for conn, got in ((s, got_up), (c, got_down)):
            while conn.readable and (chunk := conn.recv(1 << 20)):
                got.extend(chunk)

    assert p.run_for(600.0, app=app, stop=lambda: len(got_up) == len(up) and
                     len(got_down) == len(down))  # fmt: skip
    assert bytes(got_up) == up and bytes(got_down) == down
    assert p.a.counters["tcp.fast_retransmits"] > 0 and p.b.counters["tcp.fast_retransmits"] > 0


def test_newreno_growth_and_reduction() -> None:
    cc = NewReno(1000)
    assert cc.cwnd == 4000 == initial_window(1000)  # RFC 5681 §3.1: SMSS <= 1095 -> 4 SMSS
    cc.on_ack(1000, 3000, None, 0.0)
    assert cc.cwnd == 5000  # slow start: + acked
    cc.on_ack(5000, 3000, None, 0.0)
    assert cc.cwnd == 7000  # at most 2 SMSS per ACK (RFC 3465, L = 2)
    cc.on_congestion(8000, 0.0)
    assert cc.ssthresh == 4000 and cc.cwnd == 4000  # max(FlightSize/2, 2*SMSS)
    for _ in range(4):
        cc.on_ack(1000, 4000, None, 0.0)
    assert cc.cwnd == 5000  # congestion avoidance: + SMSS per cwnd of bytes acked
    cc.on_rto(5000, 0.0)
    assert cc.cwnd == 1000 and cc.ssthresh == 2500  # loss window (RFC 5681 eq. 4)


def test_cubic_window_curve() -> None:
    cc = Cubic(1000)
    cc.cwnd = 100_000
    cc.ssthresh = 100_000
    cc.on_congestion(100_000, 0.0)
    assert cc.cwnd == 70_000 and cc.w_max == 100.0  # β = 0.7 (RFC 9438 §4.6)
    k = ((100.0 - 70.0) / 0.4) ** (1 / 3)  # RFC 9438 eq. 2
    rtt = 0.1  # long enough that the cubic curve, not the Reno-friendly line, rules
    now = 0.0
    early = []
    while now < k - rtt / 2:  # one window acknowledged per RTT until K: concave region
        now += rtt
        cc.on_ack(cc.cwnd, cc.cwnd, rtt, now)
        early.append(cc.cwnd)
    assert early[2] > 75_000  # fast growth right after the loss (W_cubic(0.3 s) = 76.3)
    assert 97_000 < cc.cwnd <= 101_000  # back at W_max around t = K
    plateau = cc.cwnd
    for _ in range(8):  # the plateau around W_max
        now += rtt
        cc.on_ack(cc.cwnd, cc.cwnd, rtt, now)
    assert cc.cwnd - plateau < 3_000
    for _ in range(100):  # then convex growth: probing beyond W_max
        now += rtt
        cc.on_ack(cc.cwnd, cc.cwnd, rtt, now)
    assert cc.cwnd > 200_000


def test_initial_window() -> None:
    assert initial_window(1460) == 4380 and initial_window(536) == 2144
    assert initial_window(8960) == 17920 and initial_window(1460, 10) == 14600


def packet_too_big(p: Pair, frame: bytes, mtu: int) -> bytes:
    """A Packet Too Big from B's address to A quoting ``frame``'s IPv6 packet."""
    inner = IPv6(frame[14:])
    return bytes(Ether(src=B_MAC.hex(":"), dst=A_MAC.hex(":"))
                 / IPv6(src=addr_str(p.b_addr), dst=addr_str(p.a_addr))
                 / ICMPv6PacketTooBig(mtu=mtu) / bytes(inner)[:1232])  # fmt: skip


def test_packet_too_big_lowers_the_mss() -> None:
    p = Pair(delay=0.005)
    c, s, _ = p.connect()
    assert c.smss == 1428
    ptbs: list[bytes] = []

    def too_big(sender: int, frame: bytes) -> bool:
        seg = parse_tcp(frame)
        if sender == 0 and seg is not None and len(frame) - 14 > 1400:
            ptbs.append(packet_too_big(p, frame, 1400))
            return True  # a router with a 1400-byte link drops it
        return False

    p.drop = too_big
    data = random.Random(6).randbytes(100_000)

    def router(q: Pair) -> None:  # deliver the routers' complaints
        while ptbs:
            q.send(0, q.a.handle_frame(ptbs.pop(0), q.now))

    got = bytearray()
    pos = 0

    def app(q: Pair) -> None:
        nonlocal pos
        router(q)
        if pos < len(data) and c.send_space:
            n = min(c.send_space, len(data) - pos)
            q.send(0, c.send(data[pos : pos + n], q.now))
            pos += n
        while s.readable and (chunk := s.recv()):
            got.extend(chunk)

    assert p.run_for(30.0, app=app, stop=lambda: len(got) == len(data))
    assert bytes(got) == data
    assert c.smss == 1400 - 60 - 12 and p.a.counters["tcp.pmtu_lowered"] == 1
    assert p.a.counters["tcp.rto"] == 0  # resent at once, not after a timeout
    late = data_segments(p.segments(sender=0))[-5:]
    assert all(len(seg.payload) <= 1328 for _, seg in late)


def test_packet_too_big_for_a_sequence_not_in_flight_is_ignored() -> None:
    p = Pair()
    c, _, _ = p.connect()
    p.send(0, c.send(b"z" * 3000, p.now))
    p.run_for(1.0)  # everything acknowledged
    old = next(f for _, i, f in p.log if i == 0 and (x := parse_tcp(f)) and x[1].payload)
    p.a.handle_frame(packet_too_big(p, old, 1300), p.now)
    assert p.a.counters["tcp.pmtu_ignored"] == 1 and c.smss == 1428  # RFC 5927 §4.1


# --- regressions found by randomized sweeps and by interop with Linux -----------------------


def test_pure_acks_carry_snd_max_after_go_back_n() -> None:
    """After an RTO pulls SND.NXT back, an ACK with SEQ=SND.NXT can fall below the peer's
    RCV.NXT; two such ends answered each other's "unacceptable" ACKs forever (BSD: SND.MAX)."""
    p = Pair(delay=0.01)
    c, s, _ = p.connect()
    p.drop = lambda sender, frame: sender == 0 and bool((x := parse_tcp(frame)) and x[1].payload)
    p.send(0, c.send(bytes(20_000), p.now))
    p.run_for(0.35)  # the RTO fired and went back to SND.UNA
    assert p.a.counters["tcp.rto"] == 1 and c.snd_nxt < c.snd_max
    p.log.clear()
    p.send(1, s.send(b"ping", p.now))
    p.run_for(0.25)  # A acknowledges it (delayed ACK)
    acks = [seg for _, _, seg in p.segments(sender=0) if not seg.payload]
    assert acks and all(seg.seq == c.snd_max & 0xFFFFFFFF for seg in acks)


def test_retransmission_never_carries_unsent_bytes() -> None:
    p = Pair(delay=0.01)
    c, _, _ = p.connect()
    p.send(0, c.send(b"a" * 100, p.now))  # in flight
    assert c.send(b"b" * 1000, p.now) == []  # Nagle holds it: buffered, never sent
    assert c.snd_max - c.snd_una == 100 and c.unsent == 1100
    out: list[bytes] = []
    c._retransmit(c.snd_una, p.now, out)
    seg = parse_tcp(out[0])
    assert seg is not None and bytes(seg[1].payload) == b"a" * 100


def test_acks_with_new_sack_blocks_count_as_duplicates_even_if_the_window_moves() -> None:
    """A Linux receiver changes its window with nearly every ACK (autotuning): RFC 5681's
    strict duplicate test would never fire; RFC 6675 §2 counts ACKs that SACK new data."""
    p = Pair(delay=0.01)
    c, _, _ = p.connect()
    p.drop = lambda sender, frame: sender == 0  # nothing reaches B: we play its ACKs
    p.send(0, c.send(bytes(10 * c.smss), p.now))
    una, smss = c.snd_una, c.smss
    assert c.snd_max - una == 3 * smss  # the initial window
    for i, window in enumerate((5000, 6000, 7000)):
        forge(p, 0, c, ACK, ack=una, window=window, sack=((una + smss, una + (i + 2) * smss),))
    assert p.a.counters["tcp.fast_retransmits"] == 1 and c.in_recovery
    assert p.a.counters["tcp.retransmits"] == 1


def test_go_back_n_after_a_timeout_skips_sacked_data() -> None:
    p = Pair(delay=0.01)
    c, _, _ = p.connect()
    p.drop = lambda sender, frame: sender == 0
    c.cc.cwnd = 10 * c.smss
    p.send(0, c.send(bytes(10 * c.smss), p.now))
    una, smss = c.snd_una, c.smss
    p.run_for(0.35)
    assert p.a.counters["tcp.rto"] == 1  # everything lost; the scoreboard was cleared
    # B got segment 0 (the retransmission) and, earlier, segments 2..6
    blocks = ((una + 2 * smss, una + 7 * smss),)
    replies = forge(p, 0, c, ACK, ack=una + smss, window=60000, sack=blocks)
    c.cc.cwnd = 10 * c.smss  # let the window allow the whole rest at once
    replies += forge(p, 0, c, ACK, ack=una + smss, window=60000, sack=blocks)
    sent = [(seg.seq - una) & 0xFFFFFFFF for _, seg in replies if seg.payload]
    assert sorted(sent) == [smss, 7 * smss, 8 * smss, 9 * smss]  # 1, then 7..9, never 2..6


def test_lost_sws_override_segment_is_retransmitted() -> None:
    """The persist timer's override send must hand over to the retransmission timer, or a
    lost override segment is never sent again (a silent peer gives no other trigger)."""
    p = Pair(delay=0.01)
    c, _, _ = p.connect()
    p.drop = lambda sender, frame: sender == 0  # everything A sends is lost
    forge(p, 0, c, ACK, window=1000 >> c.snd_wscale)  # a small window, nothing in flight
    assert c.snd_wnd == 1000 and c.max_snd_wnd > 2000
    una = c.snd_una
    assert c.send(bytes(5000), p.now) == []  # SWS avoidance holds 1000 < max window / 2
    p.run_for(10.0)
    assert p.a.counters["tcp.sws_override"] == 1  # the override timeout sent 1000 bytes...
    tries = [seg for _, _, seg in p.segments(sender=0) if seg.payload]
    assert len(tries) >= 3 and all(seg.seq == una & 0xFFFFFFFF for seg in tries)
    assert p.a.counters["tcp.rto"] >= 2  # ... and the retransmission timer resent them
