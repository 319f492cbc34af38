"""`tcpip6-lab explore`: many seeded schedules (PCT) and fault timings; the smallest failure."""

from __future__ import annotations

import argparse
import json
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from faults.explore import RunRecord, explore

from ..errors import UsageError
from ..storm import StormConfig, run_storm
from .options import (
    add_model_options,
    duration,
    load_faults,
    model_params,
    nondefault_model_args,
    nonneg_int,
    pos_int,
)


def add_parser(sub: Any) -> None:
    e = sub.add_parser("explore", help="run many seeded schedules (PCT) and fault timings; "
                                       "report the smallest failing configuration")
    e.add_argument("--adapters", type=pos_int, required=True, metavar="N")
    e.add_argument("--runs", type=pos_int, default=50, metavar="K", help="seeds to try")
    e.add_argument("--seed", type=nonneg_int, default=0, metavar="K", help="first seed")
    e.add_argument("--plan", metavar="PLAN.toml", help="a fault plan to vary")
    e.add_argument("--vary-timings", type=duration, default=0.0, metavar="S",
                   help="also move each fault's timing by a seeded offset in [-S, +S] "
                        "(after/until windows, queue holds, PnP events) in every run")
    e.add_argument("--depth", type=pos_int, default=3, metavar="D",
                   help="PCT depth: priority change points + 1 (default 3)")
    e.add_argument("--interval", type=duration, default=0.0, metavar="S")
    e.add_argument("--horizon", type=duration, default=60.0, metavar="S")
    e.add_argument("--json", action="store_true")
    add_model_options(e, executor_default="critical")


def run(args: argparse.Namespace, out: IO[str]) -> int:
    plan = load_faults(args.plan)
    if args.vary_timings and plan is None:
        raise UsageError("--vary-timings needs a fault plan (--plan PLAN.toml)")
    params = model_params(args, args.executor).with_(schedule="pct", pct_depth=args.depth)

    def run_one(adapters: int, seed: int) -> RunRecord:
        run_plan = plan
        if plan is not None and args.vary_timings:
            run_plan = plan.with_varied_timings(seed, args.vary_timings)
        r = run_storm(StormConfig(adapters=adapters, params=params, interval=args.interval,
                                  seed=seed, horizon=args.horizon, plan=run_plan))
        fired = r.faults.total_fired if r.faults is not None else 0
        return RunRecord(adapters, seed, r.outcome.hung, r.outcome, fired)

    err = Console(stderr=True)
    if err.is_terminal:
        with Progress(TextColumn("exploring"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err, transient=True) as bar:
            task = bar.add_task("runs", total=args.runs)
            report = explore(run_one, adapters=args.adapters, runs=args.runs, seed=args.seed,
                             progress=lambda n: bar.update(task, completed=n))
    else:
        report = explore(run_one, adapters=args.adapters, runs=args.runs, seed=args.seed)
    best = report.smallest
    reproduce = None
    if best is not None:
        reproduce = (f"tcpip6-lab storm --adapters {best.adapters} --executor {args.executor} "
                     f"--seed {best.seed} --schedule pct --horizon {args.horizon!r}"
                     + (f" --interval {args.interval!r}" if args.interval else "")
                     + (f" --faults {args.plan}" if args.plan else "")
                     + (f" --vary-timings {args.vary_timings!r}" if args.vary_timings else "")
                     + nondefault_model_args(args))
    summary = {
        "runs": report.runs, "storms": report.storms, "failures": len(report.failures),
        "failing_seeds": [f.seed for f in report.failures],
        "smallest": None if best is None else {
            "adapters": best.adapters, "seed": best.seed, "outcome": best.outcome,
            "fault_firings": best.firings, "reproduce": reproduce},
    }
    if args.json:
        out.write(json.dumps(summary, indent=2) + "\n")
        return 0
    out.write(f"explored {report.runs} seeds ({report.storms} storms with shrinking): "
              f"{len(report.failures)} failed\n")
    if best is None:
        out.write("no failing configuration found\n")
    else:
        out.write(f"smallest failing configuration: {best.adapters} adapters, seed {best.seed}, "
                  f"{best.firings} fault firings -> {best.outcome}\n")
        out.write(f"reproduce: {reproduce}\n")
    return 0
