"""Sweeps on a Dask cluster give the same records as on the local pool; results stream to a
partial file that --resume picks up."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bench.cli import dask_executor, main
from bench.phase import PARTIAL, run_storm_bench
from bench.sweep import cell_key, make_cells, run_sweep


def small_grid() -> list[Any]:
    return make_cells(executors=["critical", "async"], adapters=[2, 23, 24], intervals=[0.0],
                      seeds=[0, 1], latencies=[0.002], static_threads=[10],
                      additional_critical=[0], max_dynamic=[16], foreign_holders=[2],
                      horizon=300.0)


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "pid")} for r in records]


def test_a_real_local_cluster_gives_the_same_records_as_the_local_pool() -> None:
    pytest.importorskip("dask.distributed")
    cells = small_grid()
    with ProcessPoolExecutor(2) as pool:
        local = run_sweep(cells, pool)
    with dask_executor("local", jobs=2) as dask:
        remote = run_sweep(cells, dask)
    assert comparable(local) == comparable(remote)
    assert {r["outcome"] for r in remote} == {"bound", "deadlock"}
    workers = {r["pid"] for r in remote} - {os.getpid()}
    assert len(workers) >= 2  # real worker processes of the cluster did the work
    assert all(r["reproduce"].startswith("tcpip6-lab storm --adapters ") for r in remote)


def test_results_stream_to_a_partial_file_and_resume_skips_done_cells(tmp_path: Path) -> None:
    cells = small_grid()
    run_storm_bench(cells, tmp_path, jobs=2, plots=False)
    lines = (tmp_path / PARTIAL).read_text().splitlines()
    assert len(lines) == len(cells)
    # An interrupted sweep: only the first half made it to disk (and a torn last line).
    (tmp_path / PARTIAL).write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    bench = run_storm_bench(cells, tmp_path, jobs=2, plots=False, resume=True)
    kept = {cell_key(json.loads(line)) for line in lines[:5]}
    assert len(bench.records) == len(cells)
    assert {cell_key(r) for r in bench.records} == {cell_key(c) for c in cells}
    reread = [json.loads(x) for x in (tmp_path / PARTIAL).read_text().splitlines()
              if x.startswith("{") and x.endswith("}")]
    assert kept <= {cell_key(r) for r in reread}
    assert json.loads((tmp_path / "cells.json").read_text())["resumed_cells"] == 5


def test_scheduler_without_dask_is_one_line_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_dask(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith(("dask", "distributed")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    code = main(["bench", "storm", "--adapters", "2", "--interval", "0", "--executor",
                 "async", "--seeds", "0", "--out", str(tmp_path), "--scheduler", "local",
                 "--no-progress", "--no-plots"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'tcpip6-lab[cluster]'" in err
