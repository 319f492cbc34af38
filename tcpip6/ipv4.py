"""The IPv4 contrast binder (tcpip.sys's role): same adapters, unaffected by the storm.

KB968597: "IPv4 is not affected". This binder submits its OIDs from its own bind context — a
system thread per bind (PsCreateSystemThread), as ReactOS's tcpip does its NDISCall sequence
inside the bind call (R tcpip/datalink/lan.c:1463-1589) — and learns of completions directly in
ProtocolRequestComplete, which sets the bind thread's event at DPC level. Received frames (ARP,
ICMPv4 echo) are answered at indication time. Nothing it does needs a shared critical worker,
so it binds and answers on every adapter, storm or not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ndisemu.constants import NdisStatus, Oid, PacketFilter, RequestType
from ndisemu.executive.core import WaitObject, WorkItem
from ndisemu.miniport import NdisRequest, ulong
from ndisemu.ndis import BindContext, Binding, Ndis

from .binder import BIND_OIDS_HEAD, LOOKAHEAD, BindPhase
from .counters import Counters
from .stack.ipv4responder import Ipv4Responder
from .wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4

#: EtherTypes IPv4 accepts from NDIS (IPv4 itself, ARP), as the frame carries them
_IPV4_TYPES: Final = (ETHERTYPE_IPV4.to_bytes(2, "big"), ETHERTYPE_ARP.to_bytes(2, "big"))

if TYPE_CHECKING:
    from ndisemu.kernel import Kernel

#: nt-model §5 rows 1–8 (ReactOS lan.c order), no multicast list.
IPV4_BIND_OIDS: tuple[tuple[Oid, RequestType], ...] = (
    *BIND_OIDS_HEAD,
    (Oid.GEN_CURRENT_PACKET_FILTER, RequestType.SET),
)
IPV4_FILTER: Final = PacketFilter.DIRECTED | PacketFilter.BROADCAST


@dataclass(eq=False)
class Ipv4Binding:
    adapter: str
    binding: Binding
    ctx: BindContext
    address: bytes
    phase: BindPhase = BindPhase.BINDING
    bound_at: float | None = None
    mac: bytes = b""
    stack: Ipv4Responder | None = None
    counters: Counter[str] = field(default_factory=Counters)


class Ipv4Binder:
    name = "tcpip"

    def __init__(self, kernel: Kernel, ndis: Ndis, addresses: dict[str, bytes]) -> None:
        self.kernel = kernel
        self.ndis = ndis
        self.addresses = addresses
        self.interfaces: dict[str, Ipv4Binding] = {}
        self._events: dict[int, WaitObject] = {}
        self.not_accepted = 0  # frames of other EtherTypes (IPv6) NDIS indicated to IPv4

    def bind_adapter(self, ctx: BindContext) -> NdisStatus:
        address = self.addresses.get(ctx.adapter)
        if address is None:
            return NdisStatus.NOT_SUPPORTED  # no IPv4 configuration for this adapter
        binding = self.ndis.open_adapter(self, ctx.adapter)
        state = Ipv4Binding(ctx.adapter, binding, ctx, address)
        binding.context = state
        self.interfaces[ctx.adapter] = state
        self.kernel.create_system_thread("tcpip.bind", self._bind_thread(state),
                                         name="tcpip.bind", tags={"adapter": ctx.adapter})
        return NdisStatus.PENDING

    def _bind_thread(self, state: Ipv4Binding) -> Any:
        async def bind(_item: WorkItem) -> None:
            for oid, rtype in IPV4_BIND_OIDS:
                if oid == Oid.GEN_CURRENT_LOOKAHEAD:
                    req = NdisRequest(rtype, oid, ulong(LOOKAHEAD))
                elif oid == Oid.GEN_CURRENT_PACKET_FILTER:
                    req = NdisRequest(rtype, oid, ulong(int(IPV4_FILTER)))
                else:
                    req = NdisRequest(rtype, oid)
                event = self.kernel.create_event("tcpip.oid_done", adapter=state.adapter)
                req.tags["signals"] = (event,)
                req.tags["ipv4_event"] = event
                status = self.ndis.request(state.binding, req)
                if status is NdisStatus.PENDING:
                    await self.kernel.wait(event)
                    status = req.status
                if status is not NdisStatus.SUCCESS:
                    state.phase = BindPhase.FAILED
                    self.ndis.close_adapter(state.binding)
                    self.ndis.complete_bind_adapter(state.ctx, NdisStatus.FAILURE)
                    return
                if oid == Oid.E802_3_CURRENT_ADDRESS:
                    state.mac = bytes(req.data[:6])
            state.stack = Ipv4Responder(state.mac, state.address)
            state.phase = BindPhase.UP
            state.bound_at = self.kernel.now
            self.ndis.complete_bind_adapter(state.ctx, NdisStatus.SUCCESS)

        return bind

    def unbind_adapter(self, binding: Binding) -> None:
        state: Ipv4Binding | None = binding.context
        if state is not None:
            state.phase = BindPhase.UNBOUND
            state.stack = None

    def request_complete(self, binding: Binding, request: NdisRequest,
                         status: NdisStatus) -> None:
        event: WaitObject | None = request.tags.get("ipv4_event")
        if event is not None:
            self.kernel.set_event(event)

    def receive(self, binding: Binding, frame: bytes) -> None:
        state: Ipv4Binding | None = binding.context
        if state is None or state.stack is None:
            return
        # ProtocolReceive looks at the EtherType in the lookahead first: an IPv6 frame (every
        # frame of an ICMPv6 flood) is not IPv4's, and costs it nothing more
        if frame[12:14] not in _IPV4_TYPES:
            self.not_accepted += 1
            return
        for reply in state.stack.handle_frame(frame, self.kernel.now):
            self.ndis.send(binding, reply)

    @property
    def bound(self) -> int:
        return sum(1 for s in self.interfaces.values() if s.phase is BindPhase.UP)
