"""Sans-IO ready lists of the emulated dispatcher: which ready worker thread runs next.

Theory of operation. A thread becomes ready when the executive core starts an item on it, wakes
it from a wait, or tells it to exit; the kernel's driver `push`es it here with an opaque
command (what to do on its turn) and, whenever nothing at DPC level is pending, `pick`s the next
one. Threads of a higher queue priority always go first; among threads of equal priority the
policy chooses:

* ``"fifo"``: in the order they became ready.
* ``"random"``: a draw from the scheduler's seeded generator (swap the drawn entry to the end of
  the list, pop it) — one ``randrange`` per pick with more than one candidate.
* ``"pct"``: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010; shuttle's
  pct.rs): each thread gets a random priority the first time it is a candidate, the highest
  runs, and at ``pct_depth - 1`` change points drawn up front among the first ``pct_steps``
  picks the thread just picked drops below every other.

The generator is ``random.Random(f"kernel:{seed}")`` and only the scheduler draws from it, in
exactly the order above, so a run is a function of the parameters and the seed (the golden
event-trace hashes pin that order). No trio, no clock: the kernel's trio driver owns time.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from ..errors import ExecutiveError
from .core import Worker

SCHEDULES: tuple[str, ...] = ("random", "fifo", "pct")

#: one ready thread: the worker and the command for its turn (opaque here)
Entry = tuple[Worker, Any]


class ReadyQueue:
    """Ready threads by priority; `pick` takes the next one under the policy of the subclass."""


    def __init__(self, rng: random.Random) -> None:
        #: the seeded generator of the schedule (only this object draws from it)
        self.rng = rng
        #: how many threads are ready (read by the dispatcher on every step)
        self.count = 0
        #: queue priorities that have a list, highest first
        self.priorities: list[int] = []

    def __len__(self) -> int:
        return self.count

    def push(self, worker: Worker, cmd: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def pick(self) -> Entry:  # pragma: no cover - abstract
        raise NotImplementedError

    def highest_ready(self) -> int | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _add_priority(self, priority: int) -> None:
        self.priorities.append(priority)
        self.priorities.sort(reverse=True)


class FifoReady(ReadyQueue):
    """First ready, first run (within a priority)."""


    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._lists: dict[int, deque[Entry]] = {}

    def push(self, worker: Worker, cmd: Any) -> None:
        lst = self._lists.get(worker.priority)
        if lst is None:
            lst = self._lists[worker.priority] = deque()
            self._add_priority(worker.priority)
        lst.append((worker, cmd))
        self.count += 1

    def pick(self) -> Entry:
        for prio in self.priorities:
            lst = self._lists[prio]
            if lst:
                self.count -= 1
                return lst.popleft()
        raise ExecutiveError("no ready worker")

    def highest_ready(self) -> int | None:
        """The highest queue priority with a ready thread, or None."""
        for prio in self.priorities:
            if self._lists[prio]:
                return prio
        return None


class RandomReady(ReadyQueue):
    """A seeded draw among the ready threads of the highest priority."""


    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._lists: dict[int, list[Entry]] = {}

    def push(self, worker: Worker, cmd: Any) -> None:
        lst = self._lists.get(worker.priority)
        if lst is None:
            lst = self._lists[worker.priority] = []
            self._add_priority(worker.priority)
        lst.append((worker, cmd))
        self.count += 1

    def pick(self) -> Entry:
        for prio in self.priorities:
            lst = self._lists[prio]
            if not lst:
                continue
            self.count -= 1
            n = len(lst)
            if n > 1:
                i = self.rng.randrange(n)
                lst[i], lst[-1] = lst[-1], lst[i]
            return lst.pop()
        raise ExecutiveError("no ready worker")

    def highest_ready(self) -> int | None:
        """The highest queue priority with a ready thread, or None."""
        for prio in self.priorities:
            if self._lists[prio]:
                return prio
        return None


class PctReady(ReadyQueue):
    """PCT: random thread priorities, and `depth - 1` change points in the first `steps`."""


    def __init__(self, rng: random.Random, depth: int = 3, steps: int = 5000) -> None:
        super().__init__(rng)
        self._lists: dict[int, list[Entry]] = {}
        self.depth = depth
        #: each thread's PCT priority, by worker id (drawn when it is first a candidate)
        self.thread_priority: dict[int, float] = {}
        #: picks so far
        self.step = 0
        #: the picks after which the picked thread drops below all others
        self.changes = {rng.randrange(1, steps) for _ in range(depth - 1)}

    def push(self, worker: Worker, cmd: Any) -> None:
        lst = self._lists.get(worker.priority)
        if lst is None:
            lst = self._lists[worker.priority] = []
            self._add_priority(worker.priority)
        lst.append((worker, cmd))
        self.count += 1

    def pick(self) -> Entry:
        for prio in self.priorities:
            lst = self._lists[prio]
            if lst:
                self.count -= 1
                return self._pick_pct(lst)
        raise ExecutiveError("no ready worker")

    def highest_ready(self) -> int | None:
        """The highest queue priority with a ready thread, or None."""
        for prio in self.priorities:
            if self._lists[prio]:
                return prio
        return None

    def _pick_pct(self, lst: list[Entry]) -> Entry:
        pct = self.thread_priority
        for w, _ in lst:
            if w.id not in pct:
                pct[w.id] = self.rng.random()
        best = 0
        for j in range(1, len(lst)):
            if pct[lst[j][0].id] > pct[lst[best][0].id]:
                best = j
        entry = lst.pop(best)
        self.step += 1
        if self.step in self.changes:
            pct[entry[0].id] = -float(self.step)  # a change point: below every thread
        return entry


def make_ready_queue(schedule: str, seed: int, *, pct_depth: int = 3,
                     pct_steps: int = 5000) -> ReadyQueue:
    """The ready lists of a kernel run with `schedule` and `seed` (its seeded generator
    included)."""
    rng = random.Random(f"kernel:{seed}")
    if schedule == "fifo":
        return FifoReady(rng)
    if schedule == "random":
        return RandomReady(rng)
    if schedule == "pct":
        return PctReady(rng, pct_depth, pct_steps)
    raise ExecutiveError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
