"""The injector: each action has its effect, triggers follow fault_attr's precedence, draws are
per fault, and the heal releases everything."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from faults.injector import FaultInjector
from faults.plan import plan_from_dict
from faults.rng import fault_rng
from ndisemu.kernel import Kernel
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm, run_storm_async


def storm(plan: dict[str, Any], adapters: int = 4, executor: str = "dedicated",
          **kw: Any) -> dict[str, Any]:
    return run_storm(StormConfig(adapters=adapters, params=ModelParams(executor=executor),
                                 plan=plan_from_dict(plan), **kw))


def fires(plan: dict[str, Any], n: int, times: list[float] | None = None,
          adapter: str = "nic000") -> list[bool]:
    kernel = Kernel()
    inj = FaultInjector(plan_from_dict(plan), kernel, seed=5)
    f = inj.plan.faults[0]
    out = []
    for i in range(n):
        if times is not None:
            kernel.now = times[i]
        out.append(inj._should_fire(f, adapter))
    return out


def test_nth_fires_once_on_the_nth_match_and_beats_count() -> None:
    assert fires({"oid": [{"action": "pend", "nth": 3, "count": 10}]}, 6) == \
        [False, False, True, False, False, False]


def test_count_limits_firings() -> None:
    assert fires({"oid": [{"action": "pend", "count": 2}]}, 5) == [True, True, False, False,
                                                                   False]


def test_window_beats_probability() -> None:
    got = fires({"oid": [{"action": "pend", "after": 1.0, "until": 2.0}]}, 4,
                times=[0.5, 1.0, 1.5, 2.0])
    assert got == [False, True, True, False]


def test_probability_draws_from_the_faults_own_generator() -> None:
    plan = {"oid": [{"id": "a", "action": "pend", "probability": 0.5}]}
    first = fires(plan, 200)
    assert first == fires(plan, 200)  # same seed, same draws
    assert 60 < sum(first) < 140
    # Another fault before it in the plan does not change its draws.
    two = {"oid": [{"id": "z", "action": "pend", "probability": 0.3},
                   {"id": "a", "action": "pend", "probability": 0.5}]}
    kernel = Kernel()
    inj = FaultInjector(plan_from_dict(two), kernel, seed=5)
    a = next(f for f in inj.plan.faults if f.id == "a")
    z = next(f for f in inj.plan.faults if f.id == "z")
    got = []
    for _ in range(200):
        inj._should_fire(z, "nic000")
        got.append(inj._should_fire(a, "nic000"))
    assert got == first
    assert fault_rng(5, "a").random() != fault_rng(6, "a").random()


def test_adapter_globs_select_where_a_fault_may_fire() -> None:
    plan = {"oid": [{"action": "pend", "adapters": ["nic00[!0-9]", "nic1*"]}]}
    assert fires(plan, 1, adapter="nic123") == [True]
    assert fires(plan, 1, adapter="nic023") == [False]


def test_oid_fail_fails_the_bind_cleanly() -> None:
    r = storm({"oid": [{"oid": "OID_GEN_CURRENT_PACKET_FILTER", "action": "fail",
                        "status": "NDIS_STATUS_NOT_SUPPORTED"}]})
    assert r["outcome"] == "failed" and r["adapters_failed"] == 4
    assert r["failures"] == [{"reason": "Set OID_GEN_CURRENT_PACKET_FILTER failed with "
                                        "NDIS_STATUS_NOT_SUPPORTED", "adapters": 4}]
    # The fault hits every protocol's request: IPv4's bind sets the packet filter too.
    assert r["faults"]["fired"] == {"oid0": 8} and r["ipv4_bound"] == 0


def test_oid_delay_slows_binds_by_the_delay() -> None:
    fast = storm({"oid": [{"oid": "OID_GEN_LINK_SPEED", "action": "delay", "delay": 0.0}]})
    slow = storm({"oid": [{"oid": "OID_GEN_LINK_SPEED", "action": "delay", "delay": 0.8}]})
    assert slow["outcome"] == "bound"
    assert slow["bind_seconds"]["max"] >= fast["bind_seconds"]["max"] + 0.8


def test_pended_oids_complete_at_the_heal() -> None:
    r = storm({"run": {"heal_at": 12.0},
               "oid": [{"oid": "OID_GEN_MEDIA_CONNECT_STATUS", "action": "pend"}]})
    assert r["outcome"] == "bound"
    assert r["virtual_seconds"] >= 12.0 - 1.0  # first arrival at t=1
    assert r["faults"]["healed"] is True


def test_pend_without_heal_never_completes() -> None:
    # The first request of the run (IPv4's, on nic000) never completes; tcpip6's requests on
    # nic000 wait behind it (NDIS serializes per miniport). nic001 binds.
    r = storm({"oid": [{"oid": "*", "action": "pend", "nth": 1}]}, adapters=2, horizon=20.0,
              executor="async")
    assert r["outcome"] == "stalled" and r["adapters_bound"] == 1
    # With the hotfix's single dedicated thread, the blocked submission holds that thread:
    # nothing else binds either — a real property of the fix, shown by the emulation.
    assert storm({"oid": [{"oid": "*", "action": "pend", "nth": 1}]}, adapters=2,
                 horizon=20.0)["adapters_bound"] == 0


def test_double_completion_is_ignored_by_ndis() -> None:
    hosts: list[EmulatedHost] = []
    seen: list[str] = []

    async def main() -> dict[str, Any]:
        cfg = StormConfig(adapters=3, params=ModelParams(executor="async"),
                          plan=plan_from_dict({"oid": [{"action": "double-complete"}]}))
        cfg.extra_sinks.append(lambda rec: seen.append(rec["event"]))
        return await run_storm_async(cfg, on_host=hosts.append)

    r = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert r["outcome"] == "bound"
    assert seen.count("ndis.request.double_complete") >= 3 * 9


def test_a_hung_miniport_resumes_at_the_heal() -> None:
    r = storm({"run": {"heal_at": 8.0},
               "miniport": [{"action": "hang", "nth": 2, "adapters": "nic001"}]})
    assert r["outcome"] == "bound"
    assert r["bind_seconds"]["max"] >= 6.0


def test_reset_and_surprise_removal_end_binds_cleanly() -> None:
    for nth in (1, 2, 3, 4):
        hosts: list[EmulatedHost] = []

        async def main(nth: int = nth, hosts: list[EmulatedHost] = hosts) -> dict[str, Any]:
            plan = plan_from_dict({"miniport": [{"action": "reset", "nth": nth,
                                                 "adapters": "nic000"}]})
            return await run_storm_async(
                StormConfig(adapters=4, params=ModelParams(executor="dedicated"), plan=plan),
                on_host=hosts.append)

        r = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        assert r["outcome"] in ("bound", "failed"), nth  # never stuck
        binds = hosts[0].pnp.arrivals[0].binds
        statuses = {b.protocol.name: b.status.name for b in binds}
        assert "PENDING" not in statuses.values()
        assert "FAILURE" in statuses.values(), (nth, statuses)  # whoever was aborted failed
    removed = storm({"miniport": [{"action": "surprise-removal", "nth": 4,
                                   "adapters": "nic002"}]})
    assert removed["outcome"] == "bound"
    assert removed["adapters_removed"] == 1 and removed["adapters_bound"] == 3


def test_work_item_allocation_failure_fails_the_bind_cleanly() -> None:
    r = storm({"queue": [{"action": "alloc-fail", "nth": 5}]}, executor="critical")
    assert r["outcome"] == "failed" and r["adapters_failed"] == 1
    assert "NDIS_STATUS_RESOURCES" in r["failures"][0]["reason"]


def test_holding_every_worker_is_a_stall_naming_the_fault() -> None:
    params = ModelParams(executor="critical").with_(max_dynamic=2)
    plan = plan_from_dict({"run": {"heal_at": 20.0},
                           "queue": [{"id": "hog", "action": "hold", "workers": 30, "at": 0.5,
                                      "duration": 30.0}]})
    r = run_storm(StormConfig(adapters=3, params=params, plan=plan))
    assert r["outcome"] == "bound"  # released at the heal
    (stall,) = r["stalls"]
    assert stall["faults"] == ["hog"] and stall["ended_at"] is not None
    assert stall["detected_at"] - stall["since"] >= 2.0


def test_pnp_bursts_and_departures() -> None:
    burst = storm({"pnp": [{"action": "burst", "count": 3, "at": 2.0}]})
    assert burst["outcome"] == "bound" and burst["adapters_bound"] == 7
    depart = storm({"pnp": [{"action": "depart", "at": 3.0, "adapters": ["nic00[01]"]}]},
                   traffic=True)
    assert depart["adapters_removed"] == 2 and depart["adapters_bound"] == 2


@pytest.mark.parametrize("action,check", [
    ("loss", lambda v6: v6.answered == 0),
    ("duplicate", lambda v6: v6.answered >= 1),
    ("corrupt", lambda v6: v6.answered == 0),
])
def test_wire_faults_reach_the_traffic(action: str, check: Any) -> None:
    hosts: list[EmulatedHost] = []

    async def main() -> dict[str, Any]:
        cfg = StormConfig(adapters=1, params=ModelParams(executor="dedicated"), traffic=True,
                          plan=plan_from_dict({"wire": [{"action": action, "direction": "in",
                                                         "after": 2.0}]}))
        return await run_storm_async(cfg, on_host=hosts.append)

    r = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert r["faults"]["total_fired"] > 0
    side = hosts[0].peers["nic000"]
    late = [t for t in [side.v6.last_answered] if t is not None and t > 2.0]
    if action == "duplicate":
        assert late  # still answered
    else:
        assert not late  # nothing answered once every incoming frame is lost or mangled
    assert check(side.v6) or action != "duplicate"


def test_a_link_flap_is_indicated_to_tcpip6_as_media_disconnect_then_connect() -> None:
    hosts: list[EmulatedHost] = []
    events: list[tuple[str, dict[str, Any]]] = []

    async def main() -> dict[str, Any]:
        plan = plan_from_dict({"miniport": [{"action": "link-flap", "nth": 2, "duration": 0.5,
                                             "adapters": "nic000"}]})
        return await run_storm_async(
            StormConfig(adapters=2, params=ModelParams(executor="dedicated"), plan=plan,
                        traffic=True),
            on_host=lambda h: (hosts.append(h),
                               h.kernel.tracer.add_sink(lambda r: events.append((r["event"], r)))))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    iface = hosts[0].tcpip6.interfaces["nic000"]
    assert iface.counters["media_disconnect"] == 1 and iface.counters["media_connect"] == 1
    assert iface.media_connected and hosts[0].tcpip6.interfaces["nic001"].counters[
        "media_disconnect"] == 0
    order = [(f["status"] if e == "ndis.status" else f["connected"]) for e, f in events
             if e in ("ndis.status", "tcpip6.media") and f.get("adapter") == "nic000"]
    assert order == ["NDIS_STATUS_MEDIA_DISCONNECT", False, "NDIS_STATUS_MEDIA_CONNECT", True]


def test_a_reset_with_a_duration_stalls_the_adapters_frames_for_it() -> None:
    hosts: list[EmulatedHost] = []

    async def main() -> dict[str, Any]:
        plan = plan_from_dict({"miniport": [{"action": "reset", "nth": 8, "duration": 3.0,
                                             "adapters": "nic000"}]})
        return await run_storm_async(
            StormConfig(adapters=1, params=ModelParams(executor="dedicated"), plan=plan,
                        traffic=True), on_host=hosts.append)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    m = hosts[0].ndis.miniports["nic000"].miniport
    assert m.stalled_until >= 3.0 and m.stall_dropped > 0
