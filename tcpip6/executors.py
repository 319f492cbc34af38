"""How tcpip6 submits its bind-time OIDs: pluggable executors.

Every executor sees the same miniports and the same completion path: NDIS calls tcpip6's
ProtocolRequestComplete at DPC level, and tcpip6 learns of the completion through its own
follow-up work item on the completion queue (critical by default; nt-model §6 candidate 2), or —
with ``completion_via="ndis"`` — NDIS itself calls ProtocolRequestComplete from a work item, or —
with ``completion_via="miniport"`` — the miniport completes from its own work item (or at DPC)
and tcpip6 sets the event right in ProtocolRequestComplete.
What differs is where the submission runs and whether a thread is held while the request pends.

The contract an executor implements is `OidExecutor`'s docstring (and docs/executors.md); every
executor is constructed as ``cls(ctx)`` with one `ExecutorContext`. Names and ``MODULE:ATTR``
specs resolve to classes in `tcpip6.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ExecutorContext:
    """What an executor is constructed with: ``cls(ctx)``, built-in or not. The host fills it
    from its model parameters (`tcpip6lab.host.ModelParams`); an executor reads the fields it
    needs and ignores the rest. The kernel and binder come later, through `OidExecutor.attach`."""

    #: threads of the dedicated executor's private queue (``--dedicated-threads``)
    dedicated_threads: int = 1
    #: the rescuer's first mayday check after a completion is queued, virtual seconds
    mayday_initial: float = 0.010
    #: the rescuer's later mayday checks, virtual seconds
    mayday_interval: float = 0.100


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
class OidExecutor:
    """Where and how tcpip6 submits its OID requests. Subclass this (or one of the executors
    below) to try another design; the classes stay subclassable from plain Python when this
    module is compiled (the wheel's mypyc build). docs/executors.md has a worked example.

    A plain class, not an `abc.ABC`: compiled with mypyc, ABC subclasses share one
    `issubclass` cache and answer wrongly for one pair of classes after another pair was asked
    (``issubclass(DedicatedExecutor, RescuerExecutor)`` then ``issubclass(DedicatedExecutor,
    OidExecutor)``). `submit` and `completed` raise NotImplementedError here; the registry
    refuses a class that implements neither.

    Construction: ``cls(ctx)`` with one `ExecutorContext` (call ``super().__init__(ctx)``);
    then the binder calls `attach` once, before any OID, which sets `binder` and `kernel`.

    `submit(sub)` starts one request of one bind (``sub.request`` on ``sub.state.binding``). It
    runs wherever tcpip6 happens to be (a bind handler, a completion item, a DPC): it must not
    block. Blocking is allowed only inside a work item or system thread the executor queues,
    and only through ``await self.kernel.wait(obj)`` on an executive wait object (an event from
    ``kernel.create_event``) — never a trio or OS primitive, and never at DPC level. The item
    calls ``self.binder.ndis.request(sub.state.binding, sub.request)``; a status other than
    PENDING is the result at once.

    Completion of a pended request: the miniport completes it, NDIS calls tcpip6's
    ProtocolRequestComplete at DPC level, and tcpip6 queues its follow-up item through
    `queue_completion` on the completion queue (critical by default); that item calls
    `completed(sub)`. With ``completion_via="ndis"`` NDIS calls ProtocolRequestComplete from its
    own work item and `completed` runs there (no `queue_completion`); with
    ``completion_via="miniport"`` it runs wherever the miniport completes (its work item, or
    DPC level). `completed` must not block
    either: it sets the event a blocked submission waits on, or resumes the bind itself.

    Exactly once per submission, when tcpip6 is to learn the result, the executor calls
    ``sub.on_done(sub, status)`` (``sub.request.status`` after a pended completion); that
    submits the bind's next OID or ends the bind. If a work item cannot be allocated
    (``kernel.try_queue_work_item`` returns None), report ``NdisStatus.RESOURCES``.

    Hang detection: the detector proves a knot only from what the executive records. A
    submission that will wait on an event declares which items set it — put the event in
    ``sub.event`` (the default `queue_completion` declares it on tcpip6's follow-up item) and in
    ``sub.request.tags["signals"]`` (NDIS declares it on its dispatch and completion items).
    An undeclared wait can still hang, but is reported as a stall, never proven a deadlock.
    """

    name: ClassVar[str]
    #: True when a thread is held blocked while a request pends.
    blocking: ClassVar[bool]

    def __init__(self, ctx: ExecutorContext | None = None) -> None:
        self.ctx = ctx if ctx is not None else ExecutorContext()
        self.binder: Tcpip6Binder | None = None
        self.submitted = 0
        self.completions_run = 0

    #: the binder's kernel, set by `attach` (an attribute: it is read on every OID)
    kernel: Kernel

    def attach(self, binder: Tcpip6Binder) -> None:
        self.binder = binder
        self.kernel = binder.kernel

    def submit(self, sub: Submission) -> None:
        """Start `sub`; call ``sub.on_done(sub, status)`` when tcpip6 knows the result."""
        raise NotImplementedError(f"{type(self).__name__} does not implement submit")

    def completed(self, sub: Submission) -> None:
        """Runs where tcpip6 learns of a pended request's completion (its follow-up item)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement completed")

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

    def __init__(self, ctx: ExecutorContext | None = None, *, threads: int | None = None) -> None:
        super().__init__(ctx)
        if threads is None:
            threads = self.ctx.dedicated_threads
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

    def __init__(self, ctx: ExecutorContext | None = None, *,
                 mayday_initial: float | None = None,
                 mayday_interval: float | None = None) -> None:
        super().__init__(ctx)
        if mayday_initial is None:
            mayday_initial = self.ctx.mayday_initial
        if mayday_interval is None:
            mayday_interval = self.ctx.mayday_interval
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
