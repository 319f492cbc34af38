"""Emulated NDIS 5.1 miniports answering real OIDs.

A miniport's MiniportQueryInformation/MiniportSetInformation either completes at once
(NDIS_STATUS_SUCCESS or an error) or returns NDIS_STATUS_PENDING and later calls
NdisMQueryInformationComplete / NdisMSetInformationComplete (MS ff553575, ff553626). Here a
pending request completes after `latency` virtual seconds (± `latency_jitter`, drawn from the
miniport's own seeded generator), at DPC level. Values are packed as the real OIDs carry them
(ULONG little-endian; MAC addresses as 6 bytes). Lengths are checked as NDISTest expects:
too-short buffers get NDIS_STATUS_INVALID_LENGTH.

The backend (a wire end: memory, TAP, AF_PACKET) is attached separately; the miniport itself
never touches a file descriptor.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from . import offload as task_offload
from .constants import MediaState, NdisStatus, Oid, PacketFilter, RequestType, oid_name
from .errors import ConfigError
from .offload import OffloadCaps
from .rng import SplitMix64

if TYPE_CHECKING:
    from .kernel import Kernel

_ULONG: Final = struct.Struct("<I")
# The per-frame send path returns this name, not NdisStatus.SUCCESS: on CPython 3.11 an enum
# member read through its class is a call of EnumType.__getattr__ (about 900 instructions),
# a Final name a C static in the wheel (bench/README.md, "fifth round").
_SUCCESS: Final = NdisStatus.SUCCESS


@dataclass(frozen=True)
class RequestFault:
    """What a fault injector decided for one request (faults/ decides; the miniport obeys)."""

    fault: str  # the fault's id
    action: str  # delay | pend | fail | double-complete
    status: NdisStatus | None = None
    delay: float = 0.0


class MiniportFaultHook(Protocol):
    """Implemented by faults/: consulted on every request a miniport handles."""

    def on_request(self, miniport: EmulatedMiniport, req: NdisRequest) -> RequestFault | None:
        ...

    def hold_until_healed(self, release: Callable[[], None]) -> bool:
        """Keep `release` for the heal; False when already healed (release at once)."""
        ...


class WireEnd(Protocol):
    """What a miniport needs from its medium. `paced` is True when the emulation itself must
    pace frames at link speed (the memory wire); a real device paces them in its own queue."""

    paced: bool

    def transmit(self, frame: bytes) -> None: ...

    def attach(self, receiver: Callable[[bytes], None]) -> None: ...


@dataclass(frozen=True)
class MiniportConfig:
    name: str
    mac: bytes
    mtu: int = 1500
    # OID_GEN_LINK_SPEED is in units of 100 bit/s (NDIS 5.1); 1 Gbit/s = 10,000,000.
    link_speed_100bps: int = 10_000_000
    # Pending OIDs complete after this many virtual seconds. Inferred default (a few ms of
    # firmware round trip); must be > 0 so a pended request really pends.
    latency: float = 0.002
    latency_jitter: float = 0.5  # uniform ± fraction of latency
    sync_oids: frozenset[int] = frozenset()  # OIDs answered synchronously
    # NDIS 5.1 serialized miniport: NDIS queues sends and hands over one at a time (MS
    # ff553613); a deserialized one takes every send and queues it itself (MS ff545488).
    serialized: bool = True
    tx_queue_limit: int = 256  # a deserialized miniport's own send queue, in frames
    max_send_packets: int = 1
    multicast_list_size: int = 32
    media_connected: bool = True
    # None: pended requests complete at DPC level (the timer callback calls
    # NdisM*InformationComplete). A queue name: the miniport completes them from its own work
    # item on that queue (NdisScheduleWorkItem, which drivers of virtual and intermediate
    # adapters use to reach PASSIVE_LEVEL; ReactOS's NDIS queued those on CriticalWorkQueue in
    # older revisions and on DelayedWorkQueue now, R drivers/network/ndis/ndis/misc.c).
    completion_queue: str | None = None
    # NDIS 5.1 task offload (ndisemu/offload.py): what the miniport declares in answer to
    # OID_TCP_TASK_OFFLOAD; None answers NDIS_STATUS_NOT_SUPPORTED, as a NIC without it does.
    offload: OffloadCaps | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.mac) != 6:
            raise ConfigError(f"{self.name}: MAC must be 6 bytes")
        if self.latency <= 0:
            raise ConfigError(f"{self.name}: OID latency must be > 0 (got {self.latency})")
        if not 0 <= self.latency_jitter < 1:
            raise ConfigError(f"{self.name}: latency_jitter must be in [0, 1)")
        if not 68 <= self.mtu <= 65535:
            raise ConfigError(f"{self.name}: MTU must be in 68..65535 (got {self.mtu})")


@dataclass(eq=False)
class NdisRequest:
    """NDIS_REQUEST: a query or set of one OID on one binding."""

    type: RequestType
    oid: int
    data: bytes = b""  # set: input buffer; query: filled on completion
    query_length: int = 64  # InformationBufferLength of a query
    status: NdisStatus = NdisStatus.PENDING
    bytes_needed: int = 0
    id: int = 0
    binding: Any = None
    submitted_at: float | None = None
    completed_at: float | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        from .constants import oid_name

        return f"{self.type.short} {oid_name(self.oid)}"


class EmulatedMiniport:
    """The hardware-facing side of one adapter."""

    def __init__(self, kernel: Kernel, config: MiniportConfig) -> None:
        self.kernel = kernel
        self.config = config
        self.name = config.name
        self.mac = config.mac
        self.rng = SplitMix64(f"miniport:{kernel.seed}:{config.name}")
        # Annotated: they are set again in `_set` (mypyc needs their types at the first one).
        self.packet_filter: PacketFilter = PacketFilter.NONE
        self.multicast: list[bytes] = []
        self.lookahead: int = 0
        self.media_connected: bool = config.media_connected
        self.hung = False
        self.requests_handled = 0
        self.work_items_run = 0  # completion work items run (completion_queue set)
        self.tx_frames = 0
        self.tx_dropped = 0
        self.tx_busy_until = 0.0  # when the transmitter finishes the last accepted frame
        self.tx_queued = 0  # accepted frames not yet fully transmitted
        self._end: WireEnd | None = None
        #: the tasks the transport enabled (its set of OID_TCP_TASK_OFFLOAD); None: none
        self.offload_enabled: OffloadCaps | None = None
        self.offload_segmented = 0  # large sends cut into frames here (a medium without them)
        self.fault_hook: MiniportFaultHook | None = None
        self.hung = False
        self.stalled_until = 0.0  # a reset in progress: no frame moves before this time
        self.stall_dropped = 0
        self.held: list[Callable[[], None]] = []  # completions kept back by a hang
        self._receive: Callable[[bytes], None] | None = None
        # NDIS's hook for a completion work item: requests NDIS holds behind this one wait on
        # it too (it declares their events on the item).
        self.on_completion_item: Callable[[NdisRequest, Any], None] | None = None

    # -- medium ---------------------------------------------------------------------------------

    def attach_wire(self, end: WireEnd) -> None:
        self._end = end
        end.attach(self._on_frame)

    def set_receive_handler(self, handler: Callable[[bytes], None]) -> None:
        """NDIS installs its indication path here (NdisMEthIndicateReceive)."""
        self._receive = handler

    def _on_frame(self, frame: bytes) -> None:
        if self._receive is not None and self.media_connected:
            if self.stalled_until and self.kernel.now < self.stalled_until:
                self.stall_dropped += 1
                return
            self._receive(frame)

    def set_media(self, connected: bool) -> None:
        """The cable is pulled or plugged back: sends fail and receives stop while it is out,
        and a wire end with a carrier (a real device) shows it to Linux. NDIS hears of it from
        whoever pulled the cable (Ndis.indicate_status), as from a miniport's
        NdisMIndicateStatus."""
        self.media_connected = connected
        carrier = getattr(self._end, "set_carrier", None)
        if carrier is not None:
            carrier(connected)

    def stall(self, duration: float) -> None:
        """A reset in progress for `duration` seconds: frames neither leave nor arrive."""
        self.stalled_until = max(self.stalled_until, self.kernel.now + duration)

    def tx_time(self, frame: bytes) -> float:
        """Seconds on the medium: frame + FCS, preamble and inter-frame gap (24 bytes)."""
        return (max(len(frame), 60) + 24) * 8 / (self.config.link_speed_100bps * 100)

    @property
    def tx_idle(self) -> bool:
        return self.tx_queued == 0

    def send(self, frame: bytes, on_complete: Callable[[], None] | None = None) -> NdisStatus:
        """MiniportSend: the frame leaves when the transmitter is free, one after another at
        link speed; `on_complete` (NdisMSendComplete) runs when it has left."""
        if self._end is None or not self.media_connected:
            return NdisStatus.FAILURE
        if self.stalled_until and self.kernel.now < self.stalled_until:
            self.stall_dropped += 1
            return NdisStatus.RESET_IN_PROGRESS
        if self.offload_enabled is not None and not getattr(self._end, "offloads", False):
            return self._send_offloaded(frame, on_complete)
        return self._transmit(frame, on_complete)

    def _transmit(self, frame: bytes, on_complete: Callable[[], None] | None) -> NdisStatus:
        assert self._end is not None
        if not self._end.paced:
            # A real device: its driver queue paces the frames; the send is complete for us.
            self.tx_frames += 1
            self._end.transmit(frame)
            if on_complete is not None:
                on_complete()
            return _SUCCESS
        if self.tx_queued >= self.config.tx_queue_limit:
            self.tx_dropped += 1
            return NdisStatus.RESOURCES
        k = self.kernel
        start = max(k.now, self.tx_busy_until)
        self.tx_busy_until = start + self.tx_time(frame)
        self.tx_frames += 1
        self.tx_queued += 1
        end = self._end
        if start <= k.now:
            end.transmit(frame)
        else:
            k.call_at(start, end.transmit, frame)
        k.call_at(self.tx_busy_until, self._sent, on_complete)
        return _SUCCESS

    def _send_offloaded(self, frame: bytes,
                        on_complete: Callable[[], None] | None) -> NdisStatus:
        """The NIC's part of an enabled task offload on a medium that takes only whole frames
        (the memory wire): a TCP frame's partial checksum is finished, a large send cut at the
        link's segment size (offload.segment_tcp6); then each frame is sent as any other."""
        if not task_offload.tcp6_offset(frame):
            return self._transmit(frame, on_complete)
        frames = task_offload.segment_tcp6(
            frame, task_offload.segment_size(frame, self.config.mtu))
        if len(frames) > 1:
            self.offload_segmented += 1
        status = NdisStatus.SUCCESS
        for i, f in enumerate(frames):
            status = self._transmit(f, on_complete if i == len(frames) - 1 else None)
        return status

    def _sent(self, on_complete: Callable[[], None] | None) -> None:
        self.tx_queued -= 1
        if on_complete is not None:
            on_complete()

    # -- requests -------------------------------------------------------------------------------

    def latency(self) -> float:
        c = self.config
        if c.latency_jitter == 0:
            return c.latency
        return c.latency * (1.0 + c.latency_jitter * (2.0 * self.rng.random() - 1.0))

    def handle_request(
        self,
        req: NdisRequest,
        complete: Callable[[NdisStatus], None],
        set_data: bytes | None = None,
    ) -> NdisStatus:
        """MiniportQuery/SetInformation. Returns the status, or PENDING and completes later.
        `set_data` lets NDIS pass the merged value of all bindings (filter, multicast list)."""
        self.requests_handled += 1
        if self.config.completion_queue is not None:
            complete = self._via_work_item(req, complete)
        status = self._answer(req, set_data)
        fault = self.fault_hook.on_request(self, req) if self.fault_hook is not None else None
        delay = self.latency()
        if fault is not None:
            req.tags["fault"] = fault.fault
            if fault.action == "fail" and fault.status is not None:
                status = fault.status
            elif fault.action == "pend":
                # Never completes while the fault lasts; the heal releases it.
                self._hold(lambda: complete(status))
                return NdisStatus.PENDING
            elif fault.action == "delay":
                self.kernel.call_later(delay + fault.delay, self._complete, complete, status)
                return NdisStatus.PENDING
            elif fault.action == "double-complete":
                self.kernel.call_later(delay, self._complete, complete, status)
                self.kernel.call_later(delay * 1.5, self._complete, complete, status)
                return NdisStatus.PENDING
        if self.hung:
            self._hold(lambda: complete(status))
            return NdisStatus.PENDING
        if req.oid in self.config.sync_oids:
            return status
        self.kernel.call_later(delay, self._complete, complete, status)
        return NdisStatus.PENDING

    def _via_work_item(self, req: NdisRequest,
                       complete: Callable[[NdisStatus], None]) -> Callable[[NdisStatus], None]:
        """`complete`, deferred to the miniport's own work item on `completion_queue`: the
        timer (DPC) only queues the item; its routine calls NdisM*InformationComplete at
        PASSIVE_LEVEL. The item declares the events the request's waiters wait on (the
        request's ``signals`` tag), so a knot through it is provable."""
        queue = self.config.completion_queue
        assert queue is not None

        def schedule(status: NdisStatus) -> None:
            async def miniport_complete_request(_item: Any) -> None:
                self.work_items_run += 1
                complete(status)

            item = self.kernel.queue_work_item(
                queue, miniport_complete_request, name="miniport.complete_request",
                tags={"adapter": self.name, "oid": oid_name(req.oid), "req": req.id},
                signals=tuple(req.tags.get("signals", ())))
            if self.on_completion_item is not None:
                self.on_completion_item(req, item)

        return schedule

    def _complete(self, complete: Callable[[NdisStatus], None], status: NdisStatus) -> None:
        """NdisM*InformationComplete — unless the miniport hangs, which keeps it back."""
        if self.hung:
            self._hold(lambda: complete(status))
            return
        complete(status)

    def _hold(self, release: Callable[[], None]) -> None:
        if self.fault_hook is None or not self.fault_hook.hold_until_healed(release):
            self.held.append(release)

    def hang(self) -> None:
        """Stop completing anything (a hung firmware) until `unhang`."""
        self.hung = True

    def unhang(self) -> None:
        self.hung = False
        held, self.held = self.held, []
        for release in held:
            release()

    def _answer(self, req: NdisRequest, set_data: bytes | None) -> NdisStatus:
        if req.type is RequestType.QUERY:
            value = self._query_value(req.oid)
            if value is None:
                return NdisStatus.NOT_SUPPORTED
            if req.query_length < len(value):
                req.bytes_needed = len(value)
                return NdisStatus.INVALID_LENGTH
            req.data = value
            return NdisStatus.SUCCESS
        return self._set(req.oid, req.data if set_data is None else set_data)

    def _query_value(self, oid: int) -> bytes | None:
        fn = _QUERIES.get(oid)
        return None if fn is None else fn(self)

    def _set(self, oid: int, data: bytes) -> NdisStatus:
        if oid == Oid.GEN_CURRENT_LOOKAHEAD:
            if len(data) < 4:
                return NdisStatus.INVALID_LENGTH
            (value,) = _ULONG.unpack_from(data)
            if value > self.config.mtu:
                return NdisStatus.INVALID_DATA
            self.lookahead = value
            return NdisStatus.SUCCESS
        if oid == Oid.GEN_CURRENT_PACKET_FILTER:
            if len(data) < 4:
                return NdisStatus.INVALID_LENGTH
            (value,) = _ULONG.unpack_from(data)
            if value & ~0x3F:
                return NdisStatus.NOT_SUPPORTED
            self.packet_filter = PacketFilter(value)
            return NdisStatus.SUCCESS
        if oid == Oid.E802_3_MULTICAST_LIST:
            if len(data) % 6:
                return NdisStatus.INVALID_LENGTH
            macs = [data[i:i + 6] for i in range(0, len(data), 6)]
            if len(macs) > self.config.multicast_list_size:
                return NdisStatus.MULTICAST_FULL
            if any(not m[0] & 1 for m in macs):
                return NdisStatus.INVALID_DATA
            self.multicast = macs
            return NdisStatus.SUCCESS
        if oid == Oid.TCP_TASK_OFFLOAD and self.config.offload is not None:
            try:
                asked = task_offload.parse(data)
            except ConfigError:
                return NdisStatus.INVALID_DATA
            declared = self.config.offload
            if (asked.lso_max_size > declared.lso_max_size
                    or (asked.tx_tcp_checksum_v6 and not declared.tx_tcp_checksum_v6)
                    or (asked.rx_tcp_checksum_v6 and not declared.rx_tcp_checksum_v6)):
                return NdisStatus.NOT_SUPPORTED  # more than it declared
            enabled = asked if (asked.tx_tcp_checksum_v6 or asked.rx_tcp_checksum_v6
                                or asked.large_send) else None
            self.offload_enabled = enabled
            set_offload = getattr(self._end, "set_offload", None)
            if set_offload is not None:
                set_offload(enabled is not None and enabled.tx_tcp_checksum_v6)
            return NdisStatus.SUCCESS
        return NdisStatus.NOT_SUPPORTED


def ulong(value: int) -> bytes:
    return _ULONG.pack(value)


def parse_ulong(data: bytes) -> int:
    return int(_ULONG.unpack_from(data)[0])


# The OIDs a miniport answers, shared by every instance (a table of closures per adapter was
# 3 KB of a 10,000-adapter storm's memory per adapter).
_QUERIES: dict[int, Callable[[EmulatedMiniport], bytes | None]] = {
    Oid.GEN_MAXIMUM_SEND_PACKETS: lambda m: ulong(m.config.max_send_packets),
    Oid.E802_3_CURRENT_ADDRESS: lambda m: m.mac,
    Oid.E802_3_PERMANENT_ADDRESS: lambda m: m.mac,
    Oid.GEN_LINK_SPEED: lambda m: ulong(m.config.link_speed_100bps),
    Oid.GEN_MAXIMUM_FRAME_SIZE: lambda m: ulong(m.config.mtu),  # excludes the 14-byte header
    Oid.GEN_MAXIMUM_TOTAL_SIZE: lambda m: ulong(m.config.mtu + 14),
    Oid.GEN_MAXIMUM_LOOKAHEAD: lambda m: ulong(m.config.mtu),
    Oid.GEN_CURRENT_LOOKAHEAD: lambda m: ulong(m.lookahead),
    Oid.GEN_MEDIA_CONNECT_STATUS: lambda m: ulong(
        MediaState.CONNECTED if m.media_connected else MediaState.DISCONNECTED),
    Oid.GEN_CURRENT_PACKET_FILTER: lambda m: ulong(int(m.packet_filter)),
    Oid.E802_3_MULTICAST_LIST: lambda m: b"".join(m.multicast),
    Oid.E802_3_MAXIMUM_LIST_SIZE: lambda m: ulong(m.config.multicast_list_size),
    Oid.TCP_TASK_OFFLOAD: lambda m: (None if m.config.offload is None
                                     else task_offload.pack(m.config.offload)),
}
