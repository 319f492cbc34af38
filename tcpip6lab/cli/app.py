"""The command line's parser and dispatch.

Every user error (bad values, bad combinations, unusable paths) is one line on stderr and exit
status 2; `--debug` shows the traceback instead. `storm --expect` exits 1 on a mismatch.

Each command is a module with `add_parser(subparsers)` and `run(args, out) -> int`: the built-in
ones below, and any that an installed package names in the ``tcpip6lab.commands`` entry-point
group (``bench = "bench.cli"`` in this project's pyproject.toml: the benchmarks sit a layer
above the application, so the application never imports them).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from ..buildinfo import version_line
from .interrupts import USER_ERRORS, is_interrupt, leaf_exception
from .options import PROG, Parser

#: the built-in commands, in the order `--help` lists them (modules of this package)
BUILTIN = ("storm", "serve", "explore", "replay", "cleanup", "demo", "native")
ENTRY_POINTS = "tcpip6lab.commands"


def commands() -> dict[str, ModuleType]:
    """Every command's module by name: the built-in ones, then the installed plug-ins."""
    found: dict[str, ModuleType] = {
        name: importlib.import_module(f"{__package__}.{name}") for name in BUILTIN}
    for ep in sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        if ep.name not in found:
            module = ep.load()
            if isinstance(module, ModuleType):
                found[ep.name] = module
    return found


def build_parser(found: dict[str, ModuleType] | None = None) -> Parser:
    parser = Parser(prog=PROG, description="Reproduce and study the KB968597 Tcpipv6 "
                    "critical-worker-queue deadlock in an emulated NT executive and NDIS.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the version, and whether the hot path runs compiled")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in (found or commands()).values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        found = commands()
        args = build_parser(found).parse_args(argv)
        run: Any = found[args.command].run
        status: int = run(args, sys.stdout)
        return status
    except BaseException as exc:
        return _report(exc, debug)


def _report(exc: BaseException, debug: bool) -> int:
    leaf = leaf_exception(exc)
    if isinstance(leaf, SystemExit):
        return int(leaf.code) if isinstance(leaf.code, int) else 1
    if is_interrupt(leaf):
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    if isinstance(leaf, BrokenPipeError):
        return 0
    if debug:
        traceback.print_exception(exc)
    if isinstance(leaf, USER_ERRORS):
        sys.stderr.write(f"{PROG}: error: {leaf}\n")
        return 2
    # A bug of ours: one line, the traceback only with --debug.
    sys.stderr.write(f"{PROG}: internal error: {type(leaf).__name__}: {leaf} (run with "
                     "--debug for the traceback)\n")
    return 1


