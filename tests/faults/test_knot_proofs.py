"""Proofs that do not wait for an outside event, and knots that span queues.

A wait whose waker is declared as "an item that will be queued on Q when E fires" needs a worker
of Q whether or not E comes, so it counts toward a knot on Q (faults/detector.py). The foreign
holders declare theirs: the default storm is proven as soon as the balance manager next looks,
not when their requests complete."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faults.detector import Deadlock, HangDetector
from faults.plan import plan_from_dict
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm, run_storm_async


def cliff(p: ModelParams) -> int:
    ex = p.executive
    return ex.critical_static + min(ex.additional_critical, 16) + ex.max_dynamic - p.foreign_holders


KNOTTING = [  # (executor, completion_via, foreign_hold): every configuration that knots
    ("critical", "tcpip6", 5.0), ("critical", "ndis", 5.0), ("critical", "miniport", 5.0),
    ("critical", "tcpip6", 10.0), ("critical", "tcpip6", 600.0),
]


@pytest.mark.parametrize("config", KNOTTING, ids=lambda c: f"{c[0]}-{c[1]}-hold{c[2]:g}")
def test_detection_within_two_balance_periods_of_the_cap(config: tuple[str, str, float]) -> None:
    executor, via, hold = config
    p = ModelParams(executor=executor, completion_via=via, foreign_hold=hold)
    period = p.executive.balance_period
    for seed in range(5):
        r = run_storm(StormConfig(adapters=cliff(p), params=p, seed=seed))
        assert r["outcome"] == "deadlock", (seed, r["outcome"])  # not a stall, however long
        cap = r["critical_workers"]["cap_reached_at"]
        detected = r["deadlock"]["detected_at"]
        assert cap is not None and 0 <= cap < detected <= cap + 2 * period, (seed, cap, detected)
        # The holders' links name the item to come and what will queue it.
        futures = [link for link in r["deadlock"]["chain"] if link["when"] is not None]
        assert len(futures) == p.foreign_holders
        assert all(link["waker_queue"] == "critical" and link["position"] == -1
                   for link in futures)


def test_cap_reached_at_is_in_the_json_and_none_without_a_burst_over_static() -> None:
    r = run_storm(StormConfig(adapters=5))
    cw = r.as_dict()["critical_workers"]
    assert "cap_reached_at" in cw and cw["cap_reached_at"] is None


def test_a_two_queue_knot_built_with_a_fault_plan_is_proven_with_both_queues() -> None:
    """Every delayed worker is held by another driver whose release needs a critical item;
    tcpip6's completions go to the delayed queue; the burst fills the critical queue. Neither
    queue can ever run the other's items: one knot over two queues. The hold comes just after
    the burst's binds (which run on the delayed queue) and before the first OID completes."""
    p = ModelParams(completion_queue="delayed")
    delayed_cap = p.executive.delayed_static + p.executive.max_dynamic
    cfg = StormConfig(adapters=cliff(p), params=p, horizon=200.0)
    first_completion = cfg.start + p.latency * (1 - p.latency_jitter)
    plan = plan_from_dict({"queue": [{"action": "hold", "queue": "delayed",
                                      "at": (cfg.start + first_completion) / 2,
                                      "workers": delayed_cap, "duration": 1000.0,
                                      "waker_queue": "critical"}]})
    r = run_storm(StormConfig(adapters=cliff(p), params=p, plan=plan, horizon=200.0))
    assert r["outcome"] == "deadlock"
    dl = r["deadlock"]
    assert dl["queues"] == ["critical", "delayed"]
    by_queue = {q: [link for link in dl["chain"] if link["queue"] == q]
                for q in ("critical", "delayed")}
    cap = p.executive.critical_static + p.executive.max_dynamic
    assert len(by_queue["critical"]) == cap and len(by_queue["delayed"]) == delayed_cap
    # critical workers wait on items of the delayed queue (tcpip6) or to come on critical
    # (holders); delayed workers wait on items to come on the critical queue.
    assert {link["waker_queue"] for link in by_queue["critical"] if link["adapter"]} == {"delayed"}
    assert {link["waker_queue"] for link in by_queue["delayed"]} == {"critical"}
    assert "delayed" in r["deadlock_text"] and "critical" in r["deadlock_text"]


def test_without_the_hold_the_delayed_completion_queue_binds() -> None:
    p = ModelParams(completion_queue="delayed")
    assert run_storm(StormConfig(adapters=cliff(p), params=p))["outcome"] == "bound"


# -- no false proofs: a proven knot never moves again, whatever the schedule ----------------

queue_holds = st.fixed_dictionaries({
    "action": st.just("hold"), "queue": st.sampled_from(["critical", "delayed"]),
    "workers": st.integers(1, 30), "at": st.floats(0.0, 3.0, allow_nan=False),
    "duration": st.floats(0.5, 40.0, allow_nan=False),
    "waker_queue": st.sampled_from(["critical", "delayed", "hypercritical"])})
oid_delays = st.fixed_dictionaries({"action": st.just("delay"),
                                    "delay": st.floats(0.0, 3.0, allow_nan=False),
                                    "probability": st.floats(0.0, 1.0, allow_nan=False)})


def run_unstopped(cfg: StormConfig) -> tuple[dict[str, Any], list[Deadlock], EmulatedHost]:
    """The storm, run to its horizon whatever is proven: a shadow detector records proofs
    while the host's own (which would end the run) is unhooked."""
    shadow: list[HangDetector] = []
    hosts: list[EmulatedHost] = []

    def on_host(host: EmulatedHost) -> None:
        host.kernel.core.tick_listeners.remove(host.detector.check)
        shadow.append(HangDetector(host.kernel))
        hosts.append(host)

    async def main() -> Any:
        return await run_storm_async(cfg, on_host)

    r = trio.run(main)
    return r.as_dict(), list(shadow[0].deadlocks.values()), hosts[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=st.sampled_from(["random", "fifo", "pct"]),
       executor=st.sampled_from(["critical", "dedicated", "async", "rescuer"]),
       via=st.sampled_from(["tcpip6", "ndis", "miniport"]),
       queue=st.sampled_from(["critical", "delayed"]),
       holds=st.lists(queue_holds, max_size=2), delays=st.lists(oid_delays, max_size=1),
       adapters=st.integers(1, 40), seed=st.integers(0, 1000))
def test_no_false_proofs(schedule: str, executor: str, via: str, queue: str,
                         holds: list[dict[str, Any]], delays: list[dict[str, Any]],
                         adapters: int, seed: int) -> None:
    if executor == "rescuer" and via != "tcpip6":
        return  # refused by ModelParams
    plan: dict[str, Any] = {"run": {"heal_at": 60.0}}
    if holds:
        plan["queue"] = holds
    if delays:
        plan["oid"] = delays
    p = ModelParams(executor=executor, schedule=schedule, completion_via=via,
                    completion_queue=queue)
    cfg = StormConfig(adapters=adapters, params=p, seed=seed, plan=plan_from_dict(plan),
                      horizon=150.0)
    r, proofs, host = run_unstopped(cfg)
    for dl in proofs:
        # Every worker of the proven knot is still blocked on the same object at the end, well
        # past the heal, and the run did not converge.
        assert r["outcome"] not in ("bound", "failed"), (dl.queue, r["outcome"])
        for link in dl.chain:
            q = host.kernel.core.queues[link.queue]
            w = next((w for w in q.workers if w.name == link.worker), None)
            assert w is not None and w.waiting_on is not None, link
            assert w.waiting_on.label == link.event and w.item is not None, link
            assert w.item.label == link.item, link
