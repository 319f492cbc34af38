"""UDP over IPv6 (RFC 768, RFC 8200 §8.1).

Theory of operation: :func:`parse` takes the upper-layer bytes behind the IPv6 header chain and
the addresses of the pseudo-header, and checks, in order: the 8-byte header fits; the Length
field is at least 8 and not larger than what arrived (a shorter Length trims trailing bytes, as
RFC 768 defines the datagram by its Length); the checksum is not zero — "IPv6 receivers MUST
discard UDP packets containing a zero checksum" (RFC 8200 §8.1) — and verifies over the
pseudo-header. :func:`datagram` computes the checksum and sends a computed zero as 0xFFFF
(RFC 768, RFC 8200 §8.1).
"""

from __future__ import annotations

import builtins
import struct
from dataclasses import dataclass
from typing import Final

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ipv6 import NH_UDP, pseudo_header_checksum, view

HEADER_LEN: Final = 8
_HDR: Final = struct.Struct("!HHHH")
# bound once: compiled, ``_HDR.unpack_from(...)`` is a method call by name (a lookup in the
# type's dict each time); a bound method is called directly
_unpack_hdr: Final = _HDR.unpack_from
_pack_hdr: Final = _HDR.pack
_from_bytes: Final = int.from_bytes


@dataclass(frozen=True, slots=True, eq=False)
class UdpDatagram:
    """A verified UDP datagram; ``payload`` is a view into the received buffer."""

    src_port: int
    dst_port: int
    payload: builtins.memoryview  # (mypyc: a bare builtin name here fails to load)


def parse(
    src: bytes, dst: bytes, data: bytes | bytearray | memoryview, *, verify: bool = True
) -> UdpDatagram:
    """Validate the header and checksum of the UDP datagram in ``data``."""
    n = len(data)
    if n < HEADER_LEN:
        raise MalformedFrame(DropReason.TRUNCATED, f"udp: {n} < 8 bytes")
    sport, dport, length, ck = _unpack_hdr(data)
    if length < HEADER_LEN:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"udp: length field {length} < 8")
    if length > n:
        raise MalformedFrame(DropReason.TRUNCATED, f"udp: length field {length} > {n}")
    if ck == 0:
        raise MalformedFrame(DropReason.ZERO_CHECKSUM, "udp over ipv6")
    mv = view(data)[:length]
    if verify and pseudo_header_checksum(src, dst, length, NH_UDP, mv) != 0:
        raise MalformedFrame(DropReason.BAD_CHECKSUM, "udp")
    return UdpDatagram(sport, dport, mv[HEADER_LEN:])


def datagram(
    src: bytes, dst: bytes, src_port: int, dst_port: int, payload: bytes | bytearray | memoryview
) -> bytes:
    """Header + payload with the pseudo-header checksum (0 is sent as 0xFFFF)."""
    length = HEADER_LEN + len(payload)
    if length > 0xFFFF:
        raise ValueError(f"udp datagram of {length} bytes needs a jumbogram")
    total = (
        _from_bytes(src, "big")
        + _from_bytes(dst, "big")
        + length
        + NH_UDP
        + (src_port << 48 | dst_port << 32 | length << 16)  # header words, checksum zero
        + (_from_bytes(payload, "big") << (8 if length & 1 else 0))
    )
    r = total % 0xFFFF
    ck = 0 if (r == 0 and total) else 0xFFFF - r
    return _pack_hdr(src_port, dst_port, length, ck or 0xFFFF) + payload
