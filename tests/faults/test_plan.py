"""Fault plans: the TOML shape, the Python API, and bad plans rejected in one line: file, the
line the key is written on, the key (with the nearest known one) and what is allowed."""

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


# (plan text, the message after "FILE:") — exact text, exact line: the line the key is written on
BAD = [
    # an unknown key: named first, with the nearest known key, on its own line
    ("[[oid]]\nacton = 'fail'\nstatus = 'NDIS_STATUS_FAILURE'\n",
     "2: acton: unknown key — did you mean action?"),
    ("[run]\nheal_at = 1\n\n[[wire]]\naction = 'loss'\nprobabilty = 0.5\n",
     "6: probabilty: unknown key — did you mean probability?"),
    ("[run]\nsede = 1\n", "2: sede: unknown key — did you mean seed?"),
    ("[[oid]]\naction = 'pend'\nzzzz = 1\n",
     "3: zzzz: unknown key in [[oid]] (known: action, adapters, after, count, delay, id, nth, "
     "oid, probability, status, until)"),
    ("[[oid]]\naction = 'pend'\nstatus = 'NDIS_STATUS_FAILURE'\n",
     '3: status: not a key of action "pend" in [[oid]] (its keys: action, adapters, after, '
     "count, id, nth, oid, probability, until)"),
    ("[chaos]\nx = 1\n", "1: chaos: unknown section (known: miniport, oid, pnp, queue, run, wire)"),
    ("[[queu]]\nx = 1\n", "1: queu: unknown section — did you mean queue?"),
    # the forms tomllib keeps no positions for: inline table, dotted keys, inline array of
    # tables, keys after a multi-line array and a multi-line string
    ("[[oid]]\naction = 'delay'\ndelay = { distribution = 'uniform', low = 0.1, hihg = 2 }\n",
     "3: delay.hihg: unknown key — did you mean delay.high?"),
    ("[[oid]]\naction = 'delay'\n\ndelay.distribution = 'uniform'\ndelay.low = 0.1\n"
     "delay.hgih = 2\n", "6: delay.hgih: unknown key — did you mean delay.high?"),
    ("oid = [\n  { action = 'pend' },\n  { action = 'pend', nht = 2 },\n]\n",
     "3: nht: unknown key — did you mean nth?"),
    ("[[oid]]\naction = 'pend'\nadapters = [\n  'nic0*',  # [fake] = 1\n  'nic1*',\n]\n"
     "after = true\n", "7: after = true: must be a number >= 0, not a boolean"),
    ("[[oid]]\naction = 'pend'\nid = \"\"\"\nnth = 3\n[[oid]]\n\"\"\"\ncuont = 1\n",
     "7: cuont: unknown key — did you mean count?"),
    ("[[oid]]\naction = 'pend'\nadapters = [\n  'nic0*',\n  7,\n]\n",
     '5: adapters = ["nic0*", 7]: must be an adapter name or glob, or a list of them '
     "(element 2 is 7)"),
    # a wrong type, a value out of range, a value not among the allowed ones: key = value: rule
    ("[[queue]]\naction = 'hold'\nworkers = 'two'\nduration = 1\n",
     '3: workers = "two": must be an integer >= 1, not a string'),
    ("[[queue]]\naction = 'hold'\nworkers = 0\nduration = 1\n",
     "3: workers = 0: must be an integer >= 1"),
    ("[[wire]]\naction = 'loss'\n\n[[wire]]\naction = 'loss'\nprobability = 1.5\n",
     "6: probability = 1.5: must be a number from 0 to 1"),
    ("[[oid]]\naction = 'delay'\ndelay = -1\n", "3: delay = -1: must be a number >= 0"),
    ("[run]\nseed = -1\n", "2: seed = -1: must be an integer >= 0"),
    ("[[oid]]\naction = 'explode'\n",
     '2: action = "explode": must be one of delay, pend, fail, double-complete'),
    ("[[oid]]\naction = 'fail'\n",
     '2: status: missing in [[oid]]; action "fail" requires it'),
    ("[[oid]]\naction = 'fail'\nstatus = 'NDIS_STATUS_NOPE'\n",
     '3: status = "NDIS_STATUS_NOPE": unknown status; must be an NDIS_STATUS_* failure name, '
     "e.g. NDIS_STATUS_FAILURE"),
    ("[[oid]]\naction = 'pend'\noid = 'OID_NOPE'\n",
     '3: oid = "OID_NOPE": unknown OID; must be an OID name like OID_GEN_LINK_SPEED, its code, '
     'or "*" for every OID'),
    ("[[oid]]\naction = 'pend'\nafter = 5\nuntil = 2\n",
     "4: until = 2: must be later than after = 5"),
    ("[[oid]]\naction = 'pend'\nid = 'x'\n[[oid]]\naction = 'pend'\nid = 'x'\n",
     '6: id = "x": must be unique, and it is already the id of the entry on line 3'),
    ("[[oid]]\naction = 'pend'\ndirection = 'in'\n[[wire]]\naction = 'loss'\ndirection = 'up'\n",
     "3: direction: not a key of [[oid]] (it belongs to [[wire]]; [[oid]] keys: action, "
     "adapters, after, count, delay, id, nth, oid, probability, status, until)"),
    ("[[wire]]\naction = 'loss'\ndirection = 'up'\n",
     '3: direction = "up": must be one of in, out, both'),
]


@pytest.mark.parametrize("text,expected", BAD)
def test_bad_plans_are_rejected_with_the_key_its_line_and_what_is_allowed(
        tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert str(info.value) == f"{path}:{expected}"


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text("[[oid]\naction = 'pend'\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert str(info.value).startswith(f"{path}: not valid TOML: ")
    assert "\n" not in str(info.value)


def test_a_plan_given_as_a_dict_names_the_key_without_a_line() -> None:
    with pytest.raises(PlanError) as info:
        plan_from_dict({"oid": [{"action": "pend", "nht": 2}]}, source="api")
    assert str(info.value) == "api: nht: unknown key — did you mean nth?"


def test_key_lines_of_each_toml_form() -> None:
    from faults.tomlpos import scan

    text = """\
[run]
seed = 7 # a comment
[[oid]]
action = "x"
delay.low = 0.1
delay."hi.gh" = 2
note = \"\"\"a
b = 3 \\\"\"\"
[[c]]\"\"\"\"
after = 1
adapters = [
  "a",  # ]
  {q = 1, r = 'x'},
]
when = 1979-05-27 07:32:00
e = { a = { b = 1 }, c = 2 }
[[oid]]
nth = 2
[ oid . sub ]
z = 1
"""
    import tomllib
    tomllib.loads(text)  # it is TOML
    lines = scan(text)
    expected = {("run",): 1, ("run", "seed"): 2, ("oid",): 3, ("oid", 0): 3,
                ("oid", 0, "action"): 4, ("oid", 0, "delay"): 5, ("oid", 0, "delay", "low"): 5,
                ("oid", 0, "delay", "hi.gh"): 6, ("oid", 0, "note"): 7,
                ("oid", 0, "after"): 10, ("oid", 0, "adapters"): 11,
                ("oid", 0, "adapters", 0): 12, ("oid", 0, "adapters", 1): 13,
                ("oid", 0, "adapters", 1, "r"): 13, ("oid", 0, "when"): 15,
                ("oid", 0, "e", "a", "b"): 16, ("oid", 0, "e", "c"): 16, ("oid", 1): 17,
                ("oid", 1, "nth"): 18, ("oid", 1, "sub"): 19, ("oid", 1, "sub", "z"): 20}
    for path, line in expected.items():
        assert lines.exact(*path) == line, path
    assert lines.exact("b") is None and lines.exact("c") is None  # inside the string
    assert lines.line("oid", 1, "nope") == 17  # the nearest written ancestor


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
