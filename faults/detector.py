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

Stalls (the Linux workqueue watchdog's rule, faults.md §4 and recommendation 7): a queue with
pending items whose last dequeue — or the moment it became non-empty, if later — is more than
two balance periods ago, and which is not knotted, is reported as a stall, naming the workers
that hold it and what they wait on, and the injected fault behind a wait when there is one. A
stall ends when the queue dequeues again; a queue that keeps dequeuing, however slowly its OIDs
complete, is never reported.

Reports come as structured events (`detector.deadlock`, `detector.stall`, `detector.stall_end`),
readable text (`render`) and Graphviz DOT (`to_dot`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ndisemu.executive.core import (
    ExecutiveCore,
    ItemState,
    QueueState,
    WaitObject,
    Worker,
    WorkerState,
    WorkItem,
)
from ndisemu.params import HISTORY_KEPT

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
    position: int  # 0-based place of `waits_on` in its queue's FIFO; -1 when not queued yet
    blocked_since: float | None
    waker_queue: str = ""  # the queue `waits_on` is (or will be) queued on
    when: str | None = None  # for a waker not queued yet: the outside event that queues it

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
    queues: list[str] = field(default_factory=list)  # every queue of the knot (one or more)

    def as_dict(self, *, time_origin: float = 0.0) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "queues": self.queues,
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
            f"{self.dynamic} dynamic, no thread can be added), {self.pending} items queued"
            + (f"; the knot spans the {', '.join(self.queues)} queues"
               if len(self.queues) > 1 else ""),
        ]
        chain = self.chain if limit is None else self.chain[:limit]
        for link in chain:
            what = ", ".join(x for x in (link.adapter, link.oid) if x)
            lines.append(f"  {link.worker:<14} runs {link.item}" + (f" [{what}]" if what else ""))
            where = (f"queued #{link.position + 1} on {link.waker_queue}" if link.when is None
                     else f"to be queued on {link.waker_queue}")
            lines.append(f"  {link.worker:<14} waits on {link.event}, set only by "
                         f"{link.waits_on} ({where})")
        if limit is not None and len(self.chain) > limit:
            lines.append(f"  ... {len(self.chain) - limit} more workers in the same knot")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """The knot as a Graphviz digraph: worker -> item -> awaited event -> waking item."""
        out = ["digraph deadlock {", "  rankdir=LR;", "  node [fontname=monospace];",
               f'  label="deadlock on {self.queue}: {self.workers} workers blocked";']
        for link in self.chain:
            w, it, ev, wk = (_q(link.worker), _q(link.item), _q(link.event), _q(link.waits_on))
            detail = ", ".join(x for x in (link.adapter, link.oid) if x)
            out.append(f"  {w} [shape=box];")
            out.append(f'  {it} [shape=ellipse, label="{link.item}\\n{detail}"];')
            out.append(f"  {ev} [shape=diamond];")
            where = (f"queued #{link.position + 1} on {link.waker_queue}" if link.when is None
                     else f"to be queued on {link.waker_queue}")
            out.append(f'  {wk} [shape=ellipse, style=dashed, label="{link.waits_on}\\n'
                       f'{where}"];')
            out.append(f'  {w} -> {it} [label="runs"];')
            out.append(f'  {it} -> {ev} [label="waits on"];')
            out.append(f'  {ev} -> {wk} [label="set only by"];')
            out.append(f'  {wk} -> {_q("queue " + link.waker_queue)} '
                       '[label="behind a full queue"];')
        out.append("}")
        return "\n".join(out) + "\n"


def _q(name: str) -> str:
    return '"' + name.replace('"', "'") + '"'


@dataclass(frozen=True)
class Holder:
    """A worker of a stalled queue and what it is stuck on."""

    worker: str
    state: str
    item: str | None
    adapter: str | None
    waits_on: str | None
    signalled_by: tuple[str, ...]
    fault: str | None


@dataclass
class Stall:
    queue: str
    detected_at: float
    since: float  # last progress
    pending: int
    holders: list[Holder] = field(default_factory=list)
    ended_at: float | None = None

    @property
    def faults(self) -> list[str]:
        return sorted({h.fault for h in self.holders if h.fault})

    def as_dict(self, *, time_origin: float = 0.0) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "detected_at": round(self.detected_at - time_origin, 9),
            "since": round(self.since - time_origin, 9),
            "ended_at": (round(self.ended_at - time_origin, 9)
                         if self.ended_at is not None else None),
            "pending": self.pending,
            "faults": self.faults,
            "holders": [asdict(h) for h in self.holders],
        }

    def render(self, *, time_origin: float = 0.0) -> str:
        cause = f" (fault: {', '.join(self.faults)})" if self.faults else ""
        lines = [f"STALL on the {self.queue} queue at t={self.detected_at - time_origin:.3f}s: "
                 f"no dequeue since t={self.since - time_origin:.3f}s, {self.pending} items "
                 f"queued{cause}"]
        for h in self.holders:
            wait = f" waits on {h.waits_on}" if h.waits_on else ""
            by = f" (set by {', '.join(h.signalled_by)})" if h.signalled_by else \
                (" (set by nothing queued: an outside event)" if h.waits_on else "")
            lines.append(f"  {h.worker:<14} {h.state} {h.item or ''}"
                         f"{' [' + h.adapter + ']' if h.adapter else ''}{wait}{by}"
                         f"{' <- fault ' + h.fault if h.fault else ''}")
        return "\n".join(lines)

    def to_dot(self) -> str:
        out = ["digraph stall {", "  rankdir=LR;", "  node [fontname=monospace];",
               f'  label="stall on {self.queue}: {self.pending} queued";']
        for h in self.holders:
            out.append(f"  {_q(h.worker)} [shape=box];")
            if h.item:
                out.append(f'  {_q(h.worker)} -> {_q(h.item)} [label="runs"];')
            if h.item and h.waits_on:
                out.append(f'  {_q(h.item)} -> {_q(h.waits_on)} [label="waits on"];')
                for s in h.signalled_by:
                    out.append(f'  {_q(h.waits_on)} -> {_q(s)} [label="set by"];')
            if h.fault and h.waits_on:
                out.append(f"  {_q('fault ' + h.fault)} [shape=octagon];")
                out.append(f'  {_q("fault " + h.fault)} -> {_q(h.waits_on)} [label="holds"];')
        out.append("}")
        return "\n".join(out) + "\n"


def _fault_of(worker: Worker) -> str | None:
    """The injected fault behind a worker's wait, if the records name one."""
    item = worker.item
    if item is not None and item.tags.get("fault"):
        return str(item.tags["fault"])
    obj: WaitObject | None = worker.waiting_on
    if obj is None:
        return None
    if obj.tags.get("fault"):
        return str(obj.tags["fault"])
    req = obj.tags.get("request")
    fault = getattr(req, "tags", {}).get("fault") if req is not None else None
    return str(fault) if fault else None


def find_stall(core: ExecutiveCore, queue: str, now: float,
               threshold: float) -> Stall | None:
    """A stall on `queue` at `now` (no knot check here: callers check knots first)."""
    q = core.queues[queue]
    if not q.pending or q.nonempty_since is None or q.spec.thread_per_item:
        return None
    since = max(q.last_dequeue_at if q.last_dequeue_at is not None else q.nonempty_since,
                q.nonempty_since)
    if now - since <= threshold:
        return None
    holders = []
    for w in q.workers:
        obj = w.waiting_on
        live = [s.label for s in (obj.signalers if obj is not None else [])
                if s.state in (ItemState.QUEUED, ItemState.RUNNING)]
        holders.append(Holder(
            worker=w.name, state=w.state.value, item=w.item.label if w.item else None,
            adapter=w.item.tags.get("adapter") if w.item else None,
            waits_on=obj.label if obj is not None else None, signalled_by=tuple(live),
            fault=_fault_of(w)))
    return Stall(queue, now, since, len(q.pending), holders)


def _knot_candidate(q: QueueState) -> bool:
    """At its maximum thread count (no thread can be added) and every worker blocked."""
    if q.spec.thread_per_item or not q.workers or not q.at_max_threads:
        return False
    return all(w.state is WorkerState.BLOCKED and w.waiting_on is not None
               and w.item is not None for w in q.workers)


def _stuck_wait(core: ExecutiveCore, obj: WaitObject, knot: set[str]) -> bool:
    """Whether `obj` can be set only by items that need a worker of a queue in `knot`: its
    declared wakers are queued (not running) there, or will be queued there when an outside
    event fires (`future_wakers`), and none may be taken over by a rescuer with a free
    thread. At least one waker must be declared: an undeclared wait is never a knot."""
    live = [s for s in obj.signalers if s.state in (ItemState.QUEUED, ItemState.RUNNING)]
    if not live and not obj.future_wakers:
        return False
    for s in live:
        if s.state is not ItemState.QUEUED or s.queue not in knot:
            return False
        # An item a rescuer may take over is not stuck for good while the rescuer's queue
        # has a thread that is not blocked.
        if s.rescuer is not None and s.rescuer in core.queues and any(
                r.state is not WorkerState.BLOCKED for r in core.queues[s.rescuer].workers):
            return False
    return all(queue in knot for queue, _when in obj.future_wakers)


def find_knots(core: ExecutiveCore) -> dict[str, list[KnotLink]]:
    """Every proven knot, as {queue: the whole knot's chain}. A knot may span queues: a set S
    of queues, each at its cap with every worker blocked, where every wait can be ended only
    by an item that needs a worker of a queue in S. Found as the greatest such set (start from
    every full, fully blocked queue; drop a queue while one of its waits escapes the set)."""
    knot = {name for name, q in core.queues.items() if _knot_candidate(q)}
    changed = True
    while knot and changed:
        changed = False
        for name in sorted(knot):
            if any(not _stuck_wait(core, w.waiting_on, knot)  # type: ignore[arg-type]
                   for w in core.queues[name].workers):
                knot.discard(name)
                changed = True
    if not knot:
        return {}
    positions: dict[str, dict[int, int]] = {}

    def position(item: WorkItem) -> int:
        pos = positions.get(item.queue)
        if pos is None:
            pos = positions[item.queue] = {
                id(it): i for i, it in enumerate(core.queues[item.queue].pending)}
        return pos.get(id(item), -1)

    chain: list[KnotLink] = []
    for name in sorted(knot, key=lambda n: (n != "critical", n)):
        for w in core.queues[name].workers:
            obj = w.waiting_on
            assert obj is not None and w.item is not None
            live = [s for s in obj.signalers if s.state is ItemState.QUEUED]
            if live:
                waker = min(live, key=lambda s: (s.queue != name, position(s)))
                waits_on, waker_queue, pos, when = waker.label, waker.queue, position(waker), None
            else:
                waker_queue, when = obj.future_wakers[0]
                waits_on, pos = f"an item queued when {when}", -1
            chain.append(KnotLink(
                queue=name, worker=w.name, item=w.item.label,
                adapter=w.item.tags.get("adapter"), oid=w.item.tags.get("oid"),
                waits_on=waits_on, event=obj.label, position=pos,
                blocked_since=w.blocked_since, waker_queue=waker_queue, when=when,
            ))
    return {name: chain for name in knot}


def find_knot(core: ExecutiveCore, queue: str) -> list[KnotLink] | None:
    """The proven knot `queue` is part of, as its chain (every queue of the knot), or None."""
    return find_knots(core).get(queue)


class HangDetector:
    """Checks every queue for a knot at each balance tick; remembers the first per queue."""

    def __init__(self, kernel: Kernel,
                 on_deadlock: Callable[[Deadlock], None] | None = None,
                 stall_periods: float = 2.0, keep: int = HISTORY_KEPT) -> None:
        self.kernel = kernel
        self.on_deadlock = on_deadlock
        self.deadlocks: dict[str, Deadlock] = {}
        #: the latest `keep` stall episodes, ended or not (`stall_count` counts every one)
        self.stalls: deque[Stall] = deque(maxlen=keep)
        self.stall_count = 0
        self.active_stalls: dict[str, Stall] = {}
        self.stall_threshold = stall_periods * kernel.params.balance_period
        self.checks = 0
        kernel.core.tick_listeners.append(self.check)

    def check(self, now: float) -> None:
        self.checks += 1
        core = self.kernel.core
        tracer = self.kernel.tracer
        knots = find_knots(core)
        for name, q in core.queues.items():
            if name in self.deadlocks:
                continue
            chain = knots.get(name)
            if chain is None:
                self._check_stall(name, now)
                continue
            self.active_stalls.pop(name, None)
            dl = Deadlock(name, now, len(q.workers), q.spec.static_threads, q.dynamic,
                          len(q.pending), chain, queues=sorted({link.queue for link in chain}))
            self.deadlocks[name] = dl
            if tracer.enabled:
                tracer.emit("detector.deadlock", queue=name, workers=len(q.workers),
                            pending=len(q.pending))
            if self.on_deadlock is not None:
                self.on_deadlock(dl)

    def _check_stall(self, name: str, now: float) -> None:
        tracer = self.kernel.tracer
        stall = find_stall(self.kernel.core, name, now, self.stall_threshold)
        active = self.active_stalls.get(name)
        if stall is None:
            if active is not None:
                active.ended_at = now
                del self.active_stalls[name]
                if tracer.enabled:
                    tracer.emit("detector.stall_end", queue=name)
            return
        if active is not None and active.since == stall.since:
            return  # the same episode, already reported
        self.active_stalls[name] = stall
        self.stalls.append(stall)
        self.stall_count += 1
        if tracer.enabled:
            tracer.emit("detector.stall", queue=name, pending=stall.pending,
                        faults=stall.faults)

    def close(self, now: float) -> None:
        """At the end of a run: end the stalls whose queue has progressed since."""
        for name in list(self.active_stalls):
            if find_stall(self.kernel.core, name, now, self.stall_threshold) is None:
                self.active_stalls.pop(name).ended_at = now

    @property
    def first(self) -> Deadlock | None:
        if not self.deadlocks:
            return None
        return min(self.deadlocks.values(), key=lambda d: d.detected_at)
