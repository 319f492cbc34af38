"""The emulated peer: a Linux-like host on the far end of one wire that runs ``ping -6`` / ``ping``.

Theory of operation (sans-IO, virtual time passed in as ``now``): the peer is composed of an
:class:`~tcpip6.stack.ipv6responder.Ipv6Responder` (hop limit 64) and, when it has an IPv4 address,
an :class:`~tcpip6.stack.ipv4responder.Ipv4Responder` (TTL 64), all sharing one ``counters``. Those
already answer NS/ARP for the peer and Echo Requests sent to it; the peer adds the client side:

* ``ping6``: multicast destinations map straight to 33:33/16 MACs (RFC 2464 §7). A unicast
  target with a cached MAC is sent at once. Otherwise the Echo Request is queued on an INCOMPLETE
  entry and a multicast NS is sent to the target's solicited-node group from our link-local
  address with our SLLA and hop limit 255 (RFC 4861 §7.2.2); a further ping while INCOMPLETE
  retransmits the NS only once RetransTimer (1 s, RFC 4861 §10) has passed.
* An NA (validated per RFC 4861 §7.1.2; a solicited NA to a multicast address is invalid) for
  an INCOMPLETE target with a TLLA completes it and flushes the queue (§7.2.5); without a TLLA
  it is discarded. An NA for a complete entry with O=1 updates it; an NA with no entry is
  ignored (§7.2.5 "no entry: silently discard").
* ``ping4`` mirrors this with ARP (RFC 826): broadcast request, queue, flush on the reply. Any
  ARP naming our address teaches us the sender (RFC 826 merge).
* Each INCOMPLETE entry queues at most ``QUEUE_LIMIT`` packets; on overflow the oldest packet
  is dropped and counted (``drop.QUEUE_FULL``), as Linux's ``unres_qlen`` does.
* Echo Replies addressed to us are recorded as :class:`EchoResult` in ``replies``.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import NamedTuple

from tcpip6.counters import Counters
from tcpip6.stack.ipv4responder import Ipv4Responder
from tcpip6.stack.ipv6responder import Ipv6Responder
from tcpip6.wire import arp, icmpv6, ipv4
from tcpip6.wire.arp import ArpPacket
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ethernet import (
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    HEADER_LEN,
    ipv6_multicast_mac,
    pack_header,
)
from tcpip6.wire.icmpv6 import ECHO_REPLY, NA, ND_HOP_LIMIT, Icmpv6Message
from tcpip6.wire.ipv4 import ICMP_ECHO_REPLY, PROTO_ICMP, Icmpv4Message, Ipv4Header
from tcpip6.wire.ipv6 import NH_ICMPV6, Ipv6Header, packet, solicited_node

PEER_HOP_LIMIT = 64  # Linux net.ipv6.conf.*.hop_limit
PEER_TTL = 64  # Linux net.ipv4.ip_default_ttl
QUEUE_LIMIT = 16
RETRANS_TIMER = 1.0  # RFC 4861 §10 RETRANS_TIMER, seconds

_ETH_V4_WORD = ETHERTYPE_IPV4.to_bytes(2, "big")
_ETH_ARP_WORD = ETHERTYPE_ARP.to_bytes(2, "big")


class EchoResult(NamedTuple):
    """One received Echo Reply: address family (4 or 6), identifier, sequence, virtual time."""

    family: int
    ident: int
    seq: int
    now: float


@dataclass(slots=True)
class _Incomplete:
    """An unresolved neighbor: packets (without Ethernet header) waiting, last solicitation."""

    last_solicit: float
    queue: deque[bytes] = field(default_factory=deque)


class PeerPort:
    """The far-end host of one wire (see module docstring)."""

    QUEUE_LIMIT = QUEUE_LIMIT
    RETRANS_TIMER = RETRANS_TIMER

    def __init__(self, mac: bytes, ipv4: bytes | None = None) -> None:
        self.mac = bytes(mac)
        self.ipv4 = bytes(ipv4) if ipv4 is not None else None
        self.counters: Counter[str] = Counters()
        self.v6 = Ipv6Responder(self.mac, hop_limit=PEER_HOP_LIMIT)
        self.v6.counters = self.counters
        self.v6.icmp_handlers[NA] = self._rx_neighbor_advertisement
        self.v6.icmp_handlers[ECHO_REPLY] = self._rx_echo_reply6
        self.v4: Ipv4Responder | None = None
        if self.ipv4 is not None:
            self.v4 = Ipv4Responder(self.mac, self.ipv4, ttl=PEER_TTL)
            self.v4.counters = self.counters
            self.v4.icmp_handlers[ICMP_ECHO_REPLY] = self._rx_echo_reply4
            self.v4.arp_listener = self._rx_arp
        self.link_local: bytes = self.v6.link_local
        self.neighbors6: dict[bytes, bytes] = {}
        self.neighbors4: dict[bytes, bytes] = {}
        self._incomplete6: dict[bytes, _Incomplete] = {}
        self._incomplete4: dict[bytes, _Incomplete] = {}
        self.replies: list[EchoResult] = []

    # --- client side -----------------------------------------------------------------------

    def ping6(
        self, target: bytes, now: float, ident: int, seq: int, data: bytes = b""
    ) -> list[bytes]:
        """Send an Echo Request from our link-local address, resolving ``target`` if needed."""
        src = self.link_local
        pkt = packet(
            src, target, NH_ICMPV6, PEER_HOP_LIMIT,
            icmpv6.echo_request(src, target, ident, seq, data),
        )  # fmt: skip
        self.counters["echo_requests_sent"] += 1
        if target[0] == 0xFF:
            return self._tx(
                [pack_header(ipv6_multicast_mac(target), self.mac, ETHERTYPE_IPV6) + pkt]
            )
        mac = self.neighbors6.get(target)
        if mac is not None:
            return self._tx([pack_header(mac, self.mac, ETHERTYPE_IPV6) + pkt])
        entry = self._enqueue(self._incomplete6, target, pkt, now)
        if entry is None:
            return []
        group = solicited_node(target)
        ns = icmpv6.neighbor_solicitation(src, group, target, self.mac)
        self.counters["ns_sent"] += 1
        return self._tx(
            [
                pack_header(ipv6_multicast_mac(group), self.mac, ETHERTYPE_IPV6)
                + packet(src, group, NH_ICMPV6, ND_HOP_LIMIT, ns)
            ]
        )

    def ping4(
        self, target_ipv4: bytes, now: float, ident: int, seq: int, data: bytes = b""
    ) -> list[bytes]:
        """Send an ICMP Echo to ``target_ipv4``, ARPing for it first if needed."""
        if self.ipv4 is None or self.v4 is None:
            raise RuntimeError("this PeerPort has no IPv4 address")
        pkt = ipv4.packet(
            self.ipv4, target_ipv4, PROTO_ICMP, PEER_TTL,
            ipv4.icmp_echo_request(ident, seq, data), self.v4.next_ident(), df=True,
        )  # fmt: skip
        self.counters["echo_requests_sent"] += 1
        mac = self.neighbors4.get(target_ipv4)
        if mac is not None:
            return self._tx([pack_header(mac, self.mac, ETHERTYPE_IPV4) + pkt])
        entry = self._enqueue(self._incomplete4, target_ipv4, pkt, now)
        if entry is None:
            return []
        self.counters["arp_requests_sent"] += 1
        return self._tx(
            [
                pack_header(BROADCAST_MAC, self.mac, ETHERTYPE_ARP)
                + arp.request(self.mac, self.ipv4, target_ipv4)
            ]
        )

    def pop_replies(self) -> list[EchoResult]:
        """Return and clear the Echo Replies received so far."""
        out, self.replies = self.replies, []
        return out

    def forget_neighbors(self) -> None:
        """Flush both caches and every INCOMPLETE entry (its queued packets are discarded)."""
        self.neighbors6.clear()
        self.neighbors4.clear()
        for table in (self._incomplete6, self._incomplete4):
            for entry in table.values():
                self.counters["queue_discarded"] += len(entry.queue)
            table.clear()

    def pending(self) -> int:
        """Packets waiting for address resolution."""
        return sum(len(e.queue) for e in self._incomplete6.values()) + sum(
            len(e.queue) for e in self._incomplete4.values()
        )

    def _enqueue(
        self, table: dict[bytes, _Incomplete], key: bytes, pkt: bytes, now: float
    ) -> _Incomplete | None:
        """Queue ``pkt``; return the entry if a solicitation is due now, else None."""
        entry = table.get(key)
        if entry is None:
            entry = table[key] = _Incomplete(now)
            entry.queue.append(pkt)
            return entry
        if len(entry.queue) >= QUEUE_LIMIT:
            entry.queue.popleft()
            self.counters["drop." + DropReason.QUEUE_FULL] += 1
        entry.queue.append(pkt)
        if now - entry.last_solicit >= RETRANS_TIMER:
            entry.last_solicit = now
            return entry
        return None

    def _tx(self, frames: list[bytes]) -> list[bytes]:
        self.counters["tx"] += len(frames)
        return frames

    # --- receive side ------------------------------------------------------------------------

    def handle_frame(self, frame: bytes | bytearray | memoryview, now: float) -> list[bytes]:
        """Process one received frame; return the frames to transmit (possibly none)."""
        if self.v4 is not None and len(frame) >= HEADER_LEN:
            et = bytes(frame[12:14])
            if et in (_ETH_V4_WORD, _ETH_ARP_WORD):
                return self.v4.handle_frame(frame, now)
        return self.v6.handle_frame(frame, now)

    def _rx_neighbor_advertisement(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, now: float
    ) -> list[bytes]:
        na = icmpv6.parse_neighbor_advertisement(msg)
        if na.solicited and ip.dst[0] == 0xFF:  # RFC 4861 §7.1.2
            return self._drop(DropReason.BAD_FLAGS)
        tlla = na.options.target_lladdr
        self.counters["na_rx"] += 1
        entry = self._incomplete6.get(na.target)
        if entry is not None:
            if tlla is None:  # RFC 4861 §7.2.5: INCOMPLETE needs the TLLA
                return self._drop(DropReason.BAD_OPTION)
            del self._incomplete6[na.target]
            self.neighbors6[na.target] = tlla
            head = pack_header(tlla, self.mac, ETHERTYPE_IPV6)
            return [head + p for p in entry.queue]
        if na.target in self.neighbors6:
            if tlla is not None and na.override:
                self.neighbors6[na.target] = tlla
            return []
        return self._drop(DropReason.UNSOLICITED)

    def _rx_echo_reply6(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, now: float
    ) -> list[bytes]:
        echo = icmpv6.parse_echo(msg)
        self.replies.append(EchoResult(6, echo.ident, echo.seq, now))
        self.counters["echo_replies_rx"] += 1
        return []

    def _rx_arp(self, pkt: ArpPacket, now: float) -> list[bytes]:
        if pkt.sender_ip == ipv4.ANY:  # RFC 5227 probe: nothing to learn
            return []
        self.neighbors4[pkt.sender_ip] = pkt.sender_mac
        entry = self._incomplete4.pop(pkt.sender_ip, None)
        if entry is None:
            return []
        head = pack_header(pkt.sender_mac, self.mac, ETHERTYPE_IPV4)
        return [head + p for p in entry.queue]

    def _rx_echo_reply4(
        self, eth_src: bytes, ip: Ipv4Header, msg: Icmpv4Message, now: float
    ) -> list[bytes]:
        echo = ipv4.parse_icmp_echo(msg)
        self.replies.append(EchoResult(4, echo.ident, echo.seq, now))
        self.counters["echo_replies_rx"] += 1
        return []

    def _drop(self, reason: DropReason) -> list[bytes]:
        self.counters["drop." + reason] += 1
        return []
