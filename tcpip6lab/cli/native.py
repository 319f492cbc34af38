"""`tcpip6-lab native build|status|clean`: the compiled hot modules."""

from __future__ import annotations

import argparse
from typing import IO, Any


def add_parser(sub: Any) -> None:
    n = sub.add_parser("native", help="compile the emulation's hot modules with mypyc, or say "
                                      "whether they are in use")
    n.add_argument("action", choices=("build", "status", "clean"), nargs="?", default="status",
                   help="build (only if stale, unless --force), status (default) or clean")
    n.add_argument("--force", action="store_true", help="build even if up to date")


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from ..native import cmd_native

    return cmd_native(args.action, force=args.force)
