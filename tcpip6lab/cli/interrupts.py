"""What counts as a Ctrl-C, the status after one, and which error of a trio exception group
is the one to tell the user (the CLI's and the benchmarks' one-line errors)."""

from __future__ import annotations

import trio

from faults.errors import FaultsError
from ndisemu.errors import NdisEmuError
from tcpip6.errors import Tcpip6Error

from ..errors import Tcpip6LabError

#: errors a user must fix: one line and exit status 2, never a traceback
USER_ERRORS = (Tcpip6LabError, NdisEmuError, Tcpip6Error, FaultsError, ValueError)

INTERRUPTED = 130  # 128 + SIGINT: the status `main` returns after a Ctrl-C


def is_interrupt(exc: BaseException) -> bool:
    """A KeyboardInterrupt, or an error raised *from* one.

    CPython 3.11 wraps an exception raised while a class body's `__set_name__` hooks run (a
    dataclass field, say) in `RuntimeError(...) from exc`, so a Ctrl-C during an import can
    arrive as a RuntimeError whose cause is the KeyboardInterrupt.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__
    return False


def leaf_exception(exc: BaseException) -> BaseException:
    """The exception that matters inside trio's exception groups: a Ctrl-C first, then a
    user error, then anything else (Cancelled is only the echo of the others). `exc` itself
    when it is no group."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        elif not isinstance(e, trio.Cancelled):
            leaves.append(e)

    walk(exc)
    for leaf in leaves:
        if is_interrupt(leaf):
            return leaf
    for kind in (USER_ERRORS, SystemExit):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return leaves[0] if leaves else exc
