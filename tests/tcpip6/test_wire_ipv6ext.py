"""Extension header codecs against scapy: Fragment, Routing, options TLVs, Router Alert HBH."""

from __future__ import annotations

import pytest
from scapy.layers.inet6 import (
    HBHOptUnknown,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    RouterAlert,
)

from tcpip6.wire import DropReason, MalformedFrame
from tcpip6.wire.ipv6ext import (
    FRAGMENT_HEADER_LEN,
    OPT_ROUTER_ALERT,
    FragmentHeader,
    OptionAction,
    RoutingHeader,
    ext_len,
    find_option,
    fragment_header,
    hop_by_hop_router_alert,
    scan_options,
)


def test_fragment_header_round_trip_against_scapy() -> None:
    for offset, more, ident in [(0, True, 1), (1448, True, 0xDEADBEEF), (2896, False, 7)]:
        ref = bytes(IPv6ExtHdrFragment(nh=58, offset=offset // 8, m=int(more), id=ident))
        assert fragment_header(58, offset, more, ident) == ref
        fh = FragmentHeader.parse(ref, 0, len(ref))
        assert fh == FragmentHeader(58, offset, more, ident)
        assert fh.emit() == ref
        assert fh.atomic == (offset == 0 and not more)
    assert FragmentHeader.parse(fragment_header(17, 0, False, 9), 0, 8).atomic


def test_fragment_header_rejects_bad_offsets_and_truncation() -> None:
    with pytest.raises(ValueError):
        fragment_header(58, 12, True, 1)  # not a multiple of 8
    with pytest.raises(ValueError):
        fragment_header(58, 0x10000, True, 1)
    with pytest.raises(MalformedFrame) as ei:
        FragmentHeader.parse(bytes(7), 0, 7)
    assert ei.value.reason is DropReason.TRUNCATED


def test_router_alert_hop_by_hop_matches_scapy() -> None:
    ours = hop_by_hop_router_alert(58)
    ref = bytes(IPv6ExtHdrHopByHop(nh=58, options=[RouterAlert(value=0), PadN(optdata=b"")]))
    assert ours == ref
    assert len(ours) == 8 and ext_len(ours, 0, 8) == 8
    ra = find_option(ours, 2, 8, OPT_ROUTER_ALERT)
    assert ra is not None and bytes(ra) == b"\x00\x00"
    assert find_option(ours, 2, 8, 0x3E) is None


def test_routing_header_fixed_part_from_scapy() -> None:
    raw = bytes(IPv6ExtHdrRouting(nh=17, type=0, addresses=["2001:db8::1", "2001:db8::2"]))
    rh = RoutingHeader.parse(raw, 0, len(raw))
    assert rh == RoutingHeader(17, 40, 0, 2)
    with pytest.raises(MalformedFrame):
        RoutingHeader.parse(raw[:20], 0, 20)


def _opts(*options: object) -> bytes:
    """The TLV area of a Destination Options header built by scapy (autopad on)."""
    raw = bytes(IPv6ExtHdrDestOpt(nh=59, options=list(options)))
    return raw


@pytest.mark.parametrize(
    ("otype", "action"),
    [
        (0x1E, None),  # 00: skip
        (0x5E, OptionAction.DISCARD),  # 01
        (0x9E, OptionAction.DISCARD_ICMP),  # 10
        (0xDE, OptionAction.DISCARD_ICMP_UNICAST),  # 11
    ],
)
def test_scan_options_applies_the_high_order_bits(otype: int, action: OptionAction | None) -> None:
    raw = _opts(HBHOptUnknown(otype=otype, optdata=b"ab"))
    res = scan_options(raw, 2, ext_len(raw, 0, len(raw)), frozenset())
    if action is None:
        assert res is None
    else:
        assert res == (2, action)  # the offset of the option's type octet


def test_scan_options_first_bad_option_wins_and_known_are_skipped() -> None:
    raw = _opts(
        HBHOptUnknown(otype=0x1E, optdata=b"x"),
        HBHOptUnknown(otype=0x3F, optdata=b""),  # "known" below
        HBHOptUnknown(otype=0xC1, optdata=b"yy"),
        HBHOptUnknown(otype=0x41, optdata=b""),
    )
    end = ext_len(raw, 0, len(raw))
    ptr, action = scan_options(raw, 2, end, frozenset({0x3F})) or (0, None)
    assert action is OptionAction.DISCARD_ICMP_UNICAST
    assert raw[ptr] == 0xC1


def test_scan_options_overrun_is_malformed() -> None:
    area = bytes([0x1E, 9, 1, 2])  # claims 9 data bytes, has 2
    with pytest.raises(MalformedFrame) as ei:
        scan_options(area, 0, len(area), frozenset())
    assert ei.value.reason is DropReason.BAD_OPTION
    assert scan_options(bytes([0, 0, 1, 0]), 0, 4, frozenset()) is None  # Pad1 Pad1 PadN(0)


def test_ext_len_bounds() -> None:
    hbh = bytes(IPv6ExtHdrHopByHop(nh=58, options=[PadN(optdata=bytes(12))]))
    assert ext_len(hbh, 0, len(hbh)) == len(hbh) == 16
    with pytest.raises(MalformedFrame):
        ext_len(hbh, 0, 15)
    with pytest.raises(MalformedFrame):
        ext_len(hbh, 0, 1)
    assert FRAGMENT_HEADER_LEN == 8
