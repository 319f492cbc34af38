"""IPv6 header, RFC 1071 checksum and address helpers against scapy and a naive reference."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, in6_chksum
from scapy.utils import checksum as scapy_checksum
from scapy.utils6 import in6_getnsma, in6_mactoifaceid

from tcpip6.wire import DropReason, MalformedFrame
from tcpip6.wire.ipv6 import (
    ALL_NODES,
    UNSPECIFIED,
    Ipv6Header,
    addr_str,
    internet_checksum,
    is_link_local,
    is_multicast,
    link_local_from_mac,
    packet,
    parse_addr,
    pseudo_header_checksum,
    solicited_node,
)


def naive_checksum(data: bytes) -> int:
    """RFC 1071 §4.1 as written: 16-bit words, end-around carry."""
    if len(data) & 1:
        data += b"\x00"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@given(st.binary(max_size=300))
def test_internet_checksum_matches_reference(data: bytes) -> None:
    assert internet_checksum(data) == naive_checksum(data)
    assert internet_checksum(memoryview(data)) == naive_checksum(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", bytes(40), b"\xff\xff", b"\xff" * 7, b"\x00\x01\xff\xfe", bytes(range(256))],
)
def test_internet_checksum_edge_cases(data: bytes) -> None:
    assert internet_checksum(data) == naive_checksum(data) == scapy_checksum(data)


@given(st.binary(min_size=2, max_size=200))
def test_checksum_of_data_with_its_checksum_is_zero(data: bytes) -> None:
    even = data if len(data) % 2 == 0 else data + b"\x00"
    ck = internet_checksum(even)
    assert internet_checksum(even + ck.to_bytes(2, "big")) == 0


@given(st.binary(max_size=200), st.binary(min_size=16, max_size=16))
def test_pseudo_header_checksum_matches_scapy(data: bytes, src: bytes) -> None:
    dst = parse_addr("ff02::1:ff00:1")
    pkt = IPv6(src=addr_str(src), dst=addr_str(dst), nh=58)
    assert pseudo_header_checksum(src, dst, len(data), 58, data) == in6_chksum(58, pkt, data)


def test_header_parse_emit_round_trip_against_scapy() -> None:
    pkt = IPv6(src="fe80::1", dst="2001:db8::2", hlim=17, tc=0xB8, fl=0xABCDE) / ICMPv6EchoRequest(
        id=1, seq=2, data=b"hello"
    )
    raw = bytes(pkt)
    hdr, payload = Ipv6Header.parse(raw)
    assert hdr == Ipv6Header(
        payload_length=13,
        next_header=58,
        hop_limit=17,
        src=parse_addr("fe80::1"),
        dst=parse_addr("2001:db8::2"),
        traffic_class=0xB8,
        flow_label=0xABCDE,
    )
    assert bytes(payload) == raw[40:]
    assert hdr.emit() + bytes(payload) == raw
    assert packet(hdr.src, hdr.dst, 58, 17, payload, 0xB8, 0xABCDE) == raw
    assert "fe80::1" in repr(hdr)


def test_emit_parsed_by_scapy() -> None:
    hdr = Ipv6Header(8, 59, 64, parse_addr("fe80::a"), ALL_NODES, 3, 0x12345)
    pkt = IPv6(hdr.emit() + bytes(8))
    assert (pkt.version, pkt.plen, pkt.nh, pkt.hlim) == (6, 8, 59, 64)
    assert (pkt.src, pkt.dst, pkt.tc, pkt.fl) == ("fe80::a", "ff02::1", 3, 0x12345)


def test_trailing_padding_is_cut() -> None:
    raw = bytes(IPv6(src="fe80::1", dst="fe80::2") / ICMPv6EchoRequest())
    hdr, payload = Ipv6Header.parse(raw + bytes(12))
    assert hdr.payload_length == 8
    assert bytes(payload) == raw[40:]


@pytest.mark.parametrize("n", range(48))
def test_truncated_at_every_length(n: int) -> None:
    raw = bytes(IPv6(src="fe80::1", dst="fe80::2") / ICMPv6EchoRequest())
    assert len(raw) == 48
    with pytest.raises(MalformedFrame) as ei:
        Ipv6Header.parse(raw[:n])
    assert ei.value.reason is DropReason.TRUNCATED


@pytest.mark.parametrize("version", [0, 4, 5, 7, 15])
def test_bad_version(version: int) -> None:
    raw = bytearray(bytes(IPv6() / ICMPv6EchoRequest()))
    raw[0] = (version << 4) | (raw[0] & 0x0F)
    with pytest.raises(MalformedFrame) as ei:
        Ipv6Header.parse(raw)
    assert ei.value.reason is DropReason.BAD_VERSION


def test_link_local_from_mac_matches_scapy() -> None:
    for mac in ("02:00:00:00:00:01", "00:0c:29:ab:cd:ef", "ff:ff:ff:ff:ff:fe"):
        ll = link_local_from_mac(bytes.fromhex(mac.replace(":", "")))
        expected = ipaddress.IPv6Address("fe80::" + in6_mactoifaceid(mac).lower())
        assert ll == expected.packed
        assert is_link_local(ll)
    assert addr_str(link_local_from_mac(bytes.fromhex("00155d010203"))) == "fe80::215:5dff:fe01:203"
    with pytest.raises(ValueError):
        link_local_from_mac(b"\x00" * 5)


def test_solicited_node_matches_scapy() -> None:
    for a in ("fe80::215:5dff:fe01:203", "2001:db8::1", "::1"):
        packed = parse_addr(a)
        sn = solicited_node(packed)
        assert sn == in6_getnsma(packed)
        assert addr_str(sn).startswith("ff02::1:ff")
        assert is_multicast(sn)


def test_address_constants() -> None:
    assert addr_str(ALL_NODES) == "ff02::1"
    assert addr_str(UNSPECIFIED) == "::"
    assert not is_multicast(UNSPECIFIED)
    assert not is_link_local(parse_addr("fec0::1"))


def test_reduce_ffff_keeps_the_class_and_zero() -> None:
    """The checksum's fast reduction: same residue mod 0xFFFF, zero only for zero."""
    import random

    from tcpip6.wire.ipv6 import reduce_ffff

    rng = random.Random(11)
    for size in (0, 1, 2, 3, 127, 128, 129, 1440, 1441, 9000, 65_001):
        for data in (rng.randbytes(size), bytes(size), b"\xff" * size):
            n = int.from_bytes(data, "big") << (8 if size & 1 else 0)
            r = reduce_ffff(n, size * 8 + 8)
            assert r % 0xFFFF == n % 0xFFFF and (r == 0) == (n == 0) and r.bit_length() <= 1100
