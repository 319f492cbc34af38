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
                   (link-flap: `duration` without the cable, indicated to the protocols as
                   NDIS_STATUS_MEDIA_DISCONNECT/CONNECT; reset: an optional `duration` for which
                   the adapter's frames stall)
    [[wire]]       action = loss | duplicate | reorder | corrupt | latency
                   (latency and reorder: `delay`, `jitter` (± seconds, uniform); latency also
                   `rate` (bits per second: each frame waits its serialization time behind the
                   frames before it); on TAP and veth the wire faults become Linux netem qdiscs
                   — faults.netem — and what netem cannot express is refused)
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
in one line: the file, the line the offending key is written on (found by faults.tomlpos, since
tomllib keeps no positions), then the key — an unknown one with the nearest known key ("acton:
unknown key — did you mean action?"), a bad value as `key = value: what is allowed`.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ndisemu.constants import NdisStatus, Oid
from ndisemu.params import SYSTEM_QUEUES

from .errors import PlanError
from .rng import fault_rng
from .tomlpos import KeyLines, scan

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
    """Validate a plan given as a dict (the TOML's shape) and build it.

    Every error is one line: `FILE:LINE: ` (the line the offending key is written on, when the
    plan came as text), then the key — an unknown one with the nearest known key, a bad value
    with the value as written and what is allowed."""
    if not isinstance(data, dict):
        raise PlanError(f"{source}: a fault plan is a table")
    top = _Ctx(source, scan(text) if text is not None else None, (), "the plan")
    for key in data:
        if key != "run" and key not in KINDS:
            top.unknown(key, ("run", *KINDS), what="section")
    run = data.get("run", {})
    if not isinstance(run, dict):
        top.bad("run", run, "must be a table [run] (keys: seed, heal_at)")
    rctx = top.within("run", tag="[run]")
    for key in run:
        if key not in ("seed", "heal_at"):
            rctx.unknown(key, ("seed", "heal_at"))
    seed = run.get("seed")
    if seed is not None:
        seed = _integer(seed, rctx, "seed", minimum=0)
    heal_at = run.get("heal_at")
    if heal_at is not None:
        heal_at = _number(heal_at, rctx, "heal_at", minimum=0.0)
    faults: list[Fault] = []
    ids: dict[str, int | None] = {}  # id -> the line it is written on (or its header's)
    for kind in KINDS:
        entries = data.get(kind, [])
        single = isinstance(entries, dict)
        if single:
            entries = [entries]
        if not isinstance(entries, list):
            top.bad(kind, entries, f"must be an array of tables [[{kind}]]")
        for index, entry in enumerate(entries):
            ctx = top.within(kind, *(() if single else (index,)), tag=f"[[{kind}]]")
            fault = _fault(kind, index, entry, ctx)
            if fault.id in ids:
                first = ids[fault.id]
                ctx.bad("id", fault.id, "must be unique, and it is already the id of the entry"
                        + (f" on line {first}" if first is not None else " before"))
            ids[fault.id] = ctx.line("id")
            faults.append(fault)
    return FaultPlan(tuple(faults), seed, heal_at, source, text)


class _Ctx:
    """Where in the plan we are: the source, the key lines, and the path of the table."""

    def __init__(self, source: str, lines: KeyLines | None, base: tuple[str | int, ...],
                 tag: str) -> None:
        self.source, self.lines, self.base, self.tag = source, lines, base, tag

    def within(self, *path: str | int, tag: str) -> _Ctx:
        return _Ctx(self.source, self.lines, (*self.base, *path), tag)

    def line(self, *key: str | int) -> int | None:
        return None if self.lines is None else self.lines.line(*self.base, *key)

    def where(self, *key: str | int) -> str:
        line = self.line(*key)
        return self.source if line is None else f"{self.source}:{line}"

    def fail(self, key: tuple[str | int, ...], message: str) -> NoReturn:
        raise PlanError(f"{self.where(*key)}: {message}")

    def bad(self, key: str, value: Any, allowed: str, *,
            at: tuple[str | int, ...] | None = None) -> NoReturn:
        """`key = value: allowed`, on the line of `at` (default: the key's)."""
        self.fail(at or tuple(key.split(".")), f"{key} = {_show(value)}: {allowed}")

    def unknown(self, key: str, known: tuple[str, ...], *, what: str = "key",
                prefix: str = "", elsewhere: tuple[str, ...] = (), action: str = "",
                owners: tuple[str, ...] = ()) -> NoReturn:
        """Refuse `key`: a key of another action or section says so; a typo gets the nearest
        known key; anything else the list of known keys."""
        name = prefix + key
        path = (*prefix.split(".")[:-1], key) if prefix else (key,)
        if key in elsewhere:
            self.fail(path, f"{name}: not a key of action {_show(action)} in {self.tag} "
                      f"(its keys: {', '.join(sorted(known))})")
        if owners:
            self.fail(path, f"{name}: not a key of {self.tag} (it belongs to "
                      f"{' and '.join(owners)}; {self.tag} keys: {', '.join(sorted(known))})")
        near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if near:
            self.fail(path, f"{name}: unknown {what} — did you mean {prefix}{near[0]}?")
        where = f" in {self.tag}" if what == "key" else ""
        self.fail(path, f"{name}: unknown {what}{where} (known: {', '.join(sorted(known))})")


_COMMON = ("id", "action", *TRIGGER_KEYS)
_PARAMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("oid", "delay"): ("oid", "delay"),
    ("oid", "pend"): ("oid",),
    ("oid", "fail"): ("oid", "status"),
    ("oid", "double-complete"): ("oid",),
    ("miniport", "hang"): (),
    ("miniport", "reset"): ("duration",),
    ("miniport", "surprise-removal"): (),
    ("miniport", "link-flap"): ("duration",),
    ("wire", "loss"): ("direction",),
    ("wire", "duplicate"): ("direction",),
    ("wire", "reorder"): ("direction", "delay", "jitter"),
    ("wire", "corrupt"): ("direction",),
    ("wire", "latency"): ("direction", "delay", "jitter", "rate"),
    ("queue", "hold"): ("queue", "workers", "at", "duration", "waker_queue"),
    ("queue", "alloc-fail"): ("queue",),
    ("pnp", "burst"): ("count", "at", "interval"),
    ("pnp", "depart"): ("at",),
}


def _kind_keys(kind: str) -> tuple[str, ...]:
    """Every key some action of `kind` takes."""
    keys = dict.fromkeys(_COMMON)
    for action in ACTIONS[kind]:
        keys.update(dict.fromkeys(_PARAMS[(kind, action)]))
    return tuple(keys)


def _fault(kind: str, index: int, entry: Any, ctx: _Ctx) -> Fault:
    if not isinstance(entry, dict):
        ctx.fail((), f"{kind}[{index}] = {_show(entry)}: must be a table [[{kind}]]")
    every = _kind_keys(kind)
    for key in entry:  # unknown keys first: a typo'd `action` is named as the typo
        if key not in every:
            owners = tuple(f"[[{k}]]" for k in KINDS if k != kind and key in _kind_keys(k))
            ctx.unknown(key, every, owners=owners)
    action = entry.get("action")
    actions = ", ".join(ACTIONS[kind])
    if action is None:
        ctx.fail((), f"action: missing in {ctx.tag} (one of {actions})")
    if action not in ACTIONS[kind]:
        ctx.bad("action", action, f"must be one of {actions}")
    allowed = (*_COMMON, *_PARAMS[(kind, action)])
    for key in entry:
        if key not in allowed:
            ctx.unknown(key, allowed, elsewhere=every, action=action)
    fid = entry.get("id", f"{kind}{index}")
    if not isinstance(fid, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", fid):
        ctx.bad("id", fid, "must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    trigger = _trigger(entry, ctx)
    params = _params(kind, action, entry, ctx)
    header = ctx.lines.exact(*ctx.base) if ctx.lines is not None else None
    return Fault(fid, kind, action, trigger, params, header)


def _trigger(entry: dict[str, Any], ctx: _Ctx) -> Trigger:
    nth = entry.get("nth")
    if nth is not None:
        nth = _integer(nth, ctx, "nth", minimum=1)
    count = entry.get("count")
    if count is not None:
        count = _integer(count, ctx, "count", minimum=0)
    after = entry.get("after")
    if after is not None:
        after = _number(after, ctx, "after", minimum=0.0)
    until = entry.get("until")
    if until is not None:
        until = _number(until, ctx, "until", minimum=0.0)
    if after is not None and until is not None and until <= after:
        ctx.bad("until", entry["until"], f"must be later than after = {_show(entry['after'])}")
    probability = 1.0
    if "probability" in entry:
        probability = _number(entry["probability"], ctx, "probability", minimum=0.0,
                              maximum=1.0)
    adapters = entry.get("adapters")
    if adapters is not None:
        if isinstance(adapters, str):
            adapters = [adapters]
        rule = "must be an adapter name or glob, or a list of them"
        if not isinstance(adapters, list):
            ctx.bad("adapters", adapters, rule)
        for n, a in enumerate(adapters):
            if not isinstance(a, str) or not a:
                ctx.bad("adapters", entry["adapters"], rule + f" (element {n + 1} is "
                        f"{_show(a)})", at=("adapters", n))
        adapters = tuple(adapters)
    return Trigger(nth, count, after, until, probability, adapters)


def _params(kind: str, action: str, entry: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _PARAMS[(kind, action)]:
        if key not in entry:
            continue
        value = entry[key]
        if key == "oid":
            out["oid"] = _oid(value, ctx)
        elif key == "status":
            rule = "must be an NDIS_STATUS_* failure name, e.g. NDIS_STATUS_FAILURE"
            if not isinstance(value, str):
                ctx.bad("status", value, rule)
            try:
                status = NdisStatus.from_name(value)
            except KeyError:
                ctx.bad("status", value, "unknown status; " + rule)
            if status in (NdisStatus.SUCCESS, NdisStatus.PENDING):
                ctx.bad("status", value, "is not a failure; " + rule)
            out["status"] = status
        elif key == "delay":
            out["delay"] = _delay(value, ctx)
        elif key == "direction":
            if value not in ("in", "out", "both"):
                ctx.bad("direction", value, "must be one of in, out, both")
            out["direction"] = value
        elif key in ("queue", "waker_queue"):
            if value not in SYSTEM_QUEUES:
                ctx.bad(key, value, f"must be one of {', '.join(SYSTEM_QUEUES)}")
            out[key] = value
        elif key in ("workers", "count"):
            out[key] = _integer(value, ctx, key, minimum=1)
        elif key == "rate":
            out["rate"] = _number(value, ctx, "rate", minimum=1.0)
        else:  # at, duration, interval, jitter
            out[key] = _number(value, ctx, key, minimum=0.0)
    required = {("oid", "fail"): ("status",), ("oid", "delay"): ("delay",),
                ("wire", "latency"): ("delay",), ("queue", "hold"): ("workers", "duration"),
                ("pnp", "burst"): ("count",), ("miniport", "link-flap"): ("duration",)}
    for key in required.get((kind, action), ()):
        if key == "delay" and "rate" in out:
            continue  # a latency that is only a rate limit
        if key not in out:
            ctx.fail(("action",), f"{key}: missing in {ctx.tag}; action {_show(action)} "
                     "requires it")
    if kind == "oid":
        out.setdefault("oid", "*")
    if kind == "wire":
        out.setdefault("direction", "both")
    if kind == "queue":
        out.setdefault("queue", "critical")
    return out


def _oid(value: Any, ctx: _Ctx) -> int | str:
    rule = 'must be an OID name like OID_GEN_LINK_SPEED, its code, or "*" for every OID'
    if value == "*":
        return "*"
    if isinstance(value, int) and not isinstance(value, bool):
        if value in Oid._value2member_map_:
            return value
        ctx.fail(("oid",), f"oid = 0x{value:08X}: unknown OID; {rule}")
    if not isinstance(value, str):
        ctx.bad("oid", value, rule)
    try:
        return int(Oid.from_name(value))
    except (KeyError, ValueError):
        ctx.bad("oid", value, "unknown OID; " + rule)


def _delay(value: Any, ctx: _Ctx) -> Delay:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Delay(fixed=_number(value, ctx, "delay", minimum=0.0))
    dists = ", ".join(DISTRIBUTIONS)
    if not isinstance(value, dict):
        ctx.bad("delay", value, "must be a number of seconds >= 0 or a table "
                f"{{distribution = {dists.replace(', ', '|')}, ...}}")
    dist = value.get("distribution")
    if dist not in DISTRIBUTIONS:
        if dist is None:
            ctx.fail(("delay",), f"delay.distribution: missing (one of {dists})")
        ctx.bad("delay.distribution", dist, f"must be one of {dists}")
    keys = {"uniform": ("low", "high"), "normal": ("mean", "stddev"),
            "exponential": ("mean",)}[dist]
    for key in value:
        if key != "distribution" and key not in keys:
            ctx.unknown(key, ("distribution", *keys), prefix="delay.")
    for k in keys:
        if k not in value:
            ctx.fail(("delay",), f"delay.{k}: missing; a {dist} distribution needs "
                     f"{' and '.join(keys)}")
    nums = {k: _number(value[k], ctx, f"delay.{k}", minimum=0.0) for k in keys}
    if dist == "uniform" and nums["high"] < nums["low"]:
        ctx.bad("delay.high", value["high"], f"must be >= delay.low = {_show(value['low'])}")
    return Delay(distribution=dist, **nums)


def _number(value: Any, ctx: _Ctx, key: str, *, minimum: float,
            maximum: float | None = None) -> float:
    rule = (f"must be a number from {minimum:g} to {maximum:g}" if maximum is not None
            else f"must be a number >= {minimum:g}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        ctx.bad(key, value, f"{rule}, not {_toml_type(value)}")
    v = float(value)
    if math.isnan(v) or math.isinf(v) or v < minimum or (maximum is not None and v > maximum):
        ctx.bad(key, value, rule)
    return v


def _integer(value: Any, ctx: _Ctx, key: str, *, minimum: int) -> int:
    rule = f"must be an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.bad(key, value, f"{rule}, not {_toml_type(value)}")
    if value < minimum:
        ctx.bad(key, value, rule)
    return value


def _toml_type(value: Any) -> str:
    """A value's type in the plan's own (TOML) words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _show(value: Any, limit: int = 60) -> str:
    """A value as TOML would write it (shortened past `limit` characters)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{k} = {_show(v, limit)}" for k, v in value.items()) + " }"
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
