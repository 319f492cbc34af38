"""serve's netem driver (tcpip6lab.wirefaults) on the plan's timeline: which qdisc goes on which
device when. The qdisc calls are recorded here instead of made (this is the schedule and the
device choice; tests/tcpip6lab/test_real_faults.py puts real qdiscs on real devices)."""

from __future__ import annotations

import io
from typing import cast

import pytest
import trio
import trio.testing

from faults.plan import parse_plan
from ndisemu.backends import netem
from ndisemu.backends.fdport import FdPort
from ndisemu.backends.netlink import Registry
from ndisemu.backends.topology import Site, SiteSpec, Topology
from ndisemu.kernel import Kernel
from tcpip6lab.wirefaults import WireFaults

PLAN = """
[run]
heal_at = 30.0

[[wire]]
action = "loss"
direction = "in"
after = 2.0
until = 4.0

[[wire]]
action = "reorder"
probability = 0.5
delay = 0.01
direction = "out"
after = 3.0
adapters = ["nic001"]
"""


def topology(backend: str) -> Topology:
    topo = Topology(backend, "t6l-ns", Registry("zz9"),
                    emu_netns="t6l-zz9-emu" if backend == "veth" else None)
    for i in range(2):
        spec = SiteSpec(f"nic00{i}", i, bytes(6), bytes(4))
        topo.sites[spec.adapter] = Site(spec, f"t6l-zz9-{i}", "t6l-ns", cast(FdPort, None),
                                        f"t6l-zz9-{i}e" if backend == "veth" else None)
    return topo


def _run_for_a_minute(wf: WireFaults) -> None:
    """Run the wire faults' task for 60 s of virtual time (every window's edges in it)."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wf.run)
            await trio.sleep(60)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_qdiscs_change_at_the_window_edges_on_the_device_of_each_direction(
        backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[float, str, str, str]] = []
    ifbs: list[tuple[str, str, str]] = []

    def set_netem(ns: str, dev: str, spec: netem.NetemSpec | None) -> None:
        calls.append((trio.current_time(), ns, dev,
                      spec.describe() if spec is not None else "removed"))

    monkeypatch.setattr(netem, "set_netem", set_netem)
    monkeypatch.setattr(netem, "probe_netem", lambda ns, dev: None)
    monkeypatch.setattr(netem, "kernel_has_netem", lambda: True)
    monkeypatch.setattr(netem, "add_ifb", lambda ns, dev, ifb: ifbs.append((ns, dev, ifb)))
    topo = topology(backend)
    wf = WireFaults(topo, Kernel(), parse_plan(PLAN))
    wf.prepare()
    if backend == "tap":  # only nic001 has an "out" fault: only it gets an IFB
        assert ifbs == [("t6l-ns", "t6l-zz9-1", "t6l-zz9-1i")]
        assert topo.registry.links == ["t6l-zz9-1i"]
    else:
        assert ifbs == []
    out1 = ("t6l-ns", "t6l-zz9-1i") if backend == "tap" else ("t6l-zz9-emu", "t6l-zz9-1e")

    _run_for_a_minute(wf)
    assert calls == [
        (2.0, "t6l-ns", "t6l-zz9-0", "netem loss 100%"),
        (2.0, "t6l-ns", "t6l-zz9-1", "netem loss 100%"),
        (3.0, *out1, "netem delay 10ms reorder 50%"),
        (4.0, "t6l-ns", "t6l-zz9-0", "removed"),
        (4.0, "t6l-ns", "t6l-zz9-1", "removed"),
        (30.0, *out1, "removed"),  # heal_at
    ]


BPF_PLAN = """
[[wire]]
action = "loss"
after = 2.0
until = 4.0

[[wire]]
action = "duplicate"
probability = 0.5
direction = "out"
after = 3.0
until = 5.0
adapters = ["nic001"]
"""


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_without_netem_a_bpf_program_changes_at_the_edges_on_each_directions_hook(
        backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ndisemu.backends import bpf

    calls: list[tuple[float, str, str, str, str]] = []

    def set_bpf(ns: str, dev: str, spec: bpf.BpfSpec | None, *, ingress: bool) -> None:
        calls.append((trio.current_time(), ns, dev, "ingress" if ingress else "egress",
                      spec.describe() if spec is not None else "removed"))

    def no(*args: object) -> None:
        raise AssertionError(f"netem path used without netem: {args}")

    monkeypatch.setattr(netem, "kernel_has_netem", lambda: False)
    monkeypatch.setattr(netem, "set_netem", no)
    monkeypatch.setattr(netem, "probe_netem", no)
    monkeypatch.setattr(netem, "add_ifb", no)  # TAP's "out": its own ingress hook, no IFB
    monkeypatch.setattr(bpf, "set_bpf", set_bpf)
    topo = topology(backend)
    out = io.StringIO()
    wf = WireFaults(topo, Kernel(), parse_plan(BPF_PLAN), out)
    wf.prepare()
    assert topo.registry.links == [] and not wf.netem

    _run_for_a_minute(wf)
    in0, in1 = ("t6l-ns", "t6l-zz9-0", "egress"), ("t6l-ns", "t6l-zz9-1", "egress")
    out0, out1 = (("t6l-ns", "t6l-zz9-0", "ingress"), ("t6l-ns", "t6l-zz9-1", "ingress")) \
        if backend == "tap" else (("t6l-zz9-emu", "t6l-zz9-0e", "egress"),
                                  ("t6l-zz9-emu", "t6l-zz9-1e", "egress"))
    assert calls == [
        (2.0, *in0, "bpf loss 100%"), (2.0, *out0, "bpf loss 100%"),
        (2.0, *in1, "bpf loss 100%"), (2.0, *out1, "bpf loss 100%"),
        (3.0, *out1, "bpf loss 100% duplicate 50%"),
        (4.0, *in0, "removed"), (4.0, *out0, "removed"), (4.0, *in1, "removed"),
        (4.0, *out1, "bpf duplicate 50%"),
        (5.0, *out1, "removed"),
    ]
    # serve's lines, at the edges' times
    assert f"t=    3.0s  nic001 out ({out1[1]}): bpf loss 100% duplicate 50%\n" \
        in out.getvalue()
    assert f"t=    5.0s  nic001 out ({out1[1]}): removed\n" in out.getvalue()


def test_every_netem_field_reaches_the_kernel_as_one_request() -> None:
    """pyroute2 builds the request for each field; the kernel applies it or, without netem,
    refuses the kind — in one line either way."""
    import os
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("needs root (unshare --net)")
    code = ("from ndisemu.backends import netem\n"
            "from ndisemu.errors import BackendError\n"
            "spec = netem.NetemSpec(delay=0.01, jitter=0.002, loss=5, duplicate=1, reorder=25,"
            " corrupt=0.5, rate=1e6)\n"
            "try:\n"
            "    netem.set_netem('.', 'lo', spec)\n"
            "    print('applied', *netem.qdiscs('.', 'lo'))\n"
            "    netem.set_netem('.', 'lo', None)\n"
            "    print('removed', *netem.qdiscs('.', 'lo'))\n"
            "except BackendError as e:\n"
            "    print('refused', e)\n")
    r = subprocess.run(["unshare", "--net", sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines == ["applied netem", "removed noqueue"] or (
        len(lines) == 1 and lines[0] == "refused cannot put a netem qdisc on lo: this kernel has "
        "no netem (CONFIG_NET_SCH_NETEM, module sch_netem); [[wire]] faults on tap/veth need it "
        "(or use --backend memory)"), r.stdout


