"""Fuzz the receive path of one :class:`~tcpip6.stack.host.Ipv6Host` with mutated frames.

``python -m bench.fuzz [--frames 1000000] [--seed K]`` builds a corpus of valid frames with the
:mod:`tcpip6.wire` codecs (echo requests, NS/NA/RS/RA/Redirect, MLD queries, fragments, UDP,
TCP SYN/data/FIN/RST, extension headers, ICMPv6 errors), mutates them with a seeded
``random.Random`` (bit flips, byte replacements, truncation, length-field lies, inserted and
deleted bytes, splices, random bytes; the upper-layer checksum is often recomputed so that the
mutation reaches the parsers behind it) and feeds them to one host in virtual time. It prints
frames, exceptions (must be 0), replies, drops by reason and frames/s, and saves the same as
JSON to ``bench/results/fuzz.json``. The tests (``tests/tcpip6/test_fuzz_receive.py``) share
the corpus and the mutators.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from tcpip6.stack.context import HostConfig
from tcpip6.stack.host import Ipv6Host
from tcpip6.wire import icmpv6, mld, tcp, udp
from tcpip6.wire.ethernet import ETHERTYPE_IPV6, ipv6_multicast_mac, pack_header, parse_mac
from tcpip6.wire.ipv6 import (
    ALL_NODES,
    NH_DSTOPTS,
    NH_FRAGMENT,
    NH_HOPOPTS,
    NH_ICMPV6,
    NH_ROUTING,
    NH_TCP,
    NH_UDP,
    link_local_from_mac,
    packet,
    parse_addr,
    pseudo_header_checksum,
    solicited_node,
)
from tcpip6.wire.ipv6ext import fragment_header, hop_by_hop_router_alert

HOST_MAC = parse_mac("00:15:5d:01:02:03")
PEER_MAC = parse_mac("02:00:00:00:00:aa")
ROUTER_MAC = parse_mac("02:00:00:00:00:01")
HOST_LL = link_local_from_mac(HOST_MAC)
PEER_LL = link_local_from_mac(PEER_MAC)
ROUTER_LL = parse_addr("fe80::1")
PREFIX = parse_addr("2001:db8:1::")
HOST_GLOBAL = parse_addr("2001:db8:1::215:5dff:fe01:203")
TCP_PORT = 80
ETH_LEN = 14
IP6_LEN = 40
_CKSUM_AT = {NH_ICMPV6: 2, NH_UDP: 6, NH_TCP: 16}

SYN, FIN, RST, PSH, ACK = tcp.SYN, tcp.FIN, tcp.RST, tcp.PSH, tcp.ACK


def _eth(dst_ip: bytes, ip_pkt: bytes, src_mac: bytes = PEER_MAC) -> bytes:
    dst_mac = ipv6_multicast_mac(dst_ip) if dst_ip[0] == 0xFF else HOST_MAC
    return pack_header(dst_mac, src_mac, ETHERTYPE_IPV6) + ip_pkt


def _ip(src: bytes, dst: bytes, nh: int, payload: bytes, hlim: int = 64) -> bytes:
    return _eth(dst, packet(src, dst, nh, hlim, payload))


def _opts_header(nh: int, opts: bytes) -> bytes:
    """A Hop-by-Hop / Destination Options header padded with PadN to a multiple of 8."""
    body = bytes((nh, 0)) + opts
    pad = -len(body) % 8
    if pad == 1:
        body += b"\x00"
    elif pad:
        body += bytes((1, pad - 2)) + bytes(pad - 2)
    return bytes((body[0], len(body) // 8 - 1)) + body[2:]


def corpus() -> list[bytes]:
    """Valid frames from the peer (and a router) to the host at :data:`HOST_MAC`."""
    p, h, r = PEER_LL, HOST_LL, ROUTER_LL
    sn = solicited_node(h)
    out: list[bytes] = []
    add = out.append
    # ICMPv6 echo, unicast and all-nodes, small and large
    add(_ip(p, h, NH_ICMPV6, icmpv6.echo_request(p, h, 1, 1, b"x" * 32)))
    add(_ip(p, ALL_NODES, NH_ICMPV6, icmpv6.echo_request(p, ALL_NODES, 2, 2, b"abc")))
    add(_ip(p, h, NH_ICMPV6, icmpv6.echo_reply(p, h, 3, 3, b"reply")))
    # ND
    ns = icmpv6.neighbor_solicitation(p, sn, h, PEER_MAC)
    add(_ip(p, sn, NH_ICMPV6, ns, 255))
    add(_ip(p, h, NH_ICMPV6, icmpv6.neighbor_solicitation(p, h, h, PEER_MAC), 255))
    dad = icmpv6.neighbor_solicitation(bytes(16), sn, h, None)
    add(_ip(bytes(16), sn, NH_ICMPV6, dad, 255))
    na = icmpv6.neighbor_advertisement(p, h, p, solicited=True, override=True, tgt_lladdr=PEER_MAC)
    add(_ip(p, h, NH_ICMPV6, na, 255))
    una = icmpv6.neighbor_advertisement(
        p, ALL_NODES, p, router=True, solicited=False, override=True, tgt_lladdr=PEER_MAC
    )
    add(_ip(p, ALL_NODES, NH_ICMPV6, una, 255))
    rs = icmpv6.router_solicitation(p, parse_addr("ff02::2"), PEER_MAC)
    add(_ip(p, parse_addr("ff02::2"), NH_ICMPV6, rs, 255))
    pi = icmpv6.PrefixInfo(64, True, True, 86400, 14400, PREFIX)
    ra = icmpv6.router_advertisement(
        r, ALL_NODES, src_lladdr=ROUTER_MAC, mtu=1500, prefixes=(pi,), reachable_time=30000,
        retrans_timer=1000,
    )  # fmt: skip
    add(_eth(ALL_NODES, packet(r, ALL_NODES, NH_ICMPV6, 255, ra), ROUTER_MAC))
    rd = icmpv6.redirect(
        r, h, p, parse_addr("2001:db8:9::1"), tgt_lladdr=PEER_MAC,
        redirected=packet(h, parse_addr("2001:db8:9::1"), NH_UDP, 64, bytes(16)),
    )  # fmt: skip
    add(_eth(h, packet(r, h, NH_ICMPV6, 255, rd), ROUTER_MAC))
    # MLD queries (with the Router Alert Hop-by-Hop header, RFC 3810 §5)
    for q, dst in (
        (mld.query_v2(r, ALL_NODES, bytes(16), 1000), ALL_NODES),
        (mld.query_v2(r, sn, sn, 1000, sources=(p, h)), sn),
        (mld.query_v1(r, ALL_NODES, bytes(16), 1000), ALL_NODES),
    ):
        hbh = hop_by_hop_router_alert(NH_ICMPV6)
        add(_eth(dst, packet(r, dst, NH_HOPOPTS, 1, hbh + q), ROUTER_MAC))
    # fragments of an echo request (two pieces), an atomic fragment, tiny/overlapping pieces
    big = icmpv6.echo_request(p, h, 7, 7, bytes(range(256)) * 6)
    add(_ip(p, h, NH_FRAGMENT, fragment_header(NH_ICMPV6, 0, True, 0x1234) + big[:1000]))
    add(_ip(p, h, NH_FRAGMENT, fragment_header(NH_ICMPV6, 1000, False, 0x1234) + big[1000:]))
    small = icmpv6.echo_request(p, h, 8, 8, b"atomic")
    add(_ip(p, h, NH_FRAGMENT, fragment_header(NH_ICMPV6, 0, False, 0x99) + small))
    add(_ip(p, h, NH_FRAGMENT, fragment_header(NH_ICMPV6, 8, True, 0x77) + bytes(8)))
    add(_ip(p, h, NH_FRAGMENT, fragment_header(NH_ICMPV6, 0, True, 0x77) + big[:16]))
    # UDP: echo service (port 7) and a closed port
    add(_ip(p, h, NH_UDP, udp.datagram(p, h, 40000, 7, b"hello")))
    add(_ip(p, h, NH_UDP, udp.datagram(p, h, 40001, 9999, b"closed")))
    # TCP to the listener: SYN with options, then ACK/data/FIN/RST of a made-up connection
    opts = tcp.options(mss=1440, wscale=7, sack_permitted=True, ts=(1, 0))
    add(_ip(p, h, NH_TCP, tcp.build(p, h, 50000, TCP_PORT, 1000, 0, SYN, 65535, opts)))
    add(_ip(p, h, NH_TCP, tcp.build(p, h, 50000, TCP_PORT, 1001, 1, ACK, 65535)))
    add(_ip(p, h, NH_TCP, tcp.build(p, h, 50000, TCP_PORT, 1001, 1, ACK | PSH, 65535,
                                    payload=b"GET / HTTP/1.0\r\n\r\n")))  # fmt: skip
    add(_ip(p, h, NH_TCP, tcp.build(p, h, 50000, TCP_PORT, 1019, 1, ACK | FIN, 65535)))
    add(_ip(p, h, NH_TCP, tcp.build(p, h, 50000, TCP_PORT, 1001, 0, RST, 0)))
    add(_ip(p, h, NH_TCP, tcp.build(p, h, 50001, 81, 5, 0, SYN, 65535)))
    # extension headers: Destination Options (PadN, unknown skippable and discard options),
    # Routing type 0 with Segments Left 0 and 1, Hop-by-Hop in the wrong place
    echo = icmpv6.echo_request(p, h, 9, 9, b"ext")
    add(_ip(p, h, NH_DSTOPTS, _opts_header(NH_ICMPV6, b"\x1e\x02ab") + echo))
    add(_ip(p, h, NH_DSTOPTS, _opts_header(NH_ICMPV6, b"\x9e\x02ab") + echo))
    add(_ip(p, h, NH_HOPOPTS, _opts_header(NH_ICMPV6, b"\x5e\x02ab") + echo))
    rh0 = bytes((NH_ICMPV6, 2, 0, 0)) + bytes(4) + parse_addr("2001:db8::1")
    add(_ip(p, h, NH_ROUTING, rh0 + echo))
    rh1 = bytes((NH_ICMPV6, 2, 0, 1)) + bytes(4) + parse_addr("2001:db8::1")
    add(_ip(p, h, NH_ROUTING, rh1 + echo))
    add(_ip(p, h, NH_DSTOPTS, _opts_header(NH_HOPOPTS, b"") + _opts_header(NH_ICMPV6, b"")
            + echo))  # fmt: skip
    add(_ip(p, h, 143, bytes(8)))  # unknown next header: Parameter Problem code 1
    # ICMPv6 errors quoting one of the host's TCP segments and a UDP datagram
    quoted = packet(h, p, NH_TCP, 64, tcp.build(h, p, TCP_PORT, 50000, 1, 1001, ACK, 100))
    add(_ip(p, h, NH_ICMPV6, icmpv6.error_message(p, h, icmpv6.PACKET_TOO_BIG, 0, 1280,
                                                  quoted)))  # fmt: skip
    add(_ip(p, h, NH_ICMPV6, icmpv6.error_message(p, h, icmpv6.DEST_UNREACH, 4, 0, quoted)))
    add(_ip(p, h, NH_ICMPV6, icmpv6.error_message(p, h, icmpv6.PARAM_PROBLEM, 0, 6, quoted)))
    add(_ip(p, h, NH_ICMPV6, icmpv6.error_message(p, h, icmpv6.TIME_EXCEEDED, 1, 0, quoted)))
    return out


# --- mutators ------------------------------------------------------------------------------


def fix_checksum(frame: bytes | bytearray) -> bytes:
    """Recompute the upper-layer checksum when ICMPv6/UDP/TCP follows the IPv6 header (so a
    mutation of the message body gets past the checksum)."""
    b = bytearray(frame)
    if len(b) < ETH_LEN + IP6_LEN or b[12:14] != b"\x86\xdd":
        return bytes(b)
    nh = b[ETH_LEN + 6]
    at = _CKSUM_AT.get(nh)
    body_at = ETH_LEN + IP6_LEN
    if at is None or len(b) < body_at + at + 2:
        return bytes(b)
    plen = struct.unpack_from("!H", b, ETH_LEN + 4)[0]
    body = b[body_at : body_at + plen]
    if len(body) < at + 2:
        return bytes(b)
    body[at : at + 2] = b"\x00\x00"
    ck = pseudo_header_checksum(
        bytes(b[ETH_LEN + 8 : ETH_LEN + 24]), bytes(b[ETH_LEN + 24 : ETH_LEN + 40]),
        len(body), nh, body,
    )  # fmt: skip
    if nh == NH_UDP and ck == 0:
        ck = 0xFFFF
    struct.pack_into("!H", b, body_at + at, ck)
    return bytes(b)


# positions of length-like fields worth lying about: IPv6 payload length, ext header length,
# UDP length, ND option length, TCP data offset, MLD source count
_LENGTH_FIELDS = (ETH_LEN + 4, ETH_LEN + 5, ETH_LEN + 41, ETH_LEN + 44, ETH_LEN + 45,
                  ETH_LEN + 52, ETH_LEN + 65, ETH_LEN + 40 + 12, ETH_LEN + 40 + 26,
                  ETH_LEN + 48 + 26, ETH_LEN + 40 + 25)  # fmt: skip


def mutate(frame: bytes, rng: random.Random, others: list[bytes] | None = None) -> bytes:
    """One to four random mutations of ``frame``; half the time the checksum is fixed after."""
    b = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(b)
        if op == 0 and n:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(n)
                b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # byte replacements, with interesting values
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(n)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:  # truncation at any length
            del b[rng.randint(0, n) :]
        elif op == 3:  # length-field lies
            i = rng.choice(_LENGTH_FIELDS)
            if i + 1 < n:
                v = rng.choice((0, 1, 2, 7, 8, 0xFF, 0xFFFF, rng.randrange(0x10000), n - 54,
                                n - 53, n - 55))  # fmt: skip
                struct.pack_into("!H", b, i, v & 0xFFFF)
        elif op == 4:  # insert random bytes
            i = rng.randint(0, n)
            b[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 5 and n:  # delete a run
            i = rng.randrange(n)
            del b[i : i + rng.randint(1, 16)]
        elif op == 6 and others:  # splice with another corpus frame
            o = rng.choice(others)
            i = rng.randint(ETH_LEN, max(ETH_LEN, min(n, len(o))))
            b = b[:i] + bytearray(o[i:])
        elif op == 7:  # random tail after the headers
            i = rng.randint(ETH_LEN, max(ETH_LEN, n))
            b[i:] = rng.randbytes(rng.randint(0, 64))
        elif op == 8 and n > ETH_LEN + 7:  # change next header / hop limit
            b[ETH_LEN + rng.choice((6, 7))] = rng.choice((0, 6, 17, 43, 44, 58, 59, 60, 255,
                                                          rng.randrange(256)))  # fmt: skip
    if rng.random() < 0.5:
        return fix_checksum(b)
    return bytes(b)


def random_frame(rng: random.Random) -> bytes:
    """Random bytes behind a header that passes the L2 filter (and often the IPv6 version)."""
    n = rng.randint(0, 200)
    body = bytearray(rng.randbytes(n))
    if n and rng.random() < 0.7:
        body[0] = 0x60 | (body[0] & 0x0F)
    return pack_header(HOST_MAC, PEER_MAC, ETHERTYPE_IPV6) + bytes(body)


def fuzz_host(config: HostConfig | None = None, seed: int = 1) -> Ipv6Host:
    """A started host with passed DAD, a global address from an RA and a TCP listener."""
    cfg = config if config is not None else HostConfig(startup_delay=False)
    host = Ipv6Host(HOST_MAC, 1500, rng=random.Random(seed), config=cfg)
    host.start(0.0)
    while (d := host.next_deadline()) is not None and d <= 1.5:
        host.handle_timer(d)
    host.tcp_listen(TCP_PORT)
    return host


def run(frames: int, seed: int, *, progress: bool = True) -> dict[str, object]:
    rng = random.Random(seed)
    host = fuzz_host(seed=seed)
    base = corpus()
    exceptions: list[str] = []
    replies = 0
    now = 2.0
    t0 = time.perf_counter()
    step = max(1, frames // 20)
    for i in range(frames):
        r = rng.random()
        if r < 0.05:
            frame = random_frame(rng)
        elif r < 0.15:
            frame = rng.choice(base)  # valid frames keep state moving
        else:
            frame = mutate(rng.choice(base), rng, base)
        try:
            replies += len(host.handle_frame(frame, now))
        except Exception:
            if len(exceptions) < 20:
                exceptions.append(f"{frame.hex()}\n{traceback.format_exc()}")
            else:
                exceptions.append("")
        now += 0.001
        if i % 64 == 0:
            try:
                while (d := host.next_deadline()) is not None and d <= now:
                    replies += len(host.handle_timer(d))
            except Exception:
                exceptions.append(f"timer\n{traceback.format_exc()}")
        if progress and i and i % step == 0:
            print(f"  {i} frames, {len(exceptions)} exceptions", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    drops = Counter({k[5:]: v for k, v in host.counters.items() if k.startswith("drop.") and v})
    return {
        "frames": frames,
        "seed": seed,
        "exceptions": len(exceptions),
        "exception_samples": [e for e in exceptions if e][:5],
        "replies_sent": replies,
        "elapsed_s": round(elapsed, 3),
        "frames_per_s": round(frames / elapsed, 1) if elapsed else 0.0,
        "drops": dict(drops.most_common()),
        "neighbor_cache": len(host.nud),
        "reassembly_datagrams": len(host.reassembler.datagrams),
        "tcp_conns": len(host.tcp.conns),
        "addresses": len(host.addrconf.entries),
        "counters": dict(sorted(host.counters.items())),
    }


def _fps(host: Ipv6Host, batches: list[list[bytes]], now: float,
         budget: float) -> tuple[float, float]:
    """Frames/s of ``host`` over ``batches`` (cycled) for about ``budget`` seconds."""
    n = 0
    i = 0
    t0 = time.perf_counter()
    elapsed = 0.0
    while elapsed < budget or n < 64:
        for f in batches[i % len(batches)]:
            host.handle_frame(f, now)
        n += len(batches[i % len(batches)])
        i += 1
        now += 0.0005
        if i % 32 == 0:
            while (d := host.next_deadline()) is not None and d <= now:
                host.handle_timer(d)
            elapsed = time.perf_counter() - t0
    return n / (time.perf_counter() - t0), now


def probe_costs(budget: float = 0.1, names: list[str] | None = None) -> dict[str, object]:
    """Bounded work per frame: each conformance probe (bench/probes.py) fed to a host for
    ``budget`` seconds, against an ordinary Echo Request of the same frame size (the same
    host, the same run). The ratio of the costliest probe is the figure of merit (>= 1/3)."""
    from bench.probes import CATALOGUE, Ends, echo, eth, ip6

    ends = Ends(PEER_LL, PEER_MAC, HOST_LL, HOST_MAC)
    rows = []
    now = 2.0
    for p in CATALOGUE:
        if names and not any(p.name.startswith(x) for x in names):
            continue
        host = fuzz_host()
        host.nud.on_lladdr(PEER_LL, PEER_MAC, 1.9)
        batches = [p.build(ends, 0x1000 + k) for k in range(64)]
        size = sum(len(f) for f in batches[0]) // len(batches[0])
        data = bytes(max(0, size - ETH_LEN - IP6_LEN - 8))
        plain = [[eth(PEER_MAC, HOST_MAC, ip6(PEER_LL, HOST_LL, NH_ICMPV6, echo(ends, data)))]]
        fps, now = _fps(host, batches, now, budget)
        base, now = _fps(host, plain, now, budget)
        rows.append({"probe": p.name, "frame_bytes": size, "probe_fps": round(fps),
                     "echo_fps": round(base), "ratio": round(fps / base, 3)})
    worst = min(rows, key=lambda r: float(r["ratio"]))  # type: ignore[arg-type]
    return {"budget_s": budget, "probes": rows, "costliest": worst}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fuzz.json")
    ap.add_argument("--probe-costs", action="store_true",
                    help="instead: frames/s of every conformance probe against an echo "
                         "request of the same size (bounded work per frame)")
    args = ap.parse_args(argv)
    if args.probe_costs:
        costs = probe_costs()
        rows = costs["probes"]
        assert isinstance(rows, list)
        for r in sorted(rows, key=lambda r: r["ratio"])[:10]:
            print(f"  {r['probe']:32} {r['frame_bytes']:5} B  {r['probe_fps']:>8} frames/s  "
                  f"echo {r['echo_fps']:>8} frames/s  ratio {r['ratio']}")
        w = costs["costliest"]
        assert isinstance(w, dict)
        print(f"costliest probe {w['probe']}: {w['probe_fps']} frames/s vs an echo request of "
              f"{w['frame_bytes']} B at {w['echo_fps']} frames/s (ratio {w['ratio']})")
        out = args.out.with_name("probe_costs.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(costs, indent=2) + "\n")
        print(f"saved {out}")
        return 0 if float(w["ratio"]) >= 1 / 3 else 1
    if args.frames < 1:
        ap.error("--frames must be >= 1")
    res = run(args.frames, args.seed)
    print(f"frames       {res['frames']}")
    print(f"exceptions   {res['exceptions']}")
    print(f"replies sent {res['replies_sent']}")
    print(f"frames/s     {res['frames_per_s']}")
    print("drops by reason:")
    drops = res["drops"]
    assert isinstance(drops, dict)
    for k, v in drops.items():
        print(f"  {k:24} {v}")
    samples = res["exception_samples"]
    assert isinstance(samples, list)
    for s in samples:
        print(s, file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"saved {args.out}")
    return 1 if res["exceptions"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
