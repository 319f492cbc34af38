"""The bind storm: N adapters arrive (a burst, or `interval` apart) on an emulated host, in
virtual time; the outcome is whatever the emulation does.

Outcomes: "bound" (every tcpip6 bind completed), "deadlock" (the hang detector proved a knot),
"failed" (every bind finished but some failed), "stalled" (no knot, but binds still unfinished
at the horizon). Nothing here computes a threshold: the run is observed, not predicted.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import IO, Any

import trio

from faults.plan import FaultPlan
from faults.replay import ReplayResult
from ndisemu import invariants
from ndisemu.offload import OffloadCaps
from ndisemu.params import CRITICAL
from ndisemu.trace import JsonlSink, Tracer

from .host import EmulatedHost
from .params import ModelParams


class Outcome(StrEnum):
    """How a storm ended (a str: it compares and serialises as its value)."""

    BOUND = "bound"  # every tcpip6 bind completed
    DEADLOCK = "deadlock"  # the hang detector proved a knot
    STALLED = "stalled"  # no knot, but binds still unfinished at the horizon
    FAILED = "failed"  # every bind finished, some failed

    @property
    def hung(self) -> bool:
        """The binds did not finish: a proven knot, or a stall."""
        return self in (Outcome.DEADLOCK, Outcome.STALLED)


OUTCOMES = tuple(o.value for o in Outcome)
#: raised when the shape of `storm --json` changes (tcpip6lab/schemas/storm.schema.json pins
#: it with `const`; the JSON carries it as `schema_version`)
STORM_SCHEMA_VERSION = 1
END_REASONS = ("horizon", "deadlock", "settled")


@dataclass(frozen=True)
class CriticalWorkers:
    """The critical queue's threads at the end of the run."""

    static: int
    dynamic_created: int
    peak_dynamic: int
    max_dynamic: int
    blocked_at_end: int
    pending_at_end: int
    # when the dynamic threads first reached their cap (seconds after the first arrival; None:
    # never), to set beside deadlock.detected_at
    cap_reached_at: float | None = None
    # the balance manager's wakes on its event (insert_growth="manager"), one thread at most each
    manager_wakes: int = 0


@dataclass(frozen=True)
class BindSeconds:
    """Bind durations (arrival to interface up) of the adapters that bound; None if none."""

    max: float | None
    mean: float | None


@dataclass(frozen=True)
class OidCounts:
    submitted: int  # OID submissions through the executor
    completions_run: int  # completion items the executor ran
    ndis_requests: int  # requests NDIS passed to miniports (every protocol)
    # completion work items run, every protocol: NDIS's (completion_via="ndis") and the
    # miniports' own (completion_via="miniport" with miniport_completion="workitem")
    ndis_completion_items: int
    miniport_completion_items: int


@dataclass(frozen=True)
class HeartbeatSummary:
    beats: int
    last_beat: float | None  # virtual seconds after the first arrival


@dataclass(frozen=True)
class FaultSummary:
    plan: str | None  # the plan's source (a file name, or "<dict>")
    fired: dict[str, int]  # firings by fault id
    total_fired: int
    healed: bool
    heal_at: float | None


@dataclass(frozen=True)
class BindFailure:
    reason: str
    adapters: int


@dataclass(frozen=True)
class StormResult(Mapping[str, Any]):
    """What one storm did. The typed fields are the API; `as_dict()` is the JSON form that
    `storm --json` prints and users script against (keys and order as they always were: keys
    that do not apply to a run — `deadlock`, `stalls`, `faults`, `failures` — are left out).

    The result also reads as that JSON form (``result["outcome"]``, ``"deadlock" in result``),
    so scripts written against the mapping keep working. The texts for a person
    (`deadlock_text`, `stalls_text`) and the Graphviz `dot` are in the mapping but not in
    `json()`."""

    outcome: Outcome
    adapters: int
    adapters_bound: int
    adapters_failed: int
    adapters_removed: int
    executor: str
    seed: int
    interval: float
    horizon: float
    params: dict[str, Any]
    critical_workers: CriticalWorkers
    ipv4_bound: int
    virtual_seconds: float
    bind_seconds: BindSeconds
    oids: OidCounts
    heartbeat: HeartbeatSummary
    end_reason: str  # one of END_REASONS
    deadlock: dict[str, Any] | None = None  # Deadlock.as_dict(): the proven wait-for chain
    stalls: list[dict[str, Any]] = field(default_factory=list)
    faults: FaultSummary | None = None
    failures: list[BindFailure] = field(default_factory=list)
    wall_seconds: float = 0.0
    trace_hash: str | None = None  # SHA-256 of the event log, when one was written
    deadlock_text: str | None = None
    stalls_text: list[str] = field(default_factory=list)
    dot: str | None = None  # the wait-for graph of the deadlock, else of the last stall
    _mapping: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                     compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Everything, in the JSON form's order (texts and DOT included)."""
        out: dict[str, Any] = {
            "schema_version": STORM_SCHEMA_VERSION,
            "outcome": self.outcome,
            "adapters": self.adapters,
            "adapters_bound": self.adapters_bound,
            "adapters_failed": self.adapters_failed,
            "adapters_removed": self.adapters_removed,
            "executor": self.executor,
            "seed": self.seed,
            "interval": self.interval,
            "horizon": self.horizon,
            "params": self.params,
            "critical_workers": asdict(self.critical_workers),
            "ipv4_bound": self.ipv4_bound,
            "virtual_seconds": self.virtual_seconds,
            "bind_seconds": asdict(self.bind_seconds),
            "oids": asdict(self.oids),
            "heartbeat": asdict(self.heartbeat),
            "end_reason": self.end_reason,
        }
        if self.deadlock is not None:
            out["deadlock"] = self.deadlock
            out["deadlock_text"] = self.deadlock_text
        if self.dot is not None:
            out["dot"] = self.dot
        if self.stalls_text:
            out["stalls_text"] = self.stalls_text
        if self.stalls:
            out["stalls"] = self.stalls
        if self.faults is not None:
            out["faults"] = asdict(self.faults)
        if self.failures:
            out["failures"] = [asdict(f) for f in self.failures]
        out["wall_seconds"] = self.wall_seconds
        if self.trace_hash is not None:
            out["trace_hash"] = self.trace_hash
        return out

    def json(self) -> dict[str, Any]:
        """The JSON form: `as_dict()` without the texts for a person and the DOT graph."""
        return {k: v for k, v in self.as_dict().items()
                if k != "dot" and not k.endswith("_text")}

    # -- the mapping view (the JSON form, with texts and DOT) ------------------------------------

    def _view(self) -> dict[str, Any]:
        if not self._mapping:
            self._mapping.update(self.as_dict())
        return self._mapping

    def __getitem__(self, key: str) -> Any:
        return self._view()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())


@dataclass
class StormConfig:
    adapters: int
    params: ModelParams = field(default_factory=ModelParams)
    interval: float = 0.0
    seed: int = 0
    horizon: float = 300.0
    start: float = 1.0  # first arrival, virtual seconds after boot
    log: IO[str] | None = None
    pcap_dir: str | None = None
    traffic: bool = False
    ping_interval: float = 0.5
    plan: FaultPlan | None = None
    extra_sinks: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    #: how the kernel carries worker threads (ndisemu.kernel): the same trace either way, but a
    #: storm has no outside input, so the cheaper coroutine driver is its default
    workers: str = "coroutines"
    #: task offload (ndisemu/offload.py): what every miniport declares; None (the default, and
    #: the golden traces') leaves OID_TCP_TASK_OFFLOAD out of the bind
    offload: OffloadCaps | None = None

    def header(self) -> dict[str, Any]:
        """Everything a replay needs to run this storm again."""
        return {"event": "header", "tool": "tcpip6-lab", "command": "storm",
                "adapters": self.adapters, "interval": self.interval, "seed": self.seed,
                "horizon": self.horizon, "start": self.start, "traffic": self.traffic,
                "ping_interval": self.ping_interval, "params": self.params.as_dict(),
                "plan": self.plan.text if self.plan is not None and self.plan.text is not None
                else (self.plan.as_dict() if self.plan is not None else None),
                "plan_source": self.plan.source if self.plan is not None else None,
                **({"offload": asdict(self.offload)} if self.offload is not None else {})}

    def __post_init__(self) -> None:
        from ndisemu.errors import ConfigError
        from ndisemu.params import check_field_types

        check_field_types(self)
        if self.adapters < 1:
            raise ConfigError(f"adapters must be >= 1 (got {self.adapters})")
        if self.interval < 0:
            raise ConfigError(f"interval must be >= 0 (got {self.interval})")
        if self.horizon <= 0:
            raise ConfigError(f"horizon must be > 0 (got {self.horizon})")
        if self.start < 0:
            raise ConfigError("start must be >= 0")


async def run_storm_async(cfg: StormConfig,
                          on_host: Callable[[EmulatedHost], None] | None = None) -> StormResult:
    """Run one storm inside an existing trio run (tests use this under MockClock)."""
    wall0 = time.perf_counter()
    tracer = Tracer()
    sink: JsonlSink | None = None
    if cfg.log is not None:
        sink = JsonlSink(cfg.log, prefix=cfg.header())
        tracer.add_sink(sink)
    for extra in cfg.extra_sinks:
        tracer.add_sink(extra)
    # Nothing outside the emulation feeds a storm: its kernel runs on its own virtual clock.
    host = EmulatedHost(cfg.params, seed=cfg.seed, tracer=tracer, pcap_dir=cfg.pcap_dir,
                        plan=cfg.plan, free_running=True, workers=cfg.workers,
                        offload=cfg.offload)
    if on_host is not None:
        on_host(host)
    end_reason = "horizon"
    kernel = host.kernel

    # The run ends inside the emulation (Kernel.stop at a point of the event sequence), never
    # by a trio deadline racing the kernel's own: the same seed gives the same trace.
    def check(_now: float = 0.0) -> None:
        nonlocal end_reason
        if end_reason != "horizon":
            return
        if host.deadlock is not None:
            end_reason = "deadlock"
        elif host.settled(expected):
            end_reason = "settled"
        else:
            return
        if cfg.traffic:
            # Keep the peer pinging a little longer, so the outcome shows on the wire.
            kernel.call_later(4 * cfg.ping_interval, kernel.stop)
        else:
            kernel.stop()

    expected = host.expected_adapters(cfg.adapters)
    host.detector.on_deadlock = lambda _dl: check()
    host.tcpip6.on_settled = lambda _s: check()
    first = cfg.start
    try:
        # Everything is scheduled before the kernel runs: a free-running kernel must not see
        # the outside world after it starts (its clock would race the set-up).
        host.start()
        configs = host.adapter_configs(cfg.adapters)
        host.pnp.schedule(configs, start=first, interval=cfg.interval)
        if cfg.traffic:
            host.start_pinging(cfg.ping_interval, start=0.5)
        kernel.call_at(first + cfg.horizon, kernel.stop)
        async with trio.open_nursery() as nursery:
            # kernel.run returns when stopped; the nursery then has nothing left to wait for.
            await nursery.start(kernel.run)
    finally:
        host.close()
        if sink is not None:
            sink.flush()  # everything so far is on disk, whatever ended the run
    now = host.kernel.now
    # No leaks, whatever the faults did: checked after every storm (a violation is our bug).
    invariants.check(host.kernel, host.ndis, stopped=True)
    host.detector.close(now)
    result = summarize(host, cfg, now=now, first=first, end_reason=end_reason)
    tracer.emit("storm.end", outcome=result.outcome, bound=result.adapters_bound)
    trace_hash = None
    if sink is not None:
        trace_hash = sink.close({"event": "trailer", "outcome": result.outcome})
    return replace(result, wall_seconds=round(time.perf_counter() - wall0, 6),
                   trace_hash=trace_hash)


def summarize(host: EmulatedHost, cfg: StormConfig, *, now: float, first: float,
              end_reason: str) -> StormResult:
    bound = host.bound()
    failed = host.failed()
    removed = host.tcpip6.unbound
    expected = host.expected_adapters(cfg.adapters)
    deadlock = host.deadlock
    if deadlock is not None:
        outcome = Outcome.DEADLOCK
    elif bound + removed >= expected and failed == 0:
        outcome = Outcome.BOUND
    elif bound + failed + removed >= expected:
        outcome = Outcome.FAILED
    else:
        outcome = Outcome.STALLED
    crit = host.kernel.queue(CRITICAL)
    bind_times = [s.bound_at - s.started_at for s in host.tcpip6_states()
                  if s.bound_at is not None]
    detector = host.detector
    dot = None
    if deadlock is not None:
        dot = deadlock.to_dot()
    elif detector.stalls:
        dot = detector.stalls[-1].to_dot()
    faults = None
    if host.faults is not None:
        inj = host.faults
        faults = FaultSummary(plan=inj.plan.source, fired=dict(sorted(inj.firings.items())),
                              total_fired=inj.total_firings, healed=inj.healed,
                              heal_at=inj.plan.heal_at)
    failures = Counter(s.failure for s in host.tcpip6_states() if s.failure)
    return StormResult(
        outcome=outcome,
        adapters=cfg.adapters,
        adapters_bound=bound,
        adapters_failed=failed,
        adapters_removed=removed,
        executor=cfg.params.executor,
        seed=cfg.seed,
        interval=cfg.interval,
        horizon=cfg.horizon,
        params=cfg.params.as_dict(),
        critical_workers=CriticalWorkers(
            static=crit.spec.static_threads,
            dynamic_created=crit.dynamic_created,
            peak_dynamic=crit.peak_dynamic,
            max_dynamic=crit.spec.max_dynamic,
            blocked_at_end=crit.blocked,
            pending_at_end=len(crit.pending),
            cap_reached_at=(round(crit.cap_reached_at - first, 9)
                            if crit.cap_reached_at is not None else None),
            manager_wakes=host.kernel.core.manager_wakes,
        ),
        ipv4_bound=host.ipv4_bound(),
        virtual_seconds=round(max(0.0, now - first), 9),
        bind_seconds=BindSeconds(
            max=round(max(bind_times), 9) if bind_times else None,
            mean=round(statistics.fmean(bind_times), 9) if bind_times else None,
        ),
        oids=OidCounts(
            submitted=host.executor.submitted,
            completions_run=host.executor.completions_run,
            ndis_requests=host.ndis.requests_submitted,
            ndis_completion_items=host.ndis.completion_items_run,
            miniport_completion_items=sum(b.miniport.work_items_run
                                          for b in host.ndis.miniports.values()),
        ),
        heartbeat=HeartbeatSummary(
            beats=host.heartbeat.count,
            last_beat=(round(host.heartbeat.last_beat - first, 9)
                       if host.heartbeat.last_beat is not None else None),
        ),
        end_reason=end_reason,
        deadlock=deadlock.as_dict(time_origin=first) if deadlock is not None else None,
        deadlock_text=(deadlock.render(time_origin=first, limit=6)
                       if deadlock is not None else None),
        stalls=[st.as_dict(time_origin=first) for st in detector.stalls],
        stalls_text=[st.render(time_origin=first) for st in list(detector.stalls)[-3:]],
        faults=faults,
        failures=[BindFailure(r, n) for r, n in failures.most_common()],
        dot=dot,
    )


def run_storm(cfg: StormConfig) -> StormResult:
    """Run one storm in its own trio run, on a virtual clock that jumps to each next event."""
    results: list[StormResult] = []

    from trio.testing import MockClock  # pulls in pytest: kept off the CLI's start-up path

    async def main() -> None:
        results.append(await run_storm_async(cfg))

    # A storm allocates many long-lived objects (items, requests, events) and no reference
    # cycles (bench.scale's census counts 0 cyclic objects; tests/tcpip6lab/test_storm_gc.py
    # checks it, departures included: an unbound interface's IPv6 host is closed, which breaks
    # its cycles): every collection of the cyclic GC during the run scans them for nothing. With
    # Python's default thresholds that was ~60 % of a 10,000-adapter run; with a 100,000
    # threshold still ~15 %, because frees of old objects keep the young generation growing.
    # So the cyclic GC is off for the run and restored after (reference counting frees
    # everything as usual).
    enabled = gc.isenabled()
    gc.disable()
    try:
        trio.run(main, clock=MockClock(autojump_threshold=0))
    finally:
        if enabled:
            gc.enable()
    return results[0]


def _offload_from_header(value: Any) -> OffloadCaps | None:
    """The task offload a log's header names: the caps as a table, or `true` (logs written
    before the caps were, which only ever used the defaults)."""
    from faults.errors import ReplayError
    from ndisemu.errors import ConfigError

    if value is None:
        return None
    if value is True:
        return OffloadCaps()
    if isinstance(value, dict):
        try:
            return OffloadCaps(**value)
        except (TypeError, ConfigError) as exc:
            raise ReplayError(f"the log's offload is not valid: {exc}") from None
    raise ReplayError(f"the log's offload is not valid: {value!r}")


def config_from_header(header: dict[str, Any]) -> StormConfig:
    """The StormConfig a log's header describes (for replay)."""
    from faults.plan import parse_plan, plan_from_dict

    plan_data = header.get("plan")
    source = str(header.get("plan_source") or "<log>")
    plan = None
    if isinstance(plan_data, str):
        plan = parse_plan(plan_data, source=source)
    elif isinstance(plan_data, dict):
        plan = plan_from_dict(plan_data, source=source)
    return StormConfig(
        offload=_offload_from_header(header.get("offload")),
        adapters=int(header["adapters"]), params=ModelParams.from_dict(header["params"]),
        interval=float(header["interval"]), seed=int(header["seed"]),
        horizon=float(header["horizon"]), start=float(header.get("start", 1.0)),
        traffic=bool(header.get("traffic", False)),
        ping_interval=float(header.get("ping_interval", 0.5)), plan=plan)


def replay(path: str) -> tuple[ReplayResult, StormResult]:
    """Run the logged storm again; report the first divergent event."""
    from trio.testing import MockClock

    from faults.replay import Comparator, ReplayResult, read_log

    header, events, trailer = read_log(path)
    cfg = config_from_header(header)
    hosts: list[EmulatedHost] = []
    comparator = Comparator(events, lambda: hosts[0].kernel.stop() if hosts else None)
    cfg.extra_sinks.append(comparator)
    results: list[StormResult] = []

    async def main() -> None:
        results.append(await run_storm_async(cfg, on_host=hosts.append))

    trio.run(main, clock=MockClock(autojump_threshold=0))
    comparator.finish()
    logged_hash = trailer.get("trace_hash") if trailer else None
    return ReplayResult(comparator.seen, logged_hash, comparator.divergence), results[0]


def dumps(result: StormResult | dict[str, Any]) -> str:
    """The JSON form, as `storm --json` prints it."""
    data = result.json() if isinstance(result, StormResult) else result
    return json.dumps(data, indent=2, sort_keys=False)
