"""The `tcpip6-lab` entry point.

A thin shell around `tcpip6lab._cli`: importing the emulation takes a moment, and a Ctrl-C in
that moment must end the program with one line, not a traceback.

`main` returns the exit status (130 after an interrupt) and is what tests call in-process.
`run`, the console script, turns an interrupt into death by SIGINT once everything is cleaned
up — the convention shells rely on (a `for` loop around the command stops on Ctrl-C only when
the child died of the signal; `$?` is 130 either way), and the one CPython itself follows for
an unhandled KeyboardInterrupt. Doing it here also makes the status deterministic: CPython
3.11 run with `-m` sometimes kills itself with SIGINT after a KeyboardInterrupt was caught,
depending on where it was raised.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from . import _cli
    except BaseException as exc:
        if not is_interrupt(exc):
            raise
        sys.stderr.write("tcpip6-lab: interrupted\n")
        return INTERRUPTED
    return _cli.main(argv)


def run() -> NoReturn:
    """Console-script entry: exit with `main`'s status, or die of SIGINT after a Ctrl-C."""
    interrupted = False

    def die_of_sigint() -> None:
        if not interrupted:
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)

    # Registered before anything else can be, so it runs after every other exit handler
    # (atexit is last-in, first-out): the process dies only once everything has cleaned up.
    atexit.register(die_of_sigint)
    code = main()
    interrupted = code == INTERRUPTED
    raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
