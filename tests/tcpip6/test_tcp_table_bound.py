"""The TCP connection table is bounded (TcpConfig.max_connections, every state counted)."""

from __future__ import annotations

import pytest

from tcpip6.errors import SocketError
from tests.tcpip6.tcp_helpers import Pair, lan

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
