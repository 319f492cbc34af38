"""Real devices for emulated adapters: one TAP or veth per adapter, Linux's side in a namespace.

    emulated adapter nicNNN ──fd──> TAP t6l-RUN-N  ──(in netns t6l-NAME)── Linux: ping, ndisc6…
    emulated adapter nicNNN ──AF_PACKET── veth t6l-RUN-Ne (netns t6l-RUN-emu) ═ veth t6l-RUN-N
                                                                   (in netns t6l-NAME) ── Linux

Linux's side of each device gets the peer MAC, an IPv4 address in the adapter's /30, a kernel
link-local IPv6 address (DAD off, so it is usable at once) and is brought up. The emulated side
of a veth lives in a namespace of its own with IPv6 disabled, so that kernel never speaks there.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError
from .fdport import FdPort
from .netlink import (
    PREFIX,
    Registry,
    in_netns,
    require_root,
    require_tun,
    write_sysctl,
)
from .tap import open_tap, set_tap_carrier

if TYPE_CHECKING:
    from ..kernel import Kernel

CURRENT = "."  # `netns` value: Linux's side stays in this process's namespace
ETH_P_ALL = 0x0003
PACKET_MR_PROMISC = 1
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1


@dataclass
class SiteSpec:
    """One adapter to give a device: its emulated identity and Linux's side."""

    adapter: str
    index: int
    linux_mac: bytes
    linux_ipv4: bytes
    prefixlen: int = 30
    mtu: int = 1500
    linux_ipv6: bytes | None = None  # a routable address for Linux's side (/64), if any


@dataclass
class Site:
    spec: SiteSpec
    device: str  # Linux's side, inside `netns`
    netns: str
    port: FdPort
    emu_device: str | None = None  # veth: our end
    ifb: str | None = None  # TAP with "out" wire faults: the IFB its received frames cross


@dataclass
class Topology:
    backend: str
    netns: str
    registry: Registry
    sites: dict[str, Site] = field(default_factory=dict)
    emu_netns: str | None = None

    def ports(self) -> list[FdPort]:
        return [s.port for s in self.sites.values()]

    def close(self) -> list[str]:
        for site in self.sites.values():
            site.port.close()
        return self.registry.teardown()

    def add(self, kernel: Kernel, spec: SiteSpec) -> Site:
        """One more device, after `build` (an adapter nobody knew of in advance)."""
        from pyroute2 import IPRoute, NetNS

        current = self.netns == CURRENT
        with IPRoute() as ipr, (IPRoute() if current else NetNS(self.netns)) as ns:
            return _add_site(self, kernel, ipr, ns, spec)

    def remove(self, adapter: str) -> list[str]:
        """Remove an adapter's device (its departure) and forget it in the state file."""
        site = self.sites.pop(adapter, None)
        if site is None:
            return []
        site.port.close()  # a TAP device goes with its last fd
        names = [n for n in (site.device, site.emu_device, site.ifb) if n is not None]
        removed: list[str] = []
        for name, ns in ((site.device, self.netns), (site.emu_device, self.emu_netns),
                         (site.ifb, self.netns)):
            if name is None or ns is None:
                continue
            if _delete_link(name, ns):
                removed.append(f"link {name}")
        self.registry.release_links(names)
        return removed or [f"link {site.device}"]


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def preflight(backend: str) -> None:
    """Refuse early, in one line, what cannot work: an unknown backend, no root, no TUN."""
    if backend not in ("tap", "veth"):
        raise BackendError(f"unknown backend {backend!r}")
    require_root(f"--backend {backend}")
    if backend == "tap":
        require_tun()


def build(kernel: Kernel, backend: str, specs: list[SiteSpec], *, netns: str | None,
          registry: Registry) -> Topology:
    """Create the namespace and one device per spec. On any failure, what was made is removed
    by `registry.teardown()` (the caller's finally)."""
    from pyroute2 import IPRoute, NetNS
    from pyroute2 import netns as pr_netns

    preflight(backend)
    current = netns == CURRENT
    if current:
        ns_name = CURRENT
    else:
        ns_name = netns if netns is not None else f"{PREFIX}{registry.run_id}"
        if not ns_name.startswith(PREFIX):
            ns_name = PREFIX + ns_name
        registry.claim_netns(ns_name)
        pr_netns.create(ns_name)
        # Usable at once: no DAD delay on Linux's link-local addresses, no router
        # solicitations (new devices inherit these defaults of their namespace).
        write_sysctl(ns_name, "net/ipv6/conf/default/accept_dad", "0")
        write_sysctl(ns_name, "net/ipv6/conf/default/router_solicitations", "0")
    topo = Topology(backend, ns_name, registry)
    emu_ns = None
    if backend == "veth":
        emu_ns = f"{PREFIX}{registry.run_id}-emu"
        registry.claim_netns(emu_ns)
        pr_netns.create(emu_ns)
        write_sysctl(emu_ns, "net/ipv6/conf/default/disable_ipv6", "1")
        topo.emu_netns = emu_ns
    with IPRoute() as ipr, (IPRoute() if current else NetNS(ns_name)) as ns:
        lo = ns.link_lookup(ifname="lo")
        if lo and not current:
            ns.link("set", index=lo[0], state="up")
        for spec in specs:
            _add_site(topo, kernel, ipr, ns, spec)
    return topo


def _add_site(topo: Topology, kernel: Kernel, ipr: Any, ns: Any, spec: SiteSpec) -> Site:
    registry = topo.registry
    ns_name = topo.netns
    current = ns_name == CURRENT
    dev = f"{PREFIX}{registry.run_id}-{spec.index}"
    registry.claim_link(dev)
    if topo.backend == "tap":
        fd = open_tap(dev)
        port = FdPort(kernel, fd, dev, mtu=spec.mtu)
        port.carrier = _tap_carrier(fd)
        emu_dev = None
    else:
        emu_dev = dev + "e"
        registry.claim_link(emu_dev)
        ipr.link("add", ifname=emu_dev, kind="veth", peer={"ifname": dev})
        idx = ipr.link_lookup(ifname=emu_dev)[0]
        ipr.link("set", index=idx, net_ns_fd=topo.emu_netns)
        port = _packet_port(kernel, topo.emu_netns or "", emu_dev, spec)
        port.carrier = _veth_carrier(topo.emu_netns or "", emu_dev)
    idx = ipr.link_lookup(ifname=dev)[0]
    if current:
        # In the current namespace the defaults are the user's: set ours per device.
        for key in ("accept_dad", "router_solicitations"):
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{dev}/{key}").write_text("0")
    else:
        ipr.link("set", index=idx, net_ns_fd=ns_name)
    i = ns.link_lookup(ifname=dev)[0]
    ns.link("set", index=i, address=_mac(spec.linux_mac), mtu=spec.mtu)
    ns.addr("add", index=i, address=socket.inet_ntoa(spec.linux_ipv4),
            prefixlen=spec.prefixlen)
    ns.link("set", index=i, state="up")
    if topo.backend == "veth":
        # Linux leaves TCP/UDP checksums of locally sent packets to the "hardware" (a veth
        # passes them on unfinished, CHECKSUM_PARTIAL); our AF_PACKET end would read them
        # wrong. Checksummed in software they arrive whole, as from a real NIC.
        with contextlib.nullcontext() if current else in_netns(ns_name):
            _tx_checksum_off(dev)
    if spec.linux_ipv6 is not None:
        # After the link is up (an address on a down device with IPv6 not yet set up there is
        # refused); no DAD: the namespace's (or this device's) accept_dad is 0.
        ns.addr("add", index=i, family=socket.AF_INET6,
                address=socket.inet_ntop(socket.AF_INET6, spec.linux_ipv6), prefixlen=64)
    site = topo.sites[spec.adapter] = Site(spec, dev, ns_name, port, emu_dev)
    return site


def _tap_carrier(fd: int) -> Callable[[bool], None]:
    def carrier(up: bool) -> None:
        try:
            set_tap_carrier(fd, up)
        except OSError as exc:
            raise BackendError(f"cannot set the carrier of a TAP device: {exc.strerror}") \
                from None
    return carrier


def _veth_carrier(emu_ns: str, emu_dev: str) -> Callable[[bool], None]:
    """A veth's carrier is its peer being up: our end down is a pulled cable for Linux."""
    def carrier(up: bool) -> None:
        from pyroute2 import NetNS

        with NetNS(emu_ns) as ns:
            idx = ns.link_lookup(ifname=emu_dev)
            if idx:
                ns.link("set", index=idx[0], state="up" if up else "down")
    return carrier


SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17  # linux/ethtool.h: set TX checksum offload (struct ethtool_value)


def _tx_checksum_off(dev: str) -> None:
    import array
    import fcntl
    import struct

    value = array.array("I", [ETHTOOL_STXCSUM, 0])
    ifr = struct.pack("16sP", dev.encode(), value.buffer_info()[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifr)
        except OSError as exc:
            raise BackendError(f"cannot turn off TX checksum offload on {dev}: "
                               f"{exc.strerror}") from None


def _delete_link(name: str, netns: str) -> bool:
    """Delete a link inside a namespace (or the current one); False if it is already gone."""
    from pyroute2 import IPRoute, NetNS

    with (IPRoute() if netns == CURRENT else NetNS(netns)) as ns:
        idx = ns.link_lookup(ifname=name)
        if not idx:
            return False
        with contextlib.suppress(Exception):
            ns.link("del", index=idx[0])
    return True


def _packet_port(kernel: Kernel, emu_ns: str, emu_dev: str, spec: SiteSpec) -> FdPort:
    from pyroute2 import NetNS

    with NetNS(emu_ns) as ns:
        i = ns.link_lookup(ifname=emu_dev)[0]
        ns.link("set", index=i, state="up", mtu=spec.mtu)
    with in_netns(emu_ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.bind((emu_dev, 0))
            ifindex = socket.if_nametoindex(emu_dev)
            mreq = ifindex.to_bytes(4, "little") + PACKET_MR_PROMISC.to_bytes(2, "little") \
                + bytes(2) + bytes(8)
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            sock.setblocking(False)
        except OSError:
            with contextlib.suppress(OSError):
                sock.close()
            raise
    return FdPort(kernel, sock.fileno(), emu_dev, sock=sock, mtu=spec.mtu)
