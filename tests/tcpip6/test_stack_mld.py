"""MLDv2 listener (RFC 3810) in virtual time: reports on join/leave, query responses within the
Maximum Response Delay, MLDv1 compatibility, and the NIC multicast list."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet6 import (
    ICMPv6MLDMultAddrRec,
    ICMPv6MLDone,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6MLReport,
    ICMPv6MLReport2,
    IPv6,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from tcpip6.stack.context import IidMode
from tcpip6.stack.host import Ipv6Host
from tcpip6.stack.mld import reportable
from tests.tcpip6.stack6_helpers import (
    HOST_LL,
    HOST_SN,
    ROUTER_LL,
    ROUTER_MAC_S,
    a,
    advance,
    checksums_ok,
    only_drop,
    to_host,
    up_host,
)

GROUP = "ff05::1:3"


def query(mrd_ms: int = 10000, group: str = "::", *, dst: str = "ff02::1",
          src: str = ROUTER_LL, qrv: int = 2, sources: list[str] | None = None,
          v1: bool = False) -> bytes:  # fmt: skip
    if v1:
        body: Packet = ICMPv6MLQuery(mrd=mrd_ms, mladdr=group)
    else:
        body = ICMPv6MLQuery2(mrd=mrd_ms, mladdr=group, QRV=qrv, sources=sources or [])
    pkt = IPv6(src=src, dst=dst, hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / body
    return to_host(pkt, src_mac=ROUTER_MAC_S)


def reports(frames: list[tuple[float, bytes]]) -> list[tuple[float, Packet]]:
    return [(t, Ether(f)) for t, f in frames if Ether(f).haslayer(ICMPv6MLReport2)]


def mld_records(p: Packet) -> list[Packet]:
    """scapy dissects the 2nd.. records as payloads of the first: flatten them."""
    out = []
    for r in p[ICMPv6MLReport2].records:
        while isinstance(r, ICMPv6MLDMultAddrRec):
            out.append(r)
            r = r.payload
    return out


def records(p: Packet) -> list[tuple[int, str, list[str]]]:
    return [(r.rtype, r.dst, list(r.sources)) for r in mld_records(p)]


@pytest.fixture
def host() -> Ipv6Host:
    return up_host(max_rtr_solicitations=0)


def assert_mld_envelope(p: Packet) -> None:
    """RFC 3810 §5: link-local source, hop limit 1, Router Alert, to ff02::16."""
    checksums_ok(bytes(p))
    assert (p[IPv6].src, p[IPv6].dst, p[IPv6].hlim) == (HOST_LL, "ff02::16", 1)
    assert p.dst == "33:33:00:00:00:16"
    ra = p[IPv6ExtHdrHopByHop].options[0]
    assert (ra.otype, ra.value) == (5, 0)


def test_join_sends_robustness_state_change_reports(host: Ipv6Host) -> None:
    gen = host.multicast_generation
    out = host.join_group(a(GROUP), 10.0)
    assert host.multicast_generation == gen + 1
    assert "33:33:00:01:00:03" in [m.hex(":") for m in host.multicast_macs()]
    first = Ether(out[0])
    assert_mld_envelope(first)
    assert records(first) == [(4, GROUP, [])]  # CHANGE_TO_EXCLUDE_MODE {}
    later = reports(advance(host, 20.0))
    assert len(later) == 1  # robustness 2: one retransmission
    assert 10.0 < later[0][0] <= 11.0  # within (0, Unsolicited Report Interval]
    assert host.join_group(a(GROUP), 21.0) == []  # second listener: no report


def test_leave_sends_to_include_and_forgets_mac(host: Ipv6Host) -> None:
    host.join_group(a(GROUP), 10.0)
    host.join_group(a(GROUP), 10.0)
    advance(host, 12.0)
    assert host.leave_group(a(GROUP), 13.0) == []  # still one listener
    out = host.leave_group(a(GROUP), 14.0)
    assert records(Ether(out[0])) == [(3, GROUP, [])]  # CHANGE_TO_INCLUDE_MODE {}
    assert "33:33:00:01:00:03" not in [m.hex(":") for m in host.multicast_macs()]
    assert len(reports(advance(host, 20.0))) == 1


def test_general_query_response_delay_within_max_response_delay() -> None:
    delays = []
    for seed in range(40):
        h = up_host(seed=seed, max_rtr_solicitations=0)
        h.join_group(a(GROUP), 5.0)
        advance(h, 8.0)
        assert h.handle_frame(query(2000), 10.0) == []
        rep = reports(advance(h, 20.0))
        assert len(rep) == 1
        t, p = rep[0]
        assert 10.0 <= t <= 12.0
        delays.append(t - 10.0)
        assert_mld_envelope(p)
        assert sorted(records(p)) == sorted([(2, HOST_SN, []), (2, GROUP, [])])  # IS_EX {}
    assert max(delays) > 1.0 and min(delays) < 1.0  # really random over [0, 2 s]


def test_general_query_pending_sooner_is_kept(host: Ipv6Host) -> None:
    host.handle_frame(query(1000), 10.0)
    first = host._ctx.timers.get(("mld.general",))
    assert first is not None and 10.0 <= first <= 11.0
    host.handle_frame(query(60000), 10.5)  # a later, longer query: rule 1
    assert host._ctx.timers.get(("mld.general",)) == first
    assert len(reports(advance(host, 80.0))) == 1


def test_group_specific_query(host: Ipv6Host) -> None:
    host.join_group(a(GROUP), 5.0)
    advance(host, 8.0)
    host.handle_frame(query(500, GROUP, dst=GROUP), 10.0)
    rep = reports(advance(host, 20.0))
    assert len(rep) == 1 and 10.0 <= rep[0][0] <= 10.5
    assert records(rep[0][1]) == [(2, GROUP, [])]
    host.handle_frame(query(500, "ff05::9", dst="ff02::1"), 30.0)
    assert reports(advance(host, 40.0)) == []
    assert host.counters["mld.query_not_joined"] == 1


def test_group_and_source_specific_query(host: Ipv6Host) -> None:
    host.join_group(a(GROUP), 5.0)
    advance(host, 8.0)
    host.handle_frame(query(500, GROUP, dst=GROUP, sources=["2001:db8::10"]), 10.0)
    rep = reports(advance(host, 20.0))
    assert records(rep[0][1]) == [(1, GROUP, ["2001:db8::10"])]  # IS_IN {queried}


def test_query_robustness_variable_is_adopted(host: Ipv6Host) -> None:
    host.handle_frame(query(100, qrv=3), 10.0)
    advance(host, 11.0)
    out = host.join_group(a(GROUP), 12.0)
    assert len(out) + len(reports(advance(host, 20.0))) == 3


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"src": "2001:db8::1"}, "drop.BAD_SOURCE"),  # RFC 3810 §5.1.14
        ({"src": "::"}, "drop.BAD_SOURCE"),
    ],
)
def test_query_validation(host: Ipv6Host, kw: dict[str, Any], reason: str) -> None:
    assert host.handle_frame(query(**kw), 10.0) == []
    assert only_drop(host) == reason
    assert host.next_deadline() is None or host._ctx.timers.get(("mld.general",)) is None


def test_mldv1_querier_compatibility(host: Ipv6Host) -> None:
    host.join_group(a(GROUP), 5.0)
    advance(host, 8.0)
    host.handle_frame(query(1000, v1=True), 10.0)
    sent = [(t, Ether(f)) for t, f in advance(host, 20.0)]
    v1 = [(t, p) for t, p in sent if p.haslayer(ICMPv6MLReport)]
    assert sorted(p[ICMPv6MLReport].mladdr for _, p in v1) == sorted([GROUP, HOST_SN])
    assert all(10.0 <= t <= 11.0 for t, _ in v1)
    assert all(p[IPv6].dst == p[ICMPv6MLReport].mladdr and p[IPv6].hlim == 1 for _, p in v1)
    out = host.leave_group(a(GROUP), 30.0)  # within the Older Version Querier Present Timeout
    done = Ether(out[0])
    assert done.haslayer(ICMPv6MLDone) and done[IPv6].dst == "ff02::2"
    out = host.join_group(a("ff05::7"), 400.0)  # timeout over: MLDv2 again
    assert Ether(out[0]).haslayer(ICMPv6MLReport2)


def test_reports_from_others_are_for_routers(host: Ipv6Host) -> None:
    host.join_group(a("ff02::16"), 1.0)  # so that the frame passes the filters
    other = to_host(
        IPv6(src="fe80::9", dst="ff02::16", hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / ICMPv6MLReport2()
    )  # fmt: skip
    host.counters.clear()
    assert host.handle_frame(other, 2.0) == []
    assert only_drop(host) == "drop.FOR_ROUTERS"


def test_many_groups_split_over_reports(host: Ipv6Host) -> None:
    for i in range(100):
        host.join_group(a(f"ff05::2:{i:x}"), 5.0)
    advance(host, 8.0)
    host.handle_frame(query(100), 10.0)
    rep = reports(advance(host, 11.0))
    assert len(rep) == 2
    assert sum(len(mld_records(p)) for _, p in rep) == 101  # + solicited-node
    assert all(len(bytes(p)) - 14 <= 1500 for _, p in rep)


def test_multicast_list_follows_addresses() -> None:
    h = up_host(max_rtr_solicitations=0)
    gen = h.multicast_generation
    h.add_address(a("2001:db8::215:5dff:fe01:203"), now=2.0)  # same solicited-node group
    assert h.multicast_generation == gen
    h.add_address(a("2001:db8::1234"), now=2.0)
    assert h.multicast_generation == gen + 1
    assert [m.hex(":") for m in h.multicast_macs()] == [
        "33:33:00:00:00:01", "33:33:ff:01:02:03", "33:33:ff:00:12:34",
    ]  # fmt: skip
    h.remove_address(a("2001:db8::1234"), 3.0)
    assert h.multicast_generation == gen + 2
    assert len(h.multicast_macs()) == 2
    s = up_host(iid_mode=IidMode.STABLE, stable_secret=b"x" * 16)
    assert len(s.multicast_macs()) == 2 and s.multicast_macs()[1] != h.multicast_macs()[1]


def test_reportable_groups() -> None:
    assert not reportable(a("ff02::1"))  # never the all-nodes group
    assert not reportable(a("ff01::5"))  # interface-local scope
    assert reportable(a("ff02::1:ff00:1")) and reportable(a("ff0e::1"))
