"""run_storm turns Python's cyclic GC off for the run. That is safe only because a storm makes
no reference cycles (reference counting frees everything): checked here for the storms users
run — every executor, a deadlock, faults with traffic, adapters departing after they bound —
and the GC state is given back."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from faults.plan import parse_plan
from tcpip6.registry import BUILTIN_NAMES
from tcpip6lab import storm as storm_module
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm, run_storm_async
from tests.golden.traces import PLAN  # faults of every kind


def cyclic_garbage(cfg: StormConfig, on_host: Callable[[Any], None] = lambda _h: None,
                   ) -> tuple[dict[str, Any], list[str]]:
    """Run a storm with the GC saving whatever it would free; the host stays referenced, so
    what is found is garbage the run made in cycles."""
    hosts: list[Any] = []
    result: dict[str, Any] = {}

    def keep(host: Any) -> None:
        hosts.append(host)
        on_host(host)

    async def main() -> None:
        result.update(await run_storm_async(cfg, on_host=keep))

    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        gc.collect()
        found = [f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        hosts.clear()
    return result, found


@pytest.mark.parametrize("executor", BUILTIN_NAMES)
def test_bind_storms_make_no_reference_cycles(executor: str) -> None:
    r, found = cyclic_garbage(StormConfig(adapters=40, params=ModelParams(executor=executor)))
    assert r["outcome"] == ("deadlock" if executor == "critical" else "bound")
    assert found == []


def test_faults_and_traffic_make_no_reference_cycles() -> None:
    r, found = cyclic_garbage(StormConfig(
        adapters=10, seed=3, interval=0.05, traffic=True, horizon=40.0,
        plan=parse_plan(PLAN, source="<test>"), params=ModelParams(executor="dedicated")))
    fired = r["faults"]["fired"]
    assert fired["oid0"] and fired["oid1"] and fired["miniport0"], fired
    assert fired["wire0"] > 0  # frames flowed, and some were lost
    assert found == []


def test_adapters_that_depart_after_binding_leave_no_cycles() -> None:
    """An unbound interface's IPv6 host is closed, not left to the cyclic GC."""
    plan = parse_plan('[[pnp]]\naction = "depart"\nat = 3.0\nadapters = "nic00*"\n',
                      source="<test>")
    r, found = cyclic_garbage(StormConfig(adapters=20, plan=plan, traffic=True, horizon=30.0,
                                          params=ModelParams(executor="async")))
    assert r["adapters_removed"] == 10 and r["adapters_bound"] == 10
    assert found == []


def test_a_closed_host_is_freed_by_reference_counting() -> None:
    from tcpip6.stack.host import Ipv6Host

    def live() -> int:  # a census: the compiled Ipv6Host takes no weak references
        return sum(1 for o in gc.get_objects() if type(o) is Ipv6Host)

    gc.collect()
    gc.disable()
    try:
        before = live()
        host = Ipv6Host(bytes.fromhex("02005e100001"))
        host.start(0.0)
        assert live() == before + 1
        host.close()
        host.close()  # twice is harmless
        del host
        assert live() == before  # no cycle kept it
        other = Ipv6Host(bytes.fromhex("02005e100002"))
        del other
        assert live() == before + 1  # an open host is a cycle: only the GC would free it
    finally:
        gc.enable()
        gc.collect()


def test_the_census_would_see_a_cycle() -> None:
    """The checks above can fail: a cycle made during a run is found."""

    def make_cycle(_host: Any) -> None:
        a: dict[str, Any] = {}
        a["self"] = a  # dropped at once: garbage only the cyclic GC can free

    _r, found = cyclic_garbage(StormConfig(adapters=2), on_host=make_cycle)
    assert found == ["builtins.dict"]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_gc_is_off_during_run_storm_and_given_back(monkeypatch: pytest.MonkeyPatch,
                                                       enabled: bool) -> None:
    during: list[bool] = []

    async def spy(cfg: StormConfig, **kw: Any) -> dict[str, Any]:
        during.append(gc.isenabled())
        return await run_storm_async(cfg, **kw)

    monkeypatch.setattr(storm_module, "run_storm_async", spy)
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        r = run_storm(StormConfig(adapters=3))
        after = gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
    assert r["outcome"] == "bound"
    assert during == [False]
    assert after is enabled
