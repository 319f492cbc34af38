"""UDP on the host: the port 7 echo service (RFC 862), sans-IO sockets, port unreachable,
checksum rules (RFC 8200 §8.1)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import Ether

from tcpip6.errors import SocketError
from tcpip6.stack import constants as c
from tcpip6.stack.host import Ipv6Host
from tcpip6.wire import udp
from tests.tcpip6.stack6_helpers import (
    HOST_LL,
    PEER_LL,
    PEER_MAC_S,
    a,
    checksums_ok,
    drops,
    to_host,
    up_host,
)


def udp_host(**kw: object) -> Ipv6Host:
    """Up, and the peer known from its NS (replies go out at once)."""
    h = up_host(max_rtr_solicitations=0, **kw)
    h.handle_frame(
        to_host(IPv6(src=PEER_LL, dst=HOST_LL, hlim=255) / ICMPv6ND_NS(tgt=HOST_LL)
                / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_S)), 1.9,
    )  # fmt: skip
    h.counters.clear()
    return h


@pytest.fixture
def host() -> Ipv6Host:
    return udp_host()


def dgram(dport: int, data: bytes = b"hello", sport: int = 40000, dst: str = HOST_LL) -> bytes:
    return to_host(IPv6(src=PEER_LL, dst=dst) / UDP(sport=sport, dport=dport) / data)


def test_echo_service(host: Ipv6Host) -> None:
    data = bytes(range(256)) * 3
    out = host.handle_frame(dgram(7, data), 2.0)
    p = checksums_ok(out[0])
    assert (p[IPv6].src, p[IPv6].dst) == (HOST_LL, PEER_LL)
    assert (p[UDP].sport, p[UDP].dport, bytes(p[UDP].payload)) == (7, 40000, data)
    assert host.counters["udp.echo"] == 1


def test_echo_service_refuses_port_7_sources_and_multicast(host: Ipv6Host) -> None:
    assert host.handle_frame(dgram(7, sport=7), 2.0) == []
    assert host.handle_frame(dgram(7, dst="ff02::1"), 2.0) == []
    assert host.counters["udp.echo_refused"] == 2


def test_echo_service_can_be_disabled() -> None:
    h = udp_host(udp_echo=False)
    out = h.handle_frame(dgram(7), 2.0)
    assert Ether(out[0])[ICMPv6DestUnreach].code == 4


def test_closed_port_is_port_unreachable(host: Ipv6Host) -> None:
    frame = dgram(9999, b"nobody")
    out = host.handle_frame(frame, 2.0)
    p = checksums_ok(out[0])
    du = p[ICMPv6DestUnreach]
    assert du.code == 4 and p[IPv6].dst == PEER_LL
    assert bytes(du.payload) == frame[14:]  # the whole invoking packet fits
    assert drops(host) == {"drop.PORT_UNREACHABLE": 1}


def test_zero_and_bad_checksums_dropped_silently(host: Ipv6Host) -> None:
    good = dgram(7)
    zero = bytearray(good)
    zero[14 + 40 + 6 : 14 + 40 + 8] = b"\x00\x00"
    assert host.handle_frame(bytes(zero), 2.0) == []
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    assert host.handle_frame(bytes(bad), 2.0) == []
    assert drops(host) == {"drop.ZERO_CHECKSUM": 1, "drop.BAD_CHECKSUM": 1}


def test_socket_receive_send_and_close(host: Ipv6Host) -> None:
    sock = host.udp_socket(5353)
    assert host.handle_frame(dgram(5353, b"one"), 2.0) == []
    assert host.handle_frame(dgram(5353, b"two"), 2.1) == []
    m = sock.recv()
    assert m is not None and (m.data, m.src, m.src_port, m.dst, m.now) == (
        b"one", a(PEER_LL), 40000, a(HOST_LL), 2.0,
    )  # fmt: skip
    assert sock.recvfrom() == (b"two", (a(PEER_LL), 40000))
    assert sock.recv() is None
    out = sock.sendto(b"back", (a(PEER_LL), 40000), 3.0)
    p = checksums_ok(out[0])
    assert (p[UDP].sport, p[UDP].dport, bytes(p[UDP].payload)) == (5353, 40000, b"back")
    assert p.dst == PEER_MAC_S
    sock.close()
    assert Ether(host.handle_frame(dgram(5353), 4.0)[0]).haslayer(ICMPv6DestUnreach)
    with pytest.raises(SocketError):
        sock.sendto(b"x", (a(PEER_LL), 1), 5.0)


def test_socket_queue_is_bounded() -> None:
    h = udp_host(udp_queue_len=2)
    sock = h.udp_socket(6000)
    for i in range(4):
        h.handle_frame(dgram(6000, bytes([i])), 2.0)
    assert [sock.recv().data for _ in range(2)] == [b"\x00", b"\x01"]  # type: ignore[union-attr]
    assert h.counters["drop.QUEUE_FULL"] == 2


def test_bind_rules(host: Ipv6Host) -> None:
    host.udp_socket(7000)
    with pytest.raises(SocketError):
        host.udp_socket(7000)  # EADDRINUSE
    with pytest.raises(SocketError):
        host.udp_socket(70000)
    eph = {host.udp_socket().port for _ in range(20)}
    assert len(eph) == 20 and all(c.EPHEMERAL_FIRST <= p <= c.EPHEMERAL_LAST for p in eph)
    mine = host.udp_socket(7)  # a bound socket takes over the echo service's port
    host.handle_frame(dgram(7, b"mine"), 2.0)
    assert mine.recv() is not None
    with pytest.raises(SocketError):
        mine.sendto(b"x", (a(PEER_LL), 0), 2.0)


def test_sendto_large_datagram_fragments(host: Ipv6Host) -> None:
    sock = host.udp_socket(6001)
    out = sock.sendto(bytes(4000), (a(PEER_LL), 9), 2.0)
    assert len(out) == 3
    assert host.counters["frag.tx"] == 3 == host.counters["tx"]


def test_sending_to_ourselves_is_refused(host: Ipv6Host) -> None:
    sock = host.udp_socket(6002)
    assert sock.sendto(b"me", (a(HOST_LL), 9), 2.0) == []
    assert drops(host) == {"drop.UNSUPPORTED": 1}


def test_udp_codec_used_by_the_host_matches_scapy() -> None:
    raw = udp.datagram(a(HOST_LL), a(PEER_LL), 7, 40000, b"abc")
    ref = bytes(IPv6(src=HOST_LL, dst=PEER_LL) / UDP(sport=7, dport=40000) / b"abc")[40:]
    assert raw == ref
