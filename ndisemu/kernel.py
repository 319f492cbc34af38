"""The trio driver of the emulated kernel: timers, DPCs and worker threads in virtual time.

Theory of operation. `ExecutiveCore` decides *what* happens (which worker takes which item, when
threads are created); this driver makes it happen. It owns virtual time, the timer heap, the DPC
queue and the dispatcher's step loop; the core's actions become ready threads in the sans-IO
ready lists (`ndisemu.executive.scheduler`, which also owns the schedule's seeded picks), and a
worker driver (`ndisemu.drivers`) runs a ready thread's turn. Exactly one emulated activity runs
at a time, and the dispatcher picks it:

1. DPC-level callbacks (timer expirations, miniport completions, frame indications) queued for
   the current instant run first, in the order they were scheduled — they preempt threads, as
   DPCs do on NT.
2. Then one ready worker thread (an item to start, or a wait that was satisfied) gets the baton:
   among the ready workers of the highest queue priority the choice is FIFO (``"fifo"``), a draw
   from the kernel's seeded generator (``"random"``), or PCT's (``"pct"``). The worker runs its
   item until the item waits on an executive object or returns, then hands the baton back.
3. When nothing is ready the dispatcher sleeps until the next timer or balance-manager deadline.

Because the dispatcher serialises every step and orders them itself, trio's own run order never
influences the emulation: a run is a function of the parameters and the seed (faults.md §6
explains why that matters — trio shuffles runnable batches on purpose). Virtual time is trio's
clock: use `trio.testing.MockClock(autojump_threshold=0)` to run as fast as possible, or
``rate=`` to pace.

Two ways to carry the threads (``workers=``), one schedule. With ``"tasks"`` (the default,
`ndisemu.drivers.tasks`) each worker thread is a trio task in the kernel's nursery, parked
between turns, and a worker's turn is a trio task switch. With ``"coroutines"``
(`ndisemu.drivers.coroutines`) the dispatcher steps each blocked or running item's coroutine
itself (``coro.send``): the same ready lists, the same seeded picks, the same DPC order — only
no trio switch per turn, about a third of the cost of a 10,000-adapter storm. For a run with no
outside input (a free-running storm) both produce the same event trace, hash for hash; tests
check it across schedules, executors and fault plans, and that error paths (a raising item or
DPC, a Ctrl-C) end the same way. Where they may differ: input from other trio tasks (`post`, an
I/O driver) gets in at any worker switch on the task driver but only every `CHECKPOINT_TURNS`
turns on the coroutine one — neither is deterministic then — and at the end of a run the
coroutine driver unwinds blocked items in worker order, the task driver in trio's cancellation
order.

Work items must block only through `Kernel.wait` (an executive wait object); awaiting any other
trio primitive inside an item would stall the baton and is reported as a bugcheck.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from .drivers.base import CHECKPOINT_TURNS, EXIT, WorkerDriver
from .drivers.coroutines import CoroutineDriver
from .drivers.tasks import TaskDriver
from .errors import BugCheck, ExecutiveError
from .executive.core import (
    ExecutiveCore,
    ItemState,
    QueueState,
    Resume,
    Start,
    WaitObject,
    Worker,
    WorkerExit,
    WorkItem,
)
from .executive.scheduler import SCHEDULES, make_ready_queue
from .params import ExecutiveParams, QueueSpec
from .trace import Tracer

Routine = Callable[[WorkItem], Awaitable[None]]

WORKER_MODES: Final = ("tasks", "coroutines")
# compiled, a bare `next` is a lookup in the builtins module at each call
_next: Final[Callable[[Any], Any]] = next

__all__ = ["CHECKPOINT_TURNS", "SCHEDULES", "WORKER_MODES", "Kernel", "KernelStats", "Routine",
           "Timer"]


@dataclass(eq=False)
class Timer:
    when: float
    seq: int
    fn: Callable[..., None]
    args: tuple[Any, ...]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class KernelStats:
    dpcs: int = 0
    thread_turns: int = 0
    sleeps: int = 0
    external: int = 0
    inline: int = 0  # external callbacks run by the I/O task itself (`interrupt`)
    inline_wakes: int = 0  # ...after which the dispatcher still had to be woken
    extra: dict[str, int] = field(default_factory=dict)


class Kernel:
    """One emulated machine's executive. Start it with ``await nursery.start(kernel.run)``."""

    def __init__(
        self,
        params: ExecutiveParams | None = None,
        *,
        seed: int = 0,
        schedule: str = "random",
        tracer: Tracer | None = None,
        name: str = "host",
        pct_depth: int = 3,
        pct_steps: int = 5000,
        free_running: bool = False,
        workers: str = "tasks",
    ) -> None:
        if schedule not in SCHEDULES:
            raise ExecutiveError(f"schedule must be one of {', '.join(SCHEDULES)}, "
                                 f"not {schedule!r}")
        if workers not in WORKER_MODES:
            raise ExecutiveError(f"workers must be one of {', '.join(WORKER_MODES)}, "
                                 f"not {workers!r}")
        self.workers = workers
        self._sleep_deadline = math.inf  # when the sleeping dispatcher wakes on its own
        self.name = name
        self.params = params or ExecutiveParams()
        self.seed = seed
        self.schedule = schedule
        #: the ready lists and the schedule's seeded picks (sans-IO, `executive.scheduler`)
        self.ready = make_ready_queue(schedule, seed, pct_depth=pct_depth, pct_steps=pct_steps)
        self.rng = self.ready.rng  # the schedule's generator: only the ready lists draw from it
        #: virtual seconds since the kernel started (read-only for everyone but the driver; a
        #: plain attribute rather than a property: it is read tens of times per adapter)
        self.now = 0.0
        self.tracer = tracer or Tracer()
        self.tracer.bind_clock(lambda: self.now)
        trace = self.tracer.emit if self.tracer.enabled else None
        self.core = ExecutiveCore(self.params, trace=trace)
        self.stats = KernelStats()
        self._epoch = 0.0  # trio's clock at kernel time 0 (once running)
        # trio's clock, fetched once per run: reading it through trio.current_time() is three
        # interpreted calls per received batch (bench/README.md, "Issue 18, fourth round");
        # `_clock() - _clock_base` is the kernel's time (see `_bind_clock`)
        self._clock: Callable[[], float] = trio.current_time
        self._clock_base = 0.0
        # (when, seq, timer): tuples, so that heapq compares in C
        self._timers: list[tuple[float, int, Timer]] = []
        self._timer_seq = itertools.count()
        self._dpcs: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self.pct_depth = pct_depth
        self._current: Worker | None = None  # the thread whose turn it is
        self._dispatcher: trio.lowlevel.Task | None = None  # the task running `run`
        self._nursery: trio.Nursery | None = None  # where the task driver starts worker tasks
        self._wakeup = trio.Event()
        self._sleeping = False
        self._bugcheck: BugCheck | None = None
        self._stop_requested = False
        #: True: the kernel keeps its own virtual clock and never waits on trio's — only for
        #: runs with no outside input (a storm on memory wires), set up entirely before run()
        self.free_running = free_running
        #: faults/ may set this: (queue, item name, tags) -> id of a fault that fails it
        self.alloc_hook: Callable[[str, str, dict[str, Any]], str | None] | None = None
        self._ended: set[int] = set()  # workers whose trio task has returned
        self._running = False
        self.stopped = trio.Event()
        #: how the worker threads are carried (`ndisemu.drivers`)
        self._driver: WorkerDriver = (CoroutineDriver(self) if workers == "coroutines"
                                      else TaskDriver(self))

    # -- time and DPC-level scheduling ----------------------------------------------------------

    def _sync_now(self) -> None:
        """Called from outside the emulation while the dispatcher sleeps: time has moved."""
        if self._sleeping and self._running:
            self.now = max(self.now, self._clock() - self._clock_base)

    def _bind_clock(self, clock: trio.abc.Clock) -> None:
        """Read `clock` from now on (at `run`'s start). trio's default clock reads its random
        offset plus `time.perf_counter()` (trio/_core/_run.py, `SystemClock.current_time`);
        for that one the kernel calls `time.perf_counter` itself, a C call instead of an
        interpreted method per received batch (bench/README.md, "fifth round"). Any other
        clock (a MockClock, a user's) is read through its `current_time`."""
        self._epoch = clock.current_time()
        self._clock, self._clock_base = clock.current_time, self._epoch
        cls = type(clock)
        offset = getattr(clock, "offset", None)
        if (cls.__name__ == "SystemClock" and cls.__module__.startswith("trio.")
                and isinstance(offset, float)):
            self._clock, self._clock_base = time.perf_counter, self._epoch - offset

    def trio_time(self, when: float) -> float:
        """The reading of trio's clock at which this kernel's time is `when` (once running):
        for drivers that act on the kernel's timeline from trio tasks (serve's netem windows)."""
        return self._epoch + when

    def call_at(self, when: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Run `fn(*args)` at DPC level at virtual time `when` (a KTIMER + KDPC)."""
        if self._sleeping:
            self._sync_now()
        t = Timer(when if when > self.now else self.now, _next(self._timer_seq), fn, args)
        heapq.heappush(self._timers, (t.when, t.seq, t))
        if self._sleeping:
            self._wakeup.set()
        return t

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Run `fn(*args)` at DPC level `delay` virtual seconds from now."""
        if self._sleeping:
            self._sync_now()
        now = self.now
        t = Timer(now + delay if delay > 0 else now, _next(self._timer_seq), fn, args)
        heapq.heappush(self._timers, (t.when, t.seq, t))
        if self._sleeping:
            self._wakeup.set()
        return t

    def queue_dpc(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` at DPC level at the current instant, after DPCs already queued."""
        self._dpcs.append((fn, args))
        if self._sleeping:
            self._wakeup.set()

    def post(self, fn: Callable[..., None], *args: Any) -> None:
        """From another trio task (an I/O driver): inject an interrupt-like callback."""
        self._dpcs.append((fn, args))
        self.stats.external += 1
        if self._sleeping:
            self._wakeup.set()

    def interrupt(self, fn: Callable[..., None], *args: Any) -> None:
        """From an I/O driver's task: like `post`, but when the coroutine driver's dispatcher is
        asleep, run the callback and everything it makes ready here and now — as an interrupt
        runs on whatever CPU takes it — instead of waking the dispatcher task first. One trio
        wake-up per received batch instead of two (the idle-RTT path over TAP). The
        dispatcher is woken only if the work left something for it: an earlier timer, a stop,
        a bugcheck."""
        if not self._driver.interrupt(fn, args):
            self.post(fn, *args)

    # -- executive API used by drivers -----------------------------------------------------

    def queue(self, name: str) -> QueueState:
        return self.core.queues[name]

    def add_private_queue(self, spec: QueueSpec) -> QueueState:
        """A driver's own threads (e.g. the hotfix's dedicated OID thread)."""
        return self.core.add_queue(spec, self.now)

    def create_system_thread(self, queue: str, routine: Routine, *, name: str,
                             tags: dict[str, Any] | None = None) -> WorkItem:
        """PsCreateSystemThread: run `routine` on a thread of its own (a queue created with
        ``thread_per_item=True``); the thread ends when the routine returns."""
        if queue not in self.core.queues:
            self.add_private_queue(QueueSpec(queue, 0, thread_per_item=True, priority=12))
        return self.queue_work_item(queue, routine, name=name, tags=tags)

    def create_event(self, name: str, **tags: Any) -> WaitObject:
        return WaitObject(self.core.new_id(), name, tags)

    def queue_work_item(
        self,
        queue: str,
        routine: Routine,
        *,
        name: str,
        tags: dict[str, Any] | None = None,
        signals: tuple[WaitObject, ...] = (),
    ) -> WorkItem:
        """ExQueueWorkItem. `signals` declares the wait objects this item will set."""
        if self._sleeping:
            self._sync_now()
        core = self.core
        item = core.new_item(queue, routine, name, tags, signals)
        core.insert(item, self.now)
        if core.manager_event:
            current = self._current
            if current is not None and current.priority < self.params.manager_priority:
                # The manager (priority 14) preempts a lower-priority inserter at once; from a
                # DPC (no current thread) it runs once the DPCs are done (`_step`).
                core.run_manager(self.now)
        if core.has_actions() or self._sleeping:
            self._apply_actions()
        return item

    def try_queue_work_item(
        self,
        queue: str,
        routine: Routine,
        *,
        name: str,
        tags: dict[str, Any] | None = None,
        signals: tuple[WaitObject, ...] = (),
    ) -> WorkItem | None:
        """IoAllocateWorkItem + IoQueueWorkItem: the allocation may fail (None) — Driver
        Verifier's low-resources simulation fails it on purpose (faults.md §1)."""
        hook = self.alloc_hook
        if hook is not None:
            fault = hook(queue, name, tags or {})
            if fault is not None:
                if self.tracer.enabled:
                    self.tracer.emit("exec.alloc.failed", queue=queue, item=name, fault=fault)
                return None
        return self.queue_work_item(queue, routine, name=name, tags=tags, signals=signals)

    def requeue(self, item: WorkItem, queue: str | None = None) -> None:
        """Insert an item that was removed from a queue (a rescuer's hand-over)."""
        item.state = ItemState.QUEUED
        item.worker = None
        if queue is not None:
            item.queue = queue
        self.core.insert(item, self.now)
        self._apply_actions()

    def declare_signal(self, item: WorkItem, obj: WaitObject) -> None:
        """Record that `item` must run before `obj` can be set (for the knot proof)."""
        self.core.declare_signal(item, obj)

    def declare_future_signal(self, obj: WaitObject, queue: str, when: str) -> None:
        """Record that only an item queued on `queue` once `when` happens can set `obj` (for
        the knot proof: such a wait needs a worker of `queue`, whether or not `when` comes)."""
        self.core.declare_future_signal(obj, queue, when)

    def clear_future_signals(self, obj: WaitObject) -> None:
        self.core.clear_future_signals(obj)

    def remove_work_item(self, item: WorkItem) -> bool:
        return self.core.remove(item, self.now)

    def set_event(self, obj: WaitObject) -> None:
        """KeSetEvent: legal from DPC level and from work items."""
        self.core.signal(obj, self.now)
        if self.core.has_actions() or self._sleeping:
            self._apply_actions()

    @property
    def current_worker(self) -> Worker | None:
        return self._current

    async def preemption_point(self) -> None:
        """Inside a work item: if a thread of a higher priority is ready (one this item's
        inserts made ready), it runs first — as it would preempt this thread on NT — and this
        item continues after it. Items take no emulated time, so only the order changes."""
        w = self._current
        if w is None:
            raise ExecutiveError("Kernel.preemption_point() called outside a work item")
        if self.core.manager_event and w.priority < self.params.manager_priority:
            self.core.run_manager(self.now)
            self._apply_actions()
        top = self.ready.highest_ready()
        if top is None or top <= w.priority:
            return
        self.ready.push(w, None)  # ready again: resumed when its priority comes up
        await self._driver.block()

    async def wait(self, obj: WaitObject) -> None:
        """KeWaitForSingleObject from inside a work item: blocks the worker thread."""
        w = self._current
        if w is None:
            # A blocked item being unwound at the end of the run (its finally block waits again)
            # gets the end of the run once more, as a thread's wait would return on a shutdown:
            # the coroutine driver closes it again, the task driver re-delivers the cancellation.
            await self._driver.unwinding_wait()
            raise ExecutiveError("Kernel.wait() called outside a work item")
        if not self.core.begin_wait(w, obj, self.now):
            return
        if self.core.has_actions() or self._sleeping:
            self._apply_actions()
        await self._driver.block()

    # -- the dispatcher ---------------------------------------------------------------------------

    def stop(self) -> None:
        """End the run at this exact point of the event sequence: nothing further is
        dispatched, and `run` returns (cancelling the worker tasks). Deterministic, unlike
        cancelling from another trio task, whose turn trio orders at random."""
        self._stop_requested = True
        if self._sleeping:
            self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[Kernel] = trio.TASK_STATUS_IGNORED) -> None:
        if self._running:
            raise ExecutiveError("kernel already running")
        self._running = True
        self._dispatcher = trio.lowlevel.current_task()
        self._bind_clock(trio.lowlevel.current_clock())
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started(self)
                await self._loop()
                # stop(): end the suspended items (coroutine driver; an item that fails while
                # unwinding is a bugcheck, as on the task driver) and the parked worker tasks.
                self._driver.close()
                if self._bugcheck is not None:
                    raise self._bugcheck
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            bug = self._bugcheck
            # A Ctrl-C outranks a bugcheck that the unwinding after it provoked.
            if bug is not None and group.subgroup(KeyboardInterrupt) is None:
                raise bug from bug.__cause__  # the group stays attached as __context__
            raise
        finally:
            try:
                self._driver.close()  # a run that ended by an exception: never raises
            finally:
                self._running = False
                self.stopped.set()

    async def _loop(self) -> None:
        core = self.core
        timers = self._timers
        stats = self.stats
        while not self._stop_requested:
            if timers and timers[0][0] <= self.now:
                self._fire_due_timers()
            if self.now >= core.next_deadline():
                core.advance(self.now)
            if core.has_actions() or self._sleeping:
                self._apply_actions()
            nxt = (self._step() if self._dpcs or self.ready.count or core.manager_event
                   else None)
            if self._bugcheck is not None:
                raise self._bugcheck
            if nxt is not None:
                # The baton goes to a worker; whoever holds it runs this same step loop and
                # passes it on until nothing is ready (raising the bugcheck, if one happened).
                await self._driver.run_ready(*nxt)
                continue
            if self._stop_requested:
                return
            deadline = core.next_deadline()  # the balance manager's next pass
            if timers and timers[0][0] < deadline:
                deadline = timers[0][0]
            if self.free_running and deadline != math.inf:
                # Pure virtual time: nothing outside can post, so jump straight to the deadline
                # (with a checkpoint now and then: other tasks run, cancellation is delivered).
                stats.sleeps += 1
                if deadline > self.now:
                    self.now = deadline
                if stats.sleeps % CHECKPOINT_TURNS == 0:
                    await trio.lowlevel.checkpoint()
                continue
            await self._sleep_until(deadline)

    async def _sleep_until(self, deadline: float) -> None:
        self.stats.sleeps += 1
        self._sleep_deadline = deadline
        self._sleeping = True
        try:
            if math.isinf(deadline):
                await self._wakeup.wait()
            else:
                with trio.move_on_at(self._epoch + deadline) as scope:
                    await self._wakeup.wait()
                if scope.cancelled_caught:
                    # Emulated time moves from event to event: land exactly on the deadline,
                    # whatever wall time the emulation's own computing took (with a paced
                    # clock that time would otherwise leak into the model).
                    self.now = max(self.now, deadline)
                    return
            # Woken by an external event (an I/O driver's post): take the clock's time.
            self.now = max(self.now, self._clock() - self._clock_base)
        finally:
            self._sleeping = False
            if self._wakeup.is_set():
                self._wakeup = trio.Event()

    def _fire_due_timers(self) -> None:
        timers = self._timers
        now = self.now
        while timers and timers[0][0] <= now:
            t = heapq.heappop(timers)[2]
            if not t.cancelled:
                self._dpcs.append((t.fn, t.args))

    def _apply_actions(self) -> None:
        if self._sleeping:  # called from outside the emulation (setup code, tests)
            self._wakeup.set()
        core = self.core
        if not core.has_actions():
            return
        actions = core.take_actions()
        ready = self.ready
        for action in actions:
            worker = action.worker
            cls = type(action)
            if cls is Start:
                cmd: Any = action.item  # type: ignore[union-attr]
            elif cls is Resume:
                cmd = None
            elif cls is WorkerExit and worker.task is not None:
                cmd = EXIT
            else:
                continue
            ready.push(worker, cmd)

    def _step(self) -> tuple[Worker, Any] | None:
        """The dispatcher's inner loop, run by whichever task holds the baton: DPCs first, in
        order; then the next ready worker (returned), or None when nothing is ready."""
        dpcs = self._dpcs
        timers = self._timers
        core = self.core
        while dpcs or self.ready.count or core.manager_event:
            if self._stop_requested or self._bugcheck is not None:
                return None
            if dpcs:
                fn, args = dpcs.popleft()
                self.stats.dpcs += 1
                try:
                    fn(*args)
                except Exception as exc:
                    # A DPC has no thread to fail in: the kernel bugchecks (never an exception
                    # delivered into whichever item's turn happened to run this step).
                    # (a compiled closure has no __qualname__; its type names it, its repr
                    # would carry an address and differ from run to run)
                    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
                    bug = self._bugcheck = BugCheck(
                        f"DPC {name} raised {type(exc).__name__}: {exc}")
                    bug.__cause__ = exc
                    return None
                if core.has_actions() or self._sleeping:
                    self._apply_actions()
            elif core.manager_event:
                # The DPCs are done: the balance manager (priority 14) runs before any worker
                # thread of the system queues, once for all the inserts that signalled it.
                core.run_manager(self.now)
                if core.has_actions() or self._sleeping:
                    self._apply_actions()
            else:
                worker, cmd = self.ready.pick()
                if worker.id in self._ended or (worker.task is None and cmd is EXIT):
                    continue
                return worker, cmd
            if timers and timers[0][0] <= self.now:
                self._fire_due_timers()
        return None

    # -- observation -------------------------------------------------------------------------

    def suspended_items(self) -> int:
        """Work items still suspended in the coroutine driver (none once the kernel stopped)."""
        return self._driver.suspended()

    def snapshot(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "queues": {name: q.snapshot() for name, q in self.core.queues.items()},
        }
