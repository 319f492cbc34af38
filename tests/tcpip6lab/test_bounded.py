"""A host's histories are bounded (EmulatedHost(history=N)), and an adapter that comes and goes
leaves no task, waiter or application behind: the flat resources bench.soak checks for hours,
here on memory wires in virtual time."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams

KEEP = 8
CYCLES = 12


def tasks() -> int:
    """Every live task under the root (trio keeps no count of its own)."""
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return count(root)


async def _cycle() -> dict[str, list[int] | EmulatedHost]:
    host = EmulatedHost(ModelParams(executor="dedicated"), seed=0, history=KEEP)
    seen: dict[str, list[int] | EmulatedHost] = {"host": host, "tasks": [], "waiters": []}
    async with trio.open_nursery() as nursery:
        await nursery.start(host.kernel.run)
        host.add_routable_addresses()
        host.run_services(nursery)
        host.run_applications(nursery)
        host.start()
        host.pnp.schedule(host.adapter_configs(3), start=0.2)
        host.start_pinging(0.25, start=0.5)
        await trio.sleep(3.0)
        for _ in range(CYCLES):
            host.pnp.surprise_remove("nic002")
            await trio.sleep(1.0)
            # a quiet point: nic002 gone, the others idle between their applications' rounds
            seen["tasks"].append(tasks())  # type: ignore[union-attr]
            seen["waiters"].append(host.tcpip6.waiters)  # type: ignore[union-attr]
            host.pnp.arrive(host.adapter_configs(1, first=2)[0])
            await trio.sleep(3.0)
        nursery.cancel_scope.cancel()
    return seen


def test_histories_are_rings_and_departures_leave_nothing_behind() -> None:
    seen = trio.run(_cycle, clock=MockClock(autojump_threshold=0))
    host = seen["host"]
    assert isinstance(host, EmulatedHost)
    hb = host.heartbeat
    assert len(hb.beats) == KEEP and hb.count > 10 * KEEP
    assert hb.beats[-1] == max(hb.beats)  # the latest are the ones kept
    pnp = host.pnp
    assert pnp.arrived == 3 + CYCLES and len(pnp.arrivals) == KEEP
    assert pnp.removals == CYCLES and len(pnp.removed) == KEEP
    assert [a.seq for a in pnp.arrivals] == list(range(pnp.arrived - KEEP + 1, pnp.arrived + 1))
    side = host.peers["nic000"]
    assert len(side.v6.rtts) == KEEP and side.v6.answered > KEEP
    # Every departure ended nic002's services and applications: the same tasks and waiters at
    # each quiet point, not a set more per cycle.
    assert len(set(seen["tasks"])) == 1, seen["tasks"]  # type: ignore[arg-type]
    assert len(set(seen["waiters"])) == 1, seen["waiters"]  # type: ignore[arg-type]
    # and the applications run again on nic002 after each arrival, failing never
    apps = host.applications
    assert apps is not None
    assert apps.failures() == 0, apps.totals()
    assert apps.stats[("tcp-rr", "nic002")].ok >= 2 * CYCLES
