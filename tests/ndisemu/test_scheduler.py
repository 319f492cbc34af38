"""The dispatcher's ready lists and schedule policies, driven directly (sans-IO: no trio)."""

from __future__ import annotations

import random

import pytest

from ndisemu.errors import ExecutiveError
from ndisemu.executive.core import Worker
from ndisemu.executive.scheduler import (
    SCHEDULES,
    FifoReady,
    PctReady,
    RandomReady,
    ReadyQueue,
    make_ready_queue,
)


def workers(n: int, priority: int = 13, first_id: int = 1) -> list[Worker]:
    return [Worker(first_id + i, "q", i, False, 0.0, priority=priority) for i in range(n)]


def drain(ready: ReadyQueue) -> list[tuple[int, object]]:
    out = []
    while ready.count:
        w, cmd = ready.pick()
        out.append((w.id, cmd))
    return out


def test_make_ready_queue_by_schedule() -> None:
    assert SCHEDULES == ("random", "fifo", "pct")
    assert isinstance(make_ready_queue("fifo", 0), FifoReady)
    assert isinstance(make_ready_queue("random", 0), RandomReady)
    assert isinstance(make_ready_queue("pct", 0), PctReady)
    with pytest.raises(ExecutiveError, match="schedule must be one of"):
        make_ready_queue("lifo", 0)


def test_fifo_order_within_a_priority() -> None:
    ready = make_ready_queue("fifo", 0)
    ws = workers(5)
    for w in ws:
        ready.push(w, f"cmd{w.id}")
    assert len(ready) == ready.count == 5
    assert drain(ready) == [(w.id, f"cmd{w.id}") for w in ws]
    assert len(ready) == 0


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_higher_priority_first(schedule: str) -> None:
    ready = make_ready_queue(schedule, 7)
    low, high, mid = workers(3, 12, 1), workers(3, 14, 10), workers(2, 13, 20)
    for w in [*low, *high, *mid]:
        ready.push(w, None)
    assert ready.priorities == [14, 13, 12]
    ids = [wid for wid, _ in drain(ready)]
    assert set(ids[:3]) == {w.id for w in high}
    assert set(ids[3:5]) == {w.id for w in mid}
    assert set(ids[5:]) == {w.id for w in low}
    with pytest.raises(ExecutiveError, match="no ready worker"):
        ready.pick()


def test_random_draw_is_the_seeded_draw() -> None:
    """One randrange(n) per pick with n > 1 candidates: swap the drawn entry last, pop it."""
    ws = workers(6)
    ready = make_ready_queue("random", 42)
    for w in ws:
        ready.push(w, None)
    got = [wid for wid, _ in drain(ready)]

    rng = random.Random("kernel:42")
    lst = [w.id for w in ws]
    expected = []
    while lst:
        if len(lst) > 1:
            i = rng.randrange(len(lst))
            lst[i], lst[-1] = lst[-1], lst[i]
        expected.append(lst.pop())
    assert got == expected
    assert sorted(got) == [w.id for w in ws]


def test_random_draw_reproducible_and_seed_dependent() -> None:
    def run(seed: int) -> list[int]:
        ready = make_ready_queue("random", seed)
        out = []
        for round_ in range(20):
            for w in workers(4, first_id=1 + 4 * round_):
                ready.push(w, None)
            out += [ready.pick()[0].id for _ in range(3)]
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_single_candidate_draws_nothing() -> None:
    ready = make_ready_queue("random", 3)
    state = ready.rng.getstate()
    (w,) = workers(1)
    ready.push(w, None)
    assert ready.pick()[0] is w
    assert ready.rng.getstate() == state


def test_pct_change_points_drawn_up_front() -> None:
    ready = make_ready_queue("pct", 5, pct_depth=4, pct_steps=100)
    assert isinstance(ready, PctReady)
    rng = random.Random("kernel:5")
    assert ready.changes == {rng.randrange(1, 100) for _ in range(3)}
    # Other schedules draw nothing up front.
    assert make_ready_queue("random", 5).rng.getstate() == random.Random("kernel:5").getstate()


def test_pct_highest_thread_priority_runs_and_drops_at_a_change_point() -> None:
    rng = random.Random(0)
    ready = PctReady(rng, depth=2, steps=10)
    ready.changes = {1}  # the first pick is a change point
    a, b, c = workers(3)
    for w in (a, b, c):
        ready.push(w, None)
    first = ready.pick()[0]
    prio = ready.thread_priority
    assert set(prio) == {a.id, b.id, c.id}
    again = random.Random(0)
    again.randrange(1, 10)  # the change point drawn by the constructor
    drawn = {w.id: again.random() for w in (a, b, c)}  # then one priority per new candidate
    assert first.id == max(drawn, key=lambda i: drawn[i])
    assert prio[first.id] == -1.0  # below every other thread from now on
    ready.push(first, None)
    rest = [ready.pick()[0].id for _ in range(3)]
    assert rest[-1] == first.id
    assert ready.step == 4


def test_pct_reproducible() -> None:
    def run() -> list[int]:
        ready = make_ready_queue("pct", 9, pct_depth=3, pct_steps=20)
        out = []
        for round_ in range(10):
            for w in workers(3, first_id=1 + 3 * round_):
                ready.push(w, None)
            out += [ready.pick()[0].id for _ in range(2)]
        return out

    assert run() == run()
