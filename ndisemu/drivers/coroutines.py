"""The coroutine driver (``workers="coroutines"``): the dispatcher steps the items itself.

No trio task per thread: each running or blocked item's coroutine is kept by worker id, and a
turn is a ``coro.send`` from whichever task holds the baton — the dispatcher (`run_ready`), or an
I/O task taking an interrupt (`interrupt`). `Kernel.wait` parks the item by yielding a private
marker (`_park`); any other suspension is an await of something other than an executive wait
object, a bugcheck. The turns run in exactly the order the task driver runs them (after each
turn, due timers, then the kernel's next step), only without a trio switch per turn, with a trio
checkpoint every `CHECKPOINT_TURNS` turns. At the end of the run the blocked items are closed in
worker order (`close`).
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Final

import trio

from ..errors import ExecutiveError
from ..executive.core import Worker, WorkItem
from .base import CHECKPOINT_TURNS, EXIT, NOT_A_KERNEL_WAIT, WorkerDriver, item_bugcheck

if TYPE_CHECKING:
    from ..kernel import Kernel

_WAIT: Final = object()  # what Kernel.wait yields to the coroutine driver
_STARTED: Final = object()  # Worker.task of a thread carried as coroutines, once it has run
_DONE: Final = object()  # a turn's routine returned
_PY_COROUTINE: Final = types.CoroutineType  # an interpreted `async def`'s: it has no __next__
# compiled, a bare `next` is a lookup in the builtins module at each call
_next: Final[Callable[[Any, Any], Any]] = next


@types.coroutine
def _park() -> Generator[Any, Any, Any]:
    """Suspend a work item's coroutine back to the coroutine driver (a blocked thread)."""
    return (yield _WAIT)


class CoroutineDriver(WorkerDriver):
    def __init__(self, kernel: Kernel) -> None:
        super().__init__(kernel)
        #: each thread's current item and its coroutine, by worker id
        self._coros: dict[int, tuple[WorkItem, Coroutine[Any, Any, None]]] = {}
        self._closing = False  # ending the suspended items
        self._in_interrupt = False  # an I/O task is running steps (`interrupt`)

    async def run_ready(self, worker: Worker, cmd: Any) -> None:
        """Run worker turns in this task, in exactly the order the task driver would: after each
        turn, due timers, then the next step — the task driver's hand-back without a switch."""
        k = self.kernel
        turns = 0
        timers = k._timers
        nxt: tuple[Worker, Any] | None = (worker, cmd)
        while nxt is not None:
            self._turn(nxt[0], nxt[1])  # not *nxt: a star call is a generic one when compiled
            if k._bugcheck is not None:
                raise k._bugcheck
            turns += 1
            if turns % CHECKPOINT_TURNS == 0:
                await trio.lowlevel.checkpoint()
            if timers and timers[0][0] <= k.now:
                k._fire_due_timers()
            nxt = (k._step() if k._dpcs or k.ready.count or k.core.manager_event
                       else None)

    def block(self) -> Awaitable[Any]:
        return _park()

    async def unwinding_wait(self) -> None:
        if self._closing:
            raise GeneratorExit

    def interrupt(self, fn: Callable[..., None], args: tuple[Any, ...]) -> bool:
        k = self.kernel
        if not (k._sleeping and k._running) or self._in_interrupt:
            return False
        k._sync_now()
        self._in_interrupt = True
        k.stats.inline += 1
        k._sleeping = False  # we hold the baton: nothing done here needs to wake anyone
        try:
            k._dpcs.append((fn, args))
            k.stats.external += 1
            if k._timers and k._timers[0][0] <= k.now:
                k._fire_due_timers()
            nxt = k._step()
            while nxt is not None:
                self._turn(nxt[0], nxt[1])
                if k._timers and k._timers[0][0] <= k.now:
                    k._fire_due_timers()
                nxt = (k._step() if k._dpcs or k.ready.count or k.core.manager_event
                       else None)
        finally:
            k._sleeping = True
            self._in_interrupt = False
        if (k._stop_requested or k._bugcheck is not None or k._dpcs or k.ready.count
                or (k._timers and k._timers[0][0] < k._sleep_deadline)):
            k.stats.inline_wakes += 1
            k._wakeup.set()
        return True

    def _turn(self, worker: Worker, cmd: Any) -> None:
        """One thread's turn: start its item, resume its blocked item, or end the thread."""
        k = self.kernel
        k.stats.thread_turns += 1
        if cmd is EXIT:
            worker.task = None
            k._ended.add(worker.id)
            return
        worker.task = _STARTED
        k._current = worker
        item: WorkItem = cmd if cmd is not None else worker.item  # type: ignore[assignment]
        done = False
        try:
            if cmd is None:
                item, coro = self._coros[worker.id]
            else:
                # Called as the task driver calls it: in the thread, inside the bugcheck net.
                # Kept in `_coros` only if it waits (below): most items finish in one step.
                coro = item.routine(item)
            if type(coro) is _PY_COROUTINE:
                try:
                    trap = coro.send(None)
                except StopIteration:
                    trap = _DONE
            else:
                # A compiled routine's coroutine (or a generator) steps as an iterator: its end
                # is `_DONE`, not a StopIteration raised through this compiled frame, which
                # costs a traceback entry (a new code object) per finished item.
                trap = _next(coro, _DONE)
            done = trap is _DONE
            if not done:
                if trap is not _WAIT:
                    coro.close()
                    raise ExecutiveError(NOT_A_KERNEL_WAIT.format(item.label))
                if cmd is not None:
                    self._coros[worker.id] = (item, coro)
        except Exception as exc:
            self._coros.pop(worker.id, None)
            k._ended.add(worker.id)
            k._bugcheck = item_bugcheck(item, worker, exc)
        finally:
            k._current = None
        if done:  # outside the bugcheck net, as a completion always was
            if cmd is None:
                del self._coros[worker.id]
            k.core.finish(worker, k.now)
            if k.core.has_actions() or k._sleeping:
                k._apply_actions()

    def close(self) -> None:
        """End every blocked item (GeneratorExit at its wait, in worker order), as cancelling
        the nursery ends the worker tasks of the task driver. An item that fails while
        unwinding is recorded as a bugcheck (if none is yet); the others are closed all the
        same."""
        k = self.kernel
        self._closing = True
        try:
            for wid in sorted(self._coros):
                item, coro = self._coros.pop(wid)
                try:
                    coro.close()
                except Exception as exc:
                    if k._bugcheck is None and item.worker is not None:
                        k._bugcheck = item_bugcheck(item, item.worker, exc)
        finally:
            self._closing = False
            for q in k.core.queues.values():  # and every thread with them, idle ones too
                k._ended.update(w.id for w in q.workers if w.task is not None)

    def suspended(self) -> int:
        return len(self._coros)
