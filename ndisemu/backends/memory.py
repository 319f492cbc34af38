"""The in-memory cable: a point-to-point wire in virtual time (the default backend, no device).

Each end delivers what the other transmits after `delay` virtual seconds, at DPC level of the
kernel that owns the wire. Both directions can be written to one pcap file per wire.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..kernel import Kernel


class FrameRecorder(Protocol):
    def write(self, frame: bytes, timestamp: float) -> None: ...


class WireFaultHook(Protocol):
    """Implemented by faults/: what becomes of one frame put on a wire. Returns None (deliver
    as usual) or a list of (extra delay, frame) to deliver instead — [] drops it."""

    def on_frame(self, wire: MemoryCable, direction: str,
                 frame: bytes) -> list[tuple[float, bytes]] | None: ...


class MemoryCableEnd:
    paced = True  # no real medium: the miniport paces frames at link speed

    def __init__(self, wire: MemoryCable, name: str, direction: str) -> None:
        self.wire = wire
        self.name = name
        self.direction = direction  # "out": adapter -> peer; "in": peer -> adapter
        self.peer: MemoryCableEnd | None = None
        self._receiver: Callable[[bytes], None] | None = None
        self.tx_frames = 0
        self.rx_frames = 0
        self.dropped = 0

    def attach(self, receiver: Callable[[bytes], None]) -> None:
        self._receiver = receiver

    def transmit(self, frame: bytes) -> None:
        self.tx_frames += 1
        wire = self.wire
        if wire.recorder is not None:
            wire.recorder.write(frame, wire.kernel.now + wire.pcap_epoch)
        assert self.peer is not None
        if wire.fault_hook is not None:
            out = wire.fault_hook.on_frame(wire, self.direction, frame)
            if out is not None:
                for extra, f in out:
                    wire.kernel.call_later(wire.delay + extra, self.peer._deliver, f)
                return
        wire.kernel.call_later(wire.delay, self.peer._deliver, frame)

    def _deliver(self, frame: bytes) -> None:
        if self._receiver is None:
            self.dropped += 1
            return
        self.rx_frames += 1
        self._receiver(frame)


class MemoryCable:
    """Two ends, `a` (the adapter side) and `b` (the peer side)."""

    def __init__(self, kernel: Kernel, name: str, *, delay: float = 50e-6,
                 recorder: FrameRecorder | None = None, pcap_epoch: float = 0.0) -> None:
        self.kernel = kernel
        self.name = name
        self.delay = delay
        self.recorder = recorder
        self.pcap_epoch = pcap_epoch
        self.fault_hook: WireFaultHook | None = None
        self.a = MemoryCableEnd(self, f"{name}.a", "out")
        self.b = MemoryCableEnd(self, f"{name}.b", "in")
        self.a.peer = self.b
        self.b.peer = self.a
