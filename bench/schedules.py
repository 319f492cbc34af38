"""Fault-schedule benchmark: many seeded plans, counting convergence and the detector's calls.

For each seed a random fault plan (OID delays, pends, failures, double completions, miniport
hangs/resets/removals, queue holds, work-item allocation failures; all healed at `heal_at`), an
executor and an adapter count are drawn; the storm runs until every adapter has ended or
`heal_at + 60 s` of virtual time. A run *converged* when every adapter ended bound or cleanly
failed. The detector is *right* when it reported a hang (a deadlock, or a stall still active at
the end) exactly for the runs that did not converge.

    python -m bench.schedules [--runs 10000] [--workers N] [--out bench/results]

Targets: 100 % of non-converged runs detected, 0 false positives, 0 non-converged runs for
the fixed executors (dedicated, async, rescuer).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tcpip6.registry import BUILTIN_NAMES

EXECUTORS = BUILTIN_NAMES


def random_plan(rng: random.Random) -> dict[str, Any]:
    plan: dict[str, Any] = {"run": {"heal_at": round(rng.uniform(2.0, 20.0), 3)}}
    oid = []
    for _ in range(rng.randrange(3)):
        kind = rng.choice(["delay", "pend", "fail", "double-complete"])
        if kind == "delay":
            oid.append({"action": "delay", "delay": round(rng.uniform(0, 3), 3),
                        "probability": round(rng.random(), 3)})
        elif kind == "pend":
            oid.append({"action": "pend", "count": rng.randrange(1, 7)})
        elif kind == "fail":
            oid.append({"action": "fail", "nth": rng.randrange(1, 41),
                        "status": "NDIS_STATUS_FAILURE"})
        else:
            oid.append({"action": "double-complete", "probability": round(rng.random(), 3)})
    if oid:
        plan["oid"] = oid
    if rng.random() < 0.3:
        plan["miniport"] = [{"action": rng.choice(["hang", "reset", "surprise-removal"]),
                             "nth": rng.randrange(1, 61)}]
    queue = []
    if rng.random() < 0.3:
        queue.append({"action": "hold", "workers": rng.randrange(1, 31),
                      "at": round(rng.uniform(0, 4), 3),
                      "duration": round(rng.uniform(0.5, 40), 3)})
    if rng.random() < 0.2:
        queue.append({"action": "alloc-fail", "nth": rng.randrange(1, 61)})
    if queue:
        plan["queue"] = queue
    return plan


def run_one(seed: int) -> dict[str, Any]:
    from faults.plan import plan_from_dict
    from tcpip6lab.params import ModelParams
    from tcpip6lab.storm import StormConfig, run_storm

    rng = random.Random(f"schedule:{seed}")
    plan = plan_from_dict(random_plan(rng))
    executor = rng.choice(EXECUTORS)
    adapters = rng.randrange(1, 33)
    assert plan.heal_at is not None
    r = run_storm(StormConfig(adapters=adapters, params=ModelParams(executor=executor),
                              seed=seed, plan=plan, horizon=plan.heal_at + 60.0))
    converged = r["outcome"] in ("bound", "failed")
    hung = r["outcome"] == "deadlock" or any(s["ended_at"] is None
                                             for s in r.get("stalls", []))
    return {"seed": seed, "executor": executor, "adapters": adapters,
            "outcome": r["outcome"], "converged": converged, "detected": hung,
            "transient_stalls": sum(1 for s in r.get("stalls", []) if s["ended_at"]),
            "wall": r["wall_seconds"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.schedules",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--runs", type=int, default=10000)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.runs)
    with ProcessPoolExecutor(args.workers) as pool:
        records = list(pool.map(run_one, seeds, chunksize=50))
    wall = time.perf_counter() - t0
    counts: Counter[str] = Counter()
    per_executor: dict[str, Counter[str]] = {e: Counter() for e in EXECUTORS}
    for rec in records:
        c = per_executor[rec["executor"]]
        c["runs"] += 1
        c[rec["outcome"]] += 1
        if not rec["converged"]:
            counts["non_converged"] += 1
            c["non_converged"] += 1
            counts["detected" if rec["detected"] else "missed"] += 1
        elif rec["detected"]:
            counts["false_positives"] += 1
        counts["transient_stalls"] += rec["transient_stalls"]
    fixed_nc = sum(per_executor[e]["non_converged"] for e in EXECUTORS if e != "critical")
    nc = counts["non_converged"]
    detection_rate = (counts["detected"] / nc) if nc else 1.0
    summary: dict[str, Any] = {
        "runs": len(records), "wall_seconds": round(wall, 3),
        "runs_per_second": round(len(records) / wall, 1),
        "non_converged": nc, "detected": counts["detected"], "missed": counts["missed"],
        "detection_rate": detection_rate,
        "false_positives": counts["false_positives"],
        "non_converged_fixed_executors": fixed_nc,
        "transient_stalls_reported": counts["transient_stalls"],
        "per_executor": {e: dict(c) for e, c in per_executor.items()},
    }
    print(f"{len(records)} seeded schedules in {wall:.1f}s ({summary['runs_per_second']}/s)")
    print(f"non-converged {nc}: detected {counts['detected']} "
          f"({100 * detection_rate:.1f} %, target 100 %), missed {counts['missed']}")
    print(f"false positives {counts['false_positives']} (target 0); non-converged with the "
          f"fixed executors {fixed_nc} (target 0)")
    for e, c in per_executor.items():
        print(f"  {e:<9} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "schedules.json").write_text(json.dumps({"summary": summary, "records": records}))
    print(f"saved {out / 'schedules.json'}")
    ok = counts["missed"] == 0 and counts["false_positives"] == 0 and fixed_nc == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
