"""The property that matters (faults.md §5, VOPR's two phases): after `heal_at` no fault fires
and every adapter must end bound or cleanly failed within a bounded time. The detector must fire
if and only if a run does not converge; the fixed executors always converge; the unpatched one
fails to converge exactly in the runs where a knot formed.

Hypothesis builds plans, not runs: each example is one plan, executor and size, run to the end.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faults.plan import plan_from_dict
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm

CONVERGE_WITHIN = 60.0  # virtual seconds after the heal

oid_faults = st.one_of(
    st.fixed_dictionaries({"action": st.just("delay"),
                           "delay": st.floats(0.0, 3.0, allow_nan=False),
                           "probability": st.floats(0.0, 1.0, allow_nan=False)}),
    st.fixed_dictionaries({"action": st.just("pend"), "count": st.integers(1, 6)}),
    st.fixed_dictionaries({"action": st.just("fail"), "nth": st.integers(1, 40),
                           "status": st.sampled_from(["NDIS_STATUS_FAILURE",
                                                      "NDIS_STATUS_NOT_SUPPORTED"])}),
    st.fixed_dictionaries({"action": st.just("double-complete"),
                           "probability": st.floats(0.0, 1.0, allow_nan=False)}),
)
miniport_faults = st.fixed_dictionaries({
    "action": st.sampled_from(["hang", "reset", "surprise-removal"]),
    "nth": st.integers(1, 60)})
queue_faults = st.one_of(
    st.fixed_dictionaries({"action": st.just("hold"), "workers": st.integers(1, 30),
                           "at": st.floats(0.0, 4.0, allow_nan=False),
                           "duration": st.floats(0.5, 40.0, allow_nan=False)}),
    st.fixed_dictionaries({"action": st.just("alloc-fail"), "nth": st.integers(1, 60)}),
)


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    plan: dict[str, Any] = {"run": {"heal_at": draw(st.floats(2.0, 20.0, allow_nan=False))}}
    for kind, strategy in (("oid", oid_faults), ("miniport", miniport_faults),
                           ("queue", queue_faults)):
        entries = draw(st.lists(strategy, max_size=2))
        if entries:
            plan[kind] = entries
    return plan


def run(plan: dict[str, Any], executor: str, adapters: int, seed: int) -> dict[str, Any]:
    p = plan_from_dict(plan)
    assert p.heal_at is not None
    return run_storm(StormConfig(adapters=adapters, params=ModelParams(executor=executor),
                                 seed=seed, plan=p, horizon=p.heal_at + CONVERGE_WITHIN))


def detector_fired(r: dict[str, Any]) -> bool:
    return r["outcome"] == "deadlock" or any(s["ended_at"] is None
                                             for s in r.get("stalls", []))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans(), executor=st.sampled_from(["critical", "dedicated", "async", "rescuer"]),
       adapters=st.integers(1, 30), seed=st.integers(0, 1000))
def test_detector_fires_iff_the_run_does_not_converge(plan: dict[str, Any], executor: str,
                                                      adapters: int, seed: int) -> None:
    r = run(plan, executor, adapters, seed)
    converged = r["outcome"] in ("bound", "failed")
    assert detector_fired(r) == (not converged), (r["outcome"], r.get("stalls"))
    if executor != "critical":
        assert converged, r["outcome"]
    elif not converged:
        assert r["outcome"] == "deadlock"  # the unpatched binder only fails by a knot


@settings(max_examples=25, deadline=None)
@given(delay=st.floats(0.0, 2.0, allow_nan=False), holders=st.integers(0, 5),
       static=st.integers(2, 12), dynamic=st.integers(0, 16), seed=st.integers(0, 100))
def test_cliff_with_delays_and_fixed_foreign_holders(delay: float, holders: int, static: int,
                                                     dynamic: int, seed: int) -> None:
    """With plans limited to OID delays and fixed foreign holders, the test computes the
    cliff itself: each adapter still holds one worker, whatever its OIDs' delays."""
    cliff = static + dynamic - holders
    if cliff < 2:
        return
    plan = plan_from_dict({"oid": [{"action": "delay", "delay": delay}]})
    params = ModelParams(foreign_holders=holders).with_(critical_static=static,
                                                        max_dynamic=dynamic)
    below = run_storm(StormConfig(adapters=cliff - 1, params=params, seed=seed, plan=plan))
    at = run_storm(StormConfig(adapters=cliff, params=params, seed=seed, plan=plan))
    assert below["outcome"] == "bound"
    assert at["outcome"] == "deadlock"
