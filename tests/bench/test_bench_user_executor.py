"""`bench storm` with a user's executor: the spec travels as a string to the worker processes,
which import it; its cliff is measured and reported, the formula check skipped."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from bench.cli import run_bench
from bench.cliff import check_cliffs
from bench.grid import GridError, parse_executors
from bench.sweep import Cell, run_sweep
from tests.bench.test_bench_outputs import bench_args

USER = "tests.tcpip6.user_executors:Unpatched"
BOUNDED = "tcpip6.example_executors:BoundedExecutor"


def test_executor_lists_take_specs() -> None:
    assert parse_executors(f"critical,{USER},all") == ["critical", USER, "dedicated", "async",
                                                       "rescuer"]
    with pytest.raises(GridError, match=r"no module named 'no_such_module_xyz'$"):
        parse_executors("critical,no_such_module_xyz:X")
    with pytest.raises(GridError, match=r"unknown executor 'fast'.*\('all' = critical,"
                                        r"dedicated,async,rescuer\)$"):
        parse_executors("fast")


def test_a_fresh_worker_process_imports_the_spec() -> None:
    """A spawned process starts with nothing imported: the cell's string is all it gets."""
    cells = [Cell(USER, 24), Cell(BOUNDED, 40)]
    with ProcessPoolExecutor(max_workers=1,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        records = run_sweep(cells, pool)
    assert [(r["executor"], r["outcome"]) for r in records] == [(USER, "deadlock"),
                                                                (BOUNDED, "bound")]
    assert all(r["pid"] != os.getpid() for r in records)
    assert f"--executor {USER} " in records[0]["reproduce"]


def test_bench_storm_reports_a_users_cliff_and_skips_the_formula(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["storm", "--adapters", "23..25", "--interval", "0", "--seeds", "0",
            "--executor", f"critical,{USER},{BOUNDED}", "--jobs", "2", "--no-progress",
            "--no-plots", "--out", str(tmp_path)]
    assert run_bench(bench_args(*argv)) == 0  # default: a process pool
    lines = capsys.readouterr().out.splitlines()
    skipped = [line for line in lines if "formula check skipped" in line]
    assert skipped == [
        f"  Cliff ({USER} executor, burst, default NT parameters): measured 24 adapters "
        "(23 bind, 24 deadlock) over 1 seed(s); no closed-form capacity for this executor: "
        "formula check skipped.",
        f"  Cliff ({BOUNDED} executor, burst, default NT parameters): measured none up to 25 "
        "adapters over 1 seed(s); no closed-form capacity for this executor: formula check "
        "skipped."]
    assert any("Cliff (critical executor" in line and "agree" in line for line in lines)
    assert any(line.startswith(f"  {USER} ") and "deadlock" in line for line in lines)
    data = json.loads((tmp_path / "cells.json").read_text())
    by_executor = {c["executor"]: c for c in data["cliff"]}
    assert by_executor["critical"]["computed"] == by_executor["critical"]["measured"] == 24
    assert by_executor[USER]["computed"] is None and by_executor[USER]["measured"] == 24
    assert by_executor[USER]["agree"] and by_executor[BOUNDED]["measured"] is None
    assert set(data["summary"]["executors"]) == {"critical", USER, BOUNDED}


def test_a_users_cliff_never_fails_the_bench() -> None:
    """No formula to disagree with: even a cliff that is not one only gets reported."""
    records = [{"executor": USER, "interval": 0, "adapters": n, "seed": s,
                "outcome": outcome, "latency": 0.002, "static_threads": 10,
                "additional_critical": 0, "max_dynamic": 16, "foreign_holders": 2}
               for n, s, outcome in [(3, 0, "deadlock"), (3, 1, "bound"), (4, 0, "bound"),
                                     (4, 1, "bound")]]
    (check,) = check_cliffs(records)
    assert check.agree and check.computed is None and check.measured is None
    assert "seed-dependent" in check.caption() and "formula check skipped" in check.caption()
    # The records of a user's executor whose module is gone (a replayed cells file) too.
    for r in records:
        r["executor"] = "gone_module_xyz:Exec"
    (check,) = check_cliffs(records)
    assert check.agree and not check.has_formula


def test_a_dask_cluster_imports_the_spec_too() -> None:
    pytest.importorskip("dask.distributed")
    from bench.cli import dask_executor

    with dask_executor("local", jobs=1) as dask:
        records = run_sweep([Cell(USER, 23), Cell(USER, 24)], dask)
    assert [r["outcome"] for r in records] == ["bound", "deadlock"]
    assert all(r["executor"] == USER and r["pid"] != os.getpid() for r in records)
