"""Ipv6Host as a whole: two hosts and a router on one wire, the emulated Linux peer, hostile
input, the cost of a frame that is not for us, and the driver-facing API."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6ND_RA, IPv6

from tcpip6.stack.addrconf import AddrOrigin, AddrState
from tcpip6.stack.context import HostConfig
from tcpip6.stack.host import Ipv6Host
from tcpip6.stack.ipv6responder import Ipv6Responder
from tcpip6.stack.peer import PeerPort
from tcpip6.wire import icmpv6, ipv6
from tcpip6.wire.ethernet import ETHERTYPE_IPV6, pack_header
from tcpip6.wire.icmpv6 import PrefixInfo
from tcpip6.wire.ipv6 import ALL_NODES, NH_ICMPV6
from tests.tcpip6.stack6_helpers import (
    HOST_LL,
    HOST_MAC,
    PEER_LL,
    PEER_MAC,
    Wire,
    a,
    advance,
    new_host,
    to_host,
    up_host,
)

MAC_B = bytes.fromhex("020000000b0b")
ROUTER_MAC = bytes.fromhex("020000000001")
ROUTER = a("fe80::1")


class Router:
    """Just enough of a router: answers RS with an RA carrying one prefix."""

    def __init__(self) -> None:
        self.ra = pack_header(b"\x33\x33\x00\x00\x00\x01", ROUTER_MAC, ETHERTYPE_IPV6) + (
            ipv6.packet(
                ROUTER, ALL_NODES, NH_ICMPV6, 255,
                icmpv6.router_advertisement(
                    ROUTER, ALL_NODES, src_lladdr=ROUTER_MAC, prefixes=(
                        PrefixInfo(64, True, True, 86400, 14400, a("2001:db8:7::")),
                    ),
                ),
            )
        )  # fmt: skip
        self.rs_seen = 0

    def handle_frame(self, frame: bytes, now: float) -> list[bytes]:
        if frame[12:14] == b"\x86\xdd" and len(frame) > 54 and frame[54] == icmpv6.RS:
            self.rs_seen += 1
            return [self.ra]
        return []


def test_two_hosts_and_a_router_configure_and_talk() -> None:
    cfg = HostConfig()  # real start-up delays
    h1 = Ipv6Host(HOST_MAC, rng=random.Random(11), config=cfg)
    h2 = Ipv6Host(MAC_B, rng=random.Random(12), config=cfg)
    router = Router()
    w = Wire([h1, h2, router])
    w.send(0, h1.start(0.0))
    w.send(1, h2.start(0.0))
    w.run(5.0)
    # the first RS is answered with a multicast RA that stops every host's solicitations
    assert router.rs_seen >= 1
    assert h1.counters["nd.rs_sent"] + h2.counters["nd.rs_sent"] == router.rs_seen <= 2
    assert not h1.router.soliciting and not h2.router.soliciting
    g1 = [x.address for x in h1.addresses if x.origin is AddrOrigin.SLAAC]
    g2 = [x.address for x in h2.addresses if x.origin is AddrOrigin.SLAAC]
    assert len(g1) == 1 == len(g2)
    assert h1.address_state(g1[0]) is AddrState.PREFERRED
    # global to global, 3000 bytes: resolution, fragmentation and reassembly both ways
    w.send(0, h1.ping(g2[0], w.now, 1, 1, bytes(3000)))
    w.run(w.now + 1.0)
    rep = h1.echo_replies.pop(0)
    assert (rep.src, len(rep.data)) == (g2[0], 3000)
    # UDP to the echo service of the other host
    sock = h2.udp_socket()
    w.send(1, sock.sendto(b"udp!", (g1[0], 7), w.now))
    w.run(w.now + 1.0)
    m = sock.recv()
    assert m is not None and (m.data, m.src, m.src_port) == (b"udp!", g1[0], 7)
    w.run(w.now + 120.0)  # idle: NUD and MLD quiet down without errors
    assert h1.counters["nud.failed"] == 0 and h2.counters["nud.failed"] == 0


def test_against_the_emulated_linux_peer() -> None:
    host = up_host()
    peer = PeerPort(PEER_MAC)
    w = Wire([host, peer], now=2.0)
    w.send(1, peer.ping6(a(HOST_LL), 2.0, 0x77, 1, b"abc"))
    w.run(2.5)
    assert [(r.family, r.ident, r.seq) for r in peer.pop_replies()] == [(6, 0x77, 1)]
    w.send(1, peer.ping6(ALL_NODES, w.now, 0x77, 2))
    w.run(3.0)
    assert [r.seq for r in peer.pop_replies()] == [2]


def test_ipv6_responder_still_exists_and_agrees_on_the_multicast_list() -> None:
    old = Ipv6Responder(HOST_MAC, 1500)
    new = Ipv6Host(HOST_MAC, 1500)
    assert old.multicast_macs() == new.multicast_macs()
    assert old.link_local == new.link_local == a(HOST_LL)


def test_api_lifecycle() -> None:
    h = new_host()
    assert h.next_deadline() is None and h.handle_timer(5.0) == []
    assert h.started is False and h.address_state(a(HOST_LL)) is AddrState.TENTATIVE
    first = h.start(0.0)
    assert first and h.start(0.0) == []  # idempotent
    assert h.next_deadline() is not None
    advance(h, 2.0)
    assert "fe80::215:5dff:fe01:203/64 preferred" in repr(h.addresses[0])
    assert [e.kind for e in h.pop_events()] == ["address.assigned"] and h.pop_events() == []
    assert h.mtu == 1500
    with pytest.raises(ValueError):
        Ipv6Host(HOST_MAC, 1000)
    with pytest.raises(ValueError):
        h.join_group(a("2001:db8::1"), 1.0)


def test_tx_counter_counts_every_returned_frame() -> None:
    h = new_host()
    n = len(h.start(0.0))
    n += len(advance(h, 30.0))
    assert h.counters["tx"] == n > 0


def _echo() -> bytes:
    return to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6EchoRequest(data=b"x" * 24))


def test_truncated_at_every_length_is_counted() -> None:
    h = up_host()
    frame = _echo()
    h.counters.clear()
    for n in range(len(frame)):
        assert h.handle_frame(frame[:n], 3.0) == []
    total = sum(v for k, v in h.counters.items() if k.startswith("drop."))
    assert total == len(frame) == h.counters["rx"]


def test_every_single_bit_flip_never_raises() -> None:
    h = up_host()
    frame = bytes(
        to_host(IPv6(src=PEER_LL, dst="ff02::1:ff01:203", hlim=255)
                / ICMPv6ND_NS(tgt=HOST_LL))
    )  # fmt: skip
    for i in range(len(frame) * 8):
        b = bytearray(frame)
        b[i // 8] ^= 1 << (i % 8)
        h.handle_frame(bytes(b), 3.0)
    assert h.counters["rx"] == len(frame) * 8
    assert h.counters["drop.BAD_CHECKSUM"] > 8 * 32


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"\x33\x33\x00\x00\x00\x01", HOST_MAC]))
def test_random_bytes_never_raise(data: bytes, dst: bytes) -> None:
    h = Ipv6Host(HOST_MAC, config=HostConfig(dad_transmits=0, startup_delay=False))
    h.start(0.0)
    h.handle_frame(dst + PEER_MAC + b"\x86\xdd" + data, 1.0)
    h.handle_frame(dst + PEER_MAC + b"\x86\xdd\x60" + data, 1.0)
    assert h.counters["rx"] == 2


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=8, max_size=200), st.integers(0, 255))
def test_random_extension_chains_never_raise(data: bytes, nh: int) -> None:
    h = Ipv6Host(HOST_MAC, config=HostConfig(dad_transmits=0, startup_delay=False))
    h.start(0.0)
    frame = to_host(IPv6(src=PEER_LL, dst=HOST_LL, nh=nh) / data)
    h.handle_frame(frame, 1.0)
    assert h.counters["rx"] == 1


def test_frame_not_for_us_is_rejected_in_microseconds() -> None:
    h = up_host()
    other = bytes.fromhex("0200000000ee") + PEER_MAC + b"\x86\xdd" + bytes(100)
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        h.handle_frame(other, 3.0)
    per = (time.perf_counter() - t0) / n
    assert h.counters["drop.NOT_FOR_US"] == n
    assert per < 20e-6, f"{per * 1e6:.2f} µs per frame"


def test_ra_is_ignored_when_configured_so() -> None:
    h = up_host(accept_ra=False)
    ra = to_host(IPv6(src="fe80::1", dst="ff02::1", hlim=255) / ICMPv6ND_RA())
    assert h.handle_frame(ra, 3.0) == []
    assert h.router.routers == {} and h.counters["nd.ra_ignored"] == 1
