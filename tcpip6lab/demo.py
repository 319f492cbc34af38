"""`tcpip6-lab demo`: an unpatched host and a fixed one, side by side, live.

Both hosts are identical (same seed, same model) except for the OID executor: `critical` (the
unpatched tcpip6.sys) and `dedicated` (the hotfix). One adapter is bound before the storm; then
a burst of adapters arrives while the peer pings every adapter over IPv6 and IPv4. Virtual time
is paced at `--speed` virtual seconds per wall second by tcpip6lab.pacing.PacedClock, which moves
it only while trio sleeps, so the verdict does not depend on the machine's load.

Both hosts run their built-in services (every interface) and the applications that rely on
TCP/IPv6 (tcpip6lab.apps, on nic000, the interface up before the storm) by default
(`--no-services`, `--no-apps`); the live view and the verdict count the applications' errors.
On `--backend tap` real clients stand beside the real pings: for every adapter, from the
namespace, an HTTP GET of the status page at its ULA address and a TCP echo round trip, each
once per second through kernel sockets, with a one-second timeout.
"""

from __future__ import annotations

import argparse
import shutil
import socket
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
from ndisemu.backends.netlink import Registry, in_netns
from ndisemu.backends.topology import preflight
from ndisemu.executive.core import WorkerState
from ndisemu.offload import OffloadCaps
from ndisemu.params import CRITICAL
from tcpip6.wire.ipv6 import addr_str

from .host import EmulatedHost
from .params import ModelParams, adapter_ula
from .peer import PingStats
from .serve import RealHost, make_real_host, offload_default, ping_process, run_peerd
from .wirefaults import check_plan

PRE_BOUND_AT = 0.5
BURST_AT = 3.0
PING_INTERVAL = 0.5
PING_WINDOW = 1.6  # an adapter "answers" if a reply arrived within this many seconds
CLIENT_INTERVAL = 1.0  # the real TCP clients' period (tap backend)
CLIENT_TIMEOUT = 1.0
CLIENT_WINDOW = 2.1  # an adapter "answers" a client if it succeeded within this many seconds


@dataclass
class Side:
    label: str
    host: EmulatedHost
    #: Ping results per adapter and family, from real `ping` processes (TAP backend);
    #: None means the emulated peer's own (memory backend).
    pings: dict[str, dict[int, PingStats]] | None = None
    #: real kernel-socket clients from the namespace (tap backend): "http" and "echo", per
    #: adapter
    clients: dict[str, dict[str, PingStats]] | None = None

    def client_answering(self, kind: str, now: float) -> tuple[int, int]:
        if self.clients is None:
            return 0, 0
        ok = sum(1 for c in self.clients.values() if c[kind].ok_since(now - CLIENT_WINDOW))
        return ok, len(self.clients)

    def apps_text(self) -> str | None:
        apps = self.host.applications
        if apps is None:
            return None
        t = apps.totals()
        return ", ".join(f"{name} {v['ok']} ok/{v['failures']} failed"
                         + (f" (failing on {v['failing_adapters']}/{v['adapters']})"
                            if v["failing_adapters"] else "")
                         for name, v in t.items())

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
        text = (f"{self.label}: {head}; IPv6 answers on {v6}/{n} adapters"
                f"{' (nic000, bound before the storm, too)' if self.first_adapter_v6(now) else ''}"
                f", IPv4 on {v4}/{n}; {hb_text}")
        if self.clients is not None:
            http, m = self.client_answering("http", now)
            echo, _ = self.client_answering("echo", now)
            text += f"; real HTTP GET answered on {http}/{m}, TCP echo on {echo}/{m}"
        apps = self.apps_text()
        if apps is not None:
            text += f"; applications: {apps}"
        return text


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

    def client(kind: str) -> Callable[[Side], Text]:
        def cell(s: Side) -> Text:
            ok, n = s.client_answering(kind, now)
            style = "green" if n and ok == n else ("red" if ok == 0 and n else "yellow")
            return Text(f"{ok}/{n} adapters answer", style=style)
        return cell

    if any(s.clients is not None for s in sides):
        row("HTTP GET (kernel TCP)", client("http"))
        row("TCP echo (kernel TCP)", client("echo"))

    def apps(kind: str) -> Callable[[Side], Text]:
        def cell(s: Side) -> Text:
            a = s.host.applications
            if a is None:
                return Text("off", style="dim")
            v = a.totals()[kind]
            style = "bold red" if v["failing_adapters"] else "green"
            text = f"{v['ok']} ok, {v['failures']} failed"
            if v["failing_adapters"]:
                text += f" — failing on {v['failing_adapters']}/{v['adapters']}"
            return Text(text, style=style)
        return cell

    if any(s.host.applications is not None for s in sides):
        row("app tcp-rr", apps("tcp-rr"))
        row("app udp-lookup", apps("udp-lookup"))

    def hb(s: Side) -> Text:
        if not s.heartbeat_stopped():
            beats = s.host.heartbeat.count
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
        extra = ""
        if s.clients is not None:
            http, m = s.client_answering("http", now)
            echo, _ = s.client_answering("echo", now)
            extra += f", http {http}/{m}, echo {echo}/{m}"
        if s.host.applications is not None:
            t = s.host.applications.totals()
            extra += ", apps " + " ".join(f"{k} {v['failures']} failed" for k, v in t.items())
        parts.append(f"{s.label}: critical {q.blocked}/{len(q.workers)} blocked, "
                     f"queued {len(q.pending)}, bound {s.host.bound()}/{total}, "
                     f"ping6 {v6}/{n}, ping4 {v4}/{n}{extra}, heartbeat {hb}{dl}")
    return " | ".join(parts)




async def _tcp_client(real: RealHost, adapter: str, kind: str, stats: PingStats,
                      clock_start: float) -> None:
    """A kernel-socket TCP client in the namespace, every CLIENT_INTERVAL: an HTTP GET of the
    status page at the adapter's ULA address ("http"), or an echo round trip ("echo")."""
    site = real.topology.sites[adapter]
    addr = addr_str(adapter_ula(site.spec.index))
    port = 80 if kind == "http" else 7
    n = 0
    while True:
        start = trio.current_time()
        n += 1
        with in_netns(site.netns):  # the socket stays in Linux's namespace
            raw = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock = trio.socket.from_stdlib_socket(raw)
        ok = False
        with trio.move_on_after(CLIENT_TIMEOUT):
            try:
                await sock.connect((addr, port, 0, 0))
                if kind == "http":
                    await sock.send(b"GET / HTTP/1.1\r\nHost: [" + addr.encode()
                                    + b"]\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := await sock.recv(65536):
                        data += chunk
                    ok = data.startswith(b"HTTP/1.1 200") and b"tcpip6-lab" in data
                else:
                    line = f"echo {adapter} {n}\n".encode()
                    await sock.send(line)
                    data = b""
                    while len(data) < len(line) and (chunk := await sock.recv(4096)):
                        data += chunk
                    ok = data == line
            except OSError:
                ok = False
        sock.close()
        stats.sent += 1
        if ok:
            stats.answered += 1
            stats.last_answered = trio.current_time() - clock_start
        await trio.sleep_until(max(start + CLIENT_INTERVAL, trio.current_time()))


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


def _extras(host: EmulatedHost, nursery: trio.Nursery, services: bool, applications: bool,
            peer_address: Callable[[str], bytes] | None) -> None:
    host.add_routable_addresses()
    if services:
        host.run_services(nursery)
    if applications:
        # On the interface that is up before the storm (the KB's "interfaces already up"): on
        # 25 interfaces of two hosts they would cost more than a fast demo's CPU (at --speed 40
        # the loop would lag behind virtual time and every ping look late). `serve` runs them
        # on every interface.
        host.run_applications(nursery, peer_address, only=lambda adapter: adapter == "nic000")


async def _demo(args: argparse.Namespace, build: Callable[[argparse.Namespace, str], ModelParams],
                console: Console, live_view: bool) -> int:
    from .perfetto_trace import open_trace, tracer_for  # protobuf: only loaded for a demo

    total = args.adapters + 1
    services = not getattr(args, "no_services", False)
    applications = not getattr(args, "no_apps", False)
    plan = load_plan(args.faults) if args.faults else None
    sides: list[Side] = []
    reals: list[RealHost] = []
    trace = open_trace(getattr(args, "trace", None))
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
                                          plan=plan, udp_echo=services,
                                          tracer=tracer_for(trace, label),
                                          offload=offload_default(
                                              "tap", getattr(args, "offload", None)))
                    reals.append(real)
                    pings = {c.name: {6: PingStats(), 4: PingStats()} for c in real.configs}
                    clients = ({c.name: {"http": PingStats(), "echo": PingStats()}
                                for c in real.configs} if services else None)
                    side = Side(label, real.host, pings, clients)
                    await nursery.start(real.host.kernel.run)
                    for port in real.topology.ports():
                        nursery.start_soon(port.run)
                    if real.wire_faults is not None:  # the plan's [[wire]] faults: netem
                        nursery.start_soon(real.wire_faults.run)
                    if applications:
                        problem = await nursery.start(run_peerd, real.topology.netns)
                        if problem is not None:
                            console.print(f"warning: peer services: {problem}", markup=False)
                    _extras(real.host, nursery, services, applications,
                            real.peer_address if applications else None)
                    _schedule(real.host, real.configs, args.adapters)
                else:
                    host = EmulatedHost(params, seed=args.seed, pcap_dir=args.pcap,
                                        name=executor, plan=plan, udp_echo=services,
                                        tracer=tracer_for(trace, label),
                                        offload=OffloadCaps() if getattr(args, "offload", None)
                                        else None)
                    side = Side(label, host)
                    await nursery.start(host.kernel.run)
                    _extras(host, nursery, services, applications, None)
                    _schedule(host, host.adapter_configs(total), args.adapters)
                    host.start_pinging(PING_INTERVAL, start=0.5)
                sides.append(side)
            clock_start = trio.current_time()
            for side, real in zip(sides, reals, strict=False):
                assert side.pings is not None
                for name, fam in side.pings.items():
                    for family, stats in fam.items():
                        nursery.start_soon(ping_process, real, name, family, stats,
                                           clock_start, PING_INTERVAL)
                for name, kinds in (side.clients or {}).items():
                    for kind, stats in kinds.items():
                        nursery.start_soon(_tcp_client, real, name, kind, stats, clock_start)
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
        if trace is not None:
            trace.close()
    return 0


def run_demo(args: argparse.Namespace,
             build: Callable[[argparse.Namespace, str], ModelParams]) -> int:
    from .errors import UsageError

    if args.speed <= 0:
        raise UsageError(f"--speed must be > 0 (got {args.speed})")
    if args.duration <= BURST_AT:
        raise UsageError(f"--duration must be > {BURST_AT}s (the burst happens then)")
    if args.faults:  # a bad plan, or one netem cannot carry out, is refused before anything
        check_plan(load_plan(args.faults), args.backend)
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
    from .pacing import PacedClock

    # Paced, but load-independent: virtual time moves only while trio sleeps (pacing.py)
    return trio.run(_demo, args, build, console, live_view, clock=PacedClock(args.speed))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: tcpip6-lab demo")
