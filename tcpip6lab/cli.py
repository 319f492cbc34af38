"""The `tcpip6-lab` entry point.

A thin shell around `tcpip6lab._cli`: importing the emulation takes a moment, and a Ctrl-C in
that moment must end the program with one line, not a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from . import _cli
    except KeyboardInterrupt:
        sys.stderr.write("tcpip6-lab: interrupted\n")
        return 130
    return _cli.main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
