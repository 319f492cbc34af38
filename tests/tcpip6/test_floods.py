"""Floods are handled with bounded memory while a legitimate ping keeps being answered.

Each test feeds a flood in virtual time to a host from :func:`bench.fuzz.fuzz_host`; every
``PING_EVERY`` flood frames a PeerPort pings the host and must get its Echo Reply, and after every
frame the bounded structures are checked against the limits in the host's HostConfig
(:func:`tests.tcpip6.hardening_helpers.check_bounds`; the limits are read, not hard-coded).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from bench.fuzz import HOST_LL, HOST_MAC, PEER_LL, PEER_MAC, TCP_PORT, fuzz_host
from tcpip6.stack.context import HostConfig, TcpConfig
from tcpip6.stack.host import Ipv6Host
from tcpip6.wire import icmpv6, tcp, udp
from tcpip6.wire.ethernet import ETHERTYPE_IPV6, ipv6_multicast_mac, pack_header
from tcpip6.wire.ipv6 import (
    ALL_NODES,
    NH_FRAGMENT,
    NH_ICMPV6,
    NH_TCP,
    NH_UDP,
    Ipv6Header,
    packet,
    solicited_node,
)
from tcpip6.wire.ipv6ext import fragment_header
from tests.tcpip6.hardening_helpers import check_bounds, new_peer, ping

PING_EVERY = 50
FLOOD = 2000
DT = 0.001  # virtual seconds between flood frames (1000 frames/s)

Gen = Callable[[random.Random, int], bytes]


def _mac(rng: random.Random) -> bytes:
    return bytes((0x02,)) + rng.randbytes(5)  # locally administered unicast


def _ll(rng: random.Random) -> bytes:
    return bytes.fromhex("fe80000000000000") + rng.randbytes(8)


def _frame(src_mac: bytes, src: bytes, dst: bytes, nh: int, body: bytes, hlim: int = 64) -> bytes:
    dst_mac = ipv6_multicast_mac(dst) if dst[0] == 0xFF else HOST_MAC
    return pack_header(dst_mac, src_mac, ETHERTYPE_IPV6) + packet(src, dst, nh, hlim, body)


def _flood(host: Ipv6Host, gen: Gen, *, n: int = FLOOD, seed: int = 7) -> tuple[float, int]:
    """Feed ``n`` flood frames, a legitimate ping every PING_EVERY; return (now, replies)."""
    rng = random.Random(seed)
    peer = new_peer()
    now = 2.0
    ok, now = ping(host, peer, now, 0)
    assert ok
    replies = 0
    seq = 1
    for i in range(n):
        host.handle_frame(gen(rng, i), now)
        check_bounds(host)
        now += DT
        while (d := host.next_deadline()) is not None and d <= now:
            host.handle_timer(d)
            check_bounds(host)
        if i % PING_EVERY == PING_EVERY - 1:
            ok, now = ping(host, peer, now, seq)
            assert ok, f"ping {seq} unanswered after {i + 1} flood frames"
            replies += 1
            seq += 1
    return now, replies


# --- (a) neighbor cache exhaustion ------------------------------------------------------------


def test_ns_flood_from_random_sources_keeps_cache_bounded() -> None:
    host = fuzz_host(HostConfig(startup_delay=False, neighbor_cache_size=64))
    sn = solicited_node(HOST_LL)

    def gen(rng: random.Random, i: int) -> bytes:
        mac, src = _mac(rng), _ll(rng)
        target = HOST_LL if i % 2 else _ll(rng)  # ours (creates a STALE entry) or random
        ns = icmpv6.neighbor_solicitation(src, sn, target, mac)
        return _frame(mac, src, sn, NH_ICMPV6, ns, 255)

    _, replies = _flood(host, gen)
    assert replies == FLOOD // PING_EVERY
    assert host.counters["nud.evicted"] > 0
    assert len(host.nud) <= host.config.neighbor_cache_size


def test_packets_from_random_on_link_sources_bound_incomplete_entries() -> None:
    """Echo Requests from random link-local sources: each reply needs resolution (INCOMPLETE
    entry, queued packet, multicast NS); the cache and each queue stay bounded."""
    host = fuzz_host(HostConfig(startup_delay=False, neighbor_cache_size=32, neighbor_queue_len=2))

    def gen(rng: random.Random, i: int) -> bytes:
        src = _ll(rng) if i % 4 else bytes.fromhex("fe80000000000000000000000000beef")
        echo = icmpv6.echo_request(src, HOST_LL, 7, i & 0xFFFF, b"flood")
        return _frame(_mac(rng), src, HOST_LL, NH_ICMPV6, echo)

    _flood(host, gen)
    assert host.counters["nud.evicted"] > 0
    beef = host.nud.get(bytes.fromhex("fe80000000000000000000000000beef"))
    assert beef is None or len(beef.queue) <= host.config.neighbor_queue_len


# --- (b) RA flood with random prefixes ---------------------------------------------------------


def test_ra_flood_with_random_prefixes_and_routers() -> None:
    host = fuzz_host(HostConfig(startup_delay=False, max_routers=4, max_prefixes=8,
                                max_addresses=6))  # fmt: skip

    def gen(rng: random.Random, i: int) -> bytes:
        mac, src = _mac(rng), _ll(rng)
        prefixes = tuple(
            icmpv6.PrefixInfo(64, True, True, 86400, 14400, rng.randbytes(8) + bytes(8))
            for _ in range(rng.randint(1, 4))
        )
        ra = icmpv6.router_advertisement(
            src, ALL_NODES, router_lifetime=1800, src_lladdr=mac, prefixes=prefixes
        )
        return _frame(mac, src, ALL_NODES, NH_ICMPV6, ra, 255)

    now, _ = _flood(host, gen, n=1000)
    cfg = host.config
    assert len(host.router.routers) == cfg.max_routers
    assert len(host.router.prefixes) <= cfg.max_prefixes
    assert host.counters["slaac.table_full"] > 0
    # the DAD of every SLAAC address ends; the host is still fine
    while (d := host.next_deadline()) is not None and d <= now + 5:
        host.handle_timer(d)
    check_bounds(host)


# --- (c) overlapping and tiny fragments --------------------------------------------------------


def test_overlapping_and_tiny_fragment_flood() -> None:
    host = fuzz_host(HostConfig(startup_delay=False, reassembly_max_datagrams=16,
                                reassembly_max_bytes=16 * 1024))  # fmt: skip

    def gen(rng: random.Random, i: int) -> bytes:
        src = PEER_LL if i % 3 else _ll(rng)
        ident = rng.randrange(64) if i % 2 else rng.getrandbits(32)
        off = rng.randrange(0, 8000, 8)
        size = rng.choice((8, 8, 16, 1024))  # tiny pieces and a few big ones
        more = rng.random() < 0.9
        body = fragment_header(NH_UDP, off, more, ident) + rng.randbytes(size)
        return _frame(PEER_MAC, src, HOST_LL, NH_FRAGMENT, body)

    _flood(host, gen)
    c = host.counters
    assert c["drop.FRAG_OVERLAP"] > 0  # RFC 5722: an overlap discards the whole datagram
    assert c["drop.REASSEMBLY_FULL"] > 0


def test_overlap_discards_datagram_rfc5722() -> None:
    """RFC 5722 §4: overlapping fragments discard the whole datagram, later pieces too."""
    host = fuzz_host()
    echo = icmpv6.echo_request(PEER_LL, HOST_LL, 1, 1, bytes(64))
    parts = [(0, True, echo[:32]), (24, True, echo[24:48]), (48, False, echo[48:])]
    out: list[bytes] = []
    for off, more, data in parts:
        body = fragment_header(NH_ICMPV6, off, more, 0x55) + data
        out += host.handle_frame(_frame(PEER_MAC, PEER_LL, HOST_LL, NH_FRAGMENT, body), 2.0)
    assert not out
    assert host.counters["drop.FRAG_OVERLAP"] == 1
    assert host.counters["frag.reassembled"] == 0
    # the piece after the overlap starts a datagram that can never complete; it goes at the
    # reassembly timeout (RFC 8200 §4.5) without an ICMP error (no first fragment)
    now = 2.0 + host.config.reassembly_timeout + 1
    out = []
    while (d := host.next_deadline()) is not None and d <= now:
        out += host.handle_timer(d)
    assert not host.reassembler.datagrams
    assert host.reassembler.nbytes == 0


# --- (d) SYN flood -----------------------------------------------------------------------------


def _syn(src: bytes, sport: int, seq: int) -> bytes:
    seg = tcp.build(src, HOST_LL, sport, TCP_PORT, seq, 0, tcp.SYN, 65535, tcp.options(mss=1440))
    return _frame(PEER_MAC, src, HOST_LL, NH_TCP, seg)


def _handshake(host: Ipv6Host, now: float, sport: int) -> bool:
    """A legitimate active open from the peer: SYN, the host's SYN-ACK, our ACK."""
    for f in host.handle_frame(_syn(PEER_LL, sport, 1000), now):
        ip, body = Ipv6Header.parse(memoryview(f)[14:])
        if ip.next_header != NH_TCP:
            continue
        seg = tcp.parse(ip.src, ip.dst, body[: ip.payload_length])
        if seg.flags & (tcp.SYN | tcp.ACK) == tcp.SYN | tcp.ACK and seg.dst_port == sport:
            ack = tcp.build(PEER_LL, HOST_LL, sport, TCP_PORT, 1001, seg.seq + 1, tcp.ACK, 65535)
            host.handle_frame(_frame(PEER_MAC, PEER_LL, HOST_LL, NH_TCP, ack), now)
            return True
    return False


def test_syn_flood_bounded_and_listener_still_accepts() -> None:
    host = fuzz_host(HostConfig(startup_delay=False, tcp=TcpConfig(syn_backlog=32)))
    listener = host.tcp.listeners[TCP_PORT]

    def gen(rng: random.Random, i: int) -> bytes:
        src = _ll(rng) if i % 2 else PEER_LL  # spoofed on-link sources and the peer's address
        return _syn(src, rng.randrange(1024, 65536), rng.getrandbits(32))

    now, _ = _flood(host, gen)
    assert len(listener.embryonic) <= host.config.tcp.syn_backlog
    assert host.counters["drop.BACKLOG_FULL"] > 0
    # after the flood the embryonic connections time out (SYN-ACK retries) and a real client
    # gets in: the peer retries its SYN every few seconds, as a TCP client would
    peer = new_peer()
    for sport in range(40000, 40060):
        now += 3.0
        while (d := host.next_deadline()) is not None and d <= now:
            host.handle_timer(d)
            check_bounds(host)
        ok, now = ping(host, peer, now, sport)  # also re-resolves the peer (NUD)
        assert ok
        if _handshake(host, now, sport):
            break
    conn = listener.accept()
    assert conn is not None and conn.remote_port == sport


# --- (e) ICMPv6 error rate limit ---------------------------------------------------------------


def test_closed_port_flood_is_rate_limited() -> None:
    host = fuzz_host()
    sent = 0

    def gen(rng: random.Random, i: int) -> bytes:
        dg = udp.datagram(PEER_LL, HOST_LL, 5000 + (i & 0xFF), 9999, b"x")
        return _frame(PEER_MAC, PEER_LL, HOST_LL, NH_UDP, dg)

    rng = random.Random(3)
    ok, start = ping(host, new_peer(), 2.0, 0)  # resolves the peer: errors go out at once
    assert ok
    now = start
    for i in range(FLOOD):
        for f in host.handle_frame(gen(rng, i), now):
            ip, _ = Ipv6Header.parse(memoryview(f)[14:])
            msg = bytes(f[14 + 40 : 14 + 41])
            sent += ip.next_header == NH_ICMPV6 and msg == bytes((icmpv6.DEST_UNREACH,))
        now += DT
    cfg = host.config
    assert sent <= cfg.icmp_error_burst + cfg.icmp_error_rate * (now - start) + 1
    assert sent >= cfg.icmp_error_burst
    assert host.counters["drop.RATE_LIMITED"] >= FLOOD - sent
    # and legitimate pings are answered throughout a second flood with pings interleaved
    _flood(host, gen, seed=4)


def test_syn_flood_with_a_sane_backlog_accepts_during_the_flood() -> None:
    """With syn_backlog above what the flood fills, a real client connects mid-flood."""
    host = fuzz_host(HostConfig(startup_delay=False, tcp=TcpConfig(syn_backlog=FLOOD + 64)))
    listener = host.tcp.listeners[TCP_PORT]
    peer = new_peer()
    rng = random.Random(11)
    ok, now = ping(host, peer, 2.0, 0)
    assert ok
    for i in range(FLOOD):
        host.handle_frame(_syn(PEER_LL, 1024 + i, rng.getrandbits(32)), now)
        now += DT
        if i == FLOOD // 2:
            assert _handshake(host, now, 40000)
            conn = listener.accept()
            assert conn is not None and conn.remote_port == 40000
    check_bounds(host)
    assert len(listener.embryonic) <= host.config.tcp.syn_backlog
