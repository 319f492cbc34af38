"""A plan's `[[wire]]` faults as Linux netem qdiscs (the TAP and veth backends).

On the memory wire each fault decides frame by frame (faults.injector.on_frame); on a real device
the kernel's netem does, with the percentages and times this module derives from the plan. At any
moment the faults in force on one adapter and direction make one `NetemSpec`:

    loss / duplicate / corrupt, probability p   ->  loss / duplicate / corrupt 100·p %
                                                    (several at once: 1 - Π(1 - p))
    latency / reorder, delay d, probability p   ->  delay d, and "reorder 100·(1-p) %" when p < 1
                                                    (netem sends that share at once, so the
                                                    delayed p overtake nothing and are
                                                    overtaken: the memory wire's reorder)
    delay = {distribution = "uniform", low, high} -> delay (low+high)/2, jitter (high-low)/2
    jitter j                                    ->  jitter j (uniform, netem's default)
    rate r (bits per second)                    ->  rate r
    reorder without a delay                     ->  delay 1 ms (the memory wire's default)

Windows (`after`/`until`) and `[run] heal_at` are the times a spec changes (`edges`); the serve
driver changes the qdiscs then. What netem cannot express is refused by `check_real_plan`, in one
line, before anything is set up: per-frame counting triggers (`nth`, `count`: netem draws every
frame independently), normal/exponential delays (netem needs its distribution tables, which
netlink does not carry here), `jitter` beside a uniform delay, `rate` with a probability below 1
(netem limits every frame), and two delaying faults (latency/reorder) in force at once on one
adapter and direction (one qdisc has one delay).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ndisemu.backends.bpf import BpfSpec
from ndisemu.backends.bpfprog import WireProgram
from ndisemu.backends.netem import NetemSpec

from .errors import PlanError
from .plan import Delay, Fault, FaultPlan

DIRECTIONS = ("in", "out")
DEFAULT_REORDER_DELAY = 0.001  # as faults.injector: a reorder without `delay` is 1 ms late
_DELAYING = ("latency", "reorder")


def _where(plan: FaultPlan, f: Fault) -> str:
    return f"{plan.source}:{f.line}" if f.line else plan.source


NO_NETEM = "this kernel has no netem (CONFIG_NET_SCH_NETEM)"


def check_real_plan(plan: FaultPlan | None, backend: str, *, netem: bool = True) -> None:
    """Refuse, in one line, a `[[wire]]` fault netem cannot express on `backend`; with
    `netem=False` (a kernel without it), also what the BPF fallback cannot
    (`check_bpf_plan`)."""
    if plan is None or backend == "memory":
        return
    if not netem:
        check_bpf_plan(plan, backend)
    wires = plan.of_kind("wire")
    for f in wires:
        t = f.trigger
        head = f"{_where(plan, f)}: [[wire]] {f.id}"
        tail = f"netem cannot express it on --backend {backend}"
        for key in ("nth", "count"):
            if getattr(t, key) is not None:
                raise PlanError(f"{head}: {key} = {getattr(t, key)}: {tail} (it draws every "
                                "frame on its own: use probability and after/until)")
        delay = f.params.get("delay")
        if isinstance(delay, Delay) and delay.distribution in ("normal", "exponential"):
            raise PlanError(f"{head}: delay.distribution = \"{delay.distribution}\": {tail} "
                            "(use a fixed delay with jitter, or a uniform distribution)")
        if isinstance(delay, Delay) and delay.distribution == "uniform" \
                and f.params.get("jitter"):
            raise PlanError(f"{head}: jitter beside a uniform delay: {tail} (a uniform delay "
                            "is already delay ± jitter)")
        if f.params.get("rate") is not None and t.probability < 1.0:
            raise PlanError(f"{head}: rate with probability = {t.probability:g}: {tail} (netem "
                            "limits every frame's rate)")
    delaying = [f for f in wires if f.action in _DELAYING]
    for i, a in enumerate(delaying):
        for b in delaying[i + 1:]:
            if _may_overlap(plan, a, b):
                raise PlanError(f"{_where(plan, b)}: [[wire]] {b.id}: in force together with "
                                f"[[wire]] {a.id} on the same adapter and direction: {tail} "
                                "(one netem qdisc has one delay; give them disjoint "
                                "after/until windows, directions or adapters)")


def _window(plan: FaultPlan, f: Fault) -> tuple[float, float]:
    start = f.trigger.after or 0.0
    end = f.trigger.until if f.trigger.until is not None else math.inf
    if plan.heal_at is not None:
        end = min(end, plan.heal_at)
    return start, end


def _may_overlap(plan: FaultPlan, a: Fault, b: Fault) -> bool:
    da, db = a.params.get("direction", "both"), b.params.get("direction", "both")
    if "both" not in (da, db) and da != db:
        return False
    (s1, e1), (s2, e2) = _window(plan, a), _window(plan, b)
    if max(s1, s2) >= min(e1, e2):
        return False
    pa, pb = a.trigger.adapters, b.trigger.adapters
    disjoint = pa is not None and pb is not None and not _globs(pa + pb) \
        and set(pa).isdisjoint(pb)
    return not disjoint


def _globs(patterns: Iterable[str]) -> bool:
    return any(c in p for p in patterns for c in "*?[")


def edges(plan: FaultPlan) -> list[float]:
    """The times (plan seconds) at which some `[[wire]]` fault starts or stops being in force."""
    times: set[float] = set()
    for f in plan.of_kind("wire"):
        start, end = _window(plan, f)
        times.add(start)
        if math.isfinite(end):
            times.add(end)
    return sorted(times)


def in_force(plan: FaultPlan, f: Fault, t: float) -> bool:
    start, end = _window(plan, f)
    return start <= t < end


def directions(f: Fault) -> tuple[str, ...]:
    d = f.params.get("direction", "both")
    return DIRECTIONS if d == "both" else (d,)


def spec_at(plan: FaultPlan, t: float, adapter: str, direction: str) -> NetemSpec | None:
    """The netem qdisc for `adapter`'s `direction` at plan time `t` (None: no fault)."""
    active = [f for f in plan.of_kind("wire")
              if direction in directions(f) and f.trigger.selects(adapter)
              and in_force(plan, f, t) and f.trigger.probability > 0]
    if not active:
        return None
    keep = {"loss": 1.0, "duplicate": 1.0, "corrupt": 1.0}
    delay = jitter = reorder = 0.0
    rate: float | None = None
    for f in active:
        p = f.trigger.probability
        if f.action in keep:
            keep[f.action] *= 1.0 - p
            continue
        d = f.params.get("delay")
        if isinstance(d, Delay) and d.distribution == "uniform":
            delay, jitter = (d.low + d.high) / 2, (d.high - d.low) / 2
        elif isinstance(d, Delay):
            delay = d.fixed or 0.0
        elif f.action == "reorder":
            delay = DEFAULT_REORDER_DELAY
        jitter = float(f.params.get("jitter", jitter))
        if p < 1.0:
            reorder = 100.0 * (1.0 - p)
        if f.params.get("rate") is not None:
            rate = float(f.params["rate"])
    return NetemSpec(delay=delay, jitter=jitter, loss=100.0 * (1.0 - keep["loss"]),
                     duplicate=100.0 * (1.0 - keep["duplicate"]),
                     corrupt=100.0 * (1.0 - keep["corrupt"]), reorder=reorder, rate=rate)


def needs_direction(plan: FaultPlan, adapter: str, direction: str) -> bool:
    """Whether any `[[wire]]` fault may shape `adapter`'s `direction` (TAP: an IFB for "out")."""
    return any(direction in directions(f) and f.trigger.selects(adapter)
               for f in plan.of_kind("wire"))


def check_bpf_plan(plan: FaultPlan, backend: str) -> None:
    """On a kernel without netem the fallback (ndisemu.backends.bpf) does loss, duplicate and
    corrupt (an eBPF classifier) and a latency that is only a `rate` (TBF); refuse the rest in one
    line, before anything is set up."""
    for f in plan.of_kind("wire"):
        head = f"{_where(plan, f)}: [[wire]] {f.id}"
        delay = f.params.get("delay")
        if f.action == "reorder" or f.params.get("jitter") or (
                f.action == "latency" and delay is not None):
            what = "reorder" if f.action == "reorder" else \
                "jitter" if f.params.get("jitter") else "delay"
            raise PlanError(f"{head}: {what} on --backend {backend}: {NO_NETEM}; only loss, "
                            "duplicate, corrupt and rate work without it (or use --backend "
                            "memory)")
        if f.params.get("rate") is not None and backend == "tap" and "out" in directions(f):
            raise PlanError(f"{head}: rate on the TAP's \"out\" direction: {NO_NETEM}, and "
                            "without it only transmissions can be rate-limited (give it "
                            "direction = \"in\", or use --backend veth)")


def bpf_spec_at(plan: FaultPlan, t: float, adapter: str, direction: str, *,
                ingress: bool) -> BpfSpec | None:
    """What the BPF fallback puts on `adapter`'s `direction` at plan time `t` (None: no fault):
    the loss/duplicate/corrupt percentages and rate of the netem spec (`spec_at`) it
    replaces."""
    spec = spec_at(plan, t, adapter, direction)
    if spec is None:
        return None
    program = None
    if spec.loss or spec.duplicate or spec.corrupt:
        program = WireProgram(loss=spec.loss, duplicate=spec.duplicate, corrupt=spec.corrupt,
                              ingress=ingress)
    return BpfSpec(program, spec.rate)
