"""Other users of the shared critical queue: a system heartbeat and foreign holders.

Heartbeat. A real critical work item, queued every `interval` (never twice at once: a
WORK_QUEUE_ITEM can be queued only once until it has run). Each run records a beat. When the
critical queue is stuck, beats stop — the emulated equivalent of "the computer may stop
responding" (KB968597; nt-model §7: every other critical-queue user starves).

The beats are a ring: the last `keep` beat times (HISTORY_KEPT by default, ModelParams'
`history_kept` in an emulated host), with `count` counting every one, so a host that runs for
days keeps bounded memory.

Foreign holders. Other kernel components that, like tcpip6, block a critical worker on a request
whose completion reaches them through a critical work item (nt-model §6 step 4, K: "critical
threads already blocked by other components"). Each holder loops: its item issues a request
that completes after `hold` seconds, then blocks on an event; the completion queues a follow-up
item on the critical queue that sets the event; the holder's item returns and the holder queues
itself again. So each holder keeps one critical worker blocked almost all the time, and when the
queue is stuck its follow-up item waits behind the others — it becomes part of the knot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .executive.core import ItemState, WaitObject, WorkItem
from .params import CRITICAL, HISTORY_KEPT

if TYPE_CHECKING:
    from .kernel import Kernel, Timer


@dataclass
class Heartbeat:
    kernel: Kernel
    interval: float = 0.25
    queue: str = CRITICAL
    keep: int = HISTORY_KEPT  # beat times kept (the latest); `count` counts them all
    beats: deque[float] = field(init=False)
    count: int = 0
    queued: int = 0
    _item: WorkItem | None = None
    _timer: Timer | None = None
    started_at: float | None = None

    def __post_init__(self) -> None:
        self.beats = deque(maxlen=self.keep)

    def start(self, at: float | None = None) -> None:
        self.started_at = self.kernel.now if at is None else at
        self._timer = self.kernel.call_at(self.started_at, self._tick)

    def stopped(self, now: float, grace: float) -> bool:
        """No beat for more than `grace` seconds — counted from the start while none has
        come yet, so a heartbeat is never reported stopped before its first interval."""
        if self.started_at is None:
            return False
        last = self.last_beat if self.last_beat is not None else self.started_at
        return now - last > grace

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _tick(self) -> None:
        if self._item is None or self._item.state in (ItemState.DONE, ItemState.REMOVED):
            self.queued += 1
            self._item = self.kernel.queue_work_item(self.queue, self._beat,
                                                     name="system.heartbeat")
        self._timer = self.kernel.call_later(self.interval, self._tick)

    async def _beat(self, _item: WorkItem) -> None:
        self.beats.append(self.kernel.now)
        self.count += 1

    @property
    def last_beat(self) -> float | None:
        return self.beats[-1] if self.beats else None


@dataclass
class ForeignHolder:
    kernel: Kernel
    index: int
    hold: float = 5.0
    queue: str = CRITICAL
    rounds: int = 0
    held_since: float | None = None

    def start(self) -> None:
        self._queue_holder()

    def _queue_holder(self) -> None:
        self.kernel.queue_work_item(self.queue, self._hold, name="foreign.hold",
                                    tags={"holder": self.index})

    async def _hold(self, _item: WorkItem) -> None:
        k = self.kernel
        done = k.create_event("foreign.request_done", holder=self.index)
        # Its waker is declared before it exists: the follow-up item queued on this queue when
        # the request completes (so a knot is provable without waiting for that completion).
        k.declare_future_signal(done, self.queue, "foreign.request completes")
        self.held_since = k.now
        k.call_later(self.hold, self._request_complete, done)
        await k.wait(done)
        self.rounds += 1
        self.held_since = None
        self._queue_holder()

    def _request_complete(self, done: WaitObject) -> None:
        async def follow_up(_item: WorkItem) -> None:
            self.kernel.set_event(done)

        self.kernel.clear_future_signals(done)
        self.kernel.queue_work_item(self.queue, follow_up, name="foreign.complete",
                                    tags={"holder": self.index}, signals=(done,))
