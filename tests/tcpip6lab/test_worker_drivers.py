"""The kernel's two drivers — worker threads as trio tasks, or as coroutines the dispatcher
steps — are one model: the same storm gives the same event trace, hash for hash, whatever the
executor, schedule, seed, fault plan or traffic."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from faults.plan import parse_plan
from ndisemu.kernel import WORKER_MODES
from tcpip6.registry import BUILTIN_NAMES
from tcpip6lab.cli import main
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm
from tests.golden.traces import PLAN  # faults of every kind, PnP bursts and departures


def _traces(cfg: dict[str, object]) -> dict[str, tuple[str, str, object]]:
    out = {}
    for workers in WORKER_MODES:
        log = io.StringIO()
        r = run_storm(StormConfig(log=log, workers=workers, **cfg))  # type: ignore[arg-type]
        out[workers] = (r["outcome"], r["trace_hash"], r.get("faults"))
        assert len(log.getvalue().splitlines()) > 50  # a real trace, not an empty one
    return out


@pytest.mark.parametrize("executor", BUILTIN_NAMES)
@pytest.mark.parametrize("schedule", ["random", "fifo", "pct"])
def test_both_drivers_give_the_same_trace(executor: str, schedule: str) -> None:
    for seed in (0, 1):
        t = _traces({"adapters": 30, "seed": seed,
                     "params": ModelParams(executor=executor, schedule=schedule)})
        assert t["tasks"] == t["coroutines"], (executor, schedule, seed)


@pytest.mark.parametrize("executor", ["critical", "dedicated"])
def test_same_trace_under_faults_and_traffic(executor: str) -> None:
    plan = parse_plan(PLAN, source="<test>")
    t = _traces({"adapters": 12, "seed": 3, "interval": 0.1, "traffic": True, "plan": plan,
                 "horizon": 60.0, "params": ModelParams(executor=executor)})
    assert t["tasks"] == t["coroutines"]
    fired = t["tasks"][2]["fired"]  # type: ignore[index]
    assert set(fired) == {"oid0", "oid1", "miniport0", "miniport1", "wire0", "queue0", "pnp0",
                          "pnp1"}  # every fault of the plan fired


def test_storms_default_to_the_coroutine_driver() -> None:
    assert StormConfig(adapters=1).workers == "coroutines"


def test_the_storm_command_takes_either_driver(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    hashes = set()
    for workers in WORKER_MODES:
        assert main(["storm", "--adapters", "24", "--workers", workers, "--json",
                     "--seed", "2", "--log", str(tmp_path / f"{workers}.jsonl")]) == 0
        r = json.loads(capsys.readouterr().out)
        assert r["outcome"] == "deadlock"
        hashes.add(r["trace_hash"])
    assert len(hashes) == 1
    assert main(["storm", "--adapters", "2", "--workers", "threads"]) == 2
    assert "invalid choice: 'threads'" in capsys.readouterr().err
