"""The cliff check: the measured cliff equals the capacity computed from the parameters, and
the command exits 1 when a record set says otherwise."""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bench.cli import add_bench_parser, run_bench
from bench.cliff import check_cliffs, computed_cliff
from bench.sweep import FIELDS, Cell, run_sweep
from tcpip6lab.cli.options import Parser as _Parser


def bench_args(*argv: str) -> argparse.Namespace:
    p = _Parser(prog="tcpip6-lab")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    add_bench_parser(sub)
    return p.parse_args(["bench", *argv])


def fake(n: int, outcome: str, seed: int = 0, **params: Any) -> dict[str, Any]:
    r: dict[str, Any] = dict.fromkeys(FIELDS)
    r.update(Cell("critical", n, seed=seed, **params).as_dict(), outcome=outcome,
             wall_seconds=0.01, ndis_requests=17 * n)
    return r


def test_measured_cliff_equals_the_computed_capacity() -> None:
    """Default NT parameters (10 + 0 + 16 - 2 = 24) and a small setting (4 + 0 + 4 - 0 = 8),
    two seeds each, bursts on both sides of the cliff."""
    small = {"static_threads": 4, "max_dynamic": 4, "foreign_holders": 0}
    cells = [Cell("critical", n, seed=s) for n in (22, 23, 24, 25) for s in (0, 1)]
    cells += [Cell("critical", n, seed=s, **small) for n in (7, 8) for s in (0, 1)]  # type: ignore[arg-type]
    with ProcessPoolExecutor(max_workers=2) as pool:
        records = run_sweep(cells, pool)
    default, other = check_cliffs(records)
    assert default.is_default and not other.is_default
    assert computed_cliff(10, 0, 16, 2) == default.computed == 24
    assert (default.measured, default.below, default.agree) == (24, 23, True)
    assert default.seeds == 2
    assert (other.computed, other.measured, other.agree) == (8, 8, True)
    assert "measured 24 adapters (23 bind, 24 deadlock)" in default.caption()
    assert "default NT parameters" in default.caption() and "agree" in default.caption()


def test_the_registry_clamp_is_part_of_the_formula() -> None:
    assert computed_cliff(10, 40, 16, 3) == 10 + 16 + 16 - 3


@pytest.mark.parametrize("records,agree,measured,reason", [
    # A sparse axis: the cliff is bracketed, and 24 lies in (16, 32].
    ([fake(16, "bound"), fake(32, "deadlock")], True, 32, ""),
    ([fake(16, "bound"), fake(20, "deadlock")], False, 20, "a burst of 20 already deadlocks"),
    ([fake(23, "bound"), fake(24, "bound"), fake(25, "deadlock")], False, 25,
     "a burst of 24 gives bound, not deadlock"),
    # Nothing deadlocks: fine below the computed cliff, a mismatch when the grid reaches it.
    ([fake(10, "bound"), fake(20, "bound")], True, None, ""),
    ([fake(20, "bound"), fake(30, "stalled")], False, None,
     "a burst of 30 gives stalled, not deadlock"),
    # Not a cliff, or not the same on every seed.
    ([fake(23, "bound"), fake(24, "deadlock"), fake(25, "bound")], False, 24,
     "not a cliff: a burst of 25 does not deadlock"),
    ([fake(24, "deadlock"), fake(24, "bound", seed=1)], False, None, "seed-dependent"),
    # The smallest burst tested already deadlocks: agree if the formula says so.
    ([fake(30, "deadlock"), fake(40, "deadlock")], True, 30, ""),
])
def test_cliff_brackets(records: list[dict[str, Any]], agree: bool, measured: int | None,
                        reason: str) -> None:
    (c,) = check_cliffs(records)
    assert (c.agree, c.measured) == (agree, measured)
    assert reason in c.reason
    assert ("DIFFER" in c.caption()) is (not agree)


def test_only_critical_bursts_count() -> None:
    records = [fake(30, "bound", interval=0.002), {**fake(30, "bound"), "executor": "async"}]
    assert check_cliffs(records) == []


def test_a_mismatching_record_set_exits_1(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cells = tmp_path / "fake.json"
    records = [fake(n, "deadlock" if n >= 22 else "bound") for n in range(18, 27)]
    cells.write_text(json.dumps({"cells": records}))
    out = tmp_path / "out"
    assert run_bench(bench_args("storm", "--replay", str(cells), "--out", str(out))) == 1
    text = capsys.readouterr().out
    assert "measured 22 adapters (21 bind, 22 deadlock)" in text
    assert "= 24: DIFFER — a burst of 22 already deadlocks" in text
    assert (out / "phase.png").exists() and (out / "cells.csv").exists()
    # The same cells through the CSV the command wrote: the same verdict.
    again = tmp_path / "again"
    assert run_bench(bench_args("storm", "--replay", str(out / "cells.csv"), "--out",
                                str(again), "--no-plots")) == 1
    assert not (again / "phase.png").exists()


def test_the_matching_records_exit_0(tmp_path: Path) -> None:
    cells = tmp_path / "fake.json"
    cells.write_text(json.dumps({"cells": [fake(n, "deadlock" if n >= 24 else "bound")
                                           for n in range(20, 28)]}))
    assert run_bench(bench_args("storm", "--replay", str(cells), "--out",
                                str(tmp_path / "o"), "--no-plots")) == 0


def test_an_unreadable_replay_is_a_usage_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run_bench(bench_args("storm", "--replay", str(bad), "--out", str(tmp_path))) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcpip6-lab bench: error: cannot read cells") and err.count("\n") == 1
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"cells": [{"executor": "critical"}]}))
    assert run_bench(bench_args("storm", "--replay", str(other), "--out", str(tmp_path))) == 2
    assert "is not a cells file" in capsys.readouterr().err
