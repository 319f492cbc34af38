"""Ipv6Responder fed scapy-built frames; its output parsed back by scapy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import (
    UDP,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from tcpip6.stack.ipv6responder import Ipv6Responder
from tcpip6.wire.ethernet import mac_str, parse_mac
from tcpip6.wire.ipv6 import addr_str, parse_addr, solicited_node

HOST_MAC = parse_mac("00:15:5d:01:02:03")
PEER_MAC_S = "02:00:00:00:00:aa"
PEER_MAC = parse_mac(PEER_MAC_S)
HOST_LL = "fe80::215:5dff:fe01:203"
HOST_SN = "ff02::1:ff01:203"
HOST_SN_MAC = "33:33:ff:01:02:03"
PEER_LL = "fe80::ff:fe00:aa"


def _id(value: object) -> str | None:
    """Readable test ids: show strings, summarise raw frames by length."""
    if isinstance(value, bytes):
        return f"{len(value)}B"
    return None


@pytest.fixture
def host() -> Ipv6Responder:
    return Ipv6Responder(HOST_MAC)


def ns_frame(
    *,
    src: str = PEER_LL,
    dst: str = HOST_SN,
    target: str = HOST_LL,
    hlim: int = 255,
    slla: str | None = PEER_MAC_S,
    eth_dst: str = HOST_SN_MAC,
    code: int = 0,
) -> bytes:
    pkt: Packet = (
        Ether(dst=eth_dst, src=PEER_MAC_S)
        / IPv6(src=src, dst=dst, hlim=hlim)
        / ICMPv6ND_NS(tgt=target, code=code)
    )
    if slla is not None:
        pkt /= ICMPv6NDOptSrcLLAddr(lladdr=slla)
    return bytes(pkt)


def echo_frame(
    *, src: str = PEER_LL, dst: str = HOST_LL, eth_dst: str = "00:15:5d:01:02:03",
    ident: int = 0x77, seq: int = 5, data: bytes = b"abcdefgh",
) -> bytes:  # fmt: skip
    return bytes(
        Ether(dst=eth_dst, src=PEER_MAC_S)
        / IPv6(src=src, dst=dst, hlim=64)
        / ICMPv6EchoRequest(id=ident, seq=seq, data=data)
    )


def assert_checksums_valid(frame: bytes) -> Packet:
    """scapy recomputes the ICMPv6 checksum; it must equal ours."""
    pkt = Ether(frame)
    again = pkt.copy()
    del again[IPv6].payload.cksum
    assert bytes(again) == frame
    return pkt


def only_drop(host: Ipv6Responder) -> str:
    drops = [k for k, v in host.counters.items() if k.startswith("drop.") and v]
    assert len(drops) == 1, host.counters
    return drops[0]


def test_addresses_and_multicast_macs(host: Ipv6Responder) -> None:
    assert addr_str(host.link_local) == HOST_LL
    assert host.addresses == [host.link_local]
    assert [mac_str(m) for m in host.multicast_macs()] == ["33:33:00:00:00:01", HOST_SN_MAC]
    host.add_address(parse_addr("2001:db8::215:5dff:fe01:203"))  # same low 24 bits
    host.add_address(parse_addr("2001:db8::1234"))
    host.add_address(parse_addr("2001:db8::1234"))  # idempotent
    assert [mac_str(m) for m in host.multicast_macs()] == [
        "33:33:00:00:00:01",
        HOST_SN_MAC,
        "33:33:ff:00:12:34",
    ]
    assert len(host.addresses) == 3


def test_ns_answered_with_solicited_na(host: Ipv6Responder) -> None:
    out = host.handle_frame(ns_frame(), now=1.0)
    assert len(out) == 1
    pkt = assert_checksums_valid(out[0])
    assert pkt[Ether].dst == PEER_MAC_S
    assert pkt[Ether].src == "00:15:5d:01:02:03"
    assert (pkt[IPv6].src, pkt[IPv6].dst, pkt[IPv6].hlim) == (HOST_LL, PEER_LL, 255)
    na = pkt[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (0, 1, 1, HOST_LL)
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == "00:15:5d:01:02:03"
    assert host.counters["na_sent"] == 1
    assert host.counters["rx"] == 1 and host.counters["tx"] == 1


def test_unicast_ns_without_slla_goes_to_frame_source(host: Ipv6Responder) -> None:
    out = host.handle_frame(ns_frame(dst=HOST_LL, eth_dst="00:15:5d:01:02:03", slla=None), 0.0)
    pkt = assert_checksums_valid(out[0])
    assert pkt[Ether].dst == PEER_MAC_S
    assert pkt[ICMPv6ND_NA].S == 1


def test_ns_reply_uses_slla_over_frame_source(host: Ipv6Responder) -> None:
    out = host.handle_frame(ns_frame(slla="02:00:00:00:00:bb"), 0.0)
    assert Ether(out[0]).dst == "02:00:00:00:00:bb"


def test_dad_probe_defended_to_all_nodes(host: Ipv6Responder) -> None:
    out = host.handle_frame(ns_frame(src="::", slla=None), 0.0)
    pkt = assert_checksums_valid(out[0])
    assert pkt[Ether].dst == "33:33:00:00:00:01"
    assert (pkt[IPv6].src, pkt[IPv6].dst, pkt[IPv6].hlim) == (HOST_LL, "ff02::1", 255)
    assert (pkt[ICMPv6ND_NA].S, pkt[ICMPv6ND_NA].O) == (0, 1)


def test_ns_for_added_address_via_plain_list_append(host: Ipv6Responder) -> None:
    host.addresses.append(parse_addr("2001:db8::1234"))
    out = host.handle_frame(
        ns_frame(target="2001:db8::1234", dst="ff02::1:ff00:1234", eth_dst="33:33:ff:00:12:34"), 0
    )
    pkt = assert_checksums_valid(out[0])
    assert pkt[ICMPv6ND_NA].tgt == "2001:db8::1234"
    assert pkt[IPv6].src == "2001:db8::1234"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (ns_frame(hlim=254), "HOP_LIMIT"),
        (ns_frame(hlim=64), "HOP_LIMIT"),
        (ns_frame(code=1), "BAD_CODE"),
        (ns_frame(target="fe80::dead"), "NOT_FOR_US"),
        (ns_frame(target="ff02::1"), "BAD_TARGET"),
        (ns_frame(src="::"), "BAD_OPTION"),  # DAD must not carry SLLA
        (ns_frame(src="::", slla=None, dst=HOST_LL, eth_dst="00:15:5d:01:02:03"), "BAD_DEST"),
        (ns_frame(dst="ff02::1:ff99:9999", eth_dst="33:33:ff:99:99:99"), "NOT_FOR_US"),
        (ns_frame(dst="ff02::1:ff99:9999"), "NOT_FOR_US"),  # L2 ours, L3 group not joined
        (ns_frame(src="ff02::5"), "BAD_SOURCE"),
        (ns_frame(eth_dst="02:00:00:00:00:01"), "NOT_FOR_US"),
    ],
    ids=_id,
)
def test_ns_validation(host: Ipv6Responder, frame: bytes, reason: str) -> None:
    assert host.handle_frame(frame, 0.0) == []
    assert only_drop(host) == f"drop.{reason}"
    assert host.counters["na_sent"] == 0


def _ns_with_options(opts: bytes) -> bytes:
    return bytes(
        Ether(dst=HOST_SN_MAC, src=PEER_MAC_S)
        / IPv6(src=PEER_LL, dst=HOST_SN, hlim=255)
        / ICMPv6ND_NS(tgt=HOST_LL)
        / Raw(opts)
    )


@pytest.mark.parametrize(
    "opts",
    [b"\x01\x00" + PEER_MAC, b"\x01\x02" + PEER_MAC, b"\x05\x00" + bytes(6), b"\x01"],
    ids=_id,
)
def test_bad_option_length_dropped(host: Ipv6Responder, opts: bytes) -> None:
    assert host.handle_frame(_ns_with_options(opts), 0.0) == []
    assert host.counters["drop.BAD_OPTION"] == 1


def test_bad_checksum_dropped(host: Ipv6Responder) -> None:
    bad = bytearray(ns_frame())
    bad[14 + 40 + 2] ^= 0x10
    assert host.handle_frame(bytes(bad), 0.0) == []
    assert host.counters["drop.BAD_CHECKSUM"] == 1


def test_echo_reply_unicast(host: Ipv6Responder) -> None:
    data = bytes(range(100))
    out = host.handle_frame(echo_frame(ident=0xABCD, seq=42, data=data), 3.0)
    pkt = assert_checksums_valid(out[0])
    assert (pkt[Ether].dst, pkt[Ether].src) == (PEER_MAC_S, "00:15:5d:01:02:03")
    assert (pkt[IPv6].src, pkt[IPv6].dst, pkt[IPv6].hlim) == (HOST_LL, PEER_LL, 128)
    rep = pkt[ICMPv6EchoReply]
    assert (rep.id, rep.seq, rep.data) == (0xABCD, 42, data)
    assert host.counters["echo_replies"] == 1


def test_echo_reply_to_all_nodes_from_link_local(host: Ipv6Responder) -> None:
    host.add_address(parse_addr("2001:db8::5"))
    out = host.handle_frame(
        echo_frame(src="2001:db8::9", dst="ff02::1", eth_dst="33:33:00:00:00:01"), 0.0
    )
    pkt = assert_checksums_valid(out[0])
    assert (pkt[IPv6].src, pkt[IPv6].dst) == (HOST_LL, "2001:db8::9")


def test_echo_to_global_address_replies_from_it(host: Ipv6Responder) -> None:
    host.add_address(parse_addr("2001:db8::5"))
    out = host.handle_frame(echo_frame(src="2001:db8::9", dst="2001:db8::5"), 0.0)
    assert Ether(out[0])[IPv6].src == "2001:db8::5"


def test_padded_frame_still_answered(host: Ipv6Responder) -> None:
    out = host.handle_frame(echo_frame(data=b"") + bytes(20), 0.0)
    assert Ether(out[0])[ICMPv6EchoReply].data == b""
    out = host.handle_frame(ns_frame() + b"\xee" * 8, 0.0)
    assert len(out) == 1


def test_broadcast_destination_mac_accepted(host: Ipv6Responder) -> None:
    out = host.handle_frame(echo_frame(eth_dst="ff:ff:ff:ff:ff:ff"), 0.0)
    assert len(out) == 1


def _udp_frame() -> bytes:
    return bytes(
        Ether(dst="00:15:5d:01:02:03", src=PEER_MAC_S) / IPv6(src=PEER_LL, dst=HOST_LL) / UDP()
    )


def _rs_frame() -> bytes:
    return bytes(
        Ether(dst="00:15:5d:01:02:03", src=PEER_MAC_S)
        / IPv6(src=PEER_LL, dst=HOST_LL, hlim=255)
        / ICMPv6ND_RS()
    )


def _ipv4_frame() -> bytes:
    return bytes(Ether(dst="00:15:5d:01:02:03", src=PEER_MAC_S) / IP() / ICMP())


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: echo_frame(dst="fe80::99"), "NOT_FOR_US"),
        (lambda: echo_frame(dst=HOST_SN, eth_dst=HOST_SN_MAC), "NOT_FOR_US"),
        (lambda: echo_frame(src="::"), "BAD_SOURCE"),
        (lambda: echo_frame(eth_dst="02:00:00:00:00:01"), "NOT_FOR_US"),
        (lambda: echo_frame(eth_dst="33:33:00:00:00:02", dst="ff02::2"), "NOT_FOR_US"),
        (_udp_frame, "UNSUPPORTED"),
        (_rs_frame, "UNSUPPORTED"),
        (_ipv4_frame, "UNSUPPORTED"),
        (lambda: (f := echo_frame())[:6] + bytes.fromhex("01005e000001") + f[12:], "BAD_SOURCE"),
    ],
)
def test_other_traffic_dropped(host: Ipv6Responder, make: Callable[[], bytes], reason: str) -> None:
    assert host.handle_frame(make(), 0.0) == []
    assert only_drop(host) == f"drop.{reason}"


def test_reply_larger_than_mtu_dropped() -> None:
    host = Ipv6Responder(HOST_MAC, mtu=1280)
    assert host.handle_frame(echo_frame(data=bytes(1300)), 0.0) == []
    assert host.counters["drop.TOO_BIG"] == 1
    assert len(host.handle_frame(echo_frame(data=bytes(1232)), 0.0)) == 1  # 40+8+1232 = 1280


@pytest.mark.parametrize("maker", [ns_frame, echo_frame])
def test_truncated_at_every_length_is_counted(
    host: Ipv6Responder, maker: Callable[[], bytes]
) -> None:
    frame = maker()
    for n in range(len(frame)):
        assert host.handle_frame(frame[:n], 0.0) == []
    assert host.counters["drop.TRUNCATED"] == len(frame)
    assert host.counters["rx"] == len(frame)
    assert host.counters["tx"] == 0
    assert len(host.handle_frame(frame, 0.0)) == 1  # the whole frame still works


def test_every_single_bit_flip_never_raises(host: Ipv6Responder) -> None:
    frame = ns_frame()
    answered = 0
    for i in range(len(frame) * 8):
        b = bytearray(frame)
        b[i // 8] ^= 1 << (i % 8)
        answered += len(host.handle_frame(bytes(b), 0.0))
    drops = sum(v for k, v in host.counters.items() if k.startswith("drop."))
    assert drops + host.counters["ns_rx"] == len(frame) * 8
    assert answered == host.counters["na_sent"]
    # checksum-covered bits are caught: at most the few that escape by design answer
    assert host.counters["drop.BAD_CHECKSUM"] > 8 * 32


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    host = Ipv6Responder(HOST_MAC)
    frame = bytes.fromhex("333300000001") + PEER_MAC + b"\x86\xdd" + data
    assert host.handle_frame(frame, 0.0) == [] or host.counters["tx"] == 1
    assert host.counters["rx"] == 1


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        Ipv6Responder(b"\x01" * 6)
    with pytest.raises(ValueError):
        Ipv6Responder(HOST_MAC, mtu=1000)
    with pytest.raises(ValueError):
        Ipv6Responder(HOST_MAC).add_address(parse_addr("ff02::1"))
    assert solicited_node(Ipv6Responder(HOST_MAC).link_local) == parse_addr(HOST_SN)
