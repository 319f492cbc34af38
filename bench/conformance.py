"""`tcpip6-lab bench conformance`: the emulated IPv6 host held against the Linux kernel.

Theory of operation: one namespace (the lab) holds the prober's side of two links — the TAP
device of the emulated host and one end of a veth pair whose other end sits in a second
namespace, a plain Linux host. Each probe of the catalogue (:mod:`bench.probes`) is sent in the
same run to both targets from raw packet sockets; what each target sends back within the probe's
window is classified (no reply / reply / ICMPv6 type, code, pointer / TCP RST / NA / MLD report)
and the two reactions compared. Neighbor Discovery chatter and MLD reports are ignored unless the
probe is about them: the prober's address is a permanent neighbor on the Linux side, and the lab
namespace answers the emulated host's solicitations.

Reproducibility: ICMPv6 error rate limiting is off in the Linux namespace
(``net.ipv6.icmp.ratelimit=0``, the global ICMP budget raised) and the model's token bucket is
made unlimited alike; the reassembly timeout is :data:`FRAG_TIME` on both sides
(``net.ipv6.ip6frag_time`` and ``HostConfig.reassembly_timeout``); the report records the
kernel release, since Linux's answers change between releases.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from .probes import CATALOGUE, Ends, Probe, link_local

FRAG_TIME = 2  # seconds, both sides (Linux's ip6frag_time is whole seconds)
PROBER_ADDR = bytes.fromhex("fe80000000000000000000000017beef")
LINUX_MAC = bytes.fromhex("02005e170002")
LAB_VETH_MAC = bytes.fromhex("02005e170001")
ETH_P_ALL = 0x0003
NUD_PERMANENT = 0x80
_NOISE = {133, 135, 134, 137}  # RS, NS, RA, Redirect: the targets' own ND
_MLD_REPORTS = {131, 132, 143}
_EXT = {0, 43, 60}


def classify(frames: Iterable[bytes], keep_mld: bool = False, ident: int | None = None) -> str:
    """The reaction in a stable text form: ``none``, ``reply``, ``icmp T/C ptr P``, ``rst``,
    ``synack``, ``na``, ``mld-report``; several reactions joined with ``+`` (sorted), counts
    above one as ``×N``. An ICMPv6 error quoting a fragment whose Identification is not
    ``ident`` belongs to an earlier probe (a reassembly timing out late) and is left out."""
    seen: dict[str, int] = {}
    for f in frames:
        r = _one(f, keep_mld, ident)
        if r is not None:
            seen[r] = seen.get(r, 0) + 1
    if not seen:
        return "none"
    return "+".join(k if n == 1 else f"{k}×{n}" for k, n in sorted(seen.items()))


def _quoted_ident(inv: memoryview) -> int | None:
    """The Identification of a Fragment header in a quoted (invoking) packet, if any."""
    if len(inv) < 40:
        return None
    nh, off = inv[6], 40
    while nh in _EXT and off + 8 <= len(inv):
        if nh == 44:
            return int(struct.unpack_from("!I", inv, off + 4)[0])
        nh, off = inv[off], off + (inv[off + 1] + 1) * 8
    return None


def _one(f: bytes, keep_mld: bool, ident: int | None = None) -> str | None:
    if len(f) < 54 or f[12:14] != b"\x86\xdd":
        return None
    ip = memoryview(f)[14:]
    nh, off = ip[6], 40
    while nh in _EXT or nh == 44:
        if off + 8 > len(ip):
            return "truncated"
        if nh == 44:
            if struct.unpack_from("!H", ip, off + 2)[0] & 0xFFF8:
                return None  # a non-first fragment: counted with its first
            nh, off = ip[off], off + 8
        else:
            nh, off = ip[off], off + (ip[off + 1] + 1) * 8
    if nh == 58 and off + 4 <= len(ip):
        t, c = ip[off], ip[off + 1]
        if t in _NOISE:
            return None
        if t in _MLD_REPORTS:
            return "mld-report" if keep_mld else None
        if t == 136:
            return "na"
        if t == 129:
            return "reply"
        if t < 128:
            q = _quoted_ident(ip[off + 8:])
            if ident is not None and q is not None and q != ident:
                return None
            ptr = struct.unpack_from("!I", ip, off + 4)[0] if off + 8 <= len(ip) else 0
            return f"icmp {t}/{c} ptr {ptr}" if t == 4 else f"icmp {t}/{c}"
        return f"icmp {t}/{c}"
    if nh == 6 and off + 14 <= len(ip):
        flags = ip[off + 13]
        if flags & 0x04:
            return "rst"
        if flags & 0x12 == 0x12:
            return "synack"
        return f"tcp {flags:#x}"
    if nh == 17:
        return "udp"
    return f"nh {nh}"


@dataclass
class Result:
    probe: Probe
    linux: str
    ours: str

    @property
    def agree(self) -> bool:
        return self.linux == self.ours


class Tap:
    """A raw packet socket in the lab namespace: sends frames, records what a target sends."""

    def __init__(self, sock: socket.socket, target_mac: bytes) -> None:
        self.sock = sock
        self.target_mac = target_mac
        self.frames: list[bytes] = []

    async def reader(self) -> None:
        sock = self.sock
        while True:
            await trio.lowlevel.wait_readable(sock)
            while True:
                try:
                    data, addr = sock.recvfrom(70000)
                except BlockingIOError:
                    break
                if addr[2] != socket.PACKET_OUTGOING and data[6:12] == self.target_mac:
                    self.frames.append(data)

    def send(self, frames: list[bytes]) -> None:
        for f in frames:
            with contextlib.suppress(OSError):
                self.sock.send(f)


def _packet_socket(ns: str, dev: str) -> socket.socket:
    from ndisemu.backends.netlink import in_netns

    with in_netns(ns):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((dev, 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return s


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _addr(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, b)


def _sysctl(ns: str, key: str, value: str, strict: bool = True) -> None:
    from ndisemu.backends.netlink import in_netns

    with in_netns(ns):
        try:
            Path("/proc/sys", key).write_text(value)
        except OSError:
            if strict:
                raise


@contextlib.contextmanager
def linux_target(registry: Any, lab_ns: str) -> Iterator[tuple[str, str]]:
    """A Linux host on a veth pair: (its namespace, the lab end's device name)."""
    from pyroute2 import IPRoute, NetNS
    from pyroute2 import netns as pr_netns

    from ndisemu.backends.netlink import PREFIX

    ns = f"{PREFIX}{registry.run_id}-lx"
    registry.claim_netns(ns)
    pr_netns.create(ns)
    for key, value in (("net/ipv6/conf/default/accept_dad", "0"),
                       ("net/ipv6/conf/default/router_solicitations", "0"),
                       ("net/ipv6/icmp/ratelimit", "0"),
                       ("net/ipv6/ip6frag_time", str(FRAG_TIME))):
        _sysctl(ns, key, value)
    # the global ICMP budget (icmp_global_allow) also applies to ICMPv6: raised out of reach
    _sysctl(ns, "net/ipv4/icmp_msgs_per_sec", "1000000", strict=False)
    _sysctl(ns, "net/ipv4/icmp_msgs_burst", "1000000", strict=False)
    lab_dev = f"{PREFIX}{registry.run_id}-va"
    peer = f"{PREFIX}{registry.run_id}-vb"
    registry.claim_link(lab_dev)
    registry.claim_link(peer)
    with IPRoute() as ipr:
        ipr.link("add", ifname=lab_dev, kind="veth", peer={"ifname": peer})
        ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_fd=ns)
        ipr.link("set", index=ipr.link_lookup(ifname=lab_dev)[0], net_ns_fd=lab_ns)
    with NetNS(ns) as n:
        lo = n.link_lookup(ifname="lo")[0]
        n.link("set", index=lo, state="up")
        i = n.link_lookup(ifname=peer)[0]
        n.link("set", index=i, address=_mac(LINUX_MAC), mtu=1500)
        n.link("set", index=i, state="up")
        n.neigh("add", dst=_addr(PROBER_ADDR), lladdr=_mac(LAB_VETH_MAC), ifindex=i,
                state=NUD_PERMANENT, family=socket.AF_INET6)
    with NetNS(lab_ns) as n:
        i = n.link_lookup(ifname=lab_dev)[0]
        n.link("set", index=i, address=_mac(LAB_VETH_MAC), mtu=1500)
        n.link("set", index=i, state="up")
    yield ns, lab_dev


def _lab_address(lab_ns: str, devices: list[tuple[str, bytes, bytes]]) -> None:
    """The prober's address on both lab devices, so the lab kernel answers the emulated
    host's Neighbor Solicitations for it; the targets as permanent neighbors there, so the
    lab kernel never solicits them (their answers would pass for reactions)."""
    from pyroute2 import NetNS

    with NetNS(lab_ns) as n:
        for dev, addr, mac in devices:
            i = n.link_lookup(ifname=dev)[0]
            n.addr("add", index=i, address=_addr(PROBER_ADDR), prefixlen=64,
                   flags=0x02)  # IFA_F_NODAD
            n.neigh("add", dst=_addr(addr), lladdr=_mac(mac), ifindex=i,
                    state=NUD_PERMANENT, family=socket.AF_INET6)


Say = Callable[[str], None]


async def _run_probes(probes: list[Probe], taps: dict[str, Tap], ends: dict[str, Ends],
                      say: Say) -> list[Result]:
    results = []
    ident = 0x17000000 + (os.getpid() & 0xFFFF) * 256
    for n, p in enumerate(probes):
        ident += 1
        marks = {k: len(t.frames) for k, t in taps.items()}
        for k, t in taps.items():
            t.send(p.build(ends[k], ident))
        await trio.sleep(p.window)
        got = {k: classify(t.frames[marks[k]:], p.keep_mld, ident) for k, t in taps.items()}
        results.append(Result(p, got["linux"], got["ours"]))
        say(f"[{n + 1}/{len(probes)}] {p.name}: linux {got['linux']}, ours {got['ours']}"
            + ("" if got["linux"] == got["ours"] else "  ≠"))
    return results


def run(probes: list[Probe] | None = None, say: Say = lambda s: None) -> dict[str, Any]:
    """Set everything up, run ``probes`` (default: the whole catalogue), tear down."""
    from ndisemu.backends.netlink import Registry
    from ndisemu.backends.topology import SiteSpec, build, preflight
    from ndisemu.miniport import MiniportConfig, WireEnd
    from tcpip6.wire.ipv6 import link_local_from_mac
    from tcpip6lab.host import EmulatedHost
    from tcpip6lab.params import ModelParams, peer_mac

    preflight("tap")
    chosen = list(CATALOGUE if probes is None else probes)
    registry = Registry.open()
    topo = None
    socks: list[socket.socket] = []
    try:
        holder: dict[str, Any] = {}

        def wire_for(cfg: MiniportConfig) -> WireEnd:
            port: WireEnd = holder["topo"].sites[cfg.name].port
            return port

        host = EmulatedHost(ModelParams(executor="dedicated"), seed=17, wire_factory=wire_for)
        # the model's limiter off and its reassembly timeout as Linux's, for this run
        host.tcpip6.stack_config = dataclasses.replace(
            host.tcpip6.stack_config or _default_config(), icmp_error_rate=1e9,
            icmp_error_burst=1_000_000_000, reassembly_timeout=float(FRAG_TIME))
        configs = host.adapter_configs(1)
        cfg = configs[0]
        topo = build(host.kernel, "tap", [SiteSpec(cfg.name, 0, peer_mac(0),
                                                   bytes([198, 18, 17, 2]))],
                     netns=None, registry=registry)
        holder["topo"] = topo
        site = topo.sites[cfg.name]
        lab_ns = topo.netns
        with linux_target(registry, lab_ns) as (_linux_ns, lab_veth):
            _lab_address(lab_ns, [(site.device, link_local_from_mac(cfg.mac), cfg.mac),
                                  (lab_veth, link_local(LINUX_MAC), LINUX_MAC)])
            s_ours = _packet_socket(lab_ns, site.device)
            s_linux = _packet_socket(lab_ns, lab_veth)
            socks += [s_ours, s_linux]
            ends = {
                "ours": Ends(PROBER_ADDR, peer_mac(0), link_local_from_mac(cfg.mac), cfg.mac),
                "linux": Ends(PROBER_ADDR, LAB_VETH_MAC, link_local(LINUX_MAC), LINUX_MAC),
            }
            taps = {"ours": Tap(s_ours, cfg.mac), "linux": Tap(s_linux, LINUX_MAC)}

            async def main() -> list[Result]:
                async with trio.open_nursery() as nursery:
                    await nursery.start(host.kernel.run)
                    nursery.start_soon(site.port.run)
                    for t in taps.values():
                        nursery.start_soon(t.reader)
                    host.start()
                    host.pnp.schedule(configs, start=host.kernel.now)
                    with trio.fail_after(10):
                        while host.ipv6_ready() != 1:  # noqa: ASYNC110 - no event to await
                            await trio.sleep(0.01)
                    await trio.sleep(0.3)  # let start-up reports pass
                    res = await _run_probes(chosen, taps, ends, say)
                    nursery.cancel_scope.cancel()
                return res

            started = time.monotonic()
            results = trio.run(main)
            seconds = time.monotonic() - started
            stack = host.tcpip6.interfaces[cfg.name].stack
            drops = {k: v for k, v in (stack.counters.items() if stack else [])
                     if k.startswith("drop.")}
        host.close()
    finally:
        for s in socks:
            s.close()
        if topo is not None:
            topo.close()
        else:
            registry.teardown()
    return {"kernel": platform.release(), "frag_time": FRAG_TIME, "seconds": seconds,
            "results": results, "drops": drops}


def _default_config() -> Any:
    from tcpip6.stack.context import HostConfig

    return HostConfig()


# --- the report ----------------------------------------------------------------------------------

#: For every probe where we knowingly differ from Linux: the RFC text that justifies ours.
JUSTIFIED: dict[str, str] = {
    "jumbo.plen0_no_jumbo": (
        "RFC 2675 §3: \"error conditions [...] IPv6 Payload Length = 0 and IPv6 Next Header = "
        "Hop-by-Hop Options and Jumbo Payload option not present — Code 0, Pointer = high-order "
        "octet of the IPv6 Payload Length\". We send exactly that; Linux takes the frame's "
        "length as the payload length and answers the echo."),
    "rt.type4.sl0": (
        "Linux recognizes routing type 4 (the Segment Routing Header, RFC 8754) and, with "
        "`seg6_enabled=0` (its default), drops every packet carrying one. We do not implement "
        "RFC 8754, so type 4 is unrecognized and RFC 8200 §4.4 applies: \"If Segments Left is "
        "zero, the node must ignore the Routing header and proceed to process the next header "
        "in the packet\"."),
    "rt.type4.sl1": (
        "As for `rt.type4.sl0`; RFC 8200 §4.4 for an unrecognized Routing Type with Segments "
        "Left non-zero: \"the node must discard the packet and send an ICMP Parameter "
        "Problem, Code 0, message to the packet's Source Address, pointing to the unrecognized "
        "Routing Type\"."),
    "err.about_redirect": (
        "RFC 4443 §2.4 (e): \"An ICMPv6 error message MUST NOT be originated as a result of "
        "receiving the following: (e.1) An ICMPv6 error message. (e.2) An ICMPv6 Redirect "
        "message [IPv6-DISC].\" Linux's `is_ineligible()` only exempts error messages, so it "
        "answers a Redirect carrying an unknown option with Parameter Problem code 2."),
    "echo.l2_broadcast": (
        "Not the stack: the modeled tcpip6 binding programs the NDIS packet filter "
        "DIRECTED | MULTICAST (tcpip6/binder.py), because IPv6 over Ethernet uses no "
        "broadcast (RFC 2464 §7 maps every multicast address to 33:33:xx; there is no IPv6 "
        "broadcast, RFC 4291 §2); the frame never reaches the IPv6 binding. RFC 1122 §3.3.6: "
        "\"A host SHOULD silently discard a datagram that is received via a link-layer "
        "broadcast but does not specify an IP multicast or broadcast destination address\" "
        "(Linux offers the same as `drop_unicast_in_l2_multicast`, off by default)."),
}


def render(data: dict[str, Any], command: str) -> str:
    results: list[Result] = data["results"]
    agree = sum(r.agree for r in results)
    lines = [
        "# IPv6 conformance: the emulated host against the Linux kernel",
        "",
        f"Generated by `{command}` (root). Linux kernel **{data['kernel']}** (a veth host in "
        "its own namespace) and the emulated host (TAP) received the same crafted probes "
        "(`bench/probes.py`) in the same run; what each sent back within the probe's window is "
        "compared. ICMPv6 error rate limiting was off on both sides "
        "(`net.ipv6.icmp.ratelimit=0`, the model's token bucket unlimited), reassembly "
        f"timeouts {data['frag_time']} s on both (`net.ipv6.ip6frag_time`, "
        "`HostConfig.reassembly_timeout`). Linux's answers change between releases: rerun "
        "after a kernel upgrade.",
        "",
        f"**{agree}/{len(results)} probes agree ({100 * agree / len(results):.1f} %)**; "
        f"run took {data['seconds']:.0f} s. Reactions: `none`, `reply` (Echo Reply), "
        "`icmp T/C ptr P` (ICMPv6 error type/code and, for Parameter Problem, the pointer), "
        "`rst`, `na`, `mld-report`; `×N` counts.",
        "",
        "| probe | what | Linux | ours | agree |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        mark = "yes" if r.agree else "**no**"
        lines.append(f"| `{r.probe.name}`{' (must agree)' if r.probe.must_agree else ''} | "
                     f"{r.probe.what} | {r.linux} | {r.ours} | {mark} |")
    diverging = [r for r in results if not r.agree]
    lines += ["", "## Divergences", ""]
    if not diverging:
        lines.append("None.")
    for r in diverging:
        why = JUSTIFIED.get(r.probe.name, "**not justified yet**")
        lines += [f"### `{r.probe.name}`", "", f"Linux: {r.linux}; ours: {r.ours}.", "", why,
                  ""]
    lines += ["## Drops counted by the emulated host during the run", "",
              ", ".join(f"`{k}` {v}" for k, v in sorted(data["drops"].items())), ""]
    return "\n".join(lines) + "\n"


def write_report(path: Path, probes: list[Probe] | None, command: str,
                 say: Say = lambda s: None) -> dict[str, Any]:
    data = run(probes, say)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data, command))
    return data
