"""The task driver (``workers="tasks"``, the default): each worker thread is a trio task.

A thread's first turn starts its task in the kernel's nursery; between turns the task is parked
(`trio.lowlevel.wait_task_rescheduled`). The baton moves by rescheduling: the dispatcher hands
it to a ready thread and parks; when that thread's item waits or returns, the thread runs the
kernel's step loop itself (`_hand_back`: due timers, DPCs, the next pick) and passes the baton
straight to the next ready thread — or keeps it, if it is next — and the last one, finding
nothing ready, wakes the dispatcher to let time pass. A work item's coroutine is driven by
`_drive`, which passes on to trio only the suspensions of `Kernel.wait`; any other await would
let trio's clock and run order into the emulation, so it is a bugcheck.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

import outcome
import trio

from ..errors import ExecutiveError
from ..executive.core import Worker, WorkItem
from .base import EXIT, NOT_A_KERNEL_WAIT, WorkerDriver, item_bugcheck

if TYPE_CHECKING:
    from ..kernel import Kernel


@types.coroutine
def _suspend(trap: Any) -> Generator[Any, Any, Any]:
    """Yield a trio trap that a driven coroutine produced, and return trio's answer."""
    return (yield trap)


class TaskDriver(WorkerDriver):
    def __init__(self, kernel: Kernel) -> None:
        super().__init__(kernel)
        #: each worker thread's trio task
        self._task_workers: dict[trio.lowlevel.Task, Worker] = {}
        self._dispatcher_parked = False  # the dispatcher task waits for the baton

    async def run_ready(self, worker: Worker, cmd: Any) -> None:
        """Give the baton to `worker` and park until a worker finds nothing ready."""
        k = self.kernel
        # A cancellation that arrived while the dispatcher was runnable may already have ended
        # worker tasks: stop here rather than hand the baton to a task that is gone.
        await trio.lowlevel.checkpoint_if_cancelled()
        if worker.id in k._ended:
            return
        self._transfer(worker, cmd)
        self._dispatcher_parked = True

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._dispatcher_parked = False
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        k._current = None
        if k._bugcheck is not None:
            raise k._bugcheck

    def block(self) -> Awaitable[Any]:
        return self._hand_back(blocked=True)

    async def unwinding_wait(self) -> None:
        # The nursery is being cancelled: re-deliver the cancellation at this wait.
        worker = self._task_workers.get(trio.lowlevel.current_task())
        if worker is not None:
            worker.in_kernel_wait = True  # let trio's trap through _drive
            try:
                await trio.lowlevel.checkpoint_if_cancelled()
            finally:
                worker.in_kernel_wait = False

    def _transfer(self, worker: Worker, cmd: Any) -> None:
        """Hand the baton to `worker` (its first turn starts its task)."""
        k = self.kernel
        assert k._nursery is not None
        k.stats.thread_turns += 1
        k._current = worker
        if worker.task is None:
            k._nursery.start_soon(self._worker_main, worker, cmd,
                                     name=f"{k.name}:{worker.name}")
        else:
            trio.lowlevel.reschedule(worker.task, outcome.Value(cmd))

    def _wake_dispatcher(self) -> None:
        dispatcher = self.kernel._dispatcher
        if self._dispatcher_parked and dispatcher is not None:
            self._dispatcher_parked = False
            trio.lowlevel.reschedule(dispatcher, outcome.Value(None))

    async def _hand_back(self, blocked: bool = False) -> Any:
        """Called in a worker task when its turn ends (it blocks, or its item returned): run the
        dispatcher's step loop here, then continue (if this worker is next), pass the baton to
        the next worker directly, or wake the dispatcher to wait for time to pass. Returns the
        command of this worker's next turn."""
        k = self.kernel
        worker = k._current
        k._current = None
        if worker is None:  # pragma: no cover - every hand-back comes from a worker's turn
            raise ExecutiveError("hand-back outside a worker turn")
        worker.in_kernel_wait = True
        try:
            k._fire_due_timers()
            nxt = k._step()
            if nxt is not None and nxt[0] is worker:
                k.stats.thread_turns += 1  # its own next turn: no task switch at all
                k._current = worker
                cmd = nxt[1]
            else:
                if nxt is not None:
                    # A cancel that reached the other worker reached us too (one nursery).
                    await trio.lowlevel.checkpoint_if_cancelled()
                    self._transfer(*nxt)
                else:
                    self._wake_dispatcher()
                cmd = await trio.lowlevel.wait_task_rescheduled(
                    lambda _: trio.lowlevel.Abort.SUCCEEDED
                )
        finally:
            worker.in_kernel_wait = False
        if blocked and cmd is EXIT:  # pragma: no cover - exit is only sent to idle workers
            raise ExecutiveError("worker told to exit while blocked")
        return cmd

    async def _drive(self, coro: Coroutine[Any, Any, None], worker: Worker,
                     item: WorkItem) -> None:
        """Run a work item's coroutine, passing its suspensions on to trio — but only the
        kernel's own (`Kernel.wait`)."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                trap = coro.throw(error) if error is not None else coro.send(value)
            except StopIteration:
                return
            if not worker.in_kernel_wait:
                coro.close()
                raise ExecutiveError(NOT_A_KERNEL_WAIT.format(item.label))
            try:
                value, error = await _suspend(trap), None
            except BaseException as exc:  # Cancelled included: hand it to the item
                value, error = None, exc

    async def _worker_main(self, worker: Worker, cmd: Any) -> None:
        k = self.kernel
        worker.task = task = trio.lowlevel.current_task()
        self._task_workers[task] = worker
        try:
            await self._worker_loop(worker, cmd)
        finally:
            k._ended.add(worker.id)
            del self._task_workers[task]
            if k._current is worker:  # it died in its turn (a Ctrl-C, a cancellation)
                k._current = None

    async def _worker_loop(self, worker: Worker, cmd: Any) -> None:
        k = self.kernel
        while cmd is not EXIT:
            item: WorkItem = cmd
            try:
                await self._drive(item.routine(item), worker, item)
            except trio.Cancelled:
                raise
            except Exception as exc:
                k._bugcheck = item_bugcheck(item, worker, exc)
                await self._hand_back()
                return
            k.core.finish(worker, k.now)
            k._apply_actions()
            cmd = await self._hand_back()
        # Told to exit: pass the baton on before the task ends.
        worker.task = None
        k._current = None
        k._ended.add(worker.id)
        k._fire_due_timers()
        nxt = k._step()
        if nxt is not None:
            self._transfer(*nxt)
        else:
            self._wake_dispatcher()
