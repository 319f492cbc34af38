"""TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018) over IPv6 (RFC 8200 §8.1).

Theory of operation: :func:`parse` takes the upper-layer bytes behind the IPv6 header chain and
the pseudo-header addresses, and checks, once and in order: the 20-byte fixed header fits; the
Data Offset is at least 5 words and within what arrived; the checksum verifies over the
pseudo-header (RFC 9293 §3.1 MUST-2/3, RFC 8200 §8.1 — there is no "no checksum" for TCP); the
option list is well formed (every option but EOL/NOP has a length octet >= 2 that stays inside
the header, RFC 9293 §3.1 MUST-7: a broken list drops the segment with ``BAD_OPTION``). Known
options with a length other than their fixed one are skipped, as are unknown kinds (§3.2,
MUST-6). A Window Scale above 14 is taken as 14 (RFC 7323 §2.3). The common data-segment layout
``NOP NOP TS`` is recognised without the general option loop.

The result is a :class:`TcpSegment` — a plain ``__slots__`` record, not a frozen dataclass, so
the per-segment path does not pay ``object.__setattr__``. Sequence and acknowledgment numbers
stay 32-bit wire values; the connection maps them to its unbounded internal numbers.

:func:`build` emits header + options + payload with the checksum. The sum is formed without
concatenating first: every 16-bit word sum is congruent (mod 0xFFFF) to the big-endian integer
of the bytes, and a payload behind an even-length header contributes its integer shifted by 8
bits when its own length is odd (the RFC 1071 zero pad). :func:`options` lays options out the
way Linux does (``MSS, SACK_PERM+TS, NOP+WS`` on a SYN; ``NOP NOP TS`` and ``NOP NOP SACK`` on
other segments), always a multiple of four octets.
"""

from __future__ import annotations

import struct
from typing import Final

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ipv6 import NH_TCP, pseudo_header_checksum, reduce_ffff, view

HEADER_LEN: Final = 20
MAX_OPTIONS_LEN: Final = 40  # Data Offset is 4 bits of 32-bit words: 60 bytes of header at most

# Control bits (RFC 9293 §3.1; CWR/ECE RFC 3168)
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80

# Option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018)
OPT_EOL: Final = 0
OPT_NOP: Final = 1
OPT_MSS: Final = 2
OPT_WSCALE: Final = 3
OPT_SACK_PERM: Final = 4
OPT_SACK: Final = 5
OPT_TIMESTAMP: Final = 8
MAX_WSCALE: Final = 14  # RFC 7323 §2.3

_HDR: Final = struct.Struct("!HHIIHHHH")  # ports, seq, ack, offset|flags, window, checksum, urgent
_U16: Final = struct.Struct("!H")
_U32X2: Final = struct.Struct("!II")
# bound once: compiled, ``_HDR.unpack_from(...)`` is a method call by name (a lookup in the
# type's dict each time); a bound method is called directly
_unpack_hdr: Final = _HDR.unpack_from
_pack_hdr: Final = _HDR.pack
_unpack_u32x2: Final = _U32X2.unpack_from
_pack_u32x2: Final = _U32X2.pack
_TS_FAST: Final[bytes] = b"\x01\x01\x08\x0a"  # NOP NOP kind=8 len=10: the usual data-segment layout
_TS_FAST_SACK: Final[bytes] = b"\x04\x02\x08\x0a"  # SACK_PERM then TS (a Linux SYN's second word)
_from_bytes: Final = int.from_bytes
_NH = NH_TCP


class TcpSegment:
    """A verified TCP segment. ``payload`` is a view into the received buffer; ``tsval`` is
    None without a Timestamps option; ``sack`` holds (left, right) wire edges."""

    __slots__ = (
        "ack", "dst_port", "flags", "mss", "payload", "sack", "sack_permitted", "seq",
        "src_port", "tsecr", "tsval", "urgent", "window", "wscale",
    )  # fmt: skip

    def __init__(
        self,
        src_port: int,
        dst_port: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        urgent: int,
        payload: memoryview,
    ) -> None:
        self.src_port = src_port
        self.dst_port = dst_port
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.urgent = urgent
        self.payload = payload
        self.mss: int | None = None
        self.wscale: int | None = None
        self.sack_permitted = False
        self.sack: tuple[tuple[int, int], ...] = ()
        self.tsval: int | None = None
        self.tsecr = 0

    def options(self) -> bytes:
        """The options as :func:`options` would lay them out (for round trips in tests)."""
        ts = None if self.tsval is None else (self.tsval, self.tsecr)
        return options(
            mss=self.mss, wscale=self.wscale, sack_permitted=self.sack_permitted, ts=ts,
            sack=self.sack,
        )  # fmt: skip

    def emit(self, src: bytes, dst: bytes) -> bytes:
        """The segment again (canonical option layout), checksum over ``src``/``dst``."""
        return build(
            src, dst, self.src_port, self.dst_port, self.seq, self.ack, self.flags,
            self.window, self.options(), self.payload, self.urgent,
        )  # fmt: skip

    def __repr__(self) -> str:
        names = "".join(n for bit, n in _FLAG_NAMES if self.flags & bit)
        opts = []
        if self.mss is not None:
            opts.append(f"mss={self.mss}")
        if self.wscale is not None:
            opts.append(f"ws={self.wscale}")
        if self.sack_permitted:
            opts.append("sackOK")
        if self.tsval is not None:
            opts.append(f"ts={self.tsval}/{self.tsecr}")
        if self.sack:
            opts.append("sack=" + ",".join(f"{a}-{b}" for a, b in self.sack))
        return (
            f"TcpSegment({self.src_port}->{self.dst_port} [{names}] seq={self.seq} "
            f"ack={self.ack} win={self.window} len={len(self.payload)}"
            + (" " + " ".join(opts) if opts else "") + ")"
        )


_FLAG_NAMES: Final = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"),
               (ECE, "E"), (CWR, "W"))  # fmt: skip


def parse(
    src: bytes, dst: bytes, data: bytes | bytearray | memoryview, *, verify: bool = True
) -> TcpSegment:
    """Validate the header, checksum and option list of the TCP segment in ``data``."""
    n = len(data)
    if n < HEADER_LEN:
        raise MalformedFrame(DropReason.TRUNCATED, f"tcp: {n} < 20 bytes")
    offfl: int  # declared: compiled, the shifts and masks below are native, not generic
    sport, dport, seq, ack, offfl, window, _ck, urgent = _unpack_hdr(data)
    hl = (offfl >> 12) << 2
    if hl < HEADER_LEN:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"tcp: data offset {hl >> 2} < 5")
    if hl > n:
        raise MalformedFrame(DropReason.TRUNCATED, f"tcp: data offset {hl} > {n} bytes")
    if verify and pseudo_header_checksum(src, dst, n, _NH, data) != 0:
        raise MalformedFrame(DropReason.BAD_CHECKSUM, "tcp")
    mv = view(data)
    seg = TcpSegment(sport, dport, seq, ack, offfl & 0xFF, window, urgent, mv[hl:])
    if hl == 32 and mv[20:24] == _TS_FAST:
        seg.tsval, seg.tsecr = _unpack_u32x2(mv, 24)
    elif hl > HEADER_LEN:
        _parse_options(seg, mv, hl)
    return seg


def _parse_options(seg: TcpSegment, mv: memoryview, end: int) -> None:
    i = HEADER_LEN
    while i < end:
        kind = mv[i]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            raise MalformedFrame(DropReason.BAD_OPTION, f"tcp: option {kind} without length")
        olen = mv[i + 1]
        if olen < 2 or i + olen > end:
            raise MalformedFrame(DropReason.BAD_OPTION, f"tcp: option {kind} length {olen}")
        if kind == OPT_MSS:
            if olen == 4:
                seg.mss = _U16.unpack_from(mv, i + 2)[0]
        elif kind == OPT_WSCALE:
            if olen == 3:
                seg.wscale = min(mv[i + 2], MAX_WSCALE)  # RFC 7323 §2.3
        elif kind == OPT_SACK_PERM:
            if olen == 2:
                seg.sack_permitted = True
        elif kind == OPT_TIMESTAMP:
            if olen == 10:
                seg.tsval, seg.tsecr = _U32X2.unpack_from(mv, i + 2)
        elif kind == OPT_SACK and olen >= 10 and (olen - 2) % 8 == 0:
            seg.sack = tuple(_U32X2.unpack_from(mv, j) for j in range(i + 2, i + olen, 8))
        i += olen


def options(
    *,
    mss: int | None = None,
    wscale: int | None = None,
    sack_permitted: bool = False,
    ts: tuple[int, int] | None = None,
    sack: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
) -> bytes:
    """Options in Linux's layout, padded with NOPs to a multiple of 4 (at most 40 bytes)."""
    out = b""
    if mss is not None:
        out += b"\x02\x04" + _U16.pack(mss)
    if ts is not None:
        out += (b"\x04\x02" if sack_permitted else b"\x01\x01") + b"\x08\x0a" + _U32X2.pack(*ts)
    elif sack_permitted:
        out += b"\x01\x01\x04\x02"
    if wscale is not None:
        out += b"\x01\x03\x03" + bytes((wscale,))
    if sack:
        out += b"\x01\x01\x05" + bytes((2 + 8 * len(sack),))
        out += b"".join(_U32X2.pack(a, b) for a, b in sack)
    if len(out) > MAX_OPTIONS_LEN:
        raise ValueError(f"tcp options of {len(out)} bytes do not fit in 40")
    return out


def ts_option(tsval: int, tsecr: int) -> bytes:
    """``NOP NOP TS`` — the 12 bytes on every segment of a connection with timestamps."""
    return _TS_FAST + _pack_u32x2(tsval, tsecr)


def pseudo_sum(src: bytes, dst: bytes) -> int:
    """The constant part of a connection's pseudo-header sum (addresses and next header)."""
    return _from_bytes(src, "big") + _from_bytes(dst, "big") + _NH


def build(
    src: bytes,
    dst: bytes,
    src_port: int,
    dst_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    opts: bytes = b"",
    payload: bytes | bytearray | memoryview = b"",
    urgent: int = 0,
) -> bytes:
    """Header + options + payload with the pseudo-header checksum (RFC 8200 §8.1)."""
    return emit(pseudo_sum(src, dst), src_port, dst_port, seq, ack, flags, window, opts,
                payload, urgent)  # fmt: skip


def emit(
    psum: int,
    src_port: int,
    dst_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    opts: bytes,
    payload: bytes | bytearray | memoryview,
    urgent: int = 0,
) -> bytes:
    """:func:`build` with the pseudo-header sum precomputed (:func:`pseudo_sum`): hot path."""
    hl = HEADER_LEN + len(opts)
    offfl = (hl << 10) | flags  # (hl // 4) << 12
    head = _pack_hdr(src_port, dst_port, seq, ack, offfl, window, 0, urgent) + opts
    plen = len(payload)
    body = _from_bytes(payload, "big")
    body = reduce_ffff(body << 8 if plen & 1 else body, plen * 8 + 8)
    total = psum + hl + plen + _from_bytes(head, "big") + body
    r = total % 0xFFFF
    ck = 0 if (r == 0 and total) else 0xFFFF - r
    return _pack_hdr(src_port, dst_port, seq, ack, offfl, window, ck, urgent) + opts + payload


def emit_partial(
    psum: int,
    src_port: int,
    dst_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    opts: bytes,
    payload: bytes | bytearray | memoryview,
    urgent: int = 0,
) -> bytes:
    """:func:`emit` for a NIC that finishes TCP checksums (task offload, ndisemu/offload.py):
    the checksum field holds only the pseudo-header's folded sum (addresses, next header and
    this segment's TCP length), not complemented — what Linux's CHECKSUM_PARTIAL and a
    virtio-net NEEDS_CSUM frame carry. The payload is never summed here."""
    hl = HEADER_LEN + len(opts)
    r = (psum + hl + len(payload)) % 0xFFFF
    return (_pack_hdr(src_port, dst_port, seq, ack, (hl << 10) | flags, window,
                      r if r else 0xFFFF, urgent) + opts + payload)
