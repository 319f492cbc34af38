"""The IPv6 host stack against real Linux peers in a namespace: ping -6 with fragments both
ways, ndisc6 for link-local and global addresses, SLAAC from radvd, UDP echo with nc, and an
ICMPv6 port unreachable seen by a kernel socket."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trio

from ndisemu.backends.netlink import Registry, in_netns, netns_preexec, write_sysctl
from tcpip6.stack.addrconf import AddrState
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams
from tcpip6lab.serve import RealHost, make_real_host
from tests.conftest import require_real_net, wait_for

PREFIX = "2001:db8:6::"  # documentation prefix, only inside the test's own namespace


@dataclass
class Lab:
    real: RealHost
    host: EmulatedHost
    device: str
    netns: str
    link_local: str
    mac: bytes

    async def run(self, *argv: str, stdin: bytes = b"") -> trio.CompletedProcess[bytes]:
        return await trio.run_process(list(argv), check=False, capture_stdout=True,
                                      capture_stderr=True, stdin=stdin,
                                      preexec_fn=netns_preexec(self.netns))

    def global_address(self) -> str | None:
        stack = self.host.tcpip6.interfaces["nic000"].stack
        assert stack is not None
        for info in stack.addresses:
            text = addr_str(info.address)
            if text.startswith("2001:db8:6:") and info.state is AddrState.PREFERRED:
                return text
        return None


@contextlib.asynccontextmanager
async def lab(tmp_path: Path, *, radvd: bool = False) -> AsyncIterator[Lab]:
    registry = Registry.open()
    real = None
    try:
        real = make_real_host(ModelParams(executor="dedicated"), backend="tap", adapters=1,
                              seed=2, netns=None, registry=registry)
        site = real.topology.sites["nic000"]
        cfg = real.configs[0]
        host = real.host
        the_lab = Lab(real, host, site.device, site.netns,
                      addr_str(link_local_from_mac(cfg.mac)), cfg.mac)
        async with trio.open_nursery() as nursery:
            await nursery.start(host.kernel.run)
            nursery.start_soon(site.port.run)
            if radvd:
                await _start_radvd(the_lab, tmp_path, nursery)
            host.start()
            host.pnp.schedule(real.configs, start=host.kernel.now)
            await wait_for(lambda: host.ipv6_ready() == 1)
            yield the_lab
            nursery.cancel_scope.cancel()
    finally:
        if real is not None:
            real.close()
        else:
            registry.teardown()


async def _start_radvd(the_lab: Lab, tmp_path: Path, nursery: trio.Nursery) -> None:
    from pyroute2 import NetNS

    write_sysctl(the_lab.netns, "net/ipv6/conf/all/forwarding", "1")
    with NetNS(the_lab.netns) as ns:
        idx = ns.link_lookup(ifname=the_lab.device)[0]
        ns.addr("add", index=idx, address=PREFIX + "1", prefixlen=64, family=socket.AF_INET6)
    conf = tmp_path / "radvd.conf"
    conf.write_text(
        f"interface {the_lab.device} {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n"
        f"  MaxRtrAdvInterval 4;\n  prefix {PREFIX}/64 {{ AdvOnLink on; AdvAutonomous on; }};\n"
        "};\n")

    async def radvd() -> None:
        await trio.run_process(["radvd", "-n", "-C", str(conf), "-p", str(tmp_path / "pid"),
                                "-m", "stderr"], check=False, capture_stdout=True,
                               capture_stderr=True, preexec_fn=netns_preexec(the_lab.netns))

    nursery.start_soon(radvd)


async def test_ping_with_fragments_both_ways_and_ndisc6_link_local(tmp_path: Path) -> None:
    require_real_net("ping", "ndisc6")
    async with lab(tmp_path) as lb:
        target = f"{lb.link_local}%{lb.device}"
        small = await lb.run("ping", "-6", "-n", "-c", "2", "-i", "0.3", "-W", "2", target)
        assert small.returncode == 0, small.stdout
        big = await lb.run("ping", "-6", "-n", "-c", "2", "-i", "0.3", "-W", "2", "-s", "3000",
                           target)
        assert big.returncode == 0, big.stdout + big.stderr
        assert b"3008 bytes from" in big.stdout  # the whole reply, reassembled by Linux
        stack = lb.host.tcpip6.interfaces["nic000"].stack
        assert stack is not None
        assert stack.counters["frag.reassembled"] >= 2, stack.counters  # requests in fragments
        assert stack.counters["frag.tx"] >= 4  # and the replies went out in them
        nd = await lb.run("ndisc6", "-n", "-1", "-r", "3", lb.link_local, lb.device)
        assert nd.returncode == 0, nd.stdout
        assert lb.mac.hex(":").upper().encode() in nd.stdout.upper()


async def test_slaac_from_radvd_then_global_ping_ndisc6_and_udp(tmp_path: Path) -> None:
    require_real_net("ping", "ndisc6", "radvd", "nc")
    async with lab(tmp_path, radvd=True) as lb:
        await wait_for(lambda: lb.global_address() is not None, within=20.0)
        addr = lb.global_address()
        assert addr is not None and addr.endswith("5eff:fe10:0")  # EUI-64 from the MAC
        ping = await lb.run("ping", "-6", "-n", "-c", "2", "-i", "0.3", "-W", "2", addr)
        assert ping.returncode == 0, ping.stdout
        nd = await lb.run("ndisc6", "-n", "-1", "-r", "3", addr, lb.device)
        assert nd.returncode == 0 and lb.mac.hex(":").upper().encode() in nd.stdout.upper()
        # UDP echo (RFC 862) with Linux's nc.
        echo = await lb.run("nc", "-6", "-u", "-w", "2", addr, "7", stdin=b"hello tcpip6\n")
        assert echo.stdout == b"hello tcpip6\n", echo.stderr
        # A closed port: the kernel socket learns of it from the ICMPv6 port unreachable.
        with in_netns(lb.netns):
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        with sock:
            sock.setblocking(False)
            await trio.lowlevel.checkpoint()
            sock.connect((addr, 9999))
            sock.send(b"anyone?")
            refused = False
            with trio.move_on_after(3):
                while not refused:
                    await trio.lowlevel.wait_readable(sock)
                    try:
                        sock.recv(100)
                    except ConnectionRefusedError:
                        refused = True
            assert refused
        stack = lb.host.tcpip6.interfaces["nic000"].stack
        assert stack is not None and stack.counters["drop.PORT_UNREACHABLE"] >= 1
        assert stack.counters["icmp.errors_sent"] >= 1


async def test_a_trio_udp_service_on_the_emulated_host_answers_nc(tmp_path: Path) -> None:
    """A service written as ordinary trio code on the emulated host (HostSockets), reached by
    Linux's nc over the link-local address."""
    require_real_net("nc")
    async with lab(tmp_path) as lb:
        sock = await lb.host.sockets.udp_socket("nic000", 5353)

        async def shout() -> None:
            while True:
                data, peer = await sock.recvfrom()
                await sock.sendto(data.upper(), peer)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(shout)
            got = await lb.run("nc", "-6", "-u", "-w", "2", f"{lb.link_local}%{lb.device}",
                               "5353", stdin=b"hello service\n")
            nursery.cancel_scope.cancel()
        sock.close()
        assert got.stdout == b"HELLO SERVICE\n", got.stderr
