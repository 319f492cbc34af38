"""Determinism and replay: same seed, plan and parameters -> the same event log, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faults.plan import parse_plan
from tcpip6lab.cli import main
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, replay, run_storm

PLAN = """\
[run]
seed = 11
heal_at = 15.0

[[oid]]
oid = "*"
action = "delay"
delay = { distribution = "exponential", mean = 0.05 }
probability = 0.3

[[oid]]
oid = "OID_GEN_LINK_SPEED"
action = "pend"
count = 3

[[queue]]
action = "hold"
workers = 2
at = 1.0
duration = 2.0

[[wire]]
action = "loss"
probability = 0.2
"""


def logged_run(path: Path, seed: int, executor: str = "critical", adapters: int = 24) -> str:
    with path.open("w") as log:
        r = run_storm(StormConfig(adapters=adapters, params=ModelParams(executor=executor),
                                  seed=seed, plan=parse_plan(PLAN, source="plan.toml"),
                                  log=log, traffic=True))
    return str(r["trace_hash"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_same_seed_same_log_bit_for_bit(tmp_path: Path, seed: int) -> None:
    """Fails loudly if a trio upgrade (or anything) makes runs depend on more than the
    header: two runs in one process, and a replay, must give identical logs."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert logged_run(a, seed) == logged_run(b, seed)
    assert a.read_bytes() == b.read_bytes()
    rep, _ = replay(str(a))
    assert rep.divergence is None and rep.events > 1000


def test_different_seeds_give_different_runs(tmp_path: Path) -> None:
    assert logged_run(tmp_path / "a", 1) != logged_run(tmp_path / "b", 2)


def test_replay_names_the_first_edited_decision(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.jsonl"
    logged_run(log, 3, executor="dedicated", adapters=6)
    lines = log.read_text().splitlines()
    index = next(i for i, line in enumerate(lines)
                 if '"fault.fired"' in line and '"action":"delay"' in line)
    record = json.loads(lines[index])
    record["delay"] = record["delay"] + 0.5  # a different decision than the seed makes
    lines[index] = json.dumps(record, separators=(",", ":"))
    log.write_text("\n".join(lines) + "\n")
    assert main(["replay", str(log)]) == 1
    out = capsys.readouterr().out
    assert f"diverged at event #{record['seq']}" in out


def test_replay_of_an_intact_log_is_identical(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.jsonl"
    h = logged_run(log, 5, executor="async", adapters=4)
    assert main(["replay", str(log)]) == 0
    assert f"trace hash {h}" in capsys.readouterr().out


def test_replay_refuses_what_is_not_a_storm_log(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event": "something"}\n')
    assert main(["replay", str(bad)]) == 2
    assert "not a tcpip6-lab storm log" in capsys.readouterr().err


def test_a_storm_with_task_offload_replays_with_it(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The header carries the miniports' offload caps, and replay runs with them: without
    them the binds would skip OID_TCP_TASK_OFFLOAD and the replay would diverge there."""
    from ndisemu.offload import OffloadCaps

    log = tmp_path / "run.jsonl"
    caps = OffloadCaps(lso_max_size=16_000, lso_min_segments=3)
    with log.open("w") as f:
        r = run_storm(StormConfig(adapters=3, offload=caps, log=f, traffic=True))
    header = json.loads(log.read_text().splitlines()[0])
    assert header["offload"]["lso_max_size"] == 16_000
    assert "OID_TCP_TASK_OFFLOAD" in log.read_text()
    assert main(["replay", str(log)]) == 0
    assert f"trace hash {r['trace_hash']}" in capsys.readouterr().out
    header.pop("offload")  # as if written without it: the replay must notice
    lines = log.read_text().splitlines()
    log.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    assert main(["replay", str(log)]) == 1
    assert "diverged at event" in capsys.readouterr().out


@pytest.mark.parametrize("value", ['"yes"', '{"lso_max_size": 99999}', '{"turbo": true}'])
def test_replay_refuses_a_bad_offload_in_the_header(tmp_path: Path, value: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.jsonl"
    logged_run(log, 0, adapters=2)
    lines = log.read_text().splitlines()
    header = json.loads(lines[0])
    header["offload"] = json.loads(value)
    log.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    assert main(["replay", str(log)]) == 2
    err = capsys.readouterr().err
    assert "offload is not valid" in err and "Traceback" not in err
