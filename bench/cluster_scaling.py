"""Cells per second of a storm sweep: 1 and 2 local worker processes and a Dask LocalCluster
of 2 workers, in one run (the same grid each time).

    python -m bench.cluster_scaling [--cells-adapters 1..30] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .cli import dask_executor
from .grid import parse_int_grid
from .sweep import make_cells, run_sweep


def rate(cells: list[Any], executor: Executor) -> float:
    t = time.perf_counter()
    run_sweep(cells, executor)
    return len(cells) / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster_scaling",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--adapters", default="1..30")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    cells = make_cells(executors=["critical", "dedicated", "async", "rescuer"],
                       adapters=parse_int_grid(args.adapters, minimum=1), intervals=[0.0, 0.001],
                       seeds=[0], latencies=[0.002], static_threads=[10],
                       additional_critical=[0], max_dynamic=[16], foreign_holders=[2],
                       horizon=300.0)
    results: dict[str, float] = {}
    for workers in (1, 2):
        with ProcessPoolExecutor(workers) as pool:
            run_sweep(cells[:4], pool)  # warm the workers up
            results[f"local_{workers}"] = rate(cells, pool)
    with dask_executor("local", jobs=2) as dask:
        run_sweep(cells[:4], dask)
        results["dask_local_2"] = rate(cells, dask)
    base = results["local_1"]
    for name, value in results.items():
        print(f"{name:<14} {value:8.1f} cells/s   x{value / base:.2f} of 1 local worker")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster_scaling.json").write_text(json.dumps(
        {"cells": len(cells), "cells_per_second": results,
         "speedup_vs_1_local": {k: v / base for k, v in results.items()}}, indent=2))
    print(f"saved {out / 'cluster_scaling.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
