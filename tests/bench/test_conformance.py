"""The conformance harness (bench/conformance.py, bench/probes.py): the catalogue checked by
scapy without root, and a quick subset run against the Linux kernel in namespaces (root)."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether

from bench.conformance import JUSTIFIED, classify, render
from bench.probes import CATALOGUE, Ends, by_name
from tests.conftest import require_real_net

ENDS = Ends(bytes.fromhex("fe80000000000000000000000017beef"), bytes.fromhex("020000000001"),
            bytes.fromhex("fe80000000000000021122fffe334455"), bytes.fromhex("001122334455"))
# probes whose upper-layer checksum is wrong on purpose, or unverifiable by scapy
_BAD_SUM = {"echo.bad_checksum", "tcp.bad_checksum", "err.udp_zero_csum", "echo.plen_over_frame",
            "jumbo.plen0_no_jumbo", "jumbo.small_plen0", "jumbo.large_plen0",
            "jumbo.misaligned", "jumbo.bad_optlen", "echo.trailing_bytes",
            "ni.query", "ni.query_mc"}  # scapy re-encodes a Node Information query


def test_catalogue_covers_the_issue() -> None:
    names = [p.name for p in CATALOGUE]
    assert len(names) == len(set(names)) >= 80
    cats = {p.category for p in CATALOGUE}
    assert {"order", "chains", "options", "limits", "jumbo", "routing", "fragments", "nd",
            "mld", "errors", "echo", "ni", "tcp"} <= cats
    assert 0 < sum(p.quick for p in CATALOGUE) < len(CATALOGUE)
    assert set(JUSTIFIED) <= set(by_name())


@pytest.mark.parametrize("probe", CATALOGUE, ids=lambda p: p.name)
def test_scapy_reads_every_probe_as_built(probe: object) -> None:
    """Every frame is a well-formed Ethernet/IPv6 frame as scapy dissects it, and (unless
    wrong on purpose) scapy recomputes the same upper-layer checksum."""
    from bench.probes import Probe

    assert isinstance(probe, Probe)
    frames = probe.build(ENDS, 0x1234)
    assert frames
    for f in frames:
        pkt = Ether(f)
        assert pkt.haslayer(IPv6)
        assert len(f) <= 1514
        if probe.name in _BAD_SUM or pkt.haslayer(IPv6ExtHdrFragment) or (
                probe.name.startswith("rt.") and "sl1" in probe.name):  # final-dest pseudo hdr
            continue
        again = Ether(f)
        layer = again[IPv6]
        while layer.payload and not hasattr(layer, "cksum"):
            layer = layer.payload
        if hasattr(layer, "cksum") and layer.name != "Raw":
            del layer.cksum
            assert bytes(again) == f, probe.name


def test_classify_reads_reactions() -> None:
    p = by_name()["eh.unknown_nh"]
    assert classify([]) == "none"
    from tcpip6.stack.host import Ipv6Host  # noqa: F401 - the stack answers below
    from tests.tcpip6.stack6_helpers import HOST_MAC, up_host

    h = up_host(max_rtr_solicitations=0)
    ends = Ends(ENDS.src, ENDS.src_mac, h.link_local, HOST_MAC)
    h.nud.on_lladdr(ENDS.src, ENDS.src_mac, 1.8)
    out = [r for f in p.build(ends, 1) for r in h.handle_frame(f, 2.0)]
    assert classify(out) == "icmp 4/1 ptr 6"
    assert classify(out + out) == "icmp 4/1 ptr 6×2"


def test_report_lists_every_probe_and_justifications() -> None:
    from bench.conformance import Result

    probes = [*CATALOGUE[:3], by_name()["err.about_redirect"]]
    results = [Result(p, "reply", "reply") for p in probes[:3]]
    results.append(Result(probes[3], "icmp 4/2 ptr 42", "none"))
    text = render({"kernel": "6.x", "frag_time": 2, "seconds": 1.0, "results": results,
                   "drops": {}}, "cmd")
    assert "3/4 probes agree (75.0 %)" in text
    assert all(f"`{p.name}`" in text for p in probes)
    assert "RFC 4443 §2.4" in text


def test_quick_subset_agrees_with_linux() -> None:
    """Root: the quick probes sent to the emulated host (TAP) and to Linux (veth, own
    namespace) in one run; every probe the catalogue marks "must agree" must agree."""
    require_real_net()
    from bench.conformance import run

    quick = [p for p in CATALOGUE if p.quick]
    data = run(quick)
    assert data["kernel"] == os.uname().release
    assert len(data["results"]) == len(quick)
    assert data["seconds"] < 60
    wrong = [f"{r.probe.name}: linux {r.linux}, ours {r.ours}" for r in data["results"]
             if r.probe.must_agree and not r.agree]
    assert not wrong, wrong
    # the run saw real answers from both, not silence
    assert sum(r.linux != "none" for r in data["results"]) >= len(quick) // 3


def test_probe_costs_compare_each_probe_with_an_echo_of_its_size() -> None:
    """bench.fuzz --probe-costs: one row per probe, the echo baseline measured alike."""
    from bench.fuzz import probe_costs

    res = probe_costs(0.01, ["eh.do_chain_13", "limit.hbh.9_options", "frag.two"])
    rows = res["probes"]
    assert isinstance(rows, list) and len(rows) == 3
    for r in rows:
        assert r["probe_fps"] > 0 and r["echo_fps"] > 0 and r["frame_bytes"] > 54
    assert res["costliest"] in rows
