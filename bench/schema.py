"""`tcpip6-lab schema storm|serve|bench-cell`: print a published JSON Schema.

The command lives in bench, the top layer, because only from here can it reach every schema:
the application's (storm, serve; tcpip6lab.schema) and bench's cell records (generated here
from bench.sweep.CellRecord). It joins the command line through the ``tcpip6lab.commands``
entry point group, like `bench` itself. It prints the checked-in file shipped in the package;
`python -m bench.schema --update` regenerates every checked-in file from the types, and
`--check` says whether they are current (a test runs the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tcpip6lab import schema as lab_schema

from .sweep import CELL_SCHEMA_VERSION, CellRecord


def cell_schema() -> dict[str, Any]:
    """One record of `bench storm` (cells.json's `cells`, cells.partial.jsonl's lines)."""
    body = lab_schema.schema_of(CellRecord, exclude=frozenset({"schema_version"}))
    return lab_schema.document("bench-cell", CELL_SCHEMA_VERSION,
                               "tcpip6-lab bench storm: one cell's record", body)


#: every published schema: name -> (generator, package holding it, file name)
SCHEMAS: dict[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    **{name: (gen, "tcpip6lab", filename)
       for name, (gen, filename) in lab_schema.SCHEMAS.items()},
    "bench-cell": (cell_schema, "bench", "bench-cell.schema.json"),
}


def source_path(name: str) -> Path:
    """Where the checked-in file of schema `name` lives in this source tree."""
    _, package, filename = SCHEMAS[name]
    return Path(__file__).resolve().parent.parent / package / "schemas" / filename


def stale() -> list[str]:
    """The schemas whose shipped file differs from what the types generate."""
    return [name for name, (gen, package, filename) in SCHEMAS.items()
            if lab_schema.shipped(package, filename) != lab_schema.render(gen())]


def add_parser(subparsers: Any) -> None:
    """The `tcpip6lab.commands` entry point's hook: add `schema` to the command line."""
    p = subparsers.add_parser(
        "schema", help="print the JSON Schema of storm --json, serve's /status.json or a "
        "bench cell", description="Print a published JSON Schema (draft 2020-12). Every JSON "
        "document it describes carries `schema_version`, which the schema pins.")
    p.add_argument("name", choices=list(SCHEMAS), help="which schema")


def run(args: argparse.Namespace, out: Any = None) -> int:
    """The `tcpip6lab.commands` entry point's hook: run `tcpip6-lab schema NAME`."""
    _, package, filename = SCHEMAS[args.name]
    (out or sys.stdout).write(lab_schema.shipped(package, filename))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.schema --update | --check`: regenerate or check the checked-in files."""
    parser = argparse.ArgumentParser(prog="python -m bench.schema")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--update", action="store_true", help="rewrite the checked-in files")
    group.add_argument("--check", action="store_true", help="exit 1 if one is out of date")
    args = parser.parse_args(argv)
    if args.update:
        for name, (gen, _, _) in SCHEMAS.items():
            path = source_path(name)
            path.parent.mkdir(exist_ok=True)
            path.write_text(lab_schema.render(gen()), encoding="utf-8")
            print(f"wrote {path}")
        return 0
    old = [name for name, (gen, _, _) in SCHEMAS.items()
           if not source_path(name).is_file()
           or source_path(name).read_text(encoding="utf-8") != lab_schema.render(gen())]
    for name in old:
        print(f"{source_path(name)}: out of date (python -m bench.schema --update)")
    return 1 if old else 0


if __name__ == "__main__":
    raise SystemExit(main())
