"""UDP codec against scapy: checksums, the zero-checksum rule, length checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6

from tcpip6.wire import DropReason, MalformedFrame, udp
from tcpip6.wire.ipv6 import parse_addr

A = parse_addr("fe80::1")
B = parse_addr("2001:db8::2")


@given(st.binary(max_size=300), st.integers(1, 0xFFFF), st.integers(1, 0xFFFF))
def test_datagram_matches_scapy(data: bytes, sport: int, dport: int) -> None:
    ref = bytes(IPv6(src="fe80::1", dst="2001:db8::2") / UDP(sport=sport, dport=dport) / data)
    ours = udp.datagram(A, B, sport, dport, data)
    assert ours == ref[40:]
    d = udp.parse(A, B, ours)
    assert (d.src_port, d.dst_port, bytes(d.payload)) == (sport, dport, data)


def test_computed_zero_checksum_is_sent_as_ffff() -> None:
    # find a payload whose checksum computes to zero: then the field must be 0xFFFF
    for n in range(0x10000):
        raw = udp.datagram(A, B, 1, 2, n.to_bytes(2, "big"))
        if raw[6:8] == b"\xff\xff":
            udp.parse(A, B, raw)  # and it verifies
            return
    pytest.fail("no zero-checksum payload found")


def _reason(raw: bytes) -> DropReason:
    with pytest.raises(MalformedFrame) as ei:
        udp.parse(A, B, raw)
    return ei.value.reason


def test_malformed() -> None:
    good = udp.datagram(A, B, 5000, 7, b"hello")
    assert _reason(good[:7]) is DropReason.TRUNCATED
    zero = good[:6] + b"\x00\x00" + good[8:]
    assert _reason(zero) is DropReason.ZERO_CHECKSUM  # RFC 8200 §8.1
    bad = good[:6] + bytes([good[6] ^ 1, good[7]]) + good[8:]
    assert _reason(bad) is DropReason.BAD_CHECKSUM
    assert _reason(good[:4] + b"\x00\x07" + good[6:]) is DropReason.BAD_LENGTH
    assert _reason(good[:4] + b"\x00\x20" + good[6:]) is DropReason.TRUNCATED


def test_trailing_bytes_beyond_length_are_ignored() -> None:
    good = udp.datagram(A, B, 5000, 7, b"hello")
    d = udp.parse(A, B, good + b"\x00\x00\x00")
    assert bytes(d.payload) == b"hello"


def test_jumbo_rejected() -> None:
    with pytest.raises(ValueError):
        udp.datagram(A, B, 1, 2, bytes(0x10000))
