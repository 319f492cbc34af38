"""NDIS 5.1 task offload: what a miniport declares through OID_TCP_TASK_OFFLOAD, and what an
offloading NIC does with the frames (segmenting a large send, finishing a checksum).

Sources (public WDK documentation, NDIS 5.1, the Windows Server 2003 generation):
- "Task Offload (NDIS 5.1)", MS ff564239: the TCP/IP transport can offload checksums and the
  segmentation of large TCP packets (LSO) — and "supports task offload only for IPv4 packets".
- "Reporting a NIC's TCP-Packet-Segmentation Capabilities (NDIS 5.1)", MS ff564042, and
  NDIS_TASK_TCP_LARGE_SEND, MS ff559008: Version (0), MaxOffLoadSize (user-data bytes per large
  packet), MinSegmentCount (the transport offloads only packets that make at least that many
  segments), TcpOptions, IpOptions. The structure has no IP-version field.
- "Offloading the Segmentation of Large TCP Packets", MS (NDIS 6): LSOv1 "is similar to" NDIS
  5.x's LSO; LSOv2, NDIS 6.0 and later, added IPv6.
- Layouts of NDIS_TASK_OFFLOAD_HEADER, NDIS_ENCAPSULATION_FORMAT, NDIS_TASK_OFFLOAD and
  NDIS_TASK_TCP_IP_CHECKSUM (its V4Transmit/V4Receive/V6Transmit/V6Receive bit fields): ntddndis.h
  (ReactOS sdk/include/psdk/ntddndis.h, as ndisemu/constants.py's OIDs).

So in Windows Server 2003, tcpip6 used none of this; checksum offload has V6 bits in the
structure, LSO has none. This emulation's tcpip6 using LSO and checksum offload for IPv6 is an
EXTENSION (inferred from NDIS 6's LSOv2, which is the same operation for IPv6): it is off unless
asked for (`serve --offload`), and the memory wire never uses it by default. Receive coalescing
(Linux's GRO super-frames handed up whole) has no NDIS 5.1 counterpart at all (NDIS 6.30's RSC
is the nearest); it is part of the same extension.

Per-packet information (NDIS_PACKET's out-of-band data) is not modelled: frames are bytes. The
one receive flag that matters — TcpIpChecksumPacketInfo's "TCP checksum succeeded" — is carried
by the frame's type, `ChecksumValidated`. A large send carries no MSS of its own: the NIC
segments at what the link's MTU leaves after the frame's headers (`segment_size`), and tcpip6
offloads only segments cut at exactly that size (when its MSS is the link's).

This is the one ndisemu module that reads IP and TCP headers: what an offloading NIC does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ConfigError

NDIS_TASK_OFFLOAD_VERSION = 1
# NDIS_ENCAPSULATION (ntddndis.h): UNSPECIFIED 0, NULL 1, IEEE_802_3 2, IEEE_802_5 3, ...
IEEE_802_3_ENCAPSULATION = 2
# NDIS_TASK (ntddndis.h)
TCP_IP_CHECKSUM_TASK = 0
IPSEC_TASK = 1
TCP_LARGE_SEND_TASK = 2

# NDIS_TASK_OFFLOAD_HEADER: Version, Size, Reserved, OffsetFirstTask, then
# NDIS_ENCAPSULATION_FORMAT: Encapsulation, Flags (FixedHeaderSize:1), EncapsulationHeaderSize.
_HEADER = struct.Struct("<IIIIIII")
# NDIS_TASK_OFFLOAD: Version, Size, Task, OffsetNextTask, TaskBufferLength, TaskBuffer[]
_TASK = struct.Struct("<IIIII")
TASK_SIZE = 24  # sizeof(NDIS_TASK_OFFLOAD): five ULONGs and TaskBuffer[1], padded to 4
_CSUM = struct.Struct("<IIII")  # V4Transmit, V4Receive, V6Transmit, V6Receive bit fields
_LSO = struct.Struct("<III??2x")  # Version, MaxOffLoadSize, MinSegmentCount, TcpOptions, IpOptions
# Bits of each NDIS_TASK_TCP_IP_CHECKSUM field (V4 has IpChecksum as bit 4; V6 stops at 3).
CSUM_IP_OPTIONS = 1 << 0
CSUM_TCP_OPTIONS = 1 << 1
CSUM_TCP = 1 << 2
CSUM_UDP = 1 << 3

#: Largest TCP payload of one IPv6 packet without a jumbogram: 65,535 - 20 (TCP) - 12 (the
#: timestamp option). The default MaxOffLoadSize stays below it (inferred: NDIS leaves the number
#: to the miniport; Linux's own GSO limit is 64 KiB per packet, headers included).
DEFAULT_LSO_MAX = 62_000


@dataclass(frozen=True)
class OffloadCaps:
    """What a miniport declares (query of OID_TCP_TASK_OFFLOAD) or a transport enables (set).

    Every number is the miniport's to choose (NDIS leaves them to the NIC); the defaults are
    this emulation's TAP miniport's, inferred from what Linux's TAP device accepts."""

    tx_tcp_checksum_v6: bool = True  # V6Transmit.TcpChecksum
    rx_tcp_checksum_v6: bool = True  # V6Receive.TcpChecksum
    lso_max_size: int = DEFAULT_LSO_MAX  # MaxOffLoadSize; 0: no large-send task
    lso_min_segments: int = 2  # MinSegmentCount (inferred: the smallest that saves anything)
    lso_tcp_options: bool = True  # segments carry the timestamp option
    lso_ip_options: bool = False  # no extension headers in a large send

    def __post_init__(self) -> None:
        if not 0 <= self.lso_max_size <= 65_535:
            raise ConfigError(f"MaxOffLoadSize must be in 0..65535 (got {self.lso_max_size})")
        if self.lso_max_size and self.lso_min_segments < 1:
            raise ConfigError("MinSegmentCount must be >= 1")

    @property
    def large_send(self) -> bool:
        return self.lso_max_size > 0


def _csum_field(tcp: bool) -> int:
    return (CSUM_TCP | CSUM_TCP_OPTIONS) if tcp else 0


def query_header(header_size: int = 14) -> bytes:
    """The NDIS_TASK_OFFLOAD_HEADER a transport puts in its query's InformationBuffer: which
    encapsulation it asks about (IEEE 802.3, a fixed 14-byte header)."""
    return _HEADER.pack(NDIS_TASK_OFFLOAD_VERSION, _HEADER.size, 0, 0,
                        IEEE_802_3_ENCAPSULATION, 1, header_size)


def pack(caps: OffloadCaps, header_size: int = 14) -> bytes:
    """The InformationBuffer: the header, then one NDIS_TASK_OFFLOAD per task, chained by
    OffsetNextTask (from each task's start; 0 on the last)."""
    tasks: list[tuple[int, bytes]] = []
    if caps.tx_tcp_checksum_v6 or caps.rx_tcp_checksum_v6:
        tasks.append((TCP_IP_CHECKSUM_TASK, _CSUM.pack(
            0, 0, _csum_field(caps.tx_tcp_checksum_v6), _csum_field(caps.rx_tcp_checksum_v6))))
    if caps.large_send:
        tasks.append((TCP_LARGE_SEND_TASK, _LSO.pack(0, caps.lso_max_size,
                                                     caps.lso_min_segments,
                                                     caps.lso_tcp_options, caps.lso_ip_options)))
    out = bytearray(_HEADER.pack(NDIS_TASK_OFFLOAD_VERSION, _HEADER.size, 0,
                                 _HEADER.size if tasks else 0, IEEE_802_3_ENCAPSULATION, 1,
                                 header_size))
    for i, (task, buf) in enumerate(tasks):
        size = _TASK.size + len(buf)
        nxt = size if i + 1 < len(tasks) else 0
        out += _TASK.pack(NDIS_TASK_OFFLOAD_VERSION, TASK_SIZE, task, nxt, len(buf)) + buf
    return bytes(out)


def parse(data: bytes) -> OffloadCaps:
    """Read an InformationBuffer back (what tcpip6 does with the query's answer). Unknown tasks
    are skipped; a malformed chain raises ConfigError."""
    if len(data) < _HEADER.size:
        raise ConfigError(f"NDIS_TASK_OFFLOAD_HEADER: {len(data)} < {_HEADER.size} bytes")
    version, _size, _res, off, encap, _flags, _hsize = _HEADER.unpack_from(data)
    if version != NDIS_TASK_OFFLOAD_VERSION or encap != IEEE_802_3_ENCAPSULATION:
        raise ConfigError(f"task offload: version {version}, encapsulation {encap}")
    tx = rx = False
    lso_max, lso_min, lso_tcp, lso_ip = 0, 1, False, False
    seen = 0
    while off:
        if off + _TASK.size > len(data) or seen > 8:
            raise ConfigError("task offload: task chain runs past the buffer")
        _v, _s, task, nxt, length = _TASK.unpack_from(data, off)
        buf = data[off + _TASK.size : off + _TASK.size + length]
        if task == TCP_IP_CHECKSUM_TASK and len(buf) >= _CSUM.size:
            _v4t, _v4r, v6t, v6r = _CSUM.unpack_from(buf)
            tx, rx = bool(v6t & CSUM_TCP), bool(v6r & CSUM_TCP)
        elif task == TCP_LARGE_SEND_TASK and len(buf) >= _LSO.size:
            _ver, lso_max, lso_min, lso_tcp, lso_ip = _LSO.unpack_from(buf)
        off = off + nxt if nxt else 0
        seen += 1
    return OffloadCaps(tx_tcp_checksum_v6=tx, rx_tcp_checksum_v6=rx, lso_max_size=lso_max,
                       lso_min_segments=lso_min, lso_tcp_options=lso_tcp, lso_ip_options=lso_ip)


def enable(declared: OffloadCaps, *, tcp_options: bool = True) -> OffloadCaps:
    """What a transport enables (its set of OID_TCP_TASK_OFFLOAD) from what was declared: all of
    it, except a large send that cannot carry the transport's TCP options or needs IP options."""
    lso = declared.lso_max_size if (declared.lso_tcp_options or not tcp_options) else 0
    return OffloadCaps(tx_tcp_checksum_v6=declared.tx_tcp_checksum_v6,
                       rx_tcp_checksum_v6=declared.rx_tcp_checksum_v6, lso_max_size=lso,
                       lso_min_segments=declared.lso_min_segments,
                       lso_tcp_options=declared.lso_tcp_options, lso_ip_options=False)


# -- the frames ----------------------------------------------------------------------------------


class ChecksumValidated(bytes):
    """A received frame whose TCP checksum the NIC vouches for (NDIS 5.1's receive per-packet
    flag TcpIpChecksumPacketInfo.Receive.NdisPacketTcpChecksumSucceeded): the transport may skip
    verifying it. Over TAP: Linux's VIRTIO_NET_HDR_F_NEEDS_CSUM (a locally sent packet whose
    checksum was never computed) or F_DATA_VALID."""

    __slots__ = ()


ETH_HLEN = 14
IP6_HLEN = 40
NH_TCP = 6
_FIN, _PSH, _CWR = 0x01, 0x08, 0x80
_IP6 = struct.Struct("!IHBB")  # version/class/flow, payload length, next header, hop limit


def tcp6_offset(frame: bytes | bytearray | memoryview) -> int:
    """Where the TCP header starts if `frame` is Ethernet + IPv6 + TCP with no extension
    header; 0 otherwise (what an LSO/checksum-offloading NIC handles here)."""
    if len(frame) < ETH_HLEN + IP6_HLEN + 20 or frame[12] != 0x86 or frame[13] != 0xDD:
        return 0
    if frame[ETH_HLEN + 6] != NH_TCP:
        return 0
    return ETH_HLEN + IP6_HLEN


def segment_size(frame: bytes | bytearray | memoryview, mtu: int) -> int:
    """The payload per segment a large send of `frame` is cut into: the link MTU less the IPv6
    header and this frame's TCP header (options included)."""
    off = tcp6_offset(frame)
    thl = (frame[off + 12] >> 4) * 4
    return mtu - IP6_HLEN - thl


def _fold(total: int) -> int:
    r = total % 0xFFFF
    return 0 if (r == 0 and total) else 0xFFFF - r


def pseudo_partial(frame: bytes | bytearray | memoryview, off: int, tcp_len: int) -> int:
    """The partial checksum an offloading sender leaves in the TCP checksum field: the folded
    (not complemented) one's-complement sum of the IPv6 pseudo-header with `tcp_len` — Linux's
    CHECKSUM_PARTIAL convention (virtio_net_hdr NEEDS_CSUM), which this emulation follows."""
    ip = off - IP6_HLEN
    total = (int.from_bytes(frame[ip + 8 : ip + 24], "big")
             + int.from_bytes(frame[ip + 24 : ip + 40], "big") + tcp_len + NH_TCP)
    r = total % 0xFFFF
    return r if r else 0xFFFF


def complete_checksum(frame: bytes | bytearray | memoryview, start: int, offset: int) -> bytes:
    """Finish a partial checksum: the one's complement of the sum from `start` to the end
    (the field holding the pseudo-header part) written at `start + offset`."""
    buf = bytearray(frame)
    n = len(buf) - start
    body = int.from_bytes(buf[start:], "big")
    ck = _fold(body << 8 if n & 1 else body)
    struct.pack_into("!H", buf, start + offset, ck)
    return bytes(buf)


def segment_tcp6(frame: bytes | bytearray | memoryview, mss: int) -> list[bytes]:
    """Cut a large Ethernet/IPv6/TCP send into frames of at most `mss` payload bytes, as Linux's
    tcp_gso_segment does: consecutive sequence numbers, FIN and PSH on the last segment only,
    CWR on the first only, each TCP checksum complete (whatever the large frame's field held)."""
    off = tcp6_offset(frame)
    if not off:
        return [bytes(frame)]
    mv = memoryview(frame)
    thl = (mv[off + 12] >> 4) * 4
    payload = mv[off + thl :]
    if len(payload) <= mss:
        tcp_len = len(mv) - off
        return [_finish(bytearray(mv), off, tcp_len)]
    head = bytes(mv[:off + thl])
    (seq,) = struct.unpack_from("!I", mv, off + 4)
    flags = mv[off + 13]
    out = []
    n = len(payload)
    for i in range(0, n, mss):
        chunk = payload[i : i + mss]
        buf = bytearray(head)
        buf += chunk
        tcp_len = thl + len(chunk)
        struct.pack_into("!H", buf, ETH_HLEN + 4, tcp_len)
        struct.pack_into("!I", buf, off + 4, (seq + i) & 0xFFFFFFFF)
        f = flags
        if i + mss < n:
            f &= ~(_FIN | _PSH)
        if i:
            f &= ~_CWR
        buf[off + 13] = f
        out.append(_finish(buf, off, tcp_len))
    return out


def _finish(buf: bytearray, off: int, tcp_len: int) -> bytes:
    struct.pack_into("!H", buf, off + 16, pseudo_partial(buf, off, tcp_len))
    return complete_checksum(buf, off, 16)
