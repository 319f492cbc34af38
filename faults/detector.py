"""Hang detector, first version: report a deadlock only on a proven knot.

A queue is knotted when (1) it is at its maximum thread count — no thread can be added, (2)
every one of its workers is blocked on a wait object, and (3) every such object can be set only
by work items that are still queued, not running, on that same queue, none of which a rescuer
with a free thread may take over. Then nothing can ever run
those items: the knot is permanent. The proof uses only what the executive recorded — which
worker waits on which object, and which queued item declared it signals that object — never a
formula or an assumption about the caller.

The check runs at each balance-manager tick (faults.md §8, recommendation 8: the first tick
where the knot holds is the detection time). A queue that is merely slow (a worker waits on a
request still in the miniport, whose completion item is not queued yet) is not a knot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ndisemu.executive.core import ExecutiveCore, ItemState, QueueState, WorkerState

if TYPE_CHECKING:
    from ndisemu.kernel import Kernel


@dataclass(frozen=True)
class KnotLink:
    """One edge group of the wait-for graph: worker → its item → awaited object → the queued
    item that would set it."""

    queue: str
    worker: str
    item: str
    adapter: str | None
    oid: str | None
    waits_on: str  # the queued work item that alone can wake this worker
    event: str  # the wait object
    position: int  # 0-based place of `waits_on` in the queue's FIFO
    blocked_since: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Deadlock:
    queue: str
    detected_at: float  # kernel virtual time
    workers: int
    static: int
    dynamic: int
    pending: int
    chain: list[KnotLink] = field(default_factory=list)

    def as_dict(self, *, time_origin: float = 0.0) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "detected_at": round(self.detected_at - time_origin, 9),
            "workers": self.workers,
            "static": self.static,
            "dynamic": self.dynamic,
            "pending": self.pending,
            "chain": [link.as_dict() for link in self.chain],
        }

    def render(self, *, time_origin: float = 0.0, limit: int | None = None) -> str:
        lines = [
            f"DEADLOCK on the {self.queue} queue at t={self.detected_at - time_origin:.3f}s: "
            f"{self.workers}/{self.workers} workers blocked ({self.static} static + "
            f"{self.dynamic} dynamic, no thread can be added), {self.pending} items queued",
        ]
        chain = self.chain if limit is None else self.chain[:limit]
        for link in chain:
            what = ", ".join(x for x in (link.adapter, link.oid) if x)
            lines.append(f"  {link.worker:<14} runs {link.item}" + (f" [{what}]" if what else ""))
            lines.append(f"  {'':<14} waits on {link.event}, set only by {link.waits_on} "
                         f"(queued #{link.position + 1} on {link.queue})")
        if limit is not None and len(self.chain) > limit:
            lines.append(f"  ... {len(self.chain) - limit} more workers in the same knot")
        return "\n".join(lines)


def find_knot(core: ExecutiveCore, queue: str) -> list[KnotLink] | None:
    """The proven knot on `queue`, as its chain, or None."""
    q: QueueState = core.queues[queue]
    if q.spec.thread_per_item or not q.workers or not q.at_max_threads:
        return None
    position: dict[int, int] | None = None
    chain: list[KnotLink] = []
    for w in q.workers:
        obj = w.waiting_on
        if w.state is not WorkerState.BLOCKED or obj is None or w.item is None:
            return None
        live = [s for s in obj.signalers if s.state in (ItemState.QUEUED, ItemState.RUNNING)]
        if not live or any(s.state is not ItemState.QUEUED or s.queue != q.name for s in live):
            return None
        if position is None:
            position = {id(item): i for i, item in enumerate(q.pending)}
        pos = position
        waker = min(live, key=lambda s: pos.get(id(s), 1 << 30))
        for s in live:
            # An item a rescuer may take over is not stuck for good while the rescuer's queue
            # has a thread that is not blocked.
            if s.rescuer is not None and s.rescuer in core.queues and any(
                    r.state is not WorkerState.BLOCKED for r in core.queues[s.rescuer].workers):
                return None
        chain.append(KnotLink(
            queue=q.name, worker=w.name, item=w.item.label,
            adapter=w.item.tags.get("adapter"), oid=w.item.tags.get("oid"),
            waits_on=waker.label, event=obj.label, position=position.get(id(waker), -1),
            blocked_since=w.blocked_since,
        ))
    return chain


class HangDetector:
    """Checks every queue for a knot at each balance tick; remembers the first per queue."""

    def __init__(self, kernel: Kernel,
                 on_deadlock: Callable[[Deadlock], None] | None = None) -> None:
        self.kernel = kernel
        self.on_deadlock = on_deadlock
        self.deadlocks: dict[str, Deadlock] = {}
        self.checks = 0
        kernel.core.tick_listeners.append(self.check)

    def check(self, now: float) -> None:
        self.checks += 1
        core = self.kernel.core
        for name, q in core.queues.items():
            if name in self.deadlocks:
                continue
            chain = find_knot(core, name)
            if chain is None:
                continue
            dl = Deadlock(name, now, len(q.workers), q.spec.static_threads, q.dynamic,
                          len(q.pending), chain)
            self.deadlocks[name] = dl
            if self.kernel.tracer.enabled:
                self.kernel.tracer.emit("detector.deadlock", queue=name, workers=len(q.workers),
                                        pending=len(q.pending))
            if self.on_deadlock is not None:
                self.on_deadlock(dl)

    @property
    def first(self) -> Deadlock | None:
        if not self.deadlocks:
            return None
        return min(self.deadlocks.values(), key=lambda d: d.detected_at)
