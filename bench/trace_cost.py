"""What `--trace FILE.perfetto-trace` costs a bind storm: the same storm untraced and traced.

Issue 20's target: a traced 10,000-adapter storm takes at most twice its untraced time, with
peak RSS at most 200 MB above it. Each run is a fresh spawned interpreter (so its peak RSS is its
own) that first runs a 2-adapter warm-up storm (lazy imports not counted), then the measured
storm — `run_storm` as `tcpip6-lab storm` calls it, the traced one with the Perfetto sink and the
file closed inside the measured time. Untraced and traced runs alternate, `--repeat` times each;
the ratio is best traced over best untraced, for wall time and for the process's CPU time (on a
shared machine the CPU time is the steadier of the two; `--max-ratio` checks it).

    python -m bench.trace_cost                          # 10,000 adapters, dedicated, best of 3
    python -m bench.trace_cost --adapters 2000 --repeat 1 --executor critical
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .errors import BenchUsageError
from .jsonout import report

EXECUTORS = ("critical", "dedicated", "async", "rescuer")


def measure(adapters: int, executor: str, trace_path: str | None) -> dict[str, Any]:
    """One storm in this process (a fresh one: `run`): wall and CPU seconds, peak RSS."""
    import resource
    import time

    from tcpip6lab.buildinfo import compiled_modules
    from tcpip6lab.params import ModelParams
    from tcpip6lab.storm import StormConfig, run_storm

    params = ModelParams(executor=executor)
    run_storm(StormConfig(adapters=2, params=params))  # warm-up: imports, first-call costs
    trace = None
    sinks: list[Any] = []
    if trace_path is not None:
        from tcpip6lab.perfetto_trace import PerfettoTrace

        trace = PerfettoTrace(trace_path)
        sinks.append(trace.host_sink(f"storm host ({executor} executor)"))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        result = run_storm(StormConfig(adapters=adapters, params=params, extra_sinks=sinks))
    finally:
        if trace is not None:
            trace.close()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    out: dict[str, Any] = {
        "traced": trace is not None, "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "outcome": str(result.outcome), "adapters_bound": result.adapters_bound,
        "compiled_modules": len(compiled_modules()),
    }
    if trace is not None and trace_path is not None:
        out["packets"] = trace.packets
        out["trace_mb"] = round(os.path.getsize(trace_path) / 1e6, 1)
    return out


def run(adapters: int, executor: str, repeat: int,
        progress: Any = None) -> dict[str, Any]:
    """`repeat` untraced and traced storms, alternating, each in a fresh interpreter."""
    ctx = multiprocessing.get_context("spawn")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="t6l-trace-cost-") as tmp:
        path = str(Path(tmp) / "storm.perfetto-trace")
        for _ in range(repeat):
            for traced in (False, True):
                with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                    r = pool.submit(measure, adapters, executor,
                                    path if traced else None).result()
                runs.append(r)
                if progress is not None:
                    progress(r)
    plain = [r for r in runs if not r["traced"]]
    traced_runs = [r for r in runs if r["traced"]]
    best = {k: min(plain, key=lambda r: r[k]) for k in ("wall_seconds", "cpu_seconds")}
    best_t = {k: min(traced_runs, key=lambda r: r[k]) for k in ("wall_seconds", "cpu_seconds")}
    rss = min(r["peak_rss_mb"] for r in plain)
    rss_t = min(r["peak_rss_mb"] for r in traced_runs)
    return {
        "adapters": adapters, "executor": executor, "repeat": repeat,
        "compiled_modules": runs[0]["compiled_modules"],
        "untraced": {"wall_seconds": best["wall_seconds"]["wall_seconds"],
                     "cpu_seconds": best["cpu_seconds"]["cpu_seconds"], "peak_rss_mb": rss},
        "traced": {"wall_seconds": best_t["wall_seconds"]["wall_seconds"],
                   "cpu_seconds": best_t["cpu_seconds"]["cpu_seconds"], "peak_rss_mb": rss_t,
                   "packets": traced_runs[0]["packets"], "trace_mb": traced_runs[0]["trace_mb"]},
        "wall_ratio": round(best_t["wall_seconds"]["wall_seconds"]
                            / best["wall_seconds"]["wall_seconds"], 2),
        "cpu_ratio": round(best_t["cpu_seconds"]["cpu_seconds"]
                           / best["cpu_seconds"]["cpu_seconds"], 2),
        "rss_over_mb": round(rss_t - rss, 1),
        "runs": runs,
    }


def render(res: dict[str, Any]) -> str:
    u, t = res["untraced"], res["traced"]
    n = res["compiled_modules"]
    build = f"{n} hot modules compiled" if n else "pure Python"
    return "\n".join([
        f"trace cost: storm --adapters {res['adapters']} --executor {res['executor']} "
        f"({build}), best of {res['repeat']} each",
        f"  untraced   wall {u['wall_seconds']:.2f} s  cpu {u['cpu_seconds']:.2f} s  "
        f"peak RSS {u['peak_rss_mb']:.0f} MB",
        f"  --trace    wall {t['wall_seconds']:.2f} s  cpu {t['cpu_seconds']:.2f} s  "
        f"peak RSS {t['peak_rss_mb']:.0f} MB  ({t['packets']:,} packets, {t['trace_mb']} MB)",
        f"  traced/untraced: wall {res['wall_ratio']:.2f}x  cpu {res['cpu_ratio']:.2f}x  "
        f"RSS +{res['rss_over_mb']:.0f} MB   (target: at most 2x, +200 MB)",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.trace_cost",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--adapters", type=int, default=10_000)
    ap.add_argument("--executor", default="dedicated", help=f"one of {', '.join(EXECUTORS)}")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (best of them counts)")
    ap.add_argument("--max-ratio", type=float, default=None,
                    help="exit 1 when the CPU-time ratio is above this")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)
    try:
        if args.adapters < 1 or args.repeat < 1:
            raise BenchUsageError("--adapters and --repeat must be at least 1")
        if args.executor not in EXECUTORS:
            raise BenchUsageError(f"--executor must be one of {', '.join(EXECUTORS)}, "
                                  f"not {args.executor!r}")
    except BenchUsageError as exc:
        print(f"python -m bench.trace_cost: {exc}", file=sys.stderr)
        return 2

    def progress(r: dict[str, Any]) -> None:
        kind = "--trace " if r["traced"] else "untraced"
        print(f"  {kind} run: wall {r['wall_seconds']:.2f} s, cpu {r['cpu_seconds']:.2f} s",
              file=sys.stderr, flush=True)

    res = run(args.adapters, args.executor, args.repeat, progress)
    status = report("python -m bench.trace_cost", render(res), args.json, res)
    if status:
        return status
    if args.max_ratio is not None and res["cpu_ratio"] > args.max_ratio:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
