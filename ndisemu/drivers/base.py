"""What the kernel asks of a worker driver (`WorkerDriver`), and what both drivers share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from ..errors import BugCheck
from ..executive.core import Worker, WorkItem

if TYPE_CHECKING:
    from ..kernel import Kernel

#: the command of a ready thread told to exit (the others: a `WorkItem` to start, None to resume)
EXIT: Final = object()
#: turns of the coroutine driver, and time jumps of a free-running kernel, between trio
#: checkpoints (where cancellation, Ctrl-C and other tasks get in)
CHECKPOINT_TURNS: Final = 64

NOT_A_KERNEL_WAIT: Final = ("work item {} awaited something other than an executive wait object "
                     "(items may block only through Kernel.wait)")


def item_bugcheck(item: WorkItem, worker: Worker, exc: Exception) -> BugCheck:
    bug = BugCheck(f"work item {item.label} on {worker.name} raised {type(exc).__name__}: {exc}")
    bug.__cause__ = exc
    return bug


class WorkerDriver:
    """Carries the worker threads of one `Kernel`: the part of the dispatcher that depends on
    how a thread's turn is run."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    async def run_ready(self, worker: Worker, cmd: Any) -> None:  # pragma: no cover - abstract
        """From the dispatcher: give `worker` its turn (and whoever is ready after it theirs);
        return when nothing is ready any more. Raises the run's bugcheck if one happened."""
        raise NotImplementedError

    def block(self) -> Awaitable[Any]:  # pragma: no cover - abstract
        """What `Kernel.wait` awaits once the current thread's item blocked: the baton goes on,
        and comes back when the wait is satisfied."""
        raise NotImplementedError

    async def unwinding_wait(self) -> None:
        """`Kernel.wait` called with no current thread: a blocked item being unwound at the end
        of the run waits again (in its finally block). Deliver the end of the run once more."""

    def interrupt(self, fn: Callable[..., None], args: tuple[Any, ...]) -> bool:
        """`Kernel.interrupt`: run an I/O task's callback here and now; False: post it."""
        return False

    def close(self) -> None:
        """The run is over: end the items that are still suspended (never raises; a failure is
        recorded as the kernel's bugcheck)."""

    def suspended(self) -> int:
        """Work items still suspended in this driver (none once the kernel stopped)."""
        return 0
