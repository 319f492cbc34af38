"""The executive's work-queue mechanics, driven directly (sans-IO: no trio, no clock)."""

from __future__ import annotations

import pytest

from ndisemu.errors import ConfigError, ExecutiveError
from ndisemu.executive.core import ExecutiveCore, Resume, Start, WaitObject, WorkerExit, WorkerState
from ndisemu.params import CRITICAL, DELAYED, HYPERCRITICAL, ExecutiveParams


def start_actions(core: ExecutiveCore) -> list[Start]:
    return [a for a in core.take_actions() if isinstance(a, Start)]


def block_all_started(core: ExecutiveCore, now: float) -> list[WaitObject]:
    """Every started item waits on its own event (a worker blocked on a completion)."""
    objs = []
    pending = start_actions(core)
    while pending:
        for a in pending:
            obj = core.new_wait_object("done")
            assert core.begin_wait(a.worker, obj, now)
            objs.append(obj)
        pending = start_actions(core)  # blocking frees slots: waiters are activated
    return objs


def fill(core: ExecutiveCore, queue: str, n: int, now: float) -> None:
    for i in range(n):
        core.insert(core.new_item(queue, None, f"item{i}"), now)


def test_static_threads_match_server_defaults() -> None:
    core = ExecutiveCore(ExecutiveParams())
    assert len(core.queues[CRITICAL].workers) == 10
    assert len(core.queues[DELAYED].workers) == 7
    assert len(core.queues[HYPERCRITICAL].workers) == 1
    assert all(not w.dynamic for q in core.queues.values() for w in q.workers)


def test_additional_critical_threads_are_clamped_to_16() -> None:
    assert len(ExecutiveCore(ExecutiveParams(additional_critical=3))
               .queues[CRITICAL].workers) == 13
    assert len(ExecutiveCore(ExecutiveParams(additional_critical=40))
               .queues[CRITICAL].workers) == 26


@pytest.mark.parametrize("field,value", [("critical_static", 0), ("cpus", 0),
                                         ("max_dynamic", -1), ("balance_period", 0.0)])
def test_bad_parameters_are_rejected(field: str, value: float) -> None:
    with pytest.raises(ConfigError):
        ExecutiveParams(**{field: value})


def test_tick_grows_only_after_a_period_without_dequeues() -> None:
    p = ExecutiveParams()
    core = ExecutiveCore(p)
    q = core.queues[DELAYED]  # no eager growth on the delayed queue
    fill(core, DELAYED, q.spec.static_threads, 0.0)
    block_all_started(core, 0.0)
    fill(core, DELAYED, 1, 0.1)  # nobody free to take it
    assert len(q.pending) == 1 and q.dynamic == 0
    core.advance(1.0)  # first pass: the queue was empty at the previous snapshot
    assert q.dynamic == 0
    core.advance(2.0)  # items at the last pass, nothing dequeued since -> +1
    assert q.dynamic == 1
    assert [a.item.name for a in start_actions(core)] == ["item0"]
    assert not q.pending


def test_tick_does_not_grow_when_the_queue_made_progress() -> None:
    core = ExecutiveCore(ExecutiveParams())
    q = core.queues[DELAYED]
    fill(core, DELAYED, q.spec.static_threads, 0.0)
    objs = block_all_started(core, 0.0)
    fill(core, DELAYED, 2, 0.1)
    core.advance(1.0)  # snapshot: depth 2
    core.signal(objs[0], 1.5)  # a worker wakes, finishes and dequeues the next item
    (resumed,) = core.take_actions()
    assert isinstance(resumed, Resume)
    core.finish(resumed.worker, 1.5)
    assert q.processed == q.spec.static_threads + 1
    core.advance(2.0)
    assert q.dynamic == 0  # progress since the last pass: no thread added


def test_eager_critical_growth_one_thread_per_untaken_insert() -> None:
    """The old inline growth (insert_growth="inline"): the thread is made inside the insert."""
    core = ExecutiveCore(ExecutiveParams(insert_growth="inline"))
    q = core.queues[CRITICAL]
    fill(core, CRITICAL, 10, 0.0)
    block_all_started(core, 0.0)
    assert q.dynamic == 0
    for n in range(1, 4):
        fill(core, CRITICAL, 1, 0.0)
        assert q.dynamic == n  # created at once, no balance tick needed
        starts = start_actions(core)
        assert len(starts) == 1 and starts[0].worker.dynamic
        obj = core.new_wait_object("x")
        core.begin_wait(starts[0].worker, obj, 0.0)


def test_inserts_signal_the_manager_which_makes_one_thread_per_wake() -> None:
    """WRK: an insert that needs a thread only sets the manager's event (a synchronization
    event: inserts before the manager runs coalesce); each wake makes at most one thread."""
    core = ExecutiveCore(ExecutiveParams())
    q = core.queues[CRITICAL]
    fill(core, CRITICAL, 10, 0.0)
    block_all_started(core, 0.0)
    fill(core, CRITICAL, 3, 0.0)
    assert q.dynamic == 0 and core.manager_event  # no thread inside the inserts
    assert core.run_manager(0.0)
    assert q.dynamic == 1 and not core.manager_event  # one wake, one thread
    assert not core.run_manager(0.0) and q.dynamic == 1  # no event, no wake
    starts = start_actions(core)
    assert len(starts) == 1 and starts[0].worker.dynamic
    core.begin_wait(starts[0].worker, core.new_wait_object("x"), 0.0)
    fill(core, CRITICAL, 1, 0.0)  # a later insert signals again
    assert core.manager_event and core.run_manager(0.0) and q.dynamic == 2
    assert core.manager_wakes == 2


def test_the_manager_rechecks_the_predicate_when_it_wakes() -> None:
    core = ExecutiveCore(ExecutiveParams())
    q = core.queues[CRITICAL]
    fill(core, CRITICAL, 10, 0.0)
    objs = block_all_started(core, 0.0)
    fill(core, CRITICAL, 1, 0.0)
    assert core.manager_event
    core.signal(objs[0], 0.0)  # a worker wakes, finishes and takes the queued item itself
    for a in core.take_actions():
        core.finish(a.worker, 0.0)
    assert not q.pending
    assert core.run_manager(0.0) and q.dynamic == 0  # nothing needed any more


def test_no_eager_growth_while_running_threads_fill_the_cpus() -> None:
    core = ExecutiveCore(ExecutiveParams(cpus=2))
    q = core.queues[CRITICAL]
    fill(core, CRITICAL, 3, 0.0)
    # Two items run (CurrentCount == MaximumCount); the third waits although 8 threads idle.
    assert q.running == 2 and len(q.pending) == 1 and q.dynamic == 0
    assert len(start_actions(core)) == 2


def test_blocking_worker_hands_its_slot_to_an_idle_waiter() -> None:
    core = ExecutiveCore(ExecutiveParams(cpus=1))
    q = core.queues[CRITICAL]
    fill(core, CRITICAL, 2, 0.0)
    first = start_actions(core)
    assert len(first) == 1 and len(q.pending) == 1
    core.begin_wait(first[0].worker, core.new_wait_object("x"), 0.0)
    second = start_actions(core)
    assert [a.item.name for a in second] == ["item1"]


def test_dynamic_threads_never_exceed_the_cap() -> None:
    p = ExecutiveParams(max_dynamic=16)
    core = ExecutiveCore(p)
    q = core.queues[CRITICAL]
    for t in range(60):
        fill(core, CRITICAL, 1, float(t))
        block_all_started(core, float(t))
        core.advance(float(t) + 0.5)
        block_all_started(core, float(t) + 0.5)
    assert q.dynamic == 16 and q.peak_dynamic == 16 and q.dynamic_created == 16
    assert len(q.workers) == p.critical_static + 16
    assert all(w.state is WorkerState.BLOCKED for w in q.workers)


def test_idle_dynamic_threads_exit_after_ten_minutes_static_ones_stay() -> None:
    p = ExecutiveParams()
    core = ExecutiveCore(p)
    q = core.queues[CRITICAL]
    fill(core, CRITICAL, 10, 0.0)
    objs = block_all_started(core, 0.0)
    fill(core, CRITICAL, 1, 0.0)
    assert core.run_manager(0.0)  # the insert signalled the manager; it makes the thread
    dyn = start_actions(core)[0].worker
    assert dyn.dynamic
    core.finish(dyn, 5.0)  # idle from t=5
    for o in objs:
        core.signal(o, 5.0)
    for a in core.take_actions():
        core.finish(a.worker, 5.0)
    assert core.next_deadline() <= 5.0 + p.dynamic_idle_exit
    core.advance(5.0 + p.dynamic_idle_exit - 1)
    assert dyn in q.workers
    core.advance(5.0 + p.dynamic_idle_exit)
    assert dyn not in q.workers and q.dynamic == 0
    assert any(isinstance(a, WorkerExit) and a.worker is dyn for a in core.take_actions())
    assert len(q.workers) == 10  # static threads never exit


def test_wait_on_a_signalled_event_does_not_block() -> None:
    core = ExecutiveCore(ExecutiveParams())
    fill(core, CRITICAL, 1, 0.0)
    (a,) = start_actions(core)
    obj = core.new_wait_object("x")
    core.signal(obj, 0.0)
    assert core.begin_wait(a.worker, obj, 0.0) is False
    assert a.worker.state is WorkerState.RUNNING


def test_a_work_item_cannot_be_queued_twice() -> None:
    core = ExecutiveCore(ExecutiveParams())
    item = core.new_item(CRITICAL, None, "x")
    core.insert(item, 0.0)
    with pytest.raises(ExecutiveError):
        core.insert(item, 0.0)


def test_fifo_order_is_kept() -> None:
    core = ExecutiveCore(ExecutiveParams(cpus=1))
    fill(core, CRITICAL, 5, 0.0)
    order = []
    pending = start_actions(core)
    while pending:
        for a in pending:
            order.append(a.item.name)
            core.finish(a.worker, 0.0)
        pending = start_actions(core)
    assert order == [f"item{i}" for i in range(5)]


def test_a_stuck_queue_grows_by_one_thread_every_two_balance_periods() -> None:
    """The manager snapshots before its new thread dequeues, so that dequeue is progress at
    the next pass (W ex/worker.c:805-841): +1 at t=2, none at t=3, +1 at t=4, ..."""
    core = ExecutiveCore(ExecutiveParams(max_dynamic=16))
    q = core.queues[DELAYED]
    fill(core, DELAYED, q.spec.static_threads + 10, 0.0)
    block_all_started(core, 0.0)
    counts = []
    for t in range(1, 9):
        core.advance(float(t))
        block_all_started(core, float(t))  # each new thread takes an item and blocks on it
        counts.append(q.dynamic)
    assert counts == [0, 1, 1, 2, 2, 3, 3, 4]
