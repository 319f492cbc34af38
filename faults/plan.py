"""Fault plans: what to break, where, when — declared in TOML or built in Python.

    [run]
    seed = 7            # root seed (overridden by --seed when given)
    heal_at = 30.0      # from this virtual second on no fault fires; pended/hung things resume

    [[oid]]
    oid = "OID_GEN_CURRENT_PACKET_FILTER"   # or "*" for every OID
    action = "fail"                         # delay | pend | fail | double-complete
    status = "NDIS_STATUS_FAILURE"
    probability = 1.0

    [[miniport]]   action = hang | reset | surprise-removal | link-flap
    [[wire]]       action = loss | duplicate | reorder | corrupt | latency
    [[queue]]      action = hold | alloc-fail
                   (hold: `workers` items on `queue` block for `duration`; with `waker_queue`
                   each is woken by an item queued on that queue when its time is up — another
                   driver whose completion needs that queue, declared for the knot proof)
    [[pnp]]        action = burst | depart

Every entry may carry an `id` (default "<kind><index>", e.g. "oid0") and the triggers of Linux's
fault_attr, checked in its order of precedence (faults.md §3): `nth` (fire on the n-th matching
opportunity only) > `count` (at most this many firings) > `after`/`until` (a virtual-time window)
> `probability`. `adapters` (a list of names or globs) selects where a fault may fire.

Invalid plans — unknown keys, wrong types, impossible values — are rejected before anything runs,
with the file, the line of the entry's table header, and the key, in one message.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ndisemu.constants import NdisStatus, Oid
from ndisemu.params import SYSTEM_QUEUES

from .errors import PlanError
from .rng import fault_rng

KINDS = ("oid", "miniport", "wire", "queue", "pnp")
ACTIONS: dict[str, tuple[str, ...]] = {
    "oid": ("delay", "pend", "fail", "double-complete"),
    "miniport": ("hang", "reset", "surprise-removal", "link-flap"),
    "wire": ("loss", "duplicate", "reorder", "corrupt", "latency"),
    "queue": ("hold", "alloc-fail"),
    "pnp": ("burst", "depart"),
}
TRIGGER_KEYS = ("nth", "count", "after", "until", "probability", "adapters")
DISTRIBUTIONS = ("uniform", "normal", "exponential")


@dataclass(frozen=True)
class Trigger:
    nth: int | None = None
    count: int | None = None
    after: float | None = None
    until: float | None = None
    probability: float = 1.0
    adapters: tuple[str, ...] | None = None

    def selects(self, adapter: str | None) -> bool:
        if self.adapters is None:
            return True
        if adapter is None:
            return False
        return any(fnmatch.fnmatchcase(adapter, p) for p in self.adapters)


@dataclass(frozen=True)
class Delay:
    """A fixed delay, or a distribution in virtual seconds (clamped at 0)."""

    fixed: float | None = None
    distribution: str | None = None
    low: float = 0.0
    high: float = 0.0
    mean: float = 0.0
    stddev: float = 0.0

    def draw(self, rng: Any) -> float:
        if self.fixed is not None:
            return self.fixed
        if self.distribution == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.distribution == "normal":
            return max(0.0, float(rng.gauss(self.mean, self.stddev)))
        return float(rng.expovariate(1.0 / self.mean)) if self.mean > 0 else 0.0


@dataclass(frozen=True)
class Fault:
    id: str
    kind: str
    action: str
    trigger: Trigger
    params: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    @property
    def oid(self) -> int | None:
        """The OID selected (None = every OID)."""
        value = self.params.get("oid")
        return None if value in (None, "*") else int(value)


@dataclass(frozen=True)
class FaultPlan:
    faults: tuple[Fault, ...] = ()
    seed: int | None = None
    heal_at: float | None = None
    source: str = "<plan>"
    text: str | None = None  # the TOML, when loaded from one (kept for replay headers)

    def of_kind(self, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind]

    def with_varied_timings(self, seed: int, spread: float) -> FaultPlan:
        """This plan with each fault's timing moved by its own seeded offset in [-spread,
        +spread] virtual seconds: the `after`/`until` window (moved whole, so its width stays)
        and the `at` of queue holds and PnP events, clamped at 0. The offset comes from (seed,
        fault id) through the same stable digest as the faults' generators, so `storm --seed K
        --vary-timings S` rebuilds exactly the plan `explore --vary-timings S` ran with seed K.
        `heal_at` stays: it is when the run is judged."""
        if spread < 0 or not math.isfinite(spread):
            raise PlanError(f"timing spread must be a finite number >= 0 (got {spread})")
        faults = []
        for f in self.faults:
            t = f.trigger
            timed = t.after is not None or t.until is not None or "at" in f.params
            if not timed or spread == 0:
                faults.append(f)
                continue
            shift = fault_rng(seed, f.id, domain="tcpip6-lab-timing").uniform(-spread, spread)
            after, until = t.after, t.until
            if after is not None:
                shift = max(shift, -after)  # the window moves whole and never before 0
            elif until is not None:
                shift = max(shift, -until + 1e-9)
            trigger = dataclasses.replace(
                t, after=None if after is None else after + shift,
                until=None if until is None else until + shift)
            params = dict(f.params)
            if "at" in params:  # moved with its window, if it has one
                params["at"] = max(0.0, float(params["at"]) + shift)
            faults.append(dataclasses.replace(f, trigger=trigger, params=params))
        return dataclasses.replace(
            self, faults=tuple(faults), text=None,
            source=f"{self.source} (timings varied ±{spread:g}s, seed {seed})")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run": {}}
        if self.seed is not None:
            out["run"]["seed"] = self.seed
        if self.heal_at is not None:
            out["run"]["heal_at"] = self.heal_at
        for f in self.faults:
            entry: dict[str, Any] = {"id": f.id, "action": f.action}
            entry.update({k: _plain(k, v) for k, v in f.params.items()})
            t = f.trigger
            for key in ("nth", "count", "after", "until"):
                if getattr(t, key) is not None:
                    entry[key] = getattr(t, key)
            if t.probability != 1.0:
                entry["probability"] = t.probability
            if t.adapters is not None:
                entry["adapters"] = list(t.adapters)
            out.setdefault(f.kind, []).append(entry)
        return out


def _plain(key: str, value: Any) -> Any:
    """A parameter back in the plan's own notation (for as_dict and replay headers)."""
    if key == "oid" and isinstance(value, int):
        return Oid(value).ndis_name
    if isinstance(value, NdisStatus):
        return value.ndis_name
    if isinstance(value, Delay):
        if value.fixed is not None:
            return value.fixed
        keys = {"uniform": ("low", "high"), "normal": ("mean", "stddev"),
                "exponential": ("mean",)}[value.distribution or "exponential"]
        return {"distribution": value.distribution, **{k: getattr(value, k) for k in keys}}
    return value


# -- loading --------------------------------------------------------------------------------


def load_plan(path: str | Path) -> FaultPlan:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{p}: cannot read fault plan: {exc.strerror}") from None
    return parse_plan(text, source=str(p))


def parse_plan(text: str, *, source: str = "<plan>") -> FaultPlan:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{source}: not valid TOML: {exc}") from None
    plan = plan_from_dict(data, source=source, text=text)
    return plan


def plan_from_dict(data: dict[str, Any], *, source: str = "<dict>",
                   text: str | None = None) -> FaultPlan:
    """Validate a plan given as a dict (the TOML's shape) and build it."""
    if not isinstance(data, dict):
        raise PlanError(f"{source}: a fault plan is a table")
    unknown = [k for k in data if k != "run" and k not in KINDS]
    if unknown:
        raise PlanError(f"{source}:{_top_line(text, unknown[0])}: unknown section "
                        f"{unknown[0]!r} (expected run, {', '.join(KINDS)})")
    run = data.get("run", {})
    if not isinstance(run, dict):
        raise PlanError(f"{source}: [run] must be a table")
    where = f"{source}:{_header_line(text, 'run', 0) or '?'}"
    for key in run:
        if key not in ("seed", "heal_at"):
            raise PlanError(f"{where}: [run]: unknown key {key!r} (expected seed, heal_at)")
    seed = run.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise PlanError(f"{where}: [run] seed: must be a non-negative integer")
    heal_at = run.get("heal_at")
    if heal_at is not None:
        heal_at = _number(heal_at, f"{where}: [run] heal_at", minimum=0.0)
    faults: list[Fault] = []
    ids: set[str] = set()
    for kind in KINDS:
        entries = data.get(kind, [])
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list):
            raise PlanError(f"{source}: [[{kind}]] must be an array of tables")
        for index, entry in enumerate(entries):
            line = _header_line(text, kind, index)
            fault = _fault(kind, index, entry, f"{source}:{line or '?'}", line)
            if fault.id in ids:
                raise PlanError(f"{source}:{line or '?'}: [[{kind}]] id: duplicate id "
                                f"{fault.id!r}")
            ids.add(fault.id)
            faults.append(fault)
    return FaultPlan(tuple(faults), seed, heal_at, source, text)


_COMMON = ("id", "action", *TRIGGER_KEYS)
_PARAMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("oid", "delay"): ("oid", "delay"),
    ("oid", "pend"): ("oid",),
    ("oid", "fail"): ("oid", "status"),
    ("oid", "double-complete"): ("oid",),
    ("miniport", "hang"): (),
    ("miniport", "reset"): (),
    ("miniport", "surprise-removal"): (),
    ("miniport", "link-flap"): ("duration",),
    ("wire", "loss"): ("direction",),
    ("wire", "duplicate"): ("direction",),
    ("wire", "reorder"): ("direction", "delay"),
    ("wire", "corrupt"): ("direction",),
    ("wire", "latency"): ("direction", "delay"),
    ("queue", "hold"): ("queue", "workers", "at", "duration", "waker_queue"),
    ("queue", "alloc-fail"): ("queue",),
    ("pnp", "burst"): ("count", "at", "interval"),
    ("pnp", "depart"): ("at",),
}


def _fault(kind: str, index: int, entry: Any, where: str, line: int | None) -> Fault:
    tag = f"[[{kind}]]"
    if not isinstance(entry, dict):
        raise PlanError(f"{where}: {tag} entries must be tables")
    action = entry.get("action")
    if action is None:
        raise PlanError(f"{where}: {tag} action: missing (one of "
                        f"{', '.join(ACTIONS[kind])})")
    if action not in ACTIONS[kind]:
        raise PlanError(f"{where}: {tag} action: {action!r} is not one of "
                        f"{', '.join(ACTIONS[kind])}")
    allowed = set(_COMMON) | set(_PARAMS[(kind, action)])
    for key in entry:
        if key not in allowed:
            raise PlanError(f"{where}: {tag} {key}: unknown key for action {action!r} "
                            f"(allowed: {', '.join(sorted(allowed))})")
    fid = entry.get("id", f"{kind}{index}")
    if not isinstance(fid, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", fid):
        raise PlanError(f"{where}: {tag} id: must be 1-64 characters of [A-Za-z0-9_.:-]")
    trigger = _trigger(entry, f"{where}: {tag}")
    params = _params(kind, action, entry, f"{where}: {tag}")
    return Fault(fid, kind, action, trigger, params, line)


def _trigger(entry: dict[str, Any], where: str) -> Trigger:
    nth = entry.get("nth")
    if nth is not None:
        nth = _integer(nth, f"{where} nth", minimum=1)
    count = entry.get("count")
    if count is not None:
        count = _integer(count, f"{where} count", minimum=0)
    after = entry.get("after")
    if after is not None:
        after = _number(after, f"{where} after", minimum=0.0)
    until = entry.get("until")
    if until is not None:
        until = _number(until, f"{where} until", minimum=0.0)
    if after is not None and until is not None and until <= after:
        raise PlanError(f"{where} until: must be later than after ({until} <= {after})")
    probability = _number(entry.get("probability", 1.0), f"{where} probability", minimum=0.0)
    if probability > 1.0:
        raise PlanError(f"{where} probability: must be in [0, 1] (got {probability})")
    adapters = entry.get("adapters")
    if adapters is not None:
        if isinstance(adapters, str):
            adapters = [adapters]
        if not isinstance(adapters, list) or not all(isinstance(a, str) and a
                                                        for a in adapters):
            raise PlanError(f"{where} adapters: must be a name, a glob or a list of them")
        adapters = tuple(adapters)
    return Trigger(nth, count, after, until, probability, adapters)


def _params(kind: str, action: str, entry: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _PARAMS[(kind, action)]:
        if key not in entry:
            continue
        value = entry[key]
        if key == "oid":
            out["oid"] = _oid(value, f"{where} oid")
        elif key == "status":
            if not isinstance(value, str):
                raise PlanError(f"{where} status: must be an NDIS_STATUS_* name")
            try:
                status = NdisStatus.from_name(value)
            except KeyError:
                raise PlanError(f"{where} status: unknown status {value!r}") from None
            if status in (NdisStatus.SUCCESS, NdisStatus.PENDING):
                raise PlanError(f"{where} status: a failure status is needed, not {value}")
            out["status"] = status
        elif key == "delay":
            out["delay"] = _delay(value, f"{where} delay")
        elif key == "direction":
            if value not in ("in", "out", "both"):
                raise PlanError(f"{where} direction: must be in, out or both")
            out["direction"] = value
        elif key in ("queue", "waker_queue"):
            if value not in SYSTEM_QUEUES:
                raise PlanError(f"{where} {key}: must be one of {', '.join(SYSTEM_QUEUES)}")
            out[key] = value
        elif key in ("workers", "count"):
            out[key] = _integer(value, f"{where} {key}", minimum=1)
        else:  # at, duration, interval
            out[key] = _number(value, f"{where} {key}", minimum=0.0)
    required = {("oid", "fail"): ("status",), ("oid", "delay"): ("delay",),
                ("wire", "latency"): ("delay",), ("queue", "hold"): ("workers", "duration"),
                ("pnp", "burst"): ("count",), ("miniport", "link-flap"): ("duration",)}
    for key in required.get((kind, action), ()):
        if key not in out:
            raise PlanError(f"{where} {key}: required for action {action!r}")
    if kind == "oid":
        out.setdefault("oid", "*")
    if kind == "wire":
        out.setdefault("direction", "both")
    if kind == "queue":
        out.setdefault("queue", "critical")
    return out


def _oid(value: Any, where: str) -> int | str:
    if value == "*":
        return "*"
    if isinstance(value, int) and not isinstance(value, bool):
        if value in Oid._value2member_map_:
            return value
        raise PlanError(f"{where}: unknown OID 0x{value:08X}")
    if not isinstance(value, str):
        raise PlanError(f"{where}: must be an OID name like OID_GEN_LINK_SPEED, a code, or *")
    try:
        return int(Oid.from_name(value))
    except (KeyError, ValueError):
        raise PlanError(f"{where}: unknown OID {value!r}") from None


def _delay(value: Any, where: str) -> Delay:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Delay(fixed=_number(value, where, minimum=0.0))
    if not isinstance(value, dict):
        raise PlanError(f"{where}: a number of seconds or a table "
                        "{distribution = uniform|normal|exponential, ...}")
    dist = value.get("distribution")
    if dist not in DISTRIBUTIONS:
        raise PlanError(f"{where}.distribution: must be one of {', '.join(DISTRIBUTIONS)}")
    keys = {"uniform": ("low", "high"), "normal": ("mean", "stddev"),
            "exponential": ("mean",)}[dist]
    for key in value:
        if key != "distribution" and key not in keys:
            raise PlanError(f"{where}.{key}: unknown key for a {dist} distribution "
                            f"(expected {', '.join(keys)})")
    for k in keys:
        if k not in value:
            raise PlanError(f"{where}.{k}: required for a {dist} distribution")
    nums = {k: _number(value[k], f"{where}.{k}", minimum=0.0) for k in keys}
    if dist == "uniform" and nums["high"] < nums["low"]:
        raise PlanError(f"{where}.high: must be >= low")
    return Delay(distribution=dist, **nums)


def _number(value: Any, where: str, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(f"{where}: must be a number (got {type(value).__name__})")
    v = float(value)
    if math.isnan(v) or math.isinf(v) or v < minimum:
        raise PlanError(f"{where}: must be a finite number >= {minimum:g} (got {value})")
    return v


def _integer(value: Any, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{where}: must be an integer (got {type(value).__name__})")
    if value < minimum:
        raise PlanError(f"{where}: must be >= {minimum} (got {value})")
    return value


def _header_line(text: str | None, kind: str, index: int) -> int | None:
    """1-based line of the `index`-th [[kind]] (or [run]) header in the TOML text."""
    if text is None:
        return None
    pattern = re.compile(r"^\s*\[\s*run\s*\]" if kind == "run"
                         else r"^\s*\[\[\s*" + re.escape(kind) + r"\s*\]\]")
    seen = 0
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            if seen == index:
                return number
            seen += 1
    return None


def _top_line(text: str | None, key: str) -> str:
    if text is None:
        return "?"
    pattern = re.compile(r"^\s*\[{1,2}\s*" + re.escape(key) + r"\s*\]{1,2}|^\s*"
                         + re.escape(key) + r"\s*=")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return str(number)
    return "?"
