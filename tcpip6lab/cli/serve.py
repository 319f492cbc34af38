"""`tcpip6-lab serve`: an emulated host on memory cables or real devices, until Ctrl-C."""

from __future__ import annotations

import argparse
from typing import IO, Any

from .options import (
    add_model_options,
    add_trace_option,
    add_workers_option,
    duration,
    model_params,
    nonneg_int,
    pos_int,
)


def add_parser(sub: Any) -> None:
    v = sub.add_parser("serve", help="run an emulated host on memory, TAP or veth devices "
                                     "until Ctrl-C")
    v.add_argument("--backend", choices=("memory", "tap", "veth"), default="memory",
                   help="memory (default, no root), tap or veth (root: real devices whose "
                        "Linux side is in a network namespace)")
    v.add_argument("--adapters", type=pos_int, default=1, metavar="N")
    v.add_argument("--interval", type=duration, default=0.0, metavar="S",
                   help="time between arrivals (default 0: a burst)")
    v.add_argument("--netns", metavar="NAME",
                   help="name of the namespace to create for Linux's side (t6l- is "
                        "prefixed if missing; default t6l-<run id>); '.' keeps Linux's side "
                        "in the current namespace")
    v.add_argument("--seed", type=nonneg_int, default=None, metavar="K",
                   help="root seed (default: the plan's [run] seed, else 0)")
    v.add_argument("--pcap", metavar="DIR", help="write one pcap per adapter here")
    v.add_argument("--faults", metavar="PLAN.toml", help="inject the faults of this plan "
                                                         "(wire faults: memory backend only)")
    v.add_argument("--burst", type=nonneg_int, default=0, metavar="N",
                   help="N more adapters arrive at once at --burst-at (the KB's case: "
                        "interfaces up, then many adapters; their devices are created "
                        "beforehand)")
    v.add_argument("--burst-at", type=duration, default=8.0, metavar="S",
                   help="when the burst arrives, seconds after start (default 8)")
    v.add_argument("--no-services", action="store_true",
                   help="no built-in services (TCP echo 7, discard 9, HTTP 80, the stack's "
                        "UDP echo 7)")
    v.add_argument("--no-apps", action="store_true",
                   help="no applications (tcp-rr, udp-lookup) and no peer services")
    v.add_argument("--offload", action=argparse.BooleanOptionalAction, default=None,
                   help="task offload (OID_TCP_TASK_OFFLOAD: TCP checksums and large sends for "
                        "IPv6, an extension to NDIS 5.1; TAP: virtio-net super-frames both "
                        "ways). Default: on for --backend tap, off for memory and veth")
    add_trace_option(v)
    add_workers_option(v, "coroutines")
    add_model_options(v, executor_default="critical")


def run(args: argparse.Namespace, out: IO[str]) -> int:
    from ..serve import serve

    return serve(args, model_params(args, args.executor), out)
