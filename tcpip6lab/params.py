"""The model's parameters and the address plan of an emulated host.

`ModelParams` holds every parameter of one emulated host: the executive's (`ExecutiveParams`,
with their sources in ndisemu.params) and the binder's, miniports', stack's and system's
(docs/model.md gives each one's source or says it is inferred or calibrated). The address plan
names every adapter's and its peer's MAC and IPv4 address from the adapter's index.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ndisemu.errors import ConfigError
from ndisemu.params import SYSTEM_QUEUES, ExecutiveParams, check_field_types
from tcpip6.binder import COMPLETION_PATHS
from tcpip6.executors import RescuerExecutor
from tcpip6.registry import is_executor_subclass, resolve

#: IPv4 addresses for the contrast binder come from 198.18.0.0/15 (RFC 2544 benchmarking
#: range): adapter i is .4i+1, its peer .4i+2. Only ever used on emulated or namespaced wires.
IPV4_BASE = int(ipaddress.IPv4Address("198.18.0.0"))

#: how a miniport completes pended OIDs with completion_via="miniport"
MINIPORT_COMPLETIONS = ("workitem", "dpc")
#: where PnP calls ProtocolBindAdapter
PNP_BINDS = ("passive", "dpc")


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
    # With completion_via="miniport": the miniport completes pended OIDs from its own work item
    # on completion_queue ("workitem", NdisScheduleWorkItem) or at DPC level ("dpc").
    miniport_completion: str = "workitem"
    rx_queue: str = "critical"
    # Where ProtocolBindAdapter runs: "passive" — the PnP manager's device-action work item on
    # the delayed queue (R ntoskrnl/io/pnpmgr, PipDeviceActionWorker); "dpc" — the model's old
    # shortcut, inside the DPC-level arrival.
    pnp_binds: str = "passive"
    # Other components' blocked critical workers. A CALIBRATION, not a measured fact: 2 makes the
    # default cliff (10 + 16 − K) the KB's "about 24" (nt-model §6 step 4 reads K ≈ 2 the same
    # way; docs/model.md §5, §7). Unchanged by the move to PASSIVE binds and the manager's
    # wake-ups (the cliff formula did not move).
    foreign_holders: int = 2
    # Inferred; no outcome depends on it: the holders declare their wakers (docs/model.md §6).
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
        executor = resolve(self.executor)  # tcpip6's ExecutorSpecError naming the spec
        for name in ("completion_queue", "rx_queue", "ndis_dispatch_queue"):
            if getattr(self, name) not in SYSTEM_QUEUES:
                raise ConfigError(f"{name} must be one of {', '.join(SYSTEM_QUEUES)}")
        if self.completion_via not in COMPLETION_PATHS:
            raise ConfigError(f"completion_via must be one of {', '.join(COMPLETION_PATHS)}")
        if self.pnp_binds not in PNP_BINDS:
            raise ConfigError(f"pnp_binds must be one of {', '.join(PNP_BINDS)}")
        if self.miniport_completion not in MINIPORT_COMPLETIONS:
            raise ConfigError("miniport_completion must be one of "
                              f"{', '.join(MINIPORT_COMPLETIONS)}")
        if self.latency <= 0:
            raise ConfigError(f"latency must be > 0 (got {self.latency})")
        if not 0 <= self.latency_jitter < 1:
            raise ConfigError(f"latency jitter must be in [0, 1) (got {self.latency_jitter})")
        if self.foreign_holders < 0:
            raise ConfigError("foreign holders must be >= 0")
        if self.foreign_hold <= 0 or self.heartbeat_interval <= 0 or self.wire_delay < 0:
            raise ConfigError("foreign_hold and heartbeat_interval must be > 0, wire_delay >= 0")
        if is_executor_subclass(executor, RescuerExecutor) and self.completion_via != "tcpip6":
            raise ConfigError("the rescuer executor rescues tcpip6's own completion items; "
                              f"with completion via {self.completion_via} there are none (use "
                              "--completion-via tcpip6)")
        if not 1280 <= self.mtu <= 65535:
            raise ConfigError(f"mtu must be in 1280..65535 for IPv6 (got {self.mtu})")
        if self.multicast_list_size < 0:
            raise ConfigError("multicast list size must be >= 0")
        if self.dedicated_threads < 1:
            raise ConfigError("dedicated threads must be >= 1")

    @property
    def miniport_completion_queue(self) -> str | None:
        """The queue of the miniports' completion work items, or None (they complete at DPC)."""
        if self.completion_via == "miniport" and self.miniport_completion == "workitem":
            return self.completion_queue
        return None

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


def service_mac(index: int) -> bytes:
    """The memory-wire peer's service stack on adapter `index`'s cable (tcpip6lab.peer)."""
    return bytes([0x02, 0x00, 0x5E, 0x30, (index >> 8) & 0xFF, index & 0xFF])


#: Routable addresses (browsers take no zone ids in URLs): adapter i gets the ULA prefix
#: fd36:6c61:6200:i::/64 (RFC 4193; the global ID is fixed, a lab value, not random: only ever
#: used on emulated or namespaced wires), configured statically on both sides. The host's
#: address has its link-local's interface ID (EUI-64 of the adapter's MAC), so it joins no
#: new solicited-node group: adding it costs no multicast-list OID and leaves the bind storm
#: as it was. Linux's side is ::2.
ULA_BASE = bytes.fromhex("fd366c616200")


def ula_prefix(index: int) -> bytes:
    return ULA_BASE + index.to_bytes(2, "big") + bytes(8)


def adapter_ula(index: int) -> bytes:
    from tcpip6.wire.ipv6 import link_local_from_mac

    return ula_prefix(index)[:8] + link_local_from_mac(adapter_mac(index))[8:]


def peer_ula(index: int) -> bytes:
    return ula_prefix(index)[:15] + b"\x02"


def adapter_ipv4(index: int) -> bytes:
    return (IPV4_BASE + 4 * index + 1).to_bytes(4, "big")


def peer_ipv4(index: int) -> bytes:
    return (IPV4_BASE + 4 * index + 2).to_bytes(4, "big")
