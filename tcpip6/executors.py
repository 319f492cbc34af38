"""How tcpip6 submits its bind-time OIDs: pluggable executors.

Every executor sees the same miniports and the same completion path: NDIS calls tcpip6's
ProtocolRequestComplete at DPC level, and tcpip6 learns of the completion through its own
follow-up work item on the completion queue (critical by default; nt-model §6 candidate 2), or —
with ``completion_via="ndis"`` — NDIS itself calls ProtocolRequestComplete from a work item.
What differs is where the submission runs and whether a thread is held while the request pends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from mypy_extensions import mypyc_attr

from ndisemu.constants import NdisStatus, oid_name
from ndisemu.executive.core import ItemState, WaitObject, WorkItem
from ndisemu.miniport import NdisRequest
from ndisemu.params import CRITICAL, QueueSpec

from .errors import ConfigError

if TYPE_CHECKING:
    from ndisemu.kernel import Kernel, Timer

    from .binder import Tcpip6Binder, Tcpip6Binding


class Submission:
    """One OID request of one bind, from submission to tcpip6 learning its result."""

    # A plain slotted class, not a dataclass: `state`'s type is only imported for type checking
    # (a cycle with binder), and a compiled dataclass would look it up at import time.
    __slots__ = ("completion_item", "event", "on_done", "request", "state", "tags")

    def __init__(self, state: Tcpip6Binding, request: NdisRequest,
                 on_done: Callable[[Submission, NdisStatus], None]) -> None:
        self.state = state
        self.request = request
        self.on_done = on_done
        self.event: WaitObject | None = None
        self.completion_item: WorkItem | None = None
        self.tags: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (f"Submission(adapter={self.state.adapter!r}, oid={oid_name(self.request.oid)}, "
                f"status={self.request.status!r})")


@mypyc_attr(allow_interpreted_subclasses=True)
class OidExecutor(ABC):
    """Subclass this (or one of the executors below) to try another design; the classes stay
    subclassable from plain Python when this module is compiled (in a wheel: setup.py)."""

    name: ClassVar[str]
    #: True when a thread is held blocked while a request pends.
    blocking: ClassVar[bool]

    def __init__(self) -> None:
        self.binder: Tcpip6Binder | None = None
        self.submitted = 0
        self.completions_run = 0

    #: the binder's kernel, set by `attach` (an attribute: it is read on every OID)
    kernel: Kernel

    def attach(self, binder: Tcpip6Binder) -> None:
        self.binder = binder
        self.kernel = binder.kernel

    @abstractmethod
    def submit(self, sub: Submission) -> None:
        """Start `sub`; call ``sub.on_done(sub, status)`` when tcpip6 knows the result."""

    @abstractmethod
    def completed(self, sub: Submission) -> None:
        """Runs where tcpip6 learns of a pended request's completion (its follow-up item)."""

    def queue_completion(self, sub: Submission, routine: Callable[[WorkItem], Any]) -> WorkItem:
        """Queue tcpip6's follow-up item for a completion (overridden by the rescuer)."""
        assert self.binder is not None
        return self.kernel.queue_work_item(
            self.binder.completion_queue, routine, name="tcpip6.oid_complete",
            tags=dict(sub.tags), signals=(sub.event,) if sub.event is not None else ())

    def _tags(self, sub: Submission) -> dict[str, Any]:
        sub.tags = {"adapter": sub.state.adapter, "oid": oid_name(sub.request.oid)}
        return sub.tags


@mypyc_attr(allow_interpreted_subclasses=True)
class BlockingExecutor(OidExecutor):
    """A work item issues NdisRequest and, on PENDING, blocks its thread on an event until
    tcpip6's completion handling sets it (the NDISCall pattern, R tcpip/datalink/lan.c:41-90)."""

    blocking = True
    queue: str = CRITICAL

    def submit(self, sub: Submission) -> None:
        self.submitted += 1
        k = self.kernel
        tags = self._tags(sub)
        # Created before the request so that a completion can never be lost.
        sub.event = k.create_event("tcpip6.oid_done", **tags)
        sub.event.tags["request"] = sub.request  # lets a detector name a fault behind it
        sub.request.tags["signals"] = (sub.event,)
        if k.try_queue_work_item(self.queue, self._routine(sub), name="tcpip6.oid_submit",
                                 tags=tags) is None:
            sub.on_done(sub, NdisStatus.RESOURCES)  # no work item: the bind fails cleanly

    def _routine(self, sub: Submission) -> Callable[[WorkItem], Any]:
        async def oid_submit(_item: WorkItem) -> None:
            assert self.binder is not None and sub.event is not None
            status = self.binder.ndis.request(sub.state.binding, sub.request)
            if status is NdisStatus.PENDING:
                await self.kernel.wait(sub.event)
                status = sub.request.status
            sub.on_done(sub, status)

        return oid_submit

    def completed(self, sub: Submission) -> None:
        self.completions_run += 1
        assert sub.event is not None
        self.kernel.set_event(sub.event)


@mypyc_attr(allow_interpreted_subclasses=True)
class CriticalExecutor(BlockingExecutor):
    """The unpatched tcpip6.sys (KB968597): each OID submission is a work item on the shared
    critical queue that blocks its worker until tcpip6 learns of the completion.

    Why it deadlocks: the completion is itself a work item on the same FIFO queue, behind the
    submissions of every other adapter in the burst. Each adapter holds one blocked critical
    worker; once blocked submissions (plus other components' blocked items) equal the queue's
    maximum thread count (static + additional + 16 dynamic), no thread is left to run any
    completion, and none can be created. The knot is permanent."""

    name = "critical"
    queue = CRITICAL


@mypyc_attr(allow_interpreted_subclasses=True)
class DedicatedExecutor(BlockingExecutor):
    """The hotfix (tcpip6.sys 5.2.3790.4480): submissions run on tcpip6's own worker thread(s),
    never on the shared pool. The dedicated thread still blocks while a request pends, but the
    completion runs on the critical queue, where no tcpip6 item ever blocks — so a critical
    thread is always eventually free to run it. Binds are serialised on the dedicated threads
    (slower storms, never a deadlock)."""

    name = "dedicated"

    def __init__(self, threads: int = 1) -> None:
        super().__init__()
        if threads < 1:
            raise ConfigError(f"dedicated executor needs >= 1 thread (got {threads})")
        self.threads = threads
        self.queue = "tcpip6.oid"

    def attach(self, binder: Tcpip6Binder) -> None:
        super().attach(binder)
        binder.kernel.add_private_queue(QueueSpec(self.queue, self.threads, priority=13))


@mypyc_attr(allow_interpreted_subclasses=True)
class AsyncExecutor(OidExecutor):
    """No thread is held while a request pends: the submission item issues NdisRequest and
    returns; tcpip6's completion item resumes the bind (and submits the next OID). Critical
    items never block, so the queue cannot knot however many adapters arrive."""

    name = "async"
    blocking = False

    def submit(self, sub: Submission) -> None:
        self.submitted += 1
        tags = self._tags(sub)

        async def oid_submit(_item: WorkItem) -> None:
            assert self.binder is not None
            status = self.binder.ndis.request(sub.state.binding, sub.request)
            if status is not NdisStatus.PENDING:
                sub.on_done(sub, status)

        if self.kernel.try_queue_work_item(CRITICAL, oid_submit, name="tcpip6.oid_submit",
                                           tags=tags) is None:
            sub.on_done(sub, NdisStatus.RESOURCES)  # no work item: the bind fails cleanly

    def completed(self, sub: Submission) -> None:
        self.completions_run += 1
        sub.on_done(sub, sub.request.status)


@mypyc_attr(allow_interpreted_subclasses=True)
class RescuerExecutor(BlockingExecutor):
    """Submissions block on the shared critical pool as in the unpatched driver, but completions
    go to tcpip6's own completion queue, modelled on Linux's WQ_MEM_RECLAIM workqueues
    (Documentation/core-api/workqueue.rst; faults.md §4): its items normally run on the shared
    pool, and a reserved rescuer thread runs them itself when that queue has made no progress
    for a mayday interval (10 ms first, then every 100 ms — workqueue.c MAYDAY_INITIAL_TIMEOUT,
    MAYDAY_INTERVAL).

    Why it cannot deadlock: the rescuer thread never runs a blocking item, so it is always free
    to run completions; each completion unblocks a submission, which frees a shared worker."""

    name = "rescuer"
    queue = CRITICAL

    def __init__(self, mayday_initial: float = 0.010, mayday_interval: float = 0.100) -> None:
        super().__init__()
        if mayday_initial <= 0 or mayday_interval <= 0:
            raise ConfigError("mayday intervals must be > 0")
        self.mayday_initial = mayday_initial
        self.mayday_interval = mayday_interval
        self.rescue_queue = "tcpip6.rescuer"
        self._watched: list[WorkItem] = []
        self._timer: Timer | None = None
        self._progress = 0
        self._progress_at_last_check = 0
        self.maydays = 0
        self.rescued = 0

    def attach(self, binder: Tcpip6Binder) -> None:
        super().attach(binder)
        binder.kernel.add_private_queue(QueueSpec(self.rescue_queue, 1, priority=13))

    def queue_completion(self, sub: Submission, routine: Callable[[WorkItem], Any]) -> WorkItem:
        async def counted(item: WorkItem) -> None:
            self._progress += 1
            await routine(item)

        item = super().queue_completion(sub, counted)
        item.rescuer = self.rescue_queue  # the detector must know this item can move
        self._watched.append(item)
        if self._timer is None:
            self._progress_at_last_check = self._progress
            self._timer = self.kernel.call_later(self.mayday_initial, self._mayday)
        return item

    def _mayday(self) -> None:
        self._timer = None
        self._watched = [i for i in self._watched if i.state is ItemState.QUEUED]
        if not self._watched:
            return
        if self._progress == self._progress_at_last_check:
            # No completion started for a whole interval: the rescuer takes them all.
            self.maydays += 1
            if self.kernel.tracer.enabled:
                self.kernel.tracer.emit("tcpip6.rescuer.mayday", pending=len(self._watched))
            for item in self._watched:
                if self.kernel.remove_work_item(item):
                    self.rescued += 1
                    self.kernel.requeue(item, self.rescue_queue)
            self._watched = []
            return
        self._progress_at_last_check = self._progress
        self._timer = self.kernel.call_later(self.mayday_interval, self._mayday)


EXECUTORS: dict[str, type[OidExecutor]] = {
    "critical": CriticalExecutor,
    "dedicated": DedicatedExecutor,
    "async": AsyncExecutor,
    "rescuer": RescuerExecutor,
}


def make_executor(name: str, **options: Any) -> OidExecutor:
    try:
        cls = EXECUTORS[name]
    except KeyError:
        raise ConfigError(
            f"unknown executor {name!r} (choose from {', '.join(EXECUTORS)})") from None
    return cls(**options)
