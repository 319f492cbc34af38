"""Fault plans: the TOML shape, the Python API, and bad plans rejected with file:line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from faults.errors import PlanError
from faults.plan import Delay, load_plan, parse_plan, plan_from_dict
from ndisemu.constants import NdisStatus, Oid

GOOD = """\
[run]
seed = 7
heal_at = 30.0

[[oid]]
oid = "OID_GEN_CURRENT_PACKET_FILTER"   # or "*" for every OID
action = "fail"                         # delay | pend | fail | double-complete
status = "NDIS_STATUS_FAILURE"
probability = 1.0

[[oid]]
oid = "*"
action = "delay"
delay = 0.8
probability = 0.5

[[oid]]
id = "slow-links"
oid = "OID_GEN_LINK_SPEED"
action = "delay"
delay = { distribution = "uniform", low = 0.1, high = 0.5 }
adapters = ["nic00?", "nic1*"]
after = 1.0
until = 9.0

[[miniport]]
action = "hang"
nth = 3

[[wire]]
action = "loss"
direction = "in"
count = 2

[[queue]]
action = "hold"
queue = "critical"
workers = 4
at = 2.0
duration = 5.0

[[pnp]]
action = "burst"
count = 3
at = 4.0
"""


def test_the_issue_example_loads() -> None:
    plan = parse_plan(GOOD, source="good.toml")
    assert plan.seed == 7 and plan.heal_at == 30.0
    assert [f.id for f in plan.faults] == ["oid0", "oid1", "slow-links", "miniport0", "wire0",
                                           "queue0", "pnp0"]
    fail, delay, slow = plan.of_kind("oid")
    assert fail.oid == Oid.GEN_CURRENT_PACKET_FILTER and fail.action == "fail"
    assert fail.params["status"] is NdisStatus.FAILURE
    assert delay.oid is None and delay.params["delay"] == Delay(fixed=0.8)
    assert delay.trigger.probability == 0.5
    assert slow.params["delay"].distribution == "uniform"
    assert slow.trigger.selects("nic003") and slow.trigger.selects("nic142")
    assert not slow.trigger.selects("nic020")
    assert slow.line == 17  # the line of its [[oid]] header
    assert plan.of_kind("miniport")[0].trigger.nth == 3
    assert plan.of_kind("queue")[0].params == {"queue": "critical", "workers": 4, "at": 2.0,
                                               "duration": 5.0}


def test_python_api_equals_toml() -> None:
    a = parse_plan(GOOD)
    b = plan_from_dict(a.as_dict())
    assert [(f.id, f.kind, f.action, f.trigger, f.params) for f in a.faults] == \
        [(f.id, f.kind, f.action, f.trigger, f.params) for f in b.faults]


@pytest.mark.parametrize("text,where,needle", [
    ("[[oid]]\naction = 'explode'\n", ":1:", "action: 'explode' is not one of"),
    ("[[oid]]\naction = 'fail'\n", ":1:", "status: required"),
    ("[[oid]]\naction = 'fail'\nstatus = 'NDIS_STATUS_NOPE'\n", ":1:", "unknown status"),
    ("[[oid]]\naction = 'pend'\noid = 'OID_NOPE'\n", ":1:", "unknown OID"),
    ("[run]\nheal_at = 1\n\n[[wire]]\naction = 'loss'\nprobabilty = 0.5\n", ":4:",
     "probabilty: unknown key"),
    ("[[wire]]\naction = 'loss'\n\n[[wire]]\naction = 'loss'\nprobability = 1.5\n", ":4:",
     "probability: must be in [0, 1]"),
    ("[[queue]]\naction = 'hold'\nworkers = 0\nduration = 1\n", ":1:", "workers: must be >= 1"),
    ("[[queue]]\naction = 'hold'\nworkers = 'two'\nduration = 1\n", ":1:",
     "workers: must be an integer"),
    ("[[oid]]\naction = 'delay'\ndelay = -1\n", ":1:", "delay: must be a finite number >= 0"),
    ("[[oid]]\naction = 'pend'\nafter = 5\nuntil = 2\n", ":1:", "until: must be later"),
    ("[[oid]]\naction = 'pend'\nid = 'x'\n[[oid]]\naction = 'pend'\nid = 'x'\n", ":4:",
     "duplicate id"),
    ("[run]\nseed = -1\n", ":1:", "seed: must be a non-negative integer"),
    ("[chaos]\nx = 1\n", ":1:", "unknown section 'chaos'"),
    ("[[oid]\naction = 'pend'\n", "", "not valid TOML"),
])
def test_bad_plans_are_rejected_with_file_line_and_key(tmp_path: Path, text: str, where: str,
                                                        needle: str) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    message = str(info.value)
    assert message.startswith(str(path) + where), message
    assert needle in message
    assert "\n" not in message


def test_a_missing_plan_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read fault plan"):
        load_plan(tmp_path / "nope.toml")


TIMED = """
[[oid]]
id = "window"
action = "pend"
after = 2.0
until = 3.5

[[oid]]
id = "from-the-start"
action = "pend"
until = 0.5

[[queue]]
id = "hold"
action = "hold"
workers = 1
at = 0.25
duration = 4.0

[[wire]]
id = "untimed"
action = "loss"
probability = 0.5
"""


def test_varied_timings_move_each_fault_by_its_own_seeded_offset() -> None:
    plan = parse_plan(TIMED)
    assert plan.with_varied_timings(3, 0.0).faults == plan.faults
    seen_at = set()
    for seed in range(40):
        v = {f.id: f for f in plan.with_varied_timings(seed, 2.0).faults}
        assert v == {f.id: f for f in plan.with_varied_timings(seed, 2.0).faults}  # a function
        w = v["window"].trigger
        assert w.after is not None and w.until is not None and w.after >= 0
        assert w.until - w.after == pytest.approx(1.5)  # the window moves whole
        assert 0.0 <= w.after <= 4.0
        s = v["from-the-start"].trigger
        assert s.after is None and s.until is not None and 0 < s.until <= 2.5
        at = v["hold"].params["at"]
        assert 0.0 <= at <= 2.25 and v["hold"].params["duration"] == 4.0
        seen_at.add(round(at, 6))
        assert v["untimed"] == next(f for f in plan.faults if f.id == "untimed")
    assert len(seen_at) > 20  # really drawn per seed
    assert 0.0 in seen_at  # clamped at the start of the run


def test_a_varied_plan_is_logged_so_that_replay_reproduces_it(tmp_path: Path) -> None:
    from tcpip6lab.params import ModelParams
    from tcpip6lab.storm import StormConfig, replay, run_storm

    varied = parse_plan(TIMED, source="timed.toml").with_varied_timings(7, 2.0)
    assert varied.text is None and "varied ±2s, seed 7" in varied.source
    log = tmp_path / "run.jsonl"
    with log.open("w") as fh:
        run_storm(StormConfig(adapters=4, params=ModelParams(executor="dedicated"), seed=7,
                              plan=varied, log=fh, traffic=True))
    rep, _ = replay(str(log))
    assert rep.divergence is None and rep.events > 100


def test_a_bad_timing_spread_is_refused() -> None:
    with pytest.raises(PlanError, match="timing spread"):
        parse_plan(TIMED).with_varied_timings(1, -1.0)
