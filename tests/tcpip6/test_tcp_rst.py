"""RST and SYN rules with RFC 5961's protections, PAWS, closing: TIME-WAIT, aborts, resets."""

# mypy: disable-error-code="comparison-overlap"
# (states change behind method calls; mypy keeps the narrowing of an earlier assert)
from __future__ import annotations

import pytest

from tcpip6.errors import ConnectionReset, SocketError
from tcpip6.stack.tcp import TcpConnection
from tcpip6.stack.tcpconn import TcpState
from tcpip6.wire.tcp import ACK, FIN, PSH, RST, SYN
from tests.tcpip6.tcp_helpers import Pair, forge, lan

S = TcpState


def established(**kw: object) -> tuple[Pair, TcpConnection, TcpConnection]:
    p = Pair(**kw)  # type: ignore[arg-type]
    c, s, _ = p.connect()
    p.send(0, c.send(b"hello", p.now))
    p.send(1, s.send(b"world", p.now))
    p.run_for(1.0)
    assert s.recv() == b"hello" and c.recv() == b"world"
    c.pop_events()
    return p, c, s


def test_out_of_window_rst_is_ignored() -> None:
    p, c, _ = established()
    assert forge(p, 0, c, RST, seq=c.rcv_nxt + 10_000_000) == []
    assert forge(p, 0, c, RST, seq=c.rcv_nxt - 1) == []
    assert c.state is S.ESTABLISHED and p.a.counters["drop.OUT_OF_WINDOW"] == 2


def test_in_window_inexact_rst_gets_a_challenge_ack() -> None:
    p, c, _ = established()
    (reply,) = forge(p, 0, c, RST, seq=c.rcv_nxt + 100)
    seg = reply[1]
    assert seg.flags == ACK and seg.seq == c.snd_nxt & 0xFFFFFFFF  # RFC 5961 §3.2
    assert seg.ack == c.rcv_nxt & 0xFFFFFFFF
    assert c.state is S.ESTABLISHED
    assert p.a.counters["tcp.challenge_acks"] == 1 and p.a.counters["drop.CHALLENGE_ACK"] == 1
    assert c.pop_events() == []


def test_exact_rst_resets() -> None:
    p, c, _ = established()
    assert forge(p, 0, c, RST, seq=c.rcv_nxt, ts=None) == []
    assert c.state is S.CLOSED and c.error == "reset"
    assert [e.kind.value for e in c.pop_events()] == ["reset", "closed"]
    with pytest.raises(ConnectionReset):
        c.recv()
    assert c not in p.a.tcp.conns.values()


def test_syn_in_a_synchronized_state_gets_a_challenge_ack() -> None:
    p, c, _ = established()
    for seq in (c.rcv_nxt, c.rcv_nxt + 5, c.rcv_nxt + 10**9):  # irrespective of SEQ
        (reply,) = forge(p, 0, c, SYN, seq=seq, ts=None)
        assert reply[1].flags == ACK and reply[1].ack == c.rcv_nxt & 0xFFFFFFFF
    assert c.state is S.ESTABLISHED and p.a.counters["tcp.challenge_acks"] == 3


def test_challenge_acks_are_rate_limited() -> None:
    p, c, _ = established(tcp_cfg=lan(challenge_ack_limit=2))
    replies = [forge(p, 0, c, RST, seq=c.rcv_nxt + 1 + i) for i in range(5)]
    assert [len(r) for r in replies] == [1, 1, 0, 0, 0]  # RFC 5961 §7
    assert p.a.counters["tcp.challenge_acks_limited"] == 3
    p.run_for(1.0)
    assert len(forge(p, 0, c, RST, seq=c.rcv_nxt + 1)) == 1  # the bucket refilled


def test_unacceptable_acks() -> None:
    p, c, _ = established()
    (reply,) = forge(p, 0, c, ACK, ack=c.snd_max + 1000)  # acks what was never sent
    assert reply[1].flags == ACK and reply[1].ack == c.rcv_nxt & 0xFFFFFFFF
    (reply,) = forge(p, 0, c, ACK, ack=c.snd_una - 10**6)  # too old (RFC 5961 §5.2)
    assert reply[1].flags == ACK
    assert p.a.counters["drop.BAD_ACK"] == 2 and c.state is S.ESTABLISHED


def test_paws_and_missing_timestamps() -> None:
    p, c, _ = established()
    old = (c.ts_recent - 10) & 0xFFFFFFFF
    (reply,) = forge(p, 0, c, ACK | PSH, payload=b"stale", ts=(old, 0))
    assert reply[1].flags == ACK and p.a.counters["drop.PAWS"] == 1  # RFC 7323 §5.3
    assert forge(p, 0, c, ACK | PSH, payload=b"no ts", ts=None) == []
    assert p.a.counters["drop.NO_TIMESTAMP"] == 1  # RFC 7323 §3.2
    assert not c.readable
    forge(p, 0, c, ACK | PSH, payload=b"fresh")
    assert c.recv() == b"fresh"


def close_both(p: Pair, c: TcpConnection, s: TcpConnection) -> float:
    """Active close by c, then s; returns when c entered TIME-WAIT."""
    p.send(0, c.close(p.now))
    p.run_for(0.1)
    assert c.state is S.FIN_WAIT_2 and s.state is S.CLOSE_WAIT
    p.send(1, s.close(p.now))
    entered: list[float] = []
    p.run_for(0.1, app=lambda q: entered.append(q.now) if c.state is S.TIME_WAIT else None)
    assert s.state is S.CLOSED and c.state is S.TIME_WAIT
    return entered[0]


@pytest.mark.parametrize("time_wait", [60.0, 5.0])
def test_time_wait_lasts_two_msl(time_wait: float) -> None:
    cfg = lan() if time_wait == 60.0 else lan(time_wait=time_wait)
    assert cfg.time_wait == time_wait
    p, c, s = established(tcp_cfg=cfg)
    t = close_both(p, c, s)
    p.run(until=t + time_wait - 0.01)
    assert c.state is S.TIME_WAIT
    p.run(until=t + time_wait + 0.01)
    assert c.state is S.CLOSED and not p.a.tcp.conns
    assert [e.kind.value for e in c.pop_events()][-1] == "closed"


def test_time_wait_refuses_reuse() -> None:
    p, c, s = established(tcp_cfg=lan(time_wait=10.0))
    close_both(p, c, s)
    with pytest.raises(SocketError, match="TIME-WAIT"):
        p.a.tcp_connect((p.b_addr, c.remote_port), p.now, local_port=c.local_port)
    # a new SYN for the same 4-tuple: a challenge ACK, not a new connection
    (reply,) = forge(p, 0, c, SYN, seq=c.rcv_nxt + 12345, ts=None)
    assert reply[1].flags == ACK and c.state is S.TIME_WAIT
    # a RST does not end TIME-WAIT early (RFC 1337)
    assert forge(p, 0, c, RST, seq=c.rcv_nxt, ts=None) == []
    assert c.state is S.TIME_WAIT
    # a retransmitted FIN is acknowledged and restarts the 2*MSL timer
    before = p.a.next_deadline()
    p.run_for(3.0)
    (reply,) = forge(p, 0, c, FIN | ACK, seq=c.rcv_nxt - 1)
    assert reply[1].flags == ACK
    assert p.a.tcp.conns  # still there at the old deadline + 3 s
    p.run_for(8.0)
    assert c.state is S.TIME_WAIT and before is not None
    p.run_for(3.0)
    assert c.state is S.CLOSED
    # and now the 4-tuple is free again
    lst = p.b.tcp.listeners[c.remote_port]
    c2, frames = p.a.tcp_connect((p.b_addr, c.remote_port), p.now, local_port=c.local_port)
    p.send(0, frames)
    p.run_for(1.0)
    assert c2.state is S.ESTABLISHED and lst.accept() is not None


def test_close_with_unread_data_sends_rst() -> None:
    p, c, s = established()
    p.send(1, s.send(b"unread", p.now))
    p.run_for(0.5)
    assert c.readable
    out = c.close(p.now)
    p.send(0, out)
    p.run_for(0.5)
    assert c.state is S.CLOSED and p.a.counters["tcp.rst_unread_on_close"] == 1
    assert s.state is S.CLOSED and s.error == "reset"  # RFC 1122 §4.2.2.13


def test_data_after_close_gets_rst() -> None:
    p, c, s = established()
    p.send(0, c.close(p.now))
    p.run_for(0.5)
    assert c.state is S.FIN_WAIT_2
    p.send(1, s.send(b"too late", p.now))
    p.run_for(0.5)
    assert p.a.counters["tcp.rst_data_after_close"] == 1
    assert c.state is S.CLOSED and s.state is S.CLOSED and s.error == "reset"


def test_abort_resets_the_peer() -> None:
    p, c, s = established()
    p.send(0, c.send(b"x" * 10_000, p.now))
    out = c.abort(p.now)
    assert any(seg.flags == RST for _, _, seg in p.segments(sender=0)[-1:]) or out
    p.send(0, out)
    p.run_for(1.0)
    assert c.state is S.CLOSED and c.error == "aborted"
    assert s.state is S.CLOSED and s.error == "reset"
    with pytest.raises(ConnectionReset):
        c.send(b"y", p.now)


def test_orphaned_fin_wait_2_times_out() -> None:
    p, c, s = established(tcp_cfg=lan(fin_wait_2_timeout=30.0))
    p.send(0, c.close(p.now))
    p.run_for(29.0)
    assert c.state is S.FIN_WAIT_2 and s.state is S.CLOSE_WAIT
    p.run_for(2.0)
    assert c.state is S.CLOSED and p.a.counters["tcp.fin_wait_2_timeouts"] == 1
    # a half-close (shutdown_write) waits for the peer as long as it takes
    p2, c2, _ = established()
    p2.send(0, c2.shutdown_write(p2.now))
    p2.run_for(300.0)
    assert c2.state is S.FIN_WAIT_2


def test_rst_in_syn_received_returns_to_listen() -> None:
    p = Pair()
    lst = p.b.tcp_listen(77)
    p.drop = lambda sender, frame: sender == 1  # the SYN-ACK is lost
    _, frames = p.a.tcp_connect((p.b_addr, 77), p.now)
    p.send(0, frames)
    p.run_for(0.1)
    (emb,) = lst.embryonic
    assert emb.state is S.SYN_RECEIVED
    assert forge(p, 1, emb, RST, seq=emb.rcv_nxt + 1, ts=None) != []  # inexact: challenged
    assert forge(p, 1, emb, RST, seq=emb.rcv_nxt, ts=None) == []
    assert not lst.embryonic and not p.b.tcp.conns and lst.accept() is None


def test_simultaneous_close() -> None:
    p, c, s = established()
    p.send(0, c.close(p.now))
    p.send(1, s.close(p.now))
    seen: set[TcpState] = set()
    p.run_for(1.0, app=lambda q: seen.update((c.state, s.state)))
    assert S.CLOSING in seen  # RFC 9293 §3.6 figure 13
    assert c.state is S.TIME_WAIT and s.state is S.TIME_WAIT
