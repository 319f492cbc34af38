"""Neighbor cache and NUD (RFC 4861 §7.2, §7.3, App. C) in virtual time."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether

from tcpip6.errors import IllegalTransition
from tcpip6.stack import constants as c
from tcpip6.stack.context import HostConfig, StackContext
from tcpip6.stack.host import Ipv6Host
from tcpip6.stack.nud import TRANSITIONS, NeighborCache, NudEvent, NudState
from tests.tcpip6.stack6_helpers import (
    HOST_LL,
    HOST_MAC_S,
    PEER_LL,
    PEER_MAC_S,
    a,
    advance,
    checksums_ok,
    to_host,
    up_host,
)

PEER = a(PEER_LL)
OTHER_MAC = "02:00:00:00:00:bb"


def na(*, s: int = 1, o: int = 1, r: int = 0, tlla: str | None = PEER_MAC_S,
       dst: str = HOST_LL) -> bytes:  # fmt: skip
    pkt = IPv6(src=PEER_LL, dst=dst, hlim=255) / ICMPv6ND_NA(tgt=PEER_LL, S=s, O=o, R=r)
    if tlla is not None:
        pkt /= ICMPv6NDOptDstLLAddr(lladdr=tlla)
    return to_host(pkt)


def ns_from_peer(slla: str = PEER_MAC_S) -> bytes:
    return to_host(
        IPv6(src=PEER_LL, dst=HOST_LL, hlim=255)
        / ICMPv6ND_NS(tgt=HOST_LL)
        / ICMPv6NDOptSrcLLAddr(lladdr=slla)
    )


def state(h: Ipv6Host) -> NudState | None:
    return h.nud.state(PEER)


def ping(h: Ipv6Host, now: float, seq: int = 1) -> list[bytes]:
    return h.ping(PEER, now, 0x42, seq, b"data")


def quiet_host(**kw: object) -> Ipv6Host:
    """Up, and no Router Solicitations to get in the way of the NS counting."""
    return up_host(max_rtr_solicitations=0, **kw)


@pytest.fixture
def host() -> Ipv6Host:
    return quiet_host()


def test_resolution_multicast_ns_then_reachable_and_queue_flushed(host: Ipv6Host) -> None:
    out = ping(host, 2.0, 1) + ping(host, 2.1, 2)
    assert state(host) is NudState.INCOMPLETE
    assert len(out) == 1  # one NS; the second ping only queues (no NS before RetransTimer)
    ns = checksums_ok(out[0])
    assert ns[Ether].dst == "33:33:ff:00:00:aa"
    assert (ns[IPv6].src, ns[IPv6].dst, ns[IPv6].hlim) == (HOST_LL, "ff02::1:ff00:aa", 255)
    assert ns[ICMPv6ND_NS].tgt == PEER_LL
    assert ns[ICMPv6NDOptSrcLLAddr].lladdr == HOST_MAC_S
    flushed = host.handle_frame(na(s=1), 2.2)
    assert state(host) is NudState.REACHABLE
    assert [Ether(f)[ICMPv6EchoRequest].seq for f in flushed] == [1, 2]
    assert all(Ether(f).dst == PEER_MAC_S for f in flushed)
    assert host.nud.get(PEER).lladdr == bytes.fromhex("0200000000aa")  # type: ignore[union-attr]


def test_incomplete_retransmits_then_fails(host: Ipv6Host) -> None:
    ping(host, 2.0)
    sent = advance(host, 10.0)
    times = [t for t, _ in sent]
    assert times == [3.0, 4.0]  # MAX_MULTICAST_SOLICIT = 3 in all, RETRANS_TIMER apart
    assert all(Ether(f)[ICMPv6ND_NS].tgt == PEER_LL for _, f in sent)
    assert state(host) is None  # deleted at 5.0
    assert host.counters["nud.failed"] == 1
    assert host.counters["drop.ADDRESS_UNREACHABLE"] == 1  # the queued echo request
    assert any(e.kind == "nud.failed" for e in host.pop_events())


def test_na_without_tlla_leaves_incomplete(host: Ipv6Host) -> None:
    ping(host, 2.0)
    assert host.handle_frame(na(tlla=None), 2.1) == []
    assert state(host) is NudState.INCOMPLETE
    assert host.counters["nd.na_no_tlla"] == 1


def test_unsolicited_na_for_incomplete_makes_stale_then_delay(host: Ipv6Host) -> None:
    ping(host, 2.0)
    out = host.handle_frame(na(s=0, dst="ff02::1"), 2.1)
    assert len(out) == 1  # the queued packet goes; sending makes STALE -> DELAY (§7.3.3)
    assert state(host) is NudState.DELAY


def test_reachable_times_out_to_stale_after_randomized_reachable_time(host: Ipv6Host) -> None:
    rt = host.params.reachable_time
    assert 0.5 * 30 <= rt <= 1.5 * 30
    ping(host, 2.0)
    host.handle_frame(na(), 2.0)
    advance(host, 2.0 + rt - 0.001)
    assert state(host) is NudState.REACHABLE
    advance(host, 2.0 + rt)
    assert state(host) is NudState.STALE
    assert host.next_deadline() is None or host.next_deadline() > 2.0 + rt  # STALE: no timer


def test_stale_send_delay_probe_and_failure(host: Ipv6Host) -> None:
    host.handle_frame(ns_from_peer(), 2.0)  # §7.2.3: NS with SLLA creates STALE
    assert state(host) is NudState.STALE
    out = ping(host, 3.0)
    assert len(out) == 1 and Ether(out[0]).dst == PEER_MAC_S  # sent at once from STALE
    assert state(host) is NudState.DELAY
    assert advance(host, 7.99) == []
    probes = advance(host, 8.0)  # DELAY_FIRST_PROBE_TIME later -> PROBE, unicast NS
    assert state(host) is NudState.PROBE
    p = Ether(probes[0][1])
    assert (p.dst, p[IPv6].dst) == (PEER_MAC_S, PEER_LL)  # unicast to the cached address
    more = advance(host, 20.0)
    assert [t for t, _ in more] == [9.0, 10.0]  # MAX_UNICAST_SOLICIT = 3
    assert state(host) is None


def test_delay_confirmed_by_solicited_na_skips_probe(host: Ipv6Host) -> None:
    host.handle_frame(ns_from_peer(), 2.0)
    ping(host, 3.0)
    assert state(host) is NudState.DELAY
    host.handle_frame(na(s=1, o=0), 4.0)
    assert state(host) is NudState.REACHABLE
    assert not any(Ether(f).haslayer(ICMPv6ND_NS) for _, f in advance(host, 8.5))


def test_na_override_rules(host: Ipv6Host) -> None:
    ping(host, 2.0)
    host.handle_frame(na(), 2.0)
    mac = bytes.fromhex("0200000000aa")
    # O=0 with a different address: REACHABLE -> STALE, the cached address is kept
    host.handle_frame(na(s=1, o=0, tlla=OTHER_MAC), 2.5)
    assert state(host) is NudState.STALE
    assert host.nud.get(PEER).lladdr == mac  # type: ignore[union-attr]
    # again O=0 different in STALE: unchanged
    host.handle_frame(na(s=0, o=0, tlla=OTHER_MAC, dst="ff02::1"), 2.6)
    assert state(host) is NudState.STALE
    # O=1, S=0, different: update and STALE
    host.handle_frame(na(s=0, o=1, tlla=OTHER_MAC, dst="ff02::1"), 2.7)
    assert host.nud.get(PEER).lladdr == bytes.fromhex("0200000000bb")  # type: ignore[union-attr]
    assert state(host) is NudState.STALE
    # S=1 O=1: REACHABLE
    host.handle_frame(na(s=1, o=1, tlla=PEER_MAC_S), 2.8)
    assert state(host) is NudState.REACHABLE
    assert host.nud.get(PEER).lladdr == mac  # type: ignore[union-attr]


def test_ns_slla_change_makes_stale(host: Ipv6Host) -> None:
    host.handle_frame(ns_from_peer(), 2.0)
    ping(host, 2.0)
    host.handle_frame(na(), 2.1)
    assert state(host) is NudState.REACHABLE
    host.handle_frame(ns_from_peer(PEER_MAC_S), 2.2)  # same address: unchanged
    assert state(host) is NudState.REACHABLE
    host.handle_frame(ns_from_peer(OTHER_MAC), 2.3)
    assert state(host) is NudState.STALE


def test_router_flag_cleared_removes_default_router(host: Ipv6Host) -> None:
    host.router.routers[PEER] = 1e9
    ping(host, 2.0)
    host.handle_frame(na(r=1), 2.0)
    assert host.nud.get(PEER).is_router  # type: ignore[union-attr]
    host.handle_frame(na(r=0), 2.1)  # §7.2.5: IsRouter TRUE -> FALSE
    assert PEER not in host.router.routers


def test_queue_is_bounded_oldest_dropped() -> None:
    host = quiet_host(neighbor_queue_len=3)
    for seq in range(5):
        ping(host, 2.0, seq)
    assert host.counters["drop.QUEUE_FULL"] == 2
    out = host.handle_frame(na(), 2.1)
    assert [Ether(f)[ICMPv6EchoRequest].seq for f in out] == [2, 3, 4]


def test_cache_is_bounded_stale_evicted_first() -> None:
    host = quiet_host(neighbor_cache_size=3)
    host.handle_frame(ns_from_peer(), 2.0)  # PEER: STALE
    for i in range(2):
        host.ping(a(f"fe80::{i + 10}"), 3.0 + i, 1, 1)  # two INCOMPLETE entries
    assert len(host.nud) == 3
    host.ping(a("fe80::99"), 6.0, 1, 1)
    assert len(host.nud) == 3
    assert state(host) is None  # the STALE one went
    assert host.counters["nud.evicted"] == 1
    host.ping(a("fe80::98"), 6.5, 1, 1)  # now the least recently updated INCOMPLETE
    assert host.nud.state(a("fe80::10")) is None


def test_upper_layer_confirmation(host: Ipv6Host) -> None:
    host.handle_frame(ns_from_peer(), 2.0)
    host.nud.confirm(PEER, 2.5)
    assert state(host) is NudState.REACHABLE


def test_table_shape_and_illegal_transition() -> None:
    for st in NudState:
        row = TRANSITIONS[st]
        for ev in (NudEvent.SEND, NudEvent.SOLICITED_CONFIRM, NudEvent.LLADDR_CHANGED):
            assert ev in row, (st, ev)
    assert TRANSITIONS[NudState.STALE][NudEvent.SEND] is NudState.DELAY
    assert TRANSITIONS[NudState.DELAY][NudEvent.TIMEOUT] is NudState.PROBE
    assert TRANSITIONS[NudState.PROBE][NudEvent.RETRIES_EXHAUSTED] is None
    assert TRANSITIONS[NudState.REACHABLE][NudEvent.NA_CONFLICT] is NudState.STALE
    ctx = StackContext(bytes(6), 1500, random.Random(0), HostConfig())
    cache = NeighborCache(ctx, lambda *_: None)
    cache.on_lladdr(PEER, bytes(6), 0.0)  # STALE
    with pytest.raises(IllegalTransition):
        cache.on_timer(PEER, 1.0)  # STALE has no timer event


def test_reachable_time_randomized_per_seed() -> None:
    times = {round(up_host(seed=s).params.reachable_time, 6) for s in range(30)}
    assert len(times) == 30
    assert all(c.MIN_RANDOM_FACTOR * 30 <= t <= c.MAX_RANDOM_FACTOR * 30 for t in times)
