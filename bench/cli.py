"""`tcpip6-lab bench …`: the storm sweep, the scale benchmark and the report.

A command of the project's command line through the ``tcpip6lab.commands`` entry point
(``bench = "bench.cli"``): tcpip6lab.cli.app calls `add_parser(sub)` while building the parser
and `run(args, out)` for `tcpip6-lab bench …` — the application never imports this package. Bad
arguments are one line on stderr and exit 2 (the parent's parser class is passed on to the
sub-subcommands); `bench storm` and `bench report` exit 1 when the measured cliff differs from
the computed one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from .errors import BenchUsageError, GridError
from .grid import (
    EXECUTORS,
    argtype,
    parse_duration,
    parse_duration_grid,
    parse_executors,
    parse_int_grid,
)

PROG = "tcpip6-lab bench"

#: `bench storm` with no grid options: 5,120 storms, about 3 minutes on 2 cores. The intervals
#: straddle where spaced arrivals stop deadlocking the unpatched binder (1.5–1.75 ms with the
#: default 2 ms OID latency) and reach where every bind finishes before the next arrival; two
#: seeds show whether an outcome depends on the schedule.
DEFAULT_STORM = {"adapters": "1..64", "interval": "0,0.5ms,1..2ms:0.25ms,5ms,20ms,100ms",
                 "executor": "all", "seeds": "0..1"}
#: `bench report`: the short grid (still crosses the cliff at 24 and the interval boundary).
REPORT_STORM = {"adapters": "1..40", "interval": "0,1ms,1.5ms,1.75ms,5ms,50ms",
                "executor": "all", "seeds": "0"}


def _ints(minimum: int, name: str) -> Callable[[str], object]:
    def parse(text: str) -> list[int]:
        return parse_int_grid(text, minimum=minimum, name=name)

    parse.__name__ = name
    return argtype(parse)


def _durations(name: str, positive: bool = False) -> Callable[[str], object]:
    def parse(text: str) -> list[float]:
        return parse_duration_grid(text, positive=positive, name=name)

    parse.__name__ = name
    return argtype(parse)


def _duration(text: str) -> float:
    return parse_duration(text)


def _pos_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _modes(text: str) -> list[str]:
    from .scale import MODES, ScalePlan

    modes = [m.strip() for m in text.split(",")]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown mode {bad[0]!r} (choose from "
                                         f"{', '.join(MODES)}; default "
                                         f"{','.join(ScalePlan().modes)})")
    return modes


def _add_grid_options(p: argparse.ArgumentParser, defaults: dict[str, str]) -> None:
    from tcpip6lab.params import ModelParams

    m = ModelParams()
    ex = m.executive
    g = p.add_argument_group("grid (A..B[:STEP] inclusive, comma lists; durations take us/ms/s)")
    g.add_argument("--adapters", type=_ints(1, "adapters"), default=defaults["adapters"],
                   metavar="GRID", help=f"adapters per storm (default {defaults['adapters']})")
    g.add_argument("--interval", type=_durations("interval"), default=defaults["interval"],
                   metavar="GRID", help="time between arrivals, 0 = a burst "
                                        f"(default {defaults['interval']})")
    g.add_argument("--executor", type=argtype(parse_executors), default=defaults["executor"],
                   metavar="LIST", help=f"{', '.join(EXECUTORS)}, MODULE:ATTR or an installed "
                                        "executor's name; all = the four built-ins (default "
                                        f"{defaults['executor']})")
    g.add_argument("--seeds", "--seed", type=_ints(0, "seeds"), default=defaults["seeds"],
                   metavar="GRID", help=f"seeds per cell (default {defaults['seeds']})")
    g.add_argument("--latency", type=_durations("latency", positive=True),
                   default=f"{m.latency * 1000:g}ms", metavar="GRID",
                   help=f"pended OID latency (default {m.latency * 1000:g}ms)")
    g.add_argument("--static-threads", type=_ints(1, "static threads"),
                   default=str(ex.critical_static), metavar="GRID",
                   help=f"critical static threads (default {ex.critical_static})")
    g.add_argument("--additional-critical", type=_ints(0, "additional critical"),
                   default=str(ex.additional_critical), metavar="GRID",
                   help=f"AdditionalCriticalWorkerThreads (default {ex.additional_critical})")
    g.add_argument("--max-dynamic", type=_ints(0, "max dynamic"), default=str(ex.max_dynamic),
                   metavar="GRID", help=f"dynamic threads at most (default {ex.max_dynamic})")
    g.add_argument("--foreign-holders", type=_ints(0, "foreign holders"),
                   default=str(m.foreign_holders), metavar="GRID",
                   help=f"critical workers held by others (default {m.foreign_holders})")
    g.add_argument("--horizon", type=argtype(_duration), default=None, metavar="S",
                   help="virtual seconds after the first arrival before a storm is 'stalled' "
                        "(default 300 after the last arrival)")
    p.add_argument("--jobs", type=_pos_int, default=None, metavar="N",
                   help="worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_scale_options(p: argparse.ArgumentParser, flag: str, adapters: int, curve: str,
                       profile_adapters: int, small: int) -> None:
    from .scale import ScalePlan

    g = p.add_argument_group("scale")
    g.add_argument(flag, dest="scale_adapters", type=_pos_int, default=adapters, metavar="N",
                   help=f"adapters in the burst (default {adapters:,})")
    g.add_argument("--scale-executor", dest="scale_executor", type=argtype(parse_executors),
                   default="dedicated,async", metavar="LIST",
                   help="executors to scale (default dedicated,async)")
    g.add_argument("--modes", type=_modes, default=",".join(ScalePlan().modes),
                   metavar="LIST", help="any of default, pure, tasks, gc-python, gc-off, "
                                        "gc-freeze, log, memory (default: "
                                        f"{','.join(ScalePlan().modes)})")
    g.add_argument("--curve", type=_ints(1, "curve"), default=curve, metavar="GRID",
                   help=f"smaller bursts for the growth exponent (default {curve})")
    g.add_argument("--oid-adapters", type=_pos_int, default=small, metavar="N",
                   help=f"adapters of the per-OID overhead storms (default {small})")
    g.add_argument("--oid-round-trips", type=_pos_int, default=small * 20, metavar="N",
                   help=f"OIDs in a row per round-trip measurement (default {small * 20:,})")
    g.add_argument("--profile-adapters", type=_pos_int, default=profile_adapters, metavar="N",
                   help=f"adapters of the cProfile run, 0 = none (default {profile_adapters})")
    g.add_argument("--census-adapters", type=_pos_int, default=small, metavar="N",
                   help=f"adapters of the cyclic-garbage census, 0 = none (default {small})")


def add_bench_parser(subparsers: Any) -> None:
    """Add `bench {storm,scale,report}` to a `parser.add_subparsers()` object."""
    b = subparsers.add_parser("bench", help="benchmarks: storm phase diagrams, scale, report",
                              description="Benchmarks. Ratios are measured in the same run.")
    sub = b.add_subparsers(dest="bench_command", metavar="BENCH", parser_class=type(b))
    sub.required = True

    s = sub.add_parser("storm", help="sweep bind storms over a grid; phase diagrams; cliff "
                                     "check (exit 1 if measured != computed)")
    _add_grid_options(s, DEFAULT_STORM)
    s.add_argument("--out", required=True, metavar="DIR", help="write cells.csv, cells.json "
                                                               "and the plots here")
    s.add_argument("--replay", metavar="FILE", help="re-render a previous cells.json or "
                                                    "cells.csv instead of running")
    s.add_argument("--no-plots", action="store_true", help="CSV and JSON only")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the cells on a Dask cluster: its scheduler's address "
                        "(tcp://host:8786), or 'local' for a LocalCluster started and stopped "
                        "here (needs the cluster extra: pip install tcpip6-lab[cluster])")
    s.add_argument("--resume", action="store_true",
                   help="keep the cells already in DIR/cells.partial.jsonl and run the rest")

    c = sub.add_parser("scale", help="a 10,000-adapter burst: wall time, memory, OIDs/s, GC, "
                                     "event log, per-OID overhead, profile")
    _add_scale_options(c, "--adapters", 10_000, "1000,3000", 2000, 500)
    c.add_argument("--out", required=True, metavar="DIR", help="write scale.json, scale.png, "
                                                               "profile.pstats here")

    k = sub.add_parser("conformance", help="the IPv6 stack against the Linux kernel on crafted "
                                           "probes (root): docs/conformance.md")
    k.add_argument("--out", default="docs/conformance.md", metavar="FILE",
                   help="the Markdown report (default docs/conformance.md)")
    k.add_argument("--probe", action="append", default=[], metavar="PREFIX",
                   help="only probes whose name starts so (repeatable)")
    k.add_argument("--quick", action="store_true", help="only the quick subset")

    r = sub.add_parser("report", help="short runs of every benchmark, one Markdown + HTML "
                                      "report")
    _add_grid_options(r, REPORT_STORM)
    _add_scale_options(r, "--scale-adapters", 2000, "500,1000", 1000, 300)
    r.add_argument("--no-scale", action="store_true", help="leave the scale section out")
    r.add_argument("--traffic", choices=("auto", "on", "off"), default="auto",
                   help="TAP traffic benchmark: auto = when root with /dev/net/tun (default)")
    r.add_argument("--out", required=True, metavar="DIR", help="write report.md, report.html "
                                                               "and the data here")


# -- commands -------------------------------------------------------------------------------------


def _cells(args: argparse.Namespace) -> list[Any]:
    from .sweep import make_cells

    return make_cells(executors=args.executor, adapters=args.adapters,
                      intervals=args.interval, seeds=args.seeds, latencies=args.latency,
                      static_threads=args.static_threads,
                      additional_critical=args.additional_critical,
                      max_dynamic=args.max_dynamic, foreign_holders=args.foreign_holders,
                      horizon=args.horizon)


def _grid_meta(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("adapters", "interval", "executor", "seeds", "latency", "static_threads",
            "additional_critical", "max_dynamic", "foreign_holders", "horizon")
    return {"grid": {k: getattr(args, k) for k in keys}}


def _out_dir(text: str) -> Path:
    out = Path(text)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchUsageError(f"cannot create output directory {text!r}: "
                              f"{exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise BenchUsageError(f"output directory {text!r} is not writable")
    return out


def _storm_runner(args: argparse.Namespace, executor: Executor | None = None
                  ) -> Callable[[Path], Any]:
    from rich.console import Console

    from .phase import run_storm_bench
    from .sweep import rich_progress

    cells = _cells(args)
    if not cells:
        raise BenchUsageError("the grid is empty")

    def run(out: Path) -> Any:
        stop: Callable[[], None] | None = None
        progress = None
        where = (f"{args.jobs or os.cpu_count()} worker processes" if executor is None
                 else type(executor).__name__)
        _say(f"{len(cells)} bind storms on {where}")
        if not getattr(args, "no_progress", False):
            progress, stop = rich_progress(Console(stderr=True))
        try:
            return run_storm_bench(cells, out, executor=executor, jobs=args.jobs,
                                   progress=progress, plots=not getattr(args, "no_plots", False),
                                   meta=_grid_meta(args),
                                   resume=bool(getattr(args, "resume", False)))
        finally:
            if stop is not None:
                stop()

    return run


def _load_records(path: Path) -> list[dict[str, Any]]:
    from .sweep import FIELDS, read_csv

    try:
        if path.suffix == ".csv":
            records = read_csv(path)
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            records = data["cells"] if isinstance(data, dict) else data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchUsageError(f"cannot read cells from {str(path)!r}: {exc}") from None
    missing = [f for f in FIELDS if records and f not in records[0]]
    if not isinstance(records, list) or missing:
        raise BenchUsageError(f"{str(path)!r} is not a cells file (missing "
                              f"{', '.join(missing[:3]) or 'cells'})")
    return records


def cmd_storm(args: argparse.Namespace, executor: Executor | None = None) -> int:
    from .phase import machine, render_summary, write_outputs

    out = _out_dir(args.out)
    if args.replay:
        records = _load_records(Path(args.replay))
        bench = write_outputs(records, out, meta={"replayed_from": args.replay,
                                                  "machine": machine()},
                              plots=not args.no_plots)
    elif getattr(args, "scheduler", None) and executor is None:
        with dask_executor(args.scheduler, args.jobs) as dask:
            bench = _storm_runner(args, dask)(out)
    else:
        bench = _storm_runner(args, executor)(out)
    print(render_summary(bench))
    return 0 if bench.ok else 1


@contextlib.contextmanager
def dask_executor(scheduler: str, jobs: int | None = None) -> Iterator[Executor]:
    """A concurrent.futures.Executor on a Dask cluster: `scheduler` is an address, or
    'local' for a LocalCluster of worker processes started and stopped here."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise BenchUsageError("--scheduler needs Dask: pip install 'tcpip6-lab[cluster]'") \
            from None
    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(n_workers=jobs or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="10s")
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise BenchUsageError(f"cannot reach the Dask scheduler {scheduler!r}: {exc}") \
            from None
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _scale_plan(args: argparse.Namespace, out: Path) -> Any:
    from .scale import ScalePlan

    return ScalePlan(adapters=args.scale_adapters, executors=tuple(args.scale_executor),
                     modes=tuple(args.modes), curve=tuple(args.curve),
                     oid_adapters=args.oid_adapters, oid_round_trips=args.oid_round_trips,
                     profile_adapters=args.profile_adapters,
                     census_adapters=args.census_adapters, log_dir=str(out),
                     pstats_path=str(out / "profile.pstats") if args.profile_adapters else None)


def _say(text: str) -> None:
    sys.stderr.write(f"bench: {text}…\n")
    sys.stderr.flush()


def run_scale_to(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from .scale import plot, run_scale

    out.mkdir(parents=True, exist_ok=True)
    res = run_scale(_scale_plan(args, out), say=_say)
    (out / "scale.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    plot(res, out / "scale.png")
    return res


def cmd_scale(args: argparse.Namespace) -> int:
    from .scale import render

    out = _out_dir(args.out)
    res = run_scale_to(args, out)
    print(render(res))
    print(f"  wrote {out / 'scale.json'}, {out / 'scale.png'}")
    return 0


def _command_line(args: argparse.Namespace, which: str) -> str:
    from .grid import format_duration

    if which == "storm":
        parts = ["tcpip6-lab bench storm"]
        for k in ("adapters", "interval", "seeds"):
            v = getattr(args, k)
            if k == "interval":
                parts.append(f"--interval {','.join(format_duration(x) for x in v)}")
            else:
                parts.append(f"--{k} {_compact(v)}")
        parts.append(f"--executor {','.join(args.executor)}")
        return " ".join(parts) + " --out DIR"
    return (f"tcpip6-lab bench scale --adapters {args.scale_adapters} --curve "
            f"{_compact(args.curve)} --profile-adapters {args.profile_adapters} --out DIR")


def _compact(values: list[int]) -> str:
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ",".join(map(str, values))


def cmd_report(args: argparse.Namespace, executor: Executor | None = None) -> int:
    from .report import run_report

    out = _out_dir(args.out)
    rc, files = run_report(
        out, storm=_storm_runner(args, executor), storm_command=_command_line(args, "storm"),
        scale=None if args.no_scale else (lambda d: run_scale_to(args, d)),
        scale_command=_command_line(args, "scale"), traffic=args.traffic, say=_say)
    for f in files:
        print(f"wrote {f}")
    if rc:
        sys.stderr.write(f"{PROG} report: the measured cliff differs from the computed one\n")
    return rc


def _line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def cmd_conformance(args: argparse.Namespace) -> int:
    """`bench conformance`: exit 0 when every divergence from Linux is justified, else 1."""
    from ndisemu.errors import BackendError

    from .conformance import JUSTIFIED, write_report
    from .probes import CATALOGUE

    probes = [p for p in CATALOGUE if (not args.quick or p.quick)
              and (not args.probe or any(p.name.startswith(x) for x in args.probe))]
    if not probes:
        raise BenchUsageError(f"no probe matches {', '.join(args.probe)}")
    command = "tcpip6-lab bench conformance" + (" --quick" if args.quick else "") + "".join(
        f" --probe {x}" for x in args.probe)
    try:
        data = write_report(Path(args.out), probes, command, say=_line)
    except BackendError as exc:
        sys.stderr.write(f"{PROG} conformance: {exc}\n")
        return 1
    results = data["results"]
    agree = sum(r.agree for r in results)
    unjustified = [r.probe.name for r in results if not r.agree and r.probe.name not in JUSTIFIED]
    print(f"{agree}/{len(results)} probes agree with Linux {data['kernel']} "
          f"({100 * agree / len(results):.1f} %); wrote {args.out}")
    if unjustified:
        sys.stderr.write(f"{PROG} conformance: unjustified divergences: "
                         f"{', '.join(unjustified)}\n")
        return 1
    return 0


def run_bench(args: argparse.Namespace, executor: Executor | None = None) -> int:
    """Run the `bench` subcommand parsed by a parser built with `add_bench_parser`.

    `executor` runs the storm cells (default: a process pool on every core); any
    `concurrent.futures.Executor` will do, e.g. a Dask cluster's `client.get_executor()`."""
    try:
        if args.bench_command == "storm":
            return cmd_storm(args, executor)
        if args.bench_command == "scale":
            return cmd_scale(args)
        if args.bench_command == "report":
            return cmd_report(args, executor)
        if args.bench_command == "conformance":
            return cmd_conformance(args)
        raise BenchUsageError(f"unknown bench command {args.bench_command!r}")
    except (BenchUsageError, GridError) as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130


def add_parser(subparsers: Any) -> None:
    """The `tcpip6lab.commands` entry point's hook: add `bench` to the command line."""
    add_bench_parser(subparsers)


def run(args: argparse.Namespace, out: Any = None) -> int:
    """The `tcpip6lab.commands` entry point's hook: run `tcpip6-lab bench …`."""
    return run_bench(args)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.cli bench …`: the same as `tcpip6-lab bench …`."""
    from tcpip6lab.cli import main as lab_main

    return lab_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
