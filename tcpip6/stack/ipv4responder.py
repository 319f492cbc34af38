"""A sans-IO IPv4 responder for one Ethernet interface: ARP and ICMP Echo only.

Theory of operation: same contract as :class:`~tcpip6.stack.ipv6responder.Ipv6Responder` —
``handle_frame(frame, now)`` returns frames to send, never raises for bad input, and counts
every discard as ``drop.<REASON>``.

* L2 filter: our MAC or broadcast (no IPv4 multicast groups are joined).
* ARP (RFC 826): a request whose target protocol address is ours is answered with a unicast
  reply to the requester's hardware address (this includes RFC 5227 §2.1.1 probes from 0.0.0.0,
  which is how an address is defended). ARP naming someone else is not for us. An optional
  ``arp_listener`` sees every valid ARP naming our address first (RFC 826 "merge": the emulated
  peer learns neighbors from it); without one, replies to us are unsolicited.
* IPv4 (RFC 791): destination must be our address (broadcast echo is ignored, as Windows does by
  default; RFC 1122 §3.2.2.6 makes answering it optional). Sources that are 0.0.0.0, broadcast or
  multicast are invalid (RFC 1122 §3.2.1.3). Fragments are unsupported (no reassembly).
* ICMP (RFC 792): dispatch by type through ``icmp_handlers``; Echo is answered with Echo Reply
  carrying the same identifier, sequence number and data (RFC 1122 §3.2.2.6), to the frame's
  Ethernet source (no ARP cache needed for replies).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from tcpip6.counters import Counters
from tcpip6.errors import MalformedFrame
from tcpip6.stack.base import FrameHandler
from tcpip6.wire import arp, ipv4
from tcpip6.wire.arp import ArpPacket
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ethernet import (
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    HEADER_LEN,
    pack_header,
    unpack_header,
)
from tcpip6.wire.ipv4 import ICMP_ECHO_REQUEST, PROTO_ICMP, Icmpv4Message, Ipv4Header

DEFAULT_TTL = 128  # Windows Server 2003 DefaultTTL (Linux uses 64)

Icmp4Handler = Callable[[bytes, Ipv4Header, Icmpv4Message, float], list[bytes]]
"""``(ethernet_source_mac, ip_header, verified_message, now) -> frames to send``."""
ArpListener = Callable[[ArpPacket, float], list[bytes]]


class Ipv4Responder(FrameHandler):
    """Answers ARP requests for ``address`` and ICMP Echo sent to it."""

    def __init__(self, mac: bytes, address: bytes, *, ttl: int = DEFAULT_TTL) -> None:
        if len(mac) != 6 or mac[0] & 1:
            raise ValueError("mac must be a 6-byte unicast MAC")
        if len(address) != 4:
            raise ValueError("address must be 4 bytes")
        self.mac = bytes(mac)
        self.address = bytes(address)
        self.ttl = ttl
        self.counters: Counter[str] = Counters()
        self._handlers: dict[int, Icmp4Handler] | None = None  # made when first asked for
        self.arp_listener: ArpListener | None = None
        self._l2 = (self.mac, BROADCAST_MAC)  # a tuple: 2 entries, a quarter of a frozenset
        self._ident = 0

    @property
    def icmp_handlers(self) -> dict[int, Icmp4Handler]:
        """ICMP type -> handler; add to it to answer more types (the emulated peer takes Echo
        Replies). Made on first use: a host that only answers Echo never needs one, and one
        dict per interface was 3 % of a 10,000-adapter storm's memory."""
        if self._handlers is None:
            self._handlers = {ICMP_ECHO_REQUEST: self._rx_echo_request}
        return self._handlers

    def next_ident(self) -> int:
        """IPv4 Identification for the next datagram we originate (RFC 6864 §4)."""
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def _rx(self, frame: bytes | bytearray | memoryview, now: float) -> list[bytes]:
        if len(frame) < HEADER_LEN:
            raise MalformedFrame(DropReason.TRUNCATED, "ethernet")
        dst_mac, src_mac, ethertype = unpack_header(frame)
        if dst_mac not in self._l2:
            return self._drop(DropReason.NOT_FOR_US)
        if src_mac[0] & 1:
            return self._drop(DropReason.BAD_SOURCE)
        if ethertype == ETHERTYPE_IPV4:
            return self._rx_ipv4(src_mac, memoryview(frame)[HEADER_LEN:], now)
        if ethertype == ETHERTYPE_ARP:
            return self._rx_arp(ArpPacket.parse(memoryview(frame)[HEADER_LEN:]), now)
        return self._drop(DropReason.UNSUPPORTED)

    def _rx_arp(self, pkt: ArpPacket, now: float) -> list[bytes]:
        if pkt.target_ip != self.address:
            return self._drop(DropReason.NOT_FOR_US)
        if pkt.sender_mac[0] & 1:
            return self._drop(DropReason.BAD_SOURCE)
        out = self.arp_listener(pkt, now) if self.arp_listener is not None else []
        if pkt.op == arp.OP_REQUEST:
            self.counters["arp_replies"] += 1
            out.append(
                pack_header(pkt.sender_mac, self.mac, ETHERTYPE_ARP)
                + arp.reply(self.mac, self.address, pkt.sender_mac, pkt.sender_ip)
            )
        elif self.arp_listener is None:
            return self._drop(DropReason.UNSOLICITED)
        return out

    def _rx_ipv4(self, src_mac: bytes, data: memoryview, now: float) -> list[bytes]:
        ip, payload = Ipv4Header.parse(data)
        if ip.dst != self.address:
            return self._drop(DropReason.NOT_FOR_US)
        s0 = ip.src[0]
        if ip.src == ipv4.ANY or ip.src == ipv4.BROADCAST or (s0 & 0xF0) == 0xE0:
            return self._drop(DropReason.BAD_SOURCE)
        if ip.is_fragment:
            return self._drop(DropReason.UNSUPPORTED)
        if ip.protocol != PROTO_ICMP:
            return self._drop(DropReason.UNSUPPORTED)
        msg = ipv4.parse_icmp(payload)
        handlers = self._handlers
        if handlers is not None:
            handler = handlers.get(msg.type)
        else:
            handler = self._rx_echo_request if msg.type == ICMP_ECHO_REQUEST else None
        if handler is None:
            return self._drop(DropReason.UNSUPPORTED)
        return handler(src_mac, ip, msg, now)

    def _rx_echo_request(
        self, eth_src: bytes, ip: Ipv4Header, msg: Icmpv4Message, now: float
    ) -> list[bytes]:
        echo = ipv4.parse_icmp_echo(msg)
        reply = ipv4.icmp_echo_reply(echo.ident, echo.seq, echo.data)
        self.counters["echo_replies"] += 1
        return [
            pack_header(eth_src, self.mac, ETHERTYPE_IPV4)
            + ipv4.packet(self.address, ip.src, PROTO_ICMP, self.ttl, reply, self.next_ident())
        ]
