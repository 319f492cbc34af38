"""Wire faults' new keys on the memory wire (jitter, rate) and their netem form (faults.netem)."""

from __future__ import annotations

from typing import Any

import pytest

from faults.errors import PlanError
from faults.injector import FaultInjector
from faults.netem import check_real_plan, edges, spec_at
from faults.plan import parse_plan, plan_from_dict
from ndisemu.backends.memory import MemoryCable
from ndisemu.backends.netem import NetemSpec
from ndisemu.kernel import Kernel


def lateness(plan: dict[str, Any], frames: list[tuple[float, int]]) -> list[float]:
    """The extra delay of each (time, length) frame put on a memory wire under `plan`."""
    kernel = Kernel()
    inj = FaultInjector(plan_from_dict(plan), kernel, seed=3)
    wire = MemoryCable(kernel, "nic000")
    out = []
    for t, length in frames:
        kernel.now = t
        got = inj.on_frame(wire, "out", bytes(length))
        assert got is not None and len(got) == 1
        out.append(got[0][0])
    return out


def test_jitter_spreads_the_delay_uniformly_around_it() -> None:
    late = lateness({"wire": [{"action": "latency", "delay": 0.010, "jitter": 0.004}]},
                    [(i * 0.1, 100) for i in range(400)])
    assert min(late) >= 0.006 - 1e-12 and max(late) <= 0.014 + 1e-12
    assert min(late) < 0.0065 and max(late) > 0.0135  # the whole ±4 ms is used
    assert abs(sum(late) / len(late) - 0.010) < 0.0005


def test_rate_queues_frames_behind_each_other_at_the_rate() -> None:
    # 1 Mbit/s: a 1250-byte frame takes 10 ms; three at once leave 10, 20, 30 ms late; one
    # sent after the queue drained is only its own 10 ms late.
    late = lateness({"wire": [{"action": "latency", "rate": 1_000_000}]},
                    [(0.0, 1250), (0.0, 1250), (0.0, 1250), (1.0, 1250)])
    assert late == pytest.approx([0.010, 0.020, 0.030, 0.010])


def test_a_latency_needs_a_delay_or_a_rate() -> None:
    with pytest.raises(PlanError, match=r'^<p>:2: delay: missing in \[\[wire\]\]; action '
                                        r'"latency" requires it$'):
        parse_plan('[[wire]]\naction = "latency"\n', source="<p>")
    with pytest.raises(PlanError, match=r"^<p>:3: rate = 0: must be a number >= 1$"):
        parse_plan('[[wire]]\naction = "latency"\nrate = 0\n', source="<p>")
    with pytest.raises(PlanError, match=r"^<p>:3: rate: not a key of action \"loss\""):
        parse_plan('[[wire]]\naction = "loss"\nrate = 10\n', source="<p>")


PLAN = """
[run]
heal_at = 30.0

[[wire]]
action = "loss"
probability = 0.5
direction = "in"
after = 2.0
until = 4.0

[[wire]]
action = "loss"
probability = 0.5
after = 3.0

[[wire]]
id = "slow"
action = "reorder"
probability = 0.25
delay = 0.02
jitter = 0.005
adapters = ["nic001"]

[[wire]]
action = "duplicate"
probability = 0.1
direction = "out"
until = 10.0
"""


def test_the_faults_in_force_make_one_netem_spec_per_adapter_and_direction() -> None:
    plan = parse_plan(PLAN)
    assert edges(plan) == [0.0, 2.0, 3.0, 4.0, 10.0, 30.0]
    assert spec_at(plan, 1.0, "nic000", "in") is None
    assert spec_at(plan, 1.0, "nic000", "out") == NetemSpec(duplicate=pytest.approx(10.0))
    assert spec_at(plan, 2.5, "nic000", "in") == NetemSpec(loss=50.0)
    # two losses at once: 1 - 0.5 * 0.5
    assert spec_at(plan, 3.5, "nic000", "in") == NetemSpec(loss=75.0)
    assert spec_at(plan, 5.0, "nic000", "in") == NetemSpec(loss=50.0)
    # the memory wire's reorder delays a share p of the frames; netem sends 1-p at once
    slow = spec_at(plan, 12.0, "nic001", "out")
    assert slow == NetemSpec(delay=0.02, jitter=0.005, reorder=75.0, loss=50.0)
    assert spec_at(plan, 30.0, "nic001", "out") is None  # healed
    assert NetemSpec(delay=0.02, jitter=0.005, reorder=75.0, loss=50.0).tc_args() == {
        "delay": 20000, "jitter": 5000, "loss": 50.0, "duplicate": 0.0, "prob_corrupt": 0.0,
        "limit": 10000, "prob_reorder": 75.0}
    assert NetemSpec(rate=1e6, delay=0.001).describe() == "netem delay 1ms rate 1e+06bit"


def test_a_netem_request_carries_every_attribute_the_kernel_would_keep_from_before() -> None:
    """The kernel's netem_change keeps a replaced qdisc's reorder, corrupt and rate when the
    request lacks them (the real-device test: test_a_replaced_netem_qdisc_keeps_nothing_of_the_
    one_before); pyroute2 leaves them out at 0, the hook puts them in, and keeps the rate
    keyword out of the request (it would become an estimator). Pyroute2's own request builder,
    no kernel needed."""
    from pyroute2.netlink.rtnl.tcmsg import sched_netem

    from ndisemu.backends.netem import _netem_requests_are_whole

    _netem_requests_are_whole()
    _netem_requests_are_whole()  # once: a second call wraps nothing again

    def request(spec: NetemSpec) -> dict[str, Any]:
        context: dict[str, Any] = {"kind": "netem", **spec.tc_args()}
        context["options"] = sched_netem.get_parameters(dict(context))
        sched_netem.fix_request(context)
        return context

    bare = request(NetemSpec(delay=0.02))
    attrs = dict((a[0], a[1]) for a in bare["options"]["attrs"])
    assert attrs == {"TCA_NETEM_REORDER": {"prob_reorder": 0, "corr_reorder": 0},
                     "TCA_NETEM_CORRUPT": {"prob_corrupt": 0, "corr_corrupt": 0},
                     "TCA_NETEM_RATE": {"rate": 0, "packet_overhead": 0, "cell_size": 0,
                                        "cell_overhead": 0}}
    assert bare["options"]["gap"] == 0  # no reorder
    full = request(NetemSpec(delay=0.1, reorder=50.0, corrupt=10.0, rate=1e6))
    names = [a[0] for a in full["options"]["attrs"]]
    assert sorted(names) == ["TCA_NETEM_CORRUPT", "TCA_NETEM_RATE", "TCA_NETEM_REORDER"]
    got = dict((a[0], a[1]) for a in full["options"]["attrs"])
    assert got["TCA_NETEM_RATE"]["rate"] == 125000  # bytes per second: pyroute2's own
    assert got["TCA_NETEM_CORRUPT"]["prob_corrupt"] > 0
    assert "rate" not in full  # no TCA_RATE estimator


@pytest.mark.parametrize("entry,line", [
    ('action = "loss"\nnth = 3',
     "p.toml:1: [[wire]] wire0: nth = 3: netem cannot express it on --backend tap (it draws "
     "every frame on its own: use probability and after/until)"),
    ('action = "duplicate"\ncount = 2',
     "p.toml:1: [[wire]] wire0: count = 2: netem cannot express it on --backend tap (it draws "
     "every frame on its own: use probability and after/until)"),
    ('action = "latency"\ndelay = { distribution = "normal", mean = 0.01, stddev = 0.002 }',
     'p.toml:1: [[wire]] wire0: delay.distribution = "normal": netem cannot express it on '
     "--backend tap (use a fixed delay with jitter, or a uniform distribution)"),
    ('action = "latency"\ndelay = { distribution = "uniform", low = 0.0, high = 0.1 }\n'
     "jitter = 0.01",
     "p.toml:1: [[wire]] wire0: jitter beside a uniform delay: netem cannot express it on "
     "--backend tap (a uniform delay is already delay ± jitter)"),
    ('action = "latency"\nrate = 1000000\nprobability = 0.5',
     "p.toml:1: [[wire]] wire0: rate with probability = 0.5: netem cannot express it on "
     "--backend tap (netem limits every frame's rate)"),
    ('action = "latency"\ndelay = 0.01\n\n[[wire]]\naction = "reorder"\nafter = 5.0',
     "p.toml:5: [[wire]] wire1: in force together with [[wire]] wire0 on the same adapter and "
     "direction: netem cannot express it on --backend tap (one netem qdisc has one delay; give "
     "them disjoint after/until windows, directions or adapters)"),
])
def test_what_netem_cannot_express_is_refused_in_one_line(entry: str, line: str) -> None:
    plan = parse_plan(f"[[wire]]\n{entry}\n", source="p.toml")
    check_real_plan(plan, "memory")  # the memory wire does all of it
    with pytest.raises(PlanError) as exc:
        check_real_plan(plan, "tap")
    assert str(exc.value) == line


def test_delaying_faults_apart_in_time_direction_or_adapter_are_accepted() -> None:
    for second in ('after = 5.0\ndirection = "in"', 'direction = "out"',
                   'adapters = ["nic001"]'):
        plan = parse_plan('[[wire]]\naction = "latency"\ndelay = 0.01\ndirection = "in"\n'
                          'adapters = ["nic000"]\nuntil = 5.0\n\n'
                          f'[[wire]]\naction = "reorder"\n{second}\n', source="p.toml")
        check_real_plan(plan, "veth")


NO_NETEM = ("this kernel has no netem (CONFIG_NET_SCH_NETEM); only loss, duplicate, corrupt and "
            "rate work without it (or use --backend memory)")


@pytest.mark.parametrize(("entry", "line"), [
    ('action = "latency"\ndelay = 0.01', f"p.toml:1: [[wire]] wire0: delay on --backend tap: "
     f"{NO_NETEM}"),
    ('action = "reorder"\nprobability = 0.5', f"p.toml:1: [[wire]] wire0: reorder on --backend "
     f"tap: {NO_NETEM}"),
    ('action = "latency"\nrate = 1000000\njitter = 0.01\ndirection = "in"',
     f"p.toml:1: [[wire]] wire0: jitter on --backend tap: {NO_NETEM}"),
    ('action = "latency"\nrate = 1000000', "p.toml:1: [[wire]] wire0: rate on the TAP's \"out\" "
     "direction: this kernel has no netem (CONFIG_NET_SCH_NETEM), and without it only "
     "transmissions can be rate-limited (give it direction = \"in\", or use --backend veth)"),
])
def test_without_netem_what_the_bpf_fallback_cannot_do_is_refused_in_one_line(
        entry: str, line: str) -> None:
    plan = parse_plan(f"[[wire]]\n{entry}\n", source="p.toml")
    check_real_plan(plan, "memory", netem=False)  # the memory wire needs no kernel
    with pytest.raises(PlanError) as exc:
        check_real_plan(plan, "tap", netem=False)
    assert str(exc.value) == line


def test_without_netem_loss_duplicate_corrupt_and_a_pure_rate_are_accepted() -> None:
    plan = parse_plan('[[wire]]\naction = "loss"\nprobability = 0.3\n\n'
                      '[[wire]]\naction = "corrupt"\nprobability = 0.1\n\n'
                      '[[wire]]\naction = "duplicate"\nafter = 2.0\n\n'
                      '[[wire]]\naction = "latency"\nrate = 1000000\ndirection = "in"\n',
                      source="p.toml")
    check_real_plan(plan, "tap", netem=False)
    check_real_plan(plan, "veth", netem=False)
    veth_out = parse_plan('[[wire]]\naction = "latency"\nrate = 1000000\n', source="p.toml")
    check_real_plan(veth_out, "veth", netem=False)  # veth's "out" is our end's transmissions


def test_the_bpf_spec_is_the_netem_specs_loss_duplicate_and_rate() -> None:
    from faults.netem import bpf_spec_at
    from ndisemu.backends.bpf import BpfSpec
    from ndisemu.backends.bpfprog import WireProgram

    plan = parse_plan('[[wire]]\naction = "loss"\nprobability = 0.5\nuntil = 4.0\n\n'
                      '[[wire]]\naction = "loss"\nprobability = 0.5\ndirection = "in"\n\n'
                      '[[wire]]\naction = "duplicate"\nprobability = 0.25\nafter = 2.0\n\n'
                      '[[wire]]\naction = "latency"\nrate = 1000000\ndirection = "in"\n',
                      source="p.toml")
    assert bpf_spec_at(plan, 1.0, "nic000", "in", ingress=False) == BpfSpec(
        WireProgram(loss=75.0), 1e6)  # two losses: 1 - 0.5 · 0.5
    bad = parse_plan('[[wire]]\naction = "corrupt"\nprobability = 0.2\n')
    spec = bpf_spec_at(bad, 0.0, "nic000", "out", ingress=True)
    assert spec is not None and spec.program is not None and spec.rate is None
    assert spec.program.corrupt == pytest.approx(20.0) and spec.program.ingress
    assert spec.program.loss == spec.program.duplicate == 0
    assert bpf_spec_at(plan, 3.0, "nic000", "out", ingress=True) == BpfSpec(
        WireProgram(loss=50.0, duplicate=25.0, ingress=True), None)
    assert bpf_spec_at(plan, 5.0, "nic000", "out", ingress=True) == BpfSpec(
        WireProgram(duplicate=25.0, ingress=True), None)
    assert bpf_spec_at(plan, 5.0, "nic000", "in", ingress=False) == BpfSpec(
        WireProgram(loss=50.0, duplicate=25.0), 1e6)
    assert bpf_spec_at(parse_plan('[[wire]]\naction = "loss"\nafter = 9.0\n'), 1.0, "nic000",
                       "in", ingress=False) is None
