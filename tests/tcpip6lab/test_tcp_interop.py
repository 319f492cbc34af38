"""TCP over the emulated host's IPv6, used by real Linux clients over TAP: curl fetches the
status page, nc talks to echo, a kernel-socket client pushes 100 MB through echo and checks
every byte — and after the bind storm the unpatched host stops answering TCP while the fixed
one keeps going."""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

import pytest
import trio

from ndisemu.backends.netlink import in_netns, netns_preexec
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac
from tcpip6lab import services
from tcpip6lab.params import ModelParams
from tcpip6lab.serve import RealHost, real_host, running
from tests.conftest import require_real_net, wait_for


def where(real: RealHost, adapter: str = "nic000") -> tuple[str, str, str]:
    """(link-local address, Linux-side device, namespace) of an adapter."""
    cfg = next(c for c in real.configs if c.name == adapter)
    site = real.topology.sites[adapter]
    return addr_str(link_local_from_mac(cfg.mac)), site.device, site.netns


async def run_in(netns: str, *argv: str, stdin: bytes = b"") -> trio.CompletedProcess[bytes]:
    return await trio.run_process(list(argv), check=False, capture_stdout=True,
                                  capture_stderr=True, stdin=stdin,
                                  preexec_fn=netns_preexec(netns))


def client_socket(netns: str, addr: str, device: str,
                  port: int) -> tuple[trio.socket.SocketType, tuple[Any, ...]]:
    """A Linux kernel TCP socket in the test's namespace, for the emulated host's address."""
    with in_netns(netns):
        raw = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        scope = socket.if_nametoindex(device)
    return trio.socket.from_stdlib_socket(raw), (addr, port, 0, scope)


@pytest.mark.parametrize("offload", [False, True])
async def test_curl_nc_and_100_mb_through_echo(offload: bool) -> None:
    """With task offload too: super-frames both ways, every byte still checked."""
    require_real_net("curl", "nc")
    with real_host(ModelParams(executor="dedicated"), backend="tap", adapters=1,
                   offload=offload) as real:
        async with running(real) as nursery:
            host = real.host
            services.enable(host, nursery)
            host.pnp.schedule(real.configs, start=host.kernel.now)
            await wait_for(lambda: host.ipv6_ready() == 1)
            addr, dev, ns = where(real)
            # curl -6 fetches the status page from the HTTP service (h11).
            page = await run_in(ns, "curl", "-6", "-sS", "--max-time", "5", "-g",
                                f"http://[{addr}%25{dev}]/")
            assert page.returncode == 0, page.stderr
            assert b"tcpip6-lab emulated host" in page.stdout and b"nic000 up" in page.stdout
            js = await run_in(ns, "curl", "-6", "-sS", "--max-time", "5", "-g",
                              f"http://[{addr}%25{dev}]/status.json")
            assert b'"executor": "dedicated"' in js.stdout
            # nc -6 and the echo service: it closes once we half-close (-N) and all is echoed.
            echo = await run_in(ns, "nc", "-6", "-N", "-w", "5", f"{addr}%{dev}", "7",
                                stdin=b"hello over tcp\n")
            assert echo.stdout == b"hello over tcp\n", echo.stderr
            # A kernel-socket client: 100 MB out and back, every byte checked.
            sock, dst = client_socket(ns, addr, dev, 7)
            size = 100 * 1024 * 1024
            block = os.urandom(1 << 20)
            sent, got = hashlib.sha256(), hashlib.sha256()
            received = 0
            with trio.fail_after(10):
                await sock.connect(dst)
            stream = trio.SocketStream(sock)
            async with stream:

                async def sender() -> None:
                    for _ in range(size // len(block)):
                        sent.update(block)
                        await stream.send_all(block)
                    await stream.send_eof()

                with trio.fail_after(240):
                    async with trio.open_nursery() as inner:
                        inner.start_soon(sender)
                        while data := await stream.receive_some(1 << 20):
                            got.update(data)
                            received += len(data)
            assert received == size and got.digest() == sent.digest()


@pytest.mark.parametrize("executor", ["critical", "dedicated"])
async def test_tcp_after_the_bind_storm(executor: str) -> None:
    """Connect to nic000 — bound before the storm — once a burst of 24 has arrived."""
    require_real_net()
    with real_host(ModelParams(executor=executor), backend="tap", adapters=25) as real:
        async with running(real) as nursery:
            host = real.host
            services.enable(host, nursery)
            host.pnp.schedule(real.configs[:1], start=host.kernel.now)
            await wait_for(lambda: host.ipv6_ready() == 1)
            addr, dev, ns = where(real)
            sock, dst = client_socket(ns, addr, dev, 7)
            with sock, trio.fail_after(5):
                await sock.connect(dst)  # before the storm: both hosts answer
            host.pnp.schedule(real.configs[1:], start=host.kernel.now)
            crit = host.kernel.queue("critical")
            if executor == "critical":
                await wait_for(lambda: crit.blocked == len(crit.workers) == 26)
            else:
                await wait_for(lambda: host.ipv6_ready() == 25)
            sock, dst = client_socket(ns, addr, dev, 7)
            with sock:
                connected = False
                with trio.move_on_after(4):
                    await sock.connect(dst)
                    await sock.send(b"ping\n")
                    sock.shutdown(socket.SHUT_WR)
                    connected = await sock.recv(10) == b"ping\n"
            assert connected is (executor == "dedicated")  # the unpatched host times out
