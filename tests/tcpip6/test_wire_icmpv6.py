"""ICMPv6 / ND codecs: builders byte-identical to scapy, parsers validating per RFC 4861."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)

from tcpip6.wire import DropReason, MalformedFrame, icmpv6
from tcpip6.wire.ipv6 import Ipv6Header, parse_addr

MAC = bytes.fromhex("02aabbccddee")
MAC_S = "02:aa:bb:cc:dd:ee"
A = parse_addr("fe80::1")
B = parse_addr("fe80::2")
SN_B = parse_addr("ff02::1:ff00:2")


def _id(value: object) -> str | None:
    """Readable test ids: show strings, summarise raw frames by length."""
    if isinstance(value, bytes):
        return f"{len(value)}B"
    return None


def split(raw: bytes) -> tuple[Ipv6Header, icmpv6.Icmpv6Message]:
    ip, payload = Ipv6Header.parse(raw)
    return ip, icmpv6.parse(ip.src, ip.dst, payload)


def reason_of(raw: bytes, parser: str) -> DropReason:
    with pytest.raises(MalformedFrame) as ei:
        _, msg = split(raw)
        getattr(icmpv6, parser)(msg)
    return ei.value.reason


def test_type_numbers() -> None:
    assert (icmpv6.ECHO_REQUEST, icmpv6.ECHO_REPLY) == (128, 129)
    assert (icmpv6.RS, icmpv6.RA, icmpv6.NS, icmpv6.NA) == (133, 134, 135, 136)
    assert (icmpv6.DEST_UNREACH, icmpv6.PACKET_TOO_BIG) == (1, 2)
    assert (icmpv6.TIME_EXCEEDED, icmpv6.PARAM_PROBLEM) == (3, 4)


@pytest.mark.parametrize("data", [b"", b"x", b"ping-data", bytes(range(256)) * 4])
def test_echo_builders_match_scapy(data: bytes) -> None:
    req = IPv6(src="fe80::1", dst="fe80::2") / ICMPv6EchoRequest(id=0x1234, seq=7, data=data)
    rep = IPv6(src="fe80::2", dst="fe80::1") / ICMPv6EchoReply(id=0x1234, seq=7, data=data)
    assert icmpv6.echo_request(A, B, 0x1234, 7, data) == bytes(req)[40:]
    assert icmpv6.echo_reply(B, A, 0x1234, 7, data) == bytes(rep)[40:]


def test_parse_echo_from_scapy_and_golden_round_trip() -> None:
    raw = bytes(
        IPv6(src="fe80::1", dst="fe80::2") / ICMPv6EchoRequest(id=9, seq=65535, data=b"abc")
    )
    ip, msg = split(raw)
    assert (msg.type, msg.code) == (icmpv6.ECHO_REQUEST, 0)
    echo = icmpv6.parse_echo(msg)
    assert (echo.ident, echo.seq, echo.data) == (9, 65535, b"abc")
    assert icmpv6.echo_request(ip.src, ip.dst, echo.ident, echo.seq, echo.data) == raw[40:]
    assert msg.checksum == int.from_bytes(raw[42:44], "big")


def test_bad_checksum_detected_and_verify_flag() -> None:
    raw = bytearray(bytes(IPv6(src="fe80::1", dst="fe80::2") / ICMPv6EchoRequest(data=b"zz")))
    raw[-1] ^= 0x01
    ip, payload = Ipv6Header.parse(raw)
    with pytest.raises(MalformedFrame) as ei:
        icmpv6.parse(ip.src, ip.dst, payload)
    assert ei.value.reason is DropReason.BAD_CHECKSUM
    assert icmpv6.parse(ip.src, ip.dst, payload, verify=False).type == icmpv6.ECHO_REQUEST
    # the same bytes from a different source address also fail: the pseudo-header counts
    good = bytes(IPv6(src="fe80::1", dst="fe80::2") / ICMPv6EchoRequest())
    with pytest.raises(MalformedFrame):
        icmpv6.parse(B, B, good[40:])


@pytest.mark.parametrize("n", range(4))
def test_short_icmp_is_truncated(n: int) -> None:
    with pytest.raises(MalformedFrame) as ei:
        icmpv6.parse(A, B, bytes(n))
    assert ei.value.reason is DropReason.TRUNCATED


def test_short_echo_body() -> None:
    raw = bytes(IPv6(src="fe80::1", dst="fe80::2", nh=58) / icmpv6.message(A, B, 128, 0, b"\x00"))
    assert reason_of(raw, "parse_echo") is DropReason.BAD_LENGTH


def test_ns_builder_matches_scapy() -> None:
    ref = IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt="fe80::2")
    assert icmpv6.neighbor_solicitation(A, SN_B, B, None) == bytes(ref)[40:]
    ref /= ICMPv6NDOptSrcLLAddr(lladdr=MAC_S)
    assert icmpv6.neighbor_solicitation(A, SN_B, B, MAC) == bytes(ref)[40:]


@pytest.mark.parametrize("r", [0, 1])
@pytest.mark.parametrize("s", [0, 1])
@pytest.mark.parametrize("o", [0, 1])
def test_na_builder_matches_scapy(r: int, s: int, o: int) -> None:
    ref = IPv6(src="fe80::2", dst="fe80::1", hlim=255) / ICMPv6ND_NA(tgt="fe80::2", R=r, S=s, O=o)
    ref /= ICMPv6NDOptDstLLAddr(lladdr=MAC_S)
    ours = icmpv6.neighbor_advertisement(
        B, A, B, router=bool(r), solicited=bool(s), override=bool(o), tgt_lladdr=MAC
    )
    assert ours == bytes(ref)[40:]
    na = icmpv6.parse_neighbor_advertisement(split(bytes(ref))[1])
    assert (na.router, na.solicited, na.override) == (bool(r), bool(s), bool(o))
    assert na.target == B
    assert na.options.target_lladdr == MAC
    assert na.options.source_lladdr is None


def test_na_without_option() -> None:
    ours = icmpv6.neighbor_advertisement(B, A, B, solicited=True, override=False, tgt_lladdr=None)
    ref = IPv6(src="fe80::2", dst="fe80::1", hlim=255) / ICMPv6ND_NA(tgt="fe80::2", R=0, S=1, O=0)
    assert ours == bytes(ref)[40:]


def test_parse_ns_from_scapy_and_round_trip() -> None:
    ref = bytes(
        IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255)
        / ICMPv6ND_NS(tgt="fe80::2")
        / ICMPv6NDOptSrcLLAddr(lladdr=MAC_S)
    )
    ip, msg = split(ref)
    ns = icmpv6.parse_neighbor_solicitation(msg)
    assert ns.target == B
    assert ns.options.source_lladdr == MAC
    assert ns.options.target_lladdr is None
    rebuilt = icmpv6.neighbor_solicitation(ip.src, ip.dst, ns.target, ns.options.source_lladdr)
    assert rebuilt == ref[40:]


def test_unknown_options_skipped_first_duplicate_wins() -> None:
    other = "02:00:00:00:00:99"
    ref = bytes(
        IPv6(src="fe80::1", dst="fe80::2", hlim=255)
        / ICMPv6ND_NS(tgt="fe80::2")
        / ICMPv6NDOptMTU(mtu=1400)
        / ICMPv6NDOptSrcLLAddr(lladdr=MAC_S)
        / ICMPv6NDOptSrcLLAddr(lladdr=other)
    )
    ns = icmpv6.parse_neighbor_solicitation(split(ref)[1])
    assert ns.options.source_lladdr == MAC


def ns_with_raw_options(options: bytes, target: str = "fe80::2") -> bytes:
    return bytes(IPv6(src="fe80::1", dst="fe80::2", hlim=255) / ICMPv6ND_NS(tgt=target) / options)


@pytest.mark.parametrize(
    "options",
    [
        b"\x01\x00" + MAC,  # length 0 (RFC 4861 §4.6)
        b"\x0e\x00" + bytes(6),  # unknown type, length 0
        b"\x01\x02" + MAC,  # claims 16 bytes, has 8
        b"\x01",  # option header cut
        b"\x01\x02" + MAC + bytes(8),  # SLLA of 16 bytes: not Ethernet (RFC 2464 §8)
        b"\x01\x01" + MAC + b"\x01\x00",  # valid SLLA then a zero-length one
    ],
    ids=_id,
)
def test_bad_options(options: bytes) -> None:
    assert reason_of(ns_with_raw_options(options), "parse_neighbor_solicitation") is (
        DropReason.BAD_OPTION
    )


def test_nd_option_parser_direct() -> None:
    assert icmpv6.parse_nd_options(b"") == icmpv6.NdOptions()
    opts = icmpv6.parse_nd_options(
        icmpv6.lladdr_option(icmpv6.OPT_TARGET_LLADDR, MAC)
        + icmpv6.lladdr_option(icmpv6.OPT_SOURCE_LLADDR, b"\x02" * 6)
    )
    assert opts == icmpv6.NdOptions(source_lladdr=b"\x02" * 6, target_lladdr=MAC)


def test_multicast_target_rejected() -> None:
    raw = ns_with_raw_options(b"", target="ff02::1")
    assert reason_of(raw, "parse_neighbor_solicitation") is DropReason.BAD_TARGET
    na = bytes(IPv6(src="fe80::2", dst="fe80::1", hlim=255) / ICMPv6ND_NA(tgt="ff02::1"))
    assert reason_of(na, "parse_neighbor_advertisement") is DropReason.BAD_TARGET


def test_short_ns_rejected() -> None:
    body = b"\x00" * 16  # ICMP length 20 < 24
    raw = bytes(
        IPv6(src="fe80::1", dst="fe80::2", nh=58, hlim=255) / icmpv6.message(A, B, 135, 0, body)
    )
    assert reason_of(raw, "parse_neighbor_solicitation") is DropReason.BAD_LENGTH
    raw = bytes(IPv6(src="fe80::1", dst="fe80::2", hlim=255) / ICMPv6ND_RS())
    _, msg = split(raw)
    assert msg.type == icmpv6.RS


@given(src=st.binary(min_size=16, max_size=16), dst=st.binary(min_size=16, max_size=16),
       ident=st.integers(0, 0xFFFF), seq=st.integers(0, 0xFFFF), code=st.integers(0, 255),
       data=st.binary(max_size=300))
@settings(max_examples=400, deadline=None)
def test_echo_reply_mirroring_is_the_reply_built_from_scratch(
        src: bytes, dst: bytes, ident: int, seq: int, code: int, data: bytes) -> None:
    """RFC 1624's incremental update gives the bytes a full checksum would (odd lengths, any
    code in the request, the 0/0xFFFF corner included), and the reply verifies."""
    body = ident.to_bytes(2, "big") + seq.to_bytes(2, "big") + data
    request = icmpv6.parse(src, dst, icmpv6.message(src, dst, icmpv6.ECHO_REQUEST, code, body))
    reply = icmpv6.echo_reply_mirroring(request)
    assert reply == icmpv6.echo_reply(dst, src, ident, seq, data)
    assert icmpv6.parse(dst, src, reply).type == icmpv6.ECHO_REPLY


def test_echo_reply_mirroring_refuses_a_short_body() -> None:
    request = icmpv6.parse(A, B, icmpv6.message(A, B, icmpv6.ECHO_REQUEST, 0, b"\x00\x01"))
    with pytest.raises(MalformedFrame) as exc:
        icmpv6.echo_reply_mirroring(request)
    assert exc.value.reason is DropReason.BAD_LENGTH
