"""Golden memory-wire tests for the behaviours the Linux-oracle harness (`tcpip6-lab bench
conformance`, docs/conformance.md) made us change: each probe of the catalogue is handed to a
host in virtual time and its reaction must be the one Linux 6.18 gave (recorded here), and the
drop it counts the stated reason. The RFC section of each rule is in the test's docstring."""

from __future__ import annotations

import dataclasses

import pytest
from scapy.layers.inet6 import ICMPv6ParamProblem, IPv6
from scapy.layers.l2 import Ether

from bench.conformance import classify
from bench.probes import Ends, by_name
from tcpip6.stack.host import Ipv6Host
from tests.tcpip6.stack6_helpers import (
    HOST_LL,
    HOST_MAC,
    PEER_LL,
    PEER_MAC,
    a,
    advance,
    checksums_ok,
    drops,
    up_host,
)

ENDS = Ends(a(PEER_LL), PEER_MAC, a(HOST_LL), HOST_MAC)
PROBES = by_name()


@pytest.fixture
def host() -> Ipv6Host:
    h = up_host(max_rtr_solicitations=0)
    h.nud.on_lladdr(a(PEER_LL), PEER_MAC, 1.8)  # the peer resolved: replies leave at once
    h.counters.clear()
    return h


def react(host: Ipv6Host, name: str, now: float = 2.0) -> tuple[str, list[bytes]]:
    out: list[bytes] = []
    for f in PROBES[name].build(ENDS, 0x1717):
        out += host.handle_frame(f, now)
    for f in out:
        if name != "jumbo.plen0_no_jumbo":  # scapy rewrites the quoted Payload Length 0
            checksums_ok(f)
    return classify(out, PROBES[name].keep_mld, 0x1717), out


def expect(host: Ipv6Host, name: str, linux: str, drop: str | None) -> list[bytes]:
    got, out = react(host, name)
    assert got == linux, f"{name}: Linux {linux}, ours {got}"
    if drop is not None:
        assert drops(host).get(f"drop.{drop}", 0) >= 1, drops(host)
    return out


@pytest.mark.parametrize("kind", ["hbh", "do"])
def test_rfc8200_s4_2_at_most_8_options_per_header_as_linux(host: Ipv6Host, kind: str) -> None:
    """RFC 8200 §4.2 leaves the number of options open; Linux allows 8 non-padding options
    per header (net.ipv6.max_hbh_opts_number / max_dst_opts_number) and silently drops more."""
    expect(host, f"limit.{kind}.8_options", "reply", None)
    expect(host, f"limit.{kind}.9_options", "none", "TOO_MANY_OPTIONS")
    expect(host, f"limit.{kind}.1k_options", "none", "TOO_MANY_OPTIONS")


def test_option_limit_is_configurable() -> None:
    """HostConfig.max_dst_options: with 9 allowed the 9-option header passes."""
    h = up_host(max_rtr_solicitations=0, max_dst_options=9)
    h.nud.on_lladdr(a(PEER_LL), PEER_MAC, 1.8)
    assert react(h, "limit.do.9_options")[0] == "reply"
    h2 = up_host(max_rtr_solicitations=0, max_ext_headers=13)
    h2.nud.on_lladdr(a(PEER_LL), PEER_MAC, 1.8)
    assert react(h2, "eh.do_chain_13")[0] == "reply"


@pytest.mark.parametrize("kind", ["hbh", "do"])
def test_rfc4942_s2_1_9_5_padding_at_most_7_bytes_and_padn_zero(host: Ipv6Host,
                                                                kind: str) -> None:
    """RFC 8200 §4.2 / RFC 4942 §2.1.9.5: padding only aligns, so more than 7 consecutive
    padding bytes, or PadN carrying non-zero data, is dropped (Linux's ip6_parse_tlv)."""
    expect(host, f"limit.{kind}.pad_7", "reply", None)
    expect(host, f"limit.{kind}.pad_8", "none", "BAD_PADDING")
    expect(host, f"limit.{kind}.pad1_8", "none", "BAD_PADDING")
    expect(host, f"limit.{kind}.padn_nonzero", "none", "BAD_PADDING")
    expect(host, f"limit.{kind}.all_padding_1k", "none", "BAD_PADDING")


def test_rfc8200_s4_at_most_12_extension_headers_as_linux(host: Ipv6Host) -> None:
    """RFC 8200 §4.1 sets no count for repeated Destination Options; Linux 6.18 processes 12
    extension headers and silently drops a packet with a 13th, whatever the types — even
    when the 13th would have drawn an error (the harness found the rule: 12 pass, 13 drop)."""
    expect(host, "eh.do_chain_12", "reply", None)
    expect(host, "eh.hbh_do11", "reply", None)
    expect(host, "eh.do_chain_13", "none", "TOO_MANY_HEADERS")
    expect(host, "eh.do7_rt7", "none", "TOO_MANY_HEADERS")
    expect(host, "eh.do12_atomic", "none", "TOO_MANY_HEADERS")
    expect(host, "eh.do13_unknown_nh", "none", "TOO_MANY_HEADERS")


def test_rfc8200_s4_5_long_chains_in_fragments_are_dropped_after_reassembly(
        host: Ipv6Host) -> None:
    """RFC 8200 §4.5 / RFC 7112: 128, 2000 and 8172 DO headers behind a Fragment header.
    Linux cannot tell from the first fragment whether the chain is whole (its walk leaves the
    fragment) so it reassembles, then drops the 13th header — as we do."""
    for n in (128, 2000, 8172):
        expect(host, f"eh.frag_do_chain_{n}", "none", "TOO_MANY_HEADERS")


def test_rfc8200_s4_1_hop_by_hop_only_first_after_a_fragment_header(host: Ipv6Host) -> None:
    """RFC 8200 §4.1: "The Hop-by-Hop Options header [...] is restricted to appear immediately
    after an IPv6 header": Fragment, HBH, Routing → Parameter Problem code 1 at the Next
    Header that named the HBH (the Fragment header's, offset 40)."""
    out = expect(host, "eh.atomic_frag_hbh_rt", "icmp 4/1 ptr 40", "BAD_HEADER")
    pp = Ether(out[0])[ICMPv6ParamProblem]
    assert (pp.code, pp.ptr) == (1, 40)


def test_rfc8200_s4_1_a_second_fragment_header_is_a_parameter_problem(host: Ipv6Host) -> None:
    """RFC 8200 §4.1: each extension header at most once (but Destination Options). A second
    Fragment header, after an atomic one or inside a reassembled datagram: Parameter Problem
    code 0 pointing at it, as Linux."""
    expect(host, "eh.atomic_twice", "icmp 4/0 ptr 48", "BAD_HEADER")
    expect(host, "eh.frag_in_reassembled", "icmp 4/0 ptr 40", "BAD_HEADER")


def test_rfc7112_s5_first_fragment_without_upper_layer(host: Ipv6Host) -> None:
    """RFC 7112 §5 / RFC 8200 §4.5: "If the first fragment does not include all headers
    through an Upper-Layer header, then that fragment should be discarded and an ICMP
    Parameter Problem, Code 3, message should be sent [...] with the Pointer field set to
    zero"."""
    expect(host, "frag.first_no_upper", "icmp 4/3 ptr 0", "INCOMPLETE_CHAIN")
    expect(host, "limit.do.2k_options_frag", "icmp 4/3 ptr 0", "INCOMPLETE_CHAIN")
    expect(host, "limit.do.2k_padding_frag", "icmp 4/3 ptr 0", "INCOMPLETE_CHAIN")


def test_rfc2675_s3_jumbo_payload_errors_and_pointers(host: Ipv6Host) -> None:
    """RFC 2675 §3: a Jumbo Payload Length <= 65,535 → Parameter Problem code 0 at its
    high-order octet (option + 2); Payload Length not 0 with a Jumbo option → code 0 at the
    Option Type; checked in Linux's order (the value first), with Linux's pointers."""
    expect(host, "jumbo.small_plen_set", "icmp 4/0 ptr 44", "BAD_JUMBO")
    expect(host, "jumbo.small_plen0", "icmp 4/0 ptr 44", "BAD_JUMBO")
    expect(host, "jumbo.large_plen_set", "icmp 4/0 ptr 42", "BAD_JUMBO")
    expect(host, "jumbo.large_plen0", "none", "TRUNCATED")
    expect(host, "jumbo.misaligned", "none", "BAD_JUMBO")  # RFC 2675 §2: 4n+2
    expect(host, "jumbo.bad_optlen", "none", "BAD_JUMBO")
    expect(host, "jumbo.in_do", "icmp 4/2 ptr 42", "UNRECOGNIZED")  # HBH only (§2)


def test_rfc2675_s3_payload_length_0_without_jumbo(host: Ipv6Host) -> None:
    """RFC 2675 §3: "IPv6 Payload Length = 0 and IPv6 Next Header = Hop-by-Hop Options and
    Jumbo Payload option not present: Code 0, Pointer = high-order octet of the IPv6 Payload
    Length". (Linux answers the echo instead: a justified divergence.)"""
    out = expect(host, "jumbo.plen0_no_jumbo", "icmp 4/0 ptr 4", "BAD_JUMBO")
    assert Ether(out[0])[IPv6].dst == PEER_LL


def test_rfc6980_s5_nd_in_fragments_is_ignored(host: Ipv6Host) -> None:
    """RFC 6980 §5: "hosts MUST silently ignore any IPv6 ND messages that use
    fragmentation" — atomic fragments included; the same NS unfragmented is answered."""
    expect(host, "nd.ns_ok", "na", None)
    expect(host, "nd.ns_atomic_frag", "none", "FRAGMENTED_ND")
    expect(host, "nd.ns_two_frags", "none", "FRAGMENTED_ND")


def test_rfc3810_s5_queries_need_hop_limit_1_and_router_alert() -> None:
    """RFC 3810 §5: MLDv2 messages are sent with hop limit 1 and a Router Alert option in a
    Hop-by-Hop header; Linux ignores a query without either, so do we."""
    h = up_host(max_rtr_solicitations=0)
    h.counters.clear()
    assert react(h, "mld.query_hop2")[0] == "none"
    assert drops(h) == {"drop.HOP_LIMIT": 1}
    assert react(h, "mld.query_no_ra")[0] == "none"
    assert drops(h) == {"drop.HOP_LIMIT": 1, "drop.BAD_OPTION": 1}
    react(h, "mld.query_ok")
    assert any(Ether(f)[IPv6].nh in (0, 58) for _, f in advance(h, 3.0))  # reports go out


def test_limits_are_validated() -> None:
    from tcpip6.errors import ConfigError
    from tcpip6.stack.context import HostConfig

    with pytest.raises(ConfigError):
        HostConfig(max_ext_headers=0)
    assert dataclasses.replace(HostConfig(), max_padding=0).max_padding == 0
