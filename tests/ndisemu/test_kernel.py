"""The trio driver of the executive: baton passing, blocking, determinism, bugchecks."""

from __future__ import annotations

import time
import types
from collections.abc import Generator
from typing import Any

import pytest
import trio
import trio.testing

from ndisemu import invariants
from ndisemu.errors import BugCheck, ExecutiveError
from ndisemu.executive.core import WorkerState, WorkItem
from ndisemu.kernel import WORKER_MODES, Kernel
from ndisemu.params import CRITICAL, ExecutiveParams


@pytest.fixture(params=WORKER_MODES)
def workers(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both drivers: worker threads as trio tasks, and as coroutines
    stepped by the dispatcher."""
    return str(request.param)


async def test_blocked_item_holds_its_worker_until_signalled(workers: str,
        autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(seed=1, workers=workers)
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)
        ev = k.create_event("done")

        async def waiter(_: WorkItem) -> None:
            log.append(("wait", k.now))
            await k.wait(ev)
            log.append(("woke", k.now))

        async def setter(_: WorkItem) -> None:
            k.set_event(ev)

        k.queue_work_item(CRITICAL, waiter, name="waiter")
        k.call_at(2.5, lambda: k.queue_work_item(CRITICAL, setter, name="setter",
                                                 signals=(ev,)))
        await trio.sleep(1.0)
        q = k.queue(CRITICAL)
        assert q.blocked == 1
        blocked = next(w for w in q.workers if w.state is WorkerState.BLOCKED)
        assert blocked.waiting_on is ev and blocked.item is not None
        assert ev.signalers == []
        await trio.sleep(2.0)
        assert q.blocked == 0
        nursery.cancel_scope.cancel()
    assert log == [("wait", 0.0), ("woke", 2.5)]


async def test_only_one_emulated_activity_runs_at_a_time(workers: str,
        autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(seed=3, workers=workers)
    running = 0
    peak = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)
        ev = k.create_event("go")

        async def item(_: WorkItem) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            running -= 1
            await k.wait(ev)
            running += 1
            peak = max(peak, running)
            running -= 1

        for i in range(20):
            k.queue_work_item(CRITICAL, item, name=f"i{i}")
        k.call_at(1.0, k.set_event, ev)
        await trio.sleep(2.0)
        assert k.queue(CRITICAL).completed == 20
        nursery.cancel_scope.cancel()
    assert peak == 1


def _trace_run(seed: int, workers: str) -> list[str]:
    order: list[str] = []

    async def main() -> None:
        k = Kernel(ExecutiveParams(cpus=4), seed=seed, workers=workers)
        async with trio.open_nursery() as nursery:
            await nursery.start(k.run)
            ev = k.create_event("go")

            def make(i: int) -> Any:
                async def item(_: WorkItem) -> None:
                    order.append(f"a{i}@{k.current_worker.name if k.current_worker else '?'}")
                    await k.wait(ev)
                    order.append(f"b{i}")
                return item

            for i in range(12):
                k.queue_work_item(CRITICAL, make(i), name=f"i{i}")
            k.call_at(0.5, k.set_event, ev)
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return order


def test_runs_are_a_function_of_the_seed(workers: str) -> None:
    a = _trace_run(7, workers)
    assert a == _trace_run(7, workers) == _trace_run(7, workers)
    other_driver = "tasks" if workers == "coroutines" else "coroutines"
    assert a == _trace_run(7, other_driver)  # the driver never changes the schedule
    others = {tuple(_trace_run(s, workers)) for s in range(8)}
    assert len(others) > 1  # the seed really chooses among simultaneously ready threads
    assert all(sorted(t) == sorted(a, key=str) or len(t) == len(a) for t in others)


async def test_an_item_that_raises_is_a_bugcheck(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)

    async def bad(_: WorkItem) -> None:
        raise ValueError("boom")

    with pytest.raises(ExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            await nursery.start(k.run)
            k.queue_work_item(CRITICAL, bad, name="bad")
            await trio.sleep(1)
    assert info.group_contains(BugCheck, match="bad#.* raised ValueError: boom")


async def test_wait_outside_a_work_item_is_refused(workers: str) -> None:
    k = Kernel(workers=workers)
    with pytest.raises(ExecutiveError):
        await k.wait(k.create_event("x"))


async def test_cancellation_ends_blocked_and_idle_workers(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)
    unwound: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)
        ev = k.create_event("never")

        async def stuck(_: WorkItem) -> None:
            try:
                await k.wait(ev)
            finally:
                unwound.append(k.now)

        for i in range(5):
            k.queue_work_item(CRITICAL, stuck, name=f"s{i}")
        await trio.sleep(1)
        assert k.queue(CRITICAL).blocked == 5
        nursery.cancel_scope.cancel()
    assert k.stopped.is_set()
    assert len(unwound) == 5  # every blocked item was unwound, its finally blocks run
    assert invariants.kernel_problems(k, stopped=True) == []


async def test_system_threads_run_once_and_exit(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)
    ran = []
    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)

        async def body(_: WorkItem) -> None:
            ran.append(k.now)

        for _ in range(3):
            k.create_system_thread("drv.bind", body, name="bind")
        await trio.sleep(0.1)
        q = k.queue("drv.bind")
        assert len(q.workers) == 0 and q.completed == 3
        nursery.cancel_scope.cancel()
    assert ran == [0.0, 0.0, 0.0]


def test_cancel_while_the_dispatcher_is_runnable_is_clean(workers: str) -> None:
    """Regression: a cancel landing while the dispatcher was runnable (a worker had just handed
    the baton back) used to hand the baton to a worker task the cancel had already ended —
    a TrioInternalError. Here a work item wakes the task that cancels, so that task and the
    dispatcher are runnable together; trio's run order then varies from run to run."""

    async def main() -> None:
        k = Kernel(ExecutiveParams(cpus=1), seed=2, workers=workers)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(k.run)

            async def item(_: WorkItem) -> None:
                if k.now >= 0.5:
                    stop.set()

            def kick() -> None:
                for i in range(6):
                    k.queue_work_item(CRITICAL, item, name=f"i{i}")
                k.call_later(0.1, kick)

            k.call_at(0.0, kick)
            await stop.wait()
            nursery.cancel_scope.cancel()

    for _ in range(60):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_a_bugcheck_keeps_the_items_exception_as_its_cause(workers: str,
        autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)

    async def bad(_: WorkItem) -> None:
        raise KeyError("lost")

    with pytest.raises(BugCheck) as info:
        await _run_one(k, bad)
    assert isinstance(info.value.__cause__, KeyError)


async def _run_one(k: Kernel, routine: Any) -> None:
    k.queue_work_item(CRITICAL, routine, name="item")
    await k.run()


async def test_awaiting_a_trio_primitive_in_a_work_item_is_a_bugcheck(workers: str,
        autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)

    async def sleeper(_: WorkItem) -> None:
        await trio.sleep(5)

    with pytest.raises(BugCheck, match="awaited something other than an executive wait"):
        await _run_one(k, sleeper)


async def test_calls_from_outside_see_the_current_time(workers: str,
        autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)
    fired: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)
        await trio.sleep(0.6)  # the dispatcher sleeps towards the 1 s balance tick
        k.call_later(0.5, lambda: fired.append(k.now))
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert fired == [pytest.approx(1.1)]


async def test_stop_ends_the_run_at_a_point_of_the_event_sequence(workers: str,
        autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)
    seen: list[float] = []
    for t in (1.0, 2.0, 3.0):
        k.call_at(t, lambda: seen.append(k.now))
    k.call_at(2.0, k.stop)  # same instant as a timer scheduled before it: that one runs
    await k.run()
    assert seen == [1.0, 2.0]
    assert k.stopped.is_set()


async def test_an_item_that_waits_again_while_being_unwound_still_ends(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    """A blocked item whose finally block waits once more: the run's end reaches that wait too
    (a cancellation again on the task driver, GeneratorExit again on the coroutine one)."""
    k = Kernel(workers=workers)
    unwound: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)
        first, second = k.create_event("first"), k.create_event("second")

        async def stubborn(_: WorkItem) -> None:
            try:
                await k.wait(first)
            finally:
                unwound.append("finally")
                await k.wait(second)
                unwound.append("never")

        k.queue_work_item(CRITICAL, stubborn, name="stubborn")
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert unwound == ["finally"]
    assert invariants.kernel_problems(k, stopped=True) == []


# Error paths: each behaves the same on both drivers (found by a review of the coroutine one).

async def test_a_raising_dpc_is_a_bugcheck_not_an_exception_in_some_item(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)
    seen: list[str] = []
    ev = k.create_event("ev")

    def bad_dpc() -> None:
        raise RuntimeError("dpc failed")

    async def item(_: WorkItem) -> None:
        k.queue_dpc(bad_dpc)  # runs when this item's turn ends, possibly in its own task
        try:
            await k.wait(ev)
        except RuntimeError:
            seen.append("the item saw the DPC's exception")

    with pytest.raises(BugCheck, match=r"DPC .*bad_dpc raised RuntimeError: dpc failed") as info:
        await _run_one(k, item)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert seen == [] and k.stopped.is_set()


async def test_a_routine_that_fails_when_called_is_a_bugcheck(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)

    def not_a_routine(_: WorkItem) -> Any:
        raise TypeError("bad routine")

    with pytest.raises(BugCheck, match="raised TypeError: bad routine"):
        await _run_one(k, not_a_routine)


async def test_an_item_failing_while_unwound_is_a_bugcheck_and_the_rest_still_end(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)
    unwound: list[str] = []
    never = k.create_event("never")

    def blocked(name: str, fail: bool) -> Any:
        async def routine(_: WorkItem) -> None:
            try:
                await k.wait(never)
            finally:
                unwound.append(name)
                if fail:
                    raise ValueError("cleanup failed")
        return routine

    k.queue_work_item(CRITICAL, blocked("bad", True), name="bad")
    k.queue_work_item(CRITICAL, blocked("good", False), name="good")
    k.call_at(1.0, k.stop)
    with pytest.raises(BugCheck, match=r"bad#.* raised ValueError: cleanup failed"):
        await k.run()
    assert sorted(unwound) == ["bad", "good"]
    assert k.stopped.is_set() and invariants.kernel_problems(k, stopped=True) == []
    with pytest.raises(ExecutiveError, match="outside a work item"):
        await k.wait(never)  # the run is over: an ordinary refusal, not an unwinding


async def test_a_ctrl_c_in_an_item_ends_the_run_as_a_ctrl_c(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(workers=workers)
    never, again = k.create_event("never"), k.create_event("again")

    async def blocked(_: WorkItem) -> None:
        try:
            await k.wait(never)
        finally:
            await k.wait(again)  # a clean-up that waits: unwound again, no bugcheck

    async def interrupted(_: WorkItem) -> None:
        raise KeyboardInterrupt

    k.queue_work_item(CRITICAL, blocked, name="blocked")
    k.call_at(1.0, lambda: k.queue_work_item(CRITICAL, interrupted, name="ki"))
    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True):
        await k.run()
    assert k.stopped.is_set() and k.current_worker is None
    assert invariants.kernel_problems(k, stopped=True) == []


async def test_an_interrupt_runs_in_the_io_task_while_the_dispatcher_sleeps(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    """The coroutine driver runs an I/O task's callback and the items it readies right in that
    task (one trio wake-up per received batch); the task driver posts it to the dispatcher.
    Either way the work happens at the moment of the interrupt, and a timer the work sets
    earlier than the dispatcher's own deadline still fires on time."""
    k = Kernel(workers=workers)
    log: list[tuple[str, float]] = []

    async def rx_item(_: WorkItem) -> None:
        log.append(("item", k.now))
        k.call_later(0.25, lambda: log.append(("timer", k.now)))

    def rx_dpc() -> None:
        log.append(("dpc", k.now))
        k.queue_work_item(CRITICAL, rx_item, name="rx")

    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)
        await trio.sleep(0.4)  # the dispatcher sleeps towards the 1 s balance tick
        k.interrupt(rx_dpc)
        if workers == "coroutines":  # done before this task even reached a checkpoint
            assert [e for e, _ in log] == ["dpc", "item"]
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert log == [("dpc", pytest.approx(0.4)), ("item", pytest.approx(0.4)),
                   ("timer", pytest.approx(0.65))]
    if workers == "coroutines":
        assert (k.stats.inline, k.stats.inline_wakes) == (1, 1)  # the timer beats the tick
    else:
        assert k.stats.inline == 0 and k.stats.external == 1


async def _block_static_critical(k: Kernel) -> Any:
    """Every static critical thread blocked on one event (returned)."""
    stuck = k.create_event("stuck")

    async def hold(_: WorkItem) -> None:
        await k.wait(stuck)

    for i in range(k.params.static_threads(CRITICAL)):
        k.queue_work_item(CRITICAL, hold, name=f"hold{i}")
    await trio.sleep(0.001)
    assert k.queue(CRITICAL).blocked == k.params.static_threads(CRITICAL)
    return stuck


@pytest.mark.parametrize("where", ["dpc", "hypercritical", "delayed"])
async def test_the_manager_preempts_only_a_lower_priority_inserter(
        where: str, workers: str, autojump_clock: trio.testing.MockClock) -> None:
    """WRK: inserts signal the balance manager (priority 14), which makes one thread per wake.
    From a DPC or a hypercritical worker (15) the three inserts are made before it runs and
    coalesce into one wake; a delayed worker (12) is preempted at each insert, and with the
    critical threads (13) running before it continues, each insert gets its own thread."""
    k = Kernel(seed=1, workers=workers)
    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)
        stuck = await _block_static_critical(k)

        async def blocker(_: WorkItem) -> None:
            await k.wait(stuck)

        def insert_three() -> None:
            for i in range(3):
                k.queue_work_item(CRITICAL, blocker, name=f"burst{i}")

        async def inserter(_: WorkItem) -> None:
            for i in range(3):
                k.queue_work_item(CRITICAL, blocker, name=f"burst{i}")
                await k.preemption_point()

        if where == "dpc":
            k.call_later(0.0, insert_three)
        else:
            k.queue_work_item(where, inserter, name="inserter")
        await trio.sleep(0.5)  # before the next balance tick
        q = k.queue(CRITICAL)
        wakes = k.core.manager_wakes
        assert (q.dynamic, wakes) == ((3, 3) if where == "delayed" else (1, 1))
        nursery.cancel_scope.cancel()


async def test_inline_growth_makes_a_thread_inside_each_insert(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    k = Kernel(ExecutiveParams(insert_growth="inline"), seed=1, workers=workers)
    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)
        stuck = await _block_static_critical(k)

        async def blocker(_: WorkItem) -> None:
            await k.wait(stuck)

        def insert_three() -> None:
            for i in range(3):
                k.queue_work_item(CRITICAL, blocker, name=f"burst{i}")

        k.call_later(0.0, insert_three)
        await trio.sleep(0.5)
        assert k.queue(CRITICAL).dynamic == 2  # the third insert found both CPUs' slots taken
        assert k.core.manager_wakes == 0
        nursery.cancel_scope.cancel()


async def test_generator_based_routines_run_as_async_ones_do(
        workers: str, autojump_clock: trio.testing.MockClock) -> None:
    """A routine may be any coroutine: an `async def`'s (interpreted or compiled) or a
    `types.coroutine` generator's. The coroutine driver steps the compiled ones and generators
    as iterators (their end is no StopIteration) and `async def`s with ``send``; both end the
    same way, with the item finished and its worker free."""
    k = Kernel(seed=1, workers=workers)
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(k.run)
        ev = k.create_event("go")

        @types.coroutine
        def waiter(_: WorkItem) -> Generator[Any, Any, None]:
            log.append(("wait", k.now))
            yield from k.wait(ev).__await__()
            log.append(("woke", k.now))

        @types.coroutine
        def at_once(_: WorkItem) -> Generator[Any, Any, None]:
            log.append(("once", k.now))
            return
            yield  # a generator that never suspends

        async def setter(_: WorkItem) -> None:
            k.set_event(ev)

        k.queue_work_item(CRITICAL, waiter, name="waiter")
        k.queue_work_item(CRITICAL, at_once, name="at_once")
        k.call_at(1.5, lambda: k.queue_work_item(CRITICAL, setter, name="setter",
                                                 signals=(ev,)))
        await trio.sleep(3.0)
        q = k.queue(CRITICAL)
        assert (q.blocked, len(q.pending)) == (0, 0)
        assert all(w.state is WorkerState.IDLE for w in q.workers)
        assert q.completed == 3
        nursery.cancel_scope.cancel()
    assert log == [("wait", 0.0), ("once", 0.0), ("woke", 1.5)]


def test_the_kernel_reads_trios_own_clock_through_perf_counter() -> None:
    """With trio's default clock the kernel reads `time.perf_counter` itself (a C call per
    received batch, not the clock's interpreted method), and its time still follows trio's;
    any other clock is read through its `current_time`."""
    seen: dict[str, Any] = {}

    async def main() -> None:
        k = Kernel(seed=1)
        async with trio.open_nursery() as nursery:
            await nursery.start(k.run)
            seen["reader"] = k._clock
            await trio.sleep(0.05)
            k._sync_now()
            seen["lag"] = (trio.current_time() - k.trio_time(0.0)) - k.now
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert seen["reader"] is time.perf_counter
    assert 0.0 <= seen["lag"] < 0.005

    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(main, clock=clock)
    assert seen["reader"] == clock.current_time
