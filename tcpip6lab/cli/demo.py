"""`tcpip6-lab demo`: the unpatched and the fixed host side by side, live."""

from __future__ import annotations

import argparse
from typing import IO, Any

from .options import (
    add_model_options,
    add_trace_option,
    duration,
    model_params,
    nonneg_int,
    pos_int,
)


def add_parser(sub: Any) -> None:
    d = sub.add_parser("demo", help="hang vs fixed, side by side, live")
    d.add_argument("--adapters", type=pos_int, default=24, metavar="N",
                   help="adapters in the burst (default 24, the KB's example)")
    d.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="virtual seconds per wall second (default 1)")
    d.add_argument("--duration", type=duration, default=16.0, metavar="S",
                   help="virtual seconds to run (default 16)")
    d.add_argument("--seed", type=nonneg_int, default=0, metavar="K")
    d.add_argument("--plain", action="store_true", help="plain progress lines, no live view")
    d.add_argument("--pcap", metavar="DIR", help="write one pcap per adapter wire here")
    d.add_argument("--faults", metavar="PLAN.toml",
                   help="inject the faults of this plan into both hosts")
    d.add_argument("--backend", choices=("memory", "tap"), default="memory",
                   help="memory (default: virtual wires and time) or tap (root: real devices "
                        "in two namespaces, real ping processes, real time)")
    d.add_argument("--offload", action=argparse.BooleanOptionalAction, default=None,
                   help="task offload on the TAP devices (as serve's; default: on for --backend "
                        "tap, off for memory)")
    d.add_argument("--no-services", action="store_true",
                   help="no built-in services (TCP echo 7, discard 9, HTTP 80, the stack's "
                        "UDP echo 7)")
    d.add_argument("--no-apps", action="store_true",
                   help="no applications (tcp-rr, udp-lookup) and no peer services")
    add_trace_option(d)
    add_model_options(d, executor_default=None)


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from ..demo import run_demo

    return run_demo(args, model_params)
