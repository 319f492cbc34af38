"""TCP opens: passive, active, simultaneous; options; closed ports; SYN retransmission;
backlogs (RFC 9293 §3.5, §3.10.7; RFC 7323; RFC 2018; RFC 6298 §5.7)."""

# mypy: disable-error-code="comparison-overlap"
# (states change behind method calls; mypy keeps the narrowing of an earlier assert)
from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from tcpip6.errors import ConnectionReset, IllegalTransition, SocketError
from tcpip6.stack.tcpconn import TRANSITIONS, TcpEvent, TcpEventKind, TcpInput, TcpState
from tcpip6.wire.ipv6 import addr_str
from tcpip6.wire.tcp import ACK, RST, SYN, TcpSegment
from tests.tcpip6.tcp_helpers import A_MAC, B_MAC, Pair, lan, parse_tcp

S = TcpState
K = TcpEventKind


def kinds(events: list[TcpEvent]) -> list[str]:
    return [e.kind.value for e in events]


def inject(p: Pair, to: int, **tcp_fields: Any) -> list[bytes]:
    """Hand host ``to`` a scapy-built segment from the other host's addresses."""
    src, dst = (p.b_addr, p.a_addr) if to == 0 else (p.a_addr, p.b_addr)
    smac, dmac = (B_MAC, A_MAC) if to == 0 else (A_MAC, B_MAC)
    pkt = Ether(src=smac.hex(":"), dst=dmac.hex(":")) / IPv6(
        src=addr_str(src), dst=addr_str(dst)) / TCP(**tcp_fields)
    return p.hosts[to].handle_frame(bytes(pkt), p.now)


def first_tcp(frames: list[bytes]) -> TcpSegment:
    for f in frames:
        seg = parse_tcp(f)
        if seg is not None:
            return seg[1]
    raise AssertionError("no TCP segment")


def test_active_and_passive_open_negotiate_options() -> None:
    p = Pair()
    c, s, lst = p.connect(port=80)
    assert c.state is S.ESTABLISHED and s.state is S.ESTABLISHED
    segs = p.segments()
    syn, synack, ack = segs[0][2], segs[1][2], segs[2][2]
    assert (segs[0][1], segs[1][1], segs[2][1]) == (0, 1, 0)
    assert syn.flags == SYN and synack.flags == SYN | ACK and ack.flags == ACK
    # RFC 9293 §3.7.1: MSS = MTU - 60; RFC 7323: WS for a 256 KiB buffer is 3; TS; SACK_PERM
    for seg in (syn, synack):
        assert (seg.mss, seg.wscale, seg.sack_permitted) == (1440, 3, True)
        assert seg.tsval is not None
    assert syn.tsecr == 0 and synack.tsecr == syn.tsval and ack.tsecr == synack.tsval
    assert synack.ack == (syn.seq + 1) & 0xFFFFFFFF and ack.ack == (synack.seq + 1) & 0xFFFFFFFF
    assert ack.window == 262144 >> 3  # scaled once established
    assert synack.window == 65535  # never scaled on a SYN (RFC 7323 §2.2)
    for conn in (c, s):
        info = conn.info()
        assert info["sack"] and info["timestamps"] and info["wscale"] == (3, 3)
        assert conn.smss == 1440 - 12  # the timestamp option on every segment
    assert kinds(c.pop_events()) == ["connected"]
    assert kinds(s.pop_events()) == ["connected"]
    assert kinds(lst.pop_events()) == ["accept"]
    assert c.remote == (p.b_addr, 80) and s.remote == c.local and s.local == c.remote


def test_options_off_and_jumbo_mtu() -> None:
    p = Pair(mtu=9000, tcp_b=lan(window_scaling=False, timestamps=False, sack=False))
    c, s, _ = p.connect()
    synack = p.segments(sender=1)[0][2]
    assert synack.mss == 8940 and synack.wscale is None and synack.tsval is None
    assert not synack.sack_permitted  # RFC 2018 §2: only if offered and wanted
    for conn in (c, s):
        assert not conn.ts_ok and not conn.sack_ok
        assert (conn.snd_wscale, conn.rcv_wscale) == (0, 0)
        assert conn.smss == 8940
    data = bytes(range(256)) * 400
    assert p.transfer(c, 0, s, data) == data
    assert max(len(seg.payload) for _, _, seg in p.segments(sender=0)) == 8940


def test_peer_without_mss_option_gets_the_ipv6_default() -> None:
    p = Pair()
    p.b.tcp_listen(81)
    out = inject(p, 1, sport=999, dport=81, flags="S", seq=5)
    seg = first_tcp(out)
    assert seg.flags == SYN | ACK and seg.ack == 6
    assert seg.wscale is None and seg.tsval is None and not seg.sack_permitted
    conn = next(iter(p.b.tcp.conns.values()))
    assert conn.smss == 1220  # RFC 9293 §3.7.1 default for IPv6 (1280 - 60)


def test_simultaneous_open() -> None:
    p = Pair()
    ca, fa = p.a.tcp_connect((p.b_addr, 6000), p.now, local_port=5000)
    cb, fb = p.b.tcp_connect((p.a_addr, 5000), p.now, local_port=6000)
    p.send(0, fa)
    p.send(1, fb)
    states: set[tuple[TcpState, TcpState]] = set()
    p.run_for(5.0, app=lambda _: states.add((ca.state, cb.state)))
    assert ca.state is S.ESTABLISHED and cb.state is S.ESTABLISHED
    assert (S.SYN_RECEIVED, S.SYN_RECEIVED) in states  # RFC 9293 §3.5 figure 8
    flags = [(i, seg.flags) for _, i, seg in p.segments()]
    assert flags.count((0, SYN)) == 1 and flags.count((1, SYN)) == 1
    assert (0, SYN | ACK) in flags and (1, SYN | ACK) in flags
    assert not any(f & RST for _, f in flags)
    assert p.a.counters["tcp.syn_retransmits"] == 0  # no timeout needed
    data = b"both ways"
    p.send(0, ca.send(data, p.now))
    p.send(1, cb.send(data[::-1], p.now))
    p.run_for(1.0)
    assert cb.recv() == data and ca.recv() == data[::-1]


def test_syn_to_closed_port_is_refused_with_rst() -> None:
    p = Pair()
    c, frames = p.a.tcp_connect((p.b_addr, 7777), p.now)
    p.send(0, frames)
    p.run_for(1.0)
    rst = p.segments(sender=1)[0][2]
    syn = p.segments(sender=0)[0][2]
    # RFC 9293 §3.10.7.1: no ACK on the SYN -> <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    assert rst.flags == RST | ACK and rst.seq == 0 and rst.ack == (syn.seq + 1) & 0xFFFFFFFF
    assert c.state is S.CLOSED and c.error == "refused"
    assert kinds(c.pop_events()) == ["reset", "closed"]
    assert p.b.counters["drop.PORT_CLOSED"] == 1
    assert c not in p.a.tcp.conns.values()
    with pytest.raises(ConnectionReset) as ei:
        c.send(b"x", p.now)
    assert ei.value.reason == "refused"
    assert c in p.a.pop_tcp_ready()


def test_listener_answers_ack_with_rst_and_ignores_rst() -> None:
    p = Pair()
    p.b.tcp_listen(82)
    seg = first_tcp(inject(p, 1, sport=1234, dport=82, flags="A", seq=10, ack=424242))
    assert seg.flags == RST and seg.seq == 424242  # §3.10.7.2
    assert inject(p, 1, sport=1234, dport=82, flags="R", seq=10) == []
    assert inject(p, 1, sport=1234, dport=83, flags="R", seq=10) == []  # closed: no RST for RST
    assert inject(p, 1, sport=1234, dport=82, flags="F", seq=10) == []
    assert p.b.counters["drop.NO_CONNECTION"] == 2 and p.b.counters["drop.BAD_FLAGS"] == 1
    assert p.b.counters["drop.PORT_CLOSED"] == 1


def test_syn_retransmission_backoff_and_give_up() -> None:
    p = Pair(tcp_a=lan(syn_retries=3))
    p.drop = lambda sender, frame: sender == 0 and parse_tcp(frame) is not None
    c, frames = p.a.tcp_connect((p.b_addr, 80), p.now)
    t0 = p.now
    p.send(0, frames)
    p.run_for(60.0)
    times = [t - t0 for t, _, seg in p.segments(sender=0) if seg.flags == SYN]
    assert times == pytest.approx([0.0, 1.0, 3.0, 7.0])  # RFC 6298: 1 s, doubling
    assert c.state is S.CLOSED and c.error == "timeout"
    assert kinds(c.pop_events()) == ["reset", "closed"]
    assert p.a.counters["tcp.handshake_timeouts"] == 1


def test_lost_syn_gives_three_second_rto_without_timestamps() -> None:
    p = Pair(tcp_cfg=lan(timestamps=False))
    dropped: list[TcpSegment] = []

    def drop_first_syn(sender: int, frame: bytes) -> bool:
        seg = parse_tcp(frame)
        if seg is not None and seg[1].flags == SYN and not dropped:
            dropped.append(seg[1])
            return True
        return False

    p.drop = drop_first_syn
    c, s, _ = p.connect()
    assert dropped and p.a.counters["tcp.syn_retransmits"] == 1
    assert c.srtt is None  # Karn: the retransmitted SYN gave no sample
    assert c.rto == 3.0  # RFC 6298 §5.7
    assert s.srtt is not None and s.rto == 0.3  # the server timed its SYN-ACK (rto_min)


def test_lost_syn_ack_and_duplicate_syn() -> None:
    p = Pair()
    seen: list[float] = []

    def drop_synack(sender: int, frame: bytes) -> bool:
        seg = parse_tcp(frame)
        if seg is not None and seg[1].flags == SYN | ACK and len(seen) < 2:
            seen.append(p.now)
            return True
        return False

    p.drop = drop_synack
    c, s, _ = p.connect()
    # the client's SYN retransmission (1 s) meets a duplicate-SYN answer; the server's own
    # SYN-ACK timer (1 s) fires too: two dropped, the third gets through
    assert p.b.counters["tcp.syn_dup"] >= 1
    assert c.state is S.ESTABLISHED and s.state is S.ESTABLISHED


def test_syn_backlog_and_accept_queue_are_bounded() -> None:
    p = Pair(tcp_b=lan(syn_backlog=2, synack_retries=1))
    lst = p.b.tcp_listen(90, backlog=1)
    # a SYN flood from ports that never complete
    for port in range(2000, 2005):
        inject(p, 1, sport=port, dport=90, flags="S", seq=1)
    assert len(lst.embryonic) == 2 and p.b.counters["drop.BACKLOG_FULL"] == 3
    p.drop = lambda sender, frame: sender == 1  # the spoofed sources never answer
    p.run_for(5.0)  # SYN-ACKs retransmitted once, then the embryonic ones go
    assert not lst.embryonic and p.b.counters["tcp.handshake_timeouts"] == 2
    assert p.b.counters["tcp.syn_retransmits"] == 2
    p.drop = None
    # accept queue of 1: two handshakes at once, the second one's last ACK is dropped
    c1, f1 = p.a.tcp_connect((p.b_addr, 90), p.now)
    c2, f2 = p.a.tcp_connect((p.b_addr, 90), p.now)
    p.send(0, f1 + f2)
    p.run_for(0.1)
    assert lst.pending == 1 and c2.state is S.ESTABLISHED  # the client thinks so
    assert p.b.counters["drop.BACKLOG_FULL"] == 4  # its ACK was not taken
    c3, f3 = p.a.tcp_connect((p.b_addr, 90), p.now)  # while the queue is full: SYN dropped
    p.send(0, f3)
    p.run_for(0.1)
    assert p.b.counters["drop.BACKLOG_FULL"] == 5 and c3.state is S.SYN_SENT
    s1 = lst.accept()
    assert s1 is not None and s1.remote_port == c1.local_port
    p.send(0, c2.send(b"hello", p.now))  # this segment completes c2's handshake
    p.run_for(0.1)
    s2 = lst.accept()
    assert s2 is not None and s2.remote_port == c2.local_port and s2.recv() == b"hello"
    p.run_for(2.0)  # c3's SYN is retransmitted after 1 s and now fits
    s3 = lst.accept()
    assert s3 is not None and s3.remote_port == c3.local_port
    assert lst.accept() is None


def test_listener_close_resets_pending_connections() -> None:
    p = Pair()
    lst = p.b.tcp_listen(91)
    c, f = p.a.tcp_connect((p.b_addr, 91), p.now)
    p.send(0, f)
    p.run_for(0.1)
    assert lst.pending == 1
    p.send(1, lst.close(p.now))
    p.run_for(0.1)
    assert c.state is S.CLOSED and c.error == "reset"
    assert 91 not in p.b.tcp.listeners
    assert first_tcp(inject(p, 1, sport=3000, dport=91, flags="S", seq=1)).flags == RST | ACK


def test_api_errors() -> None:
    p = Pair()
    p.b.tcp_listen(92)
    with pytest.raises(SocketError):
        p.b.tcp_listen(92)
    with pytest.raises(SocketError):
        p.a.tcp_connect((bytes.fromhex("ff02" + "00" * 13 + "01"), 80), 0.0)
    with pytest.raises(SocketError):
        p.a.tcp_connect((p.b_addr, 0), 0.0)
    p.a.tcp_connect((p.b_addr, 92), p.now, local_port=4000)
    with pytest.raises(SocketError):  # the same 4-tuple again
        p.a.tcp_connect((p.b_addr, 92), p.now, local_port=4000)


def test_state_table_is_the_only_way_and_complete() -> None:
    assert set(TRANSITIONS) == set(TcpState)
    p = Pair()
    c, _, _ = p.connect()
    with pytest.raises(IllegalTransition):
        c._go(TcpInput.TIMEOUT_2MSL, p.now)  # no such row for ESTABLISHED
    assert c.state is S.ESTABLISHED
    # every state but CLOSED has a way to CLOSED
    for st, row in TRANSITIONS.items():
        if st is not S.CLOSED:
            assert S.CLOSED in row.values() or st is S.SYN_RECEIVED


def test_active_close_before_established_deletes_and_late_syn_ack_gets_rst() -> None:
    p = Pair(delay=0.05)
    p.b.tcp_listen(93)
    c, f = p.a.tcp_connect((p.b_addr, 93), p.now)
    p.send(0, f)
    assert c.close(p.now) == []  # RFC 9293 §3.10.4 SYN-SENT: delete the TCB
    assert c.state is S.CLOSED and K.CLOSED in [e.kind for e in c.pop_events()]
    p.run_for(1.0)
    assert p.a.counters["drop.PORT_CLOSED"] == 1  # the SYN-ACK found nobody: RST
    assert not p.b.tcp.conns  # and that RST took the embryonic connection away
