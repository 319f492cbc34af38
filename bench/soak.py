"""Soak: an emulated host on TAP serving real traffic through faults for M minutes, its
resources sampled — memory, descriptors, tasks, the stack's tables and every list it keeps must
stay flat.

    python -m bench.soak --minutes 30 [--sample 10] [--cycle 60] [--out bench/results/soak]

Needs root (TAP devices, a namespace). The host runs as `serve` runs it by default: services
and applications on every interface, tcpip6lab.peerd in Linux's namespace. Four adapters:
nic000…nic002 stay and take the load, nic003 comes and goes. From the namespace
(bench.soakload): `ping -6` every 50 ms to each of the three, HTTP requests, UDP echo
requests and a TCP bulk stream paced at --bulk-kbps per adapter (the applications keep their
share of the two cores). The run is a series of cycles; each (a fraction of --cycle) has

    0.00  link flap of nic000: carrier down for 3 s, NDIS_STATUS_MEDIA_DISCONNECT/CONNECT
    0.20  reset of nic001: its requests aborted, its frames stalled for 1 s
    0.35  netem on nic002 for 0.2 of the cycle, both directions: 20 % loss, a quarter of the
          frames 20 ms late (reordered) — a fault plan's [[wire]] windows (--no-netem: none;
          on a kernel without netem the loss alone, through the BPF fallback)
    0.40  nic003 surprise-removed (its device deleted); back at 0.55 (a new device)
    quiet the last --quiet seconds: no fault, the load paused, nothing in flight — the quiet
          point (2 s before the cycle ends) samples descriptors and tasks

Every --sample seconds: RSS, open fds, trio tasks, each interface's stack tables (neighbor
cache, reassembly buffers, TCP connections, destination cache) against their configured bounds
(tcpip6.stack.context.HostConfig) and every list the host keeps (heartbeat beats, PnP arrivals
and removals, stall episodes, the binder's socket waiters, the kernel's timer heap, …).

Targets, over the last two thirds of the run: RSS slope below 1 MB per 10 minutes; fds and
trio tasks the same at every quiet point; every table within its bound; every failed request
(the load's and the host's applications') seen inside a fault window plus its own timeout.
Writes soak.json and soak.png; prints a verdict; exit status 1 when a target is missed, 2 for a
usage error. SIGINT/SIGTERM end it early: every device, namespace and state file is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import trio

from faults.plan import FaultPlan, parse_plan
from ndisemu.backends import netem
from ndisemu.backends.netlink import Registry, netns_preexec
from ndisemu.constants import NDIS_STATUS_MEDIA_CONNECT, NDIS_STATUS_MEDIA_DISCONNECT
from ndisemu.errors import BackendError
from ndisemu.params import HISTORY_KEPT
from tcpip6.stack.host import ECHO_REPLIES_KEPT
from tcpip6.wire.ipv6 import addr_str
from tcpip6lab import apps
from tcpip6lab.params import ModelParams, adapter_ula
from tcpip6lab.serve import (
    RealHost,
    make_real_host,
    run_peerd,
    running,
    stdout_lines,
    watch_devices,
)
from tcpip6lab.wirefaults import WireFaults, check_plan

from .errors import BenchUsageError

ADAPTERS = 4  # nic000..nic002 stay, the last comes and goes
HOTPLUG = "nic003"
START = 10.0  # kernel time of the soak's t = 0 (the host is up well before)
RESET_STALL = 1.0  # seconds a reset stalls the miniport's frames
NETEM_AT, NETEM_FOR = 0.35, 0.2  # each cycle's netem window, as fractions of its active part
RSS_TARGET_MB_PER_10MIN = 1.0  # the target (--rss-target)
SLACK = 1.0  # seconds: a failure seen up to this long after window end + its timeout is late
#: the host's applications' own timeouts (a failure is seen within this of its cause)
APP_TIMEOUTS = {"tcp-rr": apps.TCP_TIMEOUT + apps.TCP_PERIOD,
                "udp-lookup": apps.LOOKUP_TRIES * apps.LOOKUP_TRY_TIMEOUT + apps.LOOKUP_PERIOD}


@dataclass
class SoakConfig:
    minutes: float = 30.0
    sample: float = 10.0  # seconds between samples
    cycle: float = 60.0  # seconds per load/fault cycle
    quiet: float = 10.0  # the quiet phase closing each cycle
    seed: int = 0
    history: int = HISTORY_KEPT  # EmulatedHost(history=…): every history's bound
    ping_interval: float = 0.05
    http_period: float = 0.5
    udp_period: float = 0.2
    bulk_kbps: float = 64.0  # KB/s per adapter into discard
    flap: float = 3.0  # seconds of a link flap
    away: float = 0.15  # fraction of a cycle nic003 is gone
    out: Path = Path("bench/results/soak")
    netem: bool = True  # netem loss and reordering windows (the plan's [[wire]] faults)
    rss_target: float = RSS_TARGET_MB_PER_10MIN  # MB per 10 minutes

    def check(self) -> None:
        if self.minutes <= 0 or self.sample <= 0:
            raise BenchUsageError("--minutes and --sample must be > 0")
        if self.cycle < 10 or not 4 <= self.quiet <= self.cycle / 2:
            raise BenchUsageError("--cycle must be >= 10 s and --quiet in [4 s, cycle/2]")
        if self.minutes * 60 < 2 * self.cycle:
            raise BenchUsageError("the run needs at least two cycles (--minutes vs --cycle)")
        if self.history < 1:
            raise BenchUsageError("--history must be >= 1")


@dataclass
class Window:
    """One fault, from its start until it is healed (seconds since the soak's start)."""

    kind: str
    adapter: str
    start: float
    end: float | None = None


@dataclass
class Failure:
    source: str  # "load" (Linux side) or "app" (the host's applications)
    request: str
    target: str
    t: float
    timeout: float
    error: str
    window: str | None = None  # the fault window it falls in, or None: unexplained


@dataclass
class Soak:
    cfg: SoakConfig
    samples: list[dict[str, Any]] = field(default_factory=list)
    quiet_points: list[dict[str, Any]] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    t0: float = 0.0  # trio clock of t = 0
    wall0: float = 0.0  # wall clock of t = 0
    ended_at: float = 0.0
    last: dict[str, Any] | None = None  # the latest sample (progress)
    failed: int = 0
    #: while it runs, samples and failures go to JSONL files, not to memory: the soak's own
    #: records must not be the growth it measures (read back by `load_records`)
    _files: dict[str, IO[str]] = field(default_factory=dict)

    def now(self) -> float:
        return trio.current_time() - self.t0

    def open_records(self) -> None:
        self.cfg.out.mkdir(parents=True, exist_ok=True)
        for name in ("samples", "failures"):
            self._files[name] = (self.cfg.out / f"{name}.jsonl").open("w", encoding="utf-8")

    def _write(self, name: str, rec: dict[str, Any]) -> None:
        f = self._files.get(name)
        if f is not None:
            f.write(json.dumps(rec) + "\n")
            f.flush()

    def add_sample(self, rec: dict[str, Any]) -> None:
        self.last = rec
        self._write("samples", rec)

    def add_failure(self, f: Failure) -> None:
        self.failed += 1
        self._write("failures", asdict(f))

    def load_records(self) -> None:
        """Close the record files and read them back (for the verdict and the plot)."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        out = self.cfg.out
        if (out / "samples.jsonl").exists():
            self.samples = [json.loads(line) for line in
                            (out / "samples.jsonl").read_text().splitlines()]
            self.failures = [Failure(**json.loads(line)) for line in
                             (out / "failures.jsonl").read_text().splitlines()]
            (out / "samples.jsonl").unlink()
            (out / "failures.jsonl").unlink()


# -- measurements ----------------------------------------------------------------------------


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def trio_tasks() -> int:
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    return count(root) if root is not None else 0


def tables(real: RealHost) -> dict[str, tuple[int, int]]:
    """Each stack table's largest size over the interfaces, with its configured bound."""
    out: dict[str, tuple[int, int]] = {}
    def put(name: str, size: int, bound: int) -> None:
        old = out.get(name, (0, bound))
        out[name] = (max(old[0], size), bound)

    for state in real.host.tcpip6.interfaces.values():
        stack = state.stack
        if stack is None:
            continue
        cfg = stack.config
        put("neighbor_cache", len(stack.nud.entries), cfg.neighbor_cache_size)
        put("reassembly", len(stack.reassembler.datagrams), cfg.reassembly_max_datagrams)
        put("tcp_connections", len(stack.tcp.conns), cfg.tcp.max_connections)
        put("destination_cache", len(stack.router.destinations), cfg.destination_cache_size)
        put("echo_replies", len(stack.echo_replies), ECHO_REPLIES_KEPT)
    return out


def host_lists(real: RealHost, history: int) -> dict[str, tuple[int, int | None]]:
    """Every list the host keeps, with its bound (None: no bound of its own — flatness is
    checked at the quiet points instead)."""
    host = real.host
    k = host.kernel
    adapters = len(real.topology.sites) + 1
    apps_stats = len(host.applications.stats) if host.applications is not None else 0
    return {
        "heartbeat_beats": (len(host.heartbeat.beats), history),
        "pnp_arrivals": (len(host.pnp.arrivals), history),
        "pnp_removed": (len(host.pnp.removed), history),
        "stall_episodes": (len(host.detector.stalls), history),
        "app_stats": (apps_stats, 2 * ADAPTERS),
        "binder_interfaces": (len(host.tcpip6.interfaces), ADAPTERS),
        "ndis_miniports": (len(host.ndis.miniports), ADAPTERS),
        "devices": (len(real.topology.sites), adapters),
        "binder_waiters": (host.tcpip6.waiters, None),
        "kernel_timers": (len(k._timers), None),
        "kernel_dpcs": (len(k._dpcs), None),
        "critical_pending": (len(k.queue("critical").pending), None),
    }


def counters(real: RealHost) -> dict[str, int]:
    """Drops and retransmissions so far (for reading a failure's cause in soak.json)."""
    c: dict[str, int] = {}

    def add(key: str, n: int) -> None:
        if n:
            c[key] = c.get(key, 0) + n

    for site in real.topology.sites.values():
        add("device_tx_dropped", site.port.tx_dropped)
    for state in real.host.tcpip6.interfaces.values():
        if state.stack is not None:
            for key, n in state.stack.counters.items():
                if key.startswith(("drop.", "tcp.retrans", "tcp.conn_table", "tcp.rto")):
                    add(key, n)
    for key, n in real.host.tcpip6.counters.items():
        add("tcpip6." + key, n)
    for state in real.host.tcpip6.interfaces.values():
        for key, n in state.counters.items():
            add("tcpip6." + key, n)
    for block in real.host.ndis.miniports.values():
        add("stall_dropped", block.miniport.stall_dropped)
    return c


# -- faults ----------------------------------------------------------------------------------


class Faults:
    """The fault cycle, acting on the host as a miniport would indicate it to NDIS (and on
    the devices, so Linux sees it too): link flaps pull the carrier and indicate
    NDIS_STATUS_MEDIA_DISCONNECT/CONNECT; a reset aborts the miniport's requests and stalls its
    frames for RESET_STALL seconds; nic003's surprise removal deletes its device. The netem
    windows are the plan's (`netem_plan`): the host's WireFaults change the qdiscs."""

    def __init__(self, soak: Soak, real: RealHost) -> None:
        self.soak = soak
        self.real = real

    def _open(self, kind: str, adapter: str) -> Window:
        w = Window(kind, adapter, self.soak.now())
        self.soak.windows.append(w)
        return w

    def _media(self, adapter: str, connected: bool) -> None:
        """At DPC level, as the miniport's NdisMIndicateStatus."""
        host = self.real.host
        block = host.ndis.miniports.get(adapter)
        if block is None or block.miniport.media_connected == connected:
            return
        block.miniport.set_media(connected)
        host.ndis.indicate_status(adapter, NDIS_STATUS_MEDIA_CONNECT if connected
                                  else NDIS_STATUS_MEDIA_DISCONNECT)

    async def link_flap(self, adapter: str, duration: float) -> None:
        k = self.real.host.kernel
        if adapter not in self.real.host.ndis.miniports:
            return
        w = self._open("link-flap", adapter)
        k.queue_dpc(self._media, adapter, False)
        try:
            await trio.sleep(duration)
        finally:
            k.queue_dpc(self._media, adapter, True)
            w.end = self.soak.now()

    async def reset(self, adapter: str) -> None:
        host = self.real.host
        block = host.ndis.miniports.get(adapter)
        if block is None:
            return
        w = self._open("reset", adapter)
        host.kernel.queue_dpc(host.ndis.reset_miniport, adapter)
        block.miniport.stall(RESET_STALL)
        await trio.sleep(RESET_STALL)
        w.end = self.soak.now()

    async def depart_and_return(self, away: float) -> None:
        host = self.real.host
        if HOTPLUG not in host.ndis.miniports:
            return
        w = self._open("pnp", HOTPLUG)
        host.kernel.queue_dpc(host.pnp.surprise_remove, HOTPLUG)
        try:
            await trio.sleep(away)
        finally:
            config = host.adapter_configs(1, first=ADAPTERS - 1)[0]
            host.pnp.schedule([config], start=host.kernel.now)
            # back when its interface is up again and its address passed DAD
            with trio.move_on_after(10.0):
                while host.ipv6_ready() < ADAPTERS:  # noqa: ASYNC110 - nothing to await on
                    await trio.sleep(0.05)
            w.end = self.soak.now()


def netem_plan(cfg: SoakConfig, reorder: bool = True) -> tuple[FaultPlan, list[Window]]:
    """Every cycle's netem window on nic002, both directions: 20 % loss, and (`reorder`) a
    quarter of the frames 20 ms late (so later ones overtake them), as a fault plan on the
    kernel's timeline (t = 0 is kernel time START), and the windows it makes."""
    active = cfg.cycle - cfg.quiet
    cycles = int(cfg.minutes * 60 // cfg.cycle) + 1
    text = ["[run]", f"seed = {cfg.seed}"]
    windows = []
    for n in range(cycles):
        a = n * cfg.cycle + NETEM_AT * active
        b = a + NETEM_FOR * active
        windows.append(Window("netem", "nic002", a, b))
        for action, extra in (("loss", "probability = 0.2"),
                              ("reorder", "probability = 0.25\ndelay = 0.02"))[:2 if reorder
                                                                                else 1]:
            text += ["[[wire]]", f'id = "{action}{n}"', f'action = "{action}"', extra,
                     'direction = "both"', 'adapters = ["nic002"]',
                     f"after = {START + a:.3f}", f"until = {START + b:.3f}"]
    return parse_plan("\n".join(text) + "\n", source="<soak netem plan>"), windows


# -- the run ---------------------------------------------------------------------------------


def _child_preexec(netns: str) -> Callable[[], None]:
    enter = netns_preexec(netns)

    def preexec() -> None:
        enter()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the soak stops it (and its parent's
        # death: it polls, as tcpip6lab.peerd does — PR_SET_PDEATHSIG would fire when trio's
        # spawning worker thread ends)

    return preexec


async def run_load(soak: Soak, real: RealHost, *, task_status: trio.TaskStatus[None]
                   = trio.TASK_STATUS_IGNORED) -> None:
    """bench.soakload in the namespace; its failures and counts come back as JSON lines."""
    cfg = soak.cfg
    targets = [addr_str(adapter_ula(i)) for i in range(ADAPTERS - 1)]
    spec = {"start": soak.wall0, "cycle": cfg.cycle, "quiet": cfg.quiet,
            "report": cfg.sample, "targets": targets, "ping_interval": cfg.ping_interval,
            "http_period": cfg.http_period, "udp_period": cfg.udp_period,
            "bulk_bytes_per_s": cfg.bulk_kbps * 1024, "parent": os.getpid()}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bench.soakload", json.dumps(spec)], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        preexec_fn=_child_preexec(real.topology.netns))
    started = False
    try:
        async with contextlib.aclosing(stdout_lines(proc)) as lines:
            async for line in lines:
                rec = json.loads(line)
                if rec["kind"] == "ready" and not started:
                    started = True
                    task_status.started()
                elif rec["kind"] == "fail":
                    soak.add_failure(Failure("load", rec["request"], rec["target"],
                                             rec["t"], rec["timeout"], rec["error"]))
                elif rec["kind"] == "counts":
                    soak.counts.update({f"load_{k}": v for k, v in rec["counts"].items()})
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


async def fault_cycles(soak: Soak, faults: Faults) -> None:
    cfg = soak.cfg
    active = cfg.cycle - cfg.quiet
    n = 0
    while True:
        base = soak.t0 + n * cfg.cycle
        async with trio.open_nursery() as nursery:  # one cycle's faults
            for at, job in ((0.0, lambda: faults.link_flap("nic000", cfg.flap)),
                            (0.20, lambda: faults.reset("nic001")),
                            (0.40, lambda: faults.depart_and_return(cfg.away * cfg.cycle))):
                async def fire(at: float = at, job: Callable[[], Any] = job,
                               base: float = base) -> None:
                    await trio.sleep_until(base + at * active)
                    await job()

                nursery.start_soon(fire)
        n += 1
        await trio.sleep_until(soak.t0 + n * cfg.cycle)


async def sampler(soak: Soak, real: RealHost) -> None:
    cfg = soak.cfg
    n = 0
    while True:
        n += 1
        await trio.sleep_until(soak.t0 + n * cfg.sample)
        soak.add_sample({
            "t": round(soak.now(), 3), "rss_kb": rss_kb(), "fds": open_fds(),
            "tasks": trio_tasks(),
            "tables": {k: list(v) for k, v in tables(real).items()},
            "lists": {k: list(v) for k, v in host_lists(real, cfg.history).items()},
            "counters": counters(real)})


async def quiet_points(soak: Soak, real: RealHost) -> None:
    cfg = soak.cfg
    n = 0
    while True:
        n += 1
        await trio.sleep_until(soak.t0 + n * cfg.cycle - 2.0)
        conns = tables(real).get("tcp_connections", (0, 0))[0]
        soak.quiet_points.append({"t": round(soak.now(), 3), "cycle": n, "fds": open_fds(),
                                  "tasks": trio_tasks(), "tcp_connections": conns,
                                  "binder_waiters": real.host.tcpip6.waiters,
                                  "rss_kb": rss_kb()})


async def progress(soak: Soak, stop_at: float) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn("soak"), BarColumn(), TextColumn("{task.fields[status]}"),
                  TimeRemainingColumn(), console=console, transient=False,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("soak", total=stop_at, status="")
        last_line = 0.0
        while True:
            await trio.sleep(1.0)
            s = soak.last
            status = (f"RSS {s['rss_kb'] / 1024:.1f} MB  fds {s['fds']}  tasks {s['tasks']}  "
                      f"failed requests {soak.failed}" if s else "starting")
            bar.update(task, completed=min(soak.now(), stop_at), status=status)
            if not console.is_terminal and soak.now() - last_line >= 60:
                last_line = soak.now()
                console.print(f"t={soak.now():6.0f}s  {status}")


async def soak_main(cfg: SoakConfig, registry: Registry, holder: list[RealHost],
                    signals: Any) -> Soak:
    soak = Soak(cfg)
    soak.open_records()
    params = ModelParams()
    real = make_real_host(params, backend="tap", adapters=ADAPTERS, seed=cfg.seed,
                          netns=None, registry=registry, history=cfg.history)
    holder.append(real)
    netem_windows: list[Window] = []
    if cfg.netem:
        has_netem = netem.kernel_has_netem()
        plan, windows = netem_plan(cfg, reorder=has_netem)
        check_plan(plan, "tap")
        if not has_netem:  # loss through the BPF fallback (ndisemu/backends/bpf.py)
            soak.notes.append("kernel without netem (CONFIG_NET_SCH_NETEM): the wire windows' "
                              "loss goes through the BPF fallback, reordering left out")
        try:
            real.wire_faults = WireFaults(real.topology, real.host.kernel, plan)
            real.wire_faults.prepare()
        except BackendError as exc:
            real.wire_faults = None
            soak.notes.append(f"wire loss and reordering left out: {exc}")
        else:
            netem_windows = windows
    host = real.host
    async with running(real) as nursery:
        problem = await nursery.start(run_peerd, real.topology.netns)
        if problem is not None:
            raise BackendError(f"peer services did not start: {problem}")
        host.add_routable_addresses()
        host.run_services(nursery)
        applications = host.run_applications(nursery, real.peer_address)

        epoch = [host.kernel.now]  # kernel time of t = 0 (the applications' clock)

        def app_failed(st: apps.AppStats, when: float, exc: BaseException) -> None:
            t = when - epoch[0]
            if soak.t0 == 0.0:  # before the soak's start (the host coming up): counted only
                soak.counts["app_failures_before_start"] = \
                    soak.counts.get("app_failures_before_start", 0) + 1
                return
            soak.add_failure(Failure("app", st.app, st.adapter, t,
                                         APP_TIMEOUTS[st.app], st.last_error or repr(exc)))

        applications.on_failure.append(app_failed)
        host.pnp.schedule(real.configs, start=host.kernel.now + 0.2, interval=0.1)
        nursery.start_soon(watch_devices, real, io.StringIO(), 0.1, None)
        with trio.fail_after(30):
            while host.ipv6_ready() < ADAPTERS:  # noqa: ASYNC110 - nothing to await on
                await trio.sleep(0.05)
        if host.kernel.now > START - 1.0:
            raise BackendError(f"the host took {host.kernel.now:.1f}s to come up (the soak "
                               f"starts at {START:g}s)")
        await trio.sleep_until(host.kernel.trio_time(START))
        soak.t0 = trio.current_time()
        soak.wall0 = time.time()
        epoch[0] = host.kernel.now
        faults = Faults(soak, real)
        soak.windows.extend(netem_windows)
        if not cfg.netem:
            soak.notes.append("netem loss and reordering left out (--no-netem)")
        await nursery.start(run_load, soak, real)
        stop_at = cfg.minutes * 60
        with trio.move_on_after(stop_at):
            async with trio.open_nursery() as inner:
                inner.start_soon(fault_cycles, soak, faults)
                inner.start_soon(sampler, soak, real)
                inner.start_soon(quiet_points, soak, real)
                inner.start_soon(progress, soak, stop_at)

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        soak.notes.append("stopped early by a signal")
                        inner.cancel_scope.cancel()
                        return

                inner.start_soon(stop_on_signal)
        soak.ended_at = soak.now()
        soak.counts.update({f"app_{name}_{k}": v for name, t in applications.totals().items()
                            for k, v in t.items() if isinstance(v, int)})
        nursery.cancel_scope.cancel()
    return soak


# -- the verdict ------------------------------------------------------------------------------


def slope_per_10min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per 600 s."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return 0.0
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx * 600


def attribute(soak: Soak) -> None:
    """Give each failure the fault window it falls in (start <= t <= end + timeout + SLACK)."""
    for f in soak.failures:
        for w in soak.windows:
            end = w.end if w.end is not None else soak.ended_at
            if w.start <= f.t <= end + f.timeout + SLACK:
                f.window = f"{w.kind} {w.adapter} {w.start:.1f}-{end:.1f}s"
                break


def verdict(soak: Soak) -> dict[str, Any]:
    attribute(soak)
    span = soak.ended_at
    judged_from = span / 3
    late = [s for s in soak.samples if s["t"] >= judged_from]
    rss_slope_mb = slope_per_10min([(s["t"], s["rss_kb"] / 1024) for s in late])
    quiet = [q for q in soak.quiet_points if q["t"] >= judged_from]
    fds = sorted({q["fds"] for q in quiet})
    tasks = sorted({q["tasks"] for q in quiet})
    over: list[str] = []
    for s in soak.samples:
        for group in ("tables", "lists"):
            for name, (size, bound) in s[group].items():
                if bound is not None and size > bound:
                    over.append(f"{name} {size} > {bound} at t={s['t']:.0f}s")
    unexplained = [f for f in soak.failures if f.window is None]
    checks = {
        "rss_slope": {"value_mb_per_10min": round(rss_slope_mb, 3),
                      "target": f"< {soak.cfg.rss_target}",
                      "ok": len(late) >= 2 and rss_slope_mb < soak.cfg.rss_target},
        "quiet_fds": {"values": fds, "quiet_points": len(quiet),
                      "ok": len(quiet) >= 2 and len(fds) == 1},
        "quiet_tasks": {"values": tasks, "quiet_points": len(quiet),
                        "ok": len(quiet) >= 2 and len(tasks) == 1},
        "bounds": {"over": over[:20], "ok": not over},
        "failures": {"total": len(soak.failures), "unexplained": len(unexplained),
                     "examples": [asdict(f) for f in unexplained[:10]],
                     "ok": not unexplained},
    }
    return {"judged_from_s": round(judged_from, 1), "checks": checks,
            "ok": all(c["ok"] for c in checks.values())}


def write_results(soak: Soak, result: dict[str, Any]) -> tuple[Path, Path]:
    out = soak.cfg.out
    out.mkdir(parents=True, exist_ok=True)
    cfg = asdict(soak.cfg)
    cfg["out"] = str(cfg["out"])
    doc = {"config": cfg, "duration_s": round(soak.ended_at, 1), "verdict": result,
           "notes": soak.notes, "counts": soak.counts,
           "windows": [asdict(w) for w in soak.windows],
           "failures": [asdict(f) for f in soak.failures],
           "quiet_points": soak.quiet_points, "samples": soak.samples}
    js = out / "soak.json"
    js.write_text(json.dumps(doc, indent=1))
    png = out / "soak.png"
    plot(soak, result, png)
    return js, png


def plot(soak: Soak, result: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True)
    t = [s["t"] / 60 for s in soak.samples]
    ax = axes[0]
    ax.plot(t, [s["rss_kb"] / 1024 for s in soak.samples], color="#1b4f72")
    ax.set_ylabel("RSS (MB)")
    slope = result["checks"]["rss_slope"]["value_mb_per_10min"]
    ax.set_title(f"soak: {soak.ended_at / 60:.1f} min, RSS slope {slope:+.3f} MB/10 min over "
                 f"the last two thirds — {'PASS' if result['ok'] else 'FAIL'}")
    ax = axes[1]
    ax.plot(t, [s["fds"] for s in soak.samples], label="open fds", color="#7d3c98")
    ax.plot(t, [s["tasks"] for s in soak.samples], label="trio tasks", color="#1e8449")
    qt = [q["t"] / 60 for q in soak.quiet_points]
    ax.scatter(qt, [q["fds"] for q in soak.quiet_points], s=12, color="#7d3c98", zorder=3)
    ax.scatter(qt, [q["tasks"] for q in soak.quiet_points], s=12, color="#1e8449", zorder=3,
               label="quiet points")
    ax.set_ylabel("count")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    for name in (soak.samples[0]["tables"] if soak.samples else {}):
        ax.plot(t, [s["tables"].get(name, [0, 1])[0] for s in soak.samples], label=name)
    ax.set_ylabel("stack tables\n(largest interface)")
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    ax = axes[3]
    for name in (soak.samples[0]["lists"] if soak.samples else {}):
        ax.plot(t, [s["lists"][name][0] for s in soak.samples], label=name)
    ax.set_yscale("symlog")
    ax.set_ylabel("host lists")
    ax.set_xlabel("minutes")
    ax.legend(loc="upper left", fontsize=6, ncol=4)
    for a in axes:
        for w in soak.windows:
            end = w.end if w.end is not None else soak.ended_at
            a.axvspan(w.start / 60, end / 60, color="#f5b7b1", alpha=0.35, lw=0)
        a.axvline(result["judged_from_s"] / 60, color="#999", ls=":", lw=1)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path), dpi=90)


def report(soak: Soak, result: dict[str, Any], js: Path, png: Path) -> str:
    c = result["checks"]
    lines = [f"soak {soak.ended_at / 60:.1f} min, {len(soak.samples)} samples, "
             f"{len(soak.quiet_points)} quiet points, {len(soak.windows)} fault windows",
             f"  RSS slope (last two thirds): {c['rss_slope']['value_mb_per_10min']:+.3f} MB "
             f"per 10 min (target < {soak.cfg.rss_target:g}) "
             f"{'ok' if c['rss_slope']['ok'] else 'MISSED'}",
             f"  fds at quiet points: {c['quiet_fds']['values']} "
             f"{'ok' if c['quiet_fds']['ok'] else 'MISSED'}",
             f"  trio tasks at quiet points: {c['quiet_tasks']['values']} "
             f"{'ok' if c['quiet_tasks']['ok'] else 'MISSED'}",
             f"  tables and lists within their bounds: "
             f"{'ok' if c['bounds']['ok'] else 'MISSED: ' + '; '.join(c['bounds']['over'][:3])}",
             f"  failed requests: {c['failures']['total']}, outside every fault window + "
             f"timeout: {c['failures']['unexplained']} "
             f"{'ok' if c['failures']['ok'] else 'MISSED'}"]
    for f in c["failures"]["examples"][:3]:
        lines.append(f"    {f['source']} {f['request']} {f['target']} at {f['t']:.1f}s: "
                     f"{f['error']}")
    for note in soak.notes:
        lines.append(f"  note: {note}")
    lines.append(f"  {js}  {png}")
    lines.append("verdict: " + ("PASS" if result["ok"] else "FAIL"))
    return "\n".join(lines)


def parse(argv: list[str] | None) -> SoakConfig:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--cycle", type=float, default=60.0, help="seconds per load/fault cycle")
    ap.add_argument("--quiet", type=float, default=10.0,
                    help="seconds of quiet closing each cycle")
    ap.add_argument("--history", type=int, default=HISTORY_KEPT,
                    help="entries each of the host's histories keeps")
    ap.add_argument("--bulk-kbps", type=float, default=64.0,
                    help="TCP bulk KB/s per adapter (0: none)")
    ap.add_argument("--rss-target", type=float, default=RSS_TARGET_MB_PER_10MIN,
                    help="the RSS slope target, MB per 10 minutes (default %(default)s)")
    ap.add_argument("--no-netem", action="store_true", help="leave netem out of the plan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/soak"))
    a = ap.parse_args(argv)
    cfg = SoakConfig(minutes=a.minutes, sample=a.sample, cycle=a.cycle, quiet=a.quiet,
                     history=a.history, bulk_kbps=a.bulk_kbps, netem=not a.no_netem,
                     seed=a.seed, out=a.out, rss_target=a.rss_target)
    cfg.check()
    return cfg


def main(argv: list[str] | None = None) -> int:
    # From the first instruction, SIGTERM unwinds like Ctrl-C (through every finally below);
    # inside trio the signal receiver takes over and ends the run at its next step.
    def _interrupt(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        cfg = parse(argv)
        from ndisemu.backends.topology import preflight

        preflight("tap")
    except (BenchUsageError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    registry: Registry | None = None
    holder: list[RealHost] = []
    soak: Soak | None = None
    try:
        registry = Registry.open()

        async def top() -> Soak:
            assert registry is not None
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                return await soak_main(cfg, registry, holder, signals)

        soak = trio.run(top)
    except (KeyboardInterrupt, trio.TrioInternalError):
        print("interrupted", file=sys.stderr)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            removed = holder[0].close() if holder else (
                registry.teardown() if registry is not None else [])
            print(f"removed {len(removed)} devices/namespaces", file=sys.stderr)
    if soak is None:
        return 1
    soak.load_records()
    result = verdict(soak)
    js, png = write_results(soak, result)
    print(report(soak, result, js, png))
    return 0 if result["ok"] and "stopped early by a signal" not in soak.notes else 1


if __name__ == "__main__":
    sys.exit(main())
