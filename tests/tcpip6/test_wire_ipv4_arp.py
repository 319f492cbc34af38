"""IPv4, ICMPv4 and ARP codecs against scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.l2 import ARP
from scapy.packet import Raw

from tcpip6.wire import DropReason, MalformedFrame, arp, ipv4
from tcpip6.wire.arp import ArpPacket
from tcpip6.wire.ipv4 import Ipv4Header, addr_str, parse_addr

MAC = bytes.fromhex("02aabbccddee")
MAC_S = "02:aa:bb:cc:dd:ee"
OTHER = bytes.fromhex("020000000077")
OTHER_S = "02:00:00:00:00:77"
H = parse_addr("192.0.2.1")
P = parse_addr("192.0.2.2")


def _id(value: object) -> str | None:
    """Readable test ids: show strings, summarise raw frames by length."""
    if isinstance(value, bytes):
        return f"{len(value)}B"
    return None


def test_header_parse_and_round_trip() -> None:
    raw = bytes(
        IP(src="192.0.2.2", dst="192.0.2.1", ttl=33, id=0xBEEF, tos=0x10, flags="DF")
        / ICMP(type=8, id=1, seq=2)
        / Raw(b"data")
    )
    hdr, payload = Ipv4Header.parse(raw)
    assert (hdr.src, hdr.dst, hdr.ttl, hdr.ident, hdr.tos) == (P, H, 33, 0xBEEF, 0x10)
    assert hdr.protocol == ipv4.PROTO_ICMP
    assert hdr.flags == ipv4.FLAG_DF
    assert not hdr.is_fragment
    assert hdr.total_length == len(raw)
    assert bytes(payload) == raw[20:]
    assert hdr.emit() + bytes(payload) == raw
    assert "192.0.2.2" in repr(hdr)


def test_header_with_options_round_trip() -> None:
    raw = bytes(
        IP(src="192.0.2.2", dst="192.0.2.1", options=[IPOption_RR(), IPOption_NOP()]) / UDP()
    )
    hdr, payload = Ipv4Header.parse(raw)
    assert hdr.header_len == len(raw) - 8
    assert len(hdr.options) == hdr.header_len - 20 > 0
    assert hdr.emit() == raw[: hdr.header_len]
    assert len(payload) == 8


def test_packet_builder_matches_scapy() -> None:
    icmp = ipv4.icmp_echo_request(0x4242, 3, b"hello")
    ours = ipv4.packet(P, H, ipv4.PROTO_ICMP, 64, icmp, ident=77, df=True)
    ref = (
        IP(src="192.0.2.2", dst="192.0.2.1", ttl=64, id=77, flags="DF")
        / ICMP(type=8, id=0x4242, seq=3)
        / Raw(b"hello")
    )
    assert ours == bytes(ref)


@pytest.mark.parametrize("data", [b"", b"a", b"abc", bytes(range(200))])
def test_icmp_builders_match_scapy(data: bytes) -> None:
    assert ipv4.icmp_echo_request(5, 6, data) == bytes(ICMP(type=8, id=5, seq=6) / Raw(data))
    assert ipv4.icmp_echo_reply(5, 6, data) == bytes(ICMP(type=0, id=5, seq=6) / Raw(data))


def test_parse_icmp_echo() -> None:
    raw = bytes(ICMP(type=8, id=0xFFFF, seq=1) / Raw(b"xyz"))
    msg = ipv4.parse_icmp(raw)
    assert (msg.type, msg.code) == (ipv4.ICMP_ECHO_REQUEST, 0)
    echo = ipv4.parse_icmp_echo(msg)
    assert (echo.ident, echo.seq, echo.data) == (0xFFFF, 1, b"xyz")
    bad = bytearray(raw)
    bad[-1] ^= 0xFF
    with pytest.raises(MalformedFrame) as ei:
        ipv4.parse_icmp(bad)
    assert ei.value.reason is DropReason.BAD_CHECKSUM
    assert ipv4.parse_icmp(bad, verify=False).type == 8
    with pytest.raises(MalformedFrame) as ei:
        ipv4.parse_icmp_echo(ipv4.parse_icmp(ipv4.icmp_message(8, 0, b"\x00")))
    assert ei.value.reason is DropReason.BAD_LENGTH


def test_padding_cut() -> None:
    raw = bytes(IP(src="192.0.2.2", dst="192.0.2.1") / ICMP())
    _, payload = Ipv4Header.parse(raw + bytes(18))
    assert bytes(payload) == raw[20:]


@pytest.mark.parametrize("n", range(28))
def test_truncated(n: int) -> None:
    raw = bytes(IP(src="192.0.2.2", dst="192.0.2.1") / ICMP())
    with pytest.raises(MalformedFrame) as ei:
        Ipv4Header.parse(raw[:n])
    assert ei.value.reason is DropReason.TRUNCATED


def _flip(raw: bytes, offset: int, mask: int) -> bytes:
    b = bytearray(raw)
    b[offset] ^= mask
    return bytes(b)


_GOOD = bytes(IP(src="192.0.2.2", dst="192.0.2.1") / ICMP())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_flip(_GOOD, 0, 0x20), DropReason.BAD_VERSION),  # version 6
        (bytes(IP(src="192.0.2.2", dst="192.0.2.1", ihl=4) / ICMP()), DropReason.BAD_LENGTH),
        (_flip(_GOOD, 11, 0x01), DropReason.BAD_CHECKSUM),
        (_flip(_GOOD, 15, 0x80), DropReason.BAD_CHECKSUM),  # address bit, checksum stale
        (bytes(IP(src="192.0.2.2", dst="192.0.2.1", len=12)), DropReason.BAD_LENGTH),
        (bytes(IP(src="192.0.2.2", dst="192.0.2.1", len=400)), DropReason.TRUNCATED),
        (bytes(IP(src="192.0.2.2", dst="192.0.2.1", ihl=15)), DropReason.TRUNCATED),
    ],
    ids=_id,
)
def test_header_validation(raw: bytes, reason: DropReason) -> None:
    with pytest.raises(MalformedFrame) as ei:
        Ipv4Header.parse(raw)
    assert ei.value.reason is reason


def test_fragment_flag() -> None:
    hdr, _ = Ipv4Header.parse(bytes(IP(flags="MF", frag=0) / Raw(bytes(8))))
    assert hdr.is_fragment
    hdr, _ = Ipv4Header.parse(bytes(IP(frag=100) / Raw(bytes(8))))
    assert hdr.is_fragment and hdr.frag_offset == 100


def test_addr_helpers() -> None:
    assert addr_str(H) == "192.0.2.1"
    assert ipv4.is_multicast(parse_addr("224.0.0.1"))
    assert not ipv4.is_multicast(H)


def test_arp_builders_match_scapy() -> None:
    req = ARP(op=1, hwsrc=MAC_S, psrc="192.0.2.2", hwdst="00:00:00:00:00:00", pdst="192.0.2.1")
    assert arp.request(MAC, P, H) == bytes(req)
    rep = ARP(op=2, hwsrc=OTHER_S, psrc="192.0.2.1", hwdst=MAC_S, pdst="192.0.2.2")
    assert arp.reply(OTHER, H, MAC, P) == bytes(rep)


def test_arp_parse_and_round_trip_with_padding() -> None:
    raw = bytes(ARP(op=2, hwsrc=OTHER_S, psrc="192.0.2.1", hwdst=MAC_S, pdst="192.0.2.2"))
    pkt = ArpPacket.parse(raw + bytes(18))
    assert pkt == ArpPacket(arp.OP_REPLY, OTHER, H, MAC, P)
    assert pkt.emit() == raw


@pytest.mark.parametrize(
    "bad",
    [
        ARP(hwtype=6),
        ARP(ptype=0x86DD),
        ARP(hwlen=8, plen=4, hwsrc="02:00:00:00:00:01"),
        ARP(op=3),
    ],
)
def test_arp_unsupported(bad: ARP) -> None:
    raw = bytes(bad)[:28].ljust(28, b"\x00")
    with pytest.raises(MalformedFrame) as ei:
        ArpPacket.parse(raw)
    assert ei.value.reason is DropReason.UNSUPPORTED


@pytest.mark.parametrize("n", range(28))
def test_arp_truncated(n: int) -> None:
    with pytest.raises(MalformedFrame) as ei:
        ArpPacket.parse(arp.request(MAC, P, H)[:n])
    assert ei.value.reason is DropReason.TRUNCATED
