"""The heartbeat is never reported stopped before its first interval has passed."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from ndisemu.kernel import Kernel
from ndisemu.params import ExecutiveParams
from ndisemu.system import Heartbeat


def test_not_stopped_before_the_first_interval_then_stopped_when_beats_stop() -> None:
    async def main() -> None:
        kernel = Kernel(ExecutiveParams())
        hb = Heartbeat(kernel, 0.25)
        grace = 2 * kernel.params.balance_period
        assert not hb.stopped(kernel.now, grace)  # not started: nothing to report
        async with trio.open_nursery() as nursery:
            await nursery.start(kernel.run)
            await trio.sleep(1.0)
            hb.start()
            started = kernel.now
            # no beat yet at the very start: not stopped
            assert not hb.beats and hb.count == 0 and not hb.stopped(kernel.now, grace)
            await trio.sleep(grace / 2)
            assert hb.beats and not hb.stopped(kernel.now, grace)
            hb.stop()
            last = hb.last_beat
            assert last is not None
            # (an idle kernel's `now` moves on its next event: look with the clock's time)
            await trio.sleep(grace + 0.5)
            assert hb.stopped(trio.current_time(), grace)
            assert not hb.stopped(last + grace - 0.01, grace)
            # a heartbeat that never beat is stopped only once `grace` has passed since start
            late = Heartbeat(kernel, 0.25)
            late.started_at = kernel.now
            assert not late.stopped(kernel.now + grace - 0.01, grace)
            assert late.stopped(kernel.now + grace + 0.01, grace)
            assert started <= last
            nursery.cancel_scope.cancel()

    trio.run(main, clock=MockClock(autojump_threshold=0))
