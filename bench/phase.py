"""`bench storm`: run a sweep, write every cell (CSV, JSON), draw the phase diagrams, check the
cliff. `write_outputs` does everything after the runs, so recorded cells can be re-rendered
(`--replay`)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cliff import CliffCheck, check_cliffs
from .grid import executor_order, format_duration
from .sweep import (
    DEFAULT_MODEL_KEY,
    Cell,
    Progress,
    cell_key,
    model_key,
    run_sweep,
    write_csv,
    write_json,
)

MAX_FIGURE_GROUPS = 8


@dataclass
class StormBench:
    records: list[dict[str, Any]]
    checks: list[CliffCheck]
    files: dict[str, Path] = field(default_factory=dict)
    wall_seconds: float | None = None  # the sweep, end to end (None when replayed)
    jobs: int | None = None

    @property
    def ok(self) -> bool:
        return all(c.agree for c in self.checks)  # a measured-only check always agrees

    @property
    def default_check(self) -> CliffCheck | None:
        return next((c for c in self.checks if c.is_default and c.has_formula), None)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(terse=True), "machine": platform.machine()}


PARTIAL = "cells.partial.jsonl"


def run_storm_bench(cells: Sequence[Cell], out: Path, *, executor: Executor | None = None,
                    jobs: int | None = None, progress: Progress | None = None,
                    plots: bool = True, meta: dict[str, Any] | None = None,
                    resume: bool = False) -> StormBench:
    """Run the cells, appending each record to cells.partial.jsonl as it finishes; with
    `resume`, cells already in that file are not run again."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL
    done: list[dict[str, Any]] = []
    if resume and partial.exists():
        for line in partial.read_text().splitlines():
            if line.strip():
                try:
                    done.append(json.loads(line))
                except ValueError:
                    break  # a line cut by an interrupted write: everything before it counts
    # Start the file again from the good records only (a torn line of an interrupted write
    # must not glue itself to the next record).
    partial.write_text("".join(json.dumps(r) + "\n" for r in done), encoding="utf-8")
    have = {cell_key(r) for r in done}
    todo = [c for c in cells if cell_key(c) not in have]
    with partial.open("a", encoding="utf-8") as sink:
        def keep(record: dict[str, Any]) -> None:
            sink.write(json.dumps(record) + "\n")
            sink.flush()

        fresh = run_sweep(todo, executor, jobs=jobs, progress=progress, on_record=keep)
    wanted = {cell_key(c) for c in cells}
    by_key = {cell_key(r): r for r in [*done, *fresh]}
    records = [by_key[k] for k in (cell_key(c) for c in cells) if k in by_key and k in wanted]
    wall = time.perf_counter() - t0
    jobs_used = (jobs or os.cpu_count()) if executor is None else None
    info = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
            "sweep_wall_seconds": round(wall, 3), "jobs": jobs_used,
            "resumed_cells": len(cells) - len(todo),
            "executor": "ProcessPoolExecutor" if executor is None else type(executor).__name__,
            **(meta or {})}
    bench = write_outputs(records, out, meta=info, plots=plots)
    bench.wall_seconds = wall
    bench.jobs = jobs_used
    return bench


def _groups(records: Sequence[dict[str, Any]]) -> list[tuple[tuple[Any, ...],
                                                              list[dict[str, Any]]]]:
    by: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by[model_key(r)].append(r)
    return sorted(by.items(), key=lambda kv: (kv[0] != DEFAULT_MODEL_KEY, kv[0]))


def _describe(key: tuple[Any, ...]) -> str:
    lat, st, ac, md, fh = key
    return (f"OID latency {format_duration(lat)}, {st} static critical threads"
            f"{f' + {ac} additional' if ac else ''}, max {md} dynamic, {fh} foreign holders"
            + (" (defaults)" if key == DEFAULT_MODEL_KEY else ""))


def _seeds(records: Sequence[dict[str, Any]]) -> str:
    seeds = sorted({int(r["seed"]) for r in records})
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def captions(records: Sequence[dict[str, Any]], checks: Sequence[CliffCheck],
             key: tuple[Any, ...]) -> str:
    """The figure caption: the cliff measured for this group's parameters beside the computed
    capacity, and the one for the default NT parameters if this group is not it."""
    lines = []
    ours = [c for c in checks if model_key(c.as_dict()) == key]
    mine = next((c for c in ours if c.has_formula), None)
    default = next((c for c in checks if c.is_default and c.has_formula), None)
    if default is not None and default is not mine:
        lines.append(default.caption())
    if mine is not None:
        lines.append(mine.caption())
    else:
        lines.append("Cliff not measured for these parameters: the grid has no burst "
                     "(interval 0) of the critical executor.")
    lines += [c.caption() for c in ours if not c.has_formula]
    if default is None:
        lines.append("Default NT parameters: not in this grid (no cliff check against them).")
    n = len(records)
    lines.append(f"{n} storms in virtual time, {_seeds(records)}; a cell is 'mixed' when its "
                 "seeds disagree. Capacity formula computed by the bench, never by the "
                 "emulation.")
    return "\n".join(lines)


def write_outputs(records: list[dict[str, Any]], out: Path, *, meta: dict[str, Any],
                  plots: bool = True) -> StormBench:
    out.mkdir(parents=True, exist_ok=True)
    checks = check_cliffs(records)
    bench = StormBench(records, checks)
    bench.files["csv"] = out / "cells.csv"
    write_csv(records, bench.files["csv"])
    bench.files["json"] = out / "cells.json"
    write_json(records, bench.files["json"], **meta, cliff=[c.as_dict() for c in checks],
               summary=summary_numbers(records))
    if plots and records:
        from .plots import bind_time_plot, phase_diagram

        for k, (key, rs) in enumerate(_groups(records)[:MAX_FIGURE_GROUPS]):
            suffix = "" if k == 0 else f"-{k + 1}"
            cap = captions(rs, checks, key)
            p = out / f"phase{suffix}.png"
            phase_diagram(rs, p, title=f"Bind-storm outcome — {_describe(key)}", caption=cap)
            bench.files[f"phase{suffix}"] = p
            p = out / f"bind_time{suffix}.png"
            bind_time_plot(rs, p, title=f"Time to bind every adapter — {_describe(key)}",
                           caption=cap)
            bench.files[f"bind_time{suffix}"] = p
    return bench


def summary_numbers(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Outcome counts per executor and same-run ratios of cost per adapter."""
    per: dict[str, dict[str, Any]] = {}
    for ex in executor_order(r["executor"] for r in records):
        rs = [r for r in records if r["executor"] == ex]
        wall = sum(r["wall_seconds"] for r in rs)
        oids = sum(r["ndis_requests"] or 0 for r in rs)
        per[ex] = {"cells": len(rs), "outcomes": dict(Counter(r["outcome"] for r in rs)),
                   "cell_wall_seconds": round(wall, 3), "oids": oids,
                   "wall_us_per_oid": round(1e6 * wall / oids, 3) if oids else None}
    ref = min((v["wall_us_per_oid"] for v in per.values() if v["wall_us_per_oid"]),
              default=None)
    for v in per.values():
        if ref and v["wall_us_per_oid"]:
            v["cost_vs_cheapest"] = round(v["wall_us_per_oid"] / ref, 2)
    return {"cells": len(records), "executors": per,
            "cell_wall_seconds": round(sum(r["wall_seconds"] for r in records), 3)}


def render_summary(bench: StormBench) -> str:
    s = summary_numbers(bench.records)
    lines = [f"{s['cells']} cells"]
    if bench.wall_seconds:
        speedup = s["cell_wall_seconds"] / bench.wall_seconds
        lines[0] += (f" in {bench.wall_seconds:.1f}s wall; the cells' own wall times add up to "
                     f"{speedup:.2f}× that" + (f" ({bench.jobs} workers)" if bench.jobs else ""))
    for ex, v in s["executors"].items():
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(v["outcomes"].items()))
        cost = (f"; wall per OID {v['cost_vs_cheapest']:.2f}× the cheapest executor's"
                if "cost_vs_cheapest" in v else "")
        lines.append(f"  {ex:<9} {outcomes}{cost}")
    for c in bench.checks:
        lines.append(("  " if c.agree else "! ") + c.caption())
    if not any(c.has_formula for c in bench.checks):
        lines.append("  cliff not measured: the grid has no burst (interval 0) of the critical "
                     "executor")
    lines += [f"  wrote {p}" for p in bench.files.values()]
    return "\n".join(lines)
