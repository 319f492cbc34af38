"""The cliff: measured from a sweep's records, beside the capacity computed from the parameters.

The emulation never evaluates a threshold; this bench code may. For the unpatched (`critical`)
executor, a burst (interval 0) of N adapters holds N blocked critical workers and their
completions queue behind them, so the smallest deadlocking burst is

    critical_static + min(additional_critical, 16) + max_dynamic - foreign_holders

(docs/model.md §5). The formula is the same whether binds run at PASSIVE_LEVEL in the PnP
device-action item (the default) or at DPC level, and whether the balance manager makes the
threads one per wake (the default, as WRK) or inline (`insert_growth="inline"`): re-derived in
docs/model.md §5 and checked by tests/tcpip6lab/test_cliff.py for all four. `check_cliffs`
finds, for each set of model parameters in the records, the smallest burst that deadlocked on
every seed and compares it with that formula. On a sparse
adapter axis the measurement is a bracket (largest burst with no deadlock, smallest that
deadlocks], and the computed value must fall inside it.

Only the unpatched executor has that closed form. A user's executor (a spec that is not one of
the built-ins) gets its measured cliff reported with the formula check skipped — it can never
fail the bench; the other built-ins never deadlock and are not checked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .sweep import DEFAULT_MODEL_KEY, model_key

REGISTRY_CLAMP = 16


def has_closed_form(executor: str) -> bool:
    """True for the unpatched executor, whichever spec names it."""
    from tcpip6.errors import Tcpip6Error
    from tcpip6.executors import CriticalExecutor
    from tcpip6.registry import resolve

    try:
        return resolve(executor) is CriticalExecutor
    except Tcpip6Error:
        return False  # records of a user's executor whose module is not importable here


def is_user_executor(executor: str) -> bool:
    """True for a spec that does not name one of the built-in executors."""
    from tcpip6.errors import Tcpip6Error
    from tcpip6.registry import BUILTIN_EXECUTORS, resolve

    try:
        return resolve(executor) not in BUILTIN_EXECUTORS.values()
    except Tcpip6Error:
        return True


def computed_cliff(static_threads: int, additional_critical: int, max_dynamic: int,
                   foreign_holders: int) -> int:
    return (static_threads + min(additional_critical, REGISTRY_CLAMP) + max_dynamic
            - foreign_holders)


@dataclass
class CliffCheck:
    latency: float
    static_threads: int
    additional_critical: int
    max_dynamic: int
    foreign_holders: int
    computed: int | None  # None: no closed form for this executor (the check is skipped)
    measured: int | None  # smallest burst that deadlocked on every seed
    below: int | None  # largest smaller burst that deadlocked on no seed
    tested: tuple[int, int]
    seeds: int
    agree: bool
    reason: str
    executor: str = "critical"

    @property
    def has_formula(self) -> bool:
        return self.computed is not None

    @property
    def is_default(self) -> bool:
        return (self.latency, self.static_threads, self.additional_critical, self.max_dynamic,
                self.foreign_holders) == DEFAULT_MODEL_KEY

    @property
    def formula(self) -> str:
        return (f"{self.static_threads} static + min({self.additional_critical}, 16) + "
                f"{self.max_dynamic} dynamic − {self.foreign_holders} foreign holders "
                f"= {self.computed}")

    @property
    def measured_text(self) -> str:
        if self.measured is None:
            return f"none up to {self.tested[1]} adapters"
        if self.below is not None and self.below == self.measured - 1:
            return (f"{self.measured} adapters ({self.below} bind, {self.measured} "
                    "deadlock)")
        if self.below is None:
            return f"≤ {self.measured} adapters (smallest burst tested deadlocks)"
        return f"between {self.below + 1} and {self.measured} adapters"

    def caption(self) -> str:
        params = "default NT parameters" if self.is_default else "these parameters"
        if not self.has_formula:
            mixed = f" ({self.reason})" if self.reason else ""
            return (f"Cliff ({self.executor} executor, burst, {params}): measured "
                    f"{self.measured_text} over {self.seeds} seed(s){mixed}; no closed-form "
                    "capacity for this executor: formula check skipped.")
        verdict = "agree" if self.agree else f"DIFFER — {self.reason}"
        return (f"Cliff (critical executor, burst, {params}): measured {self.measured_text}"
                f" over {self.seeds} seed(s); computed capacity {self.formula}: {verdict}.")

    def as_dict(self) -> dict[str, Any]:
        return {"latency": self.latency, "static_threads": self.static_threads,
                "additional_critical": self.additional_critical,
                "max_dynamic": self.max_dynamic, "foreign_holders": self.foreign_holders,
                "default": self.is_default, "computed": self.computed,
                "measured": self.measured, "below": self.below,
                "tested": list(self.tested), "seeds": self.seeds, "agree": self.agree,
                "reason": self.reason, "executor": self.executor,
                "caption": self.caption()}


def check_cliffs(records: Iterable[dict[str, Any]]) -> list[CliffCheck]:
    """One check per set of model parameters that has critical-executor bursts, the default
    parameters first; then one measured-only report per user's executor and set of model
    parameters with bursts."""
    groups: dict[tuple[Any, ...], dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    seeds: dict[tuple[Any, ...], set[int]] = defaultdict(set)
    kinds: dict[str, str | None] = {}  # spec -> "formula", "measured" or None (not checked)
    for r in records:
        ex = str(r["executor"])
        if ex not in kinds:
            kinds[ex] = ("formula" if has_closed_form(ex)
                         else "measured" if is_user_executor(ex) else None)
        if kinds[ex] is not None and r["interval"] == 0:
            key = (ex, *model_key(r))
            groups[key][int(r["adapters"])].append(str(r["outcome"]))
            seeds[key].add(int(r["seed"]))
    checks = [_check(key, by_n, len(seeds[key]), kinds[key[0]] == "formula")
              for key, by_n in groups.items()]
    checks.sort(key=lambda c: (not c.has_formula, not c.is_default))
    return checks


def _check(key: tuple[Any, ...], by_n: dict[int, list[str]], nseeds: int,
           formula: bool = True) -> CliffCheck:
    executor, latency, st, ac, md, fh = key
    computed = computed_cliff(st, ac, md, fh)
    ns = sorted(by_n)
    dead = {n for n in ns if all(o == "deadlock" for o in by_n[n])}
    mixed = [n for n in ns if n not in dead and "deadlock" in by_n[n]]
    measured = min(dead) if dead else None
    below = max((n for n in ns if measured is None or n < measured), default=None)
    if measured is None:
        below = None
    reason = ""
    if mixed:
        reason = f"seed-dependent: a burst of {mixed[0]} deadlocks on some seeds only"
    elif not formula:
        pass  # measured only: nothing to compare with
    elif measured is None:
        if computed <= ns[-1]:
            bad = [n for n in ns if n >= computed]
            outcomes = sorted(set(by_n[bad[0]]))
            reason = f"a burst of {bad[0]} gives {'/'.join(outcomes)}, not deadlock"
    else:
        above = [n for n in ns if n > measured and n not in dead]
        if above:
            reason = f"not a cliff: a burst of {above[0]} does not deadlock"
        elif computed > measured:
            reason = f"a burst of {measured} already deadlocks"
        elif below is not None and computed <= below:
            outcomes = sorted(set(by_n[below]))
            reason = f"a burst of {below} gives {'/'.join(outcomes)}, not deadlock"
    return CliffCheck(latency=latency, static_threads=st, additional_critical=ac,
                      max_dynamic=md, foreign_holders=fh,
                      computed=computed if formula else None, measured=measured, below=below,
                      tested=(ns[0], ns[-1]), seeds=nseeds,
                      agree=not formula or not reason, reason=reason, executor=executor)
