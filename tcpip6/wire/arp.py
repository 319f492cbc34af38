"""ARP for Ethernet/IPv4 (RFC 826).

Theory of operation: only hardware type 1 (Ethernet), protocol type 0x0800, hlen 6 and plen 4 are
accepted; anything else is another protocol pairing this stack does not speak (RFC 826 "?Do I
have the hardware type in ar$hrd?" ... "(optionally) check the hardware length") and is reported
as unsupported. The 28-byte packet is usually followed by Ethernet padding, which is ignored.
Opcodes other than request (1) and reply (2) are unsupported (RARP/InARP live elsewhere).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason

HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
OP_REQUEST = 1
OP_REPLY = 2
PACKET_LEN = 28
ZERO_MAC = bytes(6)

_ARP = struct.Struct("!HHBBH6s4s6s4s")


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP packet (RFC 826 "Packet format")."""

    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> ArpPacket:
        """Validate the fixed fields; trailing bytes (padding) are ignored."""
        if len(buf) < PACKET_LEN:
            raise MalformedFrame(DropReason.TRUNCATED, f"arp: {len(buf)} < 28 bytes")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(buf)
        if htype != HTYPE_ETHERNET or ptype != PTYPE_IPV4 or hlen != 6 or plen != 4:
            raise MalformedFrame(
                DropReason.UNSUPPORTED, f"arp: hrd={htype} pro=0x{ptype:04x} hln={hlen} pln={plen}"
            )
        if op != OP_REQUEST and op != OP_REPLY:
            raise MalformedFrame(DropReason.UNSUPPORTED, f"arp: op {op}")
        return cls(op, sha, spa, tha, tpa)

    def emit(self) -> bytes:
        """The 28 packet bytes (no padding)."""
        return _ARP.pack(
            HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, self.op,
            self.sender_mac, self.sender_ip, self.target_mac, self.target_ip,
        )  # fmt: skip


def request(sender_mac: bytes, sender_ip: bytes, target_ip: bytes) -> bytes:
    """Who-has ``target_ip``; target hardware address zero (RFC 826, RFC 5227 §2.1.1)."""
    return _ARP.pack(
        HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, OP_REQUEST, sender_mac, sender_ip, ZERO_MAC, target_ip
    )


def reply(sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes) -> bytes:
    """``sender_ip`` is-at ``sender_mac``, addressed to the requester (RFC 826)."""
    return _ARP.pack(
        HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, OP_REPLY, sender_mac, sender_ip, target_mac, target_ip
    )
