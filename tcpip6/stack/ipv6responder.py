"""A minimal sans-IO IPv6 responder for one Ethernet interface (NS -> NA, Echo).

The full per-interface host stack — DAD, SLAAC, NUD, MLDv2, fragments, ICMPv6 errors, UDP — is
:class:`tcpip6.stack.host.Ipv6Host`. This responder stays as it was for its callers (the
emulated peer composes it; the binder used it first): no timers, no start, addresses usable at
once.

Theory of operation: :meth:`Ipv6Responder.handle_frame` takes one received frame and the
virtual time and returns the frames to transmit; it never raises for bad input — every discarded
frame bumps ``counters["drop.<REASON>"]`` (see :class:`~tcpip6.wire.drops.DropReason`).

Receive path, in order:

1. L2 filter, as the NIC's packet filter would: our unicast MAC, broadcast, or a multicast MAC
   we listen on (33:33:00:00:00:01 and the solicited-node MAC of every address, RFC 2464 §7).
   A group MAC as Ethernet *source* is invalid (IEEE 802 I/G bit) and dropped.
2. IPv6 header (RFC 8200 §3), destination must be one of our unicast addresses, ff02::1 or one
   of our solicited-node groups (RFC 4291 §2.7.1); a multicast source is invalid (§2.7).
   Only ICMPv6 directly after the fixed header is handled; extension headers are unsupported.
3. ICMPv6 checksum (RFC 4443 §2.3); for ND types hop limit must be 255 and code 0 (RFC 4861
   §7.1.1/§7.1.2 — proof the sender is on-link). Then dispatch by type through
   ``icmp_handlers`` (subclasses/composers add types: the emulated peer adds NA and Echo Reply).

Handlers: Neighbor Solicitation for one of our addresses (RFC 4861 §7.2.3) is answered with a
solicited NA carrying our MAC, O=1; a DAD probe (source ``::``) must go to the solicited-node
group and carry no SLLA (§7.1.1) and is answered to ff02::1 with S=0 (§7.2.4). Echo Request to
one of our unicast addresses or ff02::1 is answered with the same identifier, sequence number and
data (RFC 4443 §4.2); for a multicast request the reply comes from our link-local address.

Neighbor cache: deliberately none yet. Replies go to the NS's SLLA when present, otherwise to
the received frame's Ethernet source — the minimal "learn from the frame" rule; NUD and a real
cache (RFC 4861 §7.3) come later. Addresses are raw 16-byte ``bytes``; ``addresses`` is a plain
list the owner may edit — derived lookup sets are rebuilt when it changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from tcpip6.counters import Counters
from tcpip6.errors import MalformedFrame
from tcpip6.stack.base import FrameHandler
from tcpip6.wire import icmpv6, ipv6
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ethernet import (
    BROADCAST_MAC,
    ETHERTYPE_IPV6,
    HEADER_LEN,
    ipv6_multicast_mac,
    pack_header,
    unpack_header,
)
from tcpip6.wire.icmpv6 import ECHO_REQUEST, ND_HOP_LIMIT, ND_TYPES, NS, Icmpv6Message
from tcpip6.wire.ipv6 import (
    ALL_NODES,
    NH_ICMPV6,
    SOLICITED_NODE_PREFIX,
    UNSPECIFIED,
    Ipv6Header,
    link_local_from_mac,
    packet,
    solicited_node,
)

DEFAULT_HOP_LIMIT = 128  # Windows Server 2003 / XP default for IPv6 (Linux uses 64)
ALL_NODES_MAC = ipv6_multicast_mac(ALL_NODES)

IcmpHandler = Callable[[bytes, Ipv6Header, Icmpv6Message, float], list[bytes]]
"""``(ethernet_source_mac, ip_header, verified_message, now) -> frames to send``."""


class Ipv6Responder(FrameHandler):
    """Answers NS and Echo Request for the addresses of one interface (see module docstring)."""

    def __init__(self, mac: bytes, mtu: int = 1500, *, hop_limit: int = DEFAULT_HOP_LIMIT) -> None:
        if len(mac) != 6 or mac[0] & 1:
            raise ValueError("mac must be a 6-byte unicast MAC")
        if mtu < 1280:
            raise ValueError("IPv6 needs a link MTU of at least 1280 (RFC 8200 §5)")
        self.mac = bytes(mac)
        self.mtu = mtu
        self.hop_limit = hop_limit
        self.link_local: bytes = link_local_from_mac(self.mac)
        self.addresses: list[bytes] = [self.link_local]
        self.counters: Counter[str] = Counters()
        self.icmp_handlers: dict[int, IcmpHandler] = {
            NS: self._rx_neighbor_solicitation,
            ECHO_REQUEST: self._rx_echo_request,
        }
        self._key: tuple[bytes, ...] = ()
        self._unicast: frozenset[bytes] = frozenset()
        self._groups: frozenset[bytes] = frozenset()
        self._l2: frozenset[bytes] = frozenset()
        self._mcast_macs: list[bytes] = []
        self._refresh()

    # --- configuration ---------------------------------------------------------------------

    def add_address(self, addr: bytes) -> None:
        """Assign a unicast address (no DAD yet); idempotent."""
        if len(addr) != 16 or addr[0] == 0xFF or addr == UNSPECIFIED:
            raise ValueError("not a unicast IPv6 address")
        if addr not in self.addresses:
            self.addresses.append(bytes(addr))

    def multicast_macs(self) -> list[bytes]:
        """The Ethernet multicast list to program into the NIC (OID_802_3_MULTICAST_LIST)."""
        self._refresh()
        return list(self._mcast_macs)

    def _refresh(self) -> None:
        key = tuple(self.addresses)
        if key == self._key and self._l2:
            return
        self._key = key
        self._unicast = frozenset(key)
        groups = [ALL_NODES]
        for a in key:
            sn = solicited_node(a)
            if sn not in groups:
                groups.append(sn)
        self._groups = frozenset(groups)
        self._mcast_macs = [ipv6_multicast_mac(g) for g in groups]  # groups are distinct MACs
        self._l2 = frozenset((self.mac, BROADCAST_MAC, *self._mcast_macs))

    # --- receive path ----------------------------------------------------------------------

    def _rx(self, frame: bytes | bytearray | memoryview, now: float) -> list[bytes]:
        if len(frame) < HEADER_LEN:
            raise MalformedFrame(DropReason.TRUNCATED, "ethernet")
        dst_mac, src_mac, ethertype = unpack_header(frame)
        if self._key != tuple(self.addresses):
            self._refresh()
        if dst_mac not in self._l2:
            return self._drop(DropReason.NOT_FOR_US)
        if ethertype != ETHERTYPE_IPV6:
            return self._drop(DropReason.UNSUPPORTED)
        if src_mac[0] & 1:
            return self._drop(DropReason.BAD_SOURCE)
        ip, payload = Ipv6Header.parse(memoryview(frame)[HEADER_LEN:])
        dst = ip.dst
        if dst not in self._unicast and dst not in self._groups:
            return self._drop(DropReason.NOT_FOR_US)
        if ip.src[0] == 0xFF:  # RFC 4291 §2.7: never a source
            return self._drop(DropReason.BAD_SOURCE)
        if ip.next_header != NH_ICMPV6:
            return self._drop(DropReason.UNSUPPORTED)
        msg = icmpv6.parse(ip.src, dst, payload)
        if msg.type in ND_TYPES:
            if ip.hop_limit != ND_HOP_LIMIT:  # RFC 4861 §7.1.1, §7.1.2
                return self._drop(DropReason.HOP_LIMIT)
            if msg.code != 0:
                return self._drop(DropReason.BAD_CODE)
        handler = self.icmp_handlers.get(msg.type)
        if handler is None:
            return self._drop(DropReason.UNSUPPORTED)
        return handler(src_mac, ip, msg, now)

    # --- handlers ----------------------------------------------------------------------------

    def _rx_neighbor_solicitation(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, now: float
    ) -> list[bytes]:
        ns = icmpv6.parse_neighbor_solicitation(msg)
        if ns.target not in self._unicast:  # RFC 4861 §7.2.3: not our address -> discard
            return self._drop(DropReason.NOT_FOR_US)
        slla = ns.options.source_lladdr
        if ip.src == UNSPECIFIED:
            # RFC 4861 §7.1.1: a DAD probe goes to the solicited-node group and has no SLLA.
            if ip.dst[:13] != SOLICITED_NODE_PREFIX:
                return self._drop(DropReason.BAD_DEST)
            if slla is not None:
                return self._drop(DropReason.BAD_OPTION)
            # RFC 4861 §7.2.4: defend to all-nodes, Solicited flag clear.
            dst, dst_mac, solicited = ALL_NODES, ALL_NODES_MAC, False
        else:
            dst, dst_mac, solicited = ip.src, (slla if slla is not None else eth_src), True
        self.counters["ns_rx"] += 1
        na = icmpv6.neighbor_advertisement(
            ns.target, dst, ns.target,
            router=False, solicited=solicited, override=True, tgt_lladdr=self.mac,
        )  # fmt: skip
        self.counters["na_sent"] += 1
        return [
            pack_header(dst_mac, self.mac, ETHERTYPE_IPV6)
            + packet(ns.target, dst, NH_ICMPV6, ND_HOP_LIMIT, na)
        ]

    def _rx_echo_request(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, now: float
    ) -> list[bytes]:
        echo = icmpv6.parse_echo(msg)
        if ip.src == UNSPECIFIED:  # nobody to answer
            return self._drop(DropReason.BAD_SOURCE)
        if ip.dst in self._unicast:
            src = ip.dst  # RFC 4443 §4.2: reply from the address the request was sent to
        elif ip.dst == ALL_NODES:
            src = self.link_local  # §4.2: a unicast address of the receiving interface
        else:
            return self._drop(DropReason.NOT_FOR_US)
        reply = icmpv6.echo_reply(src, ip.src, echo.ident, echo.seq, echo.data)
        if ipv6.HEADER_LEN + len(reply) > self.mtu:  # we never fragment
            return self._drop(DropReason.TOO_BIG)
        self.counters["echo_replies"] += 1
        return [
            pack_header(eth_src, self.mac, ETHERTYPE_IPV6)
            + packet(src, ip.src, NH_ICMPV6, self.hop_limit, reply)
        ]
