"""What counts as a Ctrl-C, and the status after one."""

from __future__ import annotations

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
