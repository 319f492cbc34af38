"""An emulated Windows Server 2003 host on memory cables: its assembly.

One kernel (executive + NDIS + PnP), the tcpip6 binder with a chosen executor, the IPv4
contrast binder, the system heartbeat, foreign holders of critical workers, the hang detector
and, when a plan is given, the fault injector; each adapter is cabled by an in-memory cable to a
port of the emulated peer (tcpip6lab.peer), which can ping it over IPv6 and IPv4. The parameters
and the address plan are tcpip6lab.params'.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import trio

from faults.detector import Deadlock, HangDetector
from faults.injector import FaultInjector
from faults.plan import FaultPlan
from ndisemu.backends.memory import MemoryCable, MemoryCableEnd
from ndisemu.constants import NdisStatus
from ndisemu.errors import ConfigError
from ndisemu.kernel import Kernel
from ndisemu.miniport import MiniportConfig, WireEnd
from ndisemu.ndis import Ndis
from ndisemu.offload import OffloadCaps
from ndisemu.params import DELAYED, HISTORY_KEPT
from ndisemu.pcap import PcapWriter
from ndisemu.pnp import Pnp
from ndisemu.system import ForeignHolder, Heartbeat
from ndisemu.trace import Tracer
from tcpip6.binder import BindPhase, Tcpip6Binder, Tcpip6Binding
from tcpip6.executors import ExecutorContext
from tcpip6.ipv4 import Ipv4Binder
from tcpip6.registry import make_executor
from tcpip6.sockets import HostSockets
from tcpip6.stack.context import HostConfig
from tcpip6.wire.ipv6 import link_local_from_mac

from .apps import Applications
from .params import ModelParams, adapter_ipv4, adapter_mac, adapter_ula, service_mac
from .peer import EmulatedPeer, PeerSide


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
        workers: str = "coroutines",
        udp_echo: bool = True,
        offload: OffloadCaps | None = None,
        history: int = HISTORY_KEPT,
    ) -> None:
        """`history`: entries each of the host's histories keeps, the latest (heartbeat
        beats, PnP arrivals and removals, the peer's ping round trips, stall episodes); older
        ones are only counted, so a host serving for hours keeps bounded memory (bench.soak)."""
        if history < 1:
            raise ConfigError(f"history must be >= 1 (got {history})")
        self.history = history
        self.params = p = params or ModelParams()
        self.seed = seed
        # Task offload (ndisemu/offload.py, an extension for IPv6): what every miniport
        # declares through OID_TCP_TASK_OFFLOAD, and tcpip6 asks for it at bind. None: neither
        # (the default: the memory wire's traces stay those of NDIS 5.1's IPv6).
        self.offload = offload
        self.name = name
        self.kernel = Kernel(p.executive, seed=seed, schedule=p.schedule, tracer=tracer,
                             name=name, pct_depth=p.pct_depth, free_running=free_running,
                             workers=workers)
        self.peer = EmulatedPeer(self.kernel, ipv4=p.ipv4, keep=history)
        self.ndis = Ndis(
            self.kernel,
            dispatch_queue=p.ndis_dispatch_queue,
            completion_queue=p.completion_queue if p.completion_via == "ndis" else None,
        )
        self.pcap_dir = pcap_dir
        self._pcaps: list[PcapWriter] = []
        self.wires: dict[str, MemoryCable] = {}
        self.ipv4_addresses: dict[str, bytes] = {}
        self.pnp = Pnp(self.kernel, self.ndis, wire_factory=wire_factory or self._wire_for,
                       bind_queue=DELAYED if p.pnp_binds == "passive" else None,
                       keep=history)
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
            rx_queue=p.rx_queue, offload=offload is not None,
            stack_config=HostConfig(dad_transmits=p.ipv6_dad_transmits,
                                    startup_delay=p.ipv6_startup_delay,
                                    hop_limit=p.ipv6_hop_limit,
                                    udp_echo=udp_echo),
        )
        self.ndis.register_protocol(self.tcpip6)
        self.sockets = HostSockets(self.tcpip6)  # the trio socket API of its services
        #: the cancel scopes of the tasks living on each interface (while_up)
        self._up_scopes: dict[str, set[trio.CancelScope]] = {}
        self.tcpip6.on_down.append(self._interface_down)
        self.heartbeat = Heartbeat(self.kernel, p.heartbeat_interval, keep=history)
        self.holders = [ForeignHolder(self.kernel, i, p.foreign_hold)
                        for i in range(p.foreign_holders)]
        self.detector = HangDetector(self.kernel, keep=history)
        #: the applications relying on TCP/IPv6 (tcpip6lab.apps), once run_applications ran
        self.applications: Applications | None = None
        self.plan = plan
        self.faults: FaultInjector | None = None
        if plan is not None:
            self.faults = FaultInjector(plan, self.kernel, seed, self.ndis, self.pnp,
                                        make_config=self._config)
            self.pnp.on_miniport.append(self.faults.attach_miniport)

    # -- set-up ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Boot-time activity: heartbeat and foreign holders (call once the kernel runs)."""
        self.heartbeat.start()
        for h in self.holders:
            h.start()
        if self.faults is not None:
            self.faults.start()

    def add_routable_addresses(self) -> None:
        """Give every interface, as it comes up, its ULA address (tcpip6lab.params.adapter_ula):
        browsers take no zone ids in URLs."""
        binder = self.tcpip6

        def up(adapter: str) -> None:
            state = binder.interfaces.get(adapter)
            if state is None or state.stack is None:
                return
            index = int(adapter[3:]) if adapter[3:].isdigit() else None
            if index is None:
                return
            binder.after_stack(state, state.stack.add_address(adapter_ula(index), 64,
                                                              now=self.kernel.now))

        binder.on_up.append(up)

    def run_services(self, nursery: trio.Nursery) -> None:
        """The built-in services (tcpip6lab.services) on every interface as it comes up."""
        from . import services

        services.enable(self, nursery)

    def run_applications(self, nursery: trio.Nursery,
                         peer_address: Callable[[str], bytes] | None = None, *,
                         only: Callable[[str], bool] | None = None) -> Applications:
        """The applications (tcpip6lab.apps) on every interface as it comes up (or those
        `only` accepts), talking to `peer_address(adapter)`; by default the memory-wire peer's
        services, started here."""
        if peer_address is None:
            self.peer.enable_services()

            def peer_address(adapter: str) -> bytes:
                return link_local_from_mac(service_mac(int(adapter[3:])))

        self.applications = Applications(self, peer_address, only)
        self.applications.enable(nursery)
        return self.applications

    @contextlib.contextmanager
    def while_up(self, adapter: str) -> Iterator[trio.CancelScope]:
        """A cancel scope that ends when `adapter`'s interface does (its adapter removed):
        the services and applications of an interface run in one, so that adapters coming and
        going leave no task behind."""
        scope = trio.CancelScope()
        scopes = self._up_scopes.setdefault(adapter, set())
        scopes.add(scope)
        state = self.tcpip6.interfaces.get(adapter)
        if state is None or state.phase is not BindPhase.UP:
            scope.cancel()  # it went down before the task started
        try:
            with scope:
                yield scope
        finally:
            scopes.discard(scope)
            if not scopes:
                self._up_scopes.pop(adapter, None)

    def _interface_down(self, adapter: str) -> None:
        for scope in self._up_scopes.get(adapter, ()):
            scope.cancel()

    def adapter_configs(self, count: int, *, first: int = 0) -> list[MiniportConfig]:
        return [self._config(i) for i in range(first, first + count)]

    def _config(self, i: int) -> MiniportConfig:
        p = self.params
        name = f"nic{i:03d}"
        self.ipv4_addresses[name] = adapter_ipv4(i)
        return MiniportConfig(name=name, mac=adapter_mac(i), latency=p.latency,
                              latency_jitter=p.latency_jitter, mtu=p.mtu,
                              multicast_list_size=p.multicast_list_size,
                              completion_queue=p.miniport_completion_queue, tags={"index": i},
                              offload=self.offload)

    def _wire_for(self, cfg: MiniportConfig) -> MemoryCableEnd:
        index = int(cfg.tags.get("index", len(self.wires)))
        recorder = None
        if self.pcap_dir is not None:
            os.makedirs(self.pcap_dir, exist_ok=True)
            recorder = PcapWriter(os.path.join(self.pcap_dir, f"{self.name}-{cfg.name}.pcap"))
            self._pcaps.append(recorder)
        wire = MemoryCable(self.kernel, cfg.name, delay=self.params.wire_delay,
                          recorder=recorder)
        if self.faults is not None:
            self.faults.attach_wire(wire)
        self.wires[cfg.name] = wire
        self.peer.connect(index, cfg.name, cfg.mac, wire.b)
        return wire.a

    def close(self) -> None:
        for w in self._pcaps:
            w.close()
        self._pcaps.clear()

    @property
    def peers(self) -> dict[str, PeerSide]:
        """The peer's port on each adapter's cable, by adapter name."""
        return self.peer.sides

    def start_pinging(self, interval: float, *, start: float | None = None) -> None:
        self.peer.start_pinging(interval, start=start)

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
