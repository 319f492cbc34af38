"""Consistency checks of the emulated kernel, run after every storm (and by tests).

They catch leaks a fault or a cancellation could cause: a worker counted as running that is
not, an item in a queue that already ran, a request NDIS still holds for a removed adapter,
a worker task still alive after the kernel stopped. Each problem is one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import NdisStatus
from .errors import InvariantViolation
from .executive.core import ItemState, WorkerState

if TYPE_CHECKING:
    from .kernel import Kernel
    from .ndis import Ndis


def kernel_problems(kernel: Kernel, *, stopped: bool = False) -> list[str]:
    problems: list[str] = []
    for name, q in kernel.core.queues.items():
        running = [w for w in q.workers if w.state is WorkerState.RUNNING]
        if q.running != len(running):
            problems.append(f"{name}: CurrentCount {q.running} but {len(running)} running")
        idle = {w.id for w in q.workers if w.state is WorkerState.IDLE}
        if idle != {w.id for w in q.idle}:
            problems.append(f"{name}: idle list differs from idle workers")
        for item in q.pending:
            if item.state is not ItemState.QUEUED:
                problems.append(f"{name}: {item.label} is pending but {item.state.value}")
        for w in q.workers:
            if w.state is WorkerState.BLOCKED and (w.waiting_on is None or w.item is None):
                problems.append(f"{name}: {w.name} blocked on nothing")
            if w.state is WorkerState.BLOCKED and w.waiting_on is not None \
                    and w.waiting_on.signaled:
                problems.append(f"{name}: {w.name} blocked on a set event")
        if q.dynamic != sum(1 for w in q.workers if w.dynamic):
            problems.append(f"{name}: dynamic count {q.dynamic} is off")
        if q.dynamic > q.spec.max_dynamic:
            problems.append(f"{name}: {q.dynamic} dynamic threads above the cap")
    if stopped:
        alive = [w.name for q in kernel.core.queues.values() for w in q.workers
                 if w.task is not None and w.id not in kernel._ended]
        if alive:
            problems.append(f"worker tasks still alive after the kernel stopped: "
                            f"{', '.join(alive[:5])}")
        if kernel.suspended_items():
            problems.append(f"{kernel.suspended_items()} work items still suspended after the "
                            "kernel stopped")
    return problems


def ndis_problems(ndis: Ndis) -> list[str]:
    problems: list[str] = []
    for name, block in ndis.miniports.items():
        if block.removed:
            problems.append(f"{name}: removed but still registered")
        for req in block.queued:
            if req.status is not NdisStatus.PENDING:
                problems.append(f"{name}: queued request {req.id} already {req.status.name}")
        if block.in_progress is not None and block.in_progress in block.queued:
            problems.append(f"{name}: request {block.in_progress.id} in progress and queued")
        for b in block.bindings:
            if not b.open:
                problems.append(f"{name}: closed binding {b.id} still attached")
    return problems


def check(kernel: Kernel, ndis: Ndis | None = None, *, stopped: bool = False) -> None:
    problems = kernel_problems(kernel, stopped=stopped)
    if ndis is not None:
        problems += ndis_problems(ndis)
    if problems:
        raise InvariantViolation("; ".join(problems))
