"""MLDv2 host side (RFC 3810 §6, §7 host parts), with MLDv1 compatibility (§8.2.1).

Theory of operation: groups are joined by reference count (the solicited-node group of a
link-local and of a global address from the same interface identifier is one group). ff02::1 is
always joined and never reported (RFC 3810 §6: no MLD messages for the link-scope all-nodes
address, nor for scopes 0 and 1). A group joined from no listener is an any-source listener,
i.e. filter mode EXCLUDE with no sources.

* **State changes** (§6.1): a join sends a State Change Report with CHANGE_TO_EXCLUDE_MODE {}
  and a leave one with CHANGE_TO_INCLUDE_MODE {}; each is retransmitted [Robustness Variable] − 1
  more times at random intervals in (0, [Unsolicited Report Interval]]. A join may be delayed
  (RFC 4862 §5.4.2 delays the first report of an interface like its DAD probe).
* **Queries** (§6.2): a General Query schedules one response for the interface state at a random
  delay in [0, Maximum Response Delay] unless one is already due sooner; a Multicast Address
  (and Source) Specific Query for a joined group schedules a per-group response — at the earlier
  of the pending and the new time, with the queried sources merged or cleared per rules 3–4 —
  unless a General Query response is due first (rule 1). Current-state records are
  MODE_IS_EXCLUDE {} (or MODE_IS_INCLUDE with the queried sources for a source-specific query,
  §6.3). A Query's QRV, when non-zero, becomes our Robustness Variable (§9.1, as Linux does).
  Queries must come from a link-local source (§5.1.14).
* **MLDv1 querier** (§8.2.1): an MLDv1 Query switches the interface to MLDv1 mode for the Older
  Version Querier Present Timeout; then reports are MLDv1 Reports sent to the group, leaves are
  Done messages to ff02::2, and queries are answered per group.

Every report goes from our link-local address — or :: while it is tentative (§5.2.13) — with
hop limit 1 and a Router Alert option (§5), to ff02::16 (§5.2.14).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from tcpip6.stack import constants as c
from tcpip6.stack.context import StackContext
from tcpip6.wire import ipv6, mld
from tcpip6.wire.ethernet import ETHERTYPE_IPV6, ipv6_multicast_mac, pack_header
from tcpip6.wire.ipv6 import ALL_NODES, NH_HOPOPTS, NH_ICMPV6
from tcpip6.wire.ipv6ext import hop_by_hop_router_alert
from tcpip6.wire.mld import (
    ALL_MLDV2_ROUTERS,
    CHANGE_TO_EXCLUDE_MODE,
    CHANGE_TO_INCLUDE_MODE,
    MLD_HOP_LIMIT,
    MODE_IS_EXCLUDE,
    MODE_IS_INCLUDE,
    MldQuery,
    MulticastRecord,
)

ALL_NODES_MAC = ipv6_multicast_mac(ALL_NODES)
_HBH = hop_by_hop_router_alert(NH_ICMPV6)
_MLDV2_MAC = ipv6_multicast_mac(ALL_MLDV2_ROUTERS)
_V1_ROUTERS_MAC = ipv6_multicast_mac(mld.ALL_ROUTERS)
_MAX_SOURCES = 64  # queried sources remembered per group; beyond, a group report answers all


def reportable(group: bytes) -> bool:
    """RFC 3810 §6: never for ff02::1 nor for multicast scopes 0 (reserved) and 1."""
    return group != ALL_NODES and (group[1] & 0x0F) > 1


class MldHost:
    """The multicast listener state of one interface (see module docstring)."""

    def __init__(self, ctx: StackContext, source: Callable[[], bytes]) -> None:
        self._ctx = ctx
        self._source = source
        self.groups: dict[bytes, int] = {}
        self.generation = 0
        self.robustness = ctx.config.mld_robustness
        self._macs: list[bytes] = [ALL_NODES_MAC]
        self._changes: dict[bytes, list[int]] = {}  # group -> [record type, sends left]
        self._queried_sources: dict[bytes, set[bytes]] = {}  # group-and-source queries
        self._v1_until = -c.INFINITY
        self.started = False

    # --- membership ------------------------------------------------------------------------

    def joined(self, group: bytes) -> bool:
        return group == ALL_NODES or group in self.groups

    def macs(self) -> list[bytes]:
        return list(self._macs)

    def start(self, now: float, delay: float) -> list[bytes]:
        """Interface up: report every group joined so far, the first report after ``delay``."""
        self.started = True
        out: list[bytes] = []
        for g in self.groups:
            out += self._state_change(g, CHANGE_TO_EXCLUDE_MODE, now, delay)
        return out

    def report_all(self, now: float) -> list[bytes]:
        """One current-state report of every group now (RFC 3590 §4: after the link-local
        address became valid, repeat what was reported from ::)."""
        if now < self._v1_until:
            return self._current_state(list(self.groups), now)
        groups = [g for g in self.groups if reportable(g)]
        if not groups:
            return []
        self._ctx.counters["mld.state_change_reports"] += 1
        return [self._v2_frame([MulticastRecord(CHANGE_TO_EXCLUDE_MODE, g) for g in groups])]

    def join(self, group: bytes, now: float) -> list[bytes]:
        """Add a listener; the first one sends a State Change Report (once started)."""
        if group == ALL_NODES:
            return []
        n = self.groups.get(group, 0)
        self.groups[group] = n + 1
        if n:
            return []
        self._refresh_macs()
        if not self.started:
            return []
        return self._state_change(group, CHANGE_TO_EXCLUDE_MODE, now, 0.0)

    def leave(self, group: bytes, now: float) -> list[bytes]:
        """Drop a listener; the last one sends a State Change Report (TO_IN {})."""
        n = self.groups.get(group, 0)
        if n == 0:
            return []
        if n > 1:
            self.groups[group] = n - 1
            return []
        del self.groups[group]
        self._refresh_macs()
        self._ctx.timers.cancel(("mld.group", group))
        self._queried_sources.pop(group, None)
        if not self.started:
            self._changes.pop(group, None)
            return []
        return self._state_change(group, CHANGE_TO_INCLUDE_MODE, now, 0.0)

    def _refresh_macs(self) -> None:
        macs = [ALL_NODES_MAC]
        seen = {ALL_NODES_MAC}
        for g in self.groups:
            m = ipv6_multicast_mac(g)
            if m not in seen:
                seen.add(m)
                macs.append(m)
        if macs != self._macs:
            self._macs = macs
            self.generation += 1

    def _state_change(self, group: bytes, rtype: int, now: float, delay: float) -> list[bytes]:
        if not reportable(group):
            return []
        key = ("mld.change", group)
        if delay > 0:
            self._changes[group] = [rtype, self.robustness]
            self._ctx.timers.set(key, now + delay)
            return []
        self._changes[group] = [rtype, self.robustness - 1]
        out = self._send_change(group, rtype, now)
        if self.robustness > 1:
            self._ctx.timers.set(key, now + self._retransmit_delay())
        else:
            del self._changes[group]
        return out

    def _retransmit_delay(self) -> float:
        uri = self._ctx.config.mld_unsolicited_report_interval
        return uri - self._ctx.rng.uniform(0.0, uri)  # in (0, URI]

    def _send_change(self, group: bytes, rtype: int, now: float) -> list[bytes]:
        self._ctx.counters["mld.state_change_reports"] += 1
        if now < self._v1_until:
            if rtype == CHANGE_TO_INCLUDE_MODE:
                return [self._v1_frame(mld.done(self._source(), group), mld.ALL_ROUTERS)]
            return [self._v1_frame(mld.report_v1(self._source(), group), group)]
        return [self._v2_frame([MulticastRecord(rtype, group)])]

    # --- queries ------------------------------------------------------------------------------

    def on_query(self, q: MldQuery, now: float) -> list[bytes]:
        """Schedule the response(s) to a validated Query (RFC 3810 §6.2)."""
        ctx = self._ctx
        ctx.counters["mld.queries_rx"] += 1
        timers = ctx.timers
        delay = ctx.rng.uniform(0.0, q.max_response_delay)
        when = now + delay
        if q.version == 1:
            self._v1_until = now + (
                self.robustness * c.QUERY_INTERVAL + c.QUERY_RESPONSE_INTERVAL
            )  # §8.2.1 Older Version Querier Present Timeout
            groups = list(self.groups) if q.group == ipv6.UNSPECIFIED else [q.group]
            for g in groups:
                if g in self.groups and reportable(g):
                    key = ("mld.group", g)
                    due = timers.get(key)
                    # RFC 2710 §4: a fresh random delay unless the pending one is sooner
                    d = now + ctx.rng.uniform(0.0, q.max_response_delay)
                    timers.set(key, d if due is None else min(due, d))
            return []
        if q.qrv:
            self.robustness = q.qrv
        general = timers.get(("mld.general",))
        if q.group == ipv6.UNSPECIFIED:
            if general is None or general > when:  # rule 1 / rule 2
                timers.set(("mld.general",), when)
            return []
        if q.group not in self.groups or not reportable(q.group):
            ctx.counters["mld.query_not_joined"] += 1
            return []
        if general is not None and general <= when:  # rule 1
            return []
        key = ("mld.group", q.group)
        pending = timers.get(key)
        if pending is None:  # rule 3
            timers.set(key, when)
            if q.sources:
                self._queried_sources[q.group] = set(q.sources)
            return []
        recorded = self._queried_sources.get(q.group)  # rule 4
        if not q.sources or not recorded or len(recorded) + len(q.sources) > _MAX_SOURCES:
            self._queried_sources.pop(q.group, None)  # (too many: answer for the group)
        else:
            recorded.update(q.sources)
        timers.set(key, min(pending, when))
        return []

    # --- timers -------------------------------------------------------------------------------

    def on_timer(self, key: Hashable, now: float) -> list[bytes]:
        assert isinstance(key, tuple)
        tag = key[0]
        if tag == "mld.change":
            group = key[1]
            change = self._changes.get(group)
            if change is None:
                return []
            rtype, left = change
            out = self._send_change(group, rtype, now)
            left -= 1
            if left > 0:
                change[1] = left
                self._ctx.timers.set(key, now + self._retransmit_delay())
            else:
                del self._changes[group]
            return out
        if tag == "mld.general":
            return self._current_state(list(self.groups), now)
        if tag == "mld.group":
            group = key[1]
            if group not in self.groups:
                return []
            if now < self._v1_until:
                self._ctx.counters["mld.reports_v1"] += 1
                return [self._v1_frame(mld.report_v1(self._source(), group), group)]
            srcs = self._queried_sources.pop(group, None)
            if srcs:
                rec = MulticastRecord(MODE_IS_INCLUDE, group, tuple(sorted(srcs)))
                self._ctx.counters["mld.current_state_reports"] += 1
                return [self._v2_frame([rec])]
            return self._current_state([group], now)
        return []

    def _current_state(self, groups: list[bytes], now: float) -> list[bytes]:
        records = [MulticastRecord(MODE_IS_EXCLUDE, g) for g in groups if reportable(g)]
        if not records:
            return []
        if now < self._v1_until:
            return [self._v1_frame(mld.report_v1(self._source(), r.group), r.group)
                    for r in records]  # fmt: skip
        per = (self._ctx.params.link_mtu - 40 - 8 - mld.REPORT_HEADER_LEN) // (
            mld.RECORD_HEADER_LEN
        )
        out = []
        for i in range(0, len(records), per):
            self._ctx.counters["mld.current_state_reports"] += 1
            out.append(self._v2_frame(records[i : i + per]))
        return out

    # --- frames ---------------------------------------------------------------------------------

    def _v2_frame(self, records: list[MulticastRecord]) -> bytes:
        src = self._source()
        icmp = mld.report_v2(src, records)
        self._ctx.counters["mld.reports_sent"] += 1
        return pack_header(_MLDV2_MAC, self._ctx.mac, ETHERTYPE_IPV6) + ipv6.packet(
            src, ALL_MLDV2_ROUTERS, NH_HOPOPTS, MLD_HOP_LIMIT, _HBH + icmp
        )

    def _v1_frame(self, icmp: bytes, dst: bytes) -> bytes:
        src = self._source()
        self._ctx.counters["mld.reports_sent"] += 1
        mac = _V1_ROUTERS_MAC if dst == mld.ALL_ROUTERS else ipv6_multicast_mac(dst)
        return pack_header(mac, self._ctx.mac, ETHERTYPE_IPV6) + ipv6.packet(
            src, dst, NH_HOPOPTS, MLD_HOP_LIMIT, _HBH + icmp
        )
