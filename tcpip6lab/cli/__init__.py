"""The `tcpip6-lab` command line: one module per command, and this entry point.

The entry point is a thin shell around `tcpip6lab.cli.app`: importing the emulation takes a
moment, and a Ctrl-C in that moment must end the program with one line, not a traceback.
`app` builds the parser from the command modules (`storm`, `serve`, `demo`, `explore`,
`replay`, `cleanup`) and from the ``tcpip6lab.commands`` entry points of installed packages —
how `bench` (a layer above this one) adds `tcpip6-lab bench` without being imported here.

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

from .interrupts import INTERRUPTED, is_interrupt

__all__ = ["INTERRUPTED", "is_interrupt", "main", "run"]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from . import app
    except BaseException as exc:
        if not is_interrupt(exc):
            raise
        sys.stderr.write("tcpip6-lab: interrupted\n")
        return INTERRUPTED
    return app.main(argv)


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


