"""The emulated NT executive: work queues, worker threads, wait objects, the balance manager."""

from .core import (
    Action,
    ExecutiveCore,
    ItemState,
    QueueState,
    Resume,
    Start,
    WaitObject,
    Worker,
    WorkerExit,
    WorkerState,
    WorkItem,
)

__all__ = [
    "Action",
    "ExecutiveCore",
    "ItemState",
    "QueueState",
    "Resume",
    "Start",
    "WaitObject",
    "WorkItem",
    "Worker",
    "WorkerExit",
    "WorkerState",
]
