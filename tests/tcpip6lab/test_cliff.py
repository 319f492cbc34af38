"""The cliff: where the unpatched binder deadlocks, derived from the model's parameters.

Each adapter's bind holds one critical worker blocked while its OID pends, and its completion
item is queued behind the other adapters' submissions; foreign holders hold one worker each the
same way. So a burst of N adapters knots the queue exactly when N + foreign holders reaches the
queue's maximum thread count. The test computes that N from the parameters; the emulation
computes nothing — it just runs.
"""

from __future__ import annotations

import pytest

from ndisemu.errors import ConfigError
from tcpip6.binder import BIND_OIDS
from tcpip6.ipv4 import IPV4_BIND_OIDS
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm

SETTINGS = [
    # (static threads, additional critical, max dynamic, foreign holders)
    (10, 0, 16, 2),  # the defaults: Windows Server 2003
    (4, 0, 4, 0),
    (6, 2, 3, 1),
    (2, 1, 0, 0),
    (10, 16, 16, 3),
]
SEEDS = range(20)


def expected_cliff(static: int, additional: int, max_dynamic: int, foreign: int) -> int:
    return static + min(additional, 16) + max_dynamic - foreign


def storm(n: int, seed: int, static: int, additional: int, max_dynamic: int,
          foreign: int, pnp_binds: str = "passive", insert_growth: str = "manager",
          **kw: object) -> dict[str, object]:
    params = ModelParams(foreign_holders=foreign, pnp_binds=pnp_binds).with_(
        critical_static=static, additional_critical=additional, max_dynamic=max_dynamic,
        insert_growth=insert_growth)
    return run_storm(StormConfig(adapters=n, params=params, seed=seed, **kw))  # type: ignore[arg-type]


def test_the_kb_example_deadlocks_with_the_defaults() -> None:
    r = run_storm(StormConfig(adapters=24))
    assert r["outcome"] == "deadlock"
    assert r["ipv4_bound"] == 24  # IPv4 is not affected
    cw = r["critical_workers"]
    assert cw == {**cw, "static": 10, "peak_dynamic": 16, "max_dynamic": 16,
                  "blocked_at_end": 26}


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "s{}-a{}-d{}-f{}".format(*s))
def test_n_minus_one_binds_and_n_deadlocks_over_20_seeds(
        setting: tuple[int, int, int, int]) -> None:
    n = expected_cliff(*setting)
    assert n > 1
    for seed in SEEDS:
        below = storm(n - 1, seed, *setting)
        assert below["outcome"] == "bound", (seed, below["outcome"])
        assert below["adapters_bound"] == n - 1
        at = storm(n, seed, *setting)
        assert at["outcome"] == "deadlock", (seed, at["outcome"])
        dl = at["deadlock"]
        assert isinstance(dl, dict)
        cap = setting[0] + min(setting[1], 16) + setting[2]
        assert dl["workers"] == cap and len(dl["chain"]) == cap
        tcpip6_links = [link for link in dl["chain"] if link["adapter"]]
        assert len(tcpip6_links) == n  # one blocked worker per adapter...
        assert len({link["adapter"] for link in tcpip6_links}) == n
        assert len(dl["chain"]) - len(tcpip6_links) == setting[3]  # ...plus the holders


@pytest.mark.parametrize("binds,growth", [("passive", "inline"), ("dpc", "manager"),
                                          ("dpc", "inline")])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "s{}-a{}-d{}-f{}".format(*s))
def test_the_cliff_holds_wherever_binds_run_and_however_threads_grow(
        setting: tuple[int, int, int, int], binds: str, growth: str) -> None:
    """The defaults (binds at PASSIVE_LEVEL, the WRK manager) are the test above; the old
    shortcuts give the same cliff: each adapter still holds one worker, and the pool still
    reaches its cap (one thread per insert or per manager wake)."""
    n = expected_cliff(*setting)
    for seed in SEEDS:
        below = storm(n - 1, seed, *setting, pnp_binds=binds, insert_growth=growth)
        assert below["outcome"] == "bound", (seed, below["outcome"])
        at = storm(n, seed, *setting, pnp_binds=binds, insert_growth=growth)
        assert at["outcome"] == "deadlock", (seed, at["outcome"])


def test_binds_run_at_passive_level_in_the_device_action_item() -> None:
    events: list[dict[str, object]] = []
    r = run_storm(StormConfig(adapters=24, extra_sinks=[events.append]))
    assert r["outcome"] == "deadlock"
    started = [e for e in events if e.get("event") == "exec.item.started"
               and str(e["item"]).startswith("pnp.device_action")]
    assert len(started) == 1 and started[0]["queue"] == "delayed"  # one item, the whole burst
    # The manager made every dynamic thread, one per wake, at the burst's instant.
    cw = r["critical_workers"]
    assert isinstance(cw, dict)
    grows = [e for e in events if e.get("event") == "exec.manager.grow"]
    assert len(grows) == cw["dynamic_created"] == cw["manager_wakes"] == 16
    assert cw["cap_reached_at"] == 0.0


def test_arrivals_spaced_by_a_full_bind_never_deadlock() -> None:
    p = ModelParams()
    # One adapter's bind: its own OIDs plus, at worst, IPv4's OIDs ahead of each of them on
    # the serialized miniport, each taking at most latency * (1 + jitter).
    bind_time = (len(BIND_OIDS) + len(IPV4_BIND_OIDS)) * p.latency * (1 + p.latency_jitter)
    for seed in range(3):
        r = run_storm(StormConfig(adapters=100, interval=bind_time * 1.01, seed=seed))
        assert r["outcome"] == "bound", r["outcome"]
        assert r["adapters_bound"] == 100
        bind_seconds = r["bind_seconds"]
        assert isinstance(bind_seconds, dict) and bind_seconds["max"] <= bind_time
        cw = r["critical_workers"]
        assert isinstance(cw, dict) and cw["peak_dynamic"] == 0


@pytest.mark.parametrize("executor", ["dedicated", "async", "rescuer"])
@pytest.mark.parametrize("adapters", [24, 100, 1000])
def test_fixed_executors_bind_every_burst(executor: str, adapters: int) -> None:
    r = run_storm(StormConfig(adapters=adapters, params=ModelParams(executor=executor)))
    assert r["outcome"] == "bound"
    assert r["adapters_bound"] == adapters
    oids = r["oids"]
    assert isinstance(oids, dict)
    # Every OID pended at the miniport, and its completion work item really ran.
    assert oids["submitted"] == oids["completions_run"] == adapters * len(BIND_OIDS)
    if executor != "rescuer":
        cw = r["critical_workers"]
        assert isinstance(cw, dict) and cw["dynamic_created"] == 0  # no critical worker blocked


def test_completion_on_the_delayed_queue_is_no_knot() -> None:
    r = run_storm(StormConfig(adapters=24, params=ModelParams(completion_queue="delayed")))
    assert r["outcome"] == "bound" and "deadlock" not in r


def test_ndis_work_item_completion_gives_a_different_chain() -> None:
    own = run_storm(StormConfig(adapters=24))
    via_ndis = run_storm(StormConfig(adapters=24, params=ModelParams(completion_via="ndis")))
    assert own["outcome"] == via_ndis["outcome"] == "deadlock"

    def wakers(r: dict[str, object]) -> set[str]:
        dl = r["deadlock"]
        assert isinstance(dl, dict)
        return {link["waits_on"].split("#")[0] for link in dl["chain"] if link["adapter"]}

    assert wakers(own) == {"tcpip6.oid_complete"}
    assert wakers(via_ndis) == {"ndis.request_complete"}


@pytest.mark.parametrize("mayday", [(0.010, 0.100), (0.5, 1.0)])
def test_a_rescued_queue_is_never_reported_as_a_knot(mayday: tuple[float, float]) -> None:
    """The rescuer's completions wait behind a full critical queue, but the rescuer can take
    them over: the queue looks knotted between maydays and is not (regression)."""
    params = ModelParams(executor="rescuer", foreign_holders=0, mayday_initial=mayday[0],
                         mayday_interval=mayday[1])
    r = run_storm(StormConfig(adapters=300, params=params))
    assert r["outcome"] == "bound" and "deadlock" not in r
    cw = r["critical_workers"]
    assert isinstance(cw, dict) and cw["peak_dynamic"] == 16  # the pool did fill up


def test_rescuer_with_ndis_completion_is_refused() -> None:
    with pytest.raises(ConfigError, match="rescuer"):
        ModelParams(executor="rescuer", completion_via="ndis")


def test_a_knot_through_ndis_dispatch_items_is_proven() -> None:
    """With NDIS's MiniportWorker on the critical queue, workers wait on requests still queued
    in NDIS: the chain runs through the queued dispatch item (regression: was 'stalled').
    Binds at DPC level: all IPv4 binds of the burst then reach the miniports before tcpip6's
    submissions run, so tcpip6's first OIDs wait in NDIS behind them. (At PASSIVE_LEVEL each
    tcpip6 submission preempts the device-action worker and reaches the miniport first.)"""
    r = run_storm(StormConfig(adapters=24, params=ModelParams(ndis_dispatch_queue="critical",
                                                              pnp_binds="dpc")))
    assert r["outcome"] == "deadlock"
    dl = r["deadlock"]
    assert isinstance(dl, dict)
    wakers = {link["waits_on"].split("#")[0] for link in dl["chain"]}
    assert "ndis.miniport_worker" in wakers


def test_ndis_work_item_completion_would_hang_ipv4_too() -> None:
    """nt-model §6 candidate 1 (NDIS delivers completions from critical work items) starves
    IPv4's binds as well — which the KB rules out; the default (tcpip6's own item) does not."""
    via_ndis = run_storm(StormConfig(adapters=24, params=ModelParams(completion_via="ndis")))
    own = run_storm(StormConfig(adapters=24))
    assert via_ndis["ipv4_bound"] < 24
    assert own["ipv4_bound"] == 24


@pytest.mark.parametrize("extra", [{"traffic": True}, {"horizon": 9.0},
                                   {"interval": 0.25, "horizon": 3.0}])
def test_same_seed_same_run_whatever_trio_does(extra: dict[str, object]) -> None:
    """Runs end inside the emulation, so trio's random run order cannot add or drop a step
    (regression: a horizon or traffic tail on a trio deadline raced the kernel's timers)."""
    params = ModelParams(foreign_hold=1000.0)
    runs = [run_storm(StormConfig(adapters=24, params=params, seed=1, **extra))  # type: ignore[arg-type]
            for _ in range(6)]
    keys = ("outcome", "adapters_bound", "virtual_seconds", "heartbeat", "oids")
    assert all({k: r[k] for k in keys} == {k: runs[0][k] for k in keys} for r in runs)
