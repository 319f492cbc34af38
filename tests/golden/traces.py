"""Golden event-trace hashes: the behaviour of the emulation, pinned across commits.

Every executor × schedule policy × worker driver, as a plain bind storm, with a fault plan of
every kind (PnP arrivals and departures included), and with the peer's traffic on the memory
wire. A run's *event hash* is the SHA-256 of its trace lines after the header: the header
describes the run's options (its format may grow), the events are what the emulation did.

A change that moves these hashes on purpose regenerates them in one commit that says why::

    python -m tests.golden.traces --update

Any other change keeps them (tests/golden/test_golden.py).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

from faults.plan import parse_plan
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm

GOLDEN = Path(__file__).with_name("traces.json")
EXECUTORS = ("critical", "dedicated", "async", "rescuer")
SCHEDULES = ("random", "fifo", "pct")
WORKERS = ("coroutines", "tasks")
VARIANTS = ("plain", "faults", "traffic")

#: One fault of every kind, PnP bursts and departures among them.
PLAN = """
[run]
seed = 4
heal_at = 30.0

[[oid]]
oid = "*"
action = "delay"
delay = { distribution = "uniform", low = 0.05, high = 0.9 }
probability = 0.4

[[oid]]
oid = "OID_GEN_LINK_SPEED"
action = "pend"
nth = 2

[[miniport]]
action = "reset"
nth = 3

[[miniport]]
action = "surprise-removal"
nth = 5

[[wire]]
action = "loss"
probability = 0.2

[[queue]]
action = "hold"
queue = "critical"
workers = 3
at = 1.5
duration = 4.0

[[pnp]]
action = "burst"
count = 6
at = 2.0
interval = 0.01

[[pnp]]
action = "depart"
at = 3.0
"""


def event_hash(log: str) -> str:
    """SHA-256 of a trace's event lines (everything after the header line)."""
    _header, _, events = log.partition("\n")
    return hashlib.sha256(events.encode()).hexdigest()


def config(executor: str, schedule: str, workers: str, variant: str) -> StormConfig:
    params = ModelParams(executor=executor, schedule=schedule)
    if variant == "plain":
        return StormConfig(adapters=30, seed=1, workers=workers, params=params)
    if variant == "faults":
        return StormConfig(adapters=12, seed=3, interval=0.1, horizon=60.0, workers=workers,
                           plan=parse_plan(PLAN, source="<golden>"), params=params)
    return StormConfig(adapters=26, seed=2, traffic=True, horizon=30.0, workers=workers,
                       params=params)


def run_one(executor: str, schedule: str, workers: str, variant: str) -> list[Any]:
    """[outcome, adapters bound, event hash] of one golden run."""
    cfg = config(executor, schedule, workers, variant)
    log = io.StringIO()
    cfg.log = log
    r = run_storm(cfg)
    return [r["outcome"], r["adapters_bound"], event_hash(log.getvalue())]


def keys() -> list[tuple[str, str, str, str]]:
    return [(e, s, w, v) for e in EXECUTORS for s in SCHEDULES for w in WORKERS
            for v in VARIANTS]


def compute() -> dict[str, list[Any]]:
    return {"/".join(k): run_one(*k) for k in keys()}


def load() -> dict[str, list[Any]]:
    data: dict[str, list[Any]] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.golden.traces", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--update", action="store_true", help="rewrite traces.json")
    args = ap.parse_args(argv)
    runs = compute()
    if args.update:
        GOLDEN.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {len(runs)} golden hashes to {GOLDEN}")
        return 0
    golden = load()
    moved = sorted(k for k in runs if golden.get(k) != runs[k])
    for k in moved:
        print(f"moved: {k}: {golden.get(k)} -> {runs[k]}")
    print(f"{len(runs) - len(moved)}/{len(runs)} golden hashes hold")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
