"""PacedClock: demo's virtual time is paced for the eye but independent of the machine's load."""

from __future__ import annotations

import time

import pytest
import trio

from tcpip6lab.pacing import PacedClock


def _busy(seconds: float) -> None:
    """The process is busy (or not scheduled) for `seconds` of wall time."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_busy_wall_time_costs_no_virtual_time() -> None:
    seen: list[float] = []

    async def main() -> None:
        seen.append(trio.current_time())
        _busy(0.05)  # at speed 1000 a MockClock(rate=1000) would be 50 virtual s further
        seen.append(trio.current_time())
        await trio.sleep(2.0)
        seen.append(trio.current_time())
        _busy(0.05)
        seen.append(trio.current_time())

    trio.run(main, clock=PacedClock(1000.0))
    assert seen == [0.0, 0.0, 2.0, 2.0]


def test_sleeping_is_paced_at_speed() -> None:
    async def main() -> float:
        t0 = time.perf_counter()
        await trio.sleep(0.5)  # 0.5 virtual s at speed 5: 0.1 s of wall time
        return time.perf_counter() - t0

    wall = trio.run(main, clock=PacedClock(5.0))
    assert 0.09 <= wall < 2.0


def test_timers_fire_in_virtual_order_whatever_the_load() -> None:
    order: list[tuple[str, float]] = []

    async def ticker(name: str, period: float, n: int) -> None:
        for _ in range(n):
            await trio.sleep(period)
            order.append((name, trio.current_time()))
            _busy(0.002)  # each tick's work takes wall time (20 virtual ms at speed 10)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker, "a", 0.003, 4)
            nursery.start_soon(ticker, "b", 0.005, 3)

    trio.run(main, clock=PacedClock(10.0))
    times = [t for _, t in order]
    assert times == sorted(times)
    assert [round(t, 6) for _, t in order if _ == "a"] == [0.003, 0.006, 0.009, 0.012]
    assert [round(t, 6) for _, t in order if _ == "b"] == [0.005, 0.01, 0.015]


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed must be > 0"):
        PacedClock(0)
