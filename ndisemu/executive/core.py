"""Sans-IO core of the NT executive work queues (ExQueueWorkItem, KQUEUE, balance manager).

Theory of operation. Each queue is a KQUEUE (FIFO list of work items) served by worker threads.
The core is a pure state machine: callers feed it events with the current virtual time (`insert`,
`begin_wait`, `signal`, `finish`, `advance`) and collect the resulting actions (`take_actions`):
`Start(worker, item)`, `Resume(worker)`, `WorkerExit(worker)`. It never reads a clock, never
sleeps and never runs a work item; the trio driver (`ndisemu.kernel`) does that.

Mechanics modelled (sources in nt-model.md, W = WRK 1.2 base/ntos):
* KQUEUE concurrency: items are handed to waiting threads only while the number of *running*
  threads (CurrentCount) is below MaximumCount (= CPUs); a thread that blocks gives up its slot
  and an idle waiter is activated if entries are queued (W ke/queueobj.c:397-418, ke/wait.c:1202,
  ke/ki.h:1821-1886). A woken thread retakes its slot even above the maximum (ki.h:3101-3109).
* Insert hands the item straight to an idle waiter when the gate allows (queueobj.c:656,710-738).
* Eager growth, critical queue only: after an insert, if the list is non-empty, CurrentCount <
  MaximumCount and fewer than max_dynamic dynamic threads exist, one thread is created
  (ExpNewThreadNecessary + the manager event, W ex/worker.c:229-283,558-565,721-771).
* Balance tick every balance_period: a queue that had entries at the last pass and dequeued
  nothing since gets one more dynamic thread, then is re-snapshotted (ExpDetectWorkerThread-
  Deadlock, W ex/worker.c:805-841). WorkItemsProcessed counts dequeues (:1150).
* Dynamic threads exit after dynamic_idle_exit seconds idle (W ex/worker.c:86,1028-1036).
* Idle waiters are taken LIFO (inferred: KeRemoveQueue waiters; the choice does not change any
  outcome here because all workers of a queue are equivalent).

Wait objects are notification events (KEVENT NotificationEvent): a wait on a signalled object
returns at once. Work items may declare the wait objects they will signal; with that record a
detector can prove a knot (every worker blocked on an object whose only signaller is queued
behind them) instead of guessing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errors import ExecutiveError
from ..params import ExecutiveParams, QueueSpec, system_queue_specs

TraceFn = Callable[..., None]


class ItemState(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    REMOVED = "removed"


class WorkerState(Enum):
    IDLE = "idle"
    RUNNING = "running"
    BLOCKED = "blocked"
    EXITED = "exited"


@dataclass(eq=False, slots=True)
class WaitObject:
    """A KEVENT-like object. `signalers` are the work items declared to signal it."""

    id: int
    name: str
    tags: dict[str, Any] = field(default_factory=dict)
    signaled: bool = False
    waiters: list[Worker] = field(default_factory=list)
    signalers: list[WorkItem] = field(default_factory=list)
    # Wakers that do not exist yet: (queue, outside event) for "an item that will be queued on
    # that queue when the event fires" (a foreign holder's completion). Such an item still needs
    # a worker of that queue, so the wait counts toward a knot there (faults/detector.py).
    # A tuple, not a list: most objects have none, and an empty tuple costs nothing.
    future_wakers: tuple[tuple[str, str], ...] = ()

    def __init__(self, id: int, name: str, tags: dict[str, Any] | None = None,
                 signaled: bool = False, waiters: list[Worker] | None = None,
                 signalers: list[WorkItem] | None = None,
                 future_wakers: tuple[tuple[str, str], ...] = ()) -> None:
        # Written out (not the dataclass's): compiled, it is native code, where the generated
        # one is interpreted Python. tests/ndisemu/test_native.py checks it against the fields
        # (`test_hand_written_inits_match_their_fields`).
        self.id = id
        self.name = name
        self.tags = {} if tags is None else tags
        self.signaled = signaled
        self.waiters = [] if waiters is None else waiters
        self.signalers = [] if signalers is None else signalers
        self.future_wakers = future_wakers

    def __repr__(self) -> str:
        return f"<WaitObject {self.name}#{self.id}{' set' if self.signaled else ''}>"

    @property
    def label(self) -> str:
        return f"{self.name}#{self.id}"


@dataclass(eq=False, slots=True)
class WorkItem:
    """A WORK_QUEUE_ITEM: `routine` is opaque to the core (the driver runs it)."""

    id: int
    name: str
    queue: str
    routine: Any
    tags: dict[str, Any] = field(default_factory=dict)
    signals: tuple[WaitObject, ...] = ()
    # A queue whose reserved thread may take this item over while it waits (a rescuer): such
    # an item is never stuck for good behind a full queue.
    rescuer: str | None = None
    state: ItemState = ItemState.QUEUED
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    worker: Worker | None = None

    def __init__(self, id: int, name: str, queue: str, routine: Any,
                 tags: dict[str, Any] | None = None, signals: tuple[WaitObject, ...] = (),
                 rescuer: str | None = None, state: ItemState = ItemState.QUEUED,
                 queued_at: float = 0.0, started_at: float | None = None,
                 finished_at: float | None = None, worker: Worker | None = None) -> None:
        # one per work item: native when compiled (see WaitObject.__init__)
        self.id = id
        self.name = name
        self.queue = queue
        self.routine = routine
        self.tags = {} if tags is None else tags
        self.signals = signals
        self.rescuer = rescuer
        self.state = state
        self.queued_at = queued_at
        self.started_at = started_at
        self.finished_at = finished_at
        self.worker = worker

    def __repr__(self) -> str:
        return f"<WorkItem {self.label} {self.state.value}>"

    @property
    def label(self) -> str:
        return f"{self.name}#{self.id}"


@dataclass(eq=False, slots=True)
class Worker:
    id: int
    queue: str
    index: int
    dynamic: bool
    created_at: float
    state: WorkerState = WorkerState.IDLE
    item: WorkItem | None = None
    waiting_on: WaitObject | None = None
    idle_since: float = 0.0
    blocked_since: float | None = None
    priority: int = 13
    task: Any = None  # owned by the driver (its trio task)
    in_kernel_wait: bool = False  # owned by the driver: parked in an executive wait

    def __init__(self, id: int, queue: str, index: int, dynamic: bool, created_at: float,
                 state: WorkerState = WorkerState.IDLE, item: WorkItem | None = None,
                 waiting_on: WaitObject | None = None, idle_since: float = 0.0,
                 blocked_since: float | None = None, priority: int = 13, task: Any = None,
                 in_kernel_wait: bool = False) -> None:
        # native when compiled (see WaitObject.__init__)
        self.id = id
        self.queue = queue
        self.index = index
        self.dynamic = dynamic
        self.created_at = created_at
        self.state = state
        self.item = item
        self.waiting_on = waiting_on
        self.idle_since = idle_since
        self.blocked_since = blocked_since
        self.priority = priority
        self.task = task
        self.in_kernel_wait = in_kernel_wait

    @property
    def name(self) -> str:
        return f"{self.queue}#{self.index}"

    def __repr__(self) -> str:
        return f"<Worker {self.name} {self.state.value}>"


# Actions are slotted, not frozen: a storm makes one per item start and per wake-up, and a
# frozen dataclass costs three times as much to build; their `__init__`s are written out, so
# that compiled they are native (see WaitObject.__init__).
@dataclass(slots=True)
class Start:
    worker: Worker
    item: WorkItem

    def __init__(self, worker: Worker, item: WorkItem) -> None:
        self.worker = worker
        self.item = item


@dataclass(slots=True)
class Resume:
    worker: Worker

    def __init__(self, worker: Worker) -> None:
        self.worker = worker


@dataclass(slots=True)
class WorkerExit:
    worker: Worker

    def __init__(self, worker: Worker) -> None:
        self.worker = worker


Action = Start | Resume | WorkerExit


class WorkerSet:
    """A queue's threads in creation order, with O(1) removal (a burst of 10,000 bind
    threads that each exit would make a list's removal quadratic)."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[int, Worker] = {}

    def append(self, w: Worker) -> None:
        self._by_id[w.id] = w

    def remove(self, w: Worker) -> None:
        del self._by_id[w.id]

    def __contains__(self, w: object) -> bool:
        return isinstance(w, Worker) and self._by_id.get(w.id) is w

    def __iter__(self) -> Iterator[Worker]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __bool__(self) -> bool:
        return bool(self._by_id)


@dataclass(eq=False)
class QueueState:
    spec: QueueSpec
    concurrency: int
    pending: deque[WorkItem] = field(default_factory=deque)
    workers: WorkerSet = field(default_factory=WorkerSet)
    idle: list[Worker] = field(default_factory=list)
    running: int = 0  # KQUEUE CurrentCount
    dynamic: int = 0
    dynamic_created: int = 0
    peak_dynamic: int = 0
    next_index: int = 0
    inserted: int = 0
    processed: int = 0  # WorkItemsProcessed: counted at dequeue (W ex/worker.c:1150)
    completed: int = 0
    depth_last_pass: int = 0
    processed_last_pass: int = 0
    last_dequeue_at: float | None = None
    nonempty_since: float | None = None  # when the list last went from empty to non-empty
    cap_reached_at: float | None = None  # when the dynamic threads first reached max_dynamic
    # The spec's settings that each insert and completion reads, copied as native fields: the
    # spec is a frozen interpreted dataclass, and each read of it is a generic attribute lookup.
    thread_per_item: bool = field(init=False)
    eager_growth: bool = field(init=False)
    max_dynamic: int = field(init=False)

    def __post_init__(self) -> None:
        self.thread_per_item = self.spec.thread_per_item
        self.eager_growth = self.spec.eager_growth
        self.max_dynamic = self.spec.max_dynamic

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def blocked(self) -> int:
        return sum(1 for w in self.workers if w.state is WorkerState.BLOCKED)

    @property
    def at_max_threads(self) -> bool:
        return self.dynamic >= self.max_dynamic

    def snapshot(self) -> dict[str, Any]:
        return {
            "queue": self.name,
            "static": self.spec.static_threads,
            "dynamic": self.dynamic,
            "dynamic_created": self.dynamic_created,
            "peak_dynamic": self.peak_dynamic,
            "max_dynamic": self.spec.max_dynamic,
            "pending": len(self.pending),
            "running": self.running,
            "blocked": self.blocked,
            "idle": len(self.idle),
            "inserted": self.inserted,
            "started": self.processed,
            "completed": self.completed,
            "workers": [
                {
                    "worker": w.name,
                    "dynamic": w.dynamic,
                    "state": w.state.value,
                    "item": w.item.label if w.item else None,
                    "waits_on": w.waiting_on.label if w.waiting_on else None,
                }
                for w in self.workers
            ],
        }


class ExecutiveCore:
    """Pure state of all work queues. Not thread-safe; no I/O; time is passed in."""

    def __init__(
        self,
        params: ExecutiveParams | None = None,
        *,
        now: float = 0.0,
        trace: TraceFn | None = None,
        system_queues: bool = True,
    ) -> None:
        self.params = params or ExecutiveParams()
        self.queues: dict[str, QueueState] = {}
        self._actions: list[Action] = []
        self._trace = trace
        self._ids = 0
        self._balanced: list[QueueState] = []
        self._next_tick = now + self.params.balance_period
        self.tick_listeners: list[Callable[[float], None]] = []
        self.ticks = 0
        #: ExpThreadSetManagerEvent (a synchronization event): set by an insert that needs a
        #: thread, cleared by the manager's wake (`run_manager`)
        self.manager_event = False
        self.manager_wakes = 0
        self._inline_growth = self.params.insert_growth == "inline"
        if system_queues:
            for spec in system_queue_specs(self.params):
                self.add_queue(spec, now)

    # -- construction -----------------------------------------------------------------------

    def new_id(self) -> int:
        """The next object id (items, workers and wait objects share one sequence)."""
        self._ids = i = self._ids + 1
        return i

    def add_queue(self, spec: QueueSpec, now: float) -> QueueState:
        if spec.name in self.queues:
            raise ExecutiveError(f"queue {spec.name!r} exists")
        concurrency = spec.concurrency or self.params.cpus
        if spec.thread_per_item:
            concurrency = 1 << 30
        q = QueueState(spec, concurrency)
        self.queues[spec.name] = q
        if spec.balanced:
            self._balanced.append(q)
        for _ in range(spec.static_threads):
            self._create_worker(q, dynamic=False, now=now)
        if q.at_max_threads:
            q.cap_reached_at = now  # no dynamic threads allowed: at its cap from the start
        return q

    def new_wait_object(self, name: str, tags: dict[str, Any] | None = None) -> WaitObject:
        return WaitObject(self.new_id(), name, tags or {})

    def new_item(
        self,
        queue: str,
        routine: Any,
        name: str,
        tags: dict[str, Any] | None = None,
        signals: tuple[WaitObject, ...] = (),
    ) -> WorkItem:
        if queue not in self.queues:
            raise ExecutiveError(f"no queue {queue!r}")
        return WorkItem(self.new_id(), name, queue, routine, tags or {}, signals)

    def _create_worker(self, q: QueueState, *, dynamic: bool, now: float) -> Worker:
        w = Worker(self.new_id(), q.name, q.next_index, dynamic, now, idle_since=now,
                   priority=q.spec.priority)
        q.next_index += 1
        q.workers.append(w)
        q.idle.append(w)
        if dynamic:
            q.dynamic += 1
            q.dynamic_created += 1
            q.peak_dynamic = max(q.peak_dynamic, q.dynamic)
            if q.cap_reached_at is None and q.at_max_threads:
                q.cap_reached_at = now
        if self._trace is not None:
            self._trace("exec.worker.created", queue=q.name, worker=w.name, dynamic=dynamic)
        return w

    # -- events -----------------------------------------------------------------------------

    def insert(self, item: WorkItem, now: float) -> None:
        """ExQueueWorkItem: FIFO insert, hand-off to an idle waiter, eager growth."""
        if item.state is not ItemState.QUEUED or item.worker is not None:
            raise ExecutiveError(f"{item!r} is already queued or ran (a WORK_QUEUE_ITEM is "
                                 "queued once at a time)")
        q = self.queues[item.queue]
        item.queued_at = now
        if not q.pending:
            q.nonempty_since = now
        q.pending.append(item)
        q.inserted += 1
        for obj in item.signals:
            obj.signalers.append(item)
        if self._trace is not None:
            self._trace("exec.item.queued", queue=q.name, item=item.label, depth=len(q.pending),
                        **item.tags)
        if q.thread_per_item:
            self._create_worker(q, dynamic=False, now=now)
        if q.idle and q.running < q.concurrency:
            self._dispatch(q, now)
        # ExpNewThreadNecessary on insert (critical only): list non-empty, CurrentCount <
        # MaximumCount, dynamic below the cap. W ex/worker.c:229-283,558-565.
        if q.eager_growth and self._new_thread_necessary(q):
            if self._inline_growth:
                self._create_worker(q, dynamic=True, now=now)
                self._dispatch(q, now)
            elif not self.manager_event:
                # KeSetEvent(&ExpThreadSetManagerEvent): the manager creates the thread when it
                # runs (the driver runs it: at once above a PASSIVE inserter, after the DPCs).
                self.manager_event = True
                if self._trace is not None:
                    self._trace("exec.manager.signalled", queue=q.name)

    @staticmethod
    def _new_thread_necessary(q: QueueState) -> bool:
        return bool(q.pending) and q.running < q.concurrency and q.dynamic < q.max_dynamic

    def run_manager(self, now: float) -> bool:
        """The balance manager wakes on its event: ExpCheckDynamicThreadCount creates one thread
        for each queue that still needs one (only the critical queue makes threads as
        necessary). Returns whether the event was set."""
        if not self.manager_event:
            return False
        self.manager_event = False
        self.manager_wakes += 1
        for q in self._balanced:
            if q.eager_growth and self._new_thread_necessary(q):
                self._create_worker(q, dynamic=True, now=now)
                if self._trace is not None:
                    self._trace("exec.manager.grow", queue=q.name, dynamic=q.dynamic)
                self._dispatch(q, now)
        return True

    def declare_signal(self, item: WorkItem, obj: WaitObject) -> None:
        """Record, after the fact, that `item` must run before `obj` can be set."""
        if item not in obj.signalers and not obj.signaled:
            obj.signalers.append(item)

    def declare_future_signal(self, obj: WaitObject, queue: str, when: str) -> None:
        """Record that `obj` will be set only by an item queued on `queue` once the outside
        event `when` fires. Whoever queues that item clears this (`clear_future_signals`)
        and declares the item itself through `signals`."""
        if queue not in self.queues:
            raise ExecutiveError(f"no queue {queue!r}")
        if not obj.signaled:
            obj.future_wakers = (*obj.future_wakers, (queue, when))

    def clear_future_signals(self, obj: WaitObject) -> None:
        obj.future_wakers = ()

    def remove(self, item: WorkItem, now: float) -> bool:
        """Take a still-queued item off its queue (used by a rescuer). False if it started."""
        if item.state is not ItemState.QUEUED:
            return False
        q = self.queues[item.queue]
        try:
            q.pending.remove(item)
        except ValueError:
            return False
        item.state = ItemState.REMOVED
        if not q.pending:
            q.nonempty_since = None
        for obj in item.signals:
            if item in obj.signalers:
                obj.signalers.remove(item)
        if self._trace is not None:
            self._trace("exec.item.removed", queue=q.name, item=item.label)
        return True

    def begin_wait(self, worker: Worker, obj: WaitObject, now: float) -> bool:
        """KeWaitForSingleObject from a worker. Returns True when the worker must block."""
        if worker.state is not WorkerState.RUNNING:
            raise ExecutiveError(f"{worker!r} cannot wait: it is not running")
        if obj.signaled:
            return False
        q = self.queues[worker.queue]
        worker.state = WorkerState.BLOCKED
        worker.waiting_on = obj
        worker.blocked_since = now
        obj.waiters.append(worker)
        q.running -= 1
        if self._trace is not None:
            self._trace("exec.worker.blocked", queue=q.name, worker=worker.name,
                        item=worker.item.label if worker.item else None, waits_on=obj.label)
        # A blocking queue thread frees its concurrency slot: activate a waiter.
        if q.pending and q.idle:
            self._dispatch(q, now)
        return True

    def signal(self, obj: WaitObject, now: float) -> None:
        """KeSetEvent on a notification event: every waiter becomes ready."""
        if obj.signaled:
            return
        obj.signaled = True
        obj.signalers.clear()
        obj.future_wakers = ()
        waiters, obj.waiters = obj.waiters, []
        for w in waiters:
            q = self.queues[w.queue]
            w.state = WorkerState.RUNNING
            w.waiting_on = None
            w.blocked_since = None
            q.running += 1  # retakes its slot even above MaximumCount (W ke/ki.h:3101-3109)
            self._actions.append(Resume(w))
            if self._trace is not None:
                self._trace("exec.worker.resumed", queue=q.name, worker=w.name, obj=obj.label)

    def finish(self, worker: Worker, now: float) -> None:
        """The worker's routine returned: count it, then take the next entry or go idle."""
        item = worker.item
        if item is None or worker.state is not WorkerState.RUNNING:
            raise ExecutiveError(f"{worker!r} has no running item to finish")
        q = self.queues[worker.queue]
        item.state = ItemState.DONE
        item.finished_at = now
        q.completed += 1
        q.running -= 1
        worker.item = None
        if self._trace is not None:
            self._trace("exec.item.completed", queue=q.name, item=item.label, worker=worker.name)
        if q.thread_per_item:
            q.workers.remove(worker)
            worker.state = WorkerState.EXITED
            self._actions.append(WorkerExit(worker))
        elif q.pending and q.running < q.concurrency:
            self._start(q, worker, q.pending.popleft(), now)
        else:
            worker.state = WorkerState.IDLE
            worker.idle_since = now
            q.idle.append(worker)
            if q.pending:
                self._dispatch(q, now)

    def advance(self, now: float) -> None:
        """Run balance-manager passes and idle exits that are due at `now` (idle exits are
        looked at once per balance period: ±1 s on a 10-minute timeout)."""
        if now < self._next_tick:
            return
        while self._next_tick <= now:
            t = self._next_tick
            self._balance_pass(t)
            self._next_tick = t + self.params.balance_period
            self.ticks += 1
            for listener in list(self.tick_listeners):
                listener(t)
        limit = self.params.dynamic_idle_exit
        for q in self._balanced:
            for w in [w for w in q.idle if w.dynamic and w.idle_since + limit <= now]:
                q.idle.remove(w)
                q.workers.remove(w)
                q.dynamic -= 1
                w.state = WorkerState.EXITED
                self._actions.append(WorkerExit(w))
                if self._trace is not None:
                    self._trace("exec.worker.exited", queue=q.name, worker=w.name)

    def next_deadline(self) -> float:
        """When `advance` next has something to do: the balance manager's next pass."""
        return self._next_tick

    def has_actions(self) -> bool:
        """Whether `take_actions` would return anything (cheap: no list is made)."""
        return bool(self._actions)

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    # -- internals ----------------------------------------------------------------------------

    def _start(self, q: QueueState, worker: Worker, item: WorkItem, now: float) -> None:
        worker.state = WorkerState.RUNNING
        worker.item = item
        item.state = ItemState.RUNNING
        item.started_at = now
        item.worker = worker
        q.running += 1
        q.processed += 1
        q.last_dequeue_at = now
        if not q.pending:
            q.nonempty_since = None
        self._actions.append(Start(worker, item))
        if self._trace is not None:
            self._trace("exec.item.started", queue=q.name, item=item.label, worker=worker.name)

    def _dispatch(self, q: QueueState, now: float) -> None:
        while q.pending and q.idle and q.running < q.concurrency:
            self._start(q, q.idle.pop(), q.pending.popleft(), now)

    def _balance_pass(self, now: float) -> None:
        """ExpDetectWorkerThreadDeadlock for each balanced queue (W ex/worker.c:805-841)."""
        for q in self._balanced:
            grow = (q.depth_last_pass > 0 and q.processed == q.processed_last_pass
                    and q.dynamic < q.max_dynamic)
            if grow:
                self._create_worker(q, dynamic=True, now=now)
                if self._trace is not None:
                    self._trace("exec.balance.grow", queue=q.name, dynamic=q.dynamic)
            # The manager (priority 14) snapshots before the new thread (13) gets to dequeue,
            # so that dequeue counts as progress at the next pass: +1 thread per 2 s at most
            # on a stuck queue (W ex/worker.c:805-841).
            q.depth_last_pass = len(q.pending)
            q.processed_last_pass = q.processed
            if grow:
                self._dispatch(q, now)
