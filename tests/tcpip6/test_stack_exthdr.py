"""The IPv6 extension header chain on receive (RFC 8200 §4, RFC 5095), scapy-built."""

from __future__ import annotations

import pytest
from scapy.layers.inet import TCP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6ParamProblem,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from tcpip6.stack.host import Ipv6Host
from tests.tcpip6.stack6_helpers import (
    HOST_LL,
    PEER_LL,
    PEER_MAC_S,
    checksums_ok,
    drops,
    to_host,
    up_host,
)

ECHO = ICMPv6EchoRequest(id=1, seq=1, data=b"chain")


@pytest.fixture
def host() -> Ipv6Host:
    h = up_host(max_rtr_solicitations=0)
    h.handle_frame(
        to_host(IPv6(src=PEER_LL, dst=HOST_LL, hlim=255) / ICMPv6ND_NS(tgt=HOST_LL)
                / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_S)), 1.9,
    )  # fmt: skip
    h.counters.clear()
    return h


def send(host: Ipv6Host, *layers: Packet, dst: str = HOST_LL) -> list[Packet]:
    pkt: Packet = IPv6(src=PEER_LL, dst=dst)
    for layer in layers:
        pkt = pkt / layer
    return [checksums_ok(f) for f in host.handle_frame(to_host(pkt), 2.0)]


def param_problem(out: list[Packet]) -> tuple[int, int]:
    assert len(out) == 1
    pp = out[0][ICMPv6ParamProblem]
    assert out[0][IPv6].dst == PEER_LL
    return pp.code, pp.ptr


def opt(otype: int) -> HBHOptUnknown:
    return HBHOptUnknown(otype=otype, optdata=b"ab")


@pytest.mark.parametrize("header", [IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt])
def test_option_skip_bits_00_and_known_router_alert(host: Ipv6Host, header: type) -> None:
    out = send(host, header(options=[opt(0x1E)]), ECHO)
    assert out[0][ICMPv6EchoReply].data == b"chain"
    out = send(host, IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]), ECHO)
    assert out[0].haslayer(ICMPv6EchoReply)


@pytest.mark.parametrize("header", [IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt])
def test_option_discard_bits_01(host: Ipv6Host, header: type) -> None:
    assert send(host, header(options=[opt(0x5E)]), ECHO) == []
    assert drops(host) == {"drop.UNRECOGNIZED": 1}
    assert host.counters["icmp.errors_sent"] == 0


@pytest.mark.parametrize("header", [IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt])
def test_option_bits_10_parameter_problem_even_to_multicast(host: Ipv6Host, header: type) -> None:
    assert param_problem(send(host, header(options=[opt(0x9E)]), ECHO)) == (2, 42)
    out = send(host, header(options=[opt(0x9E)]), ECHO, dst="ff02::1")
    assert param_problem(out) == (2, 42)  # RFC 4443 §2.4 (e.3) exception
    assert out[0][IPv6].src == HOST_LL


def test_option_bits_11_parameter_problem_only_to_unicast(host: Ipv6Host) -> None:
    assert param_problem(send(host, IPv6ExtHdrDestOpt(options=[opt(0xDE)]), ECHO)) == (2, 42)
    assert send(host, IPv6ExtHdrDestOpt(options=[opt(0xDE)]), ECHO, dst="ff02::1") == []
    assert host.counters["drop.UNRECOGNIZED"] == 2


def test_pointer_to_the_second_option(host: Ipv6Host) -> None:
    out = send(host, IPv6ExtHdrDestOpt(options=[opt(0x1E), opt(0x9F)]), ECHO)
    assert param_problem(out) == (2, 46)  # 40 + 2 + (2 + 2)


def test_hop_by_hop_not_first_is_unrecognized_next_header(host: Ipv6Host) -> None:
    out = send(host, IPv6ExtHdrDestOpt(), IPv6ExtHdrHopByHop(), ECHO)
    assert param_problem(out) == (1, 40)  # the Next Header field of the Destination Options


def test_routing_header_segments_left_zero_is_ignored(host: Ipv6Host) -> None:
    out = send(host, IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8::1"]), ECHO)
    assert out[0][ICMPv6EchoReply].data == b"chain"
    assert host.counters["ip6.routing_ignored"] == 1


@pytest.mark.parametrize("rtype", [0, 2, 4])
def test_routing_header_with_segments_left_is_parameter_problem(host: Ipv6Host, rtype: int) -> None:
    rh = IPv6ExtHdrRouting(type=rtype, segleft=1, addresses=["2001:db8::1"])
    assert param_problem(send(host, rh, ECHO)) == (0, 42)  # RFC 5095 §3: the Routing Type


@pytest.mark.parametrize(
    ("layers", "ptr"),
    [((Raw(b"x" * 8),), 6), ((IPv6ExtHdrDestOpt(nh=253), Raw(b"x" * 8)), 40)],
)
def test_unknown_next_header(host: Ipv6Host, layers: tuple[Packet, ...], ptr: int) -> None:
    pkt = IPv6(src=PEER_LL, dst=HOST_LL, nh=253 if ptr == 6 else 60)
    for layer in layers:
        pkt = pkt / layer
    out = [Ether(f) for f in host.handle_frame(to_host(pkt), 2.0)]
    assert param_problem(out) == (1, ptr)
    pkt_mc = IPv6(src=PEER_LL, dst="ff02::1", nh=253) / Raw(b"x" * 8)
    assert host.handle_frame(to_host(pkt_mc), 2.0) == []  # never to a multicast destination


def test_no_next_header_and_tcp(host: Ipv6Host) -> None:
    assert send(host, IPv6ExtHdrDestOpt(nh=59)) == []
    assert host.counters["ip6.no_next_header"] == 1
    # TCP behind an extension header reaches TCP: a SYN to a closed port gets RST,ACK
    # (RFC 9293 §3.10.7.1); scapy agrees with the checksum (checksums_ok)
    (rst,) = send(host, IPv6ExtHdrDestOpt(), TCP(sport=20, dport=80, flags="S", seq=41))
    assert (rst[TCP].flags, rst[TCP].seq, rst[TCP].ack) == ("RA", 0, 42)
    assert (rst[TCP].sport, rst[TCP].dport, rst[IPv6].dst) == (80, 20, PEER_LL)
    assert drops(host) == {"drop.PORT_CLOSED": 1}
    assert send(host, TCP(dport=80), dst="ff02::1") == []  # RFC 9293 §3.9.1: not multicast
    assert drops(host) == {"drop.PORT_CLOSED": 1, "drop.BAD_DEST": 1}


def test_truncated_extension_header(host: Ipv6Host) -> None:
    raw = bytes(IPv6(src=PEER_LL, dst=HOST_LL) / IPv6ExtHdrDestOpt(options=[opt(0x1E)]) / ECHO)
    cut = bytearray(raw[:44])
    cut[4:6] = (4).to_bytes(2, "big")
    assert host.handle_frame(to_host(IPv6(bytes(cut))), 2.0) == []
    assert drops(host) == {"drop.TRUNCATED": 1}


def test_no_error_about_an_error(host: Ipv6Host) -> None:
    err = ICMPv6DestUnreach(code=4) / IPv6(src=HOST_LL, dst=PEER_LL)
    assert send(host, IPv6ExtHdrDestOpt(options=[opt(0x9E)]), err) == []
    assert host.counters["icmp.errors_suppressed"] == 1  # RFC 4443 §2.4 (e.1)
