"""Sweep cells are pure functions of their parameters and seed: any Executor gives the same
records (wall times aside)."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import fields
from typing import Any

from bench.sweep import FIELDS, PARAM_FIELDS, Cell, make_cells, run_cell, run_sweep

CELLS = [
    Cell("critical", 23),
    Cell("critical", 24),
    Cell("dedicated", 3, interval=0.001, seed=1),
    Cell("async", 4, latency=0.005),
    Cell("rescuer", 24),
    Cell("critical", 5, static_threads=2, additional_critical=1, max_dynamic=0,
         foreign_holders=0),
]


def without_wall(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "pid")} for r in records]


def test_process_and_thread_pools_give_identical_records() -> None:
    with ProcessPoolExecutor(max_workers=2) as procs:
        a = run_sweep(CELLS, procs)
    with ThreadPoolExecutor(max_workers=3) as threads:
        b = run_sweep(CELLS, threads)
    assert without_wall(a) == without_wall(b)
    assert [r["adapters"] for r in a] == [c.adapters for c in CELLS]  # the cells' order
    assert [r["outcome"] for r in a] == ["bound", "deadlock", "bound", "bound", "bound",
                                         "deadlock"]
    assert all(r["wall_seconds"] > 0 for r in a + b)


def test_a_record_has_every_field_and_the_measurements() -> None:
    bound, dead = run_cell(CELLS[0]), run_cell(CELLS[1])
    for r in (bound, dead):
        assert tuple(r) == ("schema_version", *FIELDS)  # JSON carries the version; CSV FIELDS
        assert r["error"] is None
    assert bound["adapters_bound"] == 23 and bound["bind_all_seconds"] > 0
    assert bound["bind_max_seconds"] <= bound["bind_all_seconds"]
    assert bound["detected_at"] is None and bound["oids_submitted"] == bound["oid_completions"]
    assert dead["bind_all_seconds"] is None and dead["detected_at"] > 0
    assert dead["peak_dynamic"] == 16 and dead["peak_workers"] == 26
    assert dead["dynamic_created"] >= 16


def test_cells_are_small_and_picklable() -> None:
    cell = CELLS[3]
    assert pickle.loads(pickle.dumps(cell)) == cell
    assert tuple(f.name for f in fields(Cell)) == PARAM_FIELDS
    assert cell.params().latency == 0.005 and cell.params().executor == "async"


def test_a_failing_cell_is_an_error_record_not_an_exception() -> None:
    r = run_cell(Cell("critical", 3, horizon=0.0))  # StormConfig refuses horizon 0
    assert r["outcome"] == "error" and "horizon" in r["error"]


def test_make_cells_expands_the_grid() -> None:
    cells = make_cells(executors=["critical", "async"], adapters=[1, 2], intervals=[0.0, 0.5],
                       seeds=[0, 1], foreign_holders=[0, 2])
    assert len(cells) == 2 * 2 * 2 * 2 * 2
    assert {c.horizon for c in cells if c.interval == 0.5 and c.adapters == 2} == {300.5}
    fixed = make_cells(executors=["async"], adapters=[3], intervals=[1.0], horizon=9.0)
    assert fixed[0].horizon == 9.0


def test_progress_reports_every_cell() -> None:
    calls: list[tuple[int, int]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        run_sweep(CELLS[:2], pool, progress=lambda d, n, _c, _t: calls.append((d, n)))
    assert calls == [(0, 2), (1, 2), (2, 2)]
