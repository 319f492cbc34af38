"""Router discovery for a host (RFC 4861 §6.3), next-hop determination (§5.2), Redirect (§8.3)
and Path MTU (RFC 8201).

Theory of operation: the conceptual data structures of RFC 4861 §5.1 — Default Router List,
Prefix List, Destination Cache — each bounded by the configuration; the Neighbor Cache lives in
:mod:`tcpip6.stack.nud`.

* **Router Solicitations** (§6.3.7): after a random 0..MAX_RTR_SOLICITATION_DELAY, up to
  MAX_RTR_SOLICITATIONS, RTR_SOLICITATION_INTERVAL apart, to ff02::2 with hop limit 255; from
  the link-local address with an SLLA option, or from :: without one while the link-local
  address is tentative (§4.1, §6.3.7). A valid RA with a non-zero Router Lifetime stops them.
* **Router Advertisements** (§6.3.4), already validated per §6.1.2 by the caller: Cur Hop Limit,
  Reachable Time (ReachableTime re-randomized on change, §6.3.2) and Retrans Timer when non-zero;
  the router enters, is refreshed in, or (lifetime 0) leaves the Default Router List; its SLLA
  goes to the Neighbor Cache with IsRouter set; an MTU option between 1280 and the NIC's maximum
  sets LinkMTU (§6.3.4 "MUST NOT ... greater than the maximum"); each Prefix Information option
  with L=1 (not link-local) enters, refreshes or (valid lifetime 0) leaves the Prefix List, and
  is handed to SLAAC.
* **Next hop** (§5.2): the Destination Cache (Redirects) first, then on-link (link-local or in
  the Prefix List) means the destination itself, else a default router chosen per §6.3.6:
  the first one whose Neighbor Cache entry is not INCOMPLETE, otherwise round-robin. With no
  router an off-link destination is unreachable (RFC 4943 removed the on-link assumption).
* **Redirect** (§8.1 checks that need routing state, §8.3): accepted only from the current
  first hop for the destination, with a link-local target or target = destination; updates the
  Destination Cache and the target's Neighbor Cache entry.
* **Path MTU** (RFC 8201 §4): a Packet Too Big lowers the estimate for its destination (never
  below 1280 — such messages are discarded — nor raised above LinkMTU); estimates age out after
  ten minutes (§4 "SHOULD NOT ... less than 5 minutes", 10 recommended).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

from tcpip6.stack import constants as c
from tcpip6.stack.addrconf import AddressConfig, common_prefix_len
from tcpip6.stack.context import StackContext
from tcpip6.stack.nud import NeighborCache, NudState
from tcpip6.wire import icmpv6, ipv6
from tcpip6.wire.ethernet import ETHERTYPE_IPV6, ipv6_multicast_mac, pack_header
from tcpip6.wire.icmpv6 import ND_HOP_LIMIT, PrefixInfo, Redirect, RouterAdvertisement
from tcpip6.wire.ipv6 import ALL_ROUTERS, NH_ICMPV6, UNSPECIFIED, is_link_local

_ALL_ROUTERS_MAC: Final = ipv6_multicast_mac(ALL_ROUTERS)


@dataclass(slots=True)
class OnLinkPrefix:
    prefix: bytes  # 16 bytes, bits beyond prefix_len zero
    prefix_len: int
    expires: float


@dataclass(slots=True)
class Destination:
    """Destination Cache entry (§5.1): a redirected next hop and/or a Path MTU estimate."""

    next_hop: bytes | None = None
    pmtu: int = 0
    pmtu_time: float = 0.0


def _mask(prefix: bytes, plen: int) -> bytes:
    n = int.from_bytes(prefix, "big")
    keep = ((1 << plen) - 1) << (128 - plen) if plen else 0
    return (n & keep).to_bytes(16, "big")


class RouterDiscovery:
    """Routers, prefixes, next hops and path MTUs of one interface (see module docstring)."""

    def __init__(self, ctx: StackContext, nud: NeighborCache, addrconf: AddressConfig) -> None:
        self._ctx = ctx
        self._nud = nud
        self._addrconf = addrconf
        self.routers: dict[bytes, float] = {}  # address -> expiry
        self.prefixes: dict[tuple[bytes, int], OnLinkPrefix] = {}
        self.destinations: dict[bytes, Destination] = {}
        self.managed = False
        self.other = False
        self._rs_sent = 0
        self._rr = 0

    # --- Router Solicitation ------------------------------------------------------------------

    def start(self, now: float, delay: float) -> list[bytes]:
        cfg = self._ctx.config
        if not cfg.accept_ra or cfg.max_rtr_solicitations <= 0:
            return []
        self._rs_sent = 0
        if delay > 0:
            self._ctx.timers.set(("rs",), now + delay)
            return []
        return self._send_rs(now)

    def _send_rs(self, now: float) -> list[bytes]:
        cfg = self._ctx.config
        src = self._addrconf.usable_link_local()
        slla = self._ctx.mac if src is not None else None
        if src is None:
            src = UNSPECIFIED  # §6.3.7 / §4.1: no SLLA from the unspecified address
        rs = icmpv6.router_solicitation(src, ALL_ROUTERS, slla)
        self._rs_sent += 1
        self._ctx.counters["nd.rs_sent"] += 1
        if self._rs_sent < cfg.max_rtr_solicitations:
            self._ctx.timers.set(("rs",), now + cfg.rtr_solicitation_interval)
        return [
            pack_header(_ALL_ROUTERS_MAC, self._ctx.mac, ETHERTYPE_IPV6)
            + ipv6.packet(src, ALL_ROUTERS, NH_ICMPV6, ND_HOP_LIMIT, rs)
        ]

    @property
    def soliciting(self) -> bool:
        return ("rs",) in self._ctx.timers

    # --- Router Advertisement -----------------------------------------------------------------

    def on_advertisement(self, src: bytes, ra: RouterAdvertisement, now: float) -> list[bytes]:
        """§6.3.4 processing of a validated RA from link-local ``src``."""
        ctx = self._ctx
        params = ctx.params
        counters = ctx.counters
        counters["nd.ra_rx"] += 1
        if not ctx.config.accept_ra:
            counters["nd.ra_ignored"] += 1
            return []
        if ra.cur_hop_limit:
            params.cur_hop_limit = ra.cur_hop_limit
        if ra.reachable_time:
            base = ra.reachable_time / 1000.0
            if base != params.base_reachable_time:
                params.base_reachable_time = base
                params.reachable_time = ctx.randomized_reachable_time(base)
        if ra.retrans_timer:
            params.retrans_timer = ra.retrans_timer / 1000.0
        self.managed, self.other = ra.managed, ra.other
        opts = ra.options
        if opts.mtu is not None:
            if c.IPV6_MIN_MTU <= opts.mtu <= params.max_link_mtu:
                if opts.mtu != params.link_mtu:
                    params.link_mtu = opts.mtu
                    ctx.event(now, "link.mtu", None, str(opts.mtu))
            else:
                counters["nd.ra_bad_mtu"] += 1
        self._default_router(src, ra.router_lifetime, now)
        out: list[bytes] = []
        if opts.source_lladdr is not None:
            out += self._nud.on_lladdr(src, opts.source_lladdr, now, is_router=True)
        else:
            self._nud.mark_router(src)
        for pi in opts.prefixes:
            self._prefix(pi, now)
            if ctx.config.autoconf:
                out += self._addrconf.on_prefix(pi, now)
        if ra.router_lifetime:
            ctx.timers.cancel(("rs",))  # §6.3.7: desist from sending solicitations
        return out

    def _default_router(self, src: bytes, lifetime: int, now: float) -> None:
        key = ("router", src)
        if lifetime == 0:
            if src in self.routers:
                self.remove_router(src, now)
            return
        if src not in self.routers:
            if len(self.routers) >= self._ctx.config.max_routers:
                self._ctx.counters["nd.routers_full"] += 1
                return
            self._ctx.event(now, "router.added", src)
        self.routers[src] = now + lifetime
        self._ctx.timers.set(key, now + lifetime)

    def remove_router(self, addr: bytes, now: float) -> None:
        """§6.3.5: drop a default router and every Destination Cache entry using it."""
        if self.routers.pop(addr, None) is None:
            return
        self._ctx.timers.cancel(("router", addr))
        self._ctx.event(now, "router.removed", addr)
        for dst in [d for d, e in self.destinations.items() if e.next_hop == addr]:
            del self.destinations[dst]

    def _prefix(self, pi: PrefixInfo, now: float) -> None:
        if not pi.on_link or is_link_local(pi.prefix) or pi.prefix_len > 128:
            return  # §6.3.4: the link-local prefix is ignored
        key = (_mask(pi.prefix, pi.prefix_len), pi.prefix_len)
        tkey = ("prefix", key)
        if pi.valid_lifetime == 0:
            if self.prefixes.pop(key, None) is not None:
                self._ctx.timers.cancel(tkey)
                self._ctx.event(now, "prefix.removed", key[0], str(pi.prefix_len))
            return
        entry = self.prefixes.get(key)
        if entry is None:
            if len(self.prefixes) >= self._ctx.config.max_prefixes:
                self._ctx.counters["nd.prefixes_full"] += 1
                return
            entry = self.prefixes[key] = OnLinkPrefix(key[0], pi.prefix_len, 0.0)
            self._ctx.event(now, "prefix.added", key[0], str(pi.prefix_len))
        if pi.valid_lifetime == icmpv6.INFINITE_LIFETIME:
            entry.expires = c.INFINITY
            self._ctx.timers.cancel(tkey)
        else:
            entry.expires = now + pi.valid_lifetime
            self._ctx.timers.set(tkey, entry.expires)

    def add_on_link(self, prefix: bytes, prefix_len: int) -> None:
        """A manually configured on-link prefix (infinite lifetime)."""
        key = (_mask(prefix, prefix_len), prefix_len)
        self.prefixes[key] = OnLinkPrefix(key[0], prefix_len, c.INFINITY)

    # --- timers ---------------------------------------------------------------------------------

    def on_timer(self, key: Hashable, now: float) -> list[bytes]:
        assert isinstance(key, tuple)
        tag = key[0]
        if tag == "rs":
            return self._send_rs(now)
        if tag == "router":
            self.remove_router(key[1], now)
        elif tag == "prefix" and self.prefixes.pop(key[1], None) is not None:
            self._ctx.event(now, "prefix.removed", key[1][0], str(key[1][1]))
        return []

    # --- next hop ---------------------------------------------------------------------------------

    def on_link(self, dst: bytes) -> bool:
        if dst[0] == 0xFE and (dst[1] & 0xC0) == 0x80:
            return True
        return any(common_prefix_len(dst, p.prefix) >= p.prefix_len for p in self.prefixes.values())

    def next_hop(self, dst: bytes) -> bytes | None:
        """§5.2 next-hop determination (None: no route)."""
        d = self.destinations.get(dst)
        if d is not None and d.next_hop is not None:
            return d.next_hop
        if self.on_link(dst):
            return dst
        return self.select_router()

    def select_router(self) -> bytes | None:
        """§6.3.6: prefer a router not INCOMPLETE (nor unknown); else round-robin."""
        if not self.routers:
            return None
        for r in self.routers:
            st = self._nud.state(r)
            if st is not None and st is not NudState.INCOMPLETE:
                return r
        routers = list(self.routers)
        self._rr = (self._rr + 1) % len(routers)
        return routers[self._rr]

    def _destination(self, dst: bytes) -> Destination:
        d = self.destinations.get(dst)
        if d is None:
            if len(self.destinations) >= self._ctx.config.destination_cache_size:
                del self.destinations[next(iter(self.destinations))]  # oldest first
                self._ctx.counters["nd.destinations_evicted"] += 1
            d = self.destinations[dst] = Destination()
        return d

    # --- Redirect -----------------------------------------------------------------------------

    def on_redirect(self, src: bytes, rd: Redirect, now: float) -> list[bytes] | None:
        """§8.1 routing checks and §8.3; None means "invalid, discard"."""
        if self.next_hop(rd.destination) != src:
            return None  # §8.1: must come from the current first hop for the destination
        if rd.target != rd.destination and not is_link_local(rd.target):
            return None  # §8.1: target link-local, or the destination itself (on-link)
        self._ctx.counters["nd.redirects"] += 1
        self._destination(rd.destination).next_hop = rd.target
        is_router = True if rd.target != rd.destination else None
        tlla = rd.options.target_lladdr
        if tlla is not None:
            return self._nud.on_lladdr(rd.target, tlla, now, is_router=is_router)
        if is_router:
            self._nud.mark_router(rd.target)
        return []

    # --- Path MTU -------------------------------------------------------------------------------

    def on_packet_too_big(self, dst: bytes, mtu: int, now: float) -> bool:
        """RFC 8201 §4; False if the message was discarded."""
        if mtu < c.IPV6_MIN_MTU:
            return False
        if mtu >= self._ctx.params.link_mtu:
            return True  # never raise the estimate above the link MTU
        d = self._destination(dst)
        if d.pmtu == 0 or mtu < d.pmtu or now - d.pmtu_time >= c.PMTU_AGING:
            d.pmtu = mtu
            d.pmtu_time = now
            self._ctx.event(now, "pmtu.lowered", dst, str(mtu))
        return True

    def path_mtu(self, dst: bytes, now: float) -> int:
        link = self._ctx.params.link_mtu
        d = self.destinations.get(dst)
        if d is None or d.pmtu == 0:
            return link
        if now - d.pmtu_time >= c.PMTU_AGING:  # RFC 8201 §4: try the larger MTU again
            d.pmtu = 0
            return link
        return min(d.pmtu, link)
