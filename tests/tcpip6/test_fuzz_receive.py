"""Hypothesis fuzzing of the whole receive path of Ipv6Host and of every codec in tcpip6.wire.

Frames come from a corpus of valid ones (:func:`bench.fuzz.corpus`, built with the codecs),
mutated by hypothesis-chosen operations (bit flips, byte replacements, truncation, length-field
lies, inserted/deleted bytes, random bytes) with the upper-layer checksum sometimes recomputed
so the mutation reaches the parsers behind it. Properties: ``handle_frame`` / ``handle_timer``
never raise; counters only grow; every bounded structure stays within its HostConfig limit;
after the fuzz the host still answers a legitimate ping from a PeerPort.
"""

from __future__ import annotations

import contextlib
import random
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import (
    ETH_LEN,
    HOST_LL,
    HOST_MAC,
    PEER_LL,
    PEER_MAC,
    corpus,
    fix_checksum,
    fuzz_host,
    mutate,
    random_frame,
)
from tcpip6.errors import MalformedFrame
from tcpip6.wire import arp, ethernet, icmpv6, ipv4, ipv6ext, mld, tcp, udp
from tcpip6.wire.ethernet import ETHERTYPE_IPV6, pack_header
from tcpip6.wire.ipv6 import NH_ICMPV6, Ipv6Header, packet
from tests.tcpip6.hardening_helpers import assert_grew, check_bounds, new_peer, ping_ok

CORPUS = corpus()
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # fmt: skip

# one mutation: (kind, position fraction, value)
_op = st.tuples(
    st.sampled_from(["flip", "byte", "trunc", "lenlie", "insert", "delete", "nh"]),
    st.floats(0.0, 1.0, allow_nan=False),
    st.integers(0, 0xFFFF),
)


def _apply(frame: bytes, ops: list[tuple[str, float, int]], fix: bool) -> bytes:
    b = bytearray(frame)
    for kind, where, value in ops:
        n = len(b)
        i = min(n - 1, int(where * n)) if n else 0
        if kind == "flip" and n:
            b[i] ^= 1 << (value & 7)
        elif kind == "byte" and n:
            b[i] = value & 0xFF
        elif kind == "trunc":
            del b[int(where * (n + 1)) :]
        elif kind == "lenlie" and n >= ETH_LEN + 6:
            # the IPv6 payload length, or a 16-bit field past the IPv6 header
            at = ETH_LEN + 4 if value & 1 else max(ETH_LEN + 40, i) & ~1
            if at + 2 <= n:
                struct.pack_into("!H", b, at, value)
        elif kind == "insert":
            b[i:i] = value.to_bytes(2, "big") * (1 + value % 5)
        elif kind == "delete" and n:
            del b[i : i + 1 + value % 16]
        elif kind == "nh" and n > ETH_LEN + 6:
            b[ETH_LEN + 6] = value & 0xFF
    return fix_checksum(b) if fix else bytes(b)


mutated_frames = st.lists(
    st.builds(
        _apply,
        st.sampled_from(CORPUS),
        st.lists(_op, min_size=1, max_size=4),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


def _feed(frames: list[bytes]) -> None:
    host = fuzz_host()
    peer = new_peer()
    assert ping_ok(host, peer, 2.0, 1)
    now = 2.0
    for f in frames:
        before = Counter(host.counters)
        host.handle_frame(f, now)  # must not raise
        assert_grew(before, host.counters)
        check_bounds(host)
        now += 0.05
        while (d := host.next_deadline()) is not None and d <= now:
            host.handle_timer(d)
    check_bounds(host)
    assert ping_ok(host, peer, now, 2)


@FUZZ
@given(mutated_frames)
def test_mutated_frames_never_raise(frames: list[bytes]) -> None:
    _feed(frames)


@FUZZ
@given(st.lists(st.sampled_from(CORPUS), min_size=1, max_size=60))
def test_valid_corpus_sequences(frames: list[bytes]) -> None:
    """Any order of valid frames (fragments, TCP segments, RAs, queries) is handled."""
    _feed(frames)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=30), st.booleans())
def test_random_bytes_behind_ipv6_ethertype(bodies: list[bytes], v6: bool) -> None:
    frames = []
    for body in bodies:
        b = bytearray(random_frame(random.Random(len(body)))[:ETH_LEN]) + body
        if v6 and len(b) > ETH_LEN:
            b[ETH_LEN] = 0x60 | (b[ETH_LEN] & 0x0F)
        frames.append(bytes(b))
    _feed(frames)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_seeded_mutator_bursts(seed: int) -> None:
    """The bench's mutator (splices, random tails too): 300 frames per example."""
    rng = random.Random(seed)
    _feed([mutate(rng.choice(CORPUS), rng, CORPUS) for _ in range(300)])


def test_every_corpus_frame_is_accepted_somewhere() -> None:
    """The corpus is valid: unmutated frames produce no parse-level drops."""
    host = fuzz_host()
    for f in CORPUS:
        host.handle_frame(f, 2.0)
    bad = {"drop.TRUNCATED", "drop.BAD_CHECKSUM", "drop.BAD_LENGTH", "drop.BAD_VERSION"}
    assert not bad & {k for k, v in host.counters.items() if v}


# --- every codec: only MalformedFrame (or a clean result) for any input ----------------------

_V = memoryview
_SRC, _DST = PEER_LL, HOST_LL


def _icmp(data: bytes) -> icmpv6.Icmpv6Message:
    return icmpv6.parse(_SRC, _DST, data, verify=False)


CODECS: dict[str, Callable[[bytes], Any]] = {
    "ethernet": lambda b: ethernet.EthernetHeader.parse(b),
    "arp": lambda b: arp.ArpPacket.parse(b),
    "ipv4": lambda b: ipv4.Ipv4Header.parse(b),
    "icmpv4": lambda b: ipv4.parse_icmp_echo(ipv4.parse_icmp(b, verify=False)),
    "ipv6": lambda b: Ipv6Header.parse(b),
    "ext_len": lambda b: ipv6ext.ext_len(b, 0, len(b)),
    "scan_options": lambda b: ipv6ext.scan_options(b, 0, len(b), frozenset()),
    "routing": lambda b: ipv6ext.RoutingHeader.parse(b, 0, len(b)),
    "fragment": lambda b: ipv6ext.FragmentHeader.parse(b, 0, len(b)),
    "icmpv6": lambda b: icmpv6.parse(_SRC, _DST, b),
    "echo": lambda b: icmpv6.parse_echo(_icmp(b)),
    "nd_options": lambda b: icmpv6.parse_nd_options(b),
    "ns": lambda b: icmpv6.parse_neighbor_solicitation(_icmp(b)),
    "na": lambda b: icmpv6.parse_neighbor_advertisement(_icmp(b)),
    "rs": lambda b: icmpv6.parse_router_solicitation(_icmp(b)),
    "ra": lambda b: icmpv6.parse_router_advertisement(_icmp(b)),
    "redirect": lambda b: icmpv6.parse_redirect(_icmp(b)),
    "icmp_error": lambda b: icmpv6.parse_error(_icmp(b)),
    "mld_query": lambda b: mld.parse_query(_icmp(b)),
    "mld_report_v2": lambda b: mld.parse_report_v2(_icmp(b)),
    "udp": lambda b: udp.parse(_SRC, _DST, b, verify=False),
    "tcp": lambda b: tcp.parse(_SRC, _DST, b, verify=False),
}

# ICMPv6 bodies from the corpus (after the IPv6 header) seed the codec inputs
_BODIES = [f[ETH_LEN + 40 :] for f in CORPUS] + [f[ETH_LEN:] for f in CORPUS]


@pytest.mark.parametrize("name", sorted(CODECS))
@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=96),
        st.builds(_apply, st.sampled_from(_BODIES), st.lists(_op, max_size=3), st.just(False)),
    )
)
def test_codec_raises_only_malformed(name: str, data: bytes) -> None:
    parse = CODECS[name]
    for buf in (data, bytearray(data), _V(data)):
        with contextlib.suppress(MalformedFrame):
            parse(buf)


# --- regressions found by the fuzzer ---------------------------------------------------------


def test_regression_group_mac_in_lladdr_option_is_dropped() -> None:
    """A solicited NA whose TLLA was mutated to ff:ff:00:00:00:aa put a group MAC in the
    neighbor cache: every reply to the peer then went to a multicast MAC and pings stopped.
    Fixed in tcpip6/wire/icmpv6.py parse_nd_options (RFC 2464 §8: unicast lladdr)."""
    host = fuzz_host()
    peer = new_peer()
    assert ping_ok(host, peer, 2.0, 1)
    bad = b"\xff\xff\x00\x00\x00\xaa"
    na = icmpv6.neighbor_advertisement(
        PEER_LL, HOST_LL, PEER_LL, solicited=True, override=True, tgt_lladdr=bad
    )
    ns = icmpv6.neighbor_solicitation(PEER_LL, HOST_LL, HOST_LL, bad)
    for body in (na, ns):
        frame = _ip_frame(body)
        host.handle_frame(frame, 3.0)
    entry = host.nud.get(PEER_LL)
    assert entry is not None and entry.lladdr == bytes.fromhex("0200000000aa")
    assert host.counters["drop.BAD_OPTION"] == 2
    assert ping_ok(host, peer, 3.0, 2)
    with pytest.raises(MalformedFrame):
        icmpv6.parse_nd_options(icmpv6.lladdr_option(icmpv6.OPT_SOURCE_LLADDR, bad))


def _ip_frame(icmp: bytes) -> bytes:
    return pack_header(HOST_MAC, PEER_MAC, ETHERTYPE_IPV6) + packet(
        PEER_LL, HOST_LL, NH_ICMPV6, 255, icmp
    )
