"""Ethernet codec against scapy's Ether."""

from __future__ import annotations

import pytest
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils6 import in6_getnsma, in6_getnsmac

from tcpip6.wire import DropReason, MalformedFrame
from tcpip6.wire.ethernet import (
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    EthernetHeader,
    frame,
    ipv6_multicast_mac,
    is_multicast_mac,
    mac_str,
    parse_mac,
)
from tcpip6.wire.ipv6 import parse_addr, solicited_node


def test_constants() -> None:
    assert (ETHERTYPE_IPV6, ETHERTYPE_IPV4, ETHERTYPE_ARP) == (0x86DD, 0x0800, 0x0806)
    assert BROADCAST_MAC == b"\xff" * 6


def test_parse_scapy_frame_and_round_trip() -> None:
    raw = bytes(Ether(dst="33:33:00:00:00:01", src="02:11:22:33:44:55") / IPv6())
    hdr, payload = EthernetHeader.parse(raw)
    assert mac_str(hdr.dst) == "33:33:00:00:00:01"
    assert mac_str(hdr.src) == "02:11:22:33:44:55"
    assert hdr.ethertype == ETHERTYPE_IPV6
    assert isinstance(payload, memoryview)
    assert bytes(payload) == raw[14:]
    assert hdr.emit() + bytes(payload) == raw
    assert frame(hdr.dst, hdr.src, hdr.ethertype, payload) == raw


def test_emit_parsed_by_scapy() -> None:
    hdr = EthernetHeader(parse_mac("02:00:00:00:00:0a"), parse_mac("02-00-00-00-00-0b"), 0x0806)
    pkt = Ether(hdr.emit() + bytes(28))
    assert pkt.dst == "02:00:00:00:00:0a"
    assert pkt.src == "02:00:00:00:00:0b"
    assert pkt.type == 0x0806


@pytest.mark.parametrize("n", range(14))
def test_truncated(n: int) -> None:
    with pytest.raises(MalformedFrame) as ei:
        EthernetHeader.parse(bytes(n))
    assert ei.value.reason is DropReason.TRUNCATED


def test_mac_helpers() -> None:
    assert parse_mac("AA:bb:cc:dd:ee:ff") == bytes.fromhex("aabbccddeeff")
    assert parse_mac("aabbccddeeff") == bytes.fromhex("aabbccddeeff")
    with pytest.raises(ValueError):
        parse_mac("aa:bb:cc")
    assert mac_str(bytes.fromhex("0a0b0c0d0e0f")) == "0a:0b:0c:0d:0e:0f"
    assert is_multicast_mac(BROADCAST_MAC)
    assert is_multicast_mac(bytes.fromhex("333300000001"))
    assert is_multicast_mac(bytes.fromhex("01005e000001"))
    assert not is_multicast_mac(bytes.fromhex("020000000001"))


@pytest.mark.parametrize("addr", ["fe80::1:2:3", "2001:db8::abcd:ef01", "fe80::ff:fe00:1"])
def test_ipv6_multicast_mac_matches_scapy(addr: str) -> None:
    packed = parse_addr(addr)
    group = solicited_node(packed)
    assert mac_str(ipv6_multicast_mac(group)) == in6_getnsmac(in6_getnsma(packed))
    assert ipv6_multicast_mac(parse_addr("ff02::1")) == bytes.fromhex("333300000001")
