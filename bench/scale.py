"""Scale: a large burst (10,000 adapters by default) with the dedicated and async executors.

Every measurement runs in a fresh interpreter (a spawned process, one task per process), so peak
RSS (`getrusage` ru_maxrss) belongs to that run alone and no run inherits another's heap. For each
executor:

- `default`: `tcpip6lab.storm.run_storm` as users call it (with whatever GC policy it sets),
  event log off, on the compiled modules when the installed wheel has them
  (`tcpip6lab.buildinfo`; every record says which) — wall time, peak RSS, OIDs per second;
- `pure`: the same in a process that imports the hot modules from a copy of their ``.py``
  files (`in_fresh_process`) — what compiling is worth;
- `gc-python`: the same storm with Python's default GC thresholds throughout (the storm run
  through `run_storm_async` on the same clock) — what the runner's GC policy is worth;
- `gc-off`: `run_storm` with the cyclic GC disabled (what `run_storm` itself does since the
  storm was shown to make no reference cycles; kept to check that policy);
  `gc-freeze` (optional): `run_storm` after `gc.freeze()` of the start-up heap. GC settings are
  changed in this harness only, never in the emulation;
- `log`: the JSONL event log on (`StormConfig(log=file)`, a temporary file, deleted) — the
  price of tracing;
- `memory`: tracemalloc on — bytes per adapter at the peak and still live at the end, and the
  allocation sites holding most of it (through `run_storm_async`, which hands over the host so
  it can be measured after the run; Python's default GC thresholds);
- `tasks`: the same storm on the kernel's task driver (each worker thread a trio task) instead
  of the coroutine driver storms use — the same trace, so the ratio is the price of a trio
  task switch per worker turn.

Plus a growth curve (smaller bursts; the exponent k of wall ~ adapters^k, GC on and off), the
per-OID overhead of each executor against a bare trio memory-channel round trip measured in the
same run (the round trip of one OID through the executor on a bound adapter — submission,
miniport, completion, tcpip6 learning the result — and, for context, a storm's wall time per
OID, which also carries every per-adapter cost), a census of the cyclic garbage a storm leaves
for the GC, and a cProfile of one run (hot spots by function and by file). Ratios are computed
from numbers measured in the same run.
"""

from __future__ import annotations

import gc
import linecache
import math
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_ADAPTERS = 10_000
TARGET_WALL = 5.0  # seconds for a 10,000-adapter burst (issue 8)
TARGET_BYTES_PER_ADAPTER = 20 * 1024
TARGET_OID_RATIO = 3.0
MODES = ("default", "pure", "gc-python", "gc-off", "gc-freeze", "log", "memory", "tasks")


@dataclass(frozen=True)
class RunSpec:
    executor: str
    adapters: int
    mode: str = "default"  # one of MODES
    horizon: float = 7200.0  # dedicated binds one adapter at a time: ~33 ms each
    interval: float = 0.0
    ipv4: bool = True
    log_dir: str | None = None


def _rss_kb() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:  # not Linux: fall back to the high-water mark
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _where(filename: str, lineno: int | None = None, func: str | None = None) -> str:
    """A short 'path:function' (or path:line) for a file of this repo or a library."""
    if filename == "~":
        return f"builtins:{func}" if func is not None else "builtins"
    if filename == "<string>":  # code made by exec(): dataclass / attrs __init__ and friends
        filename = "<generated __init__>"
    p = filename
    for prefix in (str(ROOT) + os.sep,):
        if p.startswith(prefix):
            p = p[len(prefix):]
    if "site-packages" + os.sep in p:
        p = p.split("site-packages" + os.sep, 1)[1]
    elif os.sep + "lib" + os.sep + "python" in p:
        p = "stdlib/" + p.rsplit(os.sep, 1)[-1]
    if func is not None:
        return f"{p}:{func}"
    return f"{p}:{lineno}" if lineno is not None else p


def _storm(spec: RunSpec, log: Any = None, on_host: Callable[[Any], None] | None = None,
           *, direct: bool = False) -> Mapping[str, Any]:
    """One storm through `run_storm` — or, with `on_host` or `direct`, through
    `run_storm_async` in a trio run on the same clock as run_storm's (no GC settings: Python's
    defaults; the host is handed to `on_host`)."""
    import trio
    import trio.testing

    from tcpip6lab.params import ModelParams
    from tcpip6lab.storm import StormConfig, run_storm, run_storm_async

    cfg = StormConfig(adapters=spec.adapters, params=ModelParams(executor=spec.executor,
                                                                 ipv4=spec.ipv4),
                      interval=spec.interval, horizon=spec.horizon, log=log,
                      workers="tasks" if spec.mode == "tasks" else "coroutines")
    if on_host is None and not direct:
        return run_storm(cfg)
    results: list[Mapping[str, Any]] = []

    async def main() -> None:
        results.append(await run_storm_async(cfg, on_host=on_host))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return results[0]


def warm_up(spec: RunSpec) -> None:
    """A 2-adapter storm of the same kind first, so that lazy imports and first-call costs
    (module loading, class creation) are not counted as the measured run's."""
    log = open(os.devnull, "w", encoding="utf-8") if spec.mode == "log" else None  # noqa: SIM115
    try:
        _storm(RunSpec(spec.executor, 2, ipv4=spec.ipv4, interval=spec.interval), log=log)
    finally:
        if log is not None:
            log.close()
    gc.collect()


def measure(spec: RunSpec) -> dict[str, Any]:
    """One run in this process (call it in a fresh one: peak RSS is the process's). Returns
    the measurements; the GC settings are restored afterwards."""
    enabled, thresholds, frozen = gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()
    try:
        return _measure(spec)
    finally:
        if frozen == 0:
            gc.unfreeze()
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()


def _measure(spec: RunSpec) -> dict[str, Any]:
    warm_up(spec)
    base_rss = _rss_kb()
    if spec.mode not in MODES:
        raise ValueError(f"unknown mode {spec.mode!r}")
    if spec.mode == "gc-freeze":
        gc.collect()
        gc.freeze()
    elif spec.mode == "gc-off":
        gc.collect()
        gc.disable()
    stats0 = gc.get_stats()
    log = None
    log_path = None
    if spec.mode == "log":
        fd, log_path = tempfile.mkstemp(prefix="t6l-scale-", suffix=".jsonl", dir=spec.log_dir)
        log = os.fdopen(fd, "w", encoding="utf-8")
    hosts: list[Any] = []
    if spec.mode == "memory":
        tracemalloc.start(1)
    t0 = time.perf_counter()
    try:
        r = _storm(spec, log=log, on_host=hosts.append if spec.mode == "memory" else None,
                   direct=spec.mode == "gc-python")
        wall = time.perf_counter() - t0
        out: dict[str, Any] = {}
        if spec.mode == "memory":
            current, peak = tracemalloc.get_traced_memory()
            snap = tracemalloc.take_snapshot()
            tracemalloc.stop()
            top = snap.statistics("lineno")[:10]
            out["tracemalloc"] = {
                "peak_bytes": peak, "live_at_end_bytes": current,
                "peak_bytes_per_adapter": round(peak / spec.adapters),
                "live_bytes_per_adapter": round(current / spec.adapters),
                "top_sites": [{"where": _where(s.traceback[0].filename, s.traceback[0].lineno),
                               "code": linecache.getline(s.traceback[0].filename,
                                                         s.traceback[0].lineno).strip()[:90],
                               "bytes_per_adapter": round(s.size / spec.adapters),
                               "share": round(s.size / current, 4) if current else 0.0}
                              for s in top],
            }
    finally:
        if log is not None:
            log.close()
    if log_path is not None:
        size = os.path.getsize(log_path)
        with open(log_path, "rb") as f:
            lines = sum(1 for _ in f)
        os.unlink(log_path)
        out["log"] = {"bytes": size, "events": lines, "bytes_per_adapter": size / spec.adapters,
                      "events_per_second": lines / wall}
    stats1 = gc.get_stats()
    oids = r["oids"]
    out["native"] = _native()
    out.update({
        "spec": asdict(spec),
        "outcome": r["outcome"], "adapters_bound": r["adapters_bound"],
        "virtual_seconds": r["virtual_seconds"],
        "wall_seconds": round(wall, 4),
        "ndis_requests": oids["ndis_requests"], "tcpip6_oids": oids["submitted"],
        "oids_per_second": round(oids["ndis_requests"] / wall),
        "wall_per_oid_us": round(wall / oids["ndis_requests"] * 1e6, 3),
        "baseline_rss_kb": base_rss,
        "peak_rss_kb": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        "gc": {"collections": [b["collections"] - a["collections"]
                               for a, b in zip(stats0, stats1, strict=True)],
               "collected": sum(b["collected"] - a["collected"]
                                for a, b in zip(stats0, stats1, strict=True))},
    })
    out["rss_growth_per_adapter"] = round(
        (out["peak_rss_kb"] - base_rss) * 1024 / spec.adapters)
    return out


# -- the floor: a bare trio memory-channel round trip --------------------------------------------


def channel_round_trip(n: int = 50_000) -> float:
    """Seconds per round trip: send to an echo task over an unbuffered trio memory channel and
    receive its answer on another — two task switches, the least a hand-off can cost in trio.
    Run on the same MockClock as the storms."""
    import trio
    import trio.testing

    async def main() -> float:
        s1, r1 = trio.open_memory_channel[int](0)
        s2, r2 = trio.open_memory_channel[int](0)

        async def echo() -> None:
            async for x in r1:
                await s2.send(x)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            for i in range(min(1000, n)):  # warm-up
                await s1.send(i)
                await r2.receive()
            t = time.perf_counter()
            for i in range(n):
                await s1.send(i)
                await r2.receive()
            dt = time.perf_counter() - t
            nursery.cancel_scope.cancel()
        return dt / n

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def oid_round_trip(executor: str, n: int, workers: str = "coroutines") -> float:
    """Seconds per OID through `executor` on one bound adapter: each OID is submitted when the
    previous one's result reached tcpip6 (submission item, NdisRequest, miniport latency timer,
    completion DPC, tcpip6's completion item, the waiter resumed), n in a row, in virtual time.
    The host is otherwise quiet, so this is the executor's path and nothing else."""
    import trio
    from trio.testing import MockClock

    from ndisemu.constants import NdisStatus, Oid, RequestType
    from ndisemu.miniport import NdisRequest
    from tcpip6lab.host import EmulatedHost
    from tcpip6lab.params import ModelParams

    host = EmulatedHost(ModelParams(executor=executor, ipv4=False), free_running=True,
                        workers=workers)
    kernel = host.kernel
    box: dict[str, float] = {}
    done = 0

    def submit(adapter: str) -> None:
        host.tcpip6.submit_oid(adapter, NdisRequest(RequestType.QUERY,
                                                    Oid.GEN_MEDIA_CONNECT_STATUS), finished)

    def finished(sub: Any, status: NdisStatus) -> None:
        nonlocal done
        if status is not NdisStatus.SUCCESS:
            raise RuntimeError(f"{executor}: OID ended {status.ndis_name}")
        done += 1
        if done == n:
            box["wall"] = time.perf_counter() - box["t0"]
            kernel.stop()
        else:
            submit(sub.state.adapter)

    def up(adapter: str) -> None:
        box["t0"] = time.perf_counter()
        submit(adapter)

    host.tcpip6.on_up.append(up)
    host.start()
    host.pnp.schedule(host.adapter_configs(1), start=1.0)
    kernel.call_at(1.0 + 3600.0 + n, kernel.stop)  # a bound on virtual time, never reached

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(kernel.run)

    try:
        trio.run(main, clock=MockClock(autojump_threshold=0))
    finally:
        host.close()
    if "wall" not in box:
        raise RuntimeError(f"{executor}: {done} of {n} OIDs completed")
    return box["wall"] / n


def oid_overhead(executors: Sequence[str], adapters: int, interval: float,
                 repeat: int = 3, round_trips: int = 20_000) -> dict[str, Any]:
    """Per-OID cost of each executor against the channel floor, in this one process,
    interleaved so a slower phase of the machine hits them alike (best of `repeat`):

    - the round trip of one OID through the executor (`oid_round_trip`) — the target — on both
      kernel drivers;
    - a storm's wall time per OID (IPv4 off: every OID goes through the executor under test;
      arrivals spaced so that even `critical` binds), which also carries every per-adapter
      cost (bind set-up, the IPv6 stack's start, timers): context, not the target."""
    floor: list[float] = []
    per: dict[str, list[float]] = {e: [] for e in executors}
    trip: dict[tuple[str, str], list[float]] = {}
    for ex in executors:
        warm_up(RunSpec(ex, 2, ipv4=False, interval=interval))
        oid_round_trip(ex, 200)
    oids: dict[str, int] = {}
    for _ in range(repeat):
        floor.append(channel_round_trip(20_000))
        for ex in executors:
            for workers in ("coroutines", "tasks"):
                trip.setdefault((ex, workers), []).append(
                    oid_round_trip(ex, round_trips, workers))
            spec = RunSpec(ex, adapters, interval=interval, ipv4=False, horizon=3600.0)
            t = time.perf_counter()
            r = _storm(spec)
            dt = time.perf_counter() - t
            if r["outcome"] != "bound":
                raise RuntimeError(f"{ex}: per-OID storm ended {r['outcome']}")
            oids[ex] = r["oids"]["ndis_requests"]
            per[ex].append(dt / oids[ex])
    f = min(floor)
    return {
        "adapters": adapters, "interval": interval, "ipv4": False, "repeat": repeat,
        "round_trips": round_trips,
        "floor_round_trip_us": round(f * 1e6, 3),
        "executors": {ex: {
            "round_trip_us": round(min(trip[ex, "coroutines"]) * 1e6, 3),
            "round_trip_ratio": round(min(trip[ex, "coroutines"]) / f, 2),
            "round_trip_tasks_us": round(min(trip[ex, "tasks"]) * 1e6, 3),
            "round_trip_tasks_ratio": round(min(trip[ex, "tasks"]) / f, 2),
            "oids": oids[ex], "wall_per_oid_us": round(min(v) * 1e6, 3),
            "ratio_to_floor": round(min(v) / f, 2)}
            for ex, v in per.items()},
        "target_ratio": TARGET_OID_RATIO,
    }


# -- where the time goes --------------------------------------------------------------------------


def profile(spec: RunSpec, pstats_path: str | None = None, top: int = 15) -> dict[str, Any]:
    """cProfile one run: hot functions by own time, and own time summed per file."""
    import cProfile
    import pstats

    warm_up(spec)
    prof = cProfile.Profile()
    prof.enable()
    _storm(spec)
    prof.disable()
    if pstats_path is not None:
        prof.dump_stats(pstats_path)
    st = pstats.Stats(prof)
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    rows = []
    by_file: Counter[str] = Counter()
    for (filename, lineno, func), (_cc, nc, tt, ct, _callers) in raw.items():
        where = _where(filename, lineno, func)
        by_file[_where(filename)] += tt
        rows.append({"where": where, "line": lineno, "calls": nc,
                     "own_pct": round(100 * tt / total, 1), "cum_pct": round(100 * ct / total, 1)})
    rows.sort(key=lambda r: -float(r["own_pct"]))
    cum = sorted((r for r in rows if ".py" in str(r["where"])),
                 key=lambda r: -float(r["cum_pct"]))
    return {"spec": asdict(spec), "profiled_seconds": round(total, 3),
            "by_own_time": rows[:top],
            "by_cumulative_time": [r for r in cum if str(r["where"]).startswith(
                ("ndisemu", "tcpip6", "faults", "tcpip6lab"))][:top],
            "by_file": [{"file": f, "own_pct": round(100 * t / total, 1)}
                        for f, t in by_file.most_common(top)]}


def garbage_census(spec: RunSpec) -> dict[str, Any]:
    """What the cyclic GC has to free during a run: objects in unreachable reference cycles
    (gc.DEBUG_SAVEALL keeps them for counting), by type and by function. Counted while the
    host is still alive, so the host itself is not in the count."""
    warm_up(spec)
    hosts: list[Any] = []
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        r = _storm(spec, on_host=hosts.append)
        gc.collect()  # the host is still referenced: what this finds is the run's garbage
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        hosts.clear()
    types = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in garbage)
    funcs = Counter(o.__qualname__ for o in garbage if type(o).__name__ == "function")
    oids = r["oids"]["submitted"]
    return {"spec": asdict(spec), "objects": len(garbage), "tcpip6_oids": oids,
            "objects_per_oid": round(len(garbage) / oids, 2) if oids else None,
            "types": [{"type": t, "count": n} for t, n in types.most_common(10)],
            "closures": [{"function": f, "count": n} for f, n in funcs.most_common(5)]}


# -- orchestration --------------------------------------------------------------------------------


def _task(kind: str, *args: Any) -> dict[str, Any]:
    """Entry point in the fresh process."""
    if kind == "measure":
        return measure(*args)
    if kind == "oid":
        return oid_overhead(*args)
    if kind == "profile":
        return profile(*args)
    if kind == "census":
        return garbage_census(*args)
    raise ValueError(kind)


def _task_in(pure_dir: str | None, kind: str, *args: Any) -> dict[str, Any]:
    """`_task`, on the pure-Python copy of the hot modules' packages in `pure_dir` if given
    (first on sys.path before any of them is imported: nothing of them is, in a fresh
    process, until the measurement imports them)."""
    if pure_dir is not None:
        import sys

        sys.path.insert(0, pure_dir)
    return _task(kind, *args)


def _native() -> dict[str, Any]:
    """Whether this process runs the compiled hot modules (the installed wheel's)."""
    from tcpip6lab.buildinfo import compiled_modules, describe

    return {"compiled": bool(compiled_modules()), "describe": describe()}


def _pure(kind: str, args: Sequence[Any]) -> bool:
    """Runs measured on pure Python: the `pure` mode, and cProfile (which cannot see into
    compiled functions: their time would show up as their Python callers')."""
    return kind == "profile" or (kind == "measure" and args[0].mode == "pure")


def _copy_pure_sources(dest: Path) -> None:
    """Copy the ``.py`` files of the packages holding the compiled hot modules (not their
    extensions) from where they are installed to `dest`: a tree that imports as pure Python."""
    import importlib.machinery
    import importlib.util
    import shutil

    from tcpip6lab.buildinfo import HOT_MODULES

    for top in sorted({m.split(".", 1)[0] for m in HOT_MODULES}):
        spec = importlib.util.find_spec(top)
        assert spec is not None and spec.submodule_search_locations is not None, top
        src = next(iter(spec.submodule_search_locations))
        shutil.copytree(src, dest / top, ignore=shutil.ignore_patterns(
            "__pycache__", *(f"*{s}" for s in importlib.machinery.EXTENSION_SUFFIXES)))


def in_fresh_process(kind: str, *args: Any) -> dict[str, Any]:
    """`_task` in a spawned interpreter. The pure runs import the hot modules from a temporary
    copy of their ``.py`` files when this installation has them compiled (nothing is chosen
    at run time: a wheel's extension modules are what Python imports beside their sources)."""
    from tcpip6lab.buildinfo import compiled_modules

    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="t6l-pure-") as tmp:
        pure_dir = None
        if _pure(kind, args) and compiled_modules():
            _copy_pure_sources(Path(tmp))
            pure_dir = tmp
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1) as pool:
            return pool.submit(_task_in, pure_dir, kind, *args).result()


@dataclass
class ScalePlan:
    adapters: int = 10_000
    executors: tuple[str, ...] = ("dedicated", "async")
    modes: tuple[str, ...] = ("default", "pure", "tasks", "gc-python", "log", "memory")
    curve: tuple[int, ...] = (1000, 3000)  # smaller bursts for the growth exponent
    oid_adapters: int = 500
    oid_interval: float = 0.005
    oid_repeat: int = 3
    oid_round_trips: int = 20_000  # OIDs in a row per round-trip measurement
    profile_adapters: int = 2000  # 0: no profile
    profile_executor: str = "async"
    census_adapters: int = 500  # 0: no census
    log_dir: str | None = None
    pstats_path: str | None = None


Runner = Callable[..., dict[str, Any]]
CURVE_MODES = ("default", "pure")  # the growth curve: compiled (when built) and pure Python


def run_scale(plan: ScalePlan, say: Callable[[str], None] = lambda _s: None,
              runner: Runner | None = None) -> dict[str, Any]:
    """Every measurement in a fresh process (`runner`: in_fresh_process; tests pass `_task` to
    stay in their own process)."""
    run = runner if runner is not None else in_fresh_process
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    for ex in plan.executors:
        for mode in plan.modes:
            say(f"{ex}: {plan.adapters} adapters, {mode}")
            runs.append(run("measure", RunSpec(ex, plan.adapters, mode,
                                                             log_dir=plan.log_dir)))
        for n in plan.curve:
            for mode in CURVE_MODES:
                if n == plan.adapters:
                    continue
                say(f"{ex}: {n} adapters, {mode} (growth curve)")
                runs.append(run("measure", RunSpec(ex, n, mode)))
    say("per-OID overhead vs a trio memory-channel round trip")
    oid = run("oid", ("critical", "dedicated", "async", "rescuer"),
              plan.oid_adapters, plan.oid_interval, plan.oid_repeat, plan.oid_round_trips)
    prof = None
    if plan.profile_adapters:
        say(f"cProfile: {plan.profile_executor}, {plan.profile_adapters} adapters")
        prof = run("profile", RunSpec(plan.profile_executor, plan.profile_adapters),
                                plan.pstats_path)
    census = None
    if plan.census_adapters:
        say(f"cyclic garbage census: {plan.census_adapters} adapters")
        census = run("census", RunSpec("async", plan.census_adapters))
    out = {"plan": asdict(plan), "runs": runs, "oid_overhead": oid, "profile": prof,
           "garbage": census, "targets": {"wall_seconds": TARGET_WALL,
                                          "bytes_per_adapter": TARGET_BYTES_PER_ADAPTER,
                                          "oid_ratio": TARGET_OID_RATIO},
           "wall_seconds": round(time.perf_counter() - t0, 2)}
    out["summary"] = summarize(out)
    return out


def _find(runs: list[dict[str, Any]], ex: str, n: int, mode: str) -> dict[str, Any] | None:
    for r in runs:
        s = r["spec"]
        if s["executor"] == ex and s["adapters"] == n and s["mode"] == mode:
            return r
    return None


def growth_exponent(points: Sequence[tuple[int, float]]) -> float | None:
    """k of wall ~ adapters^k, least squares in log-log."""
    pts = [(math.log(n), math.log(w)) for n, w in points if n > 0 and w > 0]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    return round(sum((x - mx) * (y - my) for x, y in pts) / sxx, 3)


#: Storms compared with `default`: (mode, wall key, ratio key, ratio = mode/default — how
#: much faster the default is — else default/mode).
_COMPARED = (
    ("gc-python", "gc_python_wall_seconds", "gc_policy_speedup", True),
    ("gc-freeze", "gc_freeze_wall_seconds", "gc_freeze_speedup", False),
    ("gc-off", "gc_off_wall_seconds", "gc_off_speedup", False),
    ("pure", "pure_wall_seconds", "native_speedup", True),
    ("tasks", "tasks_wall_seconds", "driver_speedup", True),
)


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """Per executor: the headline numbers and the same-run ratios."""
    plan = res["plan"]
    n = plan["adapters"]
    out: dict[str, Any] = {}
    for ex in plan["executors"]:
        d = _find(res["runs"], ex, n, "default")
        lg = _find(res["runs"], ex, n, "log")
        m = _find(res["runs"], ex, n, "memory")
        row: dict[str, Any] = {"adapters": n}
        if d is not None:
            row.update(compiled=d.get("native", {}).get("compiled", False),
                       native=d.get("native", {}).get("describe", "unknown"),
                       outcome=d["outcome"], wall_seconds=d["wall_seconds"],
                       oids_per_second=d["oids_per_second"], peak_rss_kb=d["peak_rss_kb"],
                       rss_growth_per_adapter=d["rss_growth_per_adapter"])
            for mode, wall_key, ratio_key, other_over_default in _COMPARED:
                other = _find(res["runs"], ex, n, mode)
                if other is not None:
                    row[wall_key] = other["wall_seconds"]
                    a, b = ((other, d) if other_over_default else (d, other))
                    row[ratio_key] = round(a["wall_seconds"] / b["wall_seconds"], 2)
                    if mode == "gc-off":
                        row["gc_share_of_wall"] = round(
                            1 - other["wall_seconds"] / d["wall_seconds"], 3)
        if d is not None and lg is not None:
            row["log_wall_seconds"] = lg["wall_seconds"]
            row["log_slowdown"] = round(lg["wall_seconds"] / d["wall_seconds"], 2)
            row["log_bytes_per_adapter"] = round(lg["log"]["bytes_per_adapter"])
            row["log_events"] = lg["log"]["events"]
            row["log_peak_rss_kb"] = lg["peak_rss_kb"]
        if m is not None:
            tm = m["tracemalloc"]
            row["peak_bytes_per_adapter"] = tm["peak_bytes_per_adapter"]
            row["live_bytes_per_adapter"] = tm["live_bytes_per_adapter"]
            row["bytes_vs_target"] = round(tm["peak_bytes_per_adapter"]
                                           / TARGET_BYTES_PER_ADAPTER, 2)
        for mode in (*CURVE_MODES, "gc-off"):
            pts = [(r["spec"]["adapters"], r["wall_seconds"]) for r in res["runs"]
                   if r["spec"]["executor"] == ex and r["spec"]["mode"] == mode]
            row[f"growth_exponent_{mode}"] = growth_exponent(pts)
            row[f"curve_{mode}"] = sorted(pts)
        if "wall_seconds" in row:
            # The target is for 10,000 adapters: a smaller burst is projected along the
            # measured growth (wall ~ adapters^k), and says so.
            k = row["growth_exponent_default"] or 1.0
            wall = row["wall_seconds"] * (TARGET_ADAPTERS / n) ** (k if n != TARGET_ADAPTERS
                                                                    else 1.0)
            row["wall_10k_seconds"] = round(wall, 2)
            row["wall_10k_projected"] = n != TARGET_ADAPTERS
            row["wall_vs_target"] = round(wall / TARGET_WALL, 2)
        out[ex] = row
    return out


def render(res: dict[str, Any]) -> str:
    """Plain-text table of the ratios (what the command prints)."""
    s = res["summary"]
    lines = []
    for ex, row in s.items():
        n = row["adapters"]
        if "wall_seconds" in row:
            k = row["growth_exponent_default"] or 1.0
            vs = (f"→ {row['wall_10k_seconds']:.1f}s projected to {TARGET_ADAPTERS:,} along "
                  f"adapters^{k} = " if row["wall_10k_projected"] else "= ")
            lines.append(
                f"{ex:>9} {n} adapters ({row['outcome']}): wall {row['wall_seconds']:.2f}s "
                f"{vs}{row['wall_vs_target']:.1f}× the {TARGET_WALL:g}s target; "
                f"{row['oids_per_second']:,} OIDs/s; peak RSS {row['peak_rss_kb'] / 1024:.0f} MB "
                f"({row['rss_growth_per_adapter'] / 1024:.1f} KB/adapter of growth)")
        if "wall_seconds" in row:
            lines.append(f"{'':>9} modules: {row['native']}")
        if "native_speedup" in row:
            lines.append(f"{'':>9} compiled: {row['native_speedup']:.2f}× as fast as the same "
                         f"storm as pure Python ({row['pure_wall_seconds']:.2f}s; same trace: "
                         "tests/ndisemu/test_native.py)" if row["compiled"] else
                         f"{'':>9} (no compiled modules installed: the pure run took "
                         f"{row['pure_wall_seconds']:.2f}s)")
        if "gc_policy_speedup" in row:
            lines.append(f"{'':>9} GC: run_storm is {row['gc_policy_speedup']:.2f}× as fast as "
                         "the same storm with Python's default GC thresholds")
        if "gc_freeze_speedup" in row:
            lines.append(f"{'':>9} GC: gc.freeze() of the start-up heap first: "
                         f"{row['gc_freeze_speedup']:.2f}× as fast")
        if "gc_off_speedup" in row:
            lines.append(f"{'':>9} GC off: {row['gc_off_speedup']:.2f}× as fast — the cyclic GC "
                         f"is still {row['gc_share_of_wall']:.0%} of run_storm's wall time")
        if "driver_speedup" in row:
            lines.append(f"{'':>9} drivers: the coroutine driver is {row['driver_speedup']:.2f}×"
                         f" as fast as worker threads as trio tasks "
                         f"({row['tasks_wall_seconds']:.2f}s), same trace")
        if "log_slowdown" in row:
            lines.append(f"{'':>9} event log on: {row['log_slowdown']:.2f}× the wall time, "
                         f"{row['log_events']:,} events, {row['log_bytes_per_adapter']:,} "
                         "log bytes/adapter")
        if "peak_bytes_per_adapter" in row:
            lines.append(f"{'':>9} tracemalloc: {row['peak_bytes_per_adapter'] / 1024:.1f} KB/"
                         f"adapter at the peak ({row['bytes_vs_target']:.2f}× the 20 KB target),"
                         f" {row['live_bytes_per_adapter'] / 1024:.1f} KB live at the end")
        k_d, k_p = row.get("growth_exponent_default"), row.get("growth_exponent_pure")
        if k_d is not None:
            lines.append(f"{'':>9} growth: wall ~ adapters^{k_d}"
                         + (f", ^{k_p} as pure Python" if k_p is not None else ""))
    o = res["oid_overhead"]
    lines.append(f"per-OID cost vs a trio memory-channel round trip "
                 f"({o['floor_round_trip_us']:.1f} µs; target ≤ {TARGET_OID_RATIO:g}×): one OID "
                 f"through the executor on a bound adapter, coroutine | task driver; and a "
                 f"storm's wall per OID ({o['adapters']} adapters, "
                 f"{o['interval'] * 1000:g} ms apart, IPv4 off):")
    for ex, e in o["executors"].items():
        lines.append(f"{ex:>9} {e['round_trip_ratio']:.1f}× ({e['round_trip_us']:.1f} µs) | "
                     f"{e['round_trip_tasks_ratio']:.1f}× ({e['round_trip_tasks_us']:.1f} µs); "
                     f"storm {e['ratio_to_floor']:.1f}×")
    g = res.get("garbage")
    if g:
        top = ", ".join(f"{c['function']} ×{c['count']}" for c in g["closures"][:2])
        lines.append(f"cyclic garbage: {g['objects_per_oid']} objects per tcpip6 OID left for "
                     "the GC"
                     + (f" (closures: {top})" if top else ""))
    p = res.get("profile")
    if p:
        lines.append("hot spots (own time, cProfile, pure Python: compiled code is invisible to "
                     "it):")
        for r in p["by_own_time"][:8]:
            lines.append(f"  {r['own_pct']:5.1f}%  {r['where']}  ({r['calls']:,} calls)")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    """Wall vs adapters (log-log), default GC and tuned, per executor."""
    from .plots import EXECUTOR_COLORS, _figure

    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for ex, row in res["summary"].items():
        for mode, style in (("default", "-"), ("pure", "--")):
            pts = row.get(f"curve_{mode}") or []
            if pts:
                what = ("compiled" if row.get("compiled") else "default") if mode == "default" \
                    else "pure Python"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o",
                        markersize=3, color=EXECUTOR_COLORS.get(ex, "grey"),
                        label=f"{ex}, {what}")
    ax.plot([TARGET_ADAPTERS], [TARGET_WALL], marker="*", markersize=11, color="black",
            linestyle="none", label=f"target: {TARGET_WALL:g}s at {TARGET_ADAPTERS:,}")
    first = next((row["curve_default"][0] for row in res["summary"].values()
                  if row.get("curve_default")), None)
    if first is not None:  # what linear growth from the smallest burst would give
        n0, w0 = first
        ax.plot([n0, TARGET_ADAPTERS], [w0, w0 * TARGET_ADAPTERS / n0], ":", color="grey",
                linewidth=1, label="linear from the smallest burst")
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"
                                               if str(v).lstrip("0.")[:1] in "25" else ""))
    ax.set_xlabel("adapters in the burst")
    ax.set_ylabel("wall seconds")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    ax.set_title("bind-storm wall time vs burst size", fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.12)
    fig.savefig(path)
