"""Traffic benchmark: the emulated host as `serve` runs it vs a naive per-frame responder.

All targets sit behind TAP devices in one namespace, driven by Linux's own ping from that
namespace, in the same run:

* **emulated** — `serve`'s defaults (one TAP adapter, the critical executor, the built-in
  services, task offload, the installed — compiled — modules, the coroutine worker driver):
  every frame crosses NDIS, tcpip6's receive work item on the critical queue and the IPv6 stack;
* **naive** — `bench/naive_responder.py`: one wake-up, one read, a plain Python checksum and
  one write per frame (issue 18's yardstick);
* **floor** — `bench/tap_echo_floor.py`: the host's own fd loop and nothing else.

Loads: `ping -f` (one request in flight), `ping -f -l 16` (16 in flight), idle `ping -i 0.01`
(RTT). Then the mixed load on a second, three-adapter host: TCP bulk paced at `--bulk-mbit`
into the discard service of adapter 0, `ping -f -l 16` on adapter 1, idle pings on adapter 2;
the idle RTT under that load against its quiet value. Linux gets permanent neighbor entries for
the responders, so nobody answers ND during a measurement.

    python -m bench.traffic [--count 20000] [--rtt-count 300] [--rounds 3]
                            [--workers coroutines|tasks] [--mixed-seconds 5] [--bulk-mbit 200]
                            [--out bench/results] [--tcp-mb 100] [--tcp-rr 5000] [--no-tcp]

Each load runs `--rounds` times per responder, interleaved, and the median run counts: the
machine is shared, and a busy moment then hits all three rather than one.

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
import shutil
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from ndisemu.backends.netlink import in_netns, netns_preexec
from ndisemu.backends.tap import open_tap
from ndisemu.kernel import WORKER_MODES
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac
from tcpip6lab import services
from tcpip6lab.buildinfo import describe as describe_modules
from tcpip6lab.cli.interrupts import leaf_exception
from tcpip6lab.params import ModelParams, adapter_mac
from tcpip6lab.serve import RealHost, real_host, running

from . import naive_responder, tap_echo_floor

FLOOR_MAC = bytes.fromhex("02005e1000fe")
NAIVE_MAC = bytes.fromhex("02005e1000fd")
NUD_PERMANENT = 0x80
_STATS = re.compile(r"(\d+) packets transmitted, (\d+) received.*time (\d+)ms")
_RTT = re.compile(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")
TARGETS = {"flood1_pps": ">= 0.9", "flood16_pps": ">= 1.0", "idle_rtt": "<= 1.2",
           "mixed_idle_rtt": "<= 3.0"}


async def ping(ns: str, target: str, args: list[str]) -> dict[str, float]:
    """Run Linux's ping in namespace `ns`; its summary as numbers."""
    proc = await trio.run_process(["ping", "-6", "-n", "-q", *args, target], check=False,
                                  capture_stdout=True, capture_stderr=True,
                                  preexec_fn=netns_preexec(ns))
    out = proc.stdout.decode()
    m, r = _STATS.search(out), _RTT.search(out)
    if m is None or r is None:
        raise RuntimeError(f"ping gave no statistics: {out or proc.stderr.decode()}")
    sent, received, ms = (int(x) for x in m.groups())
    return {"sent": sent, "received": received, "seconds": ms / 1000,
            "pps": received / (ms / 1000) if ms else 0.0,
            "rtt_avg_ms": float(r.group(2)), "rtt_min_ms": float(r.group(1)),
            "rtt_max_ms": float(r.group(3))}


LOADS: dict[str, Callable[[int, int], list[str]]] = {
    "flood1": lambda count, _rtt: ["-f", "-c", str(count)],
    "flood16": lambda count, _rtt: ["-f", "-l", "16", "-c", str(count)],
    "idle": lambda _count, rtt: ["-c", str(rtt), "-i", "0.01"],
}


def _permanent_neighbor(ns: str, device: str, addr: bytes, mac: bytes) -> None:
    from pyroute2 import NetNS

    with NetNS(ns) as n:
        idx = n.link_lookup(ifname=device)[0]
        n.neigh("add", dst=addr_str(addr), lladdr=":".join(f"{b:02x}" for b in mac),
                ifindex=idx, state=NUD_PERMANENT, family=socket.AF_INET6)


def _extra_tap(real: RealHost, suffix: str, mac: bytes) -> tuple[int, str, str]:
    """A TAP device of the benchmark's own in the host's namespace: (fd, device, target)."""
    from pyroute2 import IPRoute, NetNS

    registry = real.topology.registry
    ns = real.topology.netns
    dev = f"t6l-{registry.run_id}-{suffix}"
    registry.claim_link(dev)
    fd = open_tap(dev)
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=dev)[0], net_ns_fd=ns)
    with NetNS(ns) as n:
        n.link("set", index=n.link_lookup(ifname=dev)[0], state="up")
    ll = link_local_from_mac(mac)
    _permanent_neighbor(ns, dev, ll, mac)
    return fd, dev, f"{addr_str(ll)}%{dev}"


async def _up(real: RealHost, nursery: trio.Nursery, adapters: int) -> list[str]:
    """Services on, the adapters arrived and IPv6 up; each adapter's ping target."""
    host = real.host
    services.enable(host, nursery)
    host.pnp.schedule(real.configs, start=host.kernel.now)
    with trio.fail_after(20):
        while host.ipv6_ready() < adapters:  # noqa: ASYNC110 - the host signals nothing
            await trio.sleep(0.01)
    targets = []
    for cfg in real.configs:
        site = real.topology.sites[cfg.name]
        ll = link_local_from_mac(adapter_mac(int(cfg.tags["index"])))
        _permanent_neighbor(site.netns, site.device, ll, cfg.mac)
        targets.append(f"{addr_str(ll)}%{site.device}")
    await trio.sleep(0.2)
    return targets


def _kernel_stats(real: RealHost) -> dict[str, int]:
    ks = real.host.kernel.stats
    ports = real.topology.ports()
    return {"dpcs": ks.dpcs, "thread_turns": ks.thread_turns, "sleeps": ks.sleeps,
            "inline": ks.inline, "inline_wakes": ks.inline_wakes,
            "rx_frames": sum(p.rx_frames for p in ports),
            "rx_batches": sum(p.rx_batches for p in ports)}


def _median(runs: list[dict[str, float]], key: str) -> dict[str, Any]:
    """The run with the median `key`, with every run's value beside it."""
    ordered = sorted(runs, key=lambda r: r[key])
    return {**ordered[len(ordered) // 2], "runs": [r[key] for r in runs]}


async def responders(count: int, rtt_count: int, workers: str, rounds: int) -> dict[str, Any]:
    """The three responders under each load, interleaved `rounds` times, in one namespace;
    the median run of each."""
    results: dict[str, Any] = {"naive": {}, "emulated": {}, "floor": {}}
    fds: list[int] = []
    with real_host(ModelParams(), backend="tap", adapters=1, workers=workers,
                   offload=True) as real:  # serve's TAP default
        try:
            naive_fd, _, naive_t = _extra_tap(real, "nv", NAIVE_MAC)
            fds.append(naive_fd)
            floor_fd, _, floor_t = _extra_tap(real, "fl", FLOOR_MAC)
            fds.append(floor_fd)
            async with running(real) as nursery:
                nursery.start_soon(naive_responder.serve, naive_fd)
                nursery.start_soon(tap_echo_floor.serve, floor_fd)
                (emu_t,) = await _up(real, nursery, 1)
                ns = real.topology.netns
                targets = {"naive": naive_t, "emulated": emu_t, "floor": floor_t}
                for t in targets.values():  # warm-up
                    await ping(ns, t, ["-c", "200", "-i", "0.002"])
                for load, argv in LOADS.items():
                    runs: dict[str, list[dict[str, float]]] = {who: [] for who in targets}
                    for _ in range(rounds):  # interleaved: a busy moment hits all three
                        for who, t in targets.items():
                            runs[who].append(await ping(ns, t, argv(count, rtt_count)))
                    for who, rs in runs.items():
                        results[who][load] = _median(rs, "rtt_avg_ms" if load == "idle"
                                                     else "pps")
                results["emulated"]["kernel"] = _kernel_stats(real)
                nursery.cancel_scope.cancel()
                for fd in fds:
                    trio.lowlevel.notify_closing(fd)
        finally:
            for fd in fds:
                os.close(fd)
    return results


async def _paced_bulk(ns: str, addr: tuple[Any, ...], mbit: float, seconds: float,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                      ) -> dict[str, float]:
    """A Linux TCP socket in `ns` sending to a discard service at `mbit` Mbit/s, paced in
    10 ms slices, for `seconds`; what it sent."""
    with in_netns(ns):
        raw = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock = trio.socket.from_stdlib_socket(raw)
    await sock.connect(addr)
    stream = trio.SocketStream(sock)
    task_status.started()
    slice_bytes = int(mbit * 1e6 / 8 / 100)
    block = b"\xa5" * slice_bytes
    sent = 0
    t0 = trio.current_time()
    deadline = t0 + seconds
    tick = t0
    while trio.current_time() < deadline:
        await stream.send_all(block)
        sent += slice_bytes
        tick += 0.01
        await trio.sleep_until(tick)
    elapsed = trio.current_time() - t0
    await stream.aclose()
    return {"bytes": sent, "seconds": elapsed, "mbit_s": sent * 8 / elapsed / 1e6}


async def mixed(rtt_count: int, workers: str, seconds: float, bulk_mbit: float
                ) -> dict[str, Any]:
    """Three adapters: paced TCP bulk on 0, `ping -f -l 16` on 1, idle pings on 2."""
    out: dict[str, Any] = {}
    with real_host(ModelParams(), backend="tap", adapters=3, workers=workers,
                   offload=True) as real:  # serve's TAP default
        async with running(real) as nursery:
            bulk_t, flood_t, idle_t = await _up(real, nursery, 3)
            ns = real.topology.netns
            await ping(ns, idle_t, ["-c", "200", "-i", "0.002"])
            out["quiet"] = await ping(ns, idle_t, ["-c", str(rtt_count), "-i", "0.01"])
            site = real.topology.sites[real.configs[0].name]
            with in_netns(site.netns):
                scope = socket.if_nametoindex(site.device)
            addr = bulk_t.split("%")[0]
            results: dict[str, Any] = {}

            async def keep(key: str, fn: Callable[[], Awaitable[Any]]) -> None:
                results[key] = await fn()

            idle_n = max(10, int(seconds / 0.01) - 50)
            async with trio.open_nursery() as load:
                load.start_soon(keep, "bulk",
                                lambda: _paced_bulk(ns, (addr, 9, 0, scope), bulk_mbit, seconds))
                load.start_soon(keep, "flood16",
                                lambda: ping(ns, flood_t, ["-f", "-l", "16", "-w",
                                                           str(max(1, round(seconds)))]))
                await trio.sleep(0.2)
                load.start_soon(keep, "loaded",
                                lambda: ping(ns, idle_t, ["-c", str(idle_n), "-i", "0.01"]))
            out.update(results)
            out["kernel"] = _kernel_stats(real)
            nursery.cancel_scope.cancel()
    return out


async def run(count: int, rtt_count: int, workers: str, mixed_seconds: float,
              bulk_mbit: float, rounds: int = 3) -> dict[str, Any]:
    r = await responders(count, rtt_count, workers, rounds)
    if mixed_seconds > 0:
        r["mixed"] = await mixed(rtt_count, workers, mixed_seconds, bulk_mbit)
    return r


def ratios(r: dict[str, Any]) -> dict[str, float]:
    e, n = r["emulated"], r["naive"]
    out = {"flood1_pps": e["flood1"]["pps"] / n["flood1"]["pps"],
           "flood16_pps": e["flood16"]["pps"] / n["flood16"]["pps"],
           "idle_rtt": e["idle"]["rtt_avg_ms"] / n["idle"]["rtt_avg_ms"]}
    if "mixed" in r:
        m = r["mixed"]
        out["mixed_idle_rtt"] = m["loaded"]["rtt_avg_ms"] / m["quiet"]["rtt_avg_ms"]
    return out


def tcp_bulk_part(mb: int, rr: int, workers: str) -> dict[str, Any]:
    """bench.tcp_bulk's run (with and without offload, and Linux) in this benchmark's run."""
    from . import tcp_bulk

    r = trio.run(tcp_bulk.run, mb, rr, 1500, workers)
    for line in tcp_bulk.report_lines(r):
        print(line)
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.traffic",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--count", type=int, default=20000, help="flood packets (default 20000)")
    p.add_argument("--rtt-count", type=int, default=300, help="idle pings (default 300)")
    p.add_argument("--rounds", type=int, default=3,
                   help="each load this many times per responder, interleaved; the median "
                        "counts (default 3)")
    p.add_argument("--mixed-seconds", type=float, default=5.0,
                   help="length of the mixed load (default 5; 0 skips it)")
    p.add_argument("--bulk-mbit", type=float, default=200.0,
                   help="the mixed load's paced TCP bulk, Mbit/s (default 200)")
    p.add_argument("--out", default="bench/results", help="directory for traffic.json")
    p.add_argument("--workers", choices=WORKER_MODES, default="coroutines",
                   help="the emulated kernel's worker driver (default coroutines, as serve)")
    p.add_argument("--tcp-mb", type=int, default=100, help="TCP bulk megabytes (default 100)")
    p.add_argument("--tcp-rr", type=int, default=5000,
                   help="TCP request/response round trips (default 5000)")
    p.add_argument("--no-tcp", action="store_true", help="skip the TCP part (bench.tcp_bulk)")
    args = p.parse_args(argv)
    if min(args.count, args.rtt_count, args.rounds) < 1 or args.mixed_seconds < 0 \
            or args.bulk_mbit <= 0:
        sys.stderr.write("bench.traffic: error: counts and --rounds must be positive, "
                         "--mixed-seconds >= 0, --bulk-mbit > 0\n")
        return 2
    if shutil.which("ping") is None:
        sys.stderr.write("bench.traffic: error: Linux's ping is the load and is not installed "
                         "(Debian: apt install iputils-ping)\n")
        return 2
    t0 = time.time()
    try:
        r = trio.run(run, args.count, args.rtt_count, args.workers, args.mixed_seconds,
                     args.bulk_mbit, args.rounds)
    except Exception as exc:  # one line for the user
        sys.stderr.write(f"bench.traffic: error: {leaf_exception(exc)}\n")
        return 2
    rt = ratios(r)
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "kernel": platform.release(),
                          "loadavg": os.getloadavg()},
              "count": args.count, "rtt_count": args.rtt_count, "rounds": args.rounds,
              "workers": args.workers,
              "mixed_seconds": args.mixed_seconds, "bulk_mbit": args.bulk_mbit,
              "modules": describe_modules(), **r, "ratios": rt, "targets": TARGETS}
    print(f"emulated host: serve's defaults, {args.workers} driver, {report['modules']}")
    e, n, f = r["emulated"], r["naive"], r["floor"]
    for load, label in (("flood1", "ping -f"), ("flood16", "ping -f -l 16")):
        print(f"{label:<14} emulated {e[load]['pps']:8.0f} pps  naive {n[load]['pps']:8.0f} pps"
              f"  floor {f[load]['pps']:8.0f} pps  ratio {rt[load + '_pps']:.2f}"
              f"  (target {TARGETS[load + '_pps']})")
    print(f"{'idle RTT':<14} emulated {e['idle']['rtt_avg_ms']:8.3f} ms   naive "
          f"{n['idle']['rtt_avg_ms']:8.3f} ms   floor {f['idle']['rtt_avg_ms']:8.3f} ms   "
          f"ratio {rt['idle_rtt']:.2f}  (target {TARGETS['idle_rtt']})")
    if "mixed" in r:
        m = r["mixed"]
        print(f"{'mixed':<14} idle RTT {m['loaded']['rtt_avg_ms']:.3f} ms vs quiet "
              f"{m['quiet']['rtt_avg_ms']:.3f} ms, ratio {rt['mixed_idle_rtt']:.2f} (target "
              f"{TARGETS['mixed_idle_rtt']}); bulk {m['bulk']['mbit_s']:.0f} Mbit/s, flood "
              f"-l 16 {m['flood16']['pps']:.0f} pps")
    if not args.no_tcp:
        try:
            report["tcp"] = tcp_bulk_part(args.tcp_mb, args.tcp_rr, args.workers)
        except Exception as exc:  # one line for the user
            sys.stderr.write(f"bench.traffic: TCP part: error: {leaf_exception(exc)}\n")
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "traffic.json").write_text(json.dumps(report, indent=2))
    print(f"saved {out / 'traffic.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
