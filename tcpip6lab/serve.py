"""`tcpip6-lab serve`: an emulated host on a chosen backend, until Ctrl-C or SIGTERM.

With --backend tap or veth each adapter gets a real device whose Linux side sits in a network
namespace (created by this command, removed on exit), so `ping -6`, `ping`, `curl -6`, `nc -6`,
a browser … run there against the emulated host. With --backend memory the emulated peer pings
every adapter instead.

By default the host runs its built-in services on every interface (tcpip6lab.services) and the
applications that rely on TCP/IPv6 (tcpip6lab.apps), which talk to the peer services on the
other side: `tcpip6lab.peerd` in the namespace (started here, stopped at exit) or the
memory-wire peer's (tcpip6lab.peer.PeerServices). Every adapter gets a routable ULA address
beside its link-local one (tcpip6lab.params.adapter_ula; Linux's side ::2 of the same /64).

Adapters arriving after start-up — `--burst N --burst-at S`, or a plan's `[[pnp]] burst` — get
devices too. Creating one takes milliseconds, and the knot needs arrivals closer than that, so
the devices of every arrival known in advance are created before the first adapter arrives; the
arrivals themselves come at their planned times. An arrival nobody knew of gets its device when
it comes. Each is announced on stdout; a departed adapter's device is removed at once.

On real devices a plan's `[[wire]]` faults are netem qdiscs changed at their windows' edges
(tcpip6lab.wirefaults; what netem cannot express is refused before set-up), and its
`[[miniport]]` faults act on the devices: a link-flap pulls the carrier (printed with the media
indication tcpip6 gets), a surprise removal deletes the device.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import trio

from faults.plan import FaultPlan, load_plan
from ndisemu.backends.netlink import Registry, netns_preexec
from ndisemu.backends.topology import CURRENT, SiteSpec, Topology, build, preflight
from ndisemu.kernel import Kernel
from ndisemu.miniport import MiniportConfig, WireEnd
from ndisemu.offload import OffloadCaps
from ndisemu.params import HISTORY_KEPT
from ndisemu.pcap import PcapWriter
from ndisemu.trace import Tracer
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac

from . import services
from .errors import UsageError
from .host import EmulatedHost
from .params import (
    ModelParams,
    adapter_ipv4,
    adapter_mac,
    adapter_ula,
    peer_ipv4,
    peer_mac,
    peer_ula,
)
from .peer import PingStats
from .wirefaults import WireFaults, check_plan

PEERD_START_TIMEOUT = 10.0  # seconds for tcpip6lab.peerd to listen


def site_spec(cfg: MiniportConfig) -> SiteSpec:
    i = int(cfg.tags["index"])
    return SiteSpec(cfg.name, i, peer_mac(i), peer_ipv4(i), mtu=cfg.mtu, linux_ipv6=peer_ula(i),
                    offload=cfg.offload is not None)


@dataclass
class RealHost:
    """An emulated host whose adapters are real devices."""

    host: EmulatedHost
    topology: Topology
    configs: list[MiniportConfig]  # the adapters present from the start
    pcaps: list[PcapWriter]
    ports: DevicePorts | None = None
    wire_faults: WireFaults | None = None  # the plan's [[wire]] faults as netem qdiscs

    def close(self) -> list[str]:
        for w in self.pcaps:
            w.close()
        self.host.close()
        return self.topology.close()

    def describe(self) -> list[dict[str, Any]]:
        """Every device (those of adapters still to arrive too), by adapter."""
        rows = []
        for name, site in sorted(self.topology.sites.items()):
            i = site.spec.index
            mac = adapter_mac(i)
            rows.append({
                "adapter": name,
                "device": site.device,
                "netns": site.netns,
                "mac": ":".join(f"{b:02x}" for b in mac),
                "link_local": addr_str(link_local_from_mac(mac)),
                "ula": addr_str(adapter_ula(i)),
                "linux_ula": addr_str(peer_ula(i)),
                "linux_link_local": addr_str(link_local_from_mac(peer_mac(i))),
                "ipv4": socket.inet_ntoa(adapter_ipv4(i)),
                "linux_ipv4": socket.inet_ntoa(peer_ipv4(i)),
                "arrived": name in self.host.ndis.miniports,
            })
        return rows

    def peer_address(self, adapter: str) -> bytes:
        """Linux's link-local address on an adapter's device (where tcpip6lab.peerd answers)."""
        return link_local_from_mac(peer_mac(int(adapter[3:])))


class DevicePorts:
    """The host's cable factory on real devices: an arriving adapter gets its device's port.

    The host is built before its devices (they need its kernel), so the topology is handed in
    once built; adapters only arrive after that. An adapter whose device was not created in
    advance gets one when it arrives (milliseconds of netlink inside the arrival), and its
    reader is started in the running host's nursery."""

    def __init__(self, pcap_dir: str | None, name: str) -> None:
        self.pcap_dir = pcap_dir
        self.name = name
        self.topology: Topology | None = None
        self.kernel: Kernel | None = None
        self.nursery: trio.Nursery | None = None
        self.pcaps: list[PcapWriter] = []  # one per adapter name (a return appends to it)
        self._pcap_of: dict[str, PcapWriter] = {}
        self.created_late = 0  # devices made on arrival (not in advance)

    def __call__(self, cfg: MiniportConfig) -> WireEnd:
        if self.topology is None or self.kernel is None:
            raise RuntimeError(f"adapter {cfg.name} arrived before its device exists")
        site = self.topology.sites.get(cfg.name)
        if site is None:
            site = self.topology.add(self.kernel, site_spec(cfg))
            self.created_late += 1
            if self.nursery is not None:
                self.nursery.start_soon(site.port.run)
        port = site.port
        if self.pcap_dir is not None:
            w = self._pcap_of.get(cfg.name)
            if w is None:  # an adapter that comes back goes on in its own capture
                os.makedirs(self.pcap_dir, exist_ok=True)
                w = PcapWriter(os.path.join(self.pcap_dir, f"{self.name}-{cfg.name}.pcap"))
                self.pcaps.append(w)
                self._pcap_of[cfg.name] = w
            port.recorder = w
        end: WireEnd = port
        return end


def make_real_host(params: ModelParams, *, backend: str, adapters: int, seed: int,
                   netns: str | None, registry: Registry, pcap_dir: str | None = None,
                   name: str = "host", first: int = 0,
                   plan: FaultPlan | None = None, workers: str = "coroutines",
                   devices: int | None = None, udp_echo: bool = True,
                   tracer: Tracer | None = None, offload: bool = False,
                   history: int = HISTORY_KEPT) -> RealHost:
    """Build the host, then the devices its miniports will use (call inside trio): one for
    each of the `adapters` present from the start and, up to `devices` in all, for those known
    to arrive later (a burst, a plan's PnP bursts). `offload` (TAP only): task offload, the
    miniports declaring OffloadCaps() and their devices carrying virtio-net headers."""
    if offload and backend != "tap":
        raise UsageError(f"task offload needs TAP devices (virtio-net headers), not "
                         f"--backend {backend}")
    ports = DevicePorts(pcap_dir, name)
    host = EmulatedHost(params, seed=seed, name=name, wire_factory=ports, plan=plan,
                        workers=workers, udp_echo=udp_echo, tracer=tracer, history=history,
                        offload=OffloadCaps() if offload else None)
    configs = host.adapter_configs(adapters, first=first)
    extra = host.adapter_configs(max(0, (devices or adapters) - adapters),
                                 first=first + adapters)
    specs = [site_spec(c) for c in configs + extra]
    ports.kernel = host.kernel
    ports.topology = build(host.kernel, backend, specs, netns=netns, registry=registry)
    real = RealHost(host, ports.topology, configs, ports.pcaps, ports)
    if plan is not None and plan.of_kind("wire"):
        real.wire_faults = WireFaults(ports.topology, host.kernel, plan)
        real.wire_faults.prepare()  # no netem in this kernel: one line, and all is removed
    return real


@contextlib.contextmanager
def real_host(params: ModelParams, *, backend: str, adapters: int, seed: int = 0,
              netns: str | None = None, pcap_dir: str | None = None,
              plan: FaultPlan | None = None, name: str = "host",
              workers: str = "coroutines", offload: bool = False) -> Iterator[RealHost]:
    """A RealHost whose devices and namespaces are removed on exit, whatever happens."""
    registry = Registry.open()
    real = None
    try:
        real = make_real_host(params, backend=backend, adapters=adapters, seed=seed,
                              netns=netns, registry=registry, pcap_dir=pcap_dir, plan=plan,
                              name=name, workers=workers, offload=offload)
        yield real
    finally:
        if real is not None:
            real.close()
        else:
            registry.teardown()


@contextlib.asynccontextmanager
async def running(real: RealHost) -> AsyncIterator[trio.Nursery]:
    """Run a RealHost's kernel and its device readers; boot activity started, no adapter
    arrived yet (schedule them with `real.host.pnp`). Cancelled on exit."""
    host = real.host
    async with trio.open_nursery() as nursery:
        await nursery.start(host.kernel.run)
        for port in real.topology.ports():
            nursery.start_soon(port.run)
        if real.ports is not None:
            real.ports.nursery = nursery
        if real.wire_faults is not None:
            nursery.start_soon(real.wire_faults.run)
        host.start()
        yield nursery
        nursery.cancel_scope.cancel()


def _peerd_preexec(netns: str) -> Callable[[], None]:
    """Enter Linux's namespace (unless it is the current one) before exec."""
    return (lambda: None) if netns == CURRENT else netns_preexec(netns)


async def run_peerd(netns: str, *, task_status: trio.TaskStatus[str | None]
                    = trio.TASK_STATUS_IGNORED) -> None:
    """tcpip6lab.peerd in Linux's namespace until cancelled; started once it listens. Reports
    (task_status) None, or the one-line reason it could not start: the applications then fail,
    counted, and the run goes on."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tcpip6lab.peerd", "--parent", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_peerd_preexec(netns))
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = b""
        with trio.move_on_after(PEERD_START_TIMEOUT):
            async for chunk in proc.stdout:
                line += chunk
                if b"\n" in line:
                    break
        if line.strip() != b"ready":
            err = b""
            with trio.move_on_after(1.0):
                err = bytes(await proc.stderr.receive_some(4096))
            task_status.started(err.decode(errors="replace").strip().splitlines()[-1]
                                if err.strip() else "peer services did not start")
            return
        task_status.started(None)
        await proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


@dataclass
class Extras:
    """What serve runs beside the host: services, applications, a burst."""

    services: bool = True
    applications: bool = True
    burst: int = 0
    burst_at: float = 8.0


async def run_memory(host: EmulatedHost, configs: list[MiniportConfig], interval: float,
                     out: IO[str], extras: Extras | None = None) -> None:
    extras = extras or Extras()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(host.kernel.run)
            _extras(host, nursery, extras, None)
            host.start()
            host.pnp.schedule(configs, start=host.kernel.now + 0.5, interval=interval)
            if extras.burst:
                first = host.pnp.arrived
                host.pnp.schedule(host.adapter_configs(extras.burst, first=first),
                                  start=extras.burst_at)
            host.start_pinging(1.0, start=host.kernel.now + 0.5)
            nursery.start_soon(_report, host, out)
            out.write("serving; Ctrl-C or SIGTERM to stop\n")
            out.flush()
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()


def _extras(host: EmulatedHost, nursery: trio.Nursery, extras: Extras,
            peer_address: Callable[[str], bytes] | None) -> None:
    host.add_routable_addresses()
    if extras.services:
        host.run_services(nursery)
    if extras.applications:
        host.run_applications(nursery, peer_address)


async def run_real(real: RealHost, interval: float, out: IO[str],
                   signals: AsyncIterator[int], extras: Extras | None = None) -> None:
    extras = extras or Extras()
    host = real.host
    if real.wire_faults is not None:
        real.wire_faults.out = out
        if real.wire_faults.active and not real.wire_faults.netem:
            out.write("[[wire]] faults: this kernel has no netem (CONFIG_NET_SCH_NETEM); loss, "
                      "duplicate and corrupt through an eBPF classifier on each device's clsact "
                      "hook, rate through TBF\n")
    async with running(real) as nursery:
        if extras.applications:
            problem = await nursery.start(run_peerd, real.topology.netns)
            if problem is not None:
                out.write(f"warning: peer services in {real.topology.netns}: {problem}; the "
                          "applications will fail, counted\n")
            else:
                out.write(f"peer services (tcpip6lab.peerd) in {real.topology.netns}: TCP echo "
                          f"{_apps().PEER_ECHO}, lookup UDP {_apps().PEER_LOOKUP}\n")
        _extras(host, nursery, extras, real.peer_address if extras.applications else None)
        host.pnp.schedule(real.configs, start=host.kernel.now + 0.2, interval=interval)
        if extras.burst:
            first = host.pnp.arrived
            host.pnp.schedule(host.adapter_configs(extras.burst, first=first),
                              start=extras.burst_at)
        pings = Pings(real, nursery) if extras.applications and shutil.which("ping") else None
        nursery.start_soon(_report, host, out, pings)
        nursery.start_soon(watch_devices, real, out, 0.1, pings)
        out.write("serving; Ctrl-C or SIGTERM to stop and remove every device\n")
        out.flush()
        async for _ in signals:
            break


_REPLY = re.compile(rb"bytes from .*icmp_seq=(\d+)")
PING_WINDOW = 2.5  # an adapter answers `ping` if a reply came within this many seconds


async def stdout_lines(proc: trio.Process) -> AsyncGenerator[bytes, None]:
    """The lines a child writes to its stdout pipe, as they come (without their newline; an
    unterminated last piece is no line). Use under `contextlib.aclosing`."""
    assert proc.stdout is not None
    buf = b""
    async for chunk in proc.stdout:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line


async def ping_process(real: RealHost, adapter: str, family: int, stats: PingStats,
                       clock_start: float, interval: float = 1.0) -> None:
    """A real `ping -6` (link-local with its zone) or `ping -4` in Linux's namespace for the
    whole run; each reply line counts (times on trio's clock, from clock_start)."""
    site = real.topology.sites[adapter]
    i = site.spec.index
    if family == 6:
        target = f"{addr_str(link_local_from_mac(adapter_mac(i)))}%{site.device}"
    else:
        target = socket.inet_ntoa(adapter_ipv4(i))
    argv = ["ping", f"-{family}", "-n", "-i", str(interval), "-W", "1", target]
    proc = await trio.lowlevel.open_process(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        preexec_fn=_peerd_preexec(site.netns))
    try:
        async with contextlib.aclosing(stdout_lines(proc)) as lines:
            async for line in lines:
                if _REPLY.search(line):
                    stats.answered += 1
                    stats.last_answered = trio.current_time() - clock_start
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


class Pings:
    """`ping -6` and `ping -4` from the namespace to every adapter that has arrived, counted
    beside the applications in serve's progress lines."""

    def __init__(self, real: RealHost, nursery: trio.Nursery) -> None:
        self.real = real
        self.nursery = nursery
        self.clock_start = trio.current_time()
        self.stats: dict[str, dict[int, PingStats]] = {}
        self._scopes: dict[str, trio.CancelScope] = {}

    def watch(self, adapter: str) -> None:
        if adapter in self.stats:
            return
        self.stats[adapter] = {6: PingStats(), 4: PingStats()}
        scope = self._scopes[adapter] = trio.CancelScope()

        async def both() -> None:
            with scope:
                async with trio.open_nursery() as nursery:
                    for family, st in self.stats[adapter].items():
                        nursery.start_soon(ping_process, self.real, adapter, family, st,
                                           self.clock_start)

        self.nursery.start_soon(both)

    def forget(self, adapter: str) -> None:
        """The adapter departed: its pings stop (watched again if it comes back)."""
        scope = self._scopes.pop(adapter, None)
        if scope is not None:
            scope.cancel()
        self.stats.pop(adapter, None)

    def answering(self, family: int) -> tuple[int, int]:
        now = trio.current_time() - self.clock_start
        ok = sum(1 for f in self.stats.values() if f[family].ok_since(now - PING_WINDOW))
        return ok, len(self.stats)


def _apps() -> Any:
    from . import apps

    return apps


async def watch_devices(real: RealHost, out: IO[str], period: float = 0.1,
                        pings: Pings | None = None) -> None:
    """Announce adapters as they arrive (with their device), and remove a departed adapter's
    device at once (it is forgotten in the state file too). An adapter that arrives again after
    its removal gets a new device and is announced again."""
    host = real.host
    announced: dict[str, int] = {}  # adapter -> the seq of its latest arrival announced
    removed = 0
    media: dict[str, int] = {}  # adapter -> media indications tcpip6 has had
    while True:
        await trio.sleep(period)
        for name, iface in host.tcpip6.interfaces.items():
            seen = iface.counters["media_disconnect"] + iface.counters["media_connect"]
            if seen != media.get(name, 0):
                media[name] = seen
                up = iface.media_connected
                out.write(f"t={host.kernel.now:7.1f}s  {name} media "
                          f"{'connected' if up else 'disconnected'} (tcpip6 was indicated "
                          f"NDIS_STATUS_MEDIA_{'CONNECT' if up else 'DISCONNECT'})\n")
                out.flush()
        new = []
        for arrival in host.pnp.arrivals:
            name = arrival.config.name
            if arrival.block is None or arrival.seq <= announced.get(name, 0):
                continue
            announced[name] = arrival.seq
            site = real.topology.sites.get(name)
            if site is not None:
                new.append(site)
                if pings is not None:
                    pings.watch(name)
        if len(new) > 3:  # a burst: one line
            out.write(f"t={host.kernel.now:7.1f}s  {len(new)} adapters arrived: "
                      f"{new[0].spec.adapter}…{new[-1].spec.adapter} on devices "
                      f"{new[0].device}…{new[-1].device}\n")
        else:
            for site in new:
                out.write(f"t={host.kernel.now:7.1f}s  {site.spec.adapter} arrived on device "
                          f"{site.device}  http://[{addr_str(adapter_ula(site.spec.index))}]/"
                          "\n")
        out.flush()
        pnp = host.pnp
        # the removals since the last look (pnp.removed keeps the latest; pnp.removals counts)
        fresh = list(pnp.removed)[max(0, len(pnp.removed) - (pnp.removals - removed)):]
        removed = pnp.removals
        for name in fresh:
            if pings is not None:
                pings.forget(name)
            gone = real.topology.remove(name)
            out.write(f"t={host.kernel.now:7.1f}s  {name} departed; removed "
                      f"{', '.join(gone) or 'nothing'}\n")
            out.flush()


def _status_line(host: EmulatedHost, pings: Pings | None = None) -> str:
    dl = host.deadlock
    crit = host.kernel.queue("critical")
    line = (f"tcpip6 bound {host.bound()}/{len(host.tcpip6.interfaces)}  IPv4 bound "
            f"{host.ipv4_bound()}  critical {crit.blocked}/{len(crit.workers)} blocked"
            + (f"  DEADLOCK on {dl.queue}" if dl else ""))
    apps = host.applications
    if apps is not None:
        t = apps.totals()
        parts = []
        for name, v in t.items():
            state = (f"FAILING on {v['failing_adapters']}/{v['adapters']}"
                     if v["failing_adapters"] else "ok")
            parts.append(f"{name} {state} ({v['ok']} ok, {v['failures']} errors)")
        line += "  apps " + ", ".join(parts)
    if pings is not None:
        v6, n = pings.answering(6)
        v4, _ = pings.answering(4)
        line += f"  ping -6 answered on {v6}/{n}, ping -4 on {v4}/{n}"
    return line


async def _report(host: EmulatedHost, out: IO[str], pings: Pings | None = None) -> None:
    last = ""
    last_at = 0.0
    while True:
        await trio.sleep(1.0)
        status = _status_line(host, pings)
        # a line when something changed, and every 5 s anyway (the counts go on)
        head, _, tail = status.partition("  apps ")
        apps_part, _, ping_part = tail.partition("  ping -6")
        stable = head + " ".join(w for w in apps_part.split() if w in ("ok", "FAILING")) \
            + ping_part
        if stable != last or host.kernel.now - last_at >= 5.0:
            out.write(f"t={host.kernel.now:7.1f}s  {status}\n")
            out.flush()
            last, last_at = stable, host.kernel.now


def print_sites(real: RealHost, out: IO[str], extras: Extras | None = None) -> None:
    extras = extras or Extras()
    if real.topology.netns == CURRENT:
        out.write("Linux's side of each device is in the current namespace\n")
    else:
        out.write(f"namespace {real.topology.netns} (Linux's side; run tools there with "
                  f"`ip netns exec {real.topology.netns} …`)\n")
    out.write("task offload " + ("on: TCP checksums and large sends through the NIC, super-frames "
                                 "both ways (--no-offload: plain frames)\n"
                                 if real.host.offload is not None else "off\n"))
    first = {c.name for c in real.configs}
    for row in real.describe():
        later = "" if row["adapter"] in first else "  (arrives later)"
        out.write(f"  {row['adapter']}  device {row['device']:<13} MAC {row['mac']}  "
                  f"{row['link_local']}%{row['device']}  {row['ula']}  IPv4 {row['ipv4']} "
                  f"(Linux {row['linux_ipv4']}, {row['linux_ula']}){later}\n")
    print_listen_points(out, extras, [(r["adapter"], r["ula"]) for r in real.describe()
                                      if r["adapter"] in first])
    out.flush()


def print_listen_points(out: IO[str], extras: Extras,
                        addresses: list[tuple[str, str]]) -> None:
    if not extras.services:
        out.write("services: off (--no-services)\n")
    else:
        out.write("services on every interface (link-local and ULA addresses):\n")
        for proto, port, what in services.LISTEN_POINTS:
            out.write(f"  {proto} {port:<3} {what}\n")
        for adapter, ula in addresses[:4]:
            out.write(f"  {adapter}: curl -6 http://[{ula}]/   nc -6 {ula} 7\n")
        if len(addresses) > 4:
            out.write(f"  … and {len(addresses) - 4} more adapters, likewise\n")
    if extras.applications:
        a = _apps()
        out.write(f"applications on every interface: tcp-rr (TCP to the peer's echo "
                  f"{a.PEER_ECHO} every {a.TCP_PERIOD:g}s, timeout {a.TCP_TIMEOUT:g}s), "
                  f"udp-lookup (UDP {a.PEER_LOOKUP} every {a.LOOKUP_PERIOD:g}s, "
                  f"{a.LOOKUP_TRIES} tries of {a.LOOKUP_TRY_TIMEOUT:g}s)\n")
    out.flush()


def check_plan_for(plan: FaultPlan | None, backend: str) -> None:
    """Refuse, in one line and before anything is set up, what this backend cannot honour:
    on TAP and veth, the `[[wire]]` faults netem (or, on a kernel without it, the BPF
    fallback) cannot carry out (faults.netem, tcpip6lab.wirefaults)."""
    check_plan(plan, backend)


def planned_arrivals(plan: FaultPlan | None) -> int:
    """Adapters a plan's PnP bursts will add (their devices are created in advance)."""
    if plan is None:
        return 0
    return sum(int(f.params["count"]) for f in plan.of_kind("pnp") if f.action == "burst")


def offload_default(backend: str, asked: bool | None) -> bool:
    """--offload/--no-offload, or the backend's default: on for TAP (what Linux's own TAP users,
    virtio guests, do: super-frames both ways, many times fewer frames per byte), off for the
    memory wire (its traces stay NDIS 5.1's, exact) and veth (AF_PACKET has no vnet header)."""
    if asked is None:
        return backend == "tap"
    if asked and backend == "veth":
        raise UsageError("--offload needs --backend tap or memory (an AF_PACKET socket on a "
                         "veth end carries no virtio-net header)")
    return asked


def serve(args: argparse.Namespace, params: ModelParams, out: IO[str]) -> int:
    """`tcpip6-lab serve` (tcpip6lab.cli.serve parses its options)."""
    from .perfetto_trace import open_trace, tracer_for  # protobuf: only loaded when serving

    extras = Extras(services=not args.no_services, applications=not args.no_apps,
                    burst=args.burst, burst_at=args.burst_at)
    plan = load_plan(args.faults) if args.faults else None  # a bad plan: refused before set-up
    check_plan_for(plan, args.backend)
    if args.seed is None:  # as storm: the plan's [run] seed, else 0
        args.seed = plan.seed if plan is not None and plan.seed else 0
    offload = offload_default(args.backend, getattr(args, "offload", None))
    if args.backend == "memory":
        trace = open_trace(getattr(args, "trace", None))
        host = EmulatedHost(params, seed=args.seed, pcap_dir=args.pcap, plan=plan,
                            udp_echo=extras.services,
                            offload=OffloadCaps() if offload else None,
                            tracer=tracer_for(trace, "serve host (memory)"))
        configs = host.adapter_configs(args.adapters)
        out.write(f"memory backend: {args.adapters} adapters on virtual wires, the emulated "
                  "peer pings each every second\n")
        print_listen_points(out, extras, [])
        try:
            trio.run(run_memory, host, configs, args.interval, out, extras)
        finally:
            host.close()
            if trace is not None:
                trace.close()
        return 0
    preflight(args.backend)
    registry: Registry | None = None
    real: RealHost | None = None
    trace = open_trace(getattr(args, "trace", None))
    try:
        registry = Registry.open()

        async def main() -> None:
            nonlocal real
            assert registry is not None
            # Signals are ours from here on: one during set-up stops the run right after it,
            # through the same clean-up path.
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                devices = args.adapters + extras.burst + planned_arrivals(plan)
                real = make_real_host(params, backend=args.backend, adapters=args.adapters,
                                      seed=args.seed, netns=args.netns, registry=registry,
                                      pcap_dir=args.pcap, plan=plan, workers=args.workers,
                                      devices=devices, udp_echo=extras.services,
                                      tracer=tracer_for(trace, f"serve host ({args.backend})"),
                                      offload=offload)
                print_sites(real, out, extras)
                await run_real(real, args.interval, out, signals, extras)

        trio.run(main)
    finally:
        removed = real.close() if real is not None else (
            registry.teardown() if registry is not None else [])
        out.write(f"removed {len(removed)} devices/namespaces\n")
        out.flush()
        if trace is not None:
            trace.close()
    return 0
