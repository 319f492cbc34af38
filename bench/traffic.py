"""Traffic benchmark: ICMPv6 flood rate and idle RTT, the emulated host vs a raw TAP floor.

Both targets sit behind TAP devices in one namespace this benchmark creates, driven by the same
load generator — Linux's own `ping -6 -f` (flood) and `ping -6 -i 0.01` (idle RTT) — in the same
run, one after the other. The floor (`bench/tap_echo_floor.py`) only swaps addresses and patches
the checksum; the emulated host takes every frame through NDIS, tcpip6's receive work item on the
critical queue and its IPv6 stack. Linux gets permanent neighbor entries for both, so neither
answers ND during the measurement.

    python -m bench.traffic [--count 20000] [--rtt-count 300] [--out bench/results]
                            [--tcp-mb 100] [--tcp-rr 5000] [--no-tcp]

Then, unless --no-tcp, TCP (bench/tcp_bulk.py): bulk upload and echo at MTU 1500 with and without
task offload, and request/response, against Linux's own TCP in the same run.

Needs root (TAP devices, a namespace). Prints the ratios and writes traffic.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

import trio

from ndisemu.backends.netlink import Registry, _setns
from ndisemu.backends.tap import open_tap
from ndisemu.backends.topology import SiteSpec, build, preflight
from ndisemu.kernel import WORKER_MODES
from ndisemu.miniport import MiniportConfig, WireEnd
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac
from tcpip6lab.buildinfo import describe as describe_modules
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams, adapter_mac, peer_mac

from . import tap_echo_floor

FLOOR_MAC = bytes.fromhex("02005e1000fe")
NUD_PERMANENT = 0x80
_STATS = re.compile(r"(\d+) packets transmitted, (\d+) received.*time (\d+)ms")
_RTT = re.compile(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


def _enter(ns: str) -> Any:
    def enter() -> None:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        _setns(fd)
        os.close(fd)
    return enter


async def _ping(ns: str, target: str, args: list[str]) -> dict[str, float]:
    proc = await trio.run_process(["ping", "-6", "-n", "-q", *args, target], check=False,
                                  capture_stdout=True, capture_stderr=True,
                                  preexec_fn=_enter(ns))
    out = proc.stdout.decode()
    m, r = _STATS.search(out), _RTT.search(out)
    if m is None or r is None:
        raise RuntimeError(f"ping gave no statistics: {out or proc.stderr.decode()}")
    sent, received, ms = (int(x) for x in m.groups())
    return {"sent": sent, "received": received, "seconds": ms / 1000,
            "pps": received / (ms / 1000) if ms else 0.0,
            "rtt_avg_ms": float(r.group(2)), "rtt_min_ms": float(r.group(1)),
            "rtt_max_ms": float(r.group(3))}


async def _measure(ns: str, target: str, count: int, rtt_count: int) -> dict[str, Any]:
    await _ping(ns, target, ["-c", "200", "-i", "0.002"])  # warm-up
    flood = await _ping(ns, target, ["-f", "-c", str(count)])
    idle = await _ping(ns, target, ["-c", str(rtt_count), "-i", "0.01"])
    return {"flood": flood, "idle": idle}


def _permanent_neighbor(ns: str, device: str, addr: bytes, mac: bytes) -> None:
    from pyroute2 import NetNS

    with NetNS(ns) as n:
        idx = n.link_lookup(ifname=device)[0]
        n.neigh("add", dst=addr_str(addr), lladdr=":".join(f"{b:02x}" for b in mac),
                ifindex=idx, state=NUD_PERMANENT, family=socket.AF_INET6)


async def run(count: int, rtt_count: int, workers: str = "tasks") -> dict[str, Any]:
    preflight("tap")
    registry = Registry.open()
    floor_fd = -1
    topo = None
    try:
        holder: dict[str, Any] = {}

        def wire_for(cfg: MiniportConfig) -> WireEnd:
            port: WireEnd = holder["topo"].sites[cfg.name].port
            return port

        host = EmulatedHost(ModelParams(executor="dedicated"), seed=1, wire_factory=wire_for,
                            workers=workers)
        configs = host.adapter_configs(1)
        topo = build(host.kernel, "tap", [SiteSpec(configs[0].name, 0, peer_mac(0),
                                                   bytes([198, 18, 0, 2]))],
                     netns=None, registry=registry)
        holder["topo"] = topo
        site = topo.sites[configs[0].name]
        ns = topo.netns
        # The floor's TAP, in the same namespace.
        floor_dev = f"t6l-{registry.run_id}-fl"
        registry.claim_link(floor_dev)
        floor_fd = open_tap(floor_dev)
        from pyroute2 import IPRoute, NetNS

        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=floor_dev)[0], net_ns_fd=ns)
        with NetNS(ns) as n:
            n.link("set", index=n.link_lookup(ifname=floor_dev)[0], state="up")
        host_ll = link_local_from_mac(adapter_mac(0))
        floor_ll = link_local_from_mac(FLOOR_MAC)
        _permanent_neighbor(ns, site.device, host_ll, adapter_mac(0))
        _permanent_neighbor(ns, floor_dev, floor_ll, FLOOR_MAC)
        results: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            await nursery.start(host.kernel.run)
            nursery.start_soon(site.port.run)
            nursery.start_soon(tap_echo_floor.serve, floor_fd)
            host.start()
            host.pnp.schedule(configs, start=host.kernel.now)
            with trio.fail_after(10):
                while host.ipv6_ready() < 1:  # noqa: ASYNC110 - the host signals nothing to await
                    await trio.sleep(0.01)
            await trio.sleep(0.2)
            results["floor"] = await _measure(ns, f"{addr_str(floor_ll)}%{floor_dev}",
                                              count, rtt_count)
            results["emulated"] = await _measure(ns, f"{addr_str(host_ll)}%{site.device}",
                                                 count, rtt_count)
            ks = host.kernel.stats
            results["emulated"]["kernel"] = {"dpcs": ks.dpcs, "thread_turns": ks.thread_turns,
                                             "rx_batches": site.port.rx_batches,
                                             "sleeps": ks.sleeps, "inline": ks.inline,
                                             "inline_wakes": ks.inline_wakes}
            nursery.cancel_scope.cancel()
            trio.lowlevel.notify_closing(floor_fd)
        return results
    finally:
        if floor_fd >= 0:
            os.close(floor_fd)
        if topo is not None:
            topo.close()
        else:
            registry.teardown()


def tcp_bulk_part(mb: int, rr: int, workers: str) -> dict[str, Any]:
    """bench.tcp_bulk's run (with and without offload, and Linux) in this benchmark's run."""
    from . import tcp_bulk

    r = trio.run(tcp_bulk.run, mb, rr, 1500, workers)
    for line in tcp_bulk.report_lines(r):
        print(line)
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.traffic", description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=20000, help="flood packets (default 20000)")
    p.add_argument("--rtt-count", type=int, default=300, help="idle pings (default 300)")
    p.add_argument("--out", default="bench/results", help="directory for traffic.json")
    p.add_argument("--workers", choices=WORKER_MODES, default="tasks",
                   help="the emulated kernel's driver: worker threads as trio tasks (default, "
                        "as serve runs) or as coroutines its dispatcher steps")
    p.add_argument("--tcp-mb", type=int, default=100, help="TCP bulk megabytes (default 100)")
    p.add_argument("--tcp-rr", type=int, default=5000,
                   help="TCP request/response round trips (default 5000)")
    p.add_argument("--no-tcp", action="store_true", help="skip the TCP part (bench.tcp_bulk)")
    args = p.parse_args(argv)
    t0 = time.time()
    try:
        r = trio.run(run, args.count, args.rtt_count, args.workers)
    except Exception as exc:  # one line for the user
        sys.stderr.write(f"bench.traffic: error: {exc}\n")
        return 2
    f, e = r["floor"], r["emulated"]
    ratios = {"flood_pps": e["flood"]["pps"] / f["flood"]["pps"],
              "idle_rtt": e["idle"]["rtt_avg_ms"] / f["idle"]["rtt_avg_ms"]}
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "kernel": platform.release()},
              "count": args.count, "rtt_count": args.rtt_count, "workers": args.workers,
              "modules": describe_modules(), **r,
              "ratios": ratios,
              "targets": {"flood_pps": ">= 0.67", "idle_rtt": "<= 1.5"}}
    print(f"emulated host: {args.workers} driver, {report['modules']}")
    print(f"ICMPv6 flood   floor {f['flood']['pps']:9.0f} pps   emulated {e['flood']['pps']:9.0f} "
          f"pps   ratio {ratios['flood_pps']:.2f}  (target >= 0.67)")
    print(f"idle RTT       floor {f['idle']['rtt_avg_ms']:9.3f} ms    emulated "
          f"{e['idle']['rtt_avg_ms']:9.3f} ms    ratio {ratios['idle_rtt']:.2f}  (target <= 1.5)")
    if not args.no_tcp:
        try:
            report["tcp"] = tcp_bulk_part(args.tcp_mb, args.tcp_rr, args.workers)
        except Exception as exc:  # one line for the user
            sys.stderr.write(f"bench.traffic: TCP part: error: {exc}\n")
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "traffic.json").write_text(json.dumps(report, indent=2))
    print(f"saved {out / 'traffic.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
