"""A user-written OID executor: the worked example of docs/executors.md.

Run it with ``tcpip6-lab storm --adapters 40 --executor tcpip6.example_executors:BoundedExecutor``
(the unpatched ``critical`` executor deadlocks on that burst; this one binds every adapter).
It is plain Python — not in the compiled module list — like any executor a user writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from ndisemu.constants import NdisStatus, oid_name
from ndisemu.executive.core import WorkItem
from ndisemu.params import CRITICAL

from .executors import ExecutorContext, OidExecutor, Submission

# --8<-- [start:bounded]


class BoundedExecutor(OidExecutor):
    """At most `limit` submissions block a shared critical worker at a time (the unpatched
    design, which keeps the bind's order of work); beyond that, a submission runs like the
    async executor: its item issues the request and returns, and tcpip6's completion item
    resumes the bind. With `limit` below the critical queue's capacity (static + additional +
    dynamic threads − other components' holders: 24 by default), a thread is always left to
    run the completions, so a burst of any size binds."""

    name = "bounded"
    blocking = True  # some submissions hold a thread while their request pends
    limit: ClassVar[int] = 8  # subclass to change it: class Bounded4(BoundedExecutor): limit = 4

    def __init__(self, ctx: ExecutorContext) -> None:
        super().__init__(ctx)
        self.blocked = 0  # submissions queued or running that will block their worker
        self.peak_blocked = 0
        self.went_async = 0

    def submit(self, sub: Submission) -> None:
        self.submitted += 1
        k = self.kernel
        sub.tags = {"adapter": sub.state.adapter, "oid": oid_name(sub.request.oid)}
        routine: Callable[[WorkItem], Any]
        if self.blocked < self.limit:
            self.blocked += 1
            self.peak_blocked = max(self.peak_blocked, self.blocked)
            # The event the worker will wait on, declared before the request can complete:
            # on the request (NDIS declares it on its items) and as sub.event (tcpip6's
            # follow-up item declares it), so the hang detector can prove a knot through it.
            sub.event = k.create_event("tcpip6.oid_done", **sub.tags)
            sub.request.tags["signals"] = (sub.event,)
            routine = self._blocking(sub)
        else:
            self.went_async += 1
            routine = self._async(sub)
        if k.try_queue_work_item(CRITICAL, routine, name="tcpip6.oid_submit",
                                 tags=sub.tags) is None:
            if sub.event is not None:
                self.blocked -= 1
            sub.on_done(sub, NdisStatus.RESOURCES)  # no work item: the bind fails cleanly

    def _blocking(self, sub: Submission) -> Callable[[WorkItem], Any]:
        async def oid_submit(_item: WorkItem) -> None:
            assert self.binder is not None and sub.event is not None
            status = self.binder.ndis.request(sub.state.binding, sub.request)
            if status is NdisStatus.PENDING:
                await self.kernel.wait(sub.event)  # blocks this critical worker
                status = sub.request.status
            self.blocked -= 1
            sub.on_done(sub, status)

        return oid_submit

    def _async(self, sub: Submission) -> Callable[[WorkItem], Any]:
        async def oid_submit(_item: WorkItem) -> None:
            assert self.binder is not None
            status = self.binder.ndis.request(sub.state.binding, sub.request)
            if status is not NdisStatus.PENDING:
                sub.on_done(sub, status)  # else `completed` reports it

        return oid_submit

    def completed(self, sub: Submission) -> None:
        """tcpip6's follow-up item (or NDIS's, with completion via ndis): never blocks."""
        self.completions_run += 1
        if sub.event is not None:
            self.kernel.set_event(sub.event)  # wakes the blocked submission: it reports
        else:
            sub.on_done(sub, sub.request.status)


# --8<-- [end:bounded]
