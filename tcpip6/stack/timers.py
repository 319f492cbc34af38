"""A keyed one-shot timer queue for sans-IO cores.

Theory of operation: every timer has a hashable key (``("nud", addr)``, ``("dad", addr)``...)
and at most one deadline. :meth:`TimerQueue.set` replaces any earlier deadline for the key,
:meth:`cancel` removes it. Deadlines live in a binary heap with lazy deletion: a heap entry is
live only while ``_due[key]`` still equals its time, so set/cancel are O(log n) and stale entries
fall out when they reach the top. The heap is rebuilt if stale entries ever outnumber live ones
by a wide margin. Nothing here reads a clock: the owner passes ``now``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable


class TimerQueue:
    """One-shot timers by key (see module docstring)."""

    __slots__ = ("_due", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._due

    def set(self, key: Hashable, when: float) -> None:
        """Arm ``key`` for ``when`` (replacing any earlier deadline of that key)."""
        if self._due.get(key) == when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if len(self._heap) > 64 + 4 * len(self._due):
            self._heap = [(w, next(self._seq), k) for k, w in self._due.items()]
            heapq.heapify(self._heap)

    def cancel(self, key: Hashable) -> None:
        self._due.pop(key, None)

    def get(self, key: Hashable) -> float | None:
        return self._due.get(key)

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()

    def next_deadline(self) -> float | None:
        heap = self._heap
        due = self._due
        while heap:
            when, _, key = heap[0]
            if due.get(key) == when:
                return when
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> Hashable | None:
        """Remove and return the earliest key whose deadline is <= ``now``, else None."""
        heap = self._heap
        due = self._due
        while heap:
            when, _, key = heap[0]
            if due.get(key) != when:
                heapq.heappop(heap)
                continue
            if when > now:
                return None
            heapq.heappop(heap)
            del due[key]
            return key
        return None
