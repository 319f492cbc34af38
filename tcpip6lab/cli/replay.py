"""`tcpip6-lab replay LOG`: run a logged storm again; the first event that differs."""

from __future__ import annotations

import argparse
import json
from typing import IO, Any

from ..storm import replay


def add_parser(sub: Any) -> None:
    r = sub.add_parser("replay", help="run a storm log again and report the first event "
                                      "that differs")
    r.add_argument("log", metavar="LOG", help="a JSONL log written by storm --log")


def run(args: argparse.Namespace, out: IO[str]) -> int:
    rep, result = replay(args.log)
    d = rep.divergence
    if d is None:
        out.write(f"replay: identical — {rep.events} events, outcome {result.outcome}"
                  + (f", trace hash {rep.logged_hash}" if rep.logged_hash else "") + "\n")
        return 0
    out.write(f"replay: diverged at event #{d.seq}\n")
    out.write(f"  logged:   {json.dumps(d.expected, sort_keys=True)}\n")
    out.write(f"  replayed: {json.dumps(d.got, sort_keys=True)}\n")
    return 1
