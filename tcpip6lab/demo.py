"""`tcpip6-lab demo`: an unpatched host and a fixed one, side by side, live.

Both hosts are identical (same seed, same model) except for the OID executor: `critical` (the
unpatched tcpip6.sys) and `dedicated` (the hotfix). One adapter is bound before the storm; then
a burst of adapters arrives while the peer pings every adapter over IPv6 and IPv4. Virtual time
is paced by trio's MockClock at `--speed` virtual seconds per wall second.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from faults.plan import load_plan
from ndisemu.backends.netlink import Registry, netns_preexec
from ndisemu.backends.topology import preflight
from ndisemu.executive.core import WorkerState
from ndisemu.params import CRITICAL
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac

from .host import EmulatedHost
from .params import ModelParams, adapter_ipv4
from .peer import PingStats
from .serve import RealHost, make_real_host

PRE_BOUND_AT = 0.5
BURST_AT = 3.0
PING_INTERVAL = 0.5
PING_WINDOW = 1.6  # an adapter "answers" if a reply arrived within this many seconds


@dataclass
class Side:
    label: str
    host: EmulatedHost
    #: Ping results per adapter and family, from real `ping` processes (TAP backend);
    #: None means the emulated peer's own (memory backend).
    pings: dict[str, dict[int, PingStats]] | None = None

    def stats(self) -> dict[str, dict[int, PingStats]]:
        if self.pings is not None:
            return self.pings
        return {name: {6: s.v6, 4: s.v4} for name, s in self.host.peers.items()}

    def answering(self, family: int, now: float) -> tuple[int, int]:
        stats = self.stats()
        ok = sum(1 for st in stats.values() if st[family].ok_since(now - PING_WINDOW))
        return ok, len(stats)

    def first_adapter_v6(self, now: float) -> bool:
        st = self.stats().get("nic000")
        return st is not None and st[6].ok_since(now - PING_WINDOW)

    def heartbeat_stopped(self) -> bool:
        """Stopped: no beat for two balance periods (of the host's own clock), counted from its
        start while no beat has come yet — never "stopped" before the first interval."""
        k = self.host.kernel
        return self.host.heartbeat.stopped(k.now, 2 * k.params.balance_period)

    def heartbeat_age(self) -> float:
        hb = self.host.heartbeat
        last = hb.last_beat if hb.last_beat is not None else hb.started_at
        return 0.0 if last is None else self.host.kernel.now - last

    def verdict(self, now: float, total: int) -> str:
        h = self.host
        v6, n = self.answering(6, now)
        v4, _ = self.answering(4, now)
        hb_text = "heartbeat OK" if not self.heartbeat_stopped() \
            else f"heartbeat stopped at t={h.heartbeat.last_beat or 0:.2f}s"
        if h.deadlock is not None:
            q = h.kernel.queue(CRITICAL)
            head = (f"DEADLOCK — {q.blocked}/{len(q.workers)} critical workers blocked, "
                    f"{h.bound()}/{total} bound by tcpip6")
        elif h.bound() == total:
            times = [s.bound_at - s.started_at for s in h.tcpip6_states() if s.bound_at]
            head = f"HEALTHY — {total}/{total} bound by tcpip6 (slowest bind {max(times):.3f}s)"
        else:
            head = f"NOT SETTLED — {h.bound()}/{total} bound by tcpip6"
        return (f"{self.label}: {head}; IPv6 answers on {v6}/{n} adapters"
                f"{' (nic000, bound before the storm, too)' if self.first_adapter_v6(now) else ''}"
                f", IPv4 on {v4}/{n}; {hb_text}")


def _pool_glyphs(host: EmulatedHost) -> Text:
    q = host.kernel.queue(CRITICAL)
    t = Text()
    for w in q.workers:
        if w.state is WorkerState.BLOCKED:
            t.append("■", style="bold red" if w.dynamic else "red")
        elif w.state is WorkerState.RUNNING:
            t.append("▶", style="green")
        else:
            t.append("·", style="dim")
    for _ in range(q.spec.max_threads - len(q.workers)):
        t.append("○", style="dim")
    return t


def render(sides: list[Side], now: float, total: int, speed: float) -> Group:
    table = Table(title=f"KB968597 — virtual t = {now:6.2f}s  (speed ×{speed:g})",
                  caption=f"t={PRE_BOUND_AT:g}s nic000 arrives · t={BURST_AT:g}s a burst of "
                          f"{total - 1} adapters · the peer pings all every {PING_INTERVAL:g}s\n"
                          "■ blocked  ▶ running  · idle  ○ not created (static + 16 dynamic)",
                  expand=False)
    table.add_column("")
    for s in sides:
        table.add_column(s.label, min_width=34)

    def row(name: str, fn: Callable[[Side], Any]) -> None:
        table.add_row(name, *[fn(s) for s in sides])

    def pool(s: Side) -> Text:
        q = s.host.kernel.queue(CRITICAL)
        text = _pool_glyphs(s.host)
        text.append(f"  {q.blocked} blocked / {len(q.workers)} threads")
        return text

    row("critical pool", pool)
    row("critical queued", lambda s: str(len(s.host.kernel.queue(CRITICAL).pending)))
    row("tcpip6 OIDs pending", lambda s: str(s.host.tcpip6_oids_pending()))
    row("tcpip6 bound", lambda s: f"{s.host.bound()}/{total}")
    row("IPv4 bound", lambda s: f"{s.host.ipv4_bound()}/{total}")

    def ping(family: int) -> Callable[[Side], Text]:
        def cell(s: Side) -> Text:
            ok, n = s.answering(family, now)
            style = "green" if n and ok == n else ("red" if ok == 0 and n else "yellow")
            return Text(f"{ok}/{n} adapters answer", style=style)
        return cell

    row("ping -6", ping(6))
    row("ping (IPv4)", ping(4))

    def hb(s: Side) -> Text:
        if not s.heartbeat_stopped():
            beats = len(s.host.heartbeat.beats)
            return Text(f"beating ({beats})" if beats else "starting", style="green")
        return Text(f"STOPPED {s.heartbeat_age():.1f}s ago", style="bold red")

    row("heartbeat", hb)

    def status(s: Side) -> Text:
        dl = s.host.deadlock
        if dl is not None:
            return Text(f"DEADLOCK proven at t={dl.detected_at:.1f}s", style="bold red")
        if now < BURST_AT:
            return Text("waiting for the burst", style="dim")
        return Text("running", style="green")

    row("detector", status)
    return Group(table)


def plain_line(sides: list[Side], now: float, total: int) -> str:
    parts = [f"t={now:5.1f}s"]
    for s in sides:
        q = s.host.kernel.queue(CRITICAL)
        v6, n = s.answering(6, now)
        v4, _ = s.answering(4, now)
        hb = "STOPPED" if s.heartbeat_stopped() else "ok"
        dl = " DEADLOCK" if s.host.deadlock is not None else ""
        parts.append(f"{s.label}: critical {q.blocked}/{len(q.workers)} blocked, "
                     f"queued {len(q.pending)}, bound {s.host.bound()}/{total}, "
                     f"ping6 {v6}/{n}, ping4 {v4}/{n}, heartbeat {hb}{dl}")
    return " | ".join(parts)


_REPLY = re.compile(rb"bytes from .*icmp_seq=(\d+)")


async def _ping_process(real: RealHost, adapter: str, family: int, stats: PingStats,
                        clock_start: float) -> None:
    """A real `ping` in the host's namespace for the whole demo; each reply line counts."""
    site = real.topology.sites[adapter]
    cfg = next(c for c in real.configs if c.name == adapter)
    if family == 6:
        target = f"{addr_str(link_local_from_mac(cfg.mac))}%{site.device}"
    else:
        target = socket.inet_ntoa(adapter_ipv4(int(cfg.tags["index"])))
    argv = ["ping", f"-{family}", "-n", "-i", str(PING_INTERVAL), "-W", "1", target]
    proc = await trio.lowlevel.open_process(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        preexec_fn=netns_preexec(site.netns))
    try:
        assert proc.stdout is not None
        buf = b""
        async for chunk in proc.stdout:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if _REPLY.search(line):
                    stats.answered += 1
                    stats.last_answered = trio.current_time() - clock_start
    finally:
        proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


async def _drive_view(sides: list[Side], args: argparse.Namespace, console: Console,
                      live_view: bool, total: int, clock_start: float) -> None:
    def vnow() -> float:
        return trio.current_time() - clock_start

    if live_view:
        with Live(render(sides, 0.0, total, args.speed), console=console,
                  refresh_per_second=10, transient=False) as live:
            while vnow() < args.duration:
                await trio.sleep(0.1)
                live.update(render(sides, vnow(), total, args.speed))
    else:
        next_line = 0.0
        while vnow() < args.duration:
            await trio.sleep(0.1)
            if vnow() >= next_line:
                console.print(plain_line(sides, vnow(), total), highlight=False,
                              markup=False, soft_wrap=True)
                next_line += 1.0


def _schedule(host: EmulatedHost, configs: list[Any], adapters: int) -> None:
    host.start()
    host.pnp.schedule(configs[:1], start=PRE_BOUND_AT)
    host.pnp.schedule(configs[1:1 + adapters], start=BURST_AT)


async def _demo(args: argparse.Namespace, build: Callable[[argparse.Namespace, str], ModelParams],
                console: Console, live_view: bool) -> int:
    total = args.adapters + 1
    plan = load_plan(args.faults) if args.faults else None
    sides: list[Side] = []
    reals: list[RealHost] = []
    registry = Registry.open() if args.backend == "tap" else None
    try:
        async with trio.open_nursery() as nursery:
            for label, executor in (("unpatched (critical)", "critical"),
                                    ("fixed (dedicated)", "dedicated")):
                params = build(args, executor)
                if registry is not None:
                    real = make_real_host(params, backend="tap", adapters=total,
                                          seed=args.seed, netns=f"{registry.run_id}{executor[0]}",
                                          registry=registry, pcap_dir=args.pcap, name=executor,
                                          plan=plan)
                    reals.append(real)
                    pings = {c.name: {6: PingStats(), 4: PingStats()} for c in real.configs}
                    side = Side(label, real.host, pings)
                    await nursery.start(real.host.kernel.run)
                    for port in real.topology.ports():
                        nursery.start_soon(port.run)
                    _schedule(real.host, real.configs, args.adapters)
                else:
                    host = EmulatedHost(params, seed=args.seed, pcap_dir=args.pcap,
                                        name=executor, plan=plan)
                    side = Side(label, host)
                    await nursery.start(host.kernel.run)
                    _schedule(host, host.adapter_configs(total), args.adapters)
                    host.start_pinging(PING_INTERVAL, start=0.5)
                sides.append(side)
            clock_start = trio.current_time()
            for side, real in zip(sides, reals, strict=False):
                assert side.pings is not None
                for name, fam in side.pings.items():
                    for family, stats in fam.items():
                        nursery.start_soon(_ping_process, real, name, family, stats,
                                           clock_start)
            await _drive_view(sides, args, console, live_view, total, clock_start)
            nursery.cancel_scope.cancel()
        now = args.duration
        console.print()
        console.print("Verdict:", style="bold")
        for s in sides:
            console.print("  " + s.verdict(now, total), highlight=False, markup=False,
                          soft_wrap=True)
        unpatched = sides[0].host
        if unpatched.deadlock is not None:
            console.print()
            console.print("Wait-for chain of the unpatched host (built from the executive's "
                          "recorded waits):", style="bold")
            console.print(unpatched.deadlock.render(limit=6), highlight=False, markup=False,
                          soft_wrap=True)
    finally:
        for s in sides:
            s.host.close()
        for real in reals:
            real.close()
        if registry is not None:
            registry.teardown()
    return 0


def run_demo(args: argparse.Namespace,
             build: Callable[[argparse.Namespace, str], ModelParams]) -> int:
    from .errors import UsageError

    if args.speed <= 0:
        raise UsageError(f"--speed must be > 0 (got {args.speed})")
    if args.duration <= BURST_AT:
        raise UsageError(f"--duration must be > {BURST_AT}s (the burst happens then)")
    if args.faults:
        load_plan(args.faults)  # a bad plan is refused before anything starts
    console = Console(highlight=False)
    live_view = console.is_terminal and not args.plain
    if args.backend == "tap":
        # Real devices run on the real clock: no pacing.
        preflight("tap")
        if shutil.which("ping") is None:
            raise UsageError("demo --backend tap needs Linux's ping (apt-get install "
                             "iputils-ping)")
        args.speed = 1.0
        return trio.run(_demo, args, build, console, live_view)
    from trio.testing import MockClock  # pulls in pytest: kept off the start-up path

    clock = MockClock(rate=args.speed)
    return trio.run(_demo, args, build, console, live_view, clock=clock)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: tcpip6-lab demo")
