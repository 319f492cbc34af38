"""IPv6 fixed header, the Internet checksum, and IPv6 address helpers.

Theory of operation: addresses are raw 16-byte ``bytes`` on the hot path (hashable, cheap to
compare); :mod:`ipaddress` is used only for text conversion and reprs. :meth:`Ipv6Header.parse`
checks version 6 and that the payload length fits (RFC 8200 §3), then returns a payload view cut
to ``payload_length`` so Ethernet padding never reaches upper layers. Jumbograms (payload length
0 with a Hop-by-Hop Jumbo option, RFC 2675) are out of scope: such a packet parses with an empty
payload and the stacks drop its non-ICMPv6 next header as unsupported.

Checksums (RFC 1071) are computed without a per-byte loop: the data is read as one big-endian
integer; because 2**16 ≡ 1 (mod 0xFFFF), the sum of all 16-bit words is congruent to that integer
modulo 0xFFFF, and the end-around-carry one's-complement sum is exactly that residue, except that
a non-zero input whose residue is 0 sums to 0xFFFF ("negative zero"). The pseudo-header (RFC 8200
§8.1) is added as integers, without concatenating buffers. An odd-length tail is padded with a
zero byte on the right (RFC 1071 §4.1), i.e. the integer is shifted left by 8.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason

HEADER_LEN: Final = 40
NH_HOPOPTS: Final = 0
NH_TCP: Final = 6
NH_UDP: Final = 17
NH_ROUTING: Final = 43
NH_FRAGMENT: Final = 44
NH_ICMPV6: Final = 58
NH_NONE: Final = 59
NH_DSTOPTS: Final = 60

UNSPECIFIED: Final = bytes(16)  # :: (RFC 4291 §2.5.2)
LOOPBACK: Final = bytes(15) + b"\x01"
ALL_NODES: Final = bytes.fromhex("ff020000000000000000000000000001")  # ff02::1 (RFC 4291 §2.7.1)
ALL_ROUTERS: Final = bytes.fromhex("ff020000000000000000000000000002")  # ff02::2
LINK_LOCAL_PREFIX: Final = bytes.fromhex("fe800000000000000000000000000000")[:8]  # fe80::/64
SOLICITED_NODE_PREFIX: Final = bytes.fromhex("ff0200000000000000000001ff")  # ff02::1:ff00:0/104

_HDR: Final = struct.Struct("!IHBB16s16s")
pack_header: Final = _HDR.pack
"""``pack_header(vtcfl, payload_length, next_header, hop_limit, src, dst)`` (hot path)."""
# bound once: compiled, ``_HDR.unpack_from(...)`` is a method call by name (a lookup in the
# type's dict each time); a bound method is called directly
_unpack_header: Final = _HDR.unpack_from
_from_bytes: Final = int.from_bytes
# compiled, a bare `memoryview` is a lookup in the builtins module at each use
_MEMORYVIEW: Final = memoryview


def view(buf: bytes | bytearray | memoryview) -> memoryview:
    """``buf`` as a memoryview: itself if it is one (the receive path's case, no new view)."""
    if type(buf) is _MEMORYVIEW:  # memoryview has no subclasses
        return buf
    return _MEMORYVIEW(buf)


# Not frozen: one is made for every received packet, and a frozen dataclass's __init__ sets each
# field through object.__setattr__ (0.85 against 0.18 µs for these seven). Treat it as
# immutable all the same; it stays hashable (unsafe_hash) and compares by value.
@dataclass(slots=True, unsafe_hash=True)
class Ipv6Header:
    """The 40-byte IPv6 header (RFC 8200 §3). Addresses are 16-byte ``bytes``. Immutable by
    convention (never assigned after parsing or building)."""

    payload_length: int
    next_header: int
    hop_limit: int
    src: bytes
    dst: bytes
    traffic_class: int = 0
    flow_label: int = 0

    def __init__(self, payload_length: int, next_header: int, hop_limit: int, src: bytes,
                 dst: bytes, traffic_class: int = 0, flow_label: int = 0) -> None:
        # one per packet: written out so that compiled it is native code (the dataclass's own
        # is interpreted Python); tests/ndisemu/test_native.py checks it against the fields
        self.payload_length = payload_length
        self.next_header = next_header
        self.hop_limit = hop_limit
        self.src = src
        self.dst = dst
        self.traffic_class = traffic_class
        self.flow_label = flow_label

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> tuple[Ipv6Header, memoryview]:
        """Validate and split; the payload view is exactly ``payload_length`` bytes long."""
        n = len(buf)
        if n < HEADER_LEN:
            raise MalformedFrame(DropReason.TRUNCATED, f"ipv6: {n} < 40 bytes")
        vtcfl: int  # declared: compiled, the shifts and masks below are native, not generic
        plen: int
        vtcfl, plen, nh, hlim, src, dst = _unpack_header(buf)
        if vtcfl >> 28 != 6:
            raise MalformedFrame(DropReason.BAD_VERSION, f"ipv6: version {vtcfl >> 28}")
        if plen > n - HEADER_LEN:
            raise MalformedFrame(
                DropReason.TRUNCATED, f"ipv6: payload length {plen} > {n - HEADER_LEN} available"
            )
        # Ipv6Header, not cls: compiled, a call through `cls` is a generic type call that
        # parses its arguments (the class is closed: no subclass can be asking)
        hdr = Ipv6Header(plen, nh, hlim, src, dst, (vtcfl >> 20) & 0xFF, vtcfl & 0xFFFFF)
        return hdr, view(buf)[HEADER_LEN : HEADER_LEN + plen]

    def emit(self) -> bytes:
        """The 40 header bytes."""
        vtcfl = 0x60000000 | (self.traffic_class & 0xFF) << 20 | (self.flow_label & 0xFFFFF)
        return pack_header(
            vtcfl, self.payload_length, self.next_header, self.hop_limit, self.src, self.dst
        )

    def __repr__(self) -> str:
        return (
            f"Ipv6Header({addr_str(self.src)} -> {addr_str(self.dst)}, nh={self.next_header}, "
            f"hlim={self.hop_limit}, plen={self.payload_length}, tc={self.traffic_class}, "
            f"fl={self.flow_label})"
        )


def packet(
    src: bytes,
    dst: bytes,
    next_header: int,
    hop_limit: int,
    payload: bytes | bytearray | memoryview,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> bytes:
    """Header + payload as one ``bytes`` (the builders' fast path; no dataclass)."""
    vtcfl = 0x60000000 | (traffic_class & 0xFF) << 20 | (flow_label & 0xFFFFF)
    return pack_header(vtcfl, len(payload), next_header, hop_limit, src, dst) + payload


_HALF_MASKS: dict[int, int] = {}


def reduce_ffff(n: int, nbits: int) -> int:
    """A non-negative integer congruent to ``n`` mod 0xFFFF, of at most ~1024 bits, and zero
    only if ``n`` is (``n`` >= 0 of at most ``nbits`` bits). Since 2**16 = 1 (mod 0xFFFF), the
    high and low halves (cut at a multiple of 16 bits) are added until the number is short:
    shifts, masks and additions run at memory speed, while CPython's ``%`` by a one-digit
    divisor walks every 30-bit digit with a hardware division (2.6x slower for a 1,440-byte
    segment, 2.8x for 64 KiB, measured with CPython 3.11)."""
    while nbits > 1024:
        half = ((nbits >> 1) + 15) & ~15
        m = _HALF_MASKS.get(half)
        if m is None:
            m = _HALF_MASKS[half] = (1 << half) - 1
        n = (n >> half) + (n & m)
        nbits = half + 1
    return n


def _fold(total: int) -> int:
    """One's-complement of the RFC 1071 sum whose integer congruence class is ``total``."""
    r = total % 0xFFFF
    if r == 0 and total:
        return 0  # the sum is 0xFFFF ("negative zero"); its complement is 0
    return 0xFFFF - r


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """RFC 1071 checksum of ``data``; over data that includes a valid checksum it returns 0."""
    n = _from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    return _fold(reduce_ffff(n, len(data) * 8 + 8))


def pseudo_header_checksum(
    src: bytes,
    dst: bytes,
    upper_len: int,
    next_header: int,
    data: bytes | bytearray | memoryview,
) -> int:
    """Upper-layer checksum with the IPv6 pseudo-header (RFC 8200 §8.1).

    ``upper_len`` is the 32-bit Upper-Layer Packet Length; its two 16-bit words sum to a value
    congruent to ``upper_len`` mod 0xFFFF, so it is simply added. Verify by passing the received
    message (checksum field included) and comparing the result with 0.
    """
    n = _from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    n = reduce_ffff(n, len(data) * 8 + 8)
    return _fold(_from_bytes(src, "big") + _from_bytes(dst, "big") + upper_len + next_header + n)


# --- addresses -----------------------------------------------------------------------------


def addr_str(addr: bytes | bytearray | memoryview) -> str:
    """16 raw bytes -> RFC 5952 text."""
    return str(ipaddress.IPv6Address(bytes(addr)))


def parse_addr(text: str) -> bytes:
    """RFC 4291 §2.2 text -> 16 raw bytes (ValueError on bad input)."""
    return ipaddress.IPv6Address(text).packed


def is_multicast(addr: bytes | bytearray | memoryview) -> bool:
    """ff00::/8 (RFC 4291 §2.7)."""
    return addr[0] == 0xFF


def is_link_local(addr: bytes | bytearray | memoryview) -> bool:
    """fe80::/10 (RFC 4291 §2.5.6)."""
    return addr[0] == 0xFE and (addr[1] & 0xC0) == 0x80


def interface_id_from_mac(mac: bytes) -> bytes:
    """Modified EUI-64: insert ff:fe in the middle and invert the U/L bit (RFC 4291 App. A)."""
    if len(mac) != 6:
        raise ValueError(f"MAC must be 6 bytes, got {len(mac)}")
    return bytes((mac[0] ^ 0x02,)) + mac[1:3] + b"\xff\xfe" + mac[3:6]


def link_local_from_mac(mac: bytes) -> bytes:
    """fe80::/64 + modified EUI-64 interface identifier (RFC 4862 §5.3, RFC 4291 App. A)."""
    return LINK_LOCAL_PREFIX + interface_id_from_mac(mac)


def solicited_node(addr: bytes | bytearray | memoryview) -> bytes:
    """ff02::1:ffXX:XXXX from the low 24 bits of ``addr`` (RFC 4291 §2.7.1)."""
    return SOLICITED_NODE_PREFIX + bytes(addr[13:16])
