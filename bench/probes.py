"""The conformance catalogue: crafted IPv6 probes (scapy builds the upper layers; the extension
headers are laid out byte by byte so that padding, lengths and order are exactly as written).

Theory of operation: a :class:`Probe` is a name, a category, a builder and a few flags. The
builder gets the :class:`Ends` of one target (the prober's address and MAC, the target's) and
returns Ethernet frames; `bench.conformance` sends the same probe to the emulated host (TAP) and
to a Linux host (veth, own namespace) and compares what comes back. ``must_agree`` marks probes
whose answer both stacks must give (the namespace test asserts them); ``quick`` marks the subset
that test runs. Tools and tests only: scapy never runs on the stack's packet path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

# Next Header values (RFC 8200 §4, IANA)
HBH, TCP_, UDP_, RT, FRAG, ICMP6, NONE, DST = 0, 6, 17, 43, 44, 58, 59, 60
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
UNSPEC = bytes(16)
BIG = bytes(range(256)) * 8  # 2 KB of echo data


@dataclass(frozen=True)
class Ends:
    """One target as the prober sees it."""

    src: bytes  # the prober's IPv6 address
    src_mac: bytes
    dst: bytes  # the target's link-local address
    dst_mac: bytes


Builder = Callable[[Ends, int], list[bytes]]  # (ends, fragment id) -> Ethernet frames


@dataclass(frozen=True)
class Probe:
    name: str
    category: str
    what: str
    build: Builder
    window: float = 0.35  # seconds to collect reactions
    must_agree: bool = False
    quick: bool = False
    keep_mld: bool = False  # MLD reports are a reaction (else ND/MLD chatter is ignored)
    tags: tuple[str, ...] = field(default_factory=tuple)


# --- byte builders ----------------------------------------------------------------------------


def _mc_mac(dst: bytes) -> bytes:
    return b"\x33\x33" + dst[12:]


def solicited(addr: bytes) -> bytes:
    return bytes.fromhex("ff0200000000000000000001ff") + addr[13:]


def eth(src_mac: bytes, dst_mac: bytes, ip: bytes) -> bytes:
    return dst_mac + src_mac + b"\x86\xdd" + ip


def ip6(src: bytes, dst: bytes, nh: int, payload: bytes, *, hlim: int = 64,
        plen: int | None = None) -> bytes:
    n = len(payload) if plen is None else plen
    return struct.pack("!IHBB", 0x60000000, n, nh, hlim) + src + dst + payload


def _sum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def upper(src: bytes, dst: bytes, nh: int, body: bytes, csum_at: int) -> bytes:
    """An upper-layer message with its pseudo-header checksum (RFC 8200 §8.1) at ``csum_at``."""
    b = bytearray(body)
    b[csum_at:csum_at + 2] = b"\0\0"
    pseudo = src + dst + struct.pack("!IxxxB", len(b), nh)
    c = _sum(pseudo + bytes(b))
    if nh == UDP_ and c == 0:
        c = 0xFFFF
    b[csum_at:csum_at + 2] = struct.pack("!H", c)
    return bytes(b)


def icmp(src: bytes, dst: bytes, typ: int, code: int, rest: bytes) -> bytes:
    return upper(src, dst, ICMP6, bytes([typ, code, 0, 0]) + rest, 2)


def echo(e: Ends, data: bytes = b"conformance", ident: int = 0x1717, seq: int = 1,
         dst: bytes | None = None, src: bytes | None = None) -> bytes:
    return icmp(src if src is not None else e.src, dst if dst is not None else e.dst, 128, 0,
                struct.pack("!HH", ident, seq) + data)


def opts_hdr(nh: int, opts: bytes) -> bytes:
    """HBH/DO header around ``opts`` exactly as given (must make a multiple of 8 with +2)."""
    assert (len(opts) + 2) % 8 == 0, len(opts)
    return bytes([nh, (len(opts) + 2) // 8 - 1]) + opts


def padded(opts: bytes) -> bytes:
    """``opts`` plus the minimal padding (Pad1 or zero-filled PadN) to a multiple of 8."""
    need = (-(len(opts) + 2)) % 8
    if need == 0:
        return opts
    if need == 1:
        return opts + b"\0"
    return opts + bytes([1, need - 2]) + bytes(need - 2)


def opt(t: int, data: bytes) -> bytes:
    return bytes([t, len(data)]) + data


def rt_hdr(nh: int, rtype: int, left: int, addrs: int = 1) -> bytes:
    return bytes([nh, 2 * addrs, rtype, left]) + bytes(4) + bytes(16 * addrs)


def frag_hdr(nh: int, offset: int, more: bool, ident: int) -> bytes:
    return struct.pack("!BBHI", nh, 0, offset | int(more), ident)


def chain(e: Ends, headers: list[tuple[int, bytes]], last_nh: int, body: bytes, *,
          dst: bytes | None = None, hlim: int = 64, plen: int | None = None,
          src: bytes | None = None, dst_mac: bytes | None = None) -> list[bytes]:
    """One frame: IPv6, then ``headers`` [(their own type, bytes with next header 0)], then
    ``body`` of type ``last_nh``; each header's Next Header octet is set here."""
    d = dst if dst is not None else e.dst
    s = src if src is not None else e.src
    types = [t for t, _ in headers] + [last_nh]
    raw = b"".join(bytes([types[i + 1]]) + h[1:] for i, (_, h) in enumerate(headers))
    first = types[0]
    mac = dst_mac if dst_mac is not None else (_mc_mac(d) if d[0] == 0xFF else e.dst_mac)
    return [eth(e.src_mac, mac, ip6(s, d, first, raw + body, hlim=hlim, plen=plen))]


def fragments(e: Ends, unfrag: list[tuple[int, bytes]], frag_nh: int, payload: bytes,
              ident: int, size: int, *, order: list[int] | None = None,
              dst: bytes | None = None, hlim: int = 64) -> list[bytes]:
    """Split ``payload`` (type ``frag_nh``) into fragments of ``size`` bytes (a multiple of 8)
    behind the unfragmentable ``unfrag`` headers; ``order`` permutes them."""
    pieces = [payload[i:i + size] for i in range(0, len(payload), size)]
    out = []
    for i, p in enumerate(pieces):
        fh = frag_hdr(frag_nh, i * size, i < len(pieces) - 1, ident)
        out.append(chain(e, [*unfrag, (FRAG, fh)], frag_nh, p, dst=dst, hlim=hlim)[0])
    return out if order is None else [out[i] for i in order]


def raw_frag(e: Ends, frag_nh: int, offset: int, more: bool, ident: int, data: bytes,
             dst: bytes | None = None) -> bytes:
    """One fragment with explicit offset/M flag."""
    f = chain(e, [(FRAG, frag_hdr(0, offset, more, ident))], 0, data, dst=dst)[0]
    b = bytearray(f)
    b[14 + 40] = frag_nh
    return bytes(b)


# --- upper layers -------------------------------------------------------------------------------


def tcp_seg(e: Ends, flags: int, dport: int = 1, dst: bytes | None = None,
            seq: int = 1000, ack: int = 0) -> bytes:
    body = struct.pack("!HHIIBBHHH", 40000, dport, seq, ack, 5 << 4, flags, 8192, 0, 0)
    return upper(e.src, dst if dst is not None else e.dst, TCP_, body, 16)


def udp_dgram(e: Ends, dport: int = 33434, data: bytes = b"probe", dst: bytes | None = None,
              zero_csum: bool = False) -> bytes:
    body = struct.pack("!HHHH", 40001, dport, 8 + len(data), 0) + data
    if zero_csum:
        return body
    return upper(e.src, dst if dst is not None else e.dst, UDP_, body, 6)


def ns_msg(src: bytes, dst: bytes, target: bytes, opts: bytes = b"", code: int = 0) -> bytes:
    return icmp(src, dst, 135, code, bytes(4) + target + opts)


def slla(mac: bytes) -> bytes:
    return bytes([1, 1]) + mac


def mld_query(src: bytes, dst: bytes, v2: bool = True, code: int = 0,
              mrd: int = 100) -> bytes:
    body = struct.pack("!HH", mrd, 0) + bytes(16)
    if v2:
        body += bytes([2, 125, 0, 0])  # S=0 QRV=2, QQIC 125, no sources
    return icmp(src, dst, 130, code, body)


RA_OPT = padded(opt(5, b"\0\0"))  # Router Alert (RFC 2711), MLD


def ni_query(src: bytes, dst: bytes) -> bytes:
    # RFC 4620 §4: type 139, code 0 (subject is an IPv6 address), Qtype 0 NOOP
    return icmp(src, dst, 139, 0, struct.pack("!HH", 0, 0) + b"\x17" * 8 + dst)


def link_local(mac: bytes) -> bytes:
    iid = bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:]
    return bytes.fromhex("fe800000000000000000000000000000")[:8] + iid


# --- the catalogue ------------------------------------------------------------------------------

CATALOGUE: list[Probe] = []


def probe(name: str, category: str, what: str, **kw: object) -> Callable[[Builder], Builder]:
    def add(fn: Builder) -> Builder:
        CATALOGUE.append(Probe(name, category, what, fn, **kw))  # type: ignore[arg-type]
        return fn
    return add


def _echo_chain(headers: list[tuple[int, bytes]], mc: bool = False, **kw: object) -> Builder:
    def build(e: Ends, ident: int) -> list[bytes]:
        d = ALL_NODES if mc else e.dst
        return chain(e, headers, ICMP6, echo(e, dst=d), dst=d, **kw)  # type: ignore[arg-type]
    return build


PADN4 = padded(b"")  # an 8-byte header's 6 bytes of PadN
IGN = 0x1E  # unrecognized, action 00 (skip) — RFC 4727 experimental type
ACTIONS = {"00": 0x1E, "01": 0x5E, "10": 0x9E, "11": 0xDE}

# 1. order, repetition, chains
probe("eh.plain", "order", "plain Echo Request", must_agree=True, quick=True)(_echo_chain([]))
probe("eh.hbh_pad", "order", "HBH with PadN only", must_agree=True, quick=True)(
    _echo_chain([(HBH, opts_hdr(0, PADN4))]))
probe("eh.do_pad", "order", "DO with PadN only", must_agree=True, quick=True)(
    _echo_chain([(DST, opts_hdr(0, PADN4))]))
probe("eh.hbh_after_do", "order", "DO then HBH (RFC 8200 §4.1)", must_agree=True, quick=True)(
    _echo_chain([(DST, opts_hdr(0, PADN4)), (HBH, opts_hdr(0, PADN4))]))
probe("eh.hbh_twice", "order", "HBH twice", must_agree=True)(
    _echo_chain([(HBH, opts_hdr(0, PADN4)), (HBH, opts_hdr(0, PADN4))]))
probe("eh.atomic_frag_hbh_rt", "order", "atomic Fragment, HBH, Routing (type 253, SL 0)",
      must_agree=True, quick=True)(
    lambda e, i: chain(e, [(FRAG, frag_hdr(0, 0, False, i)), (HBH, opts_hdr(0, PADN4)),
                           (RT, rt_hdr(0, 253, 0))], ICMP6, echo(e)))
probe("eh.atomic_frag_hbh", "order", "atomic Fragment then HBH", must_agree=True)(
    lambda e, i: chain(e, [(FRAG, frag_hdr(0, 0, False, i)), (HBH, opts_hdr(0, PADN4))],
                       ICMP6, echo(e)))
probe("eh.rt_hbh", "order", "Routing (SL 0) then HBH", must_agree=True)(
    _echo_chain([(RT, rt_hdr(0, 253, 0)), (HBH, opts_hdr(0, PADN4))]))
probe("eh.do_twice", "order", "DO twice", must_agree=True)(
    _echo_chain([(DST, opts_hdr(0, PADN4)), (DST, opts_hdr(0, PADN4))]))
probe("eh.full_order", "order", "HBH, DO, Routing SL 0, atomic Fragment, DO",
      must_agree=True)(
    lambda e, i: chain(e, [(HBH, opts_hdr(0, PADN4)), (DST, opts_hdr(0, PADN4)),
                           (RT, rt_hdr(0, 253, 0)), (FRAG, frag_hdr(0, 0, False, i)),
                           (DST, opts_hdr(0, PADN4))], ICMP6, echo(e)))
probe("eh.rt_twice", "order", "two Routing headers, SL 0", must_agree=True)(
    _echo_chain([(RT, rt_hdr(0, 253, 0)), (RT, rt_hdr(0, 254, 0))]))
probe("eh.no_next_header", "order", "HBH then No Next Header", must_agree=True)(
    lambda e, i: chain(e, [(HBH, opts_hdr(0, PADN4))], NONE, b""))
probe("eh.nnh_trailing", "order", "No Next Header with trailing bytes", must_agree=True)(
    lambda e, i: chain(e, [], NONE, echo(e)))
probe("eh.unknown_nh", "order", "unknown Next Header 253 (RFC 8200 §4)", must_agree=True,
      quick=True)(lambda e, i: chain(e, [], 253, bytes(16)))
probe("eh.unknown_nh_after_do", "order", "DO then unknown Next Header 253", must_agree=True)(
    lambda e, i: chain(e, [(DST, opts_hdr(0, PADN4))], 253, bytes(16)))
probe("eh.unknown_nh_mc", "order", "unknown Next Header to ff02::1 (RFC 4443 §2.4 e.3)",
      must_agree=True)(lambda e, i: chain(e, [], 253, bytes(16), dst=ALL_NODES))
probe("eh.truncated_do", "order", "DO header claiming 16 bytes, 8 present",
      must_agree=True)(
    lambda e, i: chain(e, [(DST, bytes([0, 1]) + bytes([1, 4]) + bytes(4))], NONE, b""))
for n in (12, 13, 32, 128):
    probe(f"eh.do_chain_{n}", "chains", f"{n} DO headers (8 bytes each) then Echo",
          must_agree=True, quick=n in (12, 13))(_echo_chain([(DST, opts_hdr(0, PADN4))] * n))
probe("eh.hbh_do11", "chains", "HBH and 11 DO headers (12 headers)", must_agree=True)(
    _echo_chain([(HBH, opts_hdr(0, PADN4))] + [(DST, opts_hdr(0, PADN4))] * 11))
probe("eh.hbh_do12", "chains", "HBH and 12 DO headers (13 headers)", must_agree=True)(
    _echo_chain([(HBH, opts_hdr(0, PADN4))] + [(DST, opts_hdr(0, PADN4))] * 12))
probe("eh.do6_rt6", "chains", "6 DO and 6 Routing (SL 0) headers", must_agree=True)(
    _echo_chain([(DST, opts_hdr(0, PADN4))] * 6 + [(RT, rt_hdr(0, 253, 0))] * 6))
probe("eh.do7_rt7", "chains", "7 DO and 7 Routing (SL 0) headers", must_agree=True)(
    _echo_chain([(DST, opts_hdr(0, PADN4))] * 7 + [(RT, rt_hdr(0, 253, 0))] * 7))
probe("eh.do11_atomic", "chains", "11 DO headers and an atomic Fragment (12 headers)",
      must_agree=True)(
    lambda e, i: chain(e, [(DST, opts_hdr(0, PADN4))] * 11 + [(FRAG, frag_hdr(0, 0, False, i))],
                       ICMP6, echo(e)))
probe("eh.do12_atomic", "chains", "12 DO headers and an atomic Fragment (13 headers)",
      must_agree=True)(
    lambda e, i: chain(e, [(DST, opts_hdr(0, PADN4))] * 12 + [(FRAG, frag_hdr(0, 0, False, i))],
                       ICMP6, echo(e)))
probe("eh.do13_unknown_nh", "chains", "13 DO headers then unknown Next Header",
      must_agree=True)(lambda e, i: chain(e, [(DST, opts_hdr(0, PADN4))] * 13, 253, bytes(8)))
probe("eh.atomic_twice", "order", "two atomic Fragment headers", must_agree=True,
      quick=True)(
    lambda e, i: chain(e, [(FRAG, frag_hdr(0, 0, False, i)), (FRAG, frag_hdr(0, 0, False, i))],
                       ICMP6, echo(e)))
probe("eh.frag_in_reassembled", "order", "a Fragment header inside a reassembled datagram",
      must_agree=True, window=0.5)(
    lambda e, i: fragments(e, [], FRAG, frag_hdr(ICMP6, 0, False, i) + echo(e, BIG), i, 1232))


def _frag_chain(n: int) -> Builder:
    def build(e: Ends, ident: int) -> list[bytes]:
        hdrs = [(DST, opts_hdr(0, PADN4))] * n
        types = [DST] * n + [ICMP6]
        raw = b"".join(bytes([types[k + 1]]) + h[1:] for k, (_, h) in enumerate(hdrs))
        return fragments(e, [], DST, raw + echo(e), ident, 1448)
    return build


for n in (128, 2000, 8172):
    probe(f"eh.frag_do_chain_{n}", "chains",
          f"{n} DO headers after a Fragment header, fragmented (RFC 7112)",
          window=0.6)(_frag_chain(n))

# 2. options: action bits, unicast and multicast, HBH and DO
for kind, htype in (("hbh", HBH), ("do", DST)):
    for bits, t in ACTIONS.items():
        for mc in (False, True):
            where = "ff02::1" if mc else "unicast"
            probe(f"opt.{kind}.unknown_{bits}.{'mc' if mc else 'uc'}", "options",
                  f"{kind.upper()} unknown option type 0x{t:02x} (action {bits}) to {where}",
                  must_agree=True, quick=(kind == "do"))(
                _echo_chain([(htype, opts_hdr(0, padded(opt(t, b"\0\0"))))], mc=mc))


def _n_opts(n: int) -> bytes:
    return padded(b"".join(opt(IGN, b"") for _ in range(n)))


for kind, htype in (("hbh", HBH), ("do", DST)):
    probe(f"limit.{kind}.8_options", "limits", f"{kind.upper()} with 8 skippable options",
          must_agree=True, quick=True)(_echo_chain([(htype, opts_hdr(0, _n_opts(8)))]))
    probe(f"limit.{kind}.9_options", "limits",
          f"{kind.upper()} with 9 skippable options (Linux max_*_opts_number 8)",
          must_agree=True, quick=True)(_echo_chain([(htype, opts_hdr(0, _n_opts(9)))]))
    probe(f"limit.{kind}.1k_options", "limits", f"{kind.upper()} 1 KB of skippable options",
          must_agree=True)(_echo_chain([(htype, opts_hdr(0, padded(
              b"".join(opt(IGN, bytes(14)) for _ in range(63)))))]))
    probe(f"limit.{kind}.pad_7", "limits", f"{kind.upper()}: 7 padding bytes then an option",
          must_agree=True, quick=True)(
        _echo_chain([(htype, opts_hdr(0, opt(1, bytes(5)) + opt(IGN, bytes(5))))]))
    probe(f"limit.{kind}.pad_8", "limits", f"{kind.upper()}: 8 padding bytes then an option",
          must_agree=True, quick=True)(
        _echo_chain([(htype, opts_hdr(0, opt(1, bytes(6)) + opt(IGN, bytes(4))))]))
    probe(f"limit.{kind}.pad1_8", "limits", f"{kind.upper()}: 8 Pad1 then an option",
          must_agree=True)(_echo_chain([(htype, opts_hdr(0, bytes(8) + opt(IGN, bytes(4))))]))
    probe(f"limit.{kind}.padn_nonzero", "limits", f"{kind.upper()}: PadN with non-zero data",
          must_agree=True, quick=True)(
        _echo_chain([(htype, opts_hdr(0, opt(1, b"\x01\x02\x03\x04")))]))
    probe(f"limit.{kind}.all_padding_1k", "limits", f"{kind.upper()} 1 KB of PadN",
          must_agree=True)(_echo_chain([(htype, opts_hdr(0, padded(
              b"".join(opt(1, bytes(14)) for _ in range(63)))))]))
    probe(f"limit.{kind}.option_overrun", "limits",
          f"{kind.upper()}: option length runs past the header", must_agree=True)(
        _echo_chain([(htype, opts_hdr(0, opt(IGN, bytes(4))[:1] + b"\x09" + bytes(4)))]))



def _frag_big_do(fill: int) -> Builder:
    def build(e: Ends, ident: int) -> list[bytes]:
        h = opts_hdr(ICMP6, padded(b"".join(opt(fill, bytes(14)) for _ in range(127))))
        return fragments(e, [], DST, h + echo(e), ident, 1448)
    return build


probe("limit.do.2k_options_frag", "limits", "DO 2 KB of skippable options, fragmented",
      must_agree=True, window=0.5)(_frag_big_do(IGN))
probe("limit.do.2k_padding_frag", "limits", "DO 2 KB of PadN, fragmented", must_agree=True,
      window=0.5)(_frag_big_do(1))

# 3. Jumbo Payload (RFC 2675)


def _jumbo(value: int, plen0: bool, *, olen: int = 4, lead: bytes = b"",
           more: list[tuple[int, bytes]] | None = None, htype: int = HBH) -> Builder:
    def build(e: Ends, ident: int) -> list[bytes]:
        j = lead + bytes([0xC2, olen]) + struct.pack("!I", value)[:olen] + bytes(max(0, olen - 4))
        hdrs = [(htype, opts_hdr(0, padded(j)))] + (more or [])
        return chain(e, hdrs, ICMP6, echo(e), plen=0 if plen0 else None)
    return build


probe("jumbo.small_plen_set", "jumbo", "Jumbo 1000 with Payload Length set (RFC 2675 §3)",
      must_agree=True, quick=True)(_jumbo(1000, False))
probe("jumbo.small_plen0", "jumbo", "Jumbo 1000 with Payload Length 0 (RFC 2675 §3)",
      must_agree=True, quick=True)(_jumbo(1000, True))
probe("jumbo.large_plen_set", "jumbo", "Jumbo 70000 with Payload Length set (RFC 2675 §3)",
      must_agree=True, quick=True)(_jumbo(70000, False))
probe("jumbo.large_plen0", "jumbo", "Jumbo 70000, Payload Length 0, frame short",
      must_agree=True)(_jumbo(70000, True))
probe("jumbo.misaligned", "jumbo", "Jumbo option not at 4n+2", must_agree=True)(
    _jumbo(70000, True, lead=b"\0\0"))
probe("jumbo.bad_optlen", "jumbo", "Jumbo option length 5", must_agree=True)(
    _jumbo(70000, True, olen=5))
probe("jumbo.in_do", "jumbo", "Jumbo option in a DO header", must_agree=True)(
    _jumbo(70000, False, htype=DST))
probe("jumbo.small_with_frag", "jumbo", "Jumbo 1000 and an atomic Fragment header",
      must_agree=True)(_jumbo(1000, False, more=[(FRAG, frag_hdr(0, 0, False, 0x4A))]))
probe("jumbo.plen0_no_jumbo", "jumbo", "Payload Length 0, HBH without Jumbo (RFC 2675 §3)")(
    lambda e, i: chain(e, [(HBH, opts_hdr(0, PADN4))], ICMP6, echo(e), plen=0))

# 4. routing headers
for rtype in (0, 2, 4, 253):
    for left in (0, 1):
        probe(f"rt.type{rtype}.sl{left}", "routing",
              f"Routing type {rtype}, Segments Left {left}", must_agree=True,
              quick=(rtype in (0, 253)))(_echo_chain([(RT, rt_hdr(0, rtype, left))]))
probe("rt.type0.sl1_mc", "routing", "Routing type 0, SL 1, to ff02::1", must_agree=True)(
    _echo_chain([(RT, rt_hdr(0, 0, 1))], mc=True))

# 5. fragments


def _frag_echo(size: int, order: list[int] | None = None, data: bytes = BIG) -> Builder:
    return lambda e, i: fragments(e, [], ICMP6, echo(e, data), i, size, order=order)


probe("frag.two", "fragments", "2 KB echo in two fragments", must_agree=True, quick=True,
      window=0.5)(_frag_echo(1232))
probe("frag.reversed", "fragments", "2 KB echo, fragments in reverse order", must_agree=True,
      window=0.5)(_frag_echo(1232, [1, 0]))
probe("frag.tiny", "fragments", "echo in 8-byte fragments", must_agree=True, window=0.5)(
    _frag_echo(8, None, b"x" * 56))
probe("frag.shuffled", "fragments", "echo in 5 fragments, shuffled", must_agree=True,
      window=0.5)(_frag_echo(416, [3, 0, 4, 2, 1]))


def _overlap(e: Ends, i: int) -> list[bytes]:
    p = echo(e, BIG[:1200])
    return [raw_frag(e, ICMP6, 0, True, i, p[:800]), raw_frag(e, ICMP6, 400, False, i, p[400:])]


probe("frag.overlap", "fragments", "overlapping fragments (RFC 5722)", must_agree=True,
      quick=True, window=0.5)(_overlap)


def _dup(e: Ends, i: int) -> list[bytes]:
    f = fragments(e, [], ICMP6, echo(e, BIG), i, 1232)
    return [f[0], f[0], f[1]]


probe("frag.duplicate", "fragments", "first fragment twice (exact duplicate)",
      window=0.5)(_dup)
probe("frag.atomic", "fragments", "atomic fragment (RFC 8021, RFC 6946)", must_agree=True,
      quick=True)(lambda e, i: chain(e, [(FRAG, frag_hdr(0, 0, False, i))], ICMP6, echo(e)))


def _atomic_pending(e: Ends, i: int) -> list[bytes]:
    f = fragments(e, [], ICMP6, echo(e, BIG), i, 1232)
    return [f[0], chain(e, [(FRAG, frag_hdr(0, 0, False, i))], ICMP6, echo(e, seq=2))[0]]


probe("frag.atomic_same_id", "fragments", "atomic fragment with the id of a pending datagram "
      "(RFC 6946 §4)", window=0.5)(_atomic_pending)
probe("frag.not_multiple_8", "fragments", "M=1 fragment, length not a multiple of 8",
      must_agree=True)(lambda e, i: [raw_frag(e, ICMP6, 0, True, i, echo(e, b"x" * 13))])


def _over64k(e: Ends, i: int) -> list[bytes]:
    return [raw_frag(e, ICMP6, 65000, False, i, bytes(1000))]


probe("frag.over_64k", "fragments", "fragment ending beyond 65535 (RFC 8200 §4.5)",
      must_agree=True, quick=True)(_over64k)


def _no_upper(e: Ends, i: int) -> list[bytes]:
    big_do = (DST, opts_hdr(0, padded(opt(IGN, bytes(6)) + opt(1, bytes(4)))))
    hdrs = [big_do] * 2
    raw = b"".join(bytes([DST]) + h[1:] for _, h in hdrs[:-1]) + bytes([ICMP6]) + hdrs[-1][1][1:]
    return [raw_frag(e, DST, 0, True, i, raw)]


probe("frag.first_no_upper", "fragments", "first fragment without the upper-layer header "
      "(RFC 7112 §5)", must_agree=True)(_no_upper)
probe("frag.timeout", "fragments", "first fragment only: reassembly timeout (Time Exceeded "
      "code 1)", must_agree=True, window=3.5)(
    lambda e, i: fragments(e, [], ICMP6, echo(e, BIG), i, 1232)[:1])
probe("frag.timeout_no_first", "fragments", "last fragment only: timeout, no error",
      must_agree=True, window=3.5)(
    lambda e, i: fragments(e, [], ICMP6, echo(e, BIG), i, 1232)[1:])


def _reass_over_64k(e: Ends, i: int) -> list[bytes]:
    out = []
    data = echo(e, bytes(65528))  # 65536 bytes of ICMPv6
    for off in range(0, len(data), 1448):
        out.append(raw_frag(e, ICMP6, off, off + 1448 < len(data), i, data[off:off + 1448]))
    return out


probe("frag.reassembly_over_64k", "fragments", "fragments adding up to 65544 bytes",
      must_agree=True)(_reass_over_64k)
probe("frag.hbh_inside", "fragments", "atomic Fragment then HBH (RFC 8200 §4.1)",
      must_agree=True)(
    lambda e, i: chain(e, [(FRAG, frag_hdr(0, 0, False, i)), (HBH, opts_hdr(0, PADN4))],
                       UDP_, udp_dgram(e)))

# 6. Neighbor Discovery


def _ns(hlim: int = 255, opts: bytes | None = None, code: int = 0, src: bytes | None = None,
        target: bytes | None = None, frag: str = "", mc: bool = True,
        hdrs: list[tuple[int, bytes]] | None = None) -> Builder:
    def build(e: Ends, ident: int) -> list[bytes]:
        s = e.src if src is None else src
        d = solicited(e.dst) if mc else e.dst
        o = slla(e.src_mac) if opts is None else opts
        m = ns_msg(s, d, e.dst if target is None else target, o, code)
        if frag == "atomic":
            return chain(e, [(FRAG, frag_hdr(0, 0, False, ident))], ICMP6, m, dst=d, src=s,
                         hlim=hlim)
        if frag == "two":
            return fragments(e, [], ICMP6, m, ident, 16, dst=d, hlim=hlim)
        return chain(e, hdrs or [], ICMP6, m, dst=d, src=s, hlim=hlim)
    return build


probe("nd.ns_ok", "nd", "NS with SLLA, hop limit 255", must_agree=True, quick=True)(_ns())
probe("nd.ns_unicast", "nd", "unicast NS with SLLA", must_agree=True)(_ns(mc=False))
probe("nd.ns_hop254", "nd", "NS with hop limit 254 (RFC 4861 §7.1.1)", must_agree=True,
      quick=True)(_ns(hlim=254))
probe("nd.ns_code1", "nd", "NS with code 1", must_agree=True)(_ns(code=1))
probe("nd.ns_zero_len_opt", "nd", "NS with a zero-length option", must_agree=True,
      quick=True)(lambda e, i: _ns(opts=bytes([1, 0]) + bytes(6))(e, i))
probe("nd.ns_dad", "nd", "DAD NS from :: (defended with NA to ff02::1)", must_agree=True)(
    _ns(src=UNSPEC, opts=b""))
probe("nd.ns_dad_slla", "nd", "NS from :: with SLLA (RFC 4861 §7.1.1)", must_agree=True,
      quick=True)(_ns(src=UNSPEC))
probe("nd.ns_mc_target", "nd", "NS for a multicast target", must_agree=True)(
    _ns(target=ALL_NODES))
probe("nd.ns_atomic_frag", "nd", "NS in an atomic fragment (RFC 6980 §5)", must_agree=True,
      quick=True)(_ns(frag="atomic"))
probe("nd.ns_two_frags", "nd", "NS in two fragments (RFC 6980 §5)", must_agree=True)(
    _ns(frag="two"))
probe("nd.ns_behind_do", "nd", "NS behind a DO header", must_agree=True)(
    _ns(hdrs=[(DST, opts_hdr(0, PADN4))]))
probe("nd.ns_short", "nd", "NS 20 bytes long", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, icmp(e.src, solicited(e.dst), 135, 0, bytes(16)),
                       dst=solicited(e.dst), hlim=255))

# 7. MLD


def _mld(src: str = "ll", hlim: int = 1, ra: bool = True, v2: bool = True,
         code: int = 0) -> Builder:
    def build(e: Ends, ident: int) -> list[bytes]:
        s = {"ll": e.src, "global": bytes.fromhex("20010db8001700000000000000000001"),
             "unspec": UNSPEC}[src]
        m = mld_query(s, ALL_NODES, v2, code)
        hdrs = [(HBH, opts_hdr(0, RA_OPT))] if ra else []
        return chain(e, hdrs, ICMP6, m, dst=ALL_NODES, src=s, hlim=hlim)
    return build


probe("mld.query_ok", "mld", "MLDv2 general query: link-local, hop 1, Router Alert",
      must_agree=True, keep_mld=True, window=0.6, quick=True)(_mld())
probe("mld.query_global_src", "mld", "query from a global source (RFC 3810 §5.1.14)",
      must_agree=True, keep_mld=True, window=0.6)(_mld(src="global"))
probe("mld.query_unspec_src", "mld", "query from ::", must_agree=True, keep_mld=True,
      window=0.6)(_mld(src="unspec"))
probe("mld.query_hop2", "mld", "query with hop limit 2", keep_mld=True, window=0.6)(
    _mld(hlim=2))
probe("mld.query_no_ra", "mld", "query without Router Alert", keep_mld=True, window=0.6)(
    _mld(ra=False))
probe("mld.report_to_host", "mld", "an MLDv2 report sent to the host", must_agree=True,
      keep_mld=True, window=0.6)(
    lambda e, i: chain(e, [(HBH, opts_hdr(0, RA_OPT))], ICMP6,
                       icmp(e.src, bytes.fromhex("ff020000000000000000000000000016"), 143, 0,
                            bytes(4)), dst=bytes.fromhex("ff020000000000000000000000000016"),
                       hlim=1))

# 8. ICMPv6 error rules, echo, NI, TCP, UDP
probe("err.udp_closed", "errors", "UDP to a closed port", must_agree=True, quick=True)(
    lambda e, i: chain(e, [], UDP_, udp_dgram(e)))
probe("err.udp_closed_mc", "errors", "UDP to a closed port at ff02::1 (RFC 4443 §2.4 e.3)",
      must_agree=True)(lambda e, i: chain(e, [], UDP_, udp_dgram(e, dst=ALL_NODES),
                                          dst=ALL_NODES))
probe("err.udp_closed_l2_bcast", "errors", "UDP to a closed port, L2 broadcast frame "
      "(RFC 4443 §2.4 e.4)")(lambda e, i: chain(e, [], UDP_, udp_dgram(e), dst_mac=b"\xff" * 6))
probe("err.udp_zero_csum", "errors", "UDP checksum 0 (RFC 8200 §8.1)", must_agree=True)(
    lambda e, i: chain(e, [], UDP_, udp_dgram(e, zero_csum=True)))
probe("err.about_error", "errors", "unknown option (action 10) before an ICMPv6 error "
      "(RFC 4443 §2.4 e.1)", must_agree=True, quick=True)(
    lambda e, i: chain(e, [(DST, opts_hdr(0, padded(opt(0x9E, b"\0\0"))))], ICMP6,
                       icmp(e.src, e.dst, 1, 4, bytes(4) + bytes(48))))
probe("err.about_redirect", "errors", "Redirect behind a DO header with an unknown option "
      "(action 10) (RFC 4443 §2.4 e.2)")(
    lambda e, i: chain(e, [(DST, opts_hdr(0, padded(opt(0x9E, b"\0\0"))))], ICMP6,
                       icmp(e.src, e.dst, 137, 0, bytes(36)), hlim=255))
probe("err.src_multicast", "errors", "echo from a multicast source", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, echo(e, src=ALL_NODES), src=ALL_NODES))
probe("err.src_unspec", "errors", "echo from ::", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, echo(e, src=UNSPEC), src=UNSPEC))
probe("err.rate_burst", "errors", "20 UDP datagrams to a closed port at once (rate limit "
      "off on both sides)", must_agree=True, window=0.6)(
    lambda e, i: [chain(e, [], UDP_, udp_dgram(e, data=bytes([k])))[0] for k in range(20)])
probe("echo.ff02_1", "echo", "echo to ff02::1", must_agree=True, quick=True)(
    _echo_chain([], mc=True))
probe("echo.solicited_node", "echo", "echo to the solicited-node group", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, echo(e, dst=solicited(e.dst)), dst=solicited(e.dst)))
probe("echo.ff02_2", "echo", "echo to all-routers (not joined)", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, echo(e, dst=ALL_ROUTERS), dst=ALL_ROUTERS))
probe("echo.ff01_1", "echo", "echo to interface-local ff01::1 from the wire (RFC 4291 §2.7)")(
    lambda e, i: chain(e, [], ICMP6, echo(e, dst=bytes.fromhex("ff01" + "00" * 13 + "01")),
                       dst=bytes.fromhex("ff01" + "00" * 13 + "01")))
probe("echo.anycast_subnet_router", "echo", "echo to the subnet-router anycast fe80::",
      must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, echo(e, dst=bytes.fromhex("fe80" + "00" * 14)),
                       dst=bytes.fromhex("fe80" + "00" * 14), dst_mac=e.dst_mac))
probe("echo.l2_broadcast", "echo", "unicast echo in an L2 broadcast frame")(
    lambda e, i: chain(e, [], ICMP6, echo(e), dst_mac=b"\xff" * 6))
probe("echo.hop_limit_0", "echo", "echo with hop limit 0", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, echo(e), hlim=0))
probe("echo.bad_checksum", "echo", "echo with a wrong checksum", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, echo(e)[:2] + b"\x12\x34" + echo(e)[4:]))
probe("echo.plen_over_frame", "echo", "Payload Length beyond the frame", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, echo(e), plen=200))
probe("echo.trailing_bytes", "echo", "frame longer than Payload Length (trimmed)",
      must_agree=True)(lambda e, i: [chain(e, [], ICMP6, echo(e))[0] + b"\xee" * 20])
probe("echo.1452", "echo", "1452-byte echo (full MTU)", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, echo(e, bytes(1444))))
probe("ni.query", "ni", "Node Information query (RFC 4620), unicast", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, ni_query(e.src, e.dst)))
probe("ni.query_mc", "ni", "Node Information query to ff02::1", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, ni_query(e.src, ALL_NODES), dst=ALL_NODES))
probe("icmp.unknown_info", "errors", "unknown informational type 200", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, icmp(e.src, e.dst, 200, 0, bytes(4))))
probe("icmp.unknown_error", "errors", "unknown error type 100", must_agree=True)(
    lambda e, i: chain(e, [], ICMP6, icmp(e.src, e.dst, 100, 0, bytes(52))))
probe("tcp.syn_closed", "tcp", "SYN to a closed port", must_agree=True, quick=True)(
    lambda e, i: chain(e, [], TCP_, tcp_seg(e, 0x02)))
probe("tcp.ack_closed", "tcp", "ACK to a closed port", must_agree=True)(
    lambda e, i: chain(e, [], TCP_, tcp_seg(e, 0x10, ack=5)))
probe("tcp.rst_closed", "tcp", "RST to a closed port", must_agree=True)(
    lambda e, i: chain(e, [], TCP_, tcp_seg(e, 0x04)))
probe("tcp.syn_fin_closed", "tcp", "SYN+FIN to a closed port", must_agree=True)(
    lambda e, i: chain(e, [], TCP_, tcp_seg(e, 0x03)))
probe("tcp.syn_mc", "tcp", "SYN to ff02::1", must_agree=True)(
    lambda e, i: chain(e, [], TCP_, tcp_seg(e, 0x02, dst=ALL_NODES), dst=ALL_NODES))
probe("tcp.syn_behind_do", "tcp", "SYN to a closed port behind a DO header",
      must_agree=True)(
    lambda e, i: chain(e, [(DST, opts_hdr(0, PADN4))], TCP_, tcp_seg(e, 0x02)))
probe("tcp.bad_checksum", "tcp", "SYN with a wrong checksum", must_agree=True)(
    lambda e, i: chain(e, [], TCP_, tcp_seg(e, 0x02)[:16] + b"\0\1" + tcp_seg(e, 0x02)[18:]))


def by_name() -> dict[str, Probe]:
    return {p.name: p for p in CATALOGUE}
