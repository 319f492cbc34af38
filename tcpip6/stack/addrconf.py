"""Address configuration of one interface: DAD (RFC 4862 §5.4), SLAAC (RFC 4862 §5.5), stable
interface identifiers (RFC 7217) and source address selection (RFC 6724 §5).

Theory of operation: every unicast address is an :class:`AddressEntry` whose state is TENTATIVE
until Duplicate Address Detection succeeds, then PREFERRED, DEPRECATED when its preferred
lifetime ends, and removed when its valid lifetime ends (§5.5.4). An address found duplicate is
kept as DUPLICATE for the record but is never used (§5.4.5).

* **DAD** (§5.4.2): the interface joins the solicited-node group of the tentative address, then
  sends ``dad_transmits`` NSs (source ::, no SLLA, to the solicited-node group) RetransTimer
  apart; the address is assigned when the last RetransTimer passes in silence. The first
  messages after the interface starts are delayed by a random 0..MAX_RTR_SOLICITATION_DELAY
  (§5.4.2). An NS from :: for a tentative target (someone else's DAD) or an NA for it
  (§5.4.3, §5.4.4) means it is a duplicate. A tentative address accepts nothing (§5.4): the
  host drops packets sent to it and answers no NS for it.
* **Duplicates**: with stable IIDs a new IID is tried with DAD_Counter + 1, up to IDGEN_RETRIES
  times, after a random delay up to 1 s (RFC 7217 §6). A duplicate MAC-derived link-local
  address disables IPv6 on the interface (RFC 4862 §5.4.5 SHOULD), through ``on_disable``.
* **SLAAC** (§5.5.3): a Prefix Information option with A=1, not link-local, preferred <= valid
  lifetime, prefix length 64 (the IID is 64 bits on Ethernet, RFC 2464 §4), forms an address
  from prefix and IID. For a prefix already configured the preferred lifetime is reset and the
  valid lifetime follows the two-hour rule (§5.5.3 e).
* **Source selection** (RFC 6724 §5): among PREFERRED and DEPRECATED addresses, in order, rule
  1 (the destination itself), 2 (appropriate scope), 3 (avoid deprecated), 6 (matching label,
  default policy table of §2.1) and 8 (longest common prefix, up to the source's prefix length).
  Rules 4, 5 and 7 do not apply to one interface without home or temporary addresses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum

from tcpip6.stack import constants as c
from tcpip6.stack.context import IidMode, StackContext
from tcpip6.stack.mld import MldHost
from tcpip6.wire import icmpv6, ipv6
from tcpip6.wire.ethernet import ETHERTYPE_IPV6, ipv6_multicast_mac, pack_header
from tcpip6.wire.icmpv6 import INFINITE_LIFETIME, ND_HOP_LIMIT, PrefixInfo
from tcpip6.wire.ipv6 import (
    LINK_LOCAL_PREFIX,
    LOOPBACK,
    NH_ICMPV6,
    UNSPECIFIED,
    interface_id_from_mac,
    solicited_node,
)


class AddrState(Enum):
    TENTATIVE = "tentative"
    PREFERRED = "preferred"
    DEPRECATED = "deprecated"
    DUPLICATE = "duplicate"


class AddrOrigin(Enum):
    LINK_LOCAL = "link-local"
    SLAAC = "slaac"
    MANUAL = "manual"


@dataclass(slots=True, eq=False)
class AddressEntry:
    """One address of the interface (mutable, owned by :class:`AddressConfig`)."""

    address: bytes
    prefix_len: int
    origin: AddrOrigin
    state: AddrState = AddrState.TENTATIVE
    valid_until: float = c.INFINITY
    preferred_until: float = c.INFINITY
    dad_left: int = 0
    dad_counter: int = 0
    prefix: bytes = b""


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """A read-only snapshot of one address, as :attr:`Ipv6Host.addresses` lists them."""

    address: bytes
    prefix_len: int
    state: AddrState
    origin: AddrOrigin
    valid_until: float
    preferred_until: float

    def __repr__(self) -> str:
        return (
            f"AddressInfo({ipv6.addr_str(self.address)}/{self.prefix_len} {self.state.value} "
            f"{self.origin.value})"
        )


# RFC 6724 §2.1 default policy table: (prefix, prefix length, label), longest match first
_POLICY: tuple[tuple[bytes, int, int], ...] = (
    (LOOPBACK, 128, 0),
    (bytes.fromhex("00000000000000000000ffff00000000"), 96, 4),
    (bytes(16), 96, 3),
    (bytes.fromhex("20010000") + bytes(12), 32, 5),
    (bytes.fromhex("2002") + bytes(14), 16, 2),
    (bytes.fromhex("3ffe") + bytes(14), 16, 12),
    (bytes.fromhex("fec0") + bytes(14), 10, 11),
    (bytes.fromhex("fc00") + bytes(14), 7, 13),
)
_FROM = int.from_bytes


def common_prefix_len(a: bytes, b: bytes, limit: int = 128) -> int:
    """Number of leading bits ``a`` and ``b`` share, at most ``limit``."""
    x = _FROM(a, "big") ^ _FROM(b, "big")
    return min(limit, 128 - x.bit_length())


def label(addr: bytes) -> int:
    """RFC 6724 §2.1 default policy label (``::/0`` is 1)."""
    for prefix, plen, lab in _POLICY:
        if common_prefix_len(addr, prefix) >= plen:
            return lab
    return 1


def scope(addr: bytes) -> int:
    """RFC 6724 §3.1 / RFC 4291 §2.7 scope value (2 link-local, 5 site-local, 14 global)."""
    if addr[0] == 0xFF:
        return addr[1] & 0x0F
    if addr[0] == 0xFE and (addr[1] & 0xC0) == 0x80:
        return 2
    if addr == LOOPBACK:
        return 2
    if addr[0] == 0xFE and (addr[1] & 0xC0) == 0xC0:
        return 5
    return 14


def _reserved_iid(iid: bytes) -> bool:
    """RFC 5453 reserved interface identifiers (and the all-zero subnet-router anycast)."""
    n = _FROM(iid, "big")
    return (
        n == 0
        or 0xFDFFFFFFFFFFFF80 <= n <= 0xFDFFFFFFFFFFFFFF  # reserved subnet anycast
        or 0x02005EFFFE000000 <= n <= 0x02005EFFFEFFFFFF  # IANA Ethernet block (proxy MIPv6...)
    )


def stable_iid(
    prefix: bytes, net_iface: bytes, network_id: bytes, dad_counter: int, secret: bytes
) -> bytes:
    """RFC 7217 §5: RID = F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key), F = SHA-256,
    the leftmost 64 bits; a reserved result counts as a collision (next DAD_Counter)."""
    counter = dad_counter
    while True:
        h = hashlib.sha256()
        for part in (prefix[:8], net_iface, network_id, counter.to_bytes(4, "big"), secret):
            h.update(len(part).to_bytes(2, "big"))
            h.update(part)
        iid = h.digest()[:8]
        if not _reserved_iid(iid):
            return iid
        counter += 1


def _lifetime(seconds: int, now: float) -> float:
    return c.INFINITY if seconds == INFINITE_LIFETIME else now + seconds


class AddressConfig:
    """The addresses of one interface (see module docstring)."""

    def __init__(
        self,
        ctx: StackContext,
        mld: MldHost,
        on_disable: Callable[[float], None],
        on_assigned: Callable[[AddressEntry, float], list[bytes]] | None = None,
    ) -> None:
        self._ctx = ctx
        self._mld = mld
        self._on_disable = on_disable
        self._on_assigned = on_assigned
        self.entries: dict[bytes, AddressEntry] = {}
        self.assigned: set[bytes] = set()  # PREFERRED or DEPRECATED: usable, answers NS
        self.tentative: set[bytes] = set()
        self.started = False
        self.version = 0  # bumps whenever assigned/tentative change
        self._dad_ns_frames: dict[bytes, bytes] = {}

    # --- identifiers ------------------------------------------------------------------------

    def interface_id(self, prefix: bytes, dad_counter: int = 0) -> bytes:
        cfg = self._ctx.config
        if cfg.iid_mode is IidMode.STABLE:
            return stable_iid(prefix, self._ctx.mac, cfg.network_id, dad_counter, cfg.stable_secret)
        return interface_id_from_mac(self._ctx.mac)

    def link_local_candidate(self) -> bytes:
        return LINK_LOCAL_PREFIX + self.interface_id(LINK_LOCAL_PREFIX + bytes(8))

    # --- queries ------------------------------------------------------------------------------

    def state(self, addr: bytes) -> AddrState | None:
        e = self.entries.get(addr)
        return e.state if e is not None else None

    def snapshot(self) -> list[AddressInfo]:
        return [
            AddressInfo(e.address, e.prefix_len, e.state, e.origin, e.valid_until,
                        e.preferred_until)
            for e in self.entries.values()
        ]  # fmt: skip

    def usable_link_local(self) -> bytes | None:
        for a in self.assigned:
            if a[0] == 0xFE and (a[1] & 0xC0) == 0x80:
                return a
        return None

    def select_source(self, dst: bytes) -> bytes | None:
        """RFC 6724 §5 rules 1, 2, 3, 6, 8 over the usable addresses (None: no candidate)."""
        best: AddressEntry | None = None
        best_key: tuple[bool, tuple[int, int], bool, bool, int] | None = None
        sd = scope(dst)
        ld = label(dst)
        for e in self.entries.values():
            if e.state is not AddrState.PREFERRED and e.state is not AddrState.DEPRECATED:
                continue
            a = e.address
            ss = scope(a)
            key = (
                a == dst,  # rule 1
                (1, -ss) if ss >= sd else (0, ss),  # rule 2
                e.state is AddrState.PREFERRED,  # rule 3
                label(a) == ld,  # rule 6
                common_prefix_len(a, dst, e.prefix_len),  # rule 8
            )
            if best_key is None or key > best_key:
                best, best_key = e, key
        return best.address if best is not None else None

    # --- adding and removing ------------------------------------------------------------------

    def add(
        self,
        address: bytes,
        prefix_len: int,
        origin: AddrOrigin,
        now: float,
        *,
        valid_until: float = c.INFINITY,
        preferred_until: float = c.INFINITY,
        delay: float = 0.0,
        dad_counter: int = 0,
        prefix: bytes = b"",
    ) -> list[bytes]:
        """Add a tentative address and (if started) begin DAD after ``delay``."""
        old = self.entries.get(address)
        if old is not None and old.state is not AddrState.DUPLICATE:
            return []
        entry = AddressEntry(
            address, prefix_len, origin, AddrState.TENTATIVE, valid_until, preferred_until,
            self._ctx.config.dad_transmits, dad_counter, prefix,
        )  # fmt: skip
        self.entries[address] = entry
        self.tentative.add(address)
        self.version += 1
        timers = self._ctx.timers
        if valid_until != c.INFINITY:
            timers.set(("addr.valid", address), valid_until)
        if preferred_until != c.INFINITY:
            timers.set(("addr.pref", address), preferred_until)
        out = self._mld.join(solicited_node(address), now)  # §5.4.2: join before the NS
        if not self.started:
            return out
        return out + self._begin_dad(entry, now, delay)

    def start(self, now: float, delay: float) -> list[bytes]:
        """Interface up: DAD for every tentative address, the first messages after ``delay``."""
        self.started = True
        out: list[bytes] = []
        for e in list(self.entries.values()):
            if e.state is AddrState.TENTATIVE:
                out += self._begin_dad(e, now, delay)
        return out

    def _begin_dad(self, e: AddressEntry, now: float, delay: float) -> list[bytes]:
        if e.dad_left <= 0:  # DupAddrDetectTransmits 0: no DAD (§5.4)
            return self._assign(e, now)
        self._ctx.counters["dad.started"] += 1
        if delay > 0:
            self._ctx.timers.set(("dad", e.address), now + delay)
            return []
        return self._dad_step(e, now)

    def _dad_step(self, e: AddressEntry, now: float) -> list[bytes]:
        if e.dad_left <= 0:
            return self._assign(e, now)
        e.dad_left -= 1
        self._ctx.timers.set(("dad", e.address), now + self._ctx.params.retrans_timer)
        self._ctx.counters["dad.ns_sent"] += 1
        return [self._dad_ns(e.address)]

    def _dad_ns(self, target: bytes) -> bytes:
        frame = self._dad_ns_frames.get(target)
        if frame is None:
            group = solicited_node(target)
            ns = icmpv6.neighbor_solicitation(UNSPECIFIED, group, target, None)
            frame = pack_header(
                ipv6_multicast_mac(group), self._ctx.mac, ETHERTYPE_IPV6
            ) + ipv6.packet(UNSPECIFIED, group, NH_ICMPV6, ND_HOP_LIMIT, ns)
            self._dad_ns_frames[target] = frame
        return frame

    def _assign(self, e: AddressEntry, now: float) -> list[bytes]:
        self.tentative.discard(e.address)
        self.assigned.add(e.address)
        self.version += 1
        e.state = AddrState.PREFERRED if e.preferred_until > now else AddrState.DEPRECATED
        self._ctx.counters["dad.succeeded"] += 1
        self._ctx.event(now, "address.assigned", e.address, e.state.value)
        return self._on_assigned(e, now) if self._on_assigned is not None else []

    def remove(self, address: bytes, now: float) -> list[bytes]:
        """Remove an address (valid lifetime over, or the owner's wish)."""
        e = self.entries.pop(address, None)
        if e is None:
            return []
        timers = self._ctx.timers
        for tag in ("dad", "addr.valid", "addr.pref"):
            timers.cancel((tag, address))
        self._dad_ns_frames.pop(address, None)
        self.assigned.discard(address)
        self.tentative.discard(address)
        self.version += 1
        self._ctx.event(now, "address.removed", address)
        if e.state is AddrState.DUPLICATE:
            return []
        return self._mld.leave(solicited_node(address), now)

    # --- DAD results --------------------------------------------------------------------------

    def duplicate_detected(self, target: bytes, now: float, how: str) -> list[bytes]:
        """§5.4.3/§5.4.4: a tentative ``target`` is in use by someone else."""
        e = self.entries.get(target)
        if e is None or e.state is not AddrState.TENTATIVE:
            return []
        e.state = AddrState.DUPLICATE
        self.tentative.discard(target)
        self.version += 1
        self._ctx.timers.cancel(("dad", target))
        self._ctx.counters["dad.duplicate"] += 1
        self._ctx.event(now, "dad.duplicate", target, how)  # §5.4.5: "SHOULD log"
        out = self._mld.leave(solicited_node(target), now)
        cfg = self._ctx.config
        if cfg.iid_mode is IidMode.STABLE and e.origin is not AddrOrigin.MANUAL:
            if e.dad_counter < c.IDGEN_RETRIES:  # RFC 7217 §6
                prefix = LINK_LOCAL_PREFIX + bytes(8) if not e.prefix else e.prefix
                iid = self.interface_id(prefix, e.dad_counter + 1)
                new = prefix[:8] + iid
                self._ctx.counters["dad.idgen_retry"] += 1
                out += self.add(
                    new, e.prefix_len, e.origin, now, valid_until=e.valid_until,
                    preferred_until=e.preferred_until, delay=self._ctx.rng.uniform(0.0, 1.0),
                    dad_counter=e.dad_counter + 1, prefix=e.prefix,
                )  # fmt: skip
        elif e.origin is AddrOrigin.LINK_LOCAL and cfg.disable_on_duplicate_lladdr:
            self._on_disable(now)  # §5.4.5: hardware-derived IID -> disable IP operation
        return out

    # --- timers -------------------------------------------------------------------------------

    def on_timer(self, key: Hashable, now: float) -> list[bytes]:
        assert isinstance(key, tuple)
        tag, address = key
        e = self.entries.get(address)
        if e is None:
            return []
        if tag == "dad":
            return self._dad_step(e, now) if e.state is AddrState.TENTATIVE else []
        if tag == "addr.pref":
            if e.state is AddrState.PREFERRED:
                e.state = AddrState.DEPRECATED  # §5.5.4
                self._ctx.event(now, "address.deprecated", address)
            return []
        if tag == "addr.valid":
            return self.remove(address, now)
        return []

    # --- SLAAC --------------------------------------------------------------------------------

    def on_prefix(self, pi: PrefixInfo, now: float) -> list[bytes]:
        """RFC 4862 §5.5.3 for one Prefix Information option of a valid RA."""
        counters = self._ctx.counters
        if not pi.autonomous:  # (a)
            return []
        if pi.prefix[0] == 0xFE and (pi.prefix[1] & 0xC0) == 0x80:  # (b)
            counters["slaac.ignored_link_local"] += 1
            return []
        if pi.preferred_lifetime > pi.valid_lifetime:  # (c)
            counters["slaac.ignored_lifetimes"] += 1
            return []
        prefix = pi.prefix[:8] + bytes(8)
        existing = [
            e for e in self.entries.values()
            if e.origin is AddrOrigin.SLAAC and e.prefix == prefix
            and e.state is not AddrState.DUPLICATE
        ]  # fmt: skip
        if not existing:  # (d)
            if pi.valid_lifetime == 0:
                return []
            if pi.prefix_len != 64:
                counters["slaac.bad_prefix_len"] += 1
                self._ctx.event(now, "slaac.bad_prefix_len", pi.prefix, str(pi.prefix_len))
                return []
            n = sum(1 for e in self.entries.values() if e.origin is AddrOrigin.SLAAC)
            if n >= self._ctx.config.max_addresses:
                counters["slaac.table_full"] += 1
                return []
            address = prefix[:8] + self.interface_id(prefix)
            if address in self.entries:
                return []
            counters["slaac.addresses"] += 1
            return self.add(
                address, 64, AddrOrigin.SLAAC, now,
                valid_until=_lifetime(pi.valid_lifetime, now),
                preferred_until=_lifetime(pi.preferred_lifetime, now), prefix=prefix,
            )  # fmt: skip
        for e in existing:  # (e)
            self._set_preferred(e, _lifetime(pi.preferred_lifetime, now), now)
            received = pi.valid_lifetime
            remaining = e.valid_until - now
            if received == INFINITE_LIFETIME or received > c.TWO_HOURS or received > remaining:
                self._set_valid(e, _lifetime(received, now))  # (e) 1
            elif remaining <= c.TWO_HOURS:
                counters["slaac.two_hour_rule"] += 1  # (e) 2: ignore
            else:
                counters["slaac.two_hour_rule"] += 1
                self._set_valid(e, now + c.TWO_HOURS)  # (e) 3
        return []

    def _set_preferred(self, e: AddressEntry, until: float, now: float) -> None:
        e.preferred_until = until
        key = ("addr.pref", e.address)
        if until == c.INFINITY:
            self._ctx.timers.cancel(key)
        else:
            self._ctx.timers.set(key, until)
        if until > now and e.state is AddrState.DEPRECATED:
            e.state = AddrState.PREFERRED
        elif until <= now and e.state is AddrState.PREFERRED:
            self._ctx.timers.cancel(key)
            e.state = AddrState.DEPRECATED
            self._ctx.event(now, "address.deprecated", e.address)

    def _set_valid(self, e: AddressEntry, until: float) -> None:
        e.valid_until = until
        key = ("addr.valid", e.address)
        if until == c.INFINITY:
            self._ctx.timers.cancel(key)
        else:
            self._ctx.timers.set(key, until)
