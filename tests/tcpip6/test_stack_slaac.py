"""Router Advertisements, SLAAC and its lifetimes (RFC 4862 §5.5), next hops, Redirect,
Path MTU and source address selection (RFC 6724), in virtual time."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrFragment,
)
from scapy.layers.l2 import Ether

from tcpip6.stack.addrconf import (
    AddrOrigin,
    AddrState,
    common_prefix_len,
    label,
    scope,
    stable_iid,
)
from tcpip6.stack.context import IidMode
from tcpip6.stack.host import Ipv6Host
from tcpip6.stack.nud import NudState
from tests.tcpip6.stack6_helpers import (
    HOST_GLOBAL,
    HOST_LL,
    PEER_LL,
    PEER_MAC_S,
    ROUTER_LL,
    ROUTER_MAC_S,
    a,
    advance,
    checksums_ok,
    only_drop,
    to_host,
    up_host,
)

G = a(HOST_GLOBAL)
LL = a(HOST_LL)
R = a(ROUTER_LL)
INF = 0xFFFFFFFF


def ra(
    *,
    src: str = ROUTER_LL,
    hlim: int = 255,
    code: int = 0,
    lifetime: int = 1800,
    prefixes: tuple[tuple[Any, ...], ...] = (("2001:db8:1::", 64, 1, 1, INF, INF),),
    mtu: int | None = None,
    slla: str | None = ROUTER_MAC_S,
    chlim: int = 0,
    reach: int = 0,
    retrans: int = 0,
) -> bytes:
    pkt = IPv6(src=src, dst="ff02::1", hlim=hlim) / ICMPv6ND_RA(
        code=code, chlim=chlim, prf=0, routerlifetime=lifetime, reachabletime=reach,
        retranstimer=retrans,
    )  # fmt: skip
    if slla is not None:
        pkt /= ICMPv6NDOptSrcLLAddr(lladdr=slla)
    if mtu is not None:
        pkt /= ICMPv6NDOptMTU(mtu=mtu)
    for prefix, plen, onlink, auto, valid, pref in prefixes:
        pkt /= ICMPv6NDOptPrefixInfo(
            prefix=prefix, prefixlen=plen, L=onlink, A=auto,
            validlifetime=valid, preferredlifetime=pref,
        )  # fmt: skip
    return to_host(pkt, src_mac=ROUTER_MAC_S)


def prefix(valid: int, pref: int, p: str = "2001:db8:1::") -> tuple[tuple[Any, ...], ...]:
    return ((p, 64, 1, 1, valid, pref),)


@pytest.fixture
def host() -> Ipv6Host:
    return up_host()


def slaac_up(h: Ipv6Host, now: float = 2.0, **kw: Any) -> list[bytes]:
    out = h.handle_frame(ra(**kw), now)
    advance(h, now + 1.0)
    return out


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (ra(src="2001:db8::1"), "drop.BAD_SOURCE"),  # §6.1.2: link-local source only
        (ra(hlim=254), "drop.HOP_LIMIT"),
        (ra(code=1), "drop.BAD_CODE"),
    ],
)
def test_invalid_ra_dropped(host: Ipv6Host, frame: bytes, reason: str) -> None:
    assert host.handle_frame(frame, 2.0) == []
    assert only_drop(host) == reason
    assert host.router.routers == {} and host.address_state(G) is None


def test_ra_configures_router_prefix_and_slaac_address(host: Ipv6Host) -> None:
    assert host.router.soliciting
    out = host.handle_frame(ra(), 2.0)
    assert not host.router.soliciting  # §6.3.7: desist after a valid RA
    assert R in host.router.routers
    entry = host.nud.get(R)
    assert entry is not None and entry.state is NudState.STALE and entry.is_router
    assert host.router.on_link(a("2001:db8:1::77"))
    assert host.address_state(G) is AddrState.TENTATIVE
    ns = [Ether(f) for f in out if Ether(f).haslayer(ICMPv6ND_NS)]
    assert len(ns) == 1 and ns[0][IPv6].src == "::" and ns[0][ICMPv6ND_NS].tgt == HOST_GLOBAL
    advance(host, 3.0)
    assert host.address_state(G) is AddrState.PREFERRED
    info = next(x for x in host.addresses if x.address == G)
    assert (info.origin, info.prefix_len) == (AddrOrigin.SLAAC, 64)
    assert host.counters["slaac.addresses"] == 1


@pytest.mark.parametrize(
    ("prefixes", "counter"),
    [
        ((("2001:db8:1::", 64, 1, 0, INF, INF),), None),  # A=0
        ((("fe80::", 64, 1, 1, INF, INF),), "slaac.ignored_link_local"),
        ((("2001:db8:1::", 64, 1, 1, 100, 200),), "slaac.ignored_lifetimes"),  # pref > valid
        ((("2001:db8:1::", 48, 1, 1, INF, INF),), "slaac.bad_prefix_len"),
        ((("2001:db8:1::", 64, 1, 1, 0, 0),), None),  # valid 0: nothing to form
    ],
)
def test_prefixes_that_form_no_address(
    host: Ipv6Host, prefixes: tuple[tuple[Any, ...], ...], counter: str | None
) -> None:
    host.handle_frame(ra(prefixes=prefixes), 2.0)
    assert [x for x in host.addresses if x.origin is AddrOrigin.SLAAC] == []
    if counter is not None:
        assert host.counters[counter] == 1


def test_autonomous_only_prefix_is_not_on_link(host: Ipv6Host) -> None:
    slaac_up(host, prefixes=(("2001:db8:1::", 64, 0, 1, INF, INF),))
    assert host.address_state(G) is AddrState.PREFERRED
    assert not host.router.on_link(a("2001:db8:1::77"))
    assert host.router.next_hop(a("2001:db8:1::77")) == R


def test_lifetimes_deprecate_then_remove(host: Ipv6Host) -> None:
    slaac_up(host, 2.0, prefixes=prefix(100, 50))
    assert host.address_state(G) is AddrState.PREFERRED
    advance(host, 51.9)
    assert host.address_state(G) is AddrState.PREFERRED
    advance(host, 52.0)
    assert host.address_state(G) is AddrState.DEPRECATED
    assert host.addrconf.select_source(a("2001:db8:1::9")) == G  # still usable
    advance(host, 101.9)
    assert host.address_state(G) is AddrState.DEPRECATED
    advance(host, 102.0)
    assert host.address_state(G) is None
    kinds = [e.kind for e in host.pop_events()]
    assert "address.deprecated" in kinds and "address.removed" in kinds
    assert "prefix.removed" in kinds


def test_preferred_lifetime_zero_deprecates_at_once(host: Ipv6Host) -> None:
    slaac_up(host, prefixes=prefix(INF, INF))
    host.handle_frame(ra(prefixes=prefix(INF, 0)), 10.0)
    assert host.address_state(G) is AddrState.DEPRECATED
    host.handle_frame(ra(prefixes=prefix(INF, 600)), 11.0)
    assert host.address_state(G) is AddrState.PREFERRED


def _valid_until(h: Ipv6Host) -> float:
    return next(x.valid_until for x in h.addresses if x.address == G)


def test_two_hour_rule(host: Ipv6Host) -> None:
    slaac_up(host, 0.0, prefixes=prefix(20000, 1000))
    assert _valid_until(host) == 20000.0
    # (e) 3: remaining > 2 h and a short lifetime -> two hours
    host.handle_frame(ra(prefixes=prefix(60, 30)), 100.0)
    assert _valid_until(host) == 100.0 + 7200
    # (e) 2: remaining <= 2 h -> a shorter advertised lifetime is ignored
    host.handle_frame(ra(prefixes=prefix(60, 30)), 200.0)
    assert _valid_until(host) == 100.0 + 7200
    assert host.counters["slaac.two_hour_rule"] == 2
    # (e) 1: longer than the remaining lifetime -> taken, even under two hours
    host.handle_frame(ra(prefixes=prefix(7100, 30)), 300.0)
    assert _valid_until(host) == 300.0 + 7100
    # (e) 1: more than two hours -> taken
    host.handle_frame(ra(prefixes=prefix(7201, 30)), 400.0)
    assert _valid_until(host) == 400.0 + 7201
    host.handle_frame(ra(prefixes=prefix(INF, INF)), 500.0)
    assert _valid_until(host) == float("inf")
    host.handle_frame(ra(prefixes=prefix(0, 0)), 600.0)  # an attacker's "0" is capped, too
    assert _valid_until(host) == 600.0 + 7200
    assert host.address_state(G) is AddrState.DEPRECATED


def test_stable_slaac_address_rfc7217() -> None:
    secret = b"sixteen-byte-key!!"
    h = up_host(iid_mode=IidMode.STABLE, stable_secret=secret)
    slaac_up(h, prefixes=prefix(INF, INF) + prefix(INF, INF, "2001:db8:2::"))
    mine = [x.address for x in h.addresses if x.origin is AddrOrigin.SLAAC]
    p1 = a("2001:db8:1::")
    p2 = a("2001:db8:2::")
    assert mine == [
        p1[:8] + stable_iid(p1, h.mac, b"", 0, secret),
        p2[:8] + stable_iid(p2, h.mac, b"", 0, secret),
    ]
    assert mine[0][8:] != mine[1][8:]  # a different IID per prefix (no tracking)


def test_router_lifetime_zero_and_expiry(host: Ipv6Host) -> None:
    host.handle_frame(ra(lifetime=30), 2.0)
    assert R in host.router.routers
    host.handle_frame(ra(lifetime=0), 3.0)
    assert R not in host.router.routers
    host.handle_frame(ra(lifetime=30), 4.0)
    advance(host, 34.1)
    assert R not in host.router.routers
    assert "router.removed" in [e.kind for e in host.pop_events()]


def test_ra_parameters(host: Ipv6Host) -> None:
    before = host.params.reachable_time
    host.handle_frame(ra(chlim=32, reach=10000, retrans=2000), 2.0)
    assert host.params.cur_hop_limit == 32
    assert host.params.base_reachable_time == 10.0
    assert 5.0 <= host.params.reachable_time <= 15.0 and host.params.reachable_time != before
    assert host.params.retrans_timer == 2.0
    out = host.ping(a(PEER_LL), 3.0, 1, 1)
    assert Ether(out[0])[IPv6].hlim == 255  # NS keeps 255
    host.handle_frame(
        to_host(IPv6(src=PEER_LL, dst=HOST_LL, hlim=255) / ICMPv6ND_NA(tgt=PEER_LL, S=1)
                / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC_S)), 3.1,
    )  # fmt: skip
    reply = host.handle_frame(to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6EchoRequest()), 3.2)
    assert Ether(reply[0])[IPv6].hlim == 32  # originated packets use CurHopLimit


def test_mtu_option(host: Ipv6Host) -> None:
    host.handle_frame(ra(mtu=1000), 2.0)  # below 1280: ignored
    host.handle_frame(ra(mtu=9000), 2.0)  # above the NIC's maximum: ignored
    assert host.mtu == 1500 and host.counters["nd.ra_bad_mtu"] == 2
    host.handle_frame(ra(mtu=1400), 2.0)
    assert host.mtu == 1400
    host.handle_frame(
        to_host(IPv6(src=PEER_LL, dst=HOST_LL, hlim=255) / ICMPv6ND_NS(tgt=HOST_LL)
                / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_S)), 2.1,
    )  # fmt: skip
    req = to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6EchoRequest(data=bytes(1400)))
    frags = host.handle_frame(req, 2.2)
    assert len(frags) == 2
    assert all(len(f) - 14 <= 1400 for f in frags)
    assert all(Ether(f).haslayer(IPv6ExtHdrFragment) for f in frags)


def test_off_link_destination_goes_to_the_router(host: Ipv6Host) -> None:
    far = a("2001:db8:9::1")
    assert host.ping(far, 2.0, 1, 1) == []
    assert only_drop(host) == "drop.NO_ROUTE"  # RFC 4943: no on-link assumption
    slaac_up(host, 3.0, slla=None)
    out = host.ping(far, 5.0, 1, 2)
    ns = Ether(out[0])
    assert ns[ICMPv6ND_NS].tgt == ROUTER_LL  # resolving the router, not the destination
    assert ns[IPv6].src == HOST_GLOBAL  # the prompting packet's source (§7.2.2)
    flushed = host.handle_frame(
        to_host(IPv6(src=ROUTER_LL, dst=HOST_GLOBAL, hlim=255)
                / ICMPv6ND_NA(tgt=ROUTER_LL, S=1, R=1)
                / ICMPv6NDOptDstLLAddr(lladdr=ROUTER_MAC_S)), 5.1,
    )  # fmt: skip
    p = Ether(flushed[0])
    assert (p.dst, p[IPv6].dst, p[IPv6].src) == (ROUTER_MAC_S, "2001:db8:9::1", HOST_GLOBAL)


def test_router_selection_prefers_reachable_then_round_robin(host: Ipv6Host) -> None:
    r2 = "fe80::2"
    host.handle_frame(ra(slla=None), 2.0)
    host.handle_frame(ra(src=r2, slla=None), 2.0)
    picks = {host.router.select_router() for _ in range(4)}
    assert picks == {R, a(r2)}  # both unknown: round-robin
    host.nud.on_lladdr(a(r2), bytes.fromhex("020000000002"), 2.5)  # r2 probably reachable
    assert {host.router.select_router() for _ in range(4)} == {a(r2)}


def _redirect(dst: str, tgt: str, src: str = ROUTER_LL, tlla: str | None = PEER_MAC_S) -> bytes:
    pkt = IPv6(src=src, dst=HOST_GLOBAL, hlim=255) / ICMPv6ND_Redirect(tgt=tgt, dst=dst)
    if tlla is not None:
        pkt /= ICMPv6NDOptDstLLAddr(lladdr=tlla)
    return to_host(pkt, src_mac=ROUTER_MAC_S)


def test_redirect_to_better_router_and_to_on_link(host: Ipv6Host) -> None:
    slaac_up(host, 2.0)
    far = "2001:db8:9::1"
    assert host.handle_frame(_redirect(far, "fe80::ff:fe00:aa"), 3.0) == []
    assert host.router.next_hop(a(far)) == a("fe80::ff:fe00:aa")
    entry = host.nud.get(a("fe80::ff:fe00:aa"))
    assert entry is not None and entry.is_router and entry.state is NudState.STALE
    out = host.ping(a(far), 3.5, 1, 1)
    assert Ether(out[0]).dst == PEER_MAC_S and Ether(out[0])[IPv6].dst == far
    # target = destination: the destination is on-link
    near = "2001:db8:7::5"
    host.handle_frame(_redirect(near, near, tlla="02:00:00:00:00:cc"), 4.0)
    assert host.router.next_hop(a(near)) == a(near)
    assert not host.nud.get(a(near)).is_router  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (_redirect("2001:db8:9::1", "fe80::7", src="fe80::99"), "not the first hop"),
        (_redirect("2001:db8:9::1", "2001:db8:5::7"), "target neither link-local nor dst"),
    ],
)
def test_invalid_redirects_dropped(host: Ipv6Host, frame: bytes, why: str) -> None:
    slaac_up(host, 2.0)
    host.counters.clear()
    assert host.handle_frame(frame, 3.0) == [], why
    assert only_drop(host) == "drop.BAD_SOURCE"
    assert host.router.destinations == {}


def test_packet_too_big_lowers_path_mtu_and_ages_out(host: Ipv6Host) -> None:
    host.handle_frame(
        to_host(IPv6(src=PEER_LL, dst=HOST_LL, hlim=255) / ICMPv6ND_NS(tgt=HOST_LL)
                / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_S)), 2.0,
    )  # fmt: skip
    sent = IPv6(src=HOST_LL, dst=PEER_LL) / ICMPv6EchoReply(data=bytes(1400))
    ptb = to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6PacketTooBig(mtu=1300) / sent)
    assert host.handle_frame(ptb, 3.0) == []
    assert host.router.path_mtu(a(PEER_LL), 3.0) == 1300
    req = to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6EchoRequest(data=bytes(1400)))
    frags = host.handle_frame(req, 4.0)
    assert len(frags) == 2 and max(len(f) - 14 for f in frags) <= 1300
    assert host.router.path_mtu(a(PEER_LL), 3.0 + 600) == 1500  # RFC 8201 §4 aging
    low = to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6PacketTooBig(mtu=1000) / sent)
    host.handle_frame(low, 700.0)
    assert host.counters["drop.BAD_LENGTH"] == 1  # below 1280: discarded
    assert host.router.path_mtu(a(PEER_LL), 700.0) == 1500


def test_ns_from_link_local_source_for_global_target(host: Ipv6Host) -> None:
    slaac_up(host)
    ns = to_host(
        IPv6(src=PEER_LL, dst="ff02::1:ff01:203", hlim=255)
        / ICMPv6ND_NS(tgt=HOST_GLOBAL) / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_S)
    )
    out = host.handle_frame(ns, 5.0)
    p = checksums_ok(out[0])
    assert (p[IPv6].src, p[IPv6].dst, p.dst) == (HOST_GLOBAL, PEER_LL, PEER_MAC_S)
    assert (p[ICMPv6ND_NA].tgt, p[ICMPv6ND_NA].S, p[ICMPv6ND_NA].O) == (HOST_GLOBAL, 1, 1)


def test_source_address_selection_rfc6724(host: Ipv6Host) -> None:
    slaac_up(host, 2.0, prefixes=prefix(INF, INF) + prefix(INF, 0, "2001:db8:2::"))
    g1 = G
    g2 = a("2001:db8:2::215:5dff:fe01:203")
    assert host.address_state(g2) is AddrState.DEPRECATED
    sel = host.addrconf.select_source
    assert sel(g2) == g2  # rule 1: the destination itself
    assert sel(a("fe80::9")) == LL  # rule 2: link-local scope for a link-local destination
    assert sel(a("ff02::1")) == LL
    assert sel(a("ff0e::1")) in (g1, g2) and sel(a("ff0e::1")) == g1  # rule 2 then rule 3
    assert sel(a("2001:db8:2::9")) == g1  # rule 3: avoid deprecated beats rule 8
    host.add_address(a("2001:db8:2::1:1"), now=3.0)
    advance(host, 4.5)
    assert sel(a("2001:db8:2::9")) == a("2001:db8:2::1:1")  # rule 8: longest prefix
    assert sel(a("2001:db8:1::9")) == g1
    assert scope(a("fec0::1")) == 5 and scope(a("ff05::1")) == 5 and scope(a("::1")) == 2
    assert label(a("2002::1")) == 2 and label(a("fd00::1")) == 13 and label(a("2001:db9::")) == 1
    assert common_prefix_len(a("2001:db8::1"), a("2001:db8::3")) == 126
    assert common_prefix_len(a("2001:db8::1"), a("2001:db8::3"), 64) == 64


def test_manual_address_is_on_link_and_answers(host: Ipv6Host) -> None:
    host.add_address(a("2001:db8:5::1"), 64, now=2.0)
    advance(host, 3.5)
    assert host.address_state(a("2001:db8:5::1")) is AddrState.PREFERRED
    assert host.router.on_link(a("2001:db8:5::99"))
    with pytest.raises(ValueError):
        host.add_address(a("ff02::5"))
    with pytest.raises(ValueError):
        host.add_address(a("2001:db8::1"), 0)
