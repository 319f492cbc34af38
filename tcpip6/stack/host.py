"""A sans-IO IPv6 host for one Ethernet interface: the emulated TCPIP6 stack's per-interface core.

Theory of operation (aioquic/smoltcp style): the driver feeds received frames to
:meth:`Ipv6Host.handle_frame`, calls :meth:`Ipv6Host.handle_timer` when the time from
:meth:`Ipv6Host.next_deadline` has come, calls :meth:`Ipv6Host.start` when the interface comes up,
and transmits whatever frames these calls return. Time is the ``now`` argument; randomness is the
injected generator (``Rng``). Nothing here does I/O or raises for bad input: every discarded frame
counts ``drop.<REASON>`` (:class:`~tcpip6.wire.drops.DropReason`). Components, each in its own
module, share a :class:`~tcpip6.stack.context.StackContext`:

* :mod:`~tcpip6.stack.addrconf` — addresses, DAD, SLAAC, RFC 7217 IIDs, RFC 6724 source choice;
* :mod:`~tcpip6.stack.nud` — the neighbor cache and its table-driven NUD state machine;
* :mod:`~tcpip6.stack.router` — RS/RA, default routers, prefixes, Redirect, Path MTU;
* :mod:`~tcpip6.stack.mld` — MLDv2 listener; :mod:`~tcpip6.stack.frag` — (re)fragmentation;
* :mod:`~tcpip6.stack.udp` — sockets and the echo service; :mod:`~tcpip6.stack.icmp` — limits;
* :mod:`~tcpip6.stack.tcp` — TCP listeners and connections (:mod:`~tcpip6.stack.tcpconn`, the
  state machine; :mod:`~tcpip6.stack.tcpcc`, congestion control).

Receive path, in order:

1. L2 filter as the NIC would apply it: our MAC, broadcast, or a MAC of a joined group (the set
   :meth:`multicast_macs` publishes). A group MAC as source is invalid (IEEE 802 I/G bit); our own
   MAC as source is a loop (RFC 4862 §5.4.3's looped-back DAD probe included). A frame not for us
   costs one set lookup.
2. IPv6 header (RFC 8200 §3); the destination must be an assigned address or a joined group;
   a tentative destination is dropped (RFC 4862 §5.4); a multicast source is invalid (RFC 4291
   §2.7).
3. The extension header chain (RFC 8200 §4): Hop-by-Hop only first (§4.1, else Parameter Problem
   code 1); options by their type's top bits (§4.2: skip / discard / discard + Parameter Problem
   code 2 / same unless the destination was multicast); Routing with Segments Left 0 ignored and
   otherwise Parameter Problem code 0 at the Routing Type — no type is recognized, type 0
   included (RFC 5095 §3); Fragment: atomic fragments processed in isolation (RFC 6946), others
   reassembled (:mod:`~tcpip6.stack.frag`), a first fragment without the upper-layer header
   answered with Parameter Problem code 3 (RFC 7112 §5), a second Fragment header with code 0;
   No Next Header ends processing; an unknown next header gets Parameter Problem code 1 (§4).
   Bounded work, Linux's limits (``HostConfig``): at most 12 extension headers, 8 non-padding
   options per options header, 7 padding bytes in a row, PadN zero-filled; a Jumbo Payload
   option is checked as RFC 2675 §3 says (no link here carries jumbograms). ND messages that
   used fragmentation are ignored (RFC 6980 §5); MLD queries need hop limit 1 and Router Alert
   (RFC 3810 §5). Every rule was held against Linux by ``tcpip6-lab bench conformance``.
4. ICMPv6 (RFC 4443) with checksum; ND messages need hop limit 255 and code 0 (RFC 4861 §6.1,
   §7.1, §8.1); RA, Redirect and MLD Queries need a link-local source (§6.1.2, §8.1, RFC 3810
   §5.1.14). UDP (RFC 768 / RFC 8200 §8.1). TCP (RFC 9293) with its pseudo-header checksum;
   a TCP segment to a multicast address is dropped (RFC 9293 §3.9.1 MUST-57). TCP directly
   behind the IPv6 header skips the extension-header walk (the bulk-transfer fast path).
   A Packet Too Big quoting one of our TCP segments lowers that connection's MSS (RFC 8201).

Transmit path (:meth:`_output`): hop limit CurHopLimit (64 unless an RA says otherwise) on
originated packets, 255 for ND, 1 for MLD; multicast maps to 33:33 MACs (RFC 2464 §7); unicast
goes through next-hop determination (RFC 4861 §5.2) and the neighbor cache; packets larger than
the path MTU are fragmented (RFC 8200 §4.5).

ICMPv6 errors (RFC 4443 §2.4): never for an error or a Redirect, for a multicast destination or
link-layer multicast/broadcast (except Parameter Problem code 2 — this host forwards nothing, so
it never sends Packet Too Big), nor to an unspecified or multicast source; a token bucket limits
them. The source is the address the invoking packet was sent to when that is ours (§2.2), else
the RFC 6724 choice.

Stable counter names: ``rx``, ``tx``, ``drop.<REASON>``, ``ns_rx``, ``na_sent``, ``na_rx``,
``echo_replies``, ``nd.*``, ``nud.*``, ``dad.*``, ``slaac.*``, ``mld.*``, ``frag.*``,
``icmp.*``, ``udp.*``, ``tcp.*``, ``event.<kind>``.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Final

from ndisemu.offload import ChecksumValidated
from tcpip6.errors import MalformedFrame
from tcpip6.stack.addrconf import (
    AddressConfig,
    AddressEntry,
    AddressInfo,
    AddrOrigin,
    AddrState,
)
from tcpip6.stack.base import FrameHandler
from tcpip6.stack.context import HostConfig, HostEvent, Rng, StackContext
from tcpip6.stack.frag import Reassembler, fragment
from tcpip6.stack.icmp import TokenBucket, invokes_error
from tcpip6.stack.mld import MldHost
from tcpip6.stack.nud import NeighborCache, NudState
from tcpip6.stack.router import RouterDiscovery
from tcpip6.stack.tcp import TcpConnection, TcpListener, TcpStack
from tcpip6.stack.udp import UdpSocket, UdpStack
from tcpip6.wire import icmpv6, mld, tcp, udp
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ethernet import (
    BROADCAST_MAC,
    ETHERTYPE_IPV6,
    HEADER_LEN,
    ipv6_multicast_mac,
    pack_header,
    unpack_header,
)
from tcpip6.wire.icmpv6 import (
    DEST_UNREACH,
    DU_PORT_UNREACHABLE,
    ECHO_REPLY,
    ECHO_REQUEST,
    MLD_DONE,
    MLD_QUERY,
    MLD_REPORT,
    MLDV2_REPORT,
    NA,
    ND_HOP_LIMIT,
    ND_TYPES,
    NS,
    PACKET_TOO_BIG,
    PARAM_PROBLEM,
    PP_HEADER_FIELD,
    PP_INCOMPLETE_CHAIN,
    PP_NEXT_HEADER,
    PP_OPTION,
    RA,
    REDIRECT,
    RS,
    TE_REASSEMBLY,
    TIME_EXCEEDED,
    Icmpv6Message,
)
from tcpip6.wire.ipv6 import (
    ALL_NODES,
    NH_DSTOPTS,
    NH_FRAGMENT,
    NH_HOPOPTS,
    NH_ICMPV6,
    NH_NONE,
    NH_ROUTING,
    NH_TCP,
    NH_UDP,
    SOLICITED_NODE_PREFIX,
    UNSPECIFIED,
    Ipv6Header,
    is_link_local,
    packet,
    solicited_node,
    view,
)
from tcpip6.wire.ipv6 import HEADER_LEN as IP6_HEADER_LEN
from tcpip6.wire.ipv6ext import (
    FRAGMENT_HEADER_LEN,
    OPT_JUMBO,
    OPT_ROUTER_ALERT,
    FragmentHeader,
    OptionAction,
    RoutingHeader,
    chain_incomplete,
    ext_len,
    find_option,
    scan_options,
)

ALL_NODES_MAC: Final = ipv6_multicast_mac(ALL_NODES)
_U32: Final = struct.Struct("!I")
_PORTS_SEQ: Final = struct.Struct("!HHI")  # the quoted TCP header's ports and sequence number
_KNOWN_HBH: Final = frozenset({OPT_ROUTER_ALERT, OPT_JUMBO})  # RFC 2711, RFC 2675; Pad1/PadN always
# per TCP segment (`_tcp_confirm`): a Final name, not an enum read through its class, which
# on CPython 3.11 is a call of EnumType.__getattr__ (bench/README.md, "fifth round")
_REACHABLE: Final = NudState.REACHABLE
_KNOWN_DST: frozenset[int] = frozenset()

IcmpHandler = Callable[
    ["Ipv6Host", bytes, Ipv6Header, Icmpv6Message, memoryview, bool, float], list[bytes]]
"""``(host, eth_src, ip_header, verified_message, whole_packet, dst_was_multicast, now) ->
frames``"""
TimerHandler = Callable[["Ipv6Host", tuple[Hashable, ...], float], list[bytes]]
ECHO_REPLIES_KEPT: Final = 1024


@dataclass(frozen=True, slots=True)
class EchoReplyRecord:
    """An Echo Reply received for :meth:`Ipv6Host.ping`."""

    src: bytes
    ident: int
    seq: int
    data: bytes
    now: float


class Ipv6Host(FrameHandler):
    """The IPv6 host stack of one Ethernet interface (see module docstring)."""

    # the parts `close` lets go of (mypyc: a compiled class deletes only attributes named here)
    __deletable__ = ("mld", "addrconf", "nud", "router", "reassembler", "udp", "tcp")

    def __init__(
        self,
        mac: bytes,
        mtu: int = 1500,
        *,
        rng: Rng | None = None,
        config: HostConfig | None = None,
    ) -> None:
        if len(mac) != 6 or mac[0] & 1:
            raise ValueError("mac must be a 6-byte unicast MAC")
        if mtu < 1280:
            raise ValueError("IPv6 needs a link MTU of at least 1280 (RFC 8200 §5)")
        self.mac = bytes(mac)
        self.config = config if config is not None else HostConfig()
        self.rng: Rng = (rng if rng is not None
                         else random.Random(int.from_bytes(self.mac, "big")))
        ctx = self._ctx = StackContext(self.mac, mtu, self.rng, self.config)
        self.counters = ctx.counters
        self.params = ctx.params
        self.mld = MldHost(ctx, self._mld_source)
        self.addrconf = AddressConfig(ctx, self.mld, self._disable, self._on_assigned)
        self.nud = NeighborCache(ctx, self._solicit, self._router_lost)
        self.router = RouterDiscovery(ctx, self.nud, self.addrconf)
        self.reassembler = Reassembler(ctx)
        self.udp = UdpStack(ctx, self._output, self.addrconf.select_source)
        self.tcp = TcpStack(
            ctx, self._output, self.addrconf.select_source, self._path_mtu, self._tcp_confirm,
            large_output=self._output_large if self.config.lso_max_size else None,
        )
        self._bucket = TokenBucket(self.config.icmp_error_rate, self.config.icmp_error_burst)
        self.started = False
        self.disabled = False
        self._closed = False
        #: the latest Echo Replies to our own pings (at most ECHO_REPLIES_KEPT, oldest first)
        self.echo_replies: list[EchoReplyRecord] = []
        self._l2: frozenset[bytes] = frozenset()
        self._l2_gen = -1
        self.addrconf.add(self.addrconf.link_local_candidate(), 64, AddrOrigin.LINK_LOCAL, 0.0)
        self._refresh_l2()

    def close(self) -> None:
        """The interface is gone for good (tcpip6 unbinds it). The host's parts call back into
        it through bound methods — reference cycles — so it lets go of them, and reference
        counting frees it at once: bind storms run with the cyclic GC off (run_storm). A
        closed host answers nothing, and its state is gone with it."""
        if self._closed:
            return
        self._closed = True
        self.disabled = True
        del self.mld, self.addrconf, self.nud, self.router, self.reassembler, self.udp, self.tcp

    # --- public state ------------------------------------------------------------------------

    @property
    def addresses(self) -> list[AddressInfo]:
        """Every address with its state (tentative/preferred/deprecated/duplicate)."""
        return self.addrconf.snapshot()

    def address_state(self, addr: bytes) -> AddrState | None:
        return self.addrconf.state(addr)

    @property
    def link_local(self) -> bytes:
        """The interface's link-local address (the newest one not found duplicate)."""
        best = None
        for e in self.addrconf.entries.values():
            if e.origin is AddrOrigin.LINK_LOCAL and (
                best is None or e.state is not AddrState.DUPLICATE
            ):
                best = e.address
        assert best is not None
        return best

    @property
    def mtu(self) -> int:
        return self.params.link_mtu

    def multicast_macs(self) -> list[bytes]:
        """The Ethernet multicast list to program (OID_802_3_MULTICAST_LIST); it changes when
        :attr:`multicast_generation` does."""
        return self.mld.macs()

    @property
    def multicast_generation(self) -> int:
        return self.mld.generation

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called (None: no timer pending)."""
        return self._ctx.timers.next_deadline()

    def pop_events(self) -> list[HostEvent]:
        """Log-worthy events since the last call (duplicate addresses, routers, ...)."""
        ev = list(self._ctx.events)
        self._ctx.events.clear()
        return ev

    # --- configuration -----------------------------------------------------------------------

    def start(self, now: float) -> list[bytes]:
        """Interface up: MLD reports, DAD of every address, Router Solicitations (RFC 4862
        §5.4.2, RFC 4861 §6.3.7), after random delays unless ``config.startup_delay`` is off."""
        if self.started or self.disabled:
            return []
        self.started = True
        cfg = self.config
        rng = self.rng
        d = rng.uniform(0.0, cfg.max_rtr_solicitation_delay) if cfg.startup_delay else 0.0
        out = self.mld.start(now, d)  # join before the first DAD probe (§5.4.2)
        out += self.addrconf.start(now, d)
        d_rs = rng.uniform(0.0, cfg.max_rtr_solicitation_delay) if cfg.startup_delay else 0.0
        out += self.router.start(now, d_rs)
        return self._tx(out)

    def add_address(self, addr: bytes, prefix_len: int = 64, *, now: float = 0.0) -> list[bytes]:
        """A manually configured address (DAD runs once started) and its on-link prefix."""
        if len(addr) != 16 or addr[0] == 0xFF or addr == UNSPECIFIED:
            raise ValueError("not a unicast IPv6 address")
        if not 0 < prefix_len <= 128:
            raise ValueError(f"prefix length {prefix_len} out of range")
        if not is_link_local(addr):
            self.router.add_on_link(addr, prefix_len)
        return self._tx(self.addrconf.add(bytes(addr), prefix_len, AddrOrigin.MANUAL, now))

    def remove_address(self, addr: bytes, now: float) -> list[bytes]:
        return self._tx(self.addrconf.remove(addr, now))

    def join_group(self, group: bytes, now: float) -> list[bytes]:
        """Listen to a multicast group (MLD report once started)."""
        if len(group) != 16 or group[0] != 0xFF:
            raise ValueError("not a multicast address")
        return self._tx(self.mld.join(bytes(group), now))

    def leave_group(self, group: bytes, now: float) -> list[bytes]:
        return self._tx(self.mld.leave(bytes(group), now))

    def udp_socket(self, port: int = 0) -> UdpSocket:
        """Bind a UDP port (0: ephemeral); see :class:`~tcpip6.stack.udp.UdpSocket`."""
        return self.udp.bind(port)

    def tcp_listen(self, port: int, backlog: int = 16) -> TcpListener:
        """Listen on ``port`` (every address of the interface); ``backlog`` bounds the accept
        queue, ``config.tcp.syn_backlog`` the embryonic connections."""
        return self.tcp.listen(port, backlog)

    def tcp_connect(
        self,
        address: tuple[bytes, int],
        now: float,
        *,
        local_port: int = 0,
        src: bytes | None = None,
    ) -> tuple[TcpConnection, list[bytes]]:
        """Active open to ``(ipv6_address, port)``: the connection (SYN-SENT) and the SYN's
        frames. ``local_port`` 0 picks an ephemeral port; ``src`` defaults to RFC 6724's choice.
        A 4-tuple still in use (TIME-WAIT included) raises SocketError."""
        return self.tcp.connect(address, now, local_port=local_port, src=src)

    def pop_tcp_ready(self) -> list[TcpConnection | TcpListener]:
        """TCP connections and listeners that queued events since the last call (wake their
        tasks; they read the events with ``pop_events()``)."""
        return self.tcp.pop_ready()

    def ping(self, dst: bytes, now: float, ident: int, seq: int, data: bytes = b"") -> list[bytes]:
        """Send an Echo Request; replies land in :attr:`echo_replies`."""
        src = self.addrconf.select_source(dst)
        if src is None:
            return self._ctx.drop(DropReason.NO_SOURCE)
        msg = icmpv6.echo_request(src, dst, ident, seq, data)
        self.counters["echo_requests"] += 1
        return self._tx(self._output(src, dst, NH_ICMPV6, msg, now))

    # --- driver entry points -------------------------------------------------------------------

    def handle_timer(self, now: float) -> list[bytes]:
        """Run every timer due at ``now``; return the frames to transmit."""
        if self.disabled:
            return []
        out: list[bytes] = []
        timers = self._ctx.timers
        handlers = _TIMER_HANDLERS
        while (key := timers.pop_due(now)) is not None:
            assert isinstance(key, tuple)
            out += handlers[key[0]](self, key, now)
            if self.disabled:
                break
        return self._tx(out)

    def _tx(self, out: list[bytes]) -> list[bytes]:
        if out:
            self.counters["tx"] += len(out)
        return out

    # --- receive path ------------------------------------------------------------------------

    def handle_batch(self, frames: Iterable[bytes | bytearray | memoryview],
                     now: float) -> list[bytes]:
        """As `FrameHandler.handle_batch`, and TCP acknowledges the batch's in-order data once,
        at its end (`TcpStack.begin_batch`); those ACKs go after the batch's other frames."""
        tcp = self.tcp
        tcp.begin_batch()
        out: list[bytes] = []
        try:
            for frame in frames:
                out += self.handle_frame(frame, now)
        finally:
            acks = tcp.end_batch(now)
        if acks:
            self.counters["tx"] += len(acks)
            out += acks
        return out

    def _refresh_l2(self) -> None:
        self._l2 = frozenset((self.mac, BROADCAST_MAC, *self.mld.macs()))
        self._l2_gen = self.mld.generation

    def _rx(self, frame: bytes | bytearray | memoryview, now: float) -> list[bytes]:
        if len(frame) < HEADER_LEN:
            raise MalformedFrame(DropReason.TRUNCATED, "ethernet")
        dst_mac: bytes  # declared: compiled, their reads below are native, not generic
        src_mac: bytes
        dst_mac, src_mac, ethertype = unpack_header(frame)
        if self._l2_gen != self.mld.generation:
            self._refresh_l2()
        if dst_mac not in self._l2:
            return self._ctx.drop(DropReason.NOT_FOR_US)
        if ethertype != ETHERTYPE_IPV6:
            return self._ctx.drop(DropReason.UNSUPPORTED)
        if src_mac[0] & 1:
            return self._ctx.drop(DropReason.BAD_SOURCE)
        if src_mac == self.mac:
            return self._ctx.drop(DropReason.LOOPED)
        if self.disabled:
            return self._ctx.drop(DropReason.DISABLED)
        mv = view(frame)[HEADER_LEN:]
        ip, _ = Ipv6Header.parse(mv)
        if ip.payload_length or ip.next_header != NH_HOPOPTS:
            pkt = mv[: IP6_HEADER_LEN + ip.payload_length]
        else:  # RFC 2675 §3: Payload Length 0 before a Hop-by-Hop header — a jumbogram?
            pkt = mv
        dst = ip.dst
        addrs = self.addrconf
        if dst in addrs.assigned:
            l3mc = False
        elif dst[0] == 0xFF:
            if not self.mld.joined(dst):
                return self._ctx.drop(DropReason.NOT_FOR_US)
            l3mc = True
        elif dst in addrs.tentative:
            return self._ctx.drop(DropReason.TENTATIVE)  # RFC 4862 §5.4
        else:
            return self._ctx.drop(DropReason.NOT_FOR_US)
        if ip.src[0] == 0xFF:  # RFC 4291 §2.7: never a source
            return self._ctx.drop(DropReason.BAD_SOURCE)
        nh = ip.next_header
        if nh == NH_TCP:  # the bulk path, without the chain walk
            # a NIC that finished or vouched for the TCP checksum (task offload) says so by the
            # frame's type (ndisemu/offload.py): not summed again
            return self._rx_tcp(ip, pkt, IP6_HEADER_LEN, l3mc, now,
                                type(frame) is not ChecksumValidated)
        l2mc = bool(dst_mac[0] & 1)
        if nh == NH_ICMPV6:  # the common case, without the chain walk
            return self._rx_icmp(src_mac, ip, pkt, IP6_HEADER_LEN, l3mc, now)
        return self._chain(src_mac, ip, pkt, nh, l3mc, l2mc, now)

    def _chain(
        self,
        eth_src: bytes,
        ip: Ipv6Header,
        pkt: memoryview,
        nh: int,
        l3mc: bool,
        l2mc: bool,
        now: float,
    ) -> list[bytes]:
        """Walk the extension headers (RFC 8200 §4) and hand the upper layer its bytes.

        The work is bounded whatever the frame carries (Linux's limits, ``HostConfig``): at
        most ``max_ext_headers`` headers, ``max_*_options`` options and ``max_padding`` padding
        bytes in a row per options header; one Fragment header per packet."""
        off = IP6_HEADER_LEN
        nh_field = 6  # offset of the Next Header octet that named ``nh``
        end = len(pkt)
        counters = self.counters
        cfg = self.config
        headers = 0
        fragmented = False  # a Fragment header was processed (atomic or reassembled)
        while True:
            if nh == NH_ICMPV6:
                if fragmented and off < end and pkt[off] in ND_TYPES:  # RFC 6980 §5
                    return self._ctx.drop(DropReason.FRAGMENTED_ND)
                return self._rx_icmp(eth_src, ip, pkt, off, l3mc, now)
            if nh == NH_UDP:
                return self._rx_udp(ip, pkt, off, l3mc, l2mc, now)
            if nh == NH_TCP:
                return self._rx_tcp(ip, pkt, off, l3mc, now)
            if nh in (NH_HOPOPTS, NH_DSTOPTS, NH_ROUTING, NH_FRAGMENT):
                headers += 1
                if headers > cfg.max_ext_headers:  # Linux: a 13th header drops the packet
                    return self._ctx.drop(DropReason.TOO_MANY_HEADERS)
            if nh in (NH_HOPOPTS, NH_DSTOPTS):
                hbh = nh == NH_HOPOPTS
                if hbh and off != IP6_HEADER_LEN:  # RFC 8200 §4.1
                    counters["drop." + DropReason.BAD_HEADER.value] += 1
                    return self._icmp_error(
                        PARAM_PROBLEM, PP_NEXT_HEADER, nh_field, ip, pkt, l3mc, l2mc, now
                    )
                hl = ext_len(pkt, off, end)
                if hl > (cfg.max_hbh_length if hbh else cfg.max_dst_length):
                    return self._ctx.drop(DropReason.HEADER_TOO_LONG)
                bad = scan_options(
                    pkt, off + 2, off + hl, _KNOWN_HBH if hbh else _KNOWN_DST,
                    cfg.max_hbh_options if hbh else cfg.max_dst_options, cfg.max_padding, hbh,
                )  # fmt: skip
                if bad is not None:
                    ptr, action = bad
                    if action is OptionAction.JUMBO:
                        return self._jumbo(ip, pkt, ptr, l3mc, l2mc, now)
                    counters["drop." + DropReason.UNRECOGNIZED.value] += 1
                    if action is OptionAction.DISCARD or (
                        action is OptionAction.DISCARD_ICMP_UNICAST and l3mc
                    ):
                        return []
                    exception = action is OptionAction.DISCARD_ICMP  # §4.2 "10"
                    return self._icmp_error(
                        PARAM_PROBLEM, PP_OPTION, ptr, ip, pkt, l3mc, l2mc, now,
                        exception=exception,
                    )  # fmt: skip
                if hbh and not ip.payload_length:
                    # RFC 2675 §3: Payload Length 0 and no Jumbo Payload option: Parameter
                    # Problem code 0 at the Payload Length field (Linux processes the packet)
                    counters["drop." + DropReason.BAD_JUMBO.value] += 1
                    return self._icmp_error(
                        PARAM_PROBLEM, PP_HEADER_FIELD, 4, ip, pkt, l3mc, l2mc, now
                    )
                nh_field = off
                nh = pkt[off]
                off += hl
            elif nh == NH_ROUTING:
                rh = RoutingHeader.parse(pkt, off, end)
                if rh.segments_left:  # RFC 8200 §4.4, RFC 5095 §3: unrecognized type
                    counters["drop." + DropReason.UNRECOGNIZED.value] += 1
                    return self._icmp_error(
                        PARAM_PROBLEM, PP_HEADER_FIELD, off + 2, ip, pkt, l3mc, l2mc, now
                    )
                counters["ip6.routing_ignored"] += 1
                nh_field = off
                nh = rh.next_header
                off += rh.length
            elif nh == NH_FRAGMENT:
                fh = FragmentHeader.parse(pkt, off, end)
                if fragmented:  # a second Fragment header (RFC 8200 §4.1: at most once);
                    # Linux: Parameter Problem code 0 pointing at it
                    counters["drop." + DropReason.BAD_HEADER.value] += 1
                    return self._icmp_error(
                        PARAM_PROBLEM, PP_HEADER_FIELD, off, ip, pkt, l3mc, l2mc, now
                    )
                fragmented = True
                if fh.atomic:  # RFC 6946 §4: processed in isolation
                    counters["frag.atomic"] += 1
                    nh_field = off
                    nh = fh.next_header
                    off += FRAGMENT_HEADER_LEN
                    continue
                if not fh.offset and chain_incomplete(pkt, off + FRAGMENT_HEADER_LEN,
                                                      fh.next_header, end):  # fmt: skip
                    # RFC 8200 §4.5, RFC 7112 §5: the first fragment lacks the upper-layer
                    # header: discarded, Parameter Problem code 3, pointer 0
                    counters["drop." + DropReason.INCOMPLETE_CHAIN.value] += 1
                    return self._icmp_error(
                        PARAM_PROBLEM, PP_INCOMPLETE_CHAIN, 0, ip, pkt, l3mc, l2mc, now
                    )
                flen = end - off - FRAGMENT_HEADER_LEN
                if fh.more and flen & 7:  # RFC 8200 §4.5: point at Payload Length
                    counters["drop." + DropReason.FRAG_INVALID.value] += 1
                    return self._icmp_error(
                        PARAM_PROBLEM, PP_HEADER_FIELD, 4, ip, pkt, l3mc, l2mc, now
                    )
                if off - IP6_HEADER_LEN + fh.offset + flen > 0xFFFF:  # point at Fragment Offset
                    counters["drop." + DropReason.FRAG_INVALID.value] += 1
                    return self._icmp_error(
                        PARAM_PROBLEM, PP_HEADER_FIELD, off + 2, ip, pkt, l3mc, l2mc, now
                    )
                r = self.reassembler.add(pkt, off, nh_field, fh, l2mc, now)
                if r is None:
                    return []
                pkt = memoryview(r.packet)
                ip = Ipv6Header.parse(pkt)[0]
                end = len(pkt)
                off, nh, nh_field = r.offset, r.next_header, r.nh_field
            elif nh == NH_NONE:
                counters["ip6.no_next_header"] += 1
                return []
            else:  # RFC 8200 §4: unrecognized Next Header -> Parameter Problem code 1
                counters["drop." + DropReason.UNRECOGNIZED.value] += 1
                return self._icmp_error(
                    PARAM_PROBLEM, PP_NEXT_HEADER, nh_field, ip, pkt, l3mc, l2mc, now
                )

    def _jumbo(
        self, ip: Ipv6Header, pkt: memoryview, optoff: int, l3mc: bool, l2mc: bool, now: float
    ) -> list[bytes]:
        """A Jumbo Payload option at ``optoff`` (RFC 2675 §3), checked in Linux's order:
        length 4 at 4n+2 (else silently dropped), a value over 65,535 (else Parameter Problem
        code 0 at the value), Payload Length 0 (else code 0 at the option). No link of ours
        carries 64 KB frames, so a jumbogram passing these is always truncated."""
        counters = self.counters
        if pkt[optoff + 1] != 4 or optoff & 3 != 2:
            return self._ctx.drop(DropReason.BAD_JUMBO)
        value = _U32.unpack_from(pkt, optoff + 2)[0]
        if value <= 0xFFFF:
            counters["drop." + DropReason.BAD_JUMBO.value] += 1
            return self._icmp_error(
                PARAM_PROBLEM, PP_HEADER_FIELD, optoff + 2, ip, pkt, l3mc, l2mc, now
            )
        if ip.payload_length:
            counters["drop." + DropReason.BAD_JUMBO.value] += 1
            return self._icmp_error(
                PARAM_PROBLEM, PP_HEADER_FIELD, optoff, ip, pkt, l3mc, l2mc, now
            )
        return self._ctx.drop(DropReason.TRUNCATED)

    def _rx_icmp(
        self,
        eth_src: bytes,
        ip: Ipv6Header,
        pkt: memoryview,
        off: int,
        l3mc: bool,
        now: float,
    ) -> list[bytes]:
        msg = icmpv6.parse(ip.src, ip.dst, pkt[off:])
        t = msg.type
        if t == ECHO_REQUEST:  # the common case, called natively (the table's call is generic)
            return self._rx_echo_request(eth_src, ip, msg, pkt, l3mc, now)
        if t in ND_TYPES:
            if ip.hop_limit != ND_HOP_LIMIT:  # RFC 4861 §6.1, §7.1, §8.1
                return self._ctx.drop(DropReason.HOP_LIMIT)
            if msg.code != 0:
                return self._ctx.drop(DropReason.BAD_CODE)
        handler = _ICMP_HANDLERS.get(t)
        if handler is None:  # RFC 4443 §2.4 (a)/(b): unknown errors/informational dropped
            self.counters["icmp.unknown_type"] += 1
            return self._ctx.drop(DropReason.UNSUPPORTED)
        return handler(self, eth_src, ip, msg, pkt, l3mc, now)

    def _rx_udp(
        self, ip: Ipv6Header, pkt: memoryview, off: int, l3mc: bool, l2mc: bool, now: float
    ) -> list[bytes]:
        d = udp.parse(ip.src, ip.dst, pkt[off:])
        if ip.src == UNSPECIFIED:
            return self._ctx.drop(DropReason.BAD_SOURCE)
        out = self.udp.deliver(ip.src, ip.dst, d, l3mc, now)
        if out is not None:
            return out
        self._ctx.drop(DropReason.PORT_UNREACHABLE)
        return self._icmp_error(DEST_UNREACH, DU_PORT_UNREACHABLE, 0, ip, pkt, l3mc, l2mc, now)

    def _rx_tcp(
        self, ip: Ipv6Header, pkt: memoryview, off: int, l3mc: bool, now: float,
        verify: bool = True,
    ) -> list[bytes]:
        if l3mc:  # RFC 9293 §3.9.1 MUST-57 (and no connection has a multicast end)
            return self._ctx.drop(DropReason.BAD_DEST)
        src = ip.src
        if src == UNSPECIFIED:
            return self._ctx.drop(DropReason.BAD_SOURCE)
        seg = tcp.parse(src, ip.dst, pkt[off:], verify=verify)
        return self.tcp.rx(src, ip.dst, seg, now)

    # --- ICMPv6 handlers ------------------------------------------------------------------------

    def _rx_echo_request(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, pkt: memoryview,
        l3mc: bool, now: float,
    ) -> list[bytes]:  # fmt: skip
        if not l3mc:  # the common case: the reply mirrors the request (RFC 1624 update)
            reply = icmpv6.echo_reply_mirroring(msg)
            if ip.src == UNSPECIFIED:  # nobody to answer
                return self._ctx.drop(DropReason.BAD_SOURCE)
            self.counters["echo_replies"] += 1
            # RFC 4443 §4.2: from the address the request went to
            return self._output(ip.dst, ip.src, NH_ICMPV6, reply, now)
        echo = icmpv6.parse_echo(msg)
        if ip.src == UNSPECIFIED:  # nobody to answer
            return self._ctx.drop(DropReason.BAD_SOURCE)
        # RFC 4443 §4.2: for a multicast request, a unicast address of this interface
        src = self.addrconf.select_source(ip.src)
        if src is None:
            return self._ctx.drop(DropReason.NO_SOURCE)
        reply = icmpv6.echo_reply(src, ip.src, echo.ident, echo.seq, echo.data)
        self.counters["echo_replies"] += 1
        return self._output(src, ip.src, NH_ICMPV6, reply, now)

    def _rx_echo_reply(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, pkt: memoryview,
        l3mc: bool, now: float,
    ) -> list[bytes]:  # fmt: skip
        echo = icmpv6.parse_echo(msg)
        self.counters["echo_replies_rx"] += 1
        replies = self.echo_replies
        replies.append(EchoReplyRecord(ip.src, echo.ident, echo.seq, echo.data, now))
        if len(replies) > ECHO_REPLIES_KEPT:
            del replies[0]
        return []

    def _rx_neighbor_solicitation(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, pkt: memoryview,
        l3mc: bool, now: float,
    ) -> list[bytes]:  # fmt: skip
        ns = icmpv6.parse_neighbor_solicitation(msg)
        slla = ns.options.source_lladdr
        dad = ip.src == UNSPECIFIED
        if dad:  # RFC 4861 §7.1.1: to the solicited-node group, no SLLA
            if ip.dst[:13] != SOLICITED_NODE_PREFIX:
                return self._ctx.drop(DropReason.BAD_DEST)
            if slla is not None:
                return self._ctx.drop(DropReason.BAD_OPTION)
        target = ns.target
        addrs = self.addrconf
        if target in addrs.tentative:
            if dad:  # RFC 4862 §5.4.3: someone else is probing for our tentative address
                return addrs.duplicate_detected(target, now, "ns")
            return self._ctx.drop(DropReason.TENTATIVE)  # §5.4.3: not answered
        if target not in addrs.assigned:  # RFC 4861 §7.2.3: not ours -> discard
            return self._ctx.drop(DropReason.NOT_FOR_US)
        self.counters["ns_rx"] += 1
        if dad:  # RFC 4861 §7.2.4: defend to all-nodes, Solicited flag clear
            dst, dst_mac, solicited = ALL_NODES, ALL_NODES_MAC, False
            out: list[bytes] = []
        else:
            out = self.nud.on_lladdr(ip.src, slla, now) if slla is not None else []
            entry = self.nud.get(ip.src)
            if slla is not None:
                dst_mac = slla
            elif entry is not None and entry.lladdr is not None:
                dst_mac = entry.lladdr
            else:
                dst_mac = eth_src  # a unicast NUD probe without SLLA: answer where it came from
            dst, solicited = ip.src, True
        na = icmpv6.neighbor_advertisement(
            target, dst, target,
            router=False, solicited=solicited, override=True, tgt_lladdr=self.mac,
        )  # fmt: skip
        self.counters["na_sent"] += 1
        out.append(
            pack_header(dst_mac, self.mac, ETHERTYPE_IPV6)
            + packet(target, dst, NH_ICMPV6, ND_HOP_LIMIT, na)
        )
        return out

    def _rx_neighbor_advertisement(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, pkt: memoryview,
        l3mc: bool, now: float,
    ) -> list[bytes]:  # fmt: skip
        na = icmpv6.parse_neighbor_advertisement(msg)
        if na.solicited and l3mc:  # RFC 4861 §7.1.2
            return self._ctx.drop(DropReason.BAD_FLAGS)
        self.counters["na_rx"] += 1
        target = na.target
        addrs = self.addrconf
        if target in addrs.tentative:  # RFC 4862 §5.4.4
            return addrs.duplicate_detected(target, now, "na")
        if target in addrs.assigned:  # §5.4.4: a duplicate DAD did not catch — log it
            self._ctx.event(now, "dad.conflict", target, "na for an assigned address")
            return []
        return self.nud.on_advertisement(
            target, solicited=na.solicited, override=na.override, router=na.router,
            tlla=na.options.target_lladdr, now=now,
        )  # fmt: skip

    def _rx_for_routers(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, pkt: memoryview,
        l3mc: bool, now: float,
    ) -> list[bytes]:  # fmt: skip
        return self._ctx.drop(DropReason.FOR_ROUTERS)  # RFC 4861 §6.2.6; RFC 3810 §6

    def _rx_router_advertisement(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, pkt: memoryview,
        l3mc: bool, now: float,
    ) -> list[bytes]:  # fmt: skip
        if not is_link_local(ip.src):  # RFC 4861 §6.1.2
            return self._ctx.drop(DropReason.BAD_SOURCE)
        ra = icmpv6.parse_router_advertisement(msg)
        return self.router.on_advertisement(ip.src, ra, now)

    def _rx_redirect(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, pkt: memoryview,
        l3mc: bool, now: float,
    ) -> list[bytes]:  # fmt: skip
        if not is_link_local(ip.src):  # RFC 4861 §8.1
            return self._ctx.drop(DropReason.BAD_SOURCE)
        rd = icmpv6.parse_redirect(msg)
        out = self.router.on_redirect(ip.src, rd, now)
        if out is None:
            return self._ctx.drop(DropReason.BAD_SOURCE)
        return out

    def _rx_mld_query(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, pkt: memoryview,
        l3mc: bool, now: float,
    ) -> list[bytes]:  # fmt: skip
        if not is_link_local(ip.src):  # RFC 3810 §5.1.14
            return self._ctx.drop(DropReason.BAD_SOURCE)
        # RFC 3810 §5: sent with hop limit 1 and a Router Alert option in a Hop-by-Hop header;
        # Linux discards a query without them (ipv6_mc_check_mld)
        if ip.hop_limit != 1:
            return self._ctx.drop(DropReason.HOP_LIMIT)
        if pkt[6] != NH_HOPOPTS or find_option(
            pkt, IP6_HEADER_LEN + 2, IP6_HEADER_LEN + (pkt[IP6_HEADER_LEN + 1] + 1) * 8,
            OPT_ROUTER_ALERT,
        ) is None:  # fmt: skip
            return self._ctx.drop(DropReason.BAD_OPTION)
        if msg.code != 0:
            return self._ctx.drop(DropReason.BAD_CODE)
        q = mld.parse_query(msg)
        if q.group != UNSPECIFIED and q.group[0] != 0xFF:
            return self._ctx.drop(DropReason.BAD_TARGET)
        return self.mld.on_query(q, now)

    def _rx_error(
        self, eth_src: bytes, ip: Ipv6Header, msg: Icmpv6Message, pkt: memoryview,
        l3mc: bool, now: float,
    ) -> list[bytes]:  # fmt: skip
        err = icmpv6.parse_error(msg)
        self.counters["icmp.errors_rx"] += 1
        inv = err.invoking
        if len(inv) < IP6_HEADER_LEN or bytes(inv[8:24]) not in self.addrconf.assigned:
            self.counters["icmp.errors_not_ours"] += 1  # does not quote a packet we sent
            return []
        inv_dst = bytes(inv[24:40])
        is_tcp = inv[6] == NH_TCP and len(inv) >= IP6_HEADER_LEN + 8
        if err.type == PACKET_TOO_BIG:
            if not self.router.on_packet_too_big(inv_dst, err.param, now):
                return self._ctx.drop(DropReason.BAD_LENGTH)  # RFC 8201 §4: below 1280
            if is_tcp:
                sport, dport, seq = _PORTS_SEQ.unpack_from(inv, IP6_HEADER_LEN)
                return self.tcp.on_packet_too_big(bytes(inv[8:24]), inv_dst, sport, dport, seq,
                                                  now)  # fmt: skip
            return []
        if inv[6] == NH_UDP and len(inv) >= IP6_HEADER_LEN + 2:
            self.udp.on_error(err, int.from_bytes(inv[40:42], "big"))
        elif is_tcp:
            sport, dport, _ = _PORTS_SEQ.unpack_from(inv, IP6_HEADER_LEN)
            self.tcp.on_error(bytes(inv[8:24]), inv_dst, sport, dport,
                              f"icmpv6 {err.type}/{err.code}")  # fmt: skip
        return []

    # --- ICMPv6 errors -------------------------------------------------------------------------

    def _icmp_error(
        self,
        icmp_type: int,
        code: int,
        param: int,
        ip: Ipv6Header,
        pkt: memoryview,
        l3mc: bool,
        l2mc: bool,
        now: float,
        *,
        exception: bool = False,
    ) -> list[bytes]:
        """Send an error about ``pkt`` if RFC 4443 §2.4 (e) and (f) allow it."""
        counters = self.counters
        if ip.src == UNSPECIFIED or ip.src[0] == 0xFF:  # (e.6)
            counters["icmp.errors_suppressed"] += 1
            return []
        if (l3mc or l2mc) and not exception:  # (e.3)-(e.5)
            counters["icmp.errors_suppressed"] += 1
            return []
        if invokes_error(pkt):  # (e.1), (e.2)
            counters["icmp.errors_suppressed"] += 1
            return []
        if not self._bucket.take(now):  # (f)
            return self._ctx.drop(DropReason.RATE_LIMITED)
        src = ip.dst if ip.dst in self.addrconf.assigned else self.addrconf.select_source(ip.src)
        if src is None:
            return self._ctx.drop(DropReason.NO_SOURCE)
        msg = icmpv6.error_message(src, ip.src, icmp_type, code, param, pkt)
        counters["icmp.errors_sent"] += 1
        return self._output(src, ip.src, NH_ICMPV6, msg, now)

    # --- transmit path ---------------------------------------------------------------------------

    def _output(
        self, src: bytes, dst: bytes, nh: int, payload: bytes, now: float
    ) -> list[bytes]:
        """Route, fragment and resolve one originated upper-layer packet."""
        hop = self.params.cur_hop_limit
        if dst[0] == 0xFF:
            head = pack_header(ipv6_multicast_mac(dst), self.mac, ETHERTYPE_IPV6)
            return [head + p for p in self._packets(src, dst, nh, hop, payload, self.mtu)]
        if dst in self.addrconf.assigned:  # no loopback interface in this emulation
            return self._ctx.drop(DropReason.UNSUPPORTED)
        router = self.router
        next_hop = router.next_hop(dst)
        if next_hop is None:  # RFC 4861 §5.2 (RFC 4943): no default router
            return self._ctx.drop(DropReason.NO_ROUTE)
        mtu = router.path_mtu(dst, now) if router.destinations else self.params.link_mtu
        return self.nud.output(
            next_hop, self._packets(src, dst, nh, hop, payload, mtu), src, now
        )

    def _output_large(
        self, src: bytes, dst: bytes, nh: int, payload: bytes, now: float
    ) -> list[bytes]:
        """A large send (task offload): routed and resolved as :meth:`_output`, never
        fragmented — the NIC cuts it into link-sized segments."""
        router = self.router
        next_hop = router.next_hop(dst)
        if next_hop is None:
            return self._ctx.drop(DropReason.NO_ROUTE)
        return self.nud.output(
            next_hop, [packet(src, dst, nh, self.params.cur_hop_limit, payload)], src, now
        )

    def _packets(
        self, src: bytes, dst: bytes, nh: int, hop: int, payload: bytes, mtu: int
    ) -> list[bytes]:
        if IP6_HEADER_LEN + len(payload) <= mtu:
            return [packet(src, dst, nh, hop, payload)]
        # RFC 8200 §4.5; unpredictable Identification (RFC 7739)
        frags = fragment(src, dst, nh, hop, payload, mtu, self.rng.getrandbits(32))
        self.counters["frag.tx"] += len(frags)
        return frags

    def _solicit(
        self, target: bytes, unicast_mac: bytes | None, hint: bytes | None
    ) -> bytes | None:
        """An NS for ``target`` (RFC 4861 §7.2.2): from the prompting packet's source if it is
        ours, else the RFC 6724 choice; multicast to the solicited-node group or unicast."""
        addrs = self.addrconf
        src = hint if hint is not None and hint in addrs.assigned else addrs.select_source(target)
        if src is None:
            self.counters["nd.ns_no_source"] += 1
            return None
        if unicast_mac is None:
            dst = solicited_node(target)
            mac = ipv6_multicast_mac(dst)
        else:
            dst, mac = target, unicast_mac
        ns = icmpv6.neighbor_solicitation(src, dst, target, self.mac)
        return pack_header(mac, self.mac, ETHERTYPE_IPV6) + packet(
            src, dst, NH_ICMPV6, ND_HOP_LIMIT, ns
        )

    # --- component glue --------------------------------------------------------------------------

    def _mld_source(self) -> bytes:
        """RFC 3810 §5.2.13: link-local, or :: while it is tentative."""
        ll = self.addrconf.usable_link_local()
        return ll if ll is not None else UNSPECIFIED

    def _on_assigned(self, entry: AddressEntry, now: float) -> list[bytes]:
        """RFC 3590 §4: reports sent from :: are repeated once a link-local address is valid."""
        if entry.origin is AddrOrigin.LINK_LOCAL and self.mld.started:
            return self.mld.report_all(now)
        return []

    def _path_mtu(self, dst: bytes, now: float) -> int:
        router = self.router
        return router.path_mtu(dst, now) if router.destinations else self.params.link_mtu

    def _tcp_confirm(self, dst: bytes, now: float) -> None:
        """RFC 4861 §7.3.1: TCP's forward progress confirms the next hop's reachability."""
        next_hop = self.router.next_hop(dst)
        if next_hop is not None and self.nud.state(next_hop) is not _REACHABLE:
            self.nud.confirm(next_hop, now)

    def _router_lost(self, addr: bytes, now: float) -> None:
        self.router.remove_router(addr, now)

    def _disable(self, now: float) -> None:
        """RFC 4862 §5.4.5: a duplicate MAC-derived link-local address stops IPv6 here."""
        self.disabled = True
        self._ctx.timers.clear()
        self._ctx.event(now, "interface.disabled", self.link_local, "duplicate link-local")

    def _nud_timer(self, key: Hashable, now: float) -> list[bytes]:
        assert isinstance(key, tuple)
        return self.nud.on_timer(key[1], now)

    def _frag_timer(self, key: Hashable, now: float) -> list[bytes]:
        expired = self.reassembler.on_timer(key, now)
        if expired is None or expired.first is None:
            return []
        first = memoryview(expired.first)
        ip = Ipv6Header.parse(first)[0]
        l3mc = ip.dst[0] == 0xFF
        return self._icmp_error(  # RFC 8200 §4.5: Time Exceeded, code 1, to the first's source
            TIME_EXCEEDED, TE_REASSEMBLY, 0, ip, first, l3mc, expired.l2_multicast, now
        )


# Dispatch tables shared by every interface (per-instance tables of bound methods were 2 KB of
# each adapter in a 10,000-adapter storm).
_ICMP_HANDLERS: dict[int, IcmpHandler] = {
    ECHO_REQUEST: Ipv6Host._rx_echo_request,
    ECHO_REPLY: Ipv6Host._rx_echo_reply,
    NS: Ipv6Host._rx_neighbor_solicitation,
    NA: Ipv6Host._rx_neighbor_advertisement,
    RS: Ipv6Host._rx_for_routers,
    RA: Ipv6Host._rx_router_advertisement,
    REDIRECT: Ipv6Host._rx_redirect,
    MLD_QUERY: Ipv6Host._rx_mld_query,
    MLD_REPORT: Ipv6Host._rx_for_routers,
    MLD_DONE: Ipv6Host._rx_for_routers,
    MLDV2_REPORT: Ipv6Host._rx_for_routers,
    DEST_UNREACH: Ipv6Host._rx_error,
    PACKET_TOO_BIG: Ipv6Host._rx_error,
    TIME_EXCEEDED: Ipv6Host._rx_error,
    PARAM_PROBLEM: Ipv6Host._rx_error,
}

_TIMER_HANDLERS: dict[str, TimerHandler] = {
    "nud": lambda h, key, now: h._nud_timer(key, now),
    "dad": lambda h, key, now: h.addrconf.on_timer(key, now),
    "addr.valid": lambda h, key, now: h.addrconf.on_timer(key, now),
    "addr.pref": lambda h, key, now: h.addrconf.on_timer(key, now),
    "mld.change": lambda h, key, now: h.mld.on_timer(key, now),
    "mld.general": lambda h, key, now: h.mld.on_timer(key, now),
    "mld.group": lambda h, key, now: h.mld.on_timer(key, now),
    "rs": lambda h, key, now: h.router.on_timer(key, now),
    "router": lambda h, key, now: h.router.on_timer(key, now),
    "prefix": lambda h, key, now: h.router.on_timer(key, now),
    "frag": lambda h, key, now: h._frag_timer(key, now),
    "tcp": lambda h, key, now: h.tcp.on_timer(key, now),
}
