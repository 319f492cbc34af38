"""What every part of one interface's host stack shares: configuration, link parameters, the
timer queue, counters, the injected random generator and the event log.

Theory of operation: :class:`HostConfig` is frozen and validated once (bad values raise
:class:`tcpip6.errors.ConfigError`). :class:`LinkParams` holds the variables that Router
Advertisements may change at run time (RFC 4861 §6.3.2: CurHopLimit, BaseReachableTime,
ReachableTime, RetransTimer, LinkMTU). :class:`StackContext` bundles them with the
:class:`~tcpip6.stack.timers.TimerQueue`, the ``Counter`` and the random generator
(:class:`Rng`) so that components (neighbor cache, address configuration, MLD, router
discovery, reassembly) stay free of I/O, clocks and global randomness. Things worth a log line
(a duplicate address, a router gone) become :class:`HostEvent` records in a bounded list that
the driver drains (:meth:`tcpip6.stack.host.Ipv6Host.pop_events`) and logs; the core never
logs itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Protocol

from tcpip6.counters import Counters
from tcpip6.errors import ConfigError
from tcpip6.stack import constants as c
from tcpip6.stack.timers import TimerQueue
from tcpip6.wire.drops import DropReason


class Rng(Protocol):
    """What the stack draws from: `random.Random` qualifies, and so does the emulation's
    lighter per-adapter generator (`ndisemu.rng.SplitMix64`)."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...

    def getrandbits(self, k: int) -> int: ...

    def randint(self, a: int, b: int) -> int: ...


class IidMode(Enum):
    """How interface identifiers are formed for SLAAC and the link-local address."""

    EUI64 = "eui64"  # modified EUI-64 from the MAC (RFC 4291 App. A)
    STABLE = "stable"  # RFC 7217 semantically opaque, stable per prefix


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """TCP knobs (:mod:`tcpip6.stack.tcp`). Defaults are the RFC values; the few that are our
    choice say so. Sizes are bytes, times seconds.

    ``rto_min`` is RFC 6298's 1 s by default; a LAN may use less (Linux 0.2 s, Windows 0.3 s).
    Keep it above the peer's delayed-ACK time plus the RTT, or a lone segment times out before
    its delayed ACK comes (our own ``delayed_ack`` is 0.2 s: 0.3 s suits two of these hosts).
    """

    send_buffer: int = 256 * 1024  # bound of each connection's send buffer
    recv_buffer: int = 256 * 1024  # bound of the receive buffer = the largest window offered
    window_scaling: bool = True  # RFC 7323 §2
    timestamps: bool = True  # RFC 7323 §3 (RTTM and PAWS)
    sack: bool = True  # RFC 2018 SACK-permitted; sender use per RFC 6675
    nodelay: bool = False  # default TCP_NODELAY of new connections (Nagle on, RFC 9293 §3.7.4)
    delayed_ack: float = c.TCP_DELAYED_ACK  # 0 acks every segment at once
    rto_initial: float = c.TCP_RTO_INITIAL  # RFC 6298 §2.1
    rto_min: float = c.TCP_RTO_MIN  # RFC 6298 §2.4; e.g. 0.2 on a LAN, as Linux does
    rto_max: float = c.TCP_RTO_MAX  # RFC 6298 §2.5: at least 60 s
    syn_retries: int = 6  # SYN retransmissions before an active open gives up
    synack_retries: int = 5  # SYN-ACK retransmissions before an embryonic connection goes
    max_retries: int = 15  # data retransmissions before giving up (RFC 9293 §3.8.3 R2)
    time_wait: float = 2 * c.TCP_MSL  # 2*MSL (RFC 9293 §3.4.2)
    fin_wait_2_timeout: float = 60.0  # an orphaned FIN-WAIT-2 (closed by the app) ends after
    syn_backlog: int = 128  # embryonic (SYN-RECEIVED) connections per listener
    # Connections of one interface in every state, TIME-WAIT included (our choice; Linux bounds
    # TIME-WAIT alone, tcp_max_tw_buckets). At the bound a SYN is dropped (counted) and an
    # active open fails (ENOBUFS), so a flood of connections costs bounded memory.
    max_connections: int = 4096
    ooo_max_segments: int = 256  # out-of-order queue bound (merged blocks)
    congestion_control: str = "newreno"  # a name in tcpip6.stack.tcpcc.ALGORITHMS ("cubic")
    initial_window: int = 0  # segments; 0 = RFC 5681 §3.1's rule (3 or 4 segments)
    dup_thresh: int = c.TCP_DUP_THRESH  # RFC 5681 §3.2, RFC 6675 DupThresh
    challenge_ack_limit: int = 1000  # per second (RFC 5961 §7)
    limited_transmit: bool = True  # RFC 3042

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, int | float) and not isinstance(v, bool) and v < 0:
                raise ConfigError(f"tcp.{f.name} must not be negative")
        for name in ("send_buffer", "recv_buffer", "syn_backlog", "ooo_max_segments",
                     "dup_thresh", "challenge_ack_limit", "max_connections"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"tcp.{name} must be >= 1")
        if self.recv_buffer > 0x3FFFFFFF or self.send_buffer > 0x3FFFFFFF:
            raise ConfigError("tcp buffers must stay below 2**30 (RFC 7323 §2.3)")
        if not 0 < self.rto_min <= self.rto_initial <= self.rto_max:
            raise ConfigError("tcp: need 0 < rto_min <= rto_initial <= rto_max")
        if self.delayed_ack > 0.5:
            raise ConfigError("tcp.delayed_ack must be <= 0.5 s (RFC 9293 §3.8.6.3 MUST-40)")


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Per-interface knobs; defaults are the RFC values (``tcpip6.stack.constants``)."""

    hop_limit: int = 64  # CurHopLimit default for originated packets
    iid_mode: IidMode = IidMode.EUI64
    stable_secret: bytes = b""  # RFC 7217 secret_key (>= 16 bytes required in STABLE mode)
    network_id: bytes = b""  # RFC 7217 Network_ID (optional)
    dad_transmits: int = c.DUP_ADDR_DETECT_TRANSMITS  # 0 disables DAD (RFC 4862 §5.1)
    retrans_timer: float = c.RETRANS_TIMER
    base_reachable_time: float = c.REACHABLE_TIME
    startup_delay: bool = True  # random delays before the first RS / DAD / MLD report
    accept_ra: bool = True
    autoconf: bool = True  # SLAAC from Prefix Information options with A=1
    max_rtr_solicitations: int = c.MAX_RTR_SOLICITATIONS
    rtr_solicitation_interval: float = c.RTR_SOLICITATION_INTERVAL
    max_rtr_solicitation_delay: float = c.MAX_RTR_SOLICITATION_DELAY
    neighbor_cache_size: int = 256
    neighbor_queue_len: int = 16  # packets queued per INCOMPLETE entry (RFC 4861 §7.2.2)
    destination_cache_size: int = 256
    max_routers: int = 8
    max_prefixes: int = 16
    max_addresses: int = 16
    reassembly_timeout: float = c.REASSEMBLY_TIMEOUT
    reassembly_max_datagrams: int = 64
    reassembly_max_bytes: int = 256 * 1024
    mld_robustness: int = c.ROBUSTNESS_VARIABLE
    mld_unsolicited_report_interval: float = c.UNSOLICITED_REPORT_INTERVAL
    icmp_error_rate: float = 10.0  # tokens per second (RFC 4443 §2.4 f)
    icmp_error_burst: int = 10
    udp_queue_len: int = 64
    udp_echo: bool = True  # RFC 862 echo service on port 7
    disable_on_duplicate_lladdr: bool = True  # RFC 4862 §5.4.5 for a MAC-derived link-local
    # Bounded work per frame: Linux's limits (checked against kernel 6.18 by
    # `tcpip6-lab bench conformance`, docs/conformance.md). Non-padding options per Hop-by-Hop /
    # Destination Options header: net.ipv6.max_hbh_opts_number / max_dst_opts_number (8).
    max_hbh_options: int = 8
    max_dst_options: int = 8
    # Header lengths in bytes: net.ipv6.max_hbh_length / max_dst_opts_length (INT_MAX: none).
    max_hbh_length: int = 0x7FFFFFFF
    max_dst_length: int = 0x7FFFFFFF
    # Consecutive padding bytes (Pad1/PadN) in an options header: 7, the most that aligning
    # needs (RFC 8200 §4.2; RFC 4942 §2.1.9.5); Linux's ip6_parse_tlv has the same constant.
    max_padding: int = 7
    # Extension headers per packet: Linux 6.18 processes at most 12 and silently drops a packet
    # with a 13th, whatever their types (measured by the harness; no sysctl).
    max_ext_headers: int = 12
    tcp: TcpConfig = field(default_factory=TcpConfig)
    # Task offload the interface's NIC took on (tcpip6 enables it at bind; ndisemu/offload.py,
    # an extension to NDIS 5.1 for IPv6): TCP checksums left partial for the NIC to finish, and
    # large sends of up to `lso_max_size` payload bytes (0: none) that make at least
    # `lso_min_segments` segments (NDIS_TASK_TCP_LARGE_SEND's MaxOffLoadSize/MinSegmentCount).
    tx_checksum_offload: bool = False
    lso_max_size: int = 0
    lso_min_segments: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.hop_limit <= 255:
            raise ConfigError(f"hop_limit must be 1..255, not {self.hop_limit}")
        if self.iid_mode is IidMode.STABLE and len(self.stable_secret) < 16:
            raise ConfigError("stable interface identifiers need a secret of >= 16 bytes")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, int | float) and not isinstance(v, bool) and v < 0:
                raise ConfigError(f"{f.name} must not be negative")
        for name in ("neighbor_cache_size", "neighbor_queue_len", "reassembly_max_datagrams",
                     "mld_robustness", "icmp_error_burst", "udp_queue_len",
                     "destination_cache_size", "max_hbh_length", "max_dst_length",
                     "max_ext_headers"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.retrans_timer <= 0 or self.base_reachable_time <= 0:
            raise ConfigError("retrans_timer and base_reachable_time must be > 0")


@dataclass(slots=True)
class LinkParams:
    """RFC 4861 §6.3.2 host variables (RA-updatable) and the link MTU."""

    cur_hop_limit: int
    base_reachable_time: float
    reachable_time: float
    retrans_timer: float
    link_mtu: int
    max_link_mtu: int  # what the NIC can do; an RA MTU option may only lower it


@dataclass(frozen=True, slots=True)
class HostEvent:
    """Something a driver should log: ``kind`` is a stable dotted name (``dad.duplicate``)."""

    now: float
    kind: str
    address: bytes | None = None
    detail: str = ""


EVENTS_KEPT = 256  # undrained HostEvents kept per interface


class StackContext:
    """Shared by the components of one interface's stack (see module docstring)."""

    __slots__ = ("config", "counters", "events", "mac", "params", "rng", "timers")

    def __init__(self, mac: bytes, mtu: int, rng: Rng, config: HostConfig) -> None:
        self.mac = mac
        self.rng = rng
        self.config = config
        self.timers = TimerQueue()
        self.counters: Counter[str] = Counters()
        #: log-worthy events not yet drained (at most EVENTS_KEPT, oldest first)
        self.events: list[HostEvent] = []
        self.params = LinkParams(
            cur_hop_limit=config.hop_limit,
            base_reachable_time=config.base_reachable_time,
            reachable_time=self.randomized_reachable_time(config.base_reachable_time),
            retrans_timer=config.retrans_timer,
            link_mtu=mtu,
            max_link_mtu=mtu,
        )

    def randomized_reachable_time(self, base: float) -> float:
        """RFC 4861 §6.3.2: uniformly between MIN_RANDOM_FACTOR and MAX_RANDOM_FACTOR × base."""
        return base * self.rng.uniform(c.MIN_RANDOM_FACTOR, c.MAX_RANDOM_FACTOR)

    def event(self, now: float, kind: str, address: bytes | None = None, detail: str = "") -> None:
        self.counters["event." + kind] += 1
        events = self.events
        events.append(HostEvent(now, kind, address, detail))
        if len(events) > EVENTS_KEPT:
            del events[0]

    def drop(self, reason: DropReason, n: int = 1) -> list[bytes]:
        self.counters["drop." + reason] += n
        return []
