"""The TCP connection table is bounded (TcpConfig.max_connections, every state counted)."""

from __future__ import annotations

import pytest

from tcpip6.errors import SocketError
from tests.tcpip6.tcp_helpers import Pair, lan, parse_tcp

BOUND = 3


def test_active_opens_fail_at_the_bound() -> None:
    p = Pair(tcp_a=lan(max_connections=BOUND))
    for i in range(BOUND):
        p.send(0, p.a.tcp_connect((p.b_addr, 1000 + i), p.now)[1])
    with pytest.raises(SocketError, match="ENOBUFS"):
        p.a.tcp_connect((p.b_addr, 2000), p.now)
    assert len(p.a.tcp.conns) == BOUND
    assert p.a.counters["tcp.conn_table_full"] == 1


def test_syns_beyond_the_bound_are_dropped() -> None:
    p = Pair(tcp_b=lan(max_connections=BOUND))
    p.b.tcp_listen(80, backlog=64)
    for _ in range(BOUND + 2):
        p.send(0, p.a.tcp_connect((p.b_addr, 80), p.now)[1])
    p.run_for(0.5)
    assert len(p.b.tcp.conns) == BOUND
    assert p.b.counters["tcp.conn_table_full"] >= 2


def test_a_newer_syn_reopens_a_time_wait_4_tuple() -> None:
    """The server closed first (it holds TIME-WAIT); the client's next connection from the same
    port opens at once (RFC 6191, as Linux) instead of being challenge-ACKed for 2*MSL. Without
    timestamps the SYN is newer by its sequence number (RFC 6528's clock moved on)."""
    from tcpip6.stack.tcpconn import TcpState

    p = Pair(tcp_cfg=lan(timestamps=False))
    cli, srv, lst = p.connect(80)
    p.send(1, srv.close(p.now))
    p.run_for(0.5)
    p.send(0, cli.close(p.now))
    p.run_for(1.0)
    assert srv.state is TcpState.TIME_WAIT and cli.state is TcpState.CLOSED
    again, frames = p.a.tcp_connect((p.b_addr, 80), p.now, local_port=cli.local_port)
    p.send(0, frames)
    assert p.run_for(1.0, stop=lambda: again.state is TcpState.ESTABLISHED and lst.pending > 0)
    assert lst.accept() is not None
    assert p.b.counters["tcp.time_wait_reused"] == 1
    assert p.b.counters["drop.CHALLENGE_ACK"] == 0


def test_an_older_syn_to_a_time_wait_4_tuple_is_still_challenged() -> None:
    """PAWS: a SYN whose timestamp is older than TIME-WAIT's TS.Recent opens nothing."""
    from tcpip6.stack.tcpconn import TcpState

    p = Pair()
    cli, srv, _ = p.connect(80)
    p.send(1, srv.close(p.now))
    p.run_for(0.5)
    p.send(0, cli.close(p.now))
    p.run_for(1.0)
    assert srv.state is TcpState.TIME_WAIT
    _, frames = p.a.tcp_connect((p.b_addr, 80), p.now, local_port=cli.local_port)
    parsed = parse_tcp(frames[0])
    assert parsed is not None
    syn = parsed[1]
    syn.seq = (srv.rcv_nxt + 100_000) & 0xFFFFFFFF  # newer by its sequence number, but…
    syn.tsval = (srv.ts_recent - 1000) & 0xFFFFFFFF  # … older by its timestamp
    assert not srv.reusable_by(syn)
    syn.tsval = (srv.ts_recent + 1000) & 0xFFFFFFFF
    assert srv.reusable_by(syn)
