"""`tcpip6-lab demo`: an unpatched host and a fixed one, side by side, live.

Both hosts are identical (same seed, same model) except for the OID executor: `critical` (the
unpatched tcpip6.sys) and `dedicated` (the hotfix). One adapter is bound before the storm; then
a burst of adapters arrives while the peer pings every adapter over IPv6 and IPv4. Virtual time
is paced by trio's MockClock at `--speed` virtual seconds per wall second.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
import trio.testing
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ndisemu.executive.core import WorkerState
from ndisemu.params import CRITICAL

from .host import EmulatedHost, ModelParams

PRE_BOUND_AT = 1.0
BURST_AT = 3.0
PING_INTERVAL = 0.5
PING_WINDOW = 1.6  # an adapter "answers" if a reply arrived within this many seconds


@dataclass
class Side:
    label: str
    host: EmulatedHost

    def answering(self, family: int, now: float) -> tuple[int, int]:
        sides = list(self.host.peers.values())
        ok = 0
        for s in sides:
            st = s.v6 if family == 6 else s.v4
            if st.ok_since(now - PING_WINDOW):
                ok += 1
        return ok, len(sides)

    def first_adapter_v6(self, now: float) -> bool:
        side = self.host.peers.get("nic000")
        return side is not None and side.v6.ok_since(now - PING_WINDOW)

    def heartbeat_age(self, now: float) -> float | None:
        last = self.host.heartbeat.last_beat
        return None if last is None else now - last

    def verdict(self, now: float, total: int) -> str:
        h = self.host
        v6, n = self.answering(6, now)
        v4, _ = self.answering(4, now)
        hb = self.heartbeat_age(now)
        hb_text = "heartbeat OK" if hb is not None and hb < 2 * h.kernel.params.balance_period \
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
        age = s.heartbeat_age(now)
        if age is not None and age < 2 * s.host.kernel.params.balance_period:
            return Text(f"beating ({len(s.host.heartbeat.beats)})", style="green")
        return Text(f"STOPPED {age or 0:.1f}s ago", style="bold red")

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
        age = s.heartbeat_age(now)
        hb = "ok" if age is not None and age < 2 else "STOPPED"
        dl = " DEADLOCK" if s.host.deadlock is not None else ""
        parts.append(f"{s.label}: critical {q.blocked}/{len(q.workers)} blocked, "
                     f"queued {len(q.pending)}, bound {s.host.bound()}/{total}, "
                     f"ping6 {v6}/{n}, ping4 {v4}/{n}, heartbeat {hb}{dl}")
    return " | ".join(parts)


async def _demo(args: argparse.Namespace, build: Callable[[argparse.Namespace, str], ModelParams],
                console: Console, live_view: bool) -> int:
    total = args.adapters + 1
    sides = []
    for label, executor in (("unpatched (critical)", "critical"), ("fixed (dedicated)",
                                                                   "dedicated")):
        params = build(args, executor)
        host = EmulatedHost(params, seed=args.seed, pcap_dir=args.pcap,
                            name=executor)
        sides.append(Side(label, host))
    async with trio.open_nursery() as nursery:
        for s in sides:
            await nursery.start(s.host.kernel.run)
            h = s.host
            h.start()
            h.pnp.schedule(h.adapter_configs(1), start=PRE_BOUND_AT)
            h.pnp.schedule(h.adapter_configs(args.adapters, first=1), start=BURST_AT)
            h.start_pinging(PING_INTERVAL, start=0.5)
        clock_start = trio.current_time()

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
    for s in sides:
        s.host.close()
    return 0


def run_demo(args: argparse.Namespace,
             build: Callable[[argparse.Namespace, str], ModelParams]) -> int:
    if args.speed <= 0:
        from .cli import UsageError

        raise UsageError(f"--speed must be > 0 (got {args.speed})")
    if args.duration <= BURST_AT:
        from .cli import UsageError

        raise UsageError(f"--duration must be > {BURST_AT}s (the burst happens then)")
    console = Console(highlight=False)
    live_view = console.is_terminal and not args.plain
    clock = trio.testing.MockClock(rate=args.speed)
    return trio.run(_demo, args, build, console, live_view, clock=clock)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: tcpip6-lab demo")
