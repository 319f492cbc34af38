"""Bind-storm sweeps: a grid of cells, each a pure function of its parameters and seed.

`run_cell(cell)` runs one storm in virtual time (`tcpip6lab.storm.run_storm`) and returns a small
flat record (`FIELDS`): the cell's parameters, the outcome and what was measured. Everything but
`wall_seconds` depends only on the cell, so the same grid gives the same records on any
`concurrent.futures.Executor` — a process pool (the default), a thread pool, or a Dask
cluster's `client.get_executor()`.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from tcpip6lab.params import ModelParams

_D = ModelParams()
DEFAULT_HORIZON = 300.0

#: Columns of the CSV, keys of every record, in order.
PARAM_FIELDS = ("executor", "adapters", "interval", "seed", "latency", "static_threads",
                "additional_critical", "max_dynamic", "foreign_holders", "horizon")
RESULT_FIELDS = (
    "outcome",            # bound / deadlock / stalled / failed (or error: the cell raised)
    "adapters_bound",
    "bind_all_seconds",   # first arrival -> last tcpip6 bind complete (None unless bound)
    "bind_max_seconds",   # slowest single adapter's bind
    "bind_mean_seconds",
    "peak_workers",       # critical queue: static + peak dynamic threads
    "peak_dynamic",
    "dynamic_created",
    "detected_at",        # deadlock proven, virtual seconds after the first arrival
    "virtual_seconds",
    "oids_submitted",
    "oid_completions",
    "ndis_requests",
    "error",
    "wall_seconds",       # with pid, the only fields that depend on the machine
    "pid",                # the worker process that ran the cell (local pool or cluster)
    "reproduce",          # the one command that re-runs this cell locally
)
FIELDS = PARAM_FIELDS + RESULT_FIELDS
#: raised when a cell record's shape changes (bench/schemas/bench-cell.schema.json pins it; each
#: record carries it as `schema_version` in JSON — the CSV keeps exactly FIELDS)
CELL_SCHEMA_VERSION = 1


class CellRecord(TypedDict):
    """One cell's record, typed: `schema_version`, then FIELDS in order (a test holds them
    equal). The published schema bench-cell is generated from it (bench/schema.py)."""

    schema_version: int
    executor: str
    adapters: int
    interval: float
    seed: int
    latency: float
    static_threads: int
    additional_critical: int
    max_dynamic: int
    foreign_holders: int
    horizon: float
    outcome: Literal["bound", "deadlock", "stalled", "failed", "error"]
    adapters_bound: int | None
    bind_all_seconds: float | None
    bind_max_seconds: float | None
    bind_mean_seconds: float | None
    peak_workers: int | None
    peak_dynamic: int | None
    dynamic_created: int | None
    detected_at: float | None
    virtual_seconds: float | None
    oids_submitted: int | None
    oid_completions: int | None
    ndis_requests: int | None
    error: str | None
    wall_seconds: float
    pid: int
    reproduce: str


@dataclass(frozen=True)
class Cell:
    """One storm of the grid. Picklable; `run_cell` depends on nothing else."""

    executor: str
    adapters: int
    interval: float = 0.0
    seed: int = 0
    latency: float = _D.latency
    static_threads: int = _D.executive.critical_static
    additional_critical: int = _D.executive.additional_critical
    max_dynamic: int = _D.executive.max_dynamic
    foreign_holders: int = _D.foreign_holders
    horizon: float = DEFAULT_HORIZON

    def params(self) -> ModelParams:
        return ModelParams(executor=self.executor, latency=self.latency,
                           foreign_holders=self.foreign_holders).with_(
            critical_static=self.static_threads, additional_critical=self.additional_critical,
            max_dynamic=self.max_dynamic)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def cost(self) -> float:
        """Rough relative wall cost (a storm costs about the same per adapter)."""
        return self.adapters + 4.0


def model_key(r: dict[str, Any] | Cell) -> tuple[Any, ...]:
    """The model parameters of a cell or record besides executor, adapters, interval, seed."""
    d = r.as_dict() if isinstance(r, Cell) else r
    return tuple(d[k] for k in ("latency", "static_threads", "additional_critical",
                                "max_dynamic", "foreign_holders"))


DEFAULT_MODEL_KEY = model_key(Cell("critical", 1))


def make_cells(*, executors: Sequence[str], adapters: Sequence[int],
               intervals: Sequence[float], seeds: Sequence[int] = (0,),
               latencies: Sequence[float] = (_D.latency,),
               static_threads: Sequence[int] = (_D.executive.critical_static,),
               additional_critical: Sequence[int] = (_D.executive.additional_critical,),
               max_dynamic: Sequence[int] = (_D.executive.max_dynamic,),
               foreign_holders: Sequence[int] = (_D.foreign_holders,),
               horizon: float | None = None) -> list[Cell]:
    """The grid's cells, model parameters outermost. `horizon=None`: 300 virtual seconds after
    the last arrival."""
    cells = []
    for lat in latencies:
        for st in static_threads:
            for ac in additional_critical:
                for md in max_dynamic:
                    for fh in foreign_holders:
                        for ex in executors:
                            for iv in intervals:
                                for n in adapters:
                                    h = (horizon if horizon is not None
                                         else round(DEFAULT_HORIZON + (n - 1) * iv, 9))
                                    for seed in seeds:
                                        cells.append(Cell(ex, n, iv, seed, lat, st, ac, md,
                                                          fh, h))
    return cells


def run_cell(cell: Cell) -> dict[str, Any]:
    """Run one storm; return its record (FIELDS). Never raises for a failing storm: a cell
    whose run raised has outcome "error" and the exception in `error`."""
    from tcpip6lab.storm import StormConfig, run_storm

    record: dict[str, Any] = {"schema_version": CELL_SCHEMA_VERSION, **dict.fromkeys(FIELDS)}
    record.update(cell.as_dict())
    t0 = time.perf_counter()
    try:
        r = run_storm(StormConfig(adapters=cell.adapters, params=cell.params(),
                                  interval=cell.interval, seed=cell.seed,
                                  horizon=cell.horizon))
    except Exception as exc:  # a bug in the emulation: keep the sweep going, show it
        record.update(outcome="error", error=f"{type(exc).__name__}: {exc}")
    else:
        cw, oids, bind = r["critical_workers"], r["oids"], r["bind_seconds"]
        record.update(
            outcome=r["outcome"],
            adapters_bound=r["adapters_bound"],
            bind_all_seconds=r["virtual_seconds"] if r["outcome"] == "bound" else None,
            bind_max_seconds=bind["max"],
            bind_mean_seconds=bind["mean"],
            peak_workers=cw["static"] + cw["peak_dynamic"],
            peak_dynamic=cw["peak_dynamic"],
            dynamic_created=cw["dynamic_created"],
            detected_at=r["deadlock"]["detected_at"] if "deadlock" in r else None,
            virtual_seconds=r["virtual_seconds"],
            oids_submitted=oids["submitted"],
            oid_completions=oids["completions_run"],
            ndis_requests=oids["ndis_requests"],
        )
    record["wall_seconds"] = round(time.perf_counter() - t0, 6)
    record["pid"] = os.getpid()  # which worker process ran it (local pool or a cluster)
    record["reproduce"] = reproduce_command(cell)
    return record


def reproduce_command(cell: Cell) -> str:
    """The one command that re-runs this cell locally."""
    p = cell.params()
    ex = p.executive
    return (f"tcpip6-lab storm --adapters {cell.adapters} --executor {cell.executor} "
            f"--interval {cell.interval:g} --seed {cell.seed} --horizon {cell.horizon:g} "
            f"--latency {p.latency:g} --static-threads {ex.critical_static} "
            f"--additional-critical {ex.additional_critical} --max-dynamic {ex.max_dynamic} "
            f"--foreign-holders {p.foreign_holders}")


def cell_key(r: dict[str, Any] | Cell) -> str:
    """A cell's identity: its parameters and seed (what --resume matches on)."""
    d = r.as_dict() if isinstance(r, Cell) else r
    keys = ("executor", "adapters", "interval", "seed", "latency", "static_threads",
            "additional_critical", "max_dynamic", "foreign_holders", "horizon")
    return "|".join(f"{float(d[k]):g}" if isinstance(d[k], int | float) else str(d[k])
                    for k in keys)


Progress = Callable[[int, int, float, float], None]  # cells done, cells, cost done, cost


def run_sweep(cells: Sequence[Cell], executor: Executor | None = None, *,
              jobs: int | None = None, progress: Progress | None = None,
              fn: Callable[[Cell], dict[str, Any]] = run_cell,
              on_record: Callable[[dict[str, Any]], None] | None = None,
              ) -> list[dict[str, Any]]:
    """Run every cell through `executor` (default: a process pool of `jobs` workers, all
    cores) and return the records in the order of `cells`.

    Any `concurrent.futures.Executor` works; the caller keeps ownership of one it passes in.
    Larger cells are submitted first so the pool's tail is short."""
    own = executor is None
    pool: Executor = executor if executor is not None else ProcessPoolExecutor(
        max_workers=jobs or os.cpu_count() or 1)
    total_cost = sum(c.cost for c in cells)
    records: list[dict[str, Any] | None] = [None] * len(cells)
    futures: dict[Future[dict[str, Any]], int] = {}
    try:
        order = sorted(range(len(cells)), key=lambda i: -cells[i].cost)
        for i in order:
            futures[pool.submit(fn, cells[i])] = i
        done_cost = 0.0
        if progress is not None:
            progress(0, len(cells), 0.0, total_cost)
        for n, fut in enumerate(as_completed(futures), 1):
            i = futures[fut]
            record = records[i] = fut.result()
            if on_record is not None:
                on_record(record)  # streamed as it finishes (partial results, --resume)
            done_cost += cells[i].cost
            if progress is not None:
                progress(n, len(cells), done_cost, total_cost)
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in records if r is not None]


def rich_progress(console: Any | None = None, label: str = "bind storms"
                  ) -> tuple[Progress, Callable[[], None]]:
    """A rich progress bar with ETA (weighted by cell cost). Returns (callback, stop)."""
    import rich.progress as rp
    from rich.console import Console

    con = console if console is not None else Console(stderr=True)
    bar = rp.Progress(rp.TextColumn("[bold]{task.description}"), rp.BarColumn(),
                      rp.TextColumn("{task.fields[cells]}"), rp.TimeElapsedColumn(),
                      rp.TextColumn("ETA"), rp.TimeRemainingColumn(), console=con,
                      disable=not con.is_terminal, transient=False)
    task = bar.add_task(label, total=None, cells="")
    bar.start()

    def update(done: int, total: int, cost_done: float, cost: float) -> None:
        bar.update(task, completed=cost_done, total=cost, cells=f"{done}/{total} cells")

    return update, bar.stop


# -- files --------------------------------------------------------------------------------------


def write_csv(records: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(FIELDS), extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({k: "" if r.get(k) is None else r[k] for k in FIELDS})


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Records back from `write_csv` (numbers parsed, empty cells None)."""
    ints = {"adapters", "seed", "static_threads", "additional_critical", "max_dynamic",
            "foreign_holders", "adapters_bound", "peak_workers", "peak_dynamic",
            "dynamic_created", "oids_submitted", "oid_completions", "ndis_requests"}
    text = {"executor", "outcome", "error"}
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rec: dict[str, Any] = {}
            for k, v in row.items():
                if v == "":
                    rec[k] = None
                elif k in text:
                    rec[k] = v
                elif k in ints:
                    rec[k] = int(v)
                else:
                    rec[k] = float(v)
            out.append(rec)
    return out


def write_json(records: Sequence[dict[str, Any]], path: Path, **meta: Any) -> None:
    path.write_text(json.dumps({**meta, "fields": list(FIELDS), "cells": list(records)},
                               indent=1) + "\n", encoding="utf-8")
