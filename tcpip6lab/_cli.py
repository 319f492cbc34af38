"""The `tcpip6-lab` command line.

Every user error (bad values, bad combinations, unusable paths) is one line on stderr and exit
status 2; `--debug` shows the traceback instead. `storm --expect` exits 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from collections.abc import Sequence
from typing import IO, Any, NoReturn

import trio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from faults.errors import FaultsError
from faults.plan import FaultPlan, load_plan
from ndisemu.errors import NdisEmuError
from ndisemu.kernel import WORKER_MODES
from ndisemu.params import SYSTEM_QUEUES, ExecutiveParams
from tcpip6.errors import Tcpip6Error

from .cli import is_interrupt
from .host import EXECUTOR_NAMES, ModelParams
from .storm import OUTCOMES, StormConfig, dumps, run_storm

PROG = "tcpip6-lab"


class UsageError(Exception):
    """A command-line value the user must fix (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(us|ms|s|m|min)?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "m": 60.0, "min": 60.0}


def duration(text: str) -> float:
    """'0.5', '500ms', '2s', '1m' -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 0.5, 500ms, 2s)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def nonneg_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def pos_int(text: str) -> int:
    value = nonneg_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_model_options(p: argparse.ArgumentParser, *, executor_default: str | None) -> None:
    d = ExecutiveParams()
    m = ModelParams()
    g = p.add_argument_group("model (defaults: Windows Server 2003, see docs/model.md)")
    if executor_default is not None:
        g.add_argument("--executor", choices=EXECUTOR_NAMES, default=executor_default,
                       help="how tcpip6 submits OIDs: critical = unpatched (default), "
                            "dedicated = hotfix, async, rescuer")
    g.add_argument("--static-threads", type=pos_int, default=d.critical_static, metavar="N",
                   help=f"critical static worker threads (default {d.critical_static})")
    g.add_argument("--additional-critical", type=nonneg_int, default=d.additional_critical,
                   metavar="N", help="AdditionalCriticalWorkerThreads registry value "
                                     f"(default {d.additional_critical}, clamped to 16)")
    g.add_argument("--max-dynamic", type=nonneg_int, default=d.max_dynamic, metavar="N",
                   help=f"dynamic threads per queue at most (default {d.max_dynamic})")
    g.add_argument("--cpus", type=pos_int, default=d.cpus, metavar="N",
                   help=f"CPUs = KQUEUE MaximumCount (default {d.cpus})")
    g.add_argument("--latency", type=duration, default=m.latency, metavar="S",
                   help=f"pended OID completion latency (default {m.latency}s)")
    g.add_argument("--latency-jitter", type=float, default=m.latency_jitter, metavar="F",
                   help=f"± fraction of latency, seeded (default {m.latency_jitter})")
    g.add_argument("--completion-queue", choices=SYSTEM_QUEUES, default=m.completion_queue,
                   help="queue where the OID completion work item runs (default critical)")
    g.add_argument("--completion-via", choices=("tcpip6", "ndis"), default=m.completion_via,
                   help="tcpip6's own follow-up item (default) or an NDIS work item")
    g.add_argument("--foreign-holders", type=nonneg_int, default=m.foreign_holders,
                   metavar="N", help="critical workers blocked by other components "
                                     f"(default {m.foreign_holders})")
    g.add_argument("--multicast-list-size", type=nonneg_int, default=m.multicast_list_size,
                   metavar="N", help="miniports' multicast table size; below 2 tcpip6's "
                                     f"bind fails (default {m.multicast_list_size})")
    g.add_argument("--mtu", type=pos_int, default=m.mtu, metavar="N",
                   help=f"adapters' MTU (and their TAP/veth devices'; default {m.mtu})")
    g.add_argument("--dedicated-threads", type=pos_int, default=m.dedicated_threads,
                   metavar="N", help="threads of the dedicated executor (default 1)")
    g.add_argument("--schedule", choices=("random", "fifo", "pct"), default=m.schedule,
                   help="order of ready threads of equal priority: seeded draw, FIFO, or "
                        "PCT (random thread priorities with change points)")


def add_workers_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--workers", choices=WORKER_MODES, default=default,
                   help="how the kernel carries worker threads: trio tasks, or coroutines its "
                        "dispatcher steps (faster: no trio switch per turn); the same trace "
                        f"either way (default {default})")


def model_params(args: argparse.Namespace, executor: str) -> ModelParams:
    ex = ExecutiveParams(
        critical_static=args.static_threads,
        additional_critical=args.additional_critical,
        max_dynamic=args.max_dynamic,
        cpus=args.cpus,
    )
    return ModelParams(
        executive=ex, executor=executor, latency=args.latency,
        latency_jitter=args.latency_jitter, completion_queue=args.completion_queue,
        completion_via=args.completion_via, foreign_holders=args.foreign_holders,
        dedicated_threads=args.dedicated_threads, schedule=args.schedule,
        multicast_list_size=args.multicast_list_size, mtu=args.mtu,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Reproduce and study the KB968597 Tcpipv6 "
                     "critical-worker-queue deadlock in an emulated NT executive and NDIS.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

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
    add_workers_option(s, "coroutines")
    add_model_options(s, executor_default="critical")

    v = sub.add_parser("serve", help="run an emulated host on memory, TAP or veth devices "
                                     "until Ctrl-C")
    v.add_argument("--backend", choices=("memory", "tap", "veth"), default="memory",
                   help="memory (default, no root), tap or veth (root: real devices whose "
                        "Linux side is in a network namespace)")
    v.add_argument("--adapters", type=pos_int, default=1, metavar="N")
    v.add_argument("--interval", type=duration, default=0.0, metavar="S",
                   help="time between arrivals (default 0: a burst)")
    v.add_argument("--netns", metavar="NAME",
                   help="name of the namespace to create for Linux's side (t6l- is "
                        "prefixed if missing; default t6l-<run id>); '.' keeps Linux's side "
                        "in the current namespace")
    v.add_argument("--seed", type=nonneg_int, default=0, metavar="K")
    v.add_argument("--pcap", metavar="DIR", help="write one pcap per adapter here")
    v.add_argument("--faults", metavar="PLAN.toml", help="inject the faults of this plan "
                                                         "(wire faults: memory backend only)")
    add_workers_option(v, "tasks")
    add_model_options(v, executor_default="critical")

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

    r = sub.add_parser("replay", help="run a storm log again and report the first event "
                                      "that differs")
    r.add_argument("log", metavar="LOG", help="a JSONL log written by storm --log")

    sub.add_parser("cleanup", help="remove devices, namespaces and state files that "
                                   "interrupted runs left behind")

    d = sub.add_parser("demo", help="hang vs fixed, side by side, live")
    d.add_argument("--adapters", type=pos_int, default=24, metavar="N",
                   help="adapters in the burst (default 24, the KB's example)")
    d.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="virtual seconds per wall second (default 1)")
    d.add_argument("--duration", type=duration, default=16.0, metavar="S",
                   help="virtual seconds to run (default 16)")
    d.add_argument("--seed", type=nonneg_int, default=0, metavar="K")
    d.add_argument("--plain", action="store_true", help="plain progress lines, no live view")
    d.add_argument("--pcap", metavar="DIR", help="write one pcap per adapter wire here")
    d.add_argument("--faults", metavar="PLAN.toml",
                   help="inject the faults of this plan into both hosts")
    d.add_argument("--backend", choices=("memory", "tap"), default="memory",
                   help="memory (default: virtual wires and time) or tap (root: real devices "
                        "in two namespaces, real ping processes, real time)")
    add_model_options(d, executor_default=None)
    sub.add_parser("native", help="say which hot modules run compiled (mypyc, from the wheel)")
    from bench.cli import add_bench_parser

    add_bench_parser(sub)
    return parser


def load_faults(path: str | None) -> FaultPlan | None:
    return None if path is None else load_plan(path)


def cmd_storm(args: argparse.Namespace, out: IO[str]) -> int:
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
    try:
        cfg = StormConfig(adapters=args.adapters, params=params, interval=args.interval,
                          seed=seed, horizon=args.horizon, log=log, pcap_dir=args.pcap,
                          traffic=args.traffic, plan=plan, workers=args.workers)
        err = Console(stderr=True)
        if err.is_terminal:
            with err.status(f"bind storm: {args.adapters} adapters, {args.executor} executor…"):
                result = run_storm(cfg)
        else:
            result = run_storm(cfg)
    finally:
        if log is not None:
            log.close()
    dot = result.pop("dot", None)
    if args.dot and dot:
        try:
            with open(args.dot, "w", encoding="utf-8") as fh:
                fh.write(dot)
        except OSError as exc:
            raise UsageError(f"cannot write {args.dot!r}: {exc.strerror}") from None
    if args.json:
        result = {k: v for k, v in result.items() if not k.endswith("_text")}
        out.write(dumps(result) + "\n")
    else:
        out.write(render_storm(result) + "\n")
    if args.expect and result["outcome"] != args.expect:
        sys.stderr.write(f"{PROG}: expected outcome {args.expect!r}, got "
                         f"{result['outcome']!r}\n")
        return 1
    return 0


def cmd_explore(args: argparse.Namespace, out: IO[str]) -> int:
    from faults.explore import RunRecord, explore

    from .storm import run_storm

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
        fired = int(r.get("faults", {}).get("total_fired", 0))
        return RunRecord(adapters, seed, r["outcome"] in ("deadlock", "stalled"),
                         r["outcome"], fired)

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
                     + _nondefault_model_args(args))
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


def _nondefault_model_args(args: argparse.Namespace) -> str:
    d, m = ExecutiveParams(), ModelParams()
    pairs = [("--static-threads", args.static_threads, d.critical_static),
             ("--additional-critical", args.additional_critical, d.additional_critical),
             ("--max-dynamic", args.max_dynamic, d.max_dynamic), ("--cpus", args.cpus, d.cpus),
             ("--latency", args.latency, m.latency),
             ("--latency-jitter", args.latency_jitter, m.latency_jitter),
             ("--completion-queue", args.completion_queue, m.completion_queue),
             ("--completion-via", args.completion_via, m.completion_via),
             ("--foreign-holders", args.foreign_holders, m.foreign_holders),
             ("--multicast-list-size", args.multicast_list_size, m.multicast_list_size),
             ("--dedicated-threads", args.dedicated_threads, m.dedicated_threads)]
    return "".join(f" {flag} {value!r}" if isinstance(value, float) else f" {flag} {value}"
                   for flag, value, default in pairs if value != default)


def cmd_replay(args: argparse.Namespace, out: IO[str]) -> int:
    from .storm import replay

    rep, result = replay(args.log)
    d = rep.divergence
    if d is None:
        out.write(f"replay: identical — {rep.events} events, outcome {result['outcome']}"
                  + (f", trace hash {rep.logged_hash}" if rep.logged_hash else "") + "\n")
        return 0
    out.write(f"replay: diverged at event #{d.seq}\n")
    out.write(f"  logged:   {json.dumps(d.expected, sort_keys=True)}\n")
    out.write(f"  replayed: {json.dumps(d.got, sort_keys=True)}\n")
    return 1


def render_storm(r: dict[str, Any]) -> str:
    cw = r["critical_workers"]
    lines = [
        f"outcome: {r['outcome'].upper()}  —  {r['adapters_bound']}/{r['adapters']} adapters "
        f"bound by tcpip6 ({r['executor']} executor), IPv4 bound {r['ipv4_bound']}",
        f"critical queue: {cw['static']} static + {cw['dynamic_created']} dynamic created "
        f"(peak {cw['peak_dynamic']}, cap {cw['max_dynamic']}); "
        f"{cw['blocked_at_end']} blocked, {cw['pending_at_end']} queued at the end",
        f"virtual time {r['virtual_seconds']:.3f}s after the first arrival, "
        f"wall {r['wall_seconds']:.3f}s; seed {r['seed']}",
    ]
    if "faults" in r:
        f = r["faults"]
        fired = ", ".join(f"{k}×{v}" for k, v in f["fired"].items()) or "none"
        lines.append(f"faults ({f['plan']}): fired {fired}; "
                     + (f"healed at {f['heal_at']}s" if f["healed"] else "not healed"))
    if "deadlock_text" in r:
        lines.append(r["deadlock_text"])
    for text in r.get("stalls_text", []):
        lines.append(text)
    for failure in r.get("failures", []):
        lines.append(f"bind failure on {failure['adapters']} adapter(s): {failure['reason']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command == "storm":
            return cmd_storm(args, sys.stdout)
        if args.command == "serve":
            from .serve import cmd_serve

            return cmd_serve(args, model_params, sys.stdout)
        if args.command == "explore":
            return cmd_explore(args, sys.stdout)
        if args.command == "replay":
            return cmd_replay(args, sys.stdout)
        if args.command == "cleanup":
            from ndisemu.backends.netlink import cleanup_leftovers, require_root

            require_root("cleanup")
            removed = cleanup_leftovers()
            for item in removed:
                sys.stdout.write(f"removed {item}\n")
            sys.stdout.write(f"{len(removed)} leftovers removed\n")
            return 0
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args, model_params)
        if args.command == "native":
            from .buildinfo import report

            sys.stdout.write(report() + "\n")
            return 0
        if args.command == "bench":
            from bench.cli import run_bench

            return run_bench(args)
        parser.error(f"unknown command {args.command!r}")
    except BaseException as exc:
        return _report(exc, debug)
    return 0


_USER_ERRORS = (UsageError, NdisEmuError, Tcpip6Error, FaultsError, ValueError)


def _leaf(exc: BaseException) -> BaseException:
    """The exception that matters inside trio's exception groups: a Ctrl-C first, then a
    user error, then anything else (Cancelled is only the echo of the others)."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        elif not isinstance(e, trio.Cancelled):
            leaves.append(e)

    walk(exc)
    for leaf in leaves:
        if is_interrupt(leaf):
            return leaf
    for kind in (_USER_ERRORS, SystemExit):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return leaves[0] if leaves else exc


def _report(exc: BaseException, debug: bool) -> int:
    leaf = _leaf(exc)
    if isinstance(leaf, SystemExit):
        return int(leaf.code) if isinstance(leaf.code, int) else 1
    if is_interrupt(leaf):
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    if isinstance(leaf, BrokenPipeError):
        return 0
    if debug:
        traceback.print_exception(exc)
    if isinstance(leaf, _USER_ERRORS):
        sys.stderr.write(f"{PROG}: error: {leaf}\n")
        return 2
    # A bug of ours: one line, the traceback only with --debug.
    sys.stderr.write(f"{PROG}: internal error: {type(leaf).__name__}: {leaf} (run with "
                     "--debug for the traceback)\n")
    return 1


