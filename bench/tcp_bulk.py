"""TCP benchmark over TAP: the emulated host's TCP beside the Linux kernel's, in the same run.

Same client code (Linux kernel sockets in a namespace), three servers: the emulated host's echo
and discard services as `serve` runs them (critical executor, coroutine driver, one TAP adapter;
through NDIS, tcpip6's receive work items on the critical queue and the sans-IO TCP), once with
task offload (serve's TAP default: super-frames both ways, ndisemu/offload.py) and once without
(`--no-offload`: every frame link-sized); and Linux's own TCP serving the same two protocols
from a second namespace over a veth pair. Measured: bulk upload (to discard), bulk echo (out and
back), and request/response rate (1-byte ping-pong on one connection). Prints the ratios; saves
bench/results/tcp_bulk.json.

    python -m bench.tcp_bulk [--mb 100] [--rr 2000] [--mtu 1500]

Needs root (TAP, namespaces). Targets (issue 18): upload >= 1 Gbit/s with offload and
>= 0.6 Gbit/s without at MTU 1500; request/response >= 0.3 x Linux's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import trio

from ndisemu.backends.netlink import PREFIX, Registry, in_netns
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac
from tcpip6lab import services
from tcpip6lab.cli.interrupts import leaf_exception
from tcpip6lab.params import ModelParams
from tcpip6lab.serve import real_host, running

BLOCK = os.urandom(1 << 16)


def _sock(netns: str) -> trio.socket.SocketType:
    with in_netns(netns):
        raw = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    return trio.socket.from_stdlib_socket(raw)


async def _connect(netns: str, dst: tuple[Any, ...]) -> trio.SocketStream:
    sock = _sock(netns)
    await sock.connect(dst)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return trio.SocketStream(sock)


async def measure(netns: str, echo: tuple[Any, ...], discard: tuple[Any, ...], mb: int,
                  rr: int) -> dict[str, float]:
    size = mb * (1 << 20)
    out: dict[str, float] = {}
    # Upload into discard: until the server has read everything and closed.
    stream = await _connect(netns, discard)
    t = time.perf_counter()
    for _ in range(size // len(BLOCK)):
        await stream.send_all(BLOCK)
    await stream.send_eof()
    while await stream.receive_some(65536):
        pass
    out["upload_mbit_s"] = size * 8 / (time.perf_counter() - t) / 1e6
    await stream.aclose()
    # Echo: out and back, concurrently.
    stream = await _connect(netns, echo)
    t = time.perf_counter()
    got = 0

    async def sender() -> None:
        for _ in range(size // len(BLOCK)):
            await stream.send_all(BLOCK)
        await stream.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        while data := await stream.receive_some(1 << 20):
            got += len(data)
    assert got == size
    out["echo_mbit_s"] = 2 * size * 8 / (time.perf_counter() - t) / 1e6
    await stream.aclose()
    # Request/response on one connection.
    stream = await _connect(netns, echo)
    t = time.perf_counter()
    for _ in range(rr):
        await stream.send_all(b"x")
        await stream.receive_some(1)
    out["rr_per_s"] = rr / (time.perf_counter() - t)
    await stream.aclose()
    return out


async def _kernel_server(netns: str, port: int, kind: str,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    with in_netns(netns):
        raw = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    raw.bind(("::", port))
    raw.listen(16)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(raw))

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            while data := await stream.receive_some(1 << 20):
                if kind == "echo":
                    await stream.send_all(data)
            await stream.send_eof()

    task_status.started()
    await trio.serve_listeners(handle, [listener])


async def linux_baseline(registry: Registry, mb: int, rr: int, mtu: int) -> dict[str, float]:
    from pyroute2 import IPRoute, NetNS
    from pyroute2 import netns as pr_netns

    a, b = f"{PREFIX}{registry.run_id}-ka", f"{PREFIX}{registry.run_id}-kb"
    for ns in (a, b):
        registry.claim_netns(ns)
        pr_netns.create(ns)
    va, vb = f"{PREFIX}{registry.run_id}-va", f"{PREFIX}{registry.run_id}-vb"
    registry.claim_link(va)
    registry.claim_link(vb)
    with IPRoute() as ipr:
        ipr.link("add", ifname=va, kind="veth", peer={"ifname": vb})
        ipr.link("set", index=ipr.link_lookup(ifname=va)[0], net_ns_fd=a)
        ipr.link("set", index=ipr.link_lookup(ifname=vb)[0], net_ns_fd=b)
    for ns, dev, addr in ((a, va, "fd00:6::1"), (b, vb, "fd00:6::2")):
        with NetNS(ns) as n:
            i = n.link_lookup(ifname=dev)[0]
            n.link("set", index=i, mtu=mtu, state="up")
            n.addr("add", index=i, address=addr, prefixlen=64, family=socket.AF_INET6,
                   flags=0x02)  # IFA_F_NODAD: usable at once
            n.link("set", index=n.link_lookup(ifname="lo")[0], state="up")
    async with trio.open_nursery() as nursery:
        await nursery.start(_kernel_server, b, 7, "echo")
        await nursery.start(_kernel_server, b, 9, "discard")
        res = await measure(a, ("fd00:6::2", 7, 0, 0), ("fd00:6::2", 9, 0, 0), mb, rr)
        nursery.cancel_scope.cancel()
    return res


async def emulated(mb: int, rr: int, mtu: int, offload: bool = True,
                   workers: str = "coroutines") -> dict[str, float]:
    """serve's defaults: ModelParams() (the critical executor), the coroutine driver."""
    with real_host(ModelParams(mtu=mtu), backend="tap", adapters=1, offload=offload,
                   workers=workers) as real:
        async with running(real) as nursery:
            host = real.host
            services.enable(host, nursery)
            host.pnp.schedule(real.configs, start=host.kernel.now)
            with trio.fail_after(10):
                while host.ipv6_ready() < 1:  # noqa: ASYNC110 - nothing to await on
                    await trio.sleep(0.01)
            site = real.topology.sites["nic000"]
            with in_netns(site.netns):
                scope = socket.if_nametoindex(site.device)
            addr = addr_str(link_local_from_mac(real.configs[0].mac))
            res = await measure(site.netns, (addr, 7, 0, scope), (addr, 9, 0, scope), mb, rr)
            nursery.cancel_scope.cancel()
    return res


TARGETS = {"upload_mbit_s": 1000.0, "upload_mbit_s_no_offload": 600.0, "rr_ratio": 0.3}


async def run(mb: int, rr: int, mtu: int, workers: str = "coroutines") -> dict[str, Any]:
    registry = Registry.open()
    try:
        linux = await linux_baseline(registry, mb, rr, mtu)
    finally:
        registry.teardown()
    emu = await emulated(mb, rr, mtu, True, workers)
    plain = await emulated(mb, rr, mtu, False, workers)
    return {"linux": linux, "emulated": emu, "emulated_no_offload": plain,
            "ratios": {k: emu[k] / linux[k] for k in emu},
            "ratios_no_offload": {k: plain[k] / linux[k] for k in plain},
            "offload_gain": {k: emu[k] / plain[k] for k in emu},
            "targets": TARGETS}


def report_lines(r: dict[str, Any]) -> list[str]:
    """The table bench.tcp_bulk and bench.traffic print."""
    lines = []
    for key, unit in (("upload_mbit_s", "Mbit/s"), ("echo_mbit_s", "Mbit/s"),
                      ("rr_per_s", "round trips/s")):
        lines.append(f"{key:<13} linux {r['linux'][key]:9.1f}  offload {r['emulated'][key]:9.1f}"
                     f"  no-offload {r['emulated_no_offload'][key]:9.1f} {unit:<14}"
                     f"ratios {r['ratios'][key]:.3f} / {r['ratios_no_offload'][key]:.3f}")
    e, p = r["emulated"], r["emulated_no_offload"]
    met = (e["upload_mbit_s"] >= TARGETS["upload_mbit_s"],
           p["upload_mbit_s"] >= TARGETS["upload_mbit_s_no_offload"],
           r["ratios"]["rr_per_s"] >= TARGETS["rr_ratio"])
    lines.append("targets: upload >= 1000 Mbit/s with offload ({}), >= 600 without ({}); "
                 "request/response >= 0.3 x Linux ({})".format(
                     *("met" if m else "not met" for m in met)))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tcp_bulk",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--mb", type=int, default=100)
    p.add_argument("--rr", type=int, default=2000)
    p.add_argument("--mtu", type=int, default=1500,
                   help="MTU of both paths: the emulated adapter and its TAP device, and the "
                        "Linux baseline's veth (e.g. 9000 for the large-MTU case)")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--workers", choices=("tasks", "coroutines"), default="coroutines",
                   help="the emulated kernel's driver (default coroutines, as serve runs)")
    args = p.parse_args(argv)
    try:
        r = trio.run(run, args.mb, args.rr, args.mtu, args.workers)
    except Exception as exc:
        sys.stderr.write(f"bench.tcp_bulk: error: {leaf_exception(exc)}\n")
        return 2
    from tcpip6lab.buildinfo import describe

    r["modules"] = describe()
    print(f"emulated host: {args.workers} driver, {r['modules']}")
    for line in report_lines(r):
        print(line)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tcp_bulk.json").write_text(json.dumps({"mb": args.mb, "rr": args.rr, **r}, indent=2))
    print(f"saved {out / 'tcp_bulk.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
