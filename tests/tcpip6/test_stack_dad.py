"""Duplicate Address Detection (RFC 4862 §5.4) and stable IIDs (RFC 7217) in virtual time."""

from __future__ import annotations

import pytest
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)
from scapy.layers.l2 import Ether

from tcpip6.errors import ConfigError
from tcpip6.stack.addrconf import AddrOrigin, AddrState, stable_iid
from tcpip6.stack.context import HostConfig, IidMode
from tcpip6.stack.host import Ipv6Host
from tcpip6.wire.ipv6 import LINK_LOCAL_PREFIX, addr_str, solicited_node
from tests.tcpip6.stack6_helpers import (
    HOST_LL,
    HOST_MAC_S,
    HOST_SN,
    HOST_SN_MAC,
    PEER_LL,
    PEER_MAC_S,
    a,
    advance,
    checksums_ok,
    drops,
    new_host,
    to_host,
    up_host,
)

LL = a(HOST_LL)
SECRET = b"0123456789abcdef-secret"


def _sn(target: str) -> str:
    return addr_str(solicited_node(a(target)))


def dad_probe(target: str = HOST_LL, src_mac: str = PEER_MAC_S) -> bytes:
    return to_host(
        IPv6(src="::", dst=_sn(target), hlim=255) / ICMPv6ND_NS(tgt=target), src_mac=src_mac
    )


def na_for(target: str, dst: str = "ff02::1") -> bytes:
    return to_host(
        IPv6(src=PEER_LL, dst=dst, hlim=255)
        / ICMPv6ND_NA(tgt=target, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC_S)
    )


def test_start_sequence_with_random_delays_rfc4862_5_4_2() -> None:
    h = new_host(seed=7, startup_delay=True)
    assert h.address_state(LL) is AddrState.TENTATIVE
    assert [m.hex(":") for m in h.multicast_macs()] == ["33:33:00:00:00:01", HOST_SN_MAC]
    assert h.start(0.0) == []  # everything waits for its random delay
    sent = advance(h, 0.999999)
    kinds = [(t, Ether(f)) for t, f in sent]
    mld = [(t, p) for t, p in kinds if p.haslayer(ICMPv6MLReport2)]
    dad = [(t, p) for t, p in kinds if p.haslayer(ICMPv6ND_NS)]
    rs = [(t, p) for t, p in kinds if p.haslayer(ICMPv6ND_RS)]
    assert len(dad) == 1 and len(rs) == 1 and len(mld) >= 1
    t_dad, ns = dad[0]
    assert 0.0 < t_dad < 1.0
    assert mld[0][0] == t_dad and kinds.index(mld[0]) < kinds.index(dad[0])  # join first
    # the DAD probe: from ::, to the solicited-node group, hop limit 255, no SLLA
    checksums_ok(bytes(ns))
    assert (ns[IPv6].src, ns[IPv6].dst, ns[IPv6].hlim) == ("::", HOST_SN, 255)
    assert ns.dst == HOST_SN_MAC and ns[ICMPv6ND_NS].tgt == HOST_LL
    assert not ns.haslayer(ICMPv6NDOptSrcLLAddr)
    # the MLD report while tentative: from ::, hop limit 1, Router Alert, to ff02::16
    rep = mld[0][1]
    assert (rep[IPv6].src, rep[IPv6].dst, rep[IPv6].hlim) == ("::", "ff02::16", 1)
    assert rep[IPv6ExtHdrHopByHop].options[0].otype == RouterAlert().otype
    assert rep[ICMPv6MLReport2].records[0].dst == HOST_SN
    # the RS while the link-local is tentative: from :: without SLLA (RFC 4861 §4.1)
    t_rs, r = rs[0]
    assert 0.0 < t_rs < 1.0
    assert r[IPv6].src == "::" and not r.haslayer(ICMPv6NDOptSrcLLAddr) and r[IPv6].hlim == 255
    assert h.address_state(LL) is AddrState.TENTATIVE
    later = advance(h, t_dad + 1.0)  # RetransTimer after the only probe
    assert h.address_state(LL) is AddrState.PREFERRED
    assert h.counters["dad.succeeded"] == 1
    # RFC 3590 §4: the report is repeated from the now valid link-local address
    assert any(p.haslayer(ICMPv6MLReport2) and p[IPv6].src == HOST_LL
               for p in (Ether(f) for _, f in later))  # fmt: skip
    assert any(e.kind == "address.assigned" for e in h.pop_events())


def test_startup_delays_differ_per_seed_and_stay_below_one_second() -> None:
    firsts = set()
    for seed in range(20):
        h = new_host(seed=seed, startup_delay=True)
        h.start(10.0)
        d = h.next_deadline()
        assert d is not None and 10.0 <= d <= 11.0
        firsts.add(d)
    assert len(firsts) == 20


def test_dad_transmits_two_and_zero() -> None:
    h = new_host(dad_transmits=2, max_rtr_solicitations=0)
    out = h.start(0.0)
    assert sum(Ether(f).haslayer(ICMPv6ND_NS) for f in out) == 1
    second = advance(h, 1.0)
    assert sum(Ether(f).haslayer(ICMPv6ND_NS) for _, f in second) == 1
    assert h.address_state(LL) is AddrState.TENTATIVE
    advance(h, 2.0)
    assert h.address_state(LL) is AddrState.PREFERRED
    h0 = new_host(dad_transmits=0)
    out0 = h0.start(0.0)
    assert h0.address_state(LL) is AddrState.PREFERRED
    assert not any(Ether(f).haslayer(ICMPv6ND_NS) for f in out0)


def test_tentative_address_answers_nothing() -> None:
    h = new_host(max_rtr_solicitations=0)
    h.start(0.0)
    ns = to_host(
        IPv6(src=PEER_LL, dst=HOST_SN, hlim=255)
        / ICMPv6ND_NS(tgt=HOST_LL)
        / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_S)
    )
    assert h.handle_frame(ns, 0.5) == []  # §5.4.3: NS from a unicast source is ignored
    echo = to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6EchoRequest())
    assert h.handle_frame(echo, 0.5) == []  # §5.4: packets to a tentative address dropped
    assert drops(h) == {"drop.TENTATIVE": 2}
    assert h.address_state(LL) is AddrState.TENTATIVE  # not a collision


def test_collision_by_dad_probe_disables_eui64_interface() -> None:
    h = new_host(max_rtr_solicitations=0)
    h.start(0.0)
    gen = h.multicast_generation
    out = h.handle_frame(dad_probe(), 0.4)
    assert len(out) == 1  # only the MLD leave of the solicited-node group (TO_IN {})
    rec = Ether(out[0])[ICMPv6MLReport2].records[0]
    assert (rec.rtype, rec.dst) == (3, HOST_SN)
    assert h.address_state(LL) is AddrState.DUPLICATE
    assert h.counters["dad.duplicate"] == 1
    events = [e.kind for e in h.pop_events()]
    assert "dad.duplicate" in events and "interface.disabled" in events  # §5.4.5
    assert h.disabled and h.next_deadline() is None
    assert h.multicast_generation != gen  # the solicited-node group was left
    assert h.handle_frame(to_host(IPv6(src=PEER_LL, dst="ff02::1") / ICMPv6EchoRequest()), 1) == []
    assert h.counters["drop.DISABLED"] == 1
    assert h.handle_timer(5.0) == [] and h.start(6.0) == []


def test_collision_by_na_on_manual_global_address() -> None:
    h = up_host(max_rtr_solicitations=0)
    g = "2001:db8::5"
    h.add_address(a(g), now=2.0)
    assert h.address_state(a(g)) is AddrState.TENTATIVE
    h.handle_frame(na_for(g), 2.5)  # §5.4.4
    assert h.address_state(a(g)) is AddrState.DUPLICATE
    assert not h.disabled  # only a MAC-derived link-local disables the interface
    advance(h, 10.0)
    assert h.address_state(a(g)) is AddrState.DUPLICATE
    assert h.addrconf.select_source(a("2001:db8::9")) == LL  # the duplicate is never used
    ns = to_host(
        IPv6(src="2001:db8::9", dst=_sn(g), hlim=255)
        / ICMPv6ND_NS(tgt=g) / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_S)
    )
    assert h.handle_frame(ns, 11.0) == []


def test_na_for_assigned_address_is_logged_not_fatal() -> None:
    h = up_host()
    h.pop_events()
    assert h.handle_frame(na_for(HOST_LL), 3.0) == []
    assert h.address_state(LL) is AddrState.PREFERRED
    assert [e.kind for e in h.pop_events()] == ["dad.conflict"]


def test_our_own_looped_probe_is_not_a_collision() -> None:
    h = new_host(max_rtr_solicitations=0)
    h.start(0.0)
    assert h.handle_frame(dad_probe(src_mac=HOST_MAC_S), 0.2) == []
    assert h.counters["drop.LOOPED"] == 1
    advance(h, 2.0)
    assert h.address_state(LL) is AddrState.PREFERRED


def test_assigned_address_defended_against_dad_probe() -> None:
    h = up_host()
    out = h.handle_frame(dad_probe(), 3.0)
    p = checksums_ok(out[0])
    assert (p.dst, p[IPv6].src, p[IPv6].dst) == ("33:33:00:00:00:01", HOST_LL, "ff02::1")
    assert (p[ICMPv6ND_NA].S, p[ICMPv6ND_NA].O, p[ICMPv6ND_NA].tgt) == (0, 1, HOST_LL)


def test_stable_iids_rfc7217_and_regeneration_after_collision() -> None:
    h = new_host(iid_mode=IidMode.STABLE, stable_secret=SECRET, max_rtr_solicitations=0)
    ll1 = h.link_local
    assert ll1[:8] == LINK_LOCAL_PREFIX and ll1 != LL
    assert ll1[8:] == stable_iid(LINK_LOCAL_PREFIX + bytes(8), h.mac, b"", 0, SECRET)
    # stable: the same inputs give the same address; another secret another one
    again = new_host(iid_mode=IidMode.STABLE, stable_secret=SECRET)
    other = new_host(iid_mode=IidMode.STABLE, stable_secret=SECRET[::-1])
    assert again.link_local == ll1 and other.link_local != ll1
    h.start(0.0)
    h.handle_frame(dad_probe(addr_str(ll1)), 0.5)
    assert h.address_state(ll1) is AddrState.DUPLICATE
    assert not h.disabled
    ll2 = h.link_local
    assert ll2 != ll1 and h.address_state(ll2) is AddrState.TENTATIVE
    assert ll2[8:] == stable_iid(LINK_LOCAL_PREFIX + bytes(8), h.mac, b"", 1, SECRET)
    advance(h, 3.0)  # random IDGEN delay (<= 1 s) + RetransTimer
    assert h.address_state(ll2) is AddrState.PREFERRED
    assert h.counters["dad.idgen_retry"] == 1


def test_stable_regeneration_gives_up_after_idgen_retries() -> None:
    h = new_host(iid_mode=IidMode.STABLE, stable_secret=SECRET, max_rtr_solicitations=0)
    h.start(0.0)
    now = 0.1
    for _ in range(10):
        ll = h.link_local
        if h.address_state(ll) is not AddrState.TENTATIVE:
            break
        h.handle_frame(dad_probe(addr_str(ll)), now)
        now += 0.01
    lls = [x for x in h.addresses if x.origin is AddrOrigin.LINK_LOCAL]
    assert len(lls) == 4  # the first try and IDGEN_RETRIES = 3 more
    assert all(x.state is AddrState.DUPLICATE for x in lls)
    assert h.counters["dad.idgen_retry"] == 3


def test_secret_required_for_stable_mode() -> None:
    with pytest.raises(ConfigError):
        HostConfig(iid_mode=IidMode.STABLE, stable_secret=b"short")
    with pytest.raises(ConfigError):
        HostConfig(hop_limit=0)
    with pytest.raises(ConfigError):
        HostConfig(neighbor_cache_size=0)
    with pytest.raises(ValueError):
        Ipv6Host(b"\x01" + bytes(5))
