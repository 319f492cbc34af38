"""Shared helpers for the Ipv6Host tests: hosts in virtual time, scapy-built frames, a wire."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from tcpip6.stack.addrconf import AddrState
from tcpip6.stack.context import HostConfig
from tcpip6.stack.host import Ipv6Host
from tcpip6.wire.ethernet import mac_str, parse_mac
from tcpip6.wire.ipv6 import addr_str, parse_addr

HOST_MAC = parse_mac("00:15:5d:01:02:03")
HOST_MAC_S = "00:15:5d:01:02:03"
HOST_LL = "fe80::215:5dff:fe01:203"
HOST_SN = "ff02::1:ff01:203"
HOST_SN_MAC = "33:33:ff:01:02:03"
PEER_MAC_S = "02:00:00:00:00:aa"
PEER_MAC = parse_mac(PEER_MAC_S)
PEER_LL = "fe80::ff:fe00:aa"
ROUTER_MAC_S = "02:00:00:00:00:01"
ROUTER_LL = "fe80::1"
PREFIX = "2001:db8:1::"
HOST_GLOBAL = "2001:db8:1:0:215:5dff:fe01:203"
ALL_NODES_MAC = "33:33:00:00:00:01"


def cfg(**kw: Any) -> HostConfig:
    """Test default: no start-up jitter (tests that check it turn it back on)."""
    kw.setdefault("startup_delay", False)
    return HostConfig(**kw)


def new_host(seed: int = 1, mtu: int = 1500, **kw: Any) -> Ipv6Host:
    return Ipv6Host(HOST_MAC, mtu, rng=random.Random(seed), config=cfg(**kw))


def advance(host: Ipv6Host, until: float) -> list[tuple[float, bytes]]:
    """Run the host's timers up to ``until``; return (time, frame) for every frame sent."""
    out: list[tuple[float, bytes]] = []
    while (d := host.next_deadline()) is not None and d <= until:
        out += [(d, f) for f in host.handle_timer(d)]
    return out


def up_host(seed: int = 1, **kw: Any) -> Ipv6Host:
    """A started host whose link-local address passed DAD (virtual time 0..1.5 s)."""
    h = new_host(seed, **kw)
    h.start(0.0)
    advance(h, 1.5)
    assert h.address_state(h.link_local) is AddrState.PREFERRED
    return h


def to_host(
    ip_layer: Packet, *, src_mac: str = PEER_MAC_S, dst_mac: str | None = None
) -> bytes:
    """An Ethernet frame around a scapy IPv6 packet, to the host's MAC or the group's."""
    if dst_mac is None:
        dst = ip_layer[IPv6].dst
        if dst.startswith("ff"):
            b = parse_addr(dst)
            dst_mac = "33:33:" + b[12:].hex(":")
        else:
            dst_mac = HOST_MAC_S
    return bytes(Ether(dst=dst_mac, src=src_mac) / ip_layer)


def parse(frame: bytes) -> Packet:
    return Ether(frame)


def checksums_ok(frame: bytes) -> Packet:
    """scapy recomputes the upper-layer checksum (ICMPv6/UDP); it must equal ours."""
    pkt = Ether(frame)
    again = pkt.copy()
    layer = again[IPv6]
    while layer is not None and layer.payload and not hasattr(layer, "cksum"):
        layer = layer.payload
    if layer is not None and hasattr(layer, "cksum"):
        del layer.cksum
    assert bytes(again) == frame
    return pkt


def drops(host: Ipv6Host) -> dict[str, int]:
    return {k: v for k, v in host.counters.items() if k.startswith("drop.") and v}


def only_drop(host: Ipv6Host) -> str:
    d = drops(host)
    assert len(d) == 1, d
    return next(iter(d))


def a(text: str) -> bytes:
    return parse_addr(text)


def s(addr: bytes) -> str:
    return addr_str(addr)


@dataclass
class Wire:
    """Hosts on one segment: every frame goes to every other host; virtual time advances to
    the next deadline when the wire is quiet. ``log`` keeps (time, sender index, frame)."""

    hosts: list[Any]
    now: float = 0.0
    log: list[tuple[float, int, bytes]] = field(default_factory=list)
    _queue: list[tuple[int, bytes]] = field(default_factory=list)

    def send(self, sender: int, frames: Iterable[bytes]) -> None:
        self._queue += [(sender, f) for f in frames]

    def run(self, until: float) -> None:
        while True:
            while self._queue:
                assert len(self.log) < 10_000, "frame storm"
                sender, frame = self._queue.pop(0)
                self.log.append((self.now, sender, frame))
                for i, h in enumerate(self.hosts):
                    if i != sender:
                        self.send(i, h.handle_frame(frame, self.now))
            deadlines = [
                d for h in self.hosts
                if hasattr(h, "next_deadline") and (d := h.next_deadline()) is not None
            ]  # fmt: skip
            if not deadlines or min(deadlines) > until:
                self.now = max(self.now, until)
                return
            self.now = max(self.now, min(deadlines))
            for i, h in enumerate(self.hosts):
                if hasattr(h, "handle_timer"):
                    self.send(i, h.handle_timer(self.now))

    def frames_from(self, index: int) -> list[Packet]:
        return [Ether(f) for _, i, f in self.log if i == index]


__all__ = ["mac_str"]
