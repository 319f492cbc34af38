"""Ethernet II framing (DIX / IEEE 802.3 with EtherType).

Theory of operation: a frame is ``dst(6) src(6) ethertype(2) payload``; the FCS is never seen
by software, so it is neither parsed nor emitted. Parsing returns the header plus a zero-copy
``memoryview`` of the payload, which may still carry the 802.3 minimum-size padding (frames are
padded to 60 bytes without FCS) — the network-layer parsers cut that off using their own length
fields (RFC 8200 §3 payload length, RFC 791 total length). Type/length values below 0x0600 (raw
802.3/LLC) and VLAN tags are passed through as an ``ethertype`` the stacks treat as unsupported.
IPv6 multicast maps to 33:33 + the low 32 bits of the group address (RFC 2464 §7).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_ARP: Final = 0x0806
ETHERTYPE_IPV6: Final = 0x86DD

HEADER_LEN: Final = 14
MIN_FRAME_LEN: Final = 60  # IEEE 802.3 minimum without FCS; shorter frames get zero padding
BROADCAST_MAC: Final = b"\xff" * 6
IPV6_MCAST_PREFIX: Final = b"\x33\x33"  # RFC 2464 §7

_HDR: Final = struct.Struct("!6s6sH")
pack_header: Final = _HDR.pack
"""``pack_header(dst, src, ethertype) -> bytes``: the hot-path emitter (no dataclass)."""
unpack_header: Final = _HDR.unpack_from
"""``unpack_header(buf, offset=0) -> (dst, src, ethertype)``; caller checks ``len >= 14``."""


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """An Ethernet II header; MACs are raw 6-byte ``bytes``."""

    dst: bytes
    src: bytes
    ethertype: int

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> tuple[EthernetHeader, memoryview]:
        """Split ``buf`` into header and payload view; raise ``MalformedFrame(TRUNCATED)``."""
        if len(buf) < HEADER_LEN:
            raise MalformedFrame(DropReason.TRUNCATED, f"ethernet: {len(buf)} < 14 bytes")
        dst, src, ethertype = unpack_header(buf)
        return cls(dst, src, ethertype), memoryview(buf)[HEADER_LEN:]

    def emit(self) -> bytes:
        """The 14 header bytes."""
        return pack_header(self.dst, self.src, self.ethertype)

    def __repr__(self) -> str:
        return (
            f"EthernetHeader(dst={mac_str(self.dst)}, src={mac_str(self.src)}, "
            f"ethertype=0x{self.ethertype:04x})"
        )


def frame(dst: bytes, src: bytes, ethertype: int, payload: bytes | bytearray | memoryview) -> bytes:
    """A complete frame (no padding: the NIC or wire pads, as in NDIS miniport sends)."""
    return pack_header(dst, src, ethertype) + payload


def mac_str(mac: bytes | bytearray | memoryview) -> str:
    """``b'\\x02\\x00...'`` -> ``'02:00:...'`` (lower case, colon separated)."""
    return bytes(mac).hex(":")


def parse_mac(text: str) -> bytes:
    """Accept ``aa:bb:cc:dd:ee:ff``, ``aa-bb-...`` or 12 bare hex digits; ValueError otherwise."""
    digits = text.replace(":", "").replace("-", "").replace(".", "")
    if len(digits) != 12:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes.fromhex(digits)


def is_multicast_mac(mac: bytes | bytearray | memoryview) -> bool:
    """I/G bit set (includes broadcast), IEEE 802-2014 §8.2."""
    return bool(mac[0] & 0x01)


def ipv6_multicast_mac(addr16: bytes | bytearray | memoryview) -> bytes:
    """33:33 followed by the last four octets of the IPv6 multicast address (RFC 2464 §7)."""
    return IPV6_MCAST_PREFIX + bytes(addr16[12:16])
