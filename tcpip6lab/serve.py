"""`tcpip6-lab serve`: an emulated host on a chosen backend, until Ctrl-C or SIGTERM.

With --backend tap or veth each adapter gets a real device whose Linux side sits in a network
namespace (created by this command, removed on exit), so `ping -6`, `ping`, `ndisc6` … run there
against the emulated host. With --backend memory the emulated peer pings every adapter instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import IO, Any

import trio

from faults.plan import FaultPlan, load_plan
from ndisemu.backends.netlink import Registry
from ndisemu.backends.topology import CURRENT, SiteSpec, Topology, build, preflight
from ndisemu.miniport import MiniportConfig, WireEnd
from ndisemu.pcap import PcapWriter
from ndisemu.trace import Tracer
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac

from .host import EmulatedHost
from .params import ModelParams, adapter_ipv4, peer_ipv4, peer_mac


@dataclass
class RealHost:
    """An emulated host whose adapters are real devices."""

    host: EmulatedHost
    topology: Topology
    configs: list[MiniportConfig]
    pcaps: list[PcapWriter]

    def close(self) -> list[str]:
        for w in self.pcaps:
            w.close()
        self.host.close()
        return self.topology.close()

    def describe(self) -> list[dict[str, Any]]:
        rows = []
        for cfg in self.configs:
            site = self.topology.sites[cfg.name]
            i = int(cfg.tags["index"])
            rows.append({
                "adapter": cfg.name,
                "device": site.device,
                "netns": site.netns,
                "mac": ":".join(f"{b:02x}" for b in cfg.mac),
                "link_local": addr_str(link_local_from_mac(cfg.mac)),
                "ipv4": socket.inet_ntoa(adapter_ipv4(i)),
                "linux_ipv4": socket.inet_ntoa(peer_ipv4(i)),
            })
        return rows


class DevicePorts:
    """The host's cable factory on real devices: an arriving adapter gets its device's port.

    The host is built before its devices (they need its kernel), so the topology is handed in
    once built; adapters only arrive after that."""

    def __init__(self, pcap_dir: str | None, name: str) -> None:
        self.pcap_dir = pcap_dir
        self.name = name
        self.topology: Topology | None = None
        self.pcaps: list[PcapWriter] = []

    def __call__(self, cfg: MiniportConfig) -> WireEnd:
        if self.topology is None:
            raise RuntimeError(f"adapter {cfg.name} arrived before its device exists")
        port = self.topology.sites[cfg.name].port
        if self.pcap_dir is not None:
            os.makedirs(self.pcap_dir, exist_ok=True)
            w = PcapWriter(os.path.join(self.pcap_dir, f"{self.name}-{cfg.name}.pcap"))
            self.pcaps.append(w)
            port.recorder = w
        end: WireEnd = port
        return end


def make_real_host(params: ModelParams, *, backend: str, adapters: int, seed: int,
                   netns: str | None, registry: Registry, pcap_dir: str | None = None,
                   name: str = "host", first: int = 0,
                   plan: FaultPlan | None = None, workers: str = "tasks",
                   tracer: Tracer | None = None) -> RealHost:
    """Build the host, then the devices its miniports will use (call inside trio)."""
    ports = DevicePorts(pcap_dir, name)
    host = EmulatedHost(params, seed=seed, name=name, wire_factory=ports, plan=plan,
                        workers=workers, tracer=tracer)
    configs = host.adapter_configs(adapters, first=first)
    specs = [SiteSpec(c.name, int(c.tags["index"]), peer_mac(int(c.tags["index"])),
                      peer_ipv4(int(c.tags["index"])), mtu=c.mtu) for c in configs]
    ports.topology = build(host.kernel, backend, specs, netns=netns, registry=registry)
    return RealHost(host, ports.topology, configs, ports.pcaps)


@contextlib.contextmanager
def real_host(params: ModelParams, *, backend: str, adapters: int, seed: int = 0,
              netns: str | None = None, pcap_dir: str | None = None,
              plan: FaultPlan | None = None, name: str = "host",
              workers: str = "tasks") -> Iterator[RealHost]:
    """A RealHost whose devices and namespaces are removed on exit, whatever happens."""
    registry = Registry.open()
    real = None
    try:
        real = make_real_host(params, backend=backend, adapters=adapters, seed=seed,
                              netns=netns, registry=registry, pcap_dir=pcap_dir, plan=plan,
                              name=name, workers=workers)
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
        host.start()
        yield nursery
        nursery.cancel_scope.cancel()


async def run_memory(host: EmulatedHost, configs: list[MiniportConfig], interval: float,
                     out: IO[str]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(host.kernel.run)
            host.start()
            host.pnp.schedule(configs, start=host.kernel.now + 0.5, interval=interval)
            host.start_pinging(1.0, start=host.kernel.now + 0.5)
            nursery.start_soon(_report, host, out)
            out.write("serving; Ctrl-C or SIGTERM to stop\n")
            out.flush()
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()


async def run_real(real: RealHost, interval: float, out: IO[str],
                   signals: AsyncIterator[int]) -> None:
    host = real.host
    async with running(real) as nursery:
        host.pnp.schedule(real.configs, start=host.kernel.now + 0.2, interval=interval)
        nursery.start_soon(_report, host, out)
        out.write("serving; Ctrl-C or SIGTERM to stop and remove every device\n")
        out.flush()
        async for _ in signals:
            break


async def _report(host: EmulatedHost, out: IO[str]) -> None:
    last = ""
    while True:
        await trio.sleep(1.0)
        dl = host.deadlock
        crit = host.kernel.queue("critical")
        status = (f"tcpip6 bound {host.bound()}/{len(host.tcpip6.interfaces)}  IPv4 bound "
                  f"{host.ipv4_bound()}  critical {crit.blocked}/{len(crit.workers)} blocked"
                  + (f"  DEADLOCK on {dl.queue}" if dl else ""))
        if status != last:
            out.write(f"t={host.kernel.now:7.1f}s  {status}\n")
            out.flush()
            last = status


def print_sites(real: RealHost, out: IO[str]) -> None:
    if real.topology.netns == CURRENT:
        out.write("Linux's side of each device is in the current namespace\n")
    else:
        out.write(f"namespace {real.topology.netns} (Linux's side; run tools there with "
                  f"`ip netns exec {real.topology.netns} …`)\n")
    for row in real.describe():
        out.write(f"  {row['adapter']}  device {row['device']:<13} MAC {row['mac']}  "
                  f"{row['link_local']}%{row['device']}  IPv4 {row['ipv4']} "
                  f"(Linux {row['linux_ipv4']})\n")
    out.flush()


def serve(args: argparse.Namespace, params: ModelParams, out: IO[str]) -> int:
    """`tcpip6-lab serve` (tcpip6lab.cli.serve parses its options)."""
    from .perfetto_trace import open_trace, tracer_for  # protobuf: only loaded when serving

    if args.backend == "memory":
        plan = load_plan(args.faults) if args.faults else None
        trace = open_trace(getattr(args, "trace", None))
        host = EmulatedHost(params, seed=args.seed, pcap_dir=args.pcap, plan=plan,
                            tracer=tracer_for(trace, "serve host (memory)"))
        configs = host.adapter_configs(args.adapters)
        out.write(f"memory backend: {args.adapters} adapters on virtual wires, the emulated "
                  "peer pings each every second\n")
        try:
            trio.run(run_memory, host, configs, args.interval, out)
        finally:
            host.close()
            if trace is not None:
                trace.close()
        return 0
    plan = load_plan(args.faults) if args.faults else None  # a bad plan: refused before set-up
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
                real = make_real_host(params, backend=args.backend, adapters=args.adapters,
                                      seed=args.seed, netns=args.netns, registry=registry,
                                      pcap_dir=args.pcap, plan=plan, workers=args.workers,
                                      tracer=tracer_for(trace, f"serve host ({args.backend})"))
                print_sites(real, out)
                await run_real(real, args.interval, out, signals)

        trio.run(main)
    finally:
        removed = real.close() if real is not None else (
            registry.teardown() if registry is not None else [])
        out.write(f"removed {len(removed)} devices/namespaces\n")
        out.flush()
        if trace is not None:
            trace.close()
    return 0
