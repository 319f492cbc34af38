"""ICMPv6 (RFC 4443) and the Neighbor Discovery messages a host needs (RFC 4861).

Theory of operation: :func:`parse` checks the 4-byte header and the checksum over the IPv6
pseudo-header (RFC 4443 §2.3) and returns the type, code and a body view (everything after the
checksum). Type-specific parsers then check lengths and content: Echo (RFC 4443 §4.1/§4.2), and
NS/NA per the validation lists of RFC 4861 §7.1.1 and §7.1.2 that can be judged from the message
alone (ICMP length >= 24, target not multicast, every option length > 0). The checks that need the
IP header (hop limit 255, code 0, DAD source/destination rules, S flag vs multicast destination)
belong to the receiving stack, which has that header.

ND options (RFC 4861 §4.6) are TLVs in units of 8 octets; a zero length is invalid and the whole
message is discarded (§4.6), unknown options are skipped (§4.6 "silently ignore"). On Ethernet a
link-layer address option is exactly 1 unit: type, len=1, 6-byte MAC (RFC 2464 §8); any other
length is treated as malformed, as Linux does. Duplicates: the first occurrence wins.

Router Solicitation, Router Advertisement and Redirect bodies are checked for the minimum ICMP
lengths of RFC 4861 §6.1.1 (8), §6.1.2 (16) and §8.1 (40); their options add the Prefix
Information (§4.6.2, exactly 4 units), Redirected Header (§4.6.3) and MTU (§4.6.4, exactly 1
unit) options. Error messages (RFC 4443 §3) share one layout: a 32-bit field (unused, MTU or
pointer) and as much of the invoking packet as fits in the minimum MTU (§2.4 c).

Builders return the complete ICMPv6 message (checksum filled in) for the caller to put behind an
IPv6 header with the same ``src``/``dst``.
"""

from __future__ import annotations

import builtins
import struct
from dataclasses import dataclass
from typing import Final

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ipv6 import NH_ICMPV6, pseudo_header_checksum, view

DEST_UNREACH: Final = 1
PACKET_TOO_BIG: Final = 2
TIME_EXCEEDED: Final = 3
PARAM_PROBLEM: Final = 4
ECHO_REQUEST: Final = 128
ECHO_REPLY: Final = 129
MLD_QUERY: Final = 130
MLD_REPORT: Final = 131
MLD_DONE: Final = 132
ROUTER_SOLICITATION: Final = 133
ROUTER_ADVERTISEMENT: Final = 134
NEIGHBOR_SOLICITATION: Final = 135
NEIGHBOR_ADVERTISEMENT: Final = 136
REDIRECT: Final = 137
MLDV2_REPORT: Final = 143
# short aliases
RS = ROUTER_SOLICITATION
RA = ROUTER_ADVERTISEMENT
NS = NEIGHBOR_SOLICITATION
NA = NEIGHBOR_ADVERTISEMENT
ND_TYPES: Final = frozenset({RS, RA, NS, NA, REDIRECT})  # all need hop limit 255, code 0 (RFC 4861)
ND_HOP_LIMIT: Final = 255

OPT_SOURCE_LLADDR: Final = 1
OPT_TARGET_LLADDR: Final = 2
OPT_PREFIX_INFO: Final = 3
OPT_REDIRECTED_HEADER: Final = 4
OPT_MTU: Final = 5

# Destination Unreachable codes (RFC 4443 §3.1)
DU_NO_ROUTE: Final = 0
DU_ADMIN_PROHIBITED: Final = 1
DU_BEYOND_SCOPE: Final = 2
DU_ADDRESS_UNREACHABLE: Final = 3
DU_PORT_UNREACHABLE: Final = 4
# Time Exceeded codes (§3.3)
TE_HOP_LIMIT: Final = 0
TE_REASSEMBLY: Final = 1
# Parameter Problem codes (§3.4, RFC 7112)
PP_HEADER_FIELD: Final = 0
PP_NEXT_HEADER: Final = 1
PP_OPTION: Final = 2
PP_INCOMPLETE_CHAIN: Final = 3
MIN_MTU: Final = 1280  # RFC 8200 §5
ERROR_INVOKING_MAX: Final = MIN_MTU - 40 - 8  # RFC 4443 §2.4 (c): the error must fit in 1280 bytes

RA_FLAG_MANAGED: Final = 0x80
RA_FLAG_OTHER: Final = 0x40
PI_FLAG_ONLINK: Final = 0x80
PI_FLAG_AUTO: Final = 0x40
# RFC 4861 §4.6.2 "all one bits (0xffffffff) represents infinity"
INFINITE_LIFETIME: Final = 0xFFFFFFFF

NA_FLAG_ROUTER: Final = 0x80000000
NA_FLAG_SOLICITED: Final = 0x40000000
NA_FLAG_OVERRIDE: Final = 0x20000000

_HDR: Final = struct.Struct("!BBH")
_ECHO: Final = struct.Struct("!BBHHH")
_ND_TARGET: Final = struct.Struct("!I16s")  # NS/NA body: flags (NA) or reserved (NS), target
_LLOPT: Final = struct.Struct("!BB6s")
_ECHO_BODY: Final = struct.Struct("!HH")
# type, len=4, prefix len, flags, valid, preferred, reserved
_PREFIX: Final = struct.Struct("!BBBBIII16s")
_MTU_OPT: Final = struct.Struct("!BBHI")
_RA_BODY: Final = struct.Struct("!BBHII")
_REDIRECT_BODY: Final = struct.Struct("!I16s16s")
_U32: Final = struct.Struct("!I")
# bound once: compiled, ``_HDR.unpack_from(...)`` is a method call by name (a lookup in the
# type's dict each time); a bound method is called directly
_unpack_hdr: Final = _HDR.unpack_from
_pack_hdr: Final = _HDR.pack
_unpack_echo_body: Final = _ECHO_BODY.unpack_from
_from_bytes: Final = int.from_bytes


@dataclass(slots=True, eq=False)  # not frozen: one per received message (see Ipv6Header)
class Icmpv6Message:
    """A checksum-verified ICMPv6 message; ``body`` is everything after the checksum.
    Immutable by convention."""

    type: int
    code: int
    checksum: int
    body: builtins.memoryview  # (mypyc: a bare builtin name here fails to load)

    def __init__(self, type: int, code: int, checksum: int, body: builtins.memoryview) -> None:
        # one per message: native when compiled (see Ipv6Header.__init__)
        self.type = type
        self.code = code
        self.checksum = checksum
        self.body = body


@dataclass(frozen=True, slots=True)
class Echo:
    """Echo Request/Reply body (RFC 4443 §4.1, §4.2)."""

    ident: int
    seq: int
    data: bytes


@dataclass(frozen=True, slots=True)
class PrefixInfo:
    """Prefix Information option (RFC 4861 §4.6.2); lifetimes in seconds, 0xffffffff = ∞."""

    prefix_len: int
    on_link: bool
    autonomous: bool
    valid_lifetime: int
    preferred_lifetime: int
    prefix: bytes

    def emit(self) -> bytes:
        flags = (PI_FLAG_ONLINK if self.on_link else 0) | (PI_FLAG_AUTO if self.autonomous else 0)
        return _PREFIX.pack(
            OPT_PREFIX_INFO, 4, self.prefix_len, flags,
            self.valid_lifetime, self.preferred_lifetime, 0, self.prefix,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class NdOptions:
    """The ND options a host on Ethernet uses; unknown options are skipped."""

    source_lladdr: bytes | None = None
    target_lladdr: bytes | None = None
    prefixes: tuple[PrefixInfo, ...] = ()
    mtu: int | None = None
    redirected: bytes | None = None  # Redirected Header option data (the invoking packet)


NO_OPTIONS: Final = NdOptions()


@dataclass(frozen=True, slots=True)
class NeighborSolicitation:
    """RFC 4861 §4.3."""

    target: bytes
    options: NdOptions


@dataclass(frozen=True, slots=True)
class NeighborAdvertisement:
    """RFC 4861 §4.4."""

    target: bytes
    router: bool
    solicited: bool
    override: bool
    options: NdOptions


def parse(
    src: bytes, dst: bytes, data: bytes | bytearray | memoryview, *, verify: bool = True
) -> Icmpv6Message:
    """Check length and checksum (RFC 4443 §2.3); ``data`` is the whole IPv6 payload."""
    n = len(data)
    if n < 4:
        raise MalformedFrame(DropReason.TRUNCATED, f"icmpv6: {n} < 4 bytes")
    if verify and pseudo_header_checksum(src, dst, n, NH_ICMPV6, data) != 0:
        raise MalformedFrame(DropReason.BAD_CHECKSUM, "icmpv6")
    t, code, ck = _unpack_hdr(data)
    return Icmpv6Message(t, code, ck, view(data)[4:])


def parse_echo(msg: Icmpv6Message) -> Echo:
    """Identifier, sequence number and data of an Echo Request or Reply."""
    body = msg.body
    if len(body) < 4:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"echo: body {len(body)} < 4 bytes")
    ident, seq = _unpack_echo_body(body)
    return Echo(ident, seq, bytes(body[4:]))


def parse_nd_options(buf: bytes | bytearray | memoryview) -> NdOptions:
    """RFC 4861 §4.6 TLVs. Raise ``BAD_OPTION`` for a zero/overrunning length or bad lladdr."""
    if not buf:
        return NO_OPTIONS
    slla: bytes | None = None
    tlla: bytes | None = None
    prefixes: list[PrefixInfo] = []
    mtu: int | None = None
    redirected: bytes | None = None
    off = 0
    end = len(buf)
    while off < end:
        if end - off < 2:
            raise MalformedFrame(DropReason.BAD_OPTION, f"nd option header cut at {off}")
        otype = buf[off]
        olen = buf[off + 1] * 8
        if olen == 0:
            raise MalformedFrame(DropReason.BAD_OPTION, f"nd option type {otype} length 0")
        if olen > end - off:
            raise MalformedFrame(DropReason.BAD_OPTION, f"nd option type {otype} overruns")
        if otype in (OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR):
            if olen != 8:  # RFC 2464 §8: Ethernet lladdr options are one 8-octet unit
                raise MalformedFrame(DropReason.BAD_OPTION, f"lladdr option length {olen}")
            mac = bytes(buf[off + 2 : off + 8])
            if mac[0] & 1:  # a neighbor's address is unicast (RFC 2464 §8, IEEE 802 I/G bit):
                # a group MAC in the cache would send its unicast traffic to every station
                raise MalformedFrame(DropReason.BAD_OPTION, "multicast lladdr")
            if otype == OPT_SOURCE_LLADDR:
                if slla is None:
                    slla = mac
            elif tlla is None:
                tlla = mac
        elif otype == OPT_PREFIX_INFO:
            if olen != 32:  # RFC 4861 §4.6.2: Length 4
                raise MalformedFrame(DropReason.BAD_OPTION, f"prefix option length {olen}")
            _t, _l, plen, flags, valid, pref, _r, prefix = _PREFIX.unpack_from(buf, off)
            on_link, auto = bool(flags & PI_FLAG_ONLINK), bool(flags & PI_FLAG_AUTO)
            prefixes.append(PrefixInfo(plen, on_link, auto, valid, pref, prefix))
        elif otype == OPT_MTU:
            if olen != 8:  # RFC 4861 §4.6.4: Length 1
                raise MalformedFrame(DropReason.BAD_OPTION, f"mtu option length {olen}")
            if mtu is None:
                mtu = _MTU_OPT.unpack_from(buf, off)[3]
        elif otype == OPT_REDIRECTED_HEADER and redirected is None:
            redirected = bytes(buf[off + 8 : off + olen])  # after 6 reserved octets (§4.6.3)
        off += olen
    if slla is None and tlla is None and not prefixes and mtu is None and redirected is None:
        return NO_OPTIONS
    return NdOptions(slla, tlla, tuple(prefixes), mtu, redirected)


def _parse_nd_common(msg: Icmpv6Message, what: str) -> tuple[int, bytes, NdOptions]:
    body = msg.body
    if len(body) < 20:  # ICMP length >= 24 (RFC 4861 §7.1.1, §7.1.2)
        raise MalformedFrame(DropReason.BAD_LENGTH, f"{what}: icmp length {len(body) + 4} < 24")
    flags, target = _ND_TARGET.unpack_from(body)
    if target[0] == 0xFF:
        raise MalformedFrame(DropReason.BAD_TARGET, f"{what}: multicast target")
    return flags, target, parse_nd_options(body[20:])


def parse_neighbor_solicitation(msg: Icmpv6Message) -> NeighborSolicitation:
    """Body checks of RFC 4861 §7.1.1 (the caller checks hop limit, code and addresses)."""
    _, target, opts = _parse_nd_common(msg, "ns")
    return NeighborSolicitation(target, opts)


def parse_neighbor_advertisement(msg: Icmpv6Message) -> NeighborAdvertisement:
    """Body checks of RFC 4861 §7.1.2 (the caller checks hop limit, code and S vs multicast)."""
    flags, target, opts = _parse_nd_common(msg, "na")
    return NeighborAdvertisement(
        target,
        bool(flags & NA_FLAG_ROUTER),
        bool(flags & NA_FLAG_SOLICITED),
        bool(flags & NA_FLAG_OVERRIDE),
        opts,
    )


@dataclass(frozen=True, slots=True)
class RouterSolicitation:
    """RFC 4861 §4.1."""

    options: NdOptions


@dataclass(frozen=True, slots=True)
class RouterAdvertisement:
    """RFC 4861 §4.2; times in the wire units (lifetime s, reachable/retrans ms)."""

    cur_hop_limit: int
    managed: bool
    other: bool
    router_lifetime: int
    reachable_time: int
    retrans_timer: int
    options: NdOptions


@dataclass(frozen=True, slots=True)
class Redirect:
    """RFC 4861 §4.5."""

    target: bytes
    destination: bytes
    options: NdOptions


@dataclass(frozen=True, slots=True, eq=False)
class IcmpError:
    """An ICMPv6 error (RFC 4443 §3): the 32-bit field and the invoking packet view."""

    type: int
    code: int
    param: int  # unused (0), MTU (Packet Too Big) or pointer (Parameter Problem)
    invoking: builtins.memoryview  # (mypyc: a bare builtin name here fails to load)


def parse_router_solicitation(msg: Icmpv6Message) -> RouterSolicitation:
    """RFC 4861 §6.1.1 body checks: ICMP length >= 8, options valid."""
    body = msg.body
    if len(body) < 4:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"rs: icmp length {len(body) + 4} < 8")
    return RouterSolicitation(parse_nd_options(body[4:]))


def parse_router_advertisement(msg: Icmpv6Message) -> RouterAdvertisement:
    """RFC 4861 §6.1.2 body checks: ICMP length >= 16, options valid."""
    body = msg.body
    if len(body) < 12:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"ra: icmp length {len(body) + 4} < 16")
    hop, flags, lifetime, reachable, retrans = _RA_BODY.unpack_from(body)
    return RouterAdvertisement(
        hop, bool(flags & RA_FLAG_MANAGED), bool(flags & RA_FLAG_OTHER),
        lifetime, reachable, retrans, parse_nd_options(body[12:]),
    )  # fmt: skip


def parse_redirect(msg: Icmpv6Message) -> Redirect:
    """RFC 4861 §8.1 body checks: ICMP length >= 40, destination not multicast, options."""
    body = msg.body
    if len(body) < 36:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"redirect: icmp length {len(body) + 4} < 40")
    _r, target, dest = _REDIRECT_BODY.unpack_from(body)
    if dest[0] == 0xFF:
        raise MalformedFrame(DropReason.BAD_TARGET, "redirect: multicast destination")
    return Redirect(target, dest, parse_nd_options(body[36:]))


def parse_error(msg: Icmpv6Message) -> IcmpError:
    """The common error layout (RFC 4443 §3): a 32-bit field and the invoking packet."""
    body = msg.body
    if len(body) < 4:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"icmp error: body {len(body)} < 4 bytes")
    return IcmpError(msg.type, msg.code, _U32.unpack_from(body)[0], body[4:])


# --- builders ------------------------------------------------------------------------------


def message(src: bytes, dst: bytes, icmp_type: int, code: int, body: bytes) -> bytes:
    """Any ICMPv6 message: header + ``body`` with the pseudo-header checksum filled in."""
    n = 4 + len(body)
    # The checksum field is zero while summing, so the header contributes (type << 8 | code).
    total = (
        _from_bytes(src, "big")
        + _from_bytes(dst, "big")
        + n
        + NH_ICMPV6
        + ((icmp_type << 8) | code)
        + (_from_bytes(body, "big") << (8 if n & 1 else 0))
    )
    r = total % 0xFFFF
    ck = 0 if (r == 0 and total) else 0xFFFF - r
    return _pack_hdr(icmp_type, code, ck) + body


def echo_request(src: bytes, dst: bytes, ident: int, seq: int, data: bytes = b"") -> bytes:
    """Echo Request (RFC 4443 §4.1)."""
    return message(src, dst, ECHO_REQUEST, 0, _ECHO_BODY.pack(ident, seq) + data)


def echo_reply(src: bytes, dst: bytes, ident: int, seq: int, data: bytes = b"") -> bytes:
    """Echo Reply (RFC 4443 §4.2): the request's identifier, sequence number and data."""
    return message(src, dst, ECHO_REPLY, 0, _ECHO_BODY.pack(ident, seq) + data)


def echo_reply_mirroring(request: Icmpv6Message) -> bytes:
    """The Echo Reply to a checksum-verified Echo Request whose reply goes back between the
    same two addresses (a unicast request: RFC 4443 §4.2), without summing the message again.

    Only the first word changes (type 128 -> 129, code -> 0), and swapping source and
    destination leaves the pseudo-header sum as it was, so the checksum is updated as RFC 1624
    eqn. 3 does, in the same canonical form as `message` computes (0, never 0xFFFF, for a zero
    sum): the same bytes as `echo_reply(dst, src, ident, seq, data)`."""
    body = request.body
    if len(body) < 4:
        raise MalformedFrame(DropReason.BAD_LENGTH, f"echo: body {len(body)} < 4 bytes")
    old = (request.type << 8) | request.code
    r = (0xFFFF - request.checksum - old + (ECHO_REPLY << 8)) % 0xFFFF
    # bytes + a memoryview is bytes: no bytes(body) first (a type call, a copy)
    return _pack_hdr(ECHO_REPLY, 0, 0xFFFF - r if r else 0) + body


def lladdr_option(opt_type: int, mac: bytes) -> bytes:
    """Source/Target Link-Layer Address option for Ethernet (RFC 4861 §4.6.1, RFC 2464 §8)."""
    return _LLOPT.pack(opt_type, 1, mac)


def neighbor_solicitation(src: bytes, dst: bytes, target: bytes, src_lladdr: bytes | None) -> bytes:
    """NS (RFC 4861 §4.3). Pass ``src_lladdr=None`` when ``src`` is :: (DAD, §4.3)."""
    body = _ND_TARGET.pack(0, target)
    if src_lladdr is not None:
        body += _LLOPT.pack(OPT_SOURCE_LLADDR, 1, src_lladdr)
    return message(src, dst, NS, 0, body)


def neighbor_advertisement(
    src: bytes,
    dst: bytes,
    target: bytes,
    *,
    router: bool = False,
    solicited: bool,
    override: bool,
    tgt_lladdr: bytes | None,
) -> bytes:
    """NA (RFC 4861 §4.4) with R/S/O flags and an optional Target Link-Layer Address option."""
    flags = (
        (NA_FLAG_ROUTER if router else 0)
        | (NA_FLAG_SOLICITED if solicited else 0)
        | (NA_FLAG_OVERRIDE if override else 0)
    )
    body = _ND_TARGET.pack(flags, target)
    if tgt_lladdr is not None:
        body += _LLOPT.pack(OPT_TARGET_LLADDR, 1, tgt_lladdr)
    return message(src, dst, NA, 0, body)


def router_solicitation(src: bytes, dst: bytes, src_lladdr: bytes | None) -> bytes:
    """RS (RFC 4861 §4.1); no SLLA when ``src`` is :: (§4.1 "MUST NOT be included")."""
    body = bytes(4)
    if src_lladdr is not None:
        body += _LLOPT.pack(OPT_SOURCE_LLADDR, 1, src_lladdr)
    return message(src, dst, RS, 0, body)


def mtu_option(mtu: int) -> bytes:
    """MTU option (RFC 4861 §4.6.4)."""
    return _MTU_OPT.pack(OPT_MTU, 1, 0, mtu)


def router_advertisement(
    src: bytes,
    dst: bytes,
    *,
    cur_hop_limit: int = 64,
    managed: bool = False,
    other: bool = False,
    router_lifetime: int = 1800,
    reachable_time: int = 0,
    retrans_timer: int = 0,
    src_lladdr: bytes | None = None,
    mtu: int | None = None,
    prefixes: tuple[PrefixInfo, ...] = (),
) -> bytes:
    """RA (RFC 4861 §4.2) — what a router sends; the tests' and the peer's side."""
    flags = (RA_FLAG_MANAGED if managed else 0) | (RA_FLAG_OTHER if other else 0)
    body = _RA_BODY.pack(cur_hop_limit, flags, router_lifetime, reachable_time, retrans_timer)
    if src_lladdr is not None:
        body += _LLOPT.pack(OPT_SOURCE_LLADDR, 1, src_lladdr)
    if mtu is not None:
        body += mtu_option(mtu)
    for p in prefixes:
        body += p.emit()
    return message(src, dst, RA, 0, body)


def redirect(
    src: bytes,
    dst: bytes,
    target: bytes,
    destination: bytes,
    *,
    tgt_lladdr: bytes | None = None,
    redirected: bytes = b"",
) -> bytes:
    """Redirect (RFC 4861 §4.5) with optional TLLA and Redirected Header (§4.6.3) options."""
    body = _REDIRECT_BODY.pack(0, target, destination)
    if tgt_lladdr is not None:
        body += _LLOPT.pack(OPT_TARGET_LLADDR, 1, tgt_lladdr)
    if redirected:
        data = redirected + bytes(-len(redirected) % 8)
        body += bytes((OPT_REDIRECTED_HEADER, 1 + len(data) // 8)) + bytes(6) + data
    return message(src, dst, REDIRECT, 0, body)


def error_message(
    src: bytes,
    dst: bytes,
    icmp_type: int,
    code: int,
    param: int,
    invoking: bytes | bytearray | memoryview,
) -> bytes:
    """An ICMPv6 error (RFC 4443 §3) quoting at most 1232 bytes of ``invoking`` (§2.4 c)."""
    return message(
        src, dst, icmp_type, code, _U32.pack(param) + bytes(invoking[:ERROR_INVOKING_MAX])
    )
