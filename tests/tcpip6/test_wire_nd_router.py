"""RS / RA / Redirect / ND options and ICMPv6 error codecs, byte-identical to scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRedirectedHdr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
)

from tcpip6.wire import DropReason, MalformedFrame, icmpv6
from tcpip6.wire.icmpv6 import PrefixInfo
from tcpip6.wire.ipv6 import ALL_NODES, ALL_ROUTERS, UNSPECIFIED, Ipv6Header, parse_addr

MAC = bytes.fromhex("02aabbccddee")
MAC_S = "02:aa:bb:cc:dd:ee"
R = parse_addr("fe80::1")
H = parse_addr("fe80::2")


def msg_of(raw: bytes) -> icmpv6.Icmpv6Message:
    ip, payload = Ipv6Header.parse(raw)
    return icmpv6.parse(ip.src, ip.dst, payload)


def test_router_solicitation_matches_scapy_and_parses() -> None:
    ref = IPv6(src="fe80::2", dst="ff02::2") / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MAC_S)
    ours = icmpv6.router_solicitation(H, ALL_ROUTERS, MAC)
    assert ours == bytes(ref)[40:]
    rs = icmpv6.parse_router_solicitation(msg_of(bytes(ref)))
    assert rs.options.source_lladdr == MAC
    # §4.1: from :: there is no SLLA option
    bare = IPv6(src="::", dst="ff02::2") / ICMPv6ND_RS()
    assert icmpv6.router_solicitation(UNSPECIFIED, ALL_ROUTERS, None) == bytes(bare)[40:]


def _ra_ref() -> bytes:
    return bytes(
        IPv6(src="fe80::1", dst="ff02::1", hlim=255)
        / ICMPv6ND_RA(chlim=64, M=1, O=0, prf=0, routerlifetime=1800, reachabletime=30000,
                      retranstimer=1000)
        / ICMPv6NDOptSrcLLAddr(lladdr=MAC_S)
        / ICMPv6NDOptMTU(mtu=1400)
        / ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, validlifetime=86400,
                                preferredlifetime=14400, prefix="2001:db8:1::")
        / ICMPv6NDOptPrefixInfo(prefixlen=48, L=1, A=0, validlifetime=0xFFFFFFFF,
                                preferredlifetime=0xFFFFFFFF, prefix="2001:db8:2::")
    )  # fmt: skip


def test_router_advertisement_matches_scapy_and_parses() -> None:
    ref = _ra_ref()
    prefixes = (
        PrefixInfo(64, True, True, 86400, 14400, parse_addr("2001:db8:1::")),
        PrefixInfo(48, True, False, 0xFFFFFFFF, 0xFFFFFFFF, parse_addr("2001:db8:2::")),
    )
    ours = icmpv6.router_advertisement(
        R, ALL_NODES, cur_hop_limit=64, managed=True, router_lifetime=1800,
        reachable_time=30000, retrans_timer=1000, src_lladdr=MAC, mtu=1400, prefixes=prefixes,
    )  # fmt: skip
    assert ours == ref[40:]
    ra = icmpv6.parse_router_advertisement(msg_of(ref))
    assert (ra.cur_hop_limit, ra.managed, ra.other) == (64, True, False)
    assert (ra.router_lifetime, ra.reachable_time, ra.retrans_timer) == (1800, 30000, 1000)
    assert ra.options.source_lladdr == MAC
    assert ra.options.mtu == 1400
    assert ra.options.prefixes == prefixes


def test_redirect_matches_scapy_and_parses() -> None:
    inner = bytes(IPv6(src="2001:db8::2", dst="2001:db8:9::9") / ICMPv6EchoRequest())
    ref = bytes(
        IPv6(src="fe80::1", dst="fe80::2", hlim=255)
        / ICMPv6ND_Redirect(tgt="fe80::7", dst="2001:db8:9::9")
        / ICMPv6NDOptDstLLAddr(lladdr=MAC_S)
        / ICMPv6NDOptRedirectedHdr(pkt=inner)
    )
    ours = icmpv6.redirect(
        R, H, parse_addr("fe80::7"), parse_addr("2001:db8:9::9"), tgt_lladdr=MAC, redirected=inner
    )
    assert ours == ref[40:]
    rd = icmpv6.parse_redirect(msg_of(ref))
    assert rd.target == parse_addr("fe80::7")
    assert rd.destination == parse_addr("2001:db8:9::9")
    assert rd.options.target_lladdr == MAC
    assert rd.options.redirected == inner


def _msg(icmp: bytes, cut: int | None = None) -> icmpv6.Icmpv6Message:
    """Type/code/body of ``icmp`` (optionally cut), with a fresh checksum, parsed."""
    body = icmp[4:cut] if cut is not None else icmp[4:]
    return icmpv6.parse(R, H, icmpv6.message(R, H, icmp[0], icmp[1], body))


@pytest.mark.parametrize(
    ("icmp", "cut", "parser", "reason"),
    [
        (bytes(ICMPv6ND_RA()), 15, "ra", "BAD_LENGTH"),
        (bytes(ICMPv6ND_RS()), 7, "rs", "BAD_LENGTH"),
        (bytes(ICMPv6ND_Redirect(tgt="fe80::1", dst="ff02::1")), None, "rd", "BAD_TARGET"),
        (bytes(ICMPv6ND_Redirect()), 39, "rd", "BAD_LENGTH"),
        (bytes(ICMPv6ND_RA() / ICMPv6NDOptMTU(len=2) / bytes(8)), None, "ra", "BAD_OPTION"),
        (bytes(ICMPv6ND_RA() / ICMPv6NDOptPrefixInfo(len=3)), 16 + 24, "ra", "BAD_OPTION"),
        (bytes(ICMPv6ND_RA() / ICMPv6NDOptPrefixInfo(len=0)), None, "ra", "BAD_OPTION"),
        (bytes(ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(len=2) / bytes(8)), None, "rs", "BAD_OPTION"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_router_messages(icmp: bytes, cut: int | None, parser: str, reason: str) -> None:
    fn = {"ra": icmpv6.parse_router_advertisement, "rs": icmpv6.parse_router_solicitation,
          "rd": icmpv6.parse_redirect}[parser]  # fmt: skip
    with pytest.raises(MalformedFrame) as ei:
        fn(_msg(icmp, cut))
    assert ei.value.reason is DropReason(reason)


def test_unknown_options_are_skipped() -> None:
    icmp = bytes(ICMPv6ND_RA(prf=0)) + bytes([99, 1]) + bytes(6)
    ra = icmpv6.parse_router_advertisement(_msg(icmp))
    assert ra.options == icmpv6.NO_OPTIONS
    assert ra.router_lifetime == 1800


INVOKING = bytes(IPv6(src="2001:db8::9", dst="2001:db8::1") / ICMPv6EchoRequest(data=b"x" * 40))


@pytest.mark.parametrize(
    ("icmp_type", "code", "param", "layer"),
    [
        (icmpv6.DEST_UNREACH, 4, 0, ICMPv6DestUnreach(code=4)),
        (icmpv6.PACKET_TOO_BIG, 0, 1400, ICMPv6PacketTooBig(mtu=1400)),
        (icmpv6.TIME_EXCEEDED, 1, 0, ICMPv6TimeExceeded(code=1)),
        (icmpv6.PARAM_PROBLEM, 2, 42, ICMPv6ParamProblem(code=2, ptr=42)),
    ],
)
def test_error_messages_match_scapy(icmp_type: int, code: int, param: int, layer: object) -> None:
    src, dst = parse_addr("2001:db8::1"), parse_addr("2001:db8::9")
    ref = bytes(IPv6(src="2001:db8::1", dst="2001:db8::9") / layer / INVOKING)  # type: ignore[operator]
    ours = icmpv6.error_message(src, dst, icmp_type, code, param, INVOKING)
    assert ours == ref[40:]
    err = icmpv6.parse_error(msg_of(ref))
    assert (err.type, err.code, err.param) == (icmp_type, code, param)
    assert bytes(err.invoking) == INVOKING


def test_error_message_quotes_at_most_1232_bytes() -> None:
    big = bytes(3000)
    ours = icmpv6.error_message(H, R, icmpv6.DEST_UNREACH, 4, 0, big)
    assert len(ours) == 8 + 1232  # + 40-byte header = the minimum MTU, RFC 4443 §2.4 (c)
    assert icmpv6.ERROR_INVOKING_MAX == 1232
    with pytest.raises(MalformedFrame):
        icmpv6.parse_error(icmpv6.Icmpv6Message(1, 0, 0, memoryview(b"\x00")))
