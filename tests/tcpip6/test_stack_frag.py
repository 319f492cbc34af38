"""Fragment reassembly (RFC 8200 §4.5, RFC 5722, RFC 6946) and fragmentation, against scapy's
fragment6/defragment6, in virtual time."""

from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrFragment,
    defragment6,
    fragment6,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from tcpip6.stack.frag import MAX_FRAGMENTS_PER_DATAGRAM, fragment
from tcpip6.stack.host import Ipv6Host
from tcpip6.wire.ipv6 import NH_ICMPV6
from tests.tcpip6.stack6_helpers import (
    HOST_LL,
    PEER_LL,
    PEER_MAC_S,
    a,
    advance,
    checksums_ok,
    to_host,
    up_host,
)

DATA = bytes(range(256)) * 12  # 3072 bytes


def host_knowing_peer(**kw: object) -> Ipv6Host:
    h = up_host(max_rtr_solicitations=0, **kw)
    h.handle_frame(
        to_host(IPv6(src=PEER_LL, dst=HOST_LL, hlim=255) / ICMPv6ND_NS(tgt=HOST_LL)
                / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC_S)), 1.9,
    )  # fmt: skip
    return h


@pytest.fixture
def host() -> Ipv6Host:
    return host_knowing_peer()


def echo_fragments(ident: int = 0x1234, data: bytes = DATA, size: int = 1280) -> list[bytes]:
    pkt = IPv6(src=PEER_LL, dst=HOST_LL) / IPv6ExtHdrFragment(id=ident) / ICMPv6EchoRequest(
        id=7, seq=9, data=data
    )
    return [to_host(f) for f in fragment6(pkt, size)]


def frag(offset: int, more: bool, payload: bytes, ident: int = 0x99, nh: int = 58) -> bytes:
    return to_host(
        IPv6(src=PEER_LL, dst=HOST_LL)
        / IPv6ExtHdrFragment(nh=nh, offset=offset // 8, m=int(more), id=ident)
        / Raw(payload)
    )


def test_3000_byte_echo_reassembled_and_reply_fragmented_at_1500(host: Ipv6Host) -> None:
    frags = echo_fragments()
    assert len(frags) == 3
    out: list[bytes] = []
    for f in frags:
        out += host.handle_frame(f, 2.0)
    assert host.counters["frag.reassembled"] == 1
    assert len(out) == 3  # 3072 + 8 + 40 bytes at MTU 1500: 1448 + 1448 + 184
    pkts = [Ether(f) for f in out]
    assert all(len(f) - 14 <= 1500 for f in out)
    fhs = [p[IPv6ExtHdrFragment] for p in pkts]
    assert len({fh.id for fh in fhs}) == 1
    assert [fh.offset * 8 for fh in fhs] == [0, 1448, 2896]
    assert [fh.m for fh in fhs] == [1, 1, 0]
    assert all(len(bytes(fh.payload)) % 8 == 0 for fh in fhs[:-1])
    whole = defragment6([p[IPv6] for p in pkts])
    rep = IPv6(bytes(whole))
    assert rep[ICMPv6EchoReply].data == DATA and (rep.id, rep.seq) == (7, 9)
    again = rep.copy()
    del again[ICMPv6EchoReply].cksum
    assert bytes(again) == bytes(rep)  # the checksum covers the whole reassembled message
    assert host.reassembler.datagrams == {} and host.reassembler.nbytes == 0


def test_out_of_order_and_exact_duplicates(host: Ipv6Host) -> None:
    f1, f2, f3 = echo_fragments()
    out = []
    for f in (f3, f1, f1, f2):
        out += host.handle_frame(f, 2.0)
    assert host.counters["frag.duplicate"] == 1  # RFC 5722 §4 MAY: kept, not abandoned
    assert len(out) == 3


def test_timeout_sends_time_exceeded_when_first_fragment_arrived(host: Ipv6Host) -> None:
    f1, f2, _ = echo_fragments()
    host.handle_frame(f1, 2.0)
    host.handle_frame(f2, 30.0)
    assert advance(host, 61.999) == []
    sent = advance(host, 62.0)  # 60 s after the *first* fragment arrived
    assert len(sent) == 1
    p = checksums_ok(sent[0][1])
    te = p[ICMPv6TimeExceeded]
    assert (te.code, p[IPv6].dst, p[IPv6].src) == (1, PEER_LL, HOST_LL)
    assert bytes(te.payload)[:40] == Ether(f1)[IPv6].build()[:40]  # quotes the first fragment
    assert host.counters["drop.FRAG_TIMEOUT"] == 1
    assert host.reassembler.datagrams == {}


def test_timeout_without_first_fragment_is_silent(host: Ipv6Host) -> None:
    _, f2, f3 = echo_fragments()
    host.handle_frame(f2, 2.0)
    host.handle_frame(f3, 2.0)
    assert advance(host, 100.0) == []
    assert host.counters["drop.FRAG_TIMEOUT"] == 1
    assert host.counters["icmp.errors_sent"] == 0


def test_overlap_drops_the_whole_datagram(host: Ipv6Host) -> None:
    body = bytes(IPv6(src=PEER_LL, dst=HOST_LL) / ICMPv6EchoRequest(data=bytes(64)))[40:]
    assert host.handle_frame(frag(0, True, body[:32]), 2.0) == []
    assert host.handle_frame(frag(24, True, body[24:48]), 2.0) == []  # overlaps 24..32
    assert host.counters["drop.FRAG_OVERLAP"] == 1
    assert host.reassembler.datagrams == {}
    # the rest cannot complete what was discarded
    assert host.handle_frame(frag(32, False, body[32:]), 2.1) == []
    assert host.counters["frag.reassembled"] == 0
    assert advance(host, 70.0) == []  # and no Time Exceeded: it never had its first fragment


def test_atomic_fragment_is_processed_in_isolation(host: Ipv6Host) -> None:
    f1, _, _ = echo_fragments(ident=0x55)
    host.handle_frame(f1, 2.0)  # a pending datagram with the same Identification
    atomic = to_host(
        IPv6(src=PEER_LL, dst=HOST_LL) / IPv6ExtHdrFragment(id=0x55, offset=0, m=0)
        / ICMPv6EchoRequest(id=1, seq=2, data=b"atomic")
    )  # fmt: skip
    out = host.handle_frame(atomic, 2.1)
    assert len(out) == 1
    rep = Ether(out[0])
    assert rep[ICMPv6EchoReply].data == b"atomic" and not rep.haslayer(IPv6ExtHdrFragment)
    assert host.counters["frag.atomic"] == 1
    assert len(host.reassembler.datagrams) == 1  # RFC 6946 §4: the other one is untouched


def test_fragment_length_not_multiple_of_8_gets_parameter_problem(host: Ipv6Host) -> None:
    out = host.handle_frame(frag(0, True, b"\x80" + bytes(12)), 2.0)  # an echo request start
    p = checksums_ok(out[0])
    pp = p[ICMPv6ParamProblem]
    assert (pp.code, pp.ptr) == (0, 4)  # points at the Payload Length field
    assert host.counters["drop.FRAG_INVALID"] == 1


def test_reassembled_length_over_65535_gets_parameter_problem(host: Ipv6Host) -> None:
    out = host.handle_frame(frag(65528, True, bytes(16)), 2.0)
    pp = Ether(out[0])[ICMPv6ParamProblem]
    assert (pp.code, pp.ptr) == (0, 42)  # the Fragment Offset field (40 + 2)


def test_inconsistent_last_fragment_abandons(host: Ipv6Host) -> None:
    host.handle_frame(frag(0, True, bytes(16)), 2.0)
    host.handle_frame(frag(16, False, bytes(8)), 2.0)  # ends at 24
    assert host.reassembler.datagrams == {}  # complete (and dropped: not a valid ICMPv6)
    host.handle_frame(frag(0, True, bytes(16), ident=5), 3.0)
    host.handle_frame(frag(32, False, bytes(8), ident=5), 3.0)  # ends at 40
    host.handle_frame(frag(48, False, bytes(8), ident=5), 3.0)  # another end: invalid
    assert host.counters["drop.FRAG_INVALID"] == 1
    assert host.reassembler.datagrams == {}


def test_memory_is_bounded() -> None:
    h = host_knowing_peer(reassembly_max_datagrams=2, reassembly_max_bytes=4000)
    for ident in (1, 2, 3):
        h.handle_frame(frag(0, True, bytes(1000), ident=ident), 2.0)
    assert len(h.reassembler.datagrams) == 2
    assert h.counters["drop.REASSEMBLY_FULL"] == 1
    for off in (1000, 2000, 3000):
        h.handle_frame(frag(off, True, bytes(1000), ident=1), 2.0)
    assert h.reassembler.nbytes == 4000  # the byte bound: the last fragment did not fit
    assert h.counters["drop.REASSEMBLY_FULL"] == 2
    advance(h, 70.0)
    assert h.reassembler.nbytes == 0  # time-outs free the memory
    assert h.counters["drop.FRAG_TIMEOUT"] == 2


def test_fragmented_udp_to_closed_port_is_port_unreachable(host: Ipv6Host) -> None:
    pkt = IPv6(src=PEER_LL, dst=HOST_LL) / IPv6ExtHdrFragment(id=3) / UDP(sport=5000, dport=9) / (
        b"u" * 2000
    )
    out: list[bytes] = []
    for f in fragment6(pkt, 1280):
        out += host.handle_frame(to_host(f), 2.0)
    p = checksums_ok(out[0])
    assert p[ICMPv6DestUnreach].code == 4
    assert len(out[0]) - 14 == 1280  # the quote fills the minimum MTU, no more


def test_fragment_function_against_scapy() -> None:
    src, dst = a("fe80::1"), a("fe80::2")
    payload = bytes(IPv6(src="fe80::1", dst="fe80::2") / ICMPv6EchoReply(data=DATA))[40:]
    pieces = fragment(src, dst, NH_ICMPV6, 64, payload, 1280, 0xABCDEF01)
    assert all(len(p) <= 1280 for p in pieces)
    whole: Packet = defragment6([IPv6(p) for p in pieces])
    assert bytes(whole)[40:] == payload
    assert fragment(src, dst, NH_ICMPV6, 64, b"x" * 100, 1280, 1)[0][6] == 44
    with pytest.raises(ValueError):
        fragment(src, dst, NH_ICMPV6, 64, payload, 48, 1)


def test_empty_and_too_many_pieces_are_refused(host: Ipv6Host) -> None:
    for _ in range(3):
        host.handle_frame(frag(8, True, b""), 2.0)
    assert host.counters["drop.FRAG_INVALID"] == 3 and host.reassembler.datagrams == {}
    for i in range(MAX_FRAGMENTS_PER_DATAGRAM + 1):
        host.handle_frame(frag(8 + 8 * i, True, bytes(8), ident=77), 2.0)
    assert host.counters["drop.REASSEMBLY_FULL"] == 1
    assert host.reassembler.datagrams == {} and host.reassembler.nbytes == 0
