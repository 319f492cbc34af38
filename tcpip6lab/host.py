"""An emulated Windows Server 2003 host on a virtual wire, and its peer.

Assembles one kernel (executive + NDIS + PnP), the tcpip6 binder with a chosen executor, the
IPv4 contrast binder, the system heartbeat, foreign holders of critical workers and the hang
detector; each adapter is cabled by an in-memory wire to a port of an emulated peer host that
can ping it over IPv6 and IPv4.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from faults.detector import Deadlock, HangDetector
from faults.injector import FaultInjector
from faults.plan import FaultPlan
from ndisemu.constants import NdisStatus
from ndisemu.errors import ConfigError
from ndisemu.kernel import Kernel
from ndisemu.miniport import MiniportConfig, WireEnd
from ndisemu.ndis import Ndis
from ndisemu.params import SYSTEM_QUEUES, ExecutiveParams, check_field_types
from ndisemu.pcap import PcapWriter
from ndisemu.pnp import Pnp
from ndisemu.system import ForeignHolder, Heartbeat
from ndisemu.trace import Tracer
from ndisemu.wire import MemoryWire, MemoryWireEnd
from tcpip6.binder import BindPhase, Tcpip6Binder, Tcpip6Binding
from tcpip6.executors import ExecutorContext, RescuerExecutor
from tcpip6.ipv4 import Ipv4Binder
from tcpip6.registry import is_executor_subclass, make_executor, resolve
from tcpip6.sockets import HostSockets
from tcpip6.stack.context import HostConfig
from tcpip6.stack.peer import PeerPort
from tcpip6.wire.ipv6 import link_local_from_mac

#: IPv4 addresses for the contrast binder come from 198.18.0.0/15 (RFC 2544 benchmarking
#: range): adapter i is .4i+1, its peer .4i+2. Only ever used on emulated or namespaced wires.
IPV4_BASE = int(ipaddress.IPv4Address("198.18.0.0"))


@dataclass(frozen=True)
class ModelParams:
    """Every parameter of one emulated host. Sources: ndisemu.params and docs/model.md."""

    executive: ExecutiveParams = field(default_factory=ExecutiveParams)
    executor: str = "critical"  # a spec as given: a name or MODULE:ATTR (tcpip6.registry)
    dedicated_threads: int = 1
    mayday_initial: float = 0.010
    mayday_interval: float = 0.100
    latency: float = 0.002
    latency_jitter: float = 0.5
    # OID_802_3_MAXIMUM_LIST_SIZE of every miniport; tcpip6 needs 2 entries (all-nodes and
    # one solicited-node group), so 0 or 1 makes its bind fail with MULTICAST_FULL.
    multicast_list_size: int = 32
    mtu: int = 1500  # every adapter's MTU (OID_GEN_MAXIMUM_FRAME_SIZE); a TAP device gets it too
    completion_queue: str = "critical"
    completion_via: str = "tcpip6"
    rx_queue: str = "critical"
    # Other components' blocked critical workers (nt-model §6 step 4, K ≈ 2; docs/model.md).
    foreign_holders: int = 2
    foreign_hold: float = 5.0
    heartbeat_interval: float = 0.25
    ndis_dispatch_queue: str = "delayed"
    wire_delay: float = 50e-6
    ipv4: bool = True
    # The IPv6 stack of each interface (tcpip6/stack): DAD probes per address (RFC 4862 §5.1;
    # Windows sends 1), no random start-up delay (inferred: the interface starts when its bind
    # completes), and Windows Server 2003's default hop limit of 128.
    ipv6_dad_transmits: int = 1
    ipv6_startup_delay: bool = False
    ipv6_hop_limit: int = 128
    schedule: str = "random"
    pct_depth: int = 3  # with schedule = "pct": priority change points + 1

    def __post_init__(self) -> None:
        check_field_types(self)
        executor = resolve(self.executor)  # a tcpip6 ConfigError naming the spec
        for name in ("completion_queue", "rx_queue", "ndis_dispatch_queue"):
            if getattr(self, name) not in SYSTEM_QUEUES:
                raise ConfigError(f"{name} must be one of {', '.join(SYSTEM_QUEUES)}")
        if self.completion_via not in ("tcpip6", "ndis"):
            raise ConfigError("completion_via must be 'tcpip6' or 'ndis'")
        if self.latency <= 0:
            raise ConfigError(f"latency must be > 0 (got {self.latency})")
        if not 0 <= self.latency_jitter < 1:
            raise ConfigError(f"latency jitter must be in [0, 1) (got {self.latency_jitter})")
        if self.foreign_holders < 0:
            raise ConfigError("foreign holders must be >= 0")
        if self.foreign_hold <= 0 or self.heartbeat_interval <= 0 or self.wire_delay < 0:
            raise ConfigError("foreign_hold and heartbeat_interval must be > 0, wire_delay >= 0")
        if is_executor_subclass(executor, RescuerExecutor) and self.completion_via == "ndis":
            raise ConfigError("the rescuer executor rescues tcpip6's own completion items; "
                              "with completion via ndis there are none (use --completion-via "
                              "tcpip6)")
        if not 1280 <= self.mtu <= 65535:
            raise ConfigError(f"mtu must be in 1280..65535 for IPv6 (got {self.mtu})")
        if self.multicast_list_size < 0:
            raise ConfigError("multicast list size must be >= 0")
        if self.dedicated_threads < 1:
            raise ConfigError("dedicated threads must be >= 1")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(d.pop("executive"))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelParams:
        """The inverse of `as_dict` (a replay header back into parameters)."""
        exec_fields = set(ExecutiveParams.__dataclass_fields__)
        own = set(cls.__dataclass_fields__) - {"executive"}
        unknown = set(d) - exec_fields - own
        if unknown:
            raise ConfigError(f"unknown model parameters: {', '.join(sorted(unknown))}")
        ex = ExecutiveParams(**{k: v for k, v in d.items() if k in exec_fields})
        return cls(executive=ex, **{k: v for k, v in d.items() if k in own})

    def with_(self, **changes: Any) -> ModelParams:
        exec_fields = set(ExecutiveParams.__dataclass_fields__)
        ex = {k: v for k, v in changes.items() if k in exec_fields}
        rest = {k: v for k, v in changes.items() if k not in exec_fields}
        return replace(self, executive=replace(self.executive, **ex), **rest)


def adapter_mac(index: int) -> bytes:
    return bytes([0x02, 0x00, 0x5E, 0x10, (index >> 8) & 0xFF, index & 0xFF])


def peer_mac(index: int) -> bytes:
    return bytes([0x02, 0x00, 0x5E, 0x20, (index >> 8) & 0xFF, index & 0xFF])


def adapter_ipv4(index: int) -> bytes:
    return (IPV4_BASE + 4 * index + 1).to_bytes(4, "big")


def peer_ipv4(index: int) -> bytes:
    return (IPV4_BASE + 4 * index + 2).to_bytes(4, "big")


@dataclass
class PingStats:
    sent: int = 0
    answered: int = 0
    last_sent: float | None = None
    last_answered: float | None = None
    rtts: list[float] = field(default_factory=list)

    def ok_since(self, t: float) -> bool:
        return self.last_answered is not None and self.last_answered >= t


@dataclass(eq=False)
class PeerSide:
    """The peer's port on one adapter's wire."""

    index: int
    adapter: str
    port: PeerPort
    end: MemoryWireEnd
    target6: bytes
    target4: bytes
    v6: PingStats = field(default_factory=PingStats)
    v4: PingStats = field(default_factory=PingStats)
    outstanding: dict[tuple[int, int], float] = field(default_factory=dict)


class EmulatedHost:
    def __init__(
        self,
        params: ModelParams | None = None,
        *,
        seed: int = 0,
        tracer: Tracer | None = None,
        pcap_dir: str | None = None,
        name: str = "host",
        wire_factory: Callable[[MiniportConfig], WireEnd] | None = None,
        plan: FaultPlan | None = None,
        free_running: bool = False,
        workers: str = "tasks",
    ) -> None:
        self.params = p = params or ModelParams()
        self.seed = seed
        self.name = name
        self.kernel = Kernel(p.executive, seed=seed, schedule=p.schedule, tracer=tracer,
                             name=name, pct_depth=p.pct_depth, free_running=free_running,
                             workers=workers)
        self.ndis = Ndis(
            self.kernel,
            dispatch_queue=p.ndis_dispatch_queue,
            completion_queue=p.completion_queue if p.completion_via == "ndis" else None,
        )
        self.pcap_dir = pcap_dir
        self._pcaps: list[PcapWriter] = []
        self.wires: dict[str, MemoryWire] = {}
        self.peers: dict[str, PeerSide] = {}
        self.ipv4_addresses: dict[str, bytes] = {}
        self.pnp = Pnp(self.kernel, self.ndis, wire_factory=wire_factory or self._wire_for)
        if p.ipv4:
            self.ipv4: Ipv4Binder | None = Ipv4Binder(self.kernel, self.ndis,
                                                      self.ipv4_addresses)
            self.ndis.register_protocol(self.ipv4)
        else:
            self.ipv4 = None
        self.executor = make_executor(p.executor, ExecutorContext(
            dedicated_threads=p.dedicated_threads, mayday_initial=p.mayday_initial,
            mayday_interval=p.mayday_interval))
        self.tcpip6 = Tcpip6Binder(
            self.kernel, self.ndis, self.executor,
            completion_queue=p.completion_queue, completion_via=p.completion_via,
            rx_queue=p.rx_queue,
            stack_config=HostConfig(dad_transmits=p.ipv6_dad_transmits,
                                    startup_delay=p.ipv6_startup_delay,
                                    hop_limit=p.ipv6_hop_limit),
        )
        self.ndis.register_protocol(self.tcpip6)
        self.sockets = HostSockets(self.tcpip6)  # the trio socket API of its services
        self.heartbeat = Heartbeat(self.kernel, p.heartbeat_interval)
        self.holders = [ForeignHolder(self.kernel, i, p.foreign_hold)
                        for i in range(p.foreign_holders)]
        self.detector = HangDetector(self.kernel)
        self.plan = plan
        self.faults: FaultInjector | None = None
        if plan is not None:
            self.faults = FaultInjector(plan, self.kernel, seed, self.ndis, self.pnp,
                                        make_config=self._config)
            self.pnp.on_miniport.append(self.faults.attach_miniport)
        self._ping_ident = 0x6c61  # "la"
        self._ping_seq = 0

    # -- set-up ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Boot-time activity: heartbeat and foreign holders (call once the kernel runs)."""
        self.heartbeat.start()
        for h in self.holders:
            h.start()
        if self.faults is not None:
            self.faults.start()

    def adapter_configs(self, count: int, *, first: int = 0) -> list[MiniportConfig]:
        return [self._config(i) for i in range(first, first + count)]

    def _config(self, i: int) -> MiniportConfig:
        p = self.params
        name = f"nic{i:03d}"
        self.ipv4_addresses[name] = adapter_ipv4(i)
        return MiniportConfig(name=name, mac=adapter_mac(i), latency=p.latency,
                              latency_jitter=p.latency_jitter, mtu=p.mtu,
                              multicast_list_size=p.multicast_list_size, tags={"index": i})

    def _wire_for(self, cfg: MiniportConfig) -> MemoryWireEnd:
        index = int(cfg.tags.get("index", len(self.wires)))
        recorder = None
        if self.pcap_dir is not None:
            os.makedirs(self.pcap_dir, exist_ok=True)
            recorder = PcapWriter(os.path.join(self.pcap_dir, f"{self.name}-{cfg.name}.pcap"))
            self._pcaps.append(recorder)
        wire = MemoryWire(self.kernel, cfg.name, delay=self.params.wire_delay,
                          recorder=recorder)
        if self.faults is not None:
            self.faults.attach_wire(wire)
        self.wires[cfg.name] = wire
        port = PeerPort(peer_mac(index), peer_ipv4(index))
        side = PeerSide(index, cfg.name, port, wire.b, link_local_from_mac(cfg.mac),
                        adapter_ipv4(index))
        self.peers[cfg.name] = side
        wire.b.attach(lambda frame: self._peer_rx(side, frame))
        return wire.a

    def close(self) -> None:
        for w in self._pcaps:
            w.close()
        self._pcaps.clear()

    # -- the peer ----------------------------------------------------------------------------------

    def _peer_rx(self, side: PeerSide, frame: bytes) -> None:
        now = self.kernel.now
        for out in side.port.handle_frame(frame, now):
            side.end.transmit(out)
        for reply in side.port.pop_replies():
            sent = side.outstanding.pop((reply.family, reply.seq), None)
            if sent is None:
                continue
            stats = side.v6 if reply.family == 6 else side.v4
            stats.answered += 1
            stats.last_answered = now
            stats.rtts.append(now - sent)

    def ping_all(self, *, ipv6: bool = True, ipv4: bool = True) -> None:
        """One round of `ping -6` and `ping` from the peer to every adapter that exists."""
        now = self.kernel.now
        self._ping_seq = (self._ping_seq + 1) & 0xFFFF
        seq = self._ping_seq
        for side in self.peers.values():
            if ipv6:
                side.v6.sent += 1
                side.v6.last_sent = now
                side.outstanding[(6, seq)] = now
                for f in side.port.ping6(side.target6, now, self._ping_ident, seq):
                    side.end.transmit(f)
            if ipv4 and self.ipv4 is not None:
                side.v4.sent += 1
                side.v4.last_sent = now
                side.outstanding[(4, seq)] = now
                for f in side.port.ping4(side.target4, now, self._ping_ident, seq):
                    side.end.transmit(f)
            # Forget pings older than 64 rounds so a dead adapter costs bounded memory.
            if len(side.outstanding) > 128:
                for key in sorted(side.outstanding, key=side.outstanding.__getitem__)[:-128]:
                    del side.outstanding[key]

    def start_pinging(self, interval: float, *, start: float | None = None) -> None:
        def round_() -> None:
            self.ping_all()
            self.kernel.call_later(interval, round_)

        self.kernel.call_at(self.kernel.now if start is None else start, round_)

    # -- observation ------------------------------------------------------------------------------

    @property
    def deadlock(self) -> Deadlock | None:
        return self.detector.first

    def tcpip6_states(self) -> list[Tcpip6Binding]:
        return list(self.tcpip6.interfaces.values())

    def bound(self) -> int:
        return self.tcpip6.bound

    def failed(self) -> int:
        return self.tcpip6.failed

    def settled(self, expected: int) -> bool:
        """Every expected adapter's tcpip6 bind has ended: up, failed, or removed."""
        t = self.tcpip6
        return t.bound + t.failed + t.unbound >= expected

    def expected_adapters(self, adapters: int) -> int:
        """Adapters a storm waits for: its own plus those a fault plan's PnP bursts add."""
        if self.plan is None:
            return adapters
        return adapters + sum(int(f.params["count"]) for f in self.plan.of_kind("pnp")
                              if f.action == "burst")

    def ipv6_ready(self) -> int:
        """Interfaces up whose link-local address has passed DAD (answers NS and pings)."""
        from tcpip6.stack.addrconf import AddrState

        n = 0
        for s in self.tcpip6.interfaces.values():
            stack = s.stack
            if s.phase is BindPhase.UP and stack is not None and \
                    stack.address_state(stack.link_local) is AddrState.PREFERRED:
                n += 1
        return n

    def ipv4_bound(self) -> int:
        if self.ipv4 is None:
            return 0
        return sum(1 for c in self.pnp.arrivals for b in c.binds
                   if b.protocol is self.ipv4 and b.status is NdisStatus.SUCCESS)

    def pending_oids(self) -> int:
        """Requests at the miniports (in progress or queued by NDIS), all protocols."""
        return sum(b.outstanding for b in self.ndis.miniports.values())

    def tcpip6_oids_pending(self) -> int:
        """tcpip6 OID submissions whose result tcpip6 has not learnt yet."""
        return sum(1 for s in self.tcpip6.interfaces.values() if s.current is not None)
