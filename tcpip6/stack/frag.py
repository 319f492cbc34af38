"""IPv6 fragment reassembly and fragmentation (RFC 8200 §4.5, RFC 5722, RFC 6946).

Theory of operation — receive: fragments are grouped by (source, destination, Identification).
The caller (the header-chain walk) has already handled atomic fragments (offset 0, M=0, RFC
6946: processed in isolation, never entering a buffer) and the two per-fragment rules that send
a Parameter Problem (length not a multiple of 8 with M=1; reassembled length over 65,535).
:class:`Reassembler` then keeps, per datagram, the fragment pieces sorted by offset, the
unfragmentable part taken from the fragment with offset 0 (its IPv6 header and the extension
headers before the Fragment header, with the last Next Header field to patch), and that first
fragment itself for a Time Exceeded message. Rules:

* any overlap abandons the whole datagram, silently (RFC 5722 §4, RFC 8200 §4.5); an exact
  duplicate is only dropped (RFC 5722 §4 "MAY choose to detect this case");
* a piece ending beyond a known end, or a second last fragment that disagrees, is invalid and
  abandons the datagram too;
* memory is bounded by ``reassembly_max_datagrams`` and ``reassembly_max_bytes``; a fragment
  that would exceed either is dropped (``drop.REASSEMBLY_FULL``), as Linux does; a datagram
  cut into more than ``MAX_FRAGMENTS_PER_DATAGRAM`` pieces is abandoned, and an empty
  fragment with M=1 is invalid;
* 60 s after the first fragment of a datagram arrived it is discarded; if the offset-0 fragment
  had arrived, the caller sends ICMPv6 Time Exceeded code 1 to its source (§4.5).

When the pieces cover [0, end) the datagram is rebuilt as unfragmentable part (Payload Length
and the Next Header before the Fragment header rewritten) + fragmentable part, and processing
continues after the unfragmentable part.

Transmit: :func:`fragment` splits an upper-layer payload into packets each fitting the path MTU,
every piece but the last a multiple of 8 octets, all with one Identification (drawn from the
injected random generator by the caller: unpredictable IDs, RFC 7739).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Hashable
from dataclasses import dataclass, field

from tcpip6.stack.context import StackContext
from tcpip6.wire import ipv6
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ipv6 import NH_FRAGMENT
from tcpip6.wire.ipv6ext import FRAGMENT_HEADER_LEN, FragmentHeader, fragment_header

_PLEN = struct.Struct("!H")
# A 65,535-byte datagram in 1280-byte fragments has 53 pieces; a sender splitting it finer is
# either broken or attacking the piece list, whose size the byte bound alone does not limit.
MAX_FRAGMENTS_PER_DATAGRAM = 512
FragKey = tuple[bytes, bytes, int]


@dataclass(slots=True, eq=False)
class _Datagram:
    started: float
    pieces: list[tuple[int, int, bytes]] = field(default_factory=list)  # (start, end, data)
    end: int = -1  # total fragmentable length once the last fragment arrived
    nbytes: int = 0
    unfrag: bytes | None = None
    nh_field: int = 0
    next_header: int = 0
    first: bytes | None = None  # the offset-0 fragment packet (Time Exceeded quotes it)
    first_l2mc: bool = False


@dataclass(frozen=True, slots=True)
class Reassembled:
    """A complete datagram: continue the header walk at ``offset`` with ``next_header``."""

    packet: bytes
    offset: int
    next_header: int
    nh_field: int


@dataclass(frozen=True, slots=True)
class Expired:
    """A datagram that timed out; ``first`` is set if its offset-0 fragment had arrived."""

    first: bytes | None
    l2_multicast: bool


class Reassembler:
    """Reassembly buffers of one interface (see module docstring)."""

    def __init__(self, ctx: StackContext) -> None:
        self._ctx = ctx
        self.datagrams: dict[FragKey, _Datagram] = {}
        self.nbytes = 0

    def add(
        self,
        pkt: memoryview,
        frag_off: int,
        nh_field: int,
        fh: FragmentHeader,
        l2_multicast: bool,
        now: float,
    ) -> Reassembled | None:
        """Take one (non-atomic) fragment; ``pkt`` is the whole IPv6 packet, exact length."""
        ctx = self._ctx
        cfg = ctx.config
        src = bytes(pkt[8:24])
        dst = bytes(pkt[24:40])
        key: FragKey = (src, dst, fh.ident)
        data = bytes(pkt[frag_off + FRAGMENT_HEADER_LEN :])
        start = fh.offset
        end = start + len(data)
        if not data and fh.more:  # an empty middle piece carries nothing and bounds nothing
            self._ctx.drop(DropReason.FRAG_INVALID)
            return None
        dg = self.datagrams.get(key)
        if dg is None:
            if len(self.datagrams) >= cfg.reassembly_max_datagrams:
                self._full()
                return None
            dg = _Datagram(now)
            self.datagrams[key] = dg
            ctx.timers.set(("frag", key), now + cfg.reassembly_timeout)
        if self.nbytes + len(data) > cfg.reassembly_max_bytes:
            if not dg.pieces:
                self._discard(key)
            self._full()
            return None
        if not fh.more:
            if (dg.end >= 0 and dg.end != end) or any(e > end for _, e, _ in dg.pieces):
                self._abandon(key, DropReason.FRAG_INVALID)
                return None
            dg.end = end
        elif dg.end >= 0 and end > dg.end:
            self._abandon(key, DropReason.FRAG_INVALID)
            return None
        pieces = dg.pieces
        if len(pieces) >= MAX_FRAGMENTS_PER_DATAGRAM:
            self._abandon(key, DropReason.REASSEMBLY_FULL)
            return None
        i = bisect.bisect_left(pieces, (start,))
        for j in (i - 1, i):
            if 0 <= j < len(pieces):
                s, e, d = pieces[j]
                if s < end and start < e:
                    if s == start and e == end and d == data:
                        ctx.counters["frag.duplicate"] += 1
                        return None
                    self._abandon(key, DropReason.FRAG_OVERLAP)
                    return None
        pieces.insert(i, (start, end, data))
        dg.nbytes += len(data)
        self.nbytes += len(data)
        if start == 0:
            dg.unfrag = bytes(pkt[:frag_off])
            dg.nh_field = nh_field
            dg.next_header = fh.next_header
            dg.first = bytes(pkt)
            dg.first_l2mc = l2_multicast
        ctx.counters["frag.rx"] += 1
        if dg.end < 0 or dg.unfrag is None or dg.nbytes != dg.end:
            return None
        # complete: no overlaps and the byte count equals the end, so [0, end) is covered
        self._discard(key)
        unfrag = bytearray(dg.unfrag)
        unfrag[dg.nh_field] = dg.next_header
        _PLEN.pack_into(unfrag, 4, len(unfrag) - ipv6.HEADER_LEN + dg.end)
        ctx.counters["frag.reassembled"] += 1
        body = b"".join(d for _, _, d in pieces)
        return Reassembled(bytes(unfrag) + body, len(unfrag), dg.next_header, dg.nh_field)

    def _full(self) -> None:
        self._ctx.drop(DropReason.REASSEMBLY_FULL)

    def _abandon(self, key: FragKey, reason: DropReason) -> None:
        self._discard(key)
        self._ctx.drop(reason)

    def _discard(self, key: FragKey) -> None:
        dg = self.datagrams.pop(key, None)
        if dg is not None:
            self.nbytes -= dg.nbytes
            self._ctx.timers.cancel(("frag", key))

    def on_timer(self, key: Hashable, now: float) -> Expired | None:
        assert isinstance(key, tuple)
        fkey: FragKey = key[1]
        dg = self.datagrams.get(fkey)
        if dg is None:
            return None
        self._discard(fkey)
        self._ctx.drop(DropReason.FRAG_TIMEOUT)
        return Expired(dg.first, dg.first_l2mc)


def fragment(
    src: bytes,
    dst: bytes,
    next_header: int,
    hop_limit: int,
    payload: bytes,
    mtu: int,
    ident: int,
) -> list[bytes]:
    """Split ``payload`` (an upper-layer packet) into IPv6 fragments of at most ``mtu`` bytes."""
    chunk = (mtu - ipv6.HEADER_LEN - FRAGMENT_HEADER_LEN) & ~7
    if chunk <= 0:
        raise ValueError(f"mtu {mtu} too small to fragment")
    out = []
    n = len(payload)
    for off in range(0, n, chunk):
        piece = payload[off : off + chunk]
        more = off + chunk < n
        head = fragment_header(next_header, off, more, ident)
        out.append(ipv6.packet(src, dst, NH_FRAGMENT, hop_limit, head + piece))
    return out
