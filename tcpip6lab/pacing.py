"""A virtual clock paced for people to watch, whose outcome does not depend on the machine's load.

`demo` on the memory wire shows virtual time at `--speed` virtual seconds per wall second.
trio's `MockClock(rate=speed)` does that by letting virtual time run with the wall clock — also
while the process is busy or not scheduled at all. On a loaded machine a 50 ms pause of the
process is 2 virtual seconds at speed 40: pings time out, binds look slow, and the verdict
depends on what else the machine was doing (seen: the fixed host reported answering IPv4 on
0/25 adapters in 2 of 10 runs while other jobs used both cores).

`PacedClock` moves virtual time only while trio has nothing to run, as `MockClock`'s autojump
does, but it waits for it: when the run loop would sleep until the next deadline, it sleeps
(deadline - now) / speed wall seconds, and virtual time runs at `speed` toward that deadline
and stops there. Work done after that costs no virtual time. The sequence of events is then
the same on a fast idle machine and a slow busy one; only the wall time differs. (A wake-up by
I/O before the deadline lets virtual time run on with the wall clock up to that deadline, as
`MockClock(rate=…)` would; the memory demo does no such I/O.)
"""

from __future__ import annotations

import math
from time import perf_counter

import trio


class PacedClock(trio.abc.Clock):
    """Virtual time from 0, advancing at `speed` virtual seconds per wall second while trio
    sleeps, never while it runs past the deadline it slept for."""

    def __init__(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (got {speed})")
        self.speed = speed
        self._virtual = 0.0
        self._target: float | None = None  # the deadline the run loop sleeps toward
        self._wall_at = 0.0  # perf_counter() when that sleep began

    def start_clock(self) -> None:
        self._virtual = 0.0
        self._target = None

    def current_time(self) -> float:
        target = self._target
        if target is None:
            return self._virtual
        now = self._virtual + (perf_counter() - self._wall_at) * self.speed
        if now >= target:  # reached: frozen there until the loop sleeps again
            self._virtual = target
            self._target = None
            return target
        return now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        now = self.current_time()
        self._virtual = now
        if math.isinf(deadline):  # nothing to wait for but I/O: time stands still meanwhile
            self._target = None
            return math.inf
        self._wall_at = perf_counter()
        self._target = deadline
        return max(0.0, (deadline - now) / self.speed)
