"""IPv4 header (RFC 791) and ICMPv4 Echo (RFC 792).

Theory of operation: :meth:`Ipv4Header.parse` validates version 4, IHL >= 5 (RFC 791 §3.1), that
the header and total length fit in the buffer, and the header checksum (RFC 1071 over the header
only, RFC 791 §3.1 "Header Checksum"); the payload view is cut to ``total_length`` so Ethernet
padding is dropped. Options are kept as raw bytes and re-emitted verbatim. Fragments parse fine;
reassembly is not implemented, so the stacks drop them as unsupported (RFC 1122 §3.3.2 makes
reassembly a MUST for full hosts — out of scope for an echo/ARP responder). ICMP checksums cover
the whole ICMP message (RFC 792, "Echo or Echo Reply Message"). Addresses are raw 4-byte
``bytes``.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason
from tcpip6.wire.icmpv6 import Echo
from tcpip6.wire.ipv6 import internet_checksum

HEADER_LEN = 20
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
FLAG_DF = 0x2
FLAG_MF = 0x1
BROADCAST = b"\xff\xff\xff\xff"
ANY = b"\x00\x00\x00\x00"

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11

_HDR = struct.Struct("!BBHHHBBH4s4s")
_ICMP = struct.Struct("!BBH")
_ECHO_BODY = struct.Struct("!HH")
_from_bytes = int.from_bytes


@dataclass(frozen=True, slots=True)
class Ipv4Header:
    """RFC 791 header; ``flags`` is the 3-bit field (DF=2, MF=1), ``options`` raw bytes."""

    total_length: int
    protocol: int
    ttl: int
    src: bytes
    dst: bytes
    ident: int = 0
    tos: int = 0
    flags: int = 0
    frag_offset: int = 0
    options: bytes = b""

    @property
    def header_len(self) -> int:
        return HEADER_LEN + len(self.options)

    @property
    def is_fragment(self) -> bool:
        return bool(self.flags & FLAG_MF) or self.frag_offset != 0

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> tuple[Ipv4Header, memoryview]:
        """Validate and split; the payload view ends at ``total_length``."""
        n = len(buf)
        if n < HEADER_LEN:
            raise MalformedFrame(DropReason.TRUNCATED, f"ipv4: {n} < 20 bytes")
        vihl, tos, tlen, ident, ffo, ttl, proto, _ck, src, dst = _HDR.unpack_from(buf)
        if vihl >> 4 != 4:
            raise MalformedFrame(DropReason.BAD_VERSION, f"ipv4: version {vihl >> 4}")
        hlen = (vihl & 0x0F) * 4
        if hlen < HEADER_LEN:
            raise MalformedFrame(DropReason.BAD_LENGTH, f"ipv4: IHL {hlen // 4} < 5")
        if hlen > n:
            raise MalformedFrame(DropReason.TRUNCATED, f"ipv4: header {hlen} > {n} bytes")
        if tlen < hlen:
            raise MalformedFrame(DropReason.BAD_LENGTH, f"ipv4: total length {tlen} < {hlen}")
        if tlen > n:
            raise MalformedFrame(DropReason.TRUNCATED, f"ipv4: total length {tlen} > {n}")
        mv = memoryview(buf)
        if internet_checksum(mv[:hlen]) != 0:
            raise MalformedFrame(DropReason.BAD_CHECKSUM, "ipv4 header")
        hdr = cls(
            tlen, proto, ttl, src, dst, ident, tos, ffo >> 13, ffo & 0x1FFF,
            bytes(mv[HEADER_LEN:hlen]),
        )  # fmt: skip
        return hdr, mv[hlen:tlen]

    def emit(self) -> bytes:
        """Header bytes (with options) and a freshly computed checksum."""
        hlen = HEADER_LEN + len(self.options)
        if hlen & 3 or hlen > 60:
            raise ValueError(f"ipv4 options must pad the header to a multiple of 4 <= 60: {hlen}")
        fields = (
            0x40 | hlen >> 2,
            self.tos,
            self.total_length,
            self.ident,
            (self.flags & 0x7) << 13 | (self.frag_offset & 0x1FFF),
            self.ttl,
            self.protocol,
        )
        raw = _HDR.pack(*fields, 0, self.src, self.dst) + self.options
        return _HDR.pack(*fields, internet_checksum(raw), self.src, self.dst) + self.options

    def __repr__(self) -> str:
        return (
            f"Ipv4Header({addr_str(self.src)} -> {addr_str(self.dst)}, proto={self.protocol}, "
            f"ttl={self.ttl}, len={self.total_length}, id={self.ident}, flags={self.flags}, "
            f"frag={self.frag_offset}, options={len(self.options)}B)"
        )


def packet(
    src: bytes,
    dst: bytes,
    protocol: int,
    ttl: int,
    payload: bytes | bytearray | memoryview,
    ident: int = 0,
    tos: int = 0,
    df: bool = False,
) -> bytes:
    """Option-less header + payload (the builders' fast path; no dataclass)."""
    tlen = HEADER_LEN + len(payload)
    ffo = 0x4000 if df else 0
    ck = internet_checksum(_HDR.pack(0x45, tos, tlen, ident, ffo, ttl, protocol, 0, src, dst))
    return _HDR.pack(0x45, tos, tlen, ident, ffo, ttl, protocol, ck, src, dst) + payload


def addr_str(addr: bytes | bytearray | memoryview) -> str:
    """4 raw bytes -> dotted quad."""
    return str(ipaddress.IPv4Address(bytes(addr)))


def parse_addr(text: str) -> bytes:
    """Dotted quad -> 4 raw bytes (ValueError on bad input)."""
    return ipaddress.IPv4Address(text).packed


def is_multicast(addr: bytes | bytearray | memoryview) -> bool:
    """224.0.0.0/4 (RFC 5771)."""
    return (addr[0] & 0xF0) == 0xE0


# --- ICMPv4 --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Icmpv4Message:
    """A checksum-verified ICMP message; ``body`` is everything after the checksum."""

    type: int
    code: int
    checksum: int
    body: memoryview


def parse_icmp(data: bytes | bytearray | memoryview, *, verify: bool = True) -> Icmpv4Message:
    """Check length and the checksum over the whole message (RFC 792)."""
    if len(data) < 4:
        raise MalformedFrame(DropReason.TRUNCATED, f"icmp: {len(data)} < 4 bytes")
    if verify and internet_checksum(data) != 0:
        raise MalformedFrame(DropReason.BAD_CHECKSUM, "icmp")
    t, code, ck = _ICMP.unpack_from(data)
    return Icmpv4Message(t, code, ck, memoryview(data)[4:])


def parse_icmp_echo(msg: Icmpv4Message) -> Echo:
    """Identifier, sequence number and data of an Echo or Echo Reply."""
    body = msg.body
    if len(body) < 4:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"icmp echo: body {len(body)} < 4 bytes")
    ident, seq = _ECHO_BODY.unpack_from(body)
    return Echo(ident, seq, bytes(body[4:]))


def icmp_message(icmp_type: int, code: int, body: bytes) -> bytes:
    """Header + ``body`` with the checksum filled in."""
    n = 4 + len(body)
    total = ((icmp_type << 8) | code) + (_from_bytes(body, "big") << (8 if n & 1 else 0))
    r = total % 0xFFFF
    ck = 0 if (r == 0 and total) else 0xFFFF - r
    return _ICMP.pack(icmp_type, code, ck) + body


def icmp_echo_request(ident: int, seq: int, data: bytes = b"") -> bytes:
    """ICMP Echo (type 8, RFC 792)."""
    return icmp_message(ICMP_ECHO_REQUEST, 0, _ECHO_BODY.pack(ident, seq) + data)


def icmp_echo_reply(ident: int, seq: int, data: bytes = b"") -> bytes:
    """ICMP Echo Reply (type 0, RFC 792): identifier, sequence number and data echoed."""
    return icmp_message(ICMP_ECHO_REPLY, 0, _ECHO_BODY.pack(ident, seq) + data)
