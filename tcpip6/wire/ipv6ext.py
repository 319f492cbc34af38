"""IPv6 extension headers (RFC 8200 §4): options headers, Routing, Fragment.

Theory of operation: the receiving stack walks the header chain itself (it needs the offsets for
ICMPv6 Parameter Problem pointers, RFC 4443 §3.4), so this module offers small pieces over a
buffer and an offset rather than a tree of objects:

* :func:`ext_len` — the length of a Hop-by-Hop, Destination Options or Routing header, which all
  start ``next_header(1) hdr_ext_len(1)`` with the length in 8-octet units not counting the
  first 8 (RFC 8200 §4.3, §4.4, §4.6).
* :func:`scan_options` — the TLV walk of RFC 8200 §4.2. Pad1 and PadN are padding; the caller
  names the other option types it recognizes. For the first unrecognized option whose two
  high-order bits are not ``00`` it returns the offset of its type octet and the action those
  bits demand (:class:`OptionAction`); an option overrunning the header is malformed.
* :class:`FragmentHeader` (RFC 8200 §4.5) and the builders used on transmit: a Fragment header
  and the Hop-by-Hop header carrying a Router Alert option (RFC 2711) that MLD reports need
  (RFC 3810 §5).

Offsets are absolute positions in the buffer handed in, so a caller that passes the whole IPv6
packet gets Parameter Problem pointers for free.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason

OPT_PAD1 = 0
OPT_PADN = 1
OPT_ROUTER_ALERT = 5  # RFC 2711 §2.1
OPT_JUMBO = 0xC2  # RFC 2675 (not supported: treated as unrecognized)
ROUTER_ALERT_MLD = 0  # RFC 2711 §2.1 value 0: "Datagram contains a Multicast Listener
# Discovery message"

ROUTING_TYPE_0 = 0  # deprecated by RFC 5095: processed as an unrecognized routing type
FRAGMENT_HEADER_LEN = 8

_FRAG = struct.Struct("!BBHI")
_ROUTING = struct.Struct("!BBBB")
_RA_HBH = struct.Struct("!BBBBHBB")  # nh, len=0, RA type, RA len=2, RA value, PadN type, PadN len


class OptionAction(IntEnum):
    """What RFC 8200 §4.2 says to do with an unrecognized option (its type's two top bits)."""

    SKIP = 0  # 00: skip over this option and continue processing the header
    DISCARD = 1  # 01: discard the packet
    DISCARD_ICMP = 2  # 10: discard, send Parameter Problem code 2 even to a multicast destination
    DISCARD_ICMP_UNICAST = 3  # 11: same, but only if the destination was not multicast


def ext_len(buf: bytes | bytearray | memoryview, off: int, end: int) -> int:
    """Length in bytes of the options/routing header at ``off``; it must fit before ``end``."""
    if end - off < 2:
        raise MalformedFrame(DropReason.TRUNCATED, f"extension header cut at {off}")
    n = (buf[off + 1] + 1) * 8
    if off + n > end:
        raise MalformedFrame(DropReason.TRUNCATED, f"extension header {n}B overruns at {off}")
    return n


def scan_options(
    buf: bytes | bytearray | memoryview, start: int, end: int, known: frozenset[int]
) -> tuple[int, OptionAction] | None:
    """Walk the TLVs in ``buf[start:end]`` (RFC 8200 §4.2).

    Return ``None`` if the packet may be processed further, else ``(offset_of_type, action)`` for
    the first unrecognized option whose action is not SKIP. Raise ``BAD_OPTION`` if an option's
    length runs past ``end``.
    """
    off = start
    while off < end:
        otype = buf[off]
        if otype == OPT_PAD1:
            off += 1
            continue
        if end - off < 2:
            raise MalformedFrame(DropReason.BAD_OPTION, f"option header cut at {off}")
        nxt = off + 2 + buf[off + 1]
        if nxt > end:
            raise MalformedFrame(DropReason.BAD_OPTION, f"option type {otype} overruns")
        if otype != OPT_PADN and otype not in known:
            action = OptionAction(otype >> 6)
            if action is not OptionAction.SKIP:
                return off, action
        off = nxt
    return None


def find_option(
    buf: bytes | bytearray | memoryview, start: int, end: int, wanted: int
) -> memoryview | None:
    """The data of the first option of type ``wanted`` in ``buf[start:end]``, or None."""
    off = start
    mv = memoryview(buf)
    while off < end:
        otype = buf[off]
        if otype == OPT_PAD1:
            off += 1
            continue
        if end - off < 2:
            return None
        olen = buf[off + 1]
        if otype == wanted:
            return mv[off + 2 : off + 2 + olen]
        off += 2 + olen
    return None


@dataclass(frozen=True, slots=True)
class RoutingHeader:
    """The fixed part of any Routing header (RFC 8200 §4.4)."""

    next_header: int
    length: int  # bytes, the whole header
    routing_type: int
    segments_left: int

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview, off: int, end: int) -> RoutingHeader:
        if end - off < 4:
            raise MalformedFrame(DropReason.TRUNCATED, f"routing header cut at {off}")
        nh, hlen, rtype, left = _ROUTING.unpack_from(buf, off)
        n = (hlen + 1) * 8
        if off + n > end:
            raise MalformedFrame(DropReason.TRUNCATED, f"routing header {n}B overruns")
        return cls(nh, n, rtype, left)


@dataclass(frozen=True, slots=True)
class FragmentHeader:
    """RFC 8200 §4.5; ``offset`` is in bytes (the 13-bit field times 8)."""

    next_header: int
    offset: int
    more: bool
    ident: int

    @property
    def atomic(self) -> bool:
        """Offset 0 and M=0: a whole packet carrying a Fragment header (RFC 6946)."""
        return self.offset == 0 and not self.more

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview, off: int, end: int) -> FragmentHeader:
        if end - off < FRAGMENT_HEADER_LEN:
            raise MalformedFrame(DropReason.TRUNCATED, f"fragment header cut at {off}")
        nh, _res, offm, ident = _FRAG.unpack_from(buf, off)
        return cls(nh, offm & 0xFFF8, bool(offm & 1), ident)

    def emit(self) -> bytes:
        return fragment_header(self.next_header, self.offset, self.more, self.ident)


def fragment_header(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    """8-byte Fragment header; ``offset`` in bytes, a multiple of 8 (RFC 8200 §4.5)."""
    if offset & 7 or not 0 <= offset <= 0xFFF8:
        raise ValueError(f"fragment offset {offset} is not a multiple of 8 in range")
    return _FRAG.pack(next_header, 0, offset | (1 if more else 0), ident)


def hop_by_hop_router_alert(next_header: int, value: int = ROUTER_ALERT_MLD) -> bytes:
    """An 8-byte Hop-by-Hop header: Router Alert (RFC 2711) then PadN with no data."""
    return _RA_HBH.pack(next_header, 0, OPT_ROUTER_ALERT, 2, value, OPT_PADN, 0)
