"""Neighbor cache and Neighbor Unreachability Detection (RFC 4861 §7.2, §7.3, Appendix C).

Theory of operation: the five reachability states (INCOMPLETE, REACHABLE, STALE, DELAY, PROBE)
and the events that move an entry between them are one table, :data:`TRANSITIONS`
(``{state: {event: next_state}}``; ``None`` as a state means "no entry" — as a target it means
"delete the entry"). Appendix C of RFC 4861 is the source; a pair missing from the table is a
bug and raises :class:`~tcpip6.errors.IllegalTransition`. The code around the table only
*classifies* inputs into events and performs the actions of the state entered:

=================  =============================================================================
event              produced by
=================  =============================================================================
SEND               a packet to transmit to the neighbor (§7.2.2, §7.3.3)
SOLICITED_CONFIRM  NA with S=1 that is usable (§7.2.5): INCOMPLETE with a TLLA; otherwise O=1
                   or the same / no TLLA
LLADDR_CHANGED     a new link-layer address learnt: NS SLLA (§7.2.3), RA SLLA (§6.3.4),
                   Redirect TLLA (§8.3), NA with O=1 and S=0 (§7.2.5); NA without S for an
                   INCOMPLETE entry
LLADDR_SAME        such a message repeating the cached address: no change
NA_CONFLICT        NA with O=0 and a different TLLA: REACHABLE becomes STALE, others unchanged
TIMEOUT            the entry's timer with retries left / reachability expired / delay expired
RETRIES_EXHAUSTED  MAX_MULTICAST_SOLICIT or MAX_UNICAST_SOLICIT NSs unanswered (§7.2.2, §7.3.3)
UPPER_CONFIRM      an upper layer's forward-progress hint (§7.3.1)
=================  =============================================================================

Actions: entering INCOMPLETE sends a multicast NS and arms RetransTimer; REACHABLE arms
ReachableTime (randomized, §6.3.2); DELAY arms DELAY_FIRST_PROBE_TIME; PROBE sends a unicast NS
to the cached address each RetransTimer; STALE has no timer. Leaving INCOMPLETE with an address
transmits the queued packets (§7.2.2: at most ``neighbor_queue_len``; on overflow the oldest
goes, §7.2.2 "the new arrival SHOULD replace the oldest entry"). Deleting an INCOMPLETE entry
drops its queue with ``drop.ADDRESS_UNREACHABLE`` (§7.2.2; for a host's own packets there is no
one else to send Destination Unreachable to).

The cache is bounded (``neighbor_cache_size``): when full, the least recently updated STALE
entry is evicted first, then the least recently updated entry of any other state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from tcpip6.errors import IllegalTransition
from tcpip6.stack import constants as c
from tcpip6.stack.context import StackContext
from tcpip6.wire.drops import DropReason
from tcpip6.wire.ethernet import ETHERTYPE_IPV6


class NudState(Enum):
    INCOMPLETE = "INCOMPLETE"
    REACHABLE = "REACHABLE"
    STALE = "STALE"
    DELAY = "DELAY"
    PROBE = "PROBE"


class NudEvent(Enum):
    SEND = "SEND"
    SOLICITED_CONFIRM = "SOLICITED_CONFIRM"
    LLADDR_CHANGED = "LLADDR_CHANGED"
    LLADDR_SAME = "LLADDR_SAME"
    NA_CONFLICT = "NA_CONFLICT"
    TIMEOUT = "TIMEOUT"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    UPPER_CONFIRM = "UPPER_CONFIRM"


_S = NudState
_E = NudEvent

TRANSITIONS: dict[NudState | None, dict[NudEvent, NudState | None]] = {
    None: {_E.SEND: _S.INCOMPLETE, _E.LLADDR_CHANGED: _S.STALE},
    _S.INCOMPLETE: {
        _E.SEND: _S.INCOMPLETE,
        _E.SOLICITED_CONFIRM: _S.REACHABLE,
        _E.LLADDR_CHANGED: _S.STALE,
        _E.TIMEOUT: _S.INCOMPLETE,
        _E.RETRIES_EXHAUSTED: None,
    },
    _S.REACHABLE: {
        _E.SEND: _S.REACHABLE,
        _E.SOLICITED_CONFIRM: _S.REACHABLE,
        _E.LLADDR_CHANGED: _S.STALE,
        _E.LLADDR_SAME: _S.REACHABLE,
        _E.NA_CONFLICT: _S.STALE,
        _E.TIMEOUT: _S.STALE,
        _E.UPPER_CONFIRM: _S.REACHABLE,
    },
    _S.STALE: {
        _E.SEND: _S.DELAY,
        _E.SOLICITED_CONFIRM: _S.REACHABLE,
        _E.LLADDR_CHANGED: _S.STALE,
        _E.LLADDR_SAME: _S.STALE,
        _E.NA_CONFLICT: _S.STALE,
        _E.UPPER_CONFIRM: _S.REACHABLE,
    },
    _S.DELAY: {
        _E.SEND: _S.DELAY,
        _E.SOLICITED_CONFIRM: _S.REACHABLE,
        _E.LLADDR_CHANGED: _S.STALE,
        _E.LLADDR_SAME: _S.DELAY,
        _E.NA_CONFLICT: _S.DELAY,
        _E.TIMEOUT: _S.PROBE,
        _E.UPPER_CONFIRM: _S.REACHABLE,
    },
    _S.PROBE: {
        _E.SEND: _S.PROBE,
        _E.SOLICITED_CONFIRM: _S.REACHABLE,
        _E.LLADDR_CHANGED: _S.STALE,
        _E.LLADDR_SAME: _S.PROBE,
        _E.NA_CONFLICT: _S.PROBE,
        _E.TIMEOUT: _S.PROBE,
        _E.RETRIES_EXHAUSTED: None,
        _E.UPPER_CONFIRM: _S.REACHABLE,
    },
}

# Hot path: in these states SEND changes nothing (checked against the table at import), so
# ``output`` tests them by identity instead of hashing enum members per packet.
_SEND_KEEPS: Final = (_S.REACHABLE, _S.DELAY, _S.PROBE)
assert all(TRANSITIONS[s][_E.SEND] is s for s in _SEND_KEEPS)
# Final names, not ``_S.STALE``: on CPython 3.11 an enum member read through its class costs
# a call of EnumType.__getattr__ (about 900 instructions) per read; a Final name is a C static
# in the wheel (bench/README.md, "fifth round").
_STALE: Final = _S.STALE

Solicit = Callable[[bytes, bytes | None, bytes | None], bytes | None]
"""``(target, unicast_mac_or_None, source_hint) -> NS frame`` (None: no usable source)."""


@dataclass(slots=True, eq=False)
class NeighborEntry:
    """One neighbor (RFC 4861 §5.1 Neighbor Cache entry)."""

    address: bytes
    state: NudState
    lladdr: bytes | None = None
    is_router: bool = False
    probes: int = 0
    updated: float = 0.0
    src_hint: bytes | None = None
    queue: deque[bytes] = field(default_factory=deque)


class NeighborCache:
    """The neighbor cache of one interface (see module docstring)."""

    def __init__(
        self,
        ctx: StackContext,
        solicit: Solicit,
        on_router_lost: Callable[[bytes, float], None] | None = None,
    ) -> None:
        self._ctx = ctx
        self._solicit = solicit
        self._on_router_lost = on_router_lost
        self.entries: dict[bytes, NeighborEntry] = {}
        self._eth_tail = ctx.mac + ETHERTYPE_IPV6.to_bytes(2, "big")

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, addr: bytes) -> NeighborEntry | None:
        return self.entries.get(addr)

    def state(self, addr: bytes) -> NudState | None:
        e = self.entries.get(addr)
        return e.state if e is not None else None

    # --- the table -------------------------------------------------------------------------

    def _next(self, entry: NeighborEntry | None, event: NudEvent) -> NudState | None:
        row = TRANSITIONS[entry.state if entry is not None else None]
        try:
            return row[event]
        except KeyError:
            state = entry.state.value if entry is not None else "no entry"
            raise IllegalTransition(f"NUD: {event.value} in {state}") from None

    # --- sending -----------------------------------------------------------------------------

    def output(self, addr: bytes, packets: list[bytes], src: bytes, now: float) -> list[bytes]:
        """Frames for ``packets`` (IPv6 packets to neighbor ``addr``), resolving if needed."""
        entry = self.entries.get(addr)
        if entry is not None:
            st = entry.state
            lladdr = entry.lladdr
            if st in _SEND_KEEPS:
                assert lladdr is not None
                head = lladdr + self._eth_tail
                return [head + p for p in packets]
            if st is _STALE:
                nxt = self._next(entry, _E.SEND)  # -> DELAY (§7.3.3)
                assert nxt is not None and lladdr is not None
                entry.state = nxt
                entry.updated = now
                self._ctx.timers.set(("nud", addr), now + c.DELAY_FIRST_PROBE_TIME)
                head = lladdr + self._eth_tail
                return [head + p for p in packets]
        out: list[bytes] = []
        if entry is None:
            self._next(None, _E.SEND)
            entry = self._create(addr, _S.INCOMPLETE, None, now)
            entry.src_hint = src
            entry.probes = 1
            ns = self._solicit(addr, None, src)
            if ns is not None:
                self._ctx.counters["nd.ns_sent"] += 1
                out.append(ns)
            self._ctx.timers.set(("nud", addr), now + self._ctx.params.retrans_timer)
        self._enqueue(entry, packets)
        return out

    def _enqueue(self, entry: NeighborEntry, packets: list[bytes]) -> None:
        limit = self._ctx.config.neighbor_queue_len
        q = entry.queue
        for p in packets:
            if len(q) >= limit:
                q.popleft()  # §7.2.2: the new arrival replaces the oldest
                self._ctx.drop(DropReason.QUEUE_FULL)
            q.append(p)

    def _flush(self, entry: NeighborEntry, now: float) -> list[bytes]:
        """Send what waited for resolution; sending moves a STALE entry to DELAY (§7.3.3)."""
        if not entry.queue or entry.lladdr is None:
            return []
        head = entry.lladdr + self._eth_tail
        out = [head + p for p in entry.queue]
        entry.queue.clear()
        if self._next(entry, _E.SEND) is _S.DELAY and entry.state is _S.STALE:
            entry.state = _S.DELAY
            self._ctx.timers.set(("nud", entry.address), now + c.DELAY_FIRST_PROBE_TIME)
        return out

    # --- timers ------------------------------------------------------------------------------

    def on_timer(self, addr: bytes, now: float) -> list[bytes]:
        entry = self.entries.get(addr)
        if entry is None:
            return []
        st = entry.state
        if st is _S.INCOMPLETE:
            exhausted = entry.probes >= c.MAX_MULTICAST_SOLICIT
        elif st is _S.PROBE:
            exhausted = entry.probes >= c.MAX_UNICAST_SOLICIT
        else:
            exhausted = False
        event = _E.RETRIES_EXHAUSTED if exhausted else _E.TIMEOUT
        nxt = self._next(entry, event)
        if nxt is None:
            return self._fail(entry, now)
        timers = self._ctx.timers
        params = self._ctx.params
        entry.state = nxt
        entry.updated = now
        out: list[bytes] = []
        if nxt is _S.INCOMPLETE or nxt is _S.PROBE:
            if st is _S.DELAY:
                entry.probes = 0
            entry.probes += 1
            unicast = entry.lladdr if nxt is _S.PROBE else None
            ns = self._solicit(addr, unicast, entry.src_hint)
            if ns is not None:
                self._ctx.counters["nd.ns_sent"] += 1
                out.append(ns)
            timers.set(("nud", addr), now + params.retrans_timer)
        # REACHABLE --TIMEOUT--> STALE: no timer (§7.3.3)
        return out

    def _fail(self, entry: NeighborEntry, now: float) -> list[bytes]:
        """§7.2.2 / §7.3.3: resolution or probing failed — the entry is deleted."""
        self._ctx.counters["nud.failed"] += 1
        if entry.queue:
            self._ctx.drop(DropReason.ADDRESS_UNREACHABLE, len(entry.queue))
        self._ctx.event(now, "nud.failed", entry.address, entry.state.value)
        self._delete(entry, now)
        return []

    def _delete(self, entry: NeighborEntry, now: float) -> None:
        del self.entries[entry.address]
        self._ctx.timers.cancel(("nud", entry.address))
        if entry.is_router and self._on_router_lost is not None:
            self._on_router_lost(entry.address, now)

    # --- learning ----------------------------------------------------------------------------

    def on_lladdr(
        self, addr: bytes, lladdr: bytes, now: float, *, is_router: bool | None = None
    ) -> list[bytes]:
        """A link-layer address learnt from NS SLLA (§7.2.3), RA SLLA (§6.3.4) or Redirect
        TLLA (§8.3): create as STALE, or set STALE if it changed; unchanged otherwise."""
        entry = self.entries.get(addr)
        same = entry is not None and entry.lladdr == lladdr
        event = _E.LLADDR_SAME if same else _E.LLADDR_CHANGED
        nxt = self._next(entry, event)
        out: list[bytes] = []
        if entry is None:
            entry = self._create(addr, _S.STALE, lladdr, now)
        elif not same:
            was_incomplete = entry.state is _S.INCOMPLETE
            entry.lladdr = lladdr
            assert nxt is not None
            self._enter(entry, nxt, now)
            if was_incomplete:
                out = self._flush(entry, now)
        if is_router is not None:
            self._set_router(entry, is_router, now)
        return out

    def on_advertisement(
        self,
        target: bytes,
        *,
        solicited: bool,
        override: bool,
        router: bool,
        tlla: bytes | None,
        now: float,
    ) -> list[bytes]:
        """NA processing of RFC 4861 §7.2.5 for an existing entry (no entry: ignored)."""
        entry = self.entries.get(target)
        if entry is None:
            self._ctx.counters["nd.na_no_entry"] += 1  # §7.2.5: silently discarded
            return []
        if entry.state is _S.INCOMPLETE:
            if tlla is None:  # §7.2.5: "If no Target Link-Layer Address option ... discard"
                self._ctx.counters["nd.na_no_tlla"] += 1
                return []
            event = _E.SOLICITED_CONFIRM if solicited else _E.LLADDR_CHANGED
            nxt = self._next(entry, event)
            assert nxt is not None
            entry.lladdr = tlla
            self._enter(entry, nxt, now)
            self._set_router(entry, router, now)
            return self._flush(entry, now)
        differs = tlla is not None and tlla != entry.lladdr
        if not override and differs:
            event = _E.NA_CONFLICT
        elif solicited:
            event = _E.SOLICITED_CONFIRM
        elif differs:
            event = _E.LLADDR_CHANGED
        else:
            event = _E.LLADDR_SAME
        nxt = self._next(entry, event)
        assert nxt is not None
        if event is not _E.NA_CONFLICT:
            if differs:
                entry.lladdr = tlla
            self._set_router(entry, router, now)  # §7.2.5: IsRouter from the R flag
        if nxt is not entry.state or event is _E.SOLICITED_CONFIRM:
            self._enter(entry, nxt, now)
        return []

    def mark_router(self, addr: bytes) -> None:
        """§6.3.4: an RA without SLLA still sets IsRouter on an existing entry."""
        entry = self.entries.get(addr)
        if entry is not None:
            entry.is_router = True

    def confirm(self, addr: bytes, now: float) -> None:
        """Upper-layer reachability confirmation (§7.3.1)."""
        entry = self.entries.get(addr)
        if entry is None or entry.state is _S.INCOMPLETE:
            return
        nxt = self._next(entry, _E.UPPER_CONFIRM)
        assert nxt is not None
        self._enter(entry, nxt, now)

    def _enter(self, entry: NeighborEntry, state: NudState, now: float) -> None:
        entry.state = state
        entry.updated = now
        entry.probes = 0
        key = ("nud", entry.address)
        if state is _S.REACHABLE:
            self._ctx.timers.set(key, now + self._ctx.params.reachable_time)
        elif state is _S.STALE:
            self._ctx.timers.cancel(key)

    def _set_router(self, entry: NeighborEntry, is_router: bool, now: float) -> None:
        was = entry.is_router
        entry.is_router = is_router
        if was and not is_router and self._on_router_lost is not None:
            self._on_router_lost(entry.address, now)  # §7.2.5 IsRouter TRUE -> FALSE

    # --- bookkeeping ---------------------------------------------------------------------------

    def _create(
        self, addr: bytes, state: NudState, lladdr: bytes | None, now: float
    ) -> NeighborEntry:
        if len(self.entries) >= self._ctx.config.neighbor_cache_size:
            self._evict(now)
        entry = NeighborEntry(addr, state, lladdr, updated=now)
        self.entries[addr] = entry
        return entry

    def _evict(self, now: float) -> None:
        victim: NeighborEntry | None = None
        for e in self.entries.values():
            if victim is None:
                victim = e
                continue
            stale_e, stale_v = e.state is _S.STALE, victim.state is _S.STALE
            if (stale_e and not stale_v) or (stale_e == stale_v and e.updated < victim.updated):
                victim = e
        assert victim is not None
        self._ctx.counters["nud.evicted"] += 1
        if victim.queue:
            self._ctx.drop(DropReason.QUEUE_FULL, len(victim.queue))
        self._delete(victim, now)

    def remove(self, addr: bytes, now: float) -> None:
        entry = self.entries.get(addr)
        if entry is not None:
            if entry.queue:
                self._ctx.drop(DropReason.ADDRESS_UNREACHABLE, len(entry.queue))
            self._delete(entry, now)
