"""Explore: many seeded schedules, looking for the smallest configuration that fails.

Each run varies the interleaving of simultaneously ready threads at the emulation's own yield
points with PCT (random thread priorities plus d−1 random priority change points; Burckhardt et
al., ASPLOS 2010 — the strategy of shuttle's pct.rs, faults.md §5), the fault plan's draws and,
when asked, its fault timings (`FaultPlan.with_varied_timings`), all from the run's seed. A
failing run is shrunk — same seed, fewer adapters — and the report names the smallest failing
configuration found (fewest adapters, then fewest fault firings) with the command that
reproduces it.

The engine is generic (`explore(run_one, ...)`); `tcpip6-lab explore` runs bind storms with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunRecord:
    adapters: int
    seed: int
    failed: bool
    outcome: str
    firings: int = 0
    detail: str = ""


@dataclass
class ExploreReport:
    runs: int = 0
    storms: int = 0  # runs including the shrinking ones
    failures: list[RunRecord] = field(default_factory=list)

    @property
    def smallest(self) -> RunRecord | None:
        if not self.failures:
            return None
        return min(self.failures, key=lambda r: (r.adapters, r.firings, r.seed))


def explore(run_one: Callable[[int, int], RunRecord], *, adapters: int, runs: int,
            seed: int = 0, shrink: bool = True,
            progress: Callable[[int], None] | None = None) -> ExploreReport:
    """Run `runs` seeds at `adapters`; shrink each failure below the best found so far."""
    report = ExploreReport()
    for r in range(runs):
        s = seed + r
        rec = run_one(adapters, s)
        report.runs += 1
        report.storms += 1
        if rec.failed:
            if shrink:
                rec = _shrink(run_one, rec, report)
            report.failures.append(rec)
        if progress is not None:
            progress(r + 1)
    return report


def _shrink(run_one: Callable[[int, int], RunRecord], rec: RunRecord,
            report: ExploreReport) -> RunRecord:
    """Fewer adapters with the same seed while it still fails: halve first, then step down.
    Only below the smallest failure already known, so later failures cost little."""
    def descend(best: RunRecord, n: int, step: Callable[[int], int]) -> RunRecord:
        """Try sizes n, step(n), ... while they still fail; the last failure found."""
        while n >= 1:
            report.storms += 1
            trial = run_one(n, rec.seed)
            if not trial.failed:
                break
            best = trial
            n = step(n)
        return best

    known = report.smallest
    if known is not None and known.adapters < rec.adapters:
        # Only a failure smaller than the one known is news: step down from just below it.
        return descend(rec, known.adapters - 1, lambda n: n - 1)
    best = descend(rec, rec.adapters // 2, lambda n: n // 2)  # halving while it fails
    return descend(best, best.adapters - 1, lambda n: n - 1)  # then one by one
