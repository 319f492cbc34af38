"""Plug and Play arrival and removal of adapters.

On IRP_MN_START_DEVICE NDIS binds every registered protocol to the new miniport, calling each
ProtocolBindAdapter in turn (R ndis/miniport.c:2341-2345,2193-2202; protocol.c:900-1100). A
protocol may return NDIS_STATUS_PENDING and finish later with NdisCompleteBindAdapter (MS
ff562465). Removal calls each binding's ProtocolUnbindAdapter, then drops the miniport.

A *burst* is several arrivals at one virtual instant; each arrival is its own DPC-level event,
in the order given. Where the binds run (`bind_queue`):

* a queue name (the delayed queue, as an emulated host has it by default,
  `ModelParams.pnp_binds`): the arrival — at DPC level — only adds the
  miniport and appends a device action to the PnP manager's list; one device-action work item
  (`pnp.device_action`, PipDeviceActionWorker, queued on DelayedWorkQueue in ReactOS
  ntoskrnl/io/pnpmgr) takes the actions in order and, for each, calls every protocol's
  ProtocolBindAdapter in registration order at PASSIVE_LEVEL (pending binds return at once).
  After each adapter it lets any higher-priority thread its binds readied run first (a critical
  worker preempts the priority-12 delayed worker on NT: `Kernel.preemption_point`).
* None (this class's default, for rigs that bind synchronously): the model's old shortcut,
  every protocol bound inside the DPC-level arrival.

`arrivals` and `removed` are rings of the latest `keep` (HISTORY_KEPT by default); `arrived`
and `removals` count them all, so adapters that come and go for days cost bounded memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .constants import NdisStatus
from .miniport import EmulatedMiniport, MiniportConfig, WireEnd
from .ndis import BindContext, MiniportBlock, Ndis
from .params import HISTORY_KEPT

if TYPE_CHECKING:
    from .executive.core import WorkItem
    from .kernel import Kernel


@dataclass(eq=False)
class Arrival:
    config: MiniportConfig
    at: float
    block: MiniportBlock | None = None  # None until it arrives, and again once removed
    binds: list[BindContext] = field(default_factory=list)
    seq: int = 0  # its place among every arrival of this PnP manager (Pnp.arrived), from 1


class Pnp:
    def __init__(self, kernel: Kernel, ndis: Ndis,
                 wire_factory: Callable[[MiniportConfig], WireEnd] | None = None,
                 *, bind_queue: str | None = None, keep: int = HISTORY_KEPT) -> None:
        self.kernel = kernel
        self.ndis = ndis
        self.wire_factory = wire_factory
        self.bind_queue = bind_queue
        self._actions: deque[Arrival] = deque()  # device actions not taken yet
        self._action_item: WorkItem | None = None  # the device-action item, queued or running
        self.arrivals: deque[Arrival] = deque(maxlen=keep)  # the latest arrivals
        self.arrived = 0  # every arrival scheduled or come
        self.removed: deque[str] = deque(maxlen=keep)  # the latest removals, by adapter
        self.removals = 0
        #: called with each new miniport before it is bound (fault injectors hook in here)
        self.on_miniport: list[Callable[[EmulatedMiniport], None]] = []

    def schedule(self, configs: Iterable[MiniportConfig], *, start: float,
                 interval: float = 0.0) -> list[Arrival]:
        """Adapters arrive from `start`, `interval` apart (0 = a burst at one instant)."""
        out = []
        for i, cfg in enumerate(configs):
            self.arrived += 1
            arrival = Arrival(cfg, start + i * interval, seq=self.arrived)
            self.arrivals.append(arrival)
            self.kernel.call_at(arrival.at, self._arrive, arrival)
            out.append(arrival)
        return out

    def arrive(self, config: MiniportConfig) -> Arrival:
        """An adapter arrives now."""
        self.arrived += 1
        arrival = Arrival(config, self.kernel.now, seq=self.arrived)
        self.arrivals.append(arrival)
        self._arrive(arrival)
        return arrival

    def _arrive(self, arrival: Arrival) -> None:
        miniport = EmulatedMiniport(self.kernel, arrival.config)
        for hook in self.on_miniport:
            hook(miniport)
        if self.wire_factory is not None:
            miniport.attach_wire(self.wire_factory(arrival.config))
        block = self.ndis.add_miniport(miniport)
        arrival.block = block
        trace = self.kernel.tracer
        if trace.enabled:
            trace.emit("pnp.arrival", adapter=arrival.config.name)
        if self.bind_queue is None:
            self._bind(arrival)
            return
        self._actions.append(arrival)
        if self._action_item is None:
            self._action_item = self.kernel.queue_work_item(
                self.bind_queue, self._device_action_worker, name="pnp.device_action")

    async def _device_action_worker(self, _item: WorkItem) -> None:
        """PipDeviceActionWorker: start each arrived device, binding every protocol."""
        while self._actions:
            arrival = self._actions.popleft()
            block = arrival.block
            if block is not None and not block.removed:
                self._bind(arrival)
                await self.kernel.preemption_point()
        self._action_item = None

    def _bind(self, arrival: Arrival) -> None:
        """Call every protocol's ProtocolBindAdapter, in registration order."""
        for protocol in list(self.ndis.protocols):
            ctx = BindContext(protocol, arrival.config.name, self.kernel.now)
            arrival.binds.append(ctx)
            status = protocol.bind_adapter(ctx)
            if status is not NdisStatus.PENDING:
                self.ndis.complete_bind_adapter(ctx, status)

    def _forget(self, name: str, block: MiniportBlock) -> None:
        """A removal is remembered by name; its arrival lets go of the miniport and its binds
        (block None again), so the history of a host whose adapters come and go stays small."""
        self.removed.append(name)
        self.removals += 1
        for arrival in self.arrivals:
            if arrival.block is block:
                arrival.block = None
                arrival.binds = []

    def surprise_remove(self, name: str) -> None:
        """The hardware vanishes: its requests fail at once (NDIS_STATUS_ADAPTER_REMOVED),
        then each protocol is unbound (NDIS 5.1 surprise removal)."""
        block = self.ndis.miniports.get(name)
        if block is None:
            return
        if self.kernel.tracer.enabled:
            self.kernel.tracer.emit("pnp.surprise_removal", adapter=name)
        bindings = list(block.bindings)
        self.ndis.remove_miniport(name)
        for binding in bindings:
            binding.protocol.unbind_adapter(binding)
            self.ndis.close_adapter(binding)
        self._forget(name, block)

    def remove(self, name: str) -> None:
        """Surprise-free removal: unbind every protocol, then drop the miniport."""
        block = self.ndis.miniports.get(name)
        if block is None:
            return
        if self.kernel.tracer.enabled:
            self.kernel.tracer.emit("pnp.removal", adapter=name)
        for binding in list(block.bindings):
            binding.protocol.unbind_adapter(binding)
            self.ndis.close_adapter(binding)
        self.ndis.remove_miniport(name)
        self._forget(name, block)
