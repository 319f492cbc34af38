"""Multicast Listener Discovery messages: MLDv2 (RFC 3810) with MLDv1 (RFC 2710) queries.

Theory of operation: a host parses Queries and emits Reports. :func:`parse_query` tells the two
query versions apart by length exactly as RFC 3810 §8.1 says (24 octets: MLDv1; 28 or more:
MLDv2; anything else is ignored) and decodes the exponential Maximum Response Code (§5.1.3) and
QQIC (§5.1.9). :func:`report_v2` builds a Version 2 Multicast Listener Report (§5.2) from
``(record_type, group, sources)`` triples; :func:`report_v1` / :func:`done` build the MLDv1
messages for Older Version Querier Present mode (RFC 3810 §8.2.1). Every MLD message goes with
hop limit 1 and a Router Alert option (RFC 3810 §5), which the sending stack adds
(:func:`tcpip6.wire.ipv6ext.hop_by_hop_router_alert`). Checksums are ICMPv6's (RFC 4443 §2.3).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason
from tcpip6.wire.icmpv6 import MLD_DONE, MLD_QUERY, MLD_REPORT, MLDV2_REPORT, Icmpv6Message
from tcpip6.wire.icmpv6 import message as icmp_message

ALL_MLDV2_ROUTERS = bytes.fromhex("ff020000000000000000000000000016")  # ff02::16 (RFC 3810 §5.2.14)
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
MLD_HOP_LIMIT = 1  # RFC 3810 §5

# Multicast Address Record types (RFC 3810 §5.2.12)
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE_MODE = 3
CHANGE_TO_EXCLUDE_MODE = 4
ALLOW_NEW_SOURCES = 5
BLOCK_OLD_SOURCES = 6

RECORD_HEADER_LEN = 20
REPORT_HEADER_LEN = 8

_V1 = struct.Struct("!HH16s")  # max response delay, reserved, multicast address
_V2_TAIL = struct.Struct("!BBH")  # Resv|S|QRV, QQIC, number of sources
_REPORT_HDR = struct.Struct("!HH")  # reserved, number of records
_RECORD = struct.Struct("!BBH16s")


@dataclass(frozen=True, slots=True)
class MldQuery:
    """A Multicast Listener Query; ``group`` is :: for a General Query."""

    version: int  # 1 or 2
    max_response_delay: float  # seconds
    group: bytes
    suppress: bool = False  # S flag (§5.1.7)
    qrv: int = 0  # Querier's Robustness Variable (§5.1.8), 0 = not given
    qqi: float = 0.0  # Querier's Query Interval in seconds (§5.1.9)
    sources: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class MulticastRecord:
    """One Multicast Address Record of an MLDv2 Report (§5.2.4)."""

    record_type: int
    group: bytes
    sources: tuple[bytes, ...] = ()


def decode_max_resp_code(code: int) -> int:
    """Maximum Response Delay in milliseconds (RFC 3810 §5.1.3)."""
    if code < 0x8000:
        return code
    return ((code & 0x0FFF) | 0x1000) << (((code >> 12) & 0x7) + 3)


def decode_qqic(code: int) -> int:
    """Querier's Query Interval in seconds (RFC 3810 §5.1.9)."""
    if code < 0x80:
        return code
    return ((code & 0x0F) | 0x10) << (((code >> 4) & 0x7) + 3)


def parse_query(msg: Icmpv6Message) -> MldQuery:
    """MLDv1 (24 octets) or MLDv2 (>= 28 octets) Query; other lengths are ignored (§8.1)."""
    body = msg.body
    n = len(body) + 4
    if n == 24:
        mrd, _r, group = _V1.unpack_from(body)
        return MldQuery(1, mrd / 1000.0, group)
    if n < 28:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"mld query: {n} octets")
    mrc, _r, group = _V1.unpack_from(body)
    flags, qqic, nsrc = _V2_TAIL.unpack_from(body, 20)
    if n < 28 + 16 * nsrc:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"mld query: {nsrc} sources in {n} octets")
    sources = tuple(bytes(body[24 + 16 * i : 40 + 16 * i]) for i in range(nsrc))
    return MldQuery(
        2, decode_max_resp_code(mrc) / 1000.0, group,
        bool(flags & 0x08), flags & 0x07, float(decode_qqic(qqic)), sources,
    )  # fmt: skip


def parse_report_v2(msg: Icmpv6Message) -> tuple[MulticastRecord, ...]:
    """The records of an MLDv2 Report (what a querier or a test reads)."""
    body = msg.body
    if len(body) < 4:
        raise MalformedFrame(DropReason.BAD_LENGTH, "mldv2 report header")
    _r, count = _REPORT_HDR.unpack_from(body)
    off = 4
    records = []
    for _ in range(count):
        if len(body) - off < RECORD_HEADER_LEN:
            raise MalformedFrame(DropReason.BAD_LENGTH, "mldv2 record cut")
        rtype, aux, nsrc, group = _RECORD.unpack_from(body, off)
        end = off + RECORD_HEADER_LEN + 16 * nsrc + 4 * aux
        if end > len(body):
            raise MalformedFrame(DropReason.BAD_LENGTH, "mldv2 record overruns")
        base = off + RECORD_HEADER_LEN
        srcs = tuple(bytes(body[base + 16 * i : base + 16 * i + 16]) for i in range(nsrc))
        records.append(MulticastRecord(rtype, group, srcs))
        off = end
    return tuple(records)


def report_v2(
    src: bytes, records: Iterable[MulticastRecord], dst: bytes = ALL_MLDV2_ROUTERS
) -> bytes:
    """A Version 2 Multicast Listener Report (RFC 3810 §5.2), sent to ff02::16 (§5.2.14)."""
    parts: list[bytes] = []
    count = 0
    for r in records:
        parts.append(_RECORD.pack(r.record_type, 0, len(r.sources), r.group))
        parts.extend(r.sources)
        count += 1
    body = _REPORT_HDR.pack(0, count) + b"".join(parts)
    return icmp_message(src, dst, MLDV2_REPORT, 0, body)


def report_v1(src: bytes, group: bytes) -> bytes:
    """MLDv1 Report (RFC 2710 §3), sent to the group itself."""
    return icmp_message(src, group, MLD_REPORT, 0, _V1.pack(0, 0, group))


def done(src: bytes, group: bytes) -> bytes:
    """MLDv1 Done (RFC 2710 §3), sent to ff02::2."""
    return icmp_message(src, ALL_ROUTERS, MLD_DONE, 0, _V1.pack(0, 0, group))


def query_v2(
    src: bytes,
    dst: bytes,
    group: bytes,
    max_resp_code: int,
    *,
    qrv: int = 2,
    qqic: int = 125,
    sources: tuple[bytes, ...] = (),
) -> bytes:
    """An MLDv2 Query (what a router sends; used by tests and the peer)."""
    body = _V1.pack(max_resp_code, 0, group) + _V2_TAIL.pack(qrv & 7, qqic, len(sources))
    return icmp_message(src, dst, MLD_QUERY, 0, body + b"".join(sources))


def query_v1(src: bytes, dst: bytes, group: bytes, max_resp_delay_ms: int) -> bytes:
    """An MLDv1 Query (RFC 2710 §3)."""
    return icmp_message(src, dst, MLD_QUERY, 0, _V1.pack(max_resp_delay_ms, 0, group))
