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
  bits demand (:class:`OptionAction`); an option overrunning the header is malformed. Linux's
  limits bound the walk: non-padding options per header, consecutive padding bytes, PadN data
  zero (RFC 4942 §2.1.9.5).
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
OPT_JUMBO = 0xC2  # RFC 2675: recognized in Hop-by-Hop headers, so that its errors are
# RFC 2675 §3's (no link here carries a jumbogram: a valid one is always truncated)
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
    JUMBO = 4  # not an action: a Jumbo Payload option (RFC 2675) the caller must check


def ext_len(buf: bytes | bytearray | memoryview, off: int, end: int) -> int:
    """Length in bytes of the options/routing header at ``off``; it must fit before ``end``."""
    if end - off < 2:
        raise MalformedFrame(DropReason.TRUNCATED, f"extension header cut at {off}")
    n = (buf[off + 1] + 1) * 8
    if off + n > end:
        raise MalformedFrame(DropReason.TRUNCATED, f"extension header {n}B overruns at {off}")
    return n


def scan_options(
    buf: bytes | bytearray | memoryview,
    start: int,
    end: int,
    known: frozenset[int],
    max_options: int = 8,
    max_padding: int = 7,
    jumbo: bool = False,
) -> tuple[int, OptionAction] | None:
    """Walk the TLVs in ``buf[start:end]`` (RFC 8200 §4.2), in order, as Linux's
    ``ip6_parse_tlv`` does.

    Return ``None`` if the packet may be processed further, else ``(offset_of_type, action)`` for
    the first unrecognized option whose action is not SKIP, or — with ``jumbo`` (a Hop-by-Hop
    header) — ``(offset, JUMBO)`` for a Jumbo Payload option, which the caller checks (RFC 2675
    §3). Raise ``BAD_OPTION`` if an option's length runs past ``end``, ``BAD_PADDING`` for more
    than ``max_padding`` consecutive padding bytes or a PadN whose data is not zero (RFC 4942
    §2.1.9.5), ``TOO_MANY_OPTIONS`` for more than ``max_options`` non-padding options. The
    walk stops at the first of these, so its work is bounded by the limits, not the header.
    """
    off = start
    padlen = 0
    count = 0
    while off < end:
        otype = buf[off]
        if otype == OPT_PAD1:
            padlen += 1
            if padlen > max_padding:
                raise MalformedFrame(DropReason.BAD_PADDING, f"padding run at {off}")
            off += 1
            continue
        if end - off < 2:
            raise MalformedFrame(DropReason.BAD_OPTION, f"option header cut at {off}")
        olen = buf[off + 1]
        nxt = off + 2 + olen
        if nxt > end:
            raise MalformedFrame(DropReason.BAD_OPTION, f"option type {otype} overruns")
        if otype == OPT_PADN:
            padlen += 2 + olen
            if padlen > max_padding:
                raise MalformedFrame(DropReason.BAD_PADDING, f"padding run at {off}")
            if olen and any(buf[off + 2 : nxt]):
                raise MalformedFrame(DropReason.BAD_PADDING, f"PadN data not zero at {off}")
        else:
            count += 1
            if count > max_options:
                raise MalformedFrame(DropReason.TOO_MANY_OPTIONS, f"option {count} at {off}")
            if jumbo and otype == OPT_JUMBO:
                return off, OptionAction.JUMBO
            if otype not in known:
                action = OptionAction(otype >> 6)
                if action is not OptionAction.SKIP:
                    return off, action
            padlen = 0
        off = nxt
    return None


_UPPER_MIN = {6: 20, 17: 8, 58: 8}  # TCP, UDP, ICMPv6 header sizes; other upper layers: 1 byte


def chain_incomplete(buf: bytes | bytearray | memoryview, off: int, nh: int, end: int) -> bool:
    """Does a first fragment (its Fragment header ends at ``off``, naming ``nh``) stop before
    the upper-layer header is whole (RFC 7112 §5, RFC 8200 §4.5)? The walk is Linux's
    ``ipv6frag_thdr_truncated``: a header whose first two octets are not in the fragment, No Next
    Header, or a non-first Fragment header end it with "cannot tell" (False); otherwise the
    upper-layer header's fixed part must fit."""
    while nh in (0, 43, 44, 51, 60):
        if off + 2 > end:
            return False
        if nh == 44:
            if off + 4 > end or (buf[off + 2] << 8 | buf[off + 3]) & 0xFFF8:
                return False
            n = 8
        elif nh == 51:  # Authentication Header: length in 4-octet units, minus 2
            n = (buf[off + 1] + 2) * 4
        else:
            n = (buf[off + 1] + 1) * 8
        nh = buf[off]
        off += n
    if nh == 59:
        return False
    return off + _UPPER_MIN.get(nh, 1) > end


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
