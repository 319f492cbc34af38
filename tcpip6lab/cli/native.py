"""`tcpip6-lab native`: which of the hot modules this installation runs compiled (mypyc)."""

from __future__ import annotations

import argparse
from typing import IO, Any


def add_parser(sub: Any) -> None:
    sub.add_parser("native", help="say which hot modules run compiled (mypyc, from the wheel)")


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from ..buildinfo import report

    out.write(report() + "\n")
    return 0
