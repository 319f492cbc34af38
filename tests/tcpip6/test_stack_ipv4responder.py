"""Ipv4Responder: ARP and ICMP echo, checked with scapy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from tcpip6.stack.ipv4responder import Ipv4Responder
from tcpip6.wire.ethernet import parse_mac
from tcpip6.wire.ipv4 import parse_addr

HOST_MAC_S = "00:15:5d:01:02:03"
HOST_MAC = parse_mac(HOST_MAC_S)
HOST_IP = "192.0.2.1"
PEER_MAC_S = "02:00:00:00:00:aa"
PEER_IP = "192.0.2.2"


def _id(value: object) -> str | None:
    """Readable test ids: show strings, summarise raw frames by length."""
    if isinstance(value, bytes):
        return f"{len(value)}B"
    return None


@pytest.fixture
def host() -> Ipv4Responder:
    return Ipv4Responder(HOST_MAC, parse_addr(HOST_IP))


def arp_frame(op: int = 1, pdst: str = HOST_IP, psrc: str = PEER_IP, pad: bool = True) -> bytes:
    raw = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC_S)
        / ARP(op=op, hwsrc=PEER_MAC_S, psrc=psrc, pdst=pdst)
    )
    return raw.ljust(60, b"\x00") if pad else raw


def echo_frame(dst: str = HOST_IP, src: str = PEER_IP, **ip: object) -> bytes:
    return bytes(
        Ether(dst=HOST_MAC_S, src=PEER_MAC_S)
        / IP(src=src, dst=dst, ttl=64, **ip)
        / ICMP(type=8, id=0x99, seq=3)
        / Raw(b"payload!")
    )


def only_drop(host: Ipv4Responder) -> str:
    drops = [k for k, v in host.counters.items() if k.startswith("drop.") and v]
    assert len(drops) == 1, host.counters
    return drops[0]


def checksums_valid(frame: bytes) -> Packet:
    pkt = Ether(frame)
    again = pkt.copy()
    if IP in again:
        del again[IP].chksum
        del again[ICMP].chksum
    assert bytes(again) == frame
    return pkt


@pytest.mark.parametrize("pad", [True, False])
def test_arp_request_answered(host: Ipv4Responder, pad: bool) -> None:
    out = host.handle_frame(arp_frame(pad=pad), 1.0)
    assert len(out) == 1
    pkt = Ether(out[0])
    assert (pkt.dst, pkt.src, pkt.type) == (PEER_MAC_S, HOST_MAC_S, 0x0806)
    a = pkt[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (2, HOST_MAC_S, HOST_IP, PEER_MAC_S, PEER_IP)
    assert host.counters["arp_replies"] == 1 and host.counters["tx"] == 1


def test_arp_probe_is_defended(host: Ipv4Responder) -> None:
    out = host.handle_frame(arp_frame(psrc="0.0.0.0"), 0.0)
    assert Ether(out[0])[ARP].pdst == "0.0.0.0"


def test_icmp_echo_answered(host: Ipv4Responder) -> None:
    out = host.handle_frame(echo_frame(), 2.0)
    pkt = checksums_valid(out[0])
    assert (pkt.dst, pkt.src) == (PEER_MAC_S, HOST_MAC_S)
    assert (pkt[IP].src, pkt[IP].dst, pkt[IP].ttl) == (HOST_IP, PEER_IP, 128)
    icmp = pkt[ICMP]
    assert (icmp.type, icmp.code, icmp.id, icmp.seq) == (0, 0, 0x99, 3)
    assert bytes(icmp.payload) == b"payload!"
    second = Ether(host.handle_frame(echo_frame(), 2.1)[0])
    assert second[IP].id == (pkt[IP].id + 1) & 0xFFFF
    assert host.counters["echo_replies"] == 2


def test_padded_echo_answered(host: Ipv4Responder) -> None:
    short = bytes(
        Ether(dst=HOST_MAC_S, src=PEER_MAC_S) / IP(src=PEER_IP, dst=HOST_IP) / ICMP(type=8)
    )
    assert len(short) < 60
    out = host.handle_frame(short.ljust(60, b"\x00"), 0.0)
    assert bytes(checksums_valid(out[0])[ICMP].payload) == b""


def _bad_ip_checksum() -> bytes:
    b = bytearray(echo_frame())
    b[14 + 10] ^= 0xFF
    return bytes(b)


def _bad_icmp_checksum() -> bytes:
    b = bytearray(echo_frame())
    b[-1] ^= 0xFF
    return bytes(b)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (arp_frame(pdst="192.0.2.9"), "NOT_FOR_US"),
        (arp_frame(op=2), "UNSOLICITED"),
        (arp_frame()[:14] + b"\x00\x06" + arp_frame()[16:], "UNSUPPORTED"),  # hrd=IEEE802
        (echo_frame(dst="192.0.2.77"), "NOT_FOR_US"),
        (echo_frame(dst="255.255.255.255"), "NOT_FOR_US"),
        (echo_frame(src="0.0.0.0"), "BAD_SOURCE"),
        (echo_frame(src="224.0.0.1"), "BAD_SOURCE"),
        (echo_frame(flags="MF"), "UNSUPPORTED"),
        (echo_frame(frag=10), "UNSUPPORTED"),
        (_bad_ip_checksum(), "BAD_CHECKSUM"),
        (_bad_icmp_checksum(), "BAD_CHECKSUM"),
        (
            bytes(Ether(dst=HOST_MAC_S, src=PEER_MAC_S) / IP(src=PEER_IP, dst=HOST_IP) / UDP()),
            "UNSUPPORTED",
        ),
        (
            bytes(
                Ether(dst=HOST_MAC_S, src=PEER_MAC_S) / IP(src=PEER_IP, dst=HOST_IP) / ICMP(type=13)
            ),
            "UNSUPPORTED",
        ),
        (
            bytes(Ether(dst="02:00:00:00:00:01", src=PEER_MAC_S) / IP(dst=HOST_IP) / ICMP()),
            "NOT_FOR_US",
        ),
        (bytes(Ether(dst=HOST_MAC_S, src=PEER_MAC_S, type=0x86DD) / Raw(bytes(40))), "UNSUPPORTED"),
    ],
    ids=_id,
)
def test_dropped(host: Ipv4Responder, frame: bytes, reason: str) -> None:
    assert host.handle_frame(frame, 0.0) == []
    assert only_drop(host) == f"drop.{reason}"


@pytest.mark.parametrize("frame", [arp_frame(pad=False), echo_frame()])
def test_truncated_at_every_length(host: Ipv4Responder, frame: bytes) -> None:
    for n in range(len(frame)):
        assert host.handle_frame(frame[:n], 0.0) == []
    assert host.counters["drop.TRUNCATED"] == len(frame)
    assert len(host.handle_frame(frame, 0.0)) == 1


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"\x08\x00", b"\x08\x06"]), st.binary(max_size=120))
def test_random_payloads_never_raise(ethertype: bytes, data: bytes) -> None:
    host = Ipv4Responder(HOST_MAC, parse_addr(HOST_IP))
    host.handle_frame(b"\xff" * 6 + parse_mac(PEER_MAC_S) + ethertype + data, 0.0)
    assert host.counters["rx"] == 1
    assert sum(v for k, v in host.counters.items() if k.startswith("drop.")) <= 1


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        Ipv4Responder(HOST_MAC, b"\x01\x02\x03")
    with pytest.raises(ValueError):
        Ipv4Responder(b"\xff" * 6, parse_addr(HOST_IP))
