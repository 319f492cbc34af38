"""What the commands share: the parser class, value types, and the model's options."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from faults.plan import FaultPlan, load_plan
from ndisemu.kernel import WORKER_MODES
from ndisemu.params import INSERT_GROWTH, SYSTEM_QUEUES, ExecutiveParams
from tcpip6.binder import COMPLETION_PATHS
from tcpip6.errors import Tcpip6Error
from tcpip6.registry import BUILTIN_NAMES, resolve

from ..errors import DurationError
from ..params import MINIPORT_COMPLETIONS, PNP_BINDS, ModelParams
from ..units import parse_duration

PROG = "tcpip6-lab"


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def duration(text: str) -> float:
    """'0.5', '500ms', '2s', '1m' -> seconds (tcpip6lab.units' grammar)."""
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def nonneg_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def pos_int(text: str) -> int:
    value = nonneg_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def executor_spec(text: str) -> str:
    """An executor spec (a name or MODULE:ATTR), checked by resolving it; kept as given."""
    try:
        resolve(text)
    except Tcpip6Error as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_model_options(p: argparse.ArgumentParser, *, executor_default: str | None) -> None:
    d = ExecutiveParams()
    m = ModelParams()
    g = p.add_argument_group("model (defaults: Windows Server 2003, see docs/model.md)")
    if executor_default is not None:
        g.add_argument("--executor", type=executor_spec, default=executor_default,
                       metavar="SPEC",
                       help="how tcpip6 submits OIDs: one of {" + ",".join(BUILTIN_NAMES)
                            + "} (critical = unpatched, the default; dedicated = hotfix), "
                            "an installed executor's name, or MODULE:ATTR naming an "
                            "OidExecutor subclass (docs/executors.md)")
    g.add_argument("--static-threads", type=pos_int, default=d.critical_static, metavar="N",
                   help=f"critical static worker threads (default {d.critical_static})")
    g.add_argument("--additional-critical", type=nonneg_int, default=d.additional_critical,
                   metavar="N", help="AdditionalCriticalWorkerThreads registry value "
                                     f"(default {d.additional_critical}, clamped to 16)")
    g.add_argument("--max-dynamic", type=nonneg_int, default=d.max_dynamic, metavar="N",
                   help=f"dynamic threads per queue at most (default {d.max_dynamic})")
    g.add_argument("--cpus", type=pos_int, default=d.cpus, metavar="N",
                   help=f"CPUs = KQUEUE MaximumCount (default {d.cpus})")
    g.add_argument("--latency", type=duration, default=m.latency, metavar="S",
                   help=f"pended OID completion latency (default {m.latency}s)")
    g.add_argument("--latency-jitter", type=float, default=m.latency_jitter, metavar="F",
                   help=f"± fraction of latency, seeded (default {m.latency_jitter})")
    g.add_argument("--completion-queue", choices=SYSTEM_QUEUES, default=m.completion_queue,
                   help="queue where the OID completion work item runs (default critical)")
    g.add_argument("--completion-via", choices=COMPLETION_PATHS, default=m.completion_via,
                   help="where a pended OID's completion needs a worker: tcpip6's own "
                        "follow-up item (default), an NDIS work item, or the miniport's own "
                        "work item (see --miniport-completion); on --completion-queue")
    g.add_argument("--miniport-completion", choices=MINIPORT_COMPLETIONS,
                   default=m.miniport_completion,
                   help="with --completion-via miniport: the miniport completes from a work "
                        "item (NdisScheduleWorkItem, default) or at DPC level (no worker)")
    g.add_argument("--pnp-binds", choices=PNP_BINDS, default=m.pnp_binds,
                   help="where ProtocolBindAdapter runs: the PnP device-action work item on "
                        "the delayed queue (PASSIVE_LEVEL, default) or inside the DPC-level "
                        "arrival (the old shortcut)")
    g.add_argument("--insert-growth", choices=INSERT_GROWTH, default=d.insert_growth,
                   help="an insert that needs a critical thread signals the balance manager, "
                        "which creates one per wake (WRK, default), or creates it inline "
                        "(the old eager growth)")
    g.add_argument("--foreign-holders", type=nonneg_int, default=m.foreign_holders,
                   metavar="N", help="critical workers blocked by other components "
                                     f"(default {m.foreign_holders})")
    g.add_argument("--multicast-list-size", type=nonneg_int, default=m.multicast_list_size,
                   metavar="N", help="miniports' multicast table size; below 2 tcpip6's "
                                     f"bind fails (default {m.multicast_list_size})")
    g.add_argument("--mtu", type=pos_int, default=m.mtu, metavar="N",
                   help=f"adapters' MTU (and their TAP/veth devices'; default {m.mtu})")
    g.add_argument("--dedicated-threads", type=pos_int, default=m.dedicated_threads,
                   metavar="N", help="threads of the dedicated executor (default 1)")
    g.add_argument("--schedule", choices=("random", "fifo", "pct"), default=m.schedule,
                   help="order of ready threads of equal priority: seeded draw, FIFO, or "
                        "PCT (random thread priorities with change points)")


def add_workers_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--workers", choices=WORKER_MODES, default=default,
                   help="how the kernel carries worker threads: trio tasks, or coroutines its "
                        "dispatcher steps (faster: no trio switch per turn); the same trace "
                        f"either way (default {default})")


def add_trace_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", metavar="FILE.perfetto-trace",
                   help="write a Perfetto timeline of the run (threads, work items, waits, "
                        "flows, queue counters, the knot): open it in ui.perfetto.dev")


def model_params(args: argparse.Namespace, executor: str) -> ModelParams:
    ex = ExecutiveParams(
        critical_static=args.static_threads,
        additional_critical=args.additional_critical,
        max_dynamic=args.max_dynamic,
        cpus=args.cpus,
        insert_growth=args.insert_growth,
    )
    return ModelParams(
        executive=ex, executor=executor, latency=args.latency,
        latency_jitter=args.latency_jitter, completion_queue=args.completion_queue,
        completion_via=args.completion_via, miniport_completion=args.miniport_completion,
        pnp_binds=args.pnp_binds,
        foreign_holders=args.foreign_holders,
        dedicated_threads=args.dedicated_threads, schedule=args.schedule,
        multicast_list_size=args.multicast_list_size, mtu=args.mtu,
    )


def load_faults(path: str | None) -> FaultPlan | None:
    return None if path is None else load_plan(path)


def nondefault_model_args(args: argparse.Namespace) -> str:
    d, m = ExecutiveParams(), ModelParams()
    pairs = [("--static-threads", args.static_threads, d.critical_static),
             ("--additional-critical", args.additional_critical, d.additional_critical),
             ("--max-dynamic", args.max_dynamic, d.max_dynamic), ("--cpus", args.cpus, d.cpus),
             ("--insert-growth", args.insert_growth, d.insert_growth),
             ("--pnp-binds", args.pnp_binds, m.pnp_binds),
             ("--latency", args.latency, m.latency),
             ("--latency-jitter", args.latency_jitter, m.latency_jitter),
             ("--completion-queue", args.completion_queue, m.completion_queue),
             ("--completion-via", args.completion_via, m.completion_via),
             ("--miniport-completion", args.miniport_completion, m.miniport_completion),
             ("--foreign-holders", args.foreign_holders, m.foreign_holders),
             ("--multicast-list-size", args.multicast_list_size, m.multicast_list_size),
             ("--dedicated-threads", args.dedicated_threads, m.dedicated_threads)]
    return "".join(f" {flag} {value!r}" if isinstance(value, float) else f" {flag} {value}"
                   for flag, value, default in pairs if value != default)
