"""ICMPv6 (RFC 4443) on the host: echo, the error rules of §2.4 (e), the token bucket (f),
errors received."""

from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6ND_Redirect,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tcpip6.stack.context import EVENTS_KEPT
from tcpip6.stack.host import ECHO_REPLIES_KEPT, Ipv6Host
from tcpip6.stack.icmp import TokenBucket, invokes_error
from tcpip6.wire import icmpv6
from tests.tcpip6.stack6_helpers import (
    HOST_GLOBAL,
    HOST_LL,
    HOST_SN,
    PEER_LL,
    PEER_MAC_S,
    a,
    advance,
    checksums_ok,
    drops,
    to_host,
    up_host,
)

PEER_G = "2001:db8:1::aa"


@pytest.fixture
def host() -> Ipv6Host:
    h = up_host(max_rtr_solicitations=0)
    h.add_address(a(HOST_GLOBAL), now=1.5)
    advance(h, 3.0)
    for src, tgt in ((PEER_LL, HOST_LL), (PEER_G, HOST_GLOBAL)):
        na = h.handle_frame(
            to_host(IPv6(src=src, dst=HOST_SN, hlim=255) / ICMPv6ND_NS(tgt=tgt)
                    / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_S)), 3.0,
        )  # fmt: skip
        assert len(na) == 1
    h.counters.clear()
    return h


@pytest.mark.parametrize(
    ("src", "dst", "reply_src"),
    [
        (PEER_LL, HOST_LL, HOST_LL),
        (PEER_G, HOST_GLOBAL, HOST_GLOBAL),
        (PEER_LL, HOST_GLOBAL, HOST_GLOBAL),  # from the address the request went to (§4.2)
        (PEER_LL, "ff02::1", HOST_LL),  # multicast: a unicast address of the interface
        (PEER_G, "ff02::1", HOST_GLOBAL),  # ... the RFC 6724 choice for the requester
        (PEER_LL, HOST_SN, HOST_LL),  # any joined group
    ],
)
def test_echo_reply(host: Ipv6Host, src: str, dst: str, reply_src: str) -> None:
    data = bytes(range(200))
    out = host.handle_frame(
        to_host(IPv6(src=src, dst=dst, hlim=7) / ICMPv6EchoRequest(id=0xBEEF, seq=3, data=data)),
        4.0,
    )
    p = checksums_ok(out[0])
    assert (p[IPv6].src, p[IPv6].dst, p[IPv6].hlim) == (reply_src, src, 64)
    assert (p[ICMPv6EchoReply].id, p[ICMPv6EchoReply].seq, p[ICMPv6EchoReply].data) == (
        0xBEEF, 3, data,
    )  # fmt: skip
    assert p.dst == PEER_MAC_S
    assert host.counters["echo_replies"] == 1


def test_echo_from_unspecified_is_dropped(host: Ipv6Host) -> None:
    assert host.handle_frame(to_host(IPv6(src="::", dst=HOST_LL) / ICMPv6EchoRequest()), 4) == []
    assert drops(host) == {"drop.BAD_SOURCE": 1}


def udp_to_closed(src: str = PEER_LL, dst: str = HOST_LL, dst_mac: str | None = None) -> bytes:
    return to_host(IPv6(src=src, dst=dst) / UDP(sport=4000, dport=9) / b"q", dst_mac=dst_mac)


def test_error_source_is_the_invoking_destination(host: Ipv6Host) -> None:
    out = host.handle_frame(udp_to_closed(PEER_LL, HOST_GLOBAL), 4.0)
    p = checksums_ok(out[0])
    assert p[IPv6].src == HOST_GLOBAL and p[ICMPv6DestUnreach].code == 4
    quoted = IPv6(bytes(p[ICMPv6DestUnreach].payload))
    assert quoted[UDP].dport == 9 and quoted.src == PEER_LL


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (udp_to_closed(dst="ff02::1"), "multicast destination (e.3)"),
        (udp_to_closed(dst_mac="ff:ff:ff:ff:ff:ff"), "link-layer broadcast (e.5)"),
        (udp_to_closed(dst_mac="33:33:00:00:00:01"), "link-layer multicast (e.4)"),
    ],
)
def test_no_error_for_multicast_or_broadcast(host: Ipv6Host, frame: bytes, why: str) -> None:
    assert host.handle_frame(frame, 4.0) == [], why
    assert host.counters["icmp.errors_suppressed"] == 1
    assert host.counters["drop.PORT_UNREACHABLE"] == 1


def test_token_bucket_rate_limit(host: Ipv6Host) -> None:
    sent = sum(len(host.handle_frame(udp_to_closed(), 4.0)) for _ in range(25))
    assert sent == 10  # the burst
    assert host.counters["drop.RATE_LIMITED"] == 15
    assert sum(len(host.handle_frame(udp_to_closed(), 4.25)) for _ in range(5)) == 2  # 10/s
    assert sum(len(host.handle_frame(udp_to_closed(), 100.0)) for _ in range(30)) == 10


def test_token_bucket_unit() -> None:
    b = TokenBucket(rate=2.0, burst=3)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.take(0.5) and not b.take(0.5)
    assert not b.take(0.4)  # time going backwards adds nothing
    assert b.take(10.0) and b.tokens == 2.0


def test_invokes_error_walks_the_chain() -> None:
    err = bytes(IPv6() / ICMPv6DestUnreach())
    assert invokes_error(err)
    assert not invokes_error(bytes(IPv6() / ICMPv6EchoRequest()))
    assert invokes_error(bytes(IPv6() / Raw(bytes([137]) + bytes(39)))) is False  # nh 59
    assert invokes_error(bytes(IPv6() / IPv6ExtHdrDestOpt() / ICMPv6ND_Redirect()))
    assert invokes_error(bytes(IPv6() / IPv6ExtHdrFragment(offset=0, m=1) / ICMPv6DestUnreach()))
    assert not invokes_error(bytes(IPv6() / IPv6ExtHdrFragment(offset=8) / ICMPv6DestUnreach()))
    assert not invokes_error(b"\x60")


def test_received_errors(host: Ipv6Host) -> None:
    sock = host.udp_socket(5555)
    sock.sendto(b"x", (a(PEER_LL), 9), 4.0)
    quoted = IPv6(src=HOST_LL, dst=PEER_LL) / UDP(sport=5555, dport=9) / b"x"
    err = to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6DestUnreach(code=4) / quoted)
    assert host.handle_frame(err, 4.1) == []
    assert len(sock.errors) == 1 and sock.errors[0].code == 4
    foreign = IPv6(src="fe80::77", dst=PEER_LL) / UDP(sport=5555, dport=9)
    host.handle_frame(
        to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6DestUnreach() / foreign), 4.2
    )
    assert host.counters["icmp.errors_not_ours"] == 1 and len(sock.errors) == 1


@pytest.mark.parametrize("icmp_type", [100, 200])
def test_unknown_types_dropped(host: Ipv6Host, icmp_type: int) -> None:
    body = icmpv6.message(a(PEER_LL), a(HOST_LL), icmp_type, 0, bytes(8))
    frame = to_host(IPv6(src=PEER_LL, dst=HOST_LL, nh=58) / Raw(body))
    assert host.handle_frame(frame, 4.0) == []
    assert drops(host) == {"drop.UNSUPPORTED": 1}


def test_ping_api_records_replies(host: Ipv6Host) -> None:
    out = host.ping(a(PEER_LL), 4.0, 9, 1, b"hi")
    req = checksums_ok(out[0])
    assert req[ICMPv6EchoRequest].data == b"hi" and req[IPv6].src == HOST_LL
    reply = to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6EchoReply(id=9, seq=1, data=b"hi"))
    host.handle_frame(reply, 4.01)
    rec = host.echo_replies.pop(0)
    assert (rec.src, rec.ident, rec.seq, rec.data, rec.now) == (a(PEER_LL), 9, 1, b"hi", 4.01)


def test_recorded_replies_and_events_keep_only_the_latest(host: Ipv6Host) -> None:
    for seq in range(ECHO_REPLIES_KEPT + 5):
        reply = to_host(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6EchoReply(id=9, seq=seq))
        host.handle_frame(reply, 4.0)
    assert len(host.echo_replies) == ECHO_REPLIES_KEPT
    assert host.echo_replies[0].seq == 5 and host.echo_replies[-1].seq == ECHO_REPLIES_KEPT + 4
    host.pop_events()
    for i in range(EVENTS_KEPT + 3):
        host._ctx.event(5.0 + i, "test")
    events = host.pop_events()
    assert len(events) == EVENTS_KEPT and events[0].now == 8.0
    assert host.counters["event.test"] == EVENTS_KEPT + 3 and host.pop_events() == []


def test_sent_error_is_framed_for_the_requester(host: Ipv6Host) -> None:
    out = host.handle_frame(udp_to_closed(), 4.0)
    assert Ether(out[0]).dst == PEER_MAC_S
