"""PeerPort (the emulated Linux peer) against the responders, end to end on an in-memory wire."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from tcpip6.stack.ipv4responder import Ipv4Responder
from tcpip6.stack.ipv6responder import Ipv6Responder
from tcpip6.stack.peer import QUEUE_LIMIT, EchoResult, PeerPort
from tcpip6.wire.ethernet import mac_str, parse_mac
from tcpip6.wire.ipv4 import parse_addr as ip4
from tcpip6.wire.ipv6 import ALL_NODES, addr_str, parse_addr

PEER_MAC = parse_mac("02:00:00:00:00:aa")
HOST_MAC = parse_mac("00:15:5d:01:02:03")
PEER_IP = ip4("192.0.2.2")
HOST_IP = ip4("192.0.2.1")
HOST_LL = parse_addr("fe80::215:5dff:fe01:203")
Handler = Callable[[bytes, float], list[bytes]]


def _id(value: object) -> str | None:
    """Readable test ids: show strings, summarise raw frames by length."""
    if isinstance(value, bytes):
        return f"{len(value)}B"
    return None


class Host:
    """The emulated Windows side: both responders on one MAC, split by EtherType."""

    def __init__(self) -> None:
        self.v6 = Ipv6Responder(HOST_MAC)
        self.v4 = Ipv4Responder(HOST_MAC, HOST_IP)

    def handle_frame(self, frame: bytes, now: float) -> list[bytes]:
        if frame[12:14] in (b"\x08\x00", b"\x08\x06"):
            return self.v4.handle_frame(frame, now)
        return self.v6.handle_frame(frame, now)


def wire(peer: Handler, host: Handler, first: list[bytes], now: float) -> list[tuple[str, bytes]]:
    """Carry frames both ways until the wire is quiet; return the log of (direction, frame)."""
    log: list[tuple[str, bytes]] = []
    in_flight = [("p2h", f) for f in first]
    while in_flight:
        assert len(log) < 200, "frame storm"
        direction, frame = in_flight.pop(0)
        log.append((direction, frame))
        if direction == "p2h":
            in_flight += [("h2p", f) for f in host(frame, now)]
        else:
            in_flight += [("p2h", f) for f in peer(frame, now)]
    return log


@pytest.fixture
def peer() -> PeerPort:
    return PeerPort(PEER_MAC, PEER_IP)


@pytest.fixture
def host() -> Host:
    return Host()


def test_peer_addresses(peer: PeerPort) -> None:
    assert addr_str(peer.link_local) == "fe80::ff:fe00:aa"
    assert peer.ipv4 == PEER_IP
    assert peer.replies == []


def test_ping6_resolves_then_gets_reply(peer: PeerPort, host: Host) -> None:
    first = peer.ping6(HOST_LL, 1.0, ident=0x1234, seq=1)
    assert len(first) == 1
    ns = Ether(first[0])
    assert ns.dst == "33:33:ff:01:02:03"
    assert ns[IPv6].dst == "ff02::1:ff01:203"
    assert (ns[IPv6].src, ns[IPv6].hlim) == ("fe80::ff:fe00:aa", 255)
    assert ns[ICMPv6ND_NS].tgt == addr_str(HOST_LL)
    assert ns[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:00:aa"
    again = ns.copy()
    del again[ICMPv6ND_NS].cksum
    assert bytes(again) == first[0]
    assert peer.pending() == 1

    log = wire(peer.handle_frame, host.handle_frame, first, 1.0)
    kinds = [(d, Ether(f).lastlayer().__class__.__name__) for d, f in log]
    assert [k for _, k in kinds][:2] == ["ICMPv6NDOptSrcLLAddr", "ICMPv6NDOptDstLLAddr"]
    echo_req = Ether(log[2][1])
    assert log[2][0] == "p2h"
    assert echo_req.dst == mac_str(HOST_MAC)
    assert (echo_req[ICMPv6EchoRequest].id, echo_req[ICMPv6EchoRequest].seq) == (0x1234, 1)
    assert echo_req[IPv6].hlim == 64
    assert Ether(log[3][1])[ICMPv6EchoReply].seq == 1
    assert len(log) == 4
    assert peer.pop_replies() == [EchoResult(6, 0x1234, 1, 1.0)]
    assert peer.pop_replies() == []
    assert peer.neighbors6[HOST_LL] == HOST_MAC
    assert peer.pending() == 0

    # resolved now: the next ping is a single Echo Request
    second = peer.ping6(HOST_LL, 2.0, ident=0x1234, seq=2)
    assert len(second) == 1 and ICMPv6EchoRequest in Ether(second[0])
    wire(peer.handle_frame, host.handle_frame, second, 2.5)
    assert [(r.family, r.seq, r.now) for r in peer.pop_replies()] == [(6, 2, 2.5)]
    assert host.v6.counters["echo_replies"] == 2
    assert host.v6.counters["na_sent"] == 1
    assert peer.counters["ns_sent"] == 1


def test_ping4_arps_then_gets_reply(peer: PeerPort, host: Host) -> None:
    first = peer.ping4(HOST_IP, 5.0, ident=7, seq=9)
    req = Ether(first[0])
    assert req.dst == "ff:ff:ff:ff:ff:ff"
    assert (req[ARP].op, req[ARP].psrc, req[ARP].pdst) == (1, "192.0.2.2", "192.0.2.1")
    log = wire(peer.handle_frame, host.handle_frame, first, 5.0)
    assert len(log) == 4
    echo = Ether(log[2][1])
    assert (echo[IP].ttl, echo[ICMP].type, echo[ICMP].id, echo[ICMP].seq) == (64, 8, 7, 9)
    again = echo.copy()
    del again[IP].chksum
    del again[ICMP].chksum
    assert bytes(again) == log[2][1]
    assert peer.pop_replies() == [EchoResult(4, 7, 9, 5.0)]
    assert peer.neighbors4[HOST_IP] == HOST_MAC
    direct = peer.ping4(HOST_IP, 6.0, ident=7, seq=10)
    assert Ether(direct[0])[ICMP].seq == 10
    wire(peer.handle_frame, host.handle_frame, direct, 6.0)
    assert peer.pop_replies() == [EchoResult(4, 7, 10, 6.0)]


def test_ping6_all_nodes_needs_no_resolution(peer: PeerPort, host: Host) -> None:
    out = peer.ping6(ALL_NODES, 0.5, ident=1, seq=1)
    assert Ether(out[0]).dst == "33:33:00:00:00:01"
    wire(peer.handle_frame, host.handle_frame, out, 0.5)
    assert peer.pop_replies() == [EchoResult(6, 1, 1, 0.5)]
    assert peer.counters["ns_sent"] == 0


def test_many_pings_interleaved(peer: PeerPort, host: Host) -> None:
    for seq in range(50):
        out = peer.ping6(HOST_LL, seq * 0.01, 1, seq) + peer.ping4(HOST_IP, seq * 0.01, 2, seq)
        wire(peer.handle_frame, host.handle_frame, out, seq * 0.01)
    replies = peer.pop_replies()
    assert sorted((r.family, r.seq) for r in replies) == sorted(
        [(6, s) for s in range(50)] + [(4, s) for s in range(50)]
    )
    assert peer.counters["ns_sent"] == 1 and peer.counters["arp_requests_sent"] == 1


def test_queue_bounded_and_ns_retransmit_timer(peer: PeerPort) -> None:
    silent = parse_addr("fe80::dead")
    sent: list[bytes] = []
    for seq in range(20):
        sent += peer.ping6(silent, 0.1 * seq, ident=3, seq=seq)
    # NS at t=0.0 and again once RetransTimer (1 s) passed: t=1.0
    assert len(sent) == 2
    assert all(ICMPv6ND_NS in Ether(f) for f in sent)
    assert peer.counters["drop.QUEUE_FULL"] == 20 - QUEUE_LIMIT
    assert peer.pending() == QUEUE_LIMIT

    na = bytes(
        Ether(dst="02:00:00:00:00:aa", src="02:00:00:00:de:ad")
        / IPv6(src="fe80::dead", dst="fe80::ff:fe00:aa", hlim=255)
        / ICMPv6ND_NA(tgt="fe80::dead", S=1, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:de:ad")
    )
    flushed = peer.handle_frame(na, 3.0)
    seqs = [Ether(f)[ICMPv6EchoRequest].seq for f in flushed]
    assert seqs == list(range(20 - QUEUE_LIMIT, 20))  # oldest dropped, order kept
    assert all(Ether(f).dst == "02:00:00:00:de:ad" for f in flushed)
    assert peer.pending() == 0


def _na(
    *, tgt: str = "fe80::dead", dst: str = "fe80::ff:fe00:aa", s: int = 1, o: int = 1,
    tlla: str | None = "02:00:00:00:de:ad", hlim: int = 255,
) -> bytes:  # fmt: skip
    pkt: Packet = (
        Ether(dst="33:33:00:00:00:01" if dst == "ff02::1" else "02:00:00:00:00:aa",
              src="02:00:00:00:de:ad")
        / IPv6(src=tgt, dst=dst, hlim=hlim)
        / ICMPv6ND_NA(tgt=tgt, S=s, O=o)
    )  # fmt: skip
    if tlla is not None:
        pkt /= ICMPv6NDOptDstLLAddr(lladdr=tlla)
    return bytes(pkt)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (_na(tlla=None), "drop.BAD_OPTION"),  # INCOMPLETE needs the TLLA (RFC 4861 §7.2.5)
        (_na(dst="ff02::1"), "drop.BAD_FLAGS"),  # solicited NA to multicast (§7.1.2)
        (_na(hlim=64), "drop.HOP_LIMIT"),
        (_na(tgt="fe80::beef"), "drop.UNSOLICITED"),
    ],
    ids=_id,
)
def test_invalid_na_does_not_resolve(peer: PeerPort, frame: bytes, reason: str) -> None:
    target = parse_addr("fe80::dead")
    peer.ping6(target, 0.0, 1, 1)
    assert peer.handle_frame(frame, 0.1) == []
    assert peer.counters[reason] == 1
    assert target not in peer.neighbors6
    assert peer.pending() == 1
    assert len(peer.handle_frame(_na(), 0.2)) == 1  # a valid NA still completes it


def test_unsolicited_override_na_updates_cache(peer: PeerPort, host: Host) -> None:
    wire(peer.handle_frame, host.handle_frame, peer.ping6(HOST_LL, 0, 1, 1), 0)
    moved = bytes(
        Ether(dst="33:33:00:00:00:01", src="02:00:00:00:00:99")
        / IPv6(src=addr_str(HOST_LL), dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(tgt=addr_str(HOST_LL), S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:99")
    )
    assert peer.handle_frame(moved, 1.0) == []
    assert peer.neighbors6[HOST_LL] == parse_mac("02:00:00:00:00:99")


def test_forget_neighbors_resolves_again(peer: PeerPort, host: Host) -> None:
    wire(peer.handle_frame, host.handle_frame, peer.ping6(HOST_LL, 0, 1, 1), 0)
    wire(peer.handle_frame, host.handle_frame, peer.ping4(HOST_IP, 0, 1, 1), 0)
    peer.ping6(parse_addr("fe80::dead"), 0, 1, 2)
    peer.forget_neighbors()
    assert peer.neighbors6 == {} and peer.neighbors4 == {}
    assert peer.pending() == 0 and peer.counters["queue_discarded"] == 1
    out = peer.ping6(HOST_LL, 1, 1, 3)
    assert ICMPv6ND_NS in Ether(out[0])
    out = peer.ping4(HOST_IP, 1, 1, 4)
    assert ARP in Ether(out[0])


def test_peer_answers_like_a_host(peer: PeerPort) -> None:
    ns = bytes(
        Ether(dst="33:33:ff:00:00:aa", src=mac_str(HOST_MAC))
        / IPv6(src=addr_str(HOST_LL), dst="ff02::1:ff00:aa", hlim=255)
        / ICMPv6ND_NS(tgt="fe80::ff:fe00:aa")
        / ICMPv6NDOptSrcLLAddr(lladdr=mac_str(HOST_MAC))
    )
    na = Ether(peer.handle_frame(ns, 0.0)[0])
    assert (na[ICMPv6ND_NA].tgt, na[ICMPv6ND_NA].S) == ("fe80::ff:fe00:aa", 1)
    echo = bytes(
        Ether(dst="02:00:00:00:00:aa", src=mac_str(HOST_MAC))
        / IPv6(src=addr_str(HOST_LL), dst="fe80::ff:fe00:aa")
        / ICMPv6EchoRequest(id=4, seq=4)
    )
    rep = Ether(peer.handle_frame(echo, 0.0)[0])
    assert (rep[ICMPv6EchoReply].seq, rep[IPv6].hlim) == (4, 64)
    arp = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=mac_str(HOST_MAC))
        / ARP(op=1, hwsrc=mac_str(HOST_MAC), psrc="192.0.2.1", pdst="192.0.2.2")
    )
    out = peer.handle_frame(arp, 0.0)
    assert Ether(out[0])[ARP].op == 2
    assert peer.neighbors4[HOST_IP] == HOST_MAC  # learned from the request (RFC 826 merge)
    assert peer.counters["echo_replies"] == 1 and peer.counters["na_sent"] == 1


def test_peer_drops_garbage_and_counts(peer: PeerPort) -> None:
    for n in range(14):
        assert peer.handle_frame(b"\x02" * n, 0.0) == []
    assert peer.handle_frame(b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(10), 0.0) == []
    assert peer.counters["drop.TRUNCATED"] == 15
    assert peer.counters["rx"] == 15


def test_ipv6_only_peer() -> None:
    peer = PeerPort(PEER_MAC)
    with pytest.raises(RuntimeError):
        peer.ping4(HOST_IP, 0.0, 1, 1)
    arp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="192.0.2.2"))
    assert peer.handle_frame(arp, 0.0) == []
    assert peer.counters["drop.UNSUPPORTED"] == 1
