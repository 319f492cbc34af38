"""The hang detector's reports: deadlock chains, stalls, and their Graphviz form."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from faults.plan import plan_from_dict
from tcpip6lab.cli import main
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm


def test_deadlock_dot_has_every_worker_of_the_knot(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    dot = tmp_path / "knot.dot"
    assert main(["storm", "--adapters", "24", "--dot", str(dot), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    text = dot.read_text()
    assert text.startswith("digraph deadlock {") and text.rstrip().endswith("}")
    for link in r["deadlock"]["chain"]:
        assert f'"{link["worker"]}" -> "{link["item"]}" [label="runs"]' in text
        assert f'"{link["event"]}" -> "{link["waits_on"]}" [label="set only by"]' in text
    assert len(re.findall(r'\[label="waits on"\]', text)) == 26


def test_slow_but_progressing_oids_are_never_a_stall() -> None:
    """OIDs ten times slower than usual, a queue that keeps dequeuing: nothing reported."""
    params = ModelParams(executor="critical", latency=0.4, latency_jitter=0.0)
    r = run_storm(StormConfig(adapters=20, params=params))
    assert r["outcome"] == "bound" and "stalls" not in r


def test_a_stall_names_its_holders_and_ends_when_progress_resumes() -> None:
    plan = plan_from_dict({"queue": [{"id": "hog", "action": "hold", "workers": 12,
                                      "at": 0.5, "duration": 7.0}]})
    params = ModelParams(executor="async", foreign_holders=0).with_(max_dynamic=0)
    r = run_storm(StormConfig(adapters=2, params=params, plan=plan))
    assert r["outcome"] == "bound"
    (stall,) = r["stalls"]
    held = [h for h in stall["holders"] if h["fault"] == "hog"]
    assert len(held) == 10  # every static worker: the pool cannot grow (max_dynamic 0)
    assert all(h["state"] == "blocked" and h["waits_on"].startswith("fault.hold_done")
               for h in held)
    assert stall["ended_at"] is not None and stall["ended_at"] >= 6.5
    assert "STALL on the critical queue" in r["stalls_text"][0]
