"""MLDv2 / MLDv1 codecs against scapy: reports, queries, the exponential codes."""

from __future__ import annotations

import pytest
from scapy.layers.inet6 import (
    ICMPv6MLDMultAddrRec,
    ICMPv6MLDone,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6MLReport,
    ICMPv6MLReport2,
    IPv6,
)

from tcpip6.wire import DropReason, MalformedFrame, icmpv6, mld
from tcpip6.wire.ipv6 import UNSPECIFIED, Ipv6Header, parse_addr
from tcpip6.wire.mld import MulticastRecord

LL = parse_addr("fe80::2")
G1 = parse_addr("ff02::1:ff01:203")
G2 = parse_addr("ff05::1:3")
S1 = parse_addr("2001:db8::10")


def msg_of(raw: bytes) -> icmpv6.Icmpv6Message:
    ip, payload = Ipv6Header.parse(raw)
    return icmpv6.parse(ip.src, ip.dst, payload)


def test_report_v2_matches_scapy() -> None:
    ref = bytes(
        IPv6(src="fe80::2", dst="ff02::16", hlim=1)
        / ICMPv6MLReport2(records=[
            ICMPv6MLDMultAddrRec(rtype=4, dst="ff02::1:ff01:203"),
            ICMPv6MLDMultAddrRec(rtype=1, dst="ff05::1:3", sources=["2001:db8::10"]),
        ])
    )  # fmt: skip
    recs = [
        MulticastRecord(mld.CHANGE_TO_EXCLUDE_MODE, G1),
        MulticastRecord(mld.MODE_IS_INCLUDE, G2, (S1,)),
    ]
    ours = mld.report_v2(LL, recs)
    assert ours == ref[40:]
    assert mld.parse_report_v2(msg_of(ref)) == tuple(recs)


def test_report_v1_and_done_match_scapy() -> None:
    rep = bytes(IPv6(src="fe80::2", dst="ff05::1:3") / ICMPv6MLReport(mladdr="ff05::1:3"))
    assert mld.report_v1(LL, G2) == rep[40:]
    done = bytes(IPv6(src="fe80::2", dst="ff02::2") / ICMPv6MLDone(mladdr="ff05::1:3"))
    assert mld.done(LL, G2) == done[40:]


def test_general_query_v2_from_scapy() -> None:
    ref = bytes(
        IPv6(src="fe80::1", dst="ff02::1", hlim=1) / ICMPv6MLQuery2(mrd=10000, QRV=3, QQIC=125)
    )
    q = mld.parse_query(msg_of(ref))
    assert (q.version, q.group, q.max_response_delay, q.qrv, q.qqi) == (
        2, UNSPECIFIED, 10.0, 3, 125.0,
    )  # fmt: skip
    assert mld.query_v2(parse_addr("fe80::1"), parse_addr("ff02::1"), UNSPECIFIED, 10000,
                        qrv=3, qqic=125) == ref[40:]  # fmt: skip


def test_source_specific_query_v2() -> None:
    ref = bytes(
        IPv6(src="fe80::1", dst="ff05::1:3")
        / ICMPv6MLQuery2(mrd=500, mladdr="ff05::1:3", S=1, sources=["2001:db8::10"])
    )
    q = mld.parse_query(msg_of(ref))
    assert (q.group, q.sources, q.suppress, q.max_response_delay) == (G2, (S1,), True, 0.5)


def test_query_v1_is_24_octets() -> None:
    ref = bytes(IPv6(src="fe80::1", dst="ff02::1") / ICMPv6MLQuery(mrd=2500))
    q = mld.parse_query(msg_of(ref))
    assert (q.version, q.max_response_delay, q.group) == (1, 2.5, UNSPECIFIED)
    assert mld.query_v1(parse_addr("fe80::1"), parse_addr("ff02::1"), UNSPECIFIED, 2500) == ref[
        40:
    ]


@pytest.mark.parametrize("length", [25, 26, 27])
def test_query_of_odd_length_is_ignored(length: int) -> None:
    body = bytes(ICMPv6MLQuery2())[4:length]
    raw = icmpv6.message(LL, G1, 130, 0, body)
    with pytest.raises(MalformedFrame) as ei:
        mld.parse_query(icmpv6.parse(LL, G1, raw))
    assert ei.value.reason is DropReason.BAD_LENGTH  # RFC 3810 §8.1


def test_query_with_missing_sources_is_malformed() -> None:
    body = bytes(ICMPv6MLQuery2(sources_number=2, sources=["2001:db8::10"]))[4:]
    raw = icmpv6.message(LL, G1, 130, 0, body)
    with pytest.raises(MalformedFrame):
        mld.parse_query(icmpv6.parse(LL, G1, raw))


@pytest.mark.parametrize(
    ("code", "ms"),
    [(0, 0), (10000, 10000), (0x7FFF, 32767), (0x8000, 0x1000 << 3), (0xFFFF, 0x1FFF << 10)],
)
def test_max_resp_code(code: int, ms: int) -> None:
    assert mld.decode_max_resp_code(code) == ms  # RFC 3810 §5.1.3


def test_qqic() -> None:
    assert mld.decode_qqic(125) == 125
    assert mld.decode_qqic(0x80) == 0x10 << 3
    assert mld.decode_qqic(0xFF) == 0x1F << 10
