"""`tcpip6-lab cleanup`: remove what interrupted runs on real devices left behind (root)."""

from __future__ import annotations

import argparse
from typing import IO, Any


def add_parser(sub: Any) -> None:
    sub.add_parser("cleanup", help="remove devices, namespaces and state files that "
                                   "interrupted runs left behind")


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from ndisemu.backends.netlink import cleanup_leftovers, require_root

    require_root("cleanup")
    removed = cleanup_leftovers()
    for item in removed:
        out.write(f"removed {item}\n")
    out.write(f"{len(removed)} leftovers removed\n")
    return 0
