"""`tcpip6-lab storm`: one bind storm in virtual time, and its outcome."""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

from rich.console import Console

from ..errors import UsageError
from ..storm import OUTCOMES, StormConfig, StormResult, dumps, run_storm
from .options import (
    PROG,
    add_model_options,
    add_trace_option,
    add_workers_option,
    duration,
    load_faults,
    model_params,
    nonneg_int,
    pos_int,
)


def add_parser(sub: Any) -> None:
    s = sub.add_parser("storm", help="bind N adapters in virtual time and report the outcome")
    s.add_argument("--adapters", type=pos_int, required=True, metavar="N")
    s.add_argument("--interval", type=duration, default=0.0, metavar="S",
                   help="time between arrivals (default 0: a burst at one instant)")
    s.add_argument("--seed", type=nonneg_int, default=None, metavar="K",
                   help="root seed (default: the plan's [run] seed, else 0)")
    s.add_argument("--horizon", type=duration, default=300.0, metavar="S",
                   help="virtual seconds after the first arrival before a run is 'stalled'")
    s.add_argument("--expect", choices=OUTCOMES, help="exit 1 unless the outcome is this")
    s.add_argument("--log", metavar="FILE", help="write the JSONL event log here")
    s.add_argument("--pcap", metavar="DIR", help="write one pcap per adapter wire here")
    s.add_argument("--traffic", action="store_true",
                   help="the peer pings every adapter (IPv6 and IPv4) every 0.5s, and goes on "
                        "for 2s after the outcome is known")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--faults", metavar="PLAN.toml", help="inject the faults of this plan")
    s.add_argument("--vary-timings", type=duration, default=0.0, metavar="S",
                   help="move each fault's timing (after/until window, at) by its own "
                        "offset in [-S, +S], drawn from the seed (what explore varies)")
    s.add_argument("--dot", metavar="FILE", help="write the wait-for graph of a deadlock "
                                                  "(or the last stall) as Graphviz DOT")
    add_trace_option(s)
    s.add_argument("--timeline", metavar="FILE.png",
                   help="draw the worker threads as lanes (running, blocked, idle) with the "
                        "knot marked (matplotlib PNG)")
    add_workers_option(s, "coroutines")
    add_model_options(s, executor_default="critical")


def run(args: argparse.Namespace, out: IO[str]) -> int:
    params = model_params(args, args.executor)
    plan = load_faults(args.faults)
    seed = args.seed if args.seed is not None else (plan.seed if plan and plan.seed else 0)
    if args.vary_timings:
        if plan is None:
            raise UsageError("--vary-timings needs a fault plan (--faults PLAN.toml)")
        plan = plan.with_varied_timings(seed, args.vary_timings)
    log = None
    if args.log:
        try:
            log = open(args.log, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot write log {args.log!r}: {exc.strerror}") from None
    sinks: list[Any] = []
    trace = None
    if args.trace:
        from ..perfetto_trace import PerfettoTrace

        trace = PerfettoTrace(args.trace)
        sinks.append(trace.host_sink(f"storm host ({args.executor} executor)"))
    timeline = None
    if args.timeline:
        from ..timeline import TimelineRecorder

        timeline = TimelineRecorder()
        sinks.append(timeline)
    try:
        cfg = StormConfig(adapters=args.adapters, params=params, interval=args.interval,
                          seed=seed, horizon=args.horizon, log=log, pcap_dir=args.pcap,
                          traffic=args.traffic, plan=plan, workers=args.workers,
                          extra_sinks=sinks)
        err = Console(stderr=True)
        if err.is_terminal:
            with err.status(f"bind storm: {args.adapters} adapters, {args.executor} executor…"):
                result = run_storm(cfg)
        else:
            result = run_storm(cfg)
    finally:
        if log is not None:
            log.close()
        if trace is not None:
            trace.close()
    if timeline is not None:
        from ..timeline import save

        timeline.finish()
        save([(f"{args.adapters} adapters, {args.executor} executor: "
               f"{result.outcome.value}", timeline)], args.timeline)
    if args.dot and result.dot:
        try:
            with open(args.dot, "w", encoding="utf-8") as fh:
                fh.write(result.dot)
        except OSError as exc:
            raise UsageError(f"cannot write {args.dot!r}: {exc.strerror}") from None
    if args.json:
        out.write(dumps(result) + "\n")
    else:
        out.write(render_storm(result) + "\n")
    if args.expect and result.outcome != args.expect:
        sys.stderr.write(f"{PROG}: expected outcome {args.expect!r}, got "
                         f"{result.outcome.value!r}\n")
        return 1
    return 0


def render_storm(r: StormResult) -> str:
    cw = r.critical_workers
    lines = [
        f"outcome: {r.outcome.upper()}  —  {r.adapters_bound}/{r.adapters} adapters "
        f"bound by tcpip6 ({r.executor} executor), IPv4 bound {r.ipv4_bound}",
        f"critical queue: {cw.static} static + {cw.dynamic_created} dynamic created "
        f"(peak {cw.peak_dynamic}, cap {cw.max_dynamic}); "
        f"{cw.blocked_at_end} blocked, {cw.pending_at_end} queued at the end",
        f"virtual time {r.virtual_seconds:.3f}s after the first arrival, "
        f"wall {r.wall_seconds:.3f}s; seed {r.seed}",
    ]
    if r.faults is not None:
        f = r.faults
        fired = ", ".join(f"{k}×{v}" for k, v in f.fired.items()) or "none"
        lines.append(f"faults ({f.plan}): fired {fired}; "
                     + (f"healed at {f.heal_at}s" if f.healed else "not healed"))
    if r.deadlock_text is not None:
        lines.append(r.deadlock_text)
    lines.extend(r.stalls_text)
    for failure in r.failures:
        lines.append(f"bind failure on {failure.adapters} adapter(s): {failure.reason}")
    return "\n".join(lines)
