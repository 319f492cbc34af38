"""A wire end on a file descriptor (a TAP device, or an AF_PACKET socket on a veth end).

One trio task per fd: it waits until the fd is readable, hands the first frame to the kernel
as an interrupt-like event (`Kernel.interrupt`), then drains up to `batch` more frames with
non-blocking reads and hands them over as one more (skipped while draining finds nothing, but
for every `DRAIN_PROBE`-th wake).
Transmits are non-blocking writes from the emulation's send path; a full device queue drops the
frame and counts it (as a NIC whose ring is full would). No threads on the packet path.
With `vnet` (a TAP device opened with IFF_VNET_HDR) every frame carries a virtio-net header;
vnet.py encodes and decodes it (task offload).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

import trio

from . import vnet as vnethdr

if TYPE_CHECKING:
    from ..kernel import Kernel


DRAIN_PROBE: Final = 8  # with nothing to drain last time, look again on every 8th wake


class Recorder(Protocol):
    def write(self, frame: bytes, timestamp: float) -> None: ...


class FdPort:
    """A `WireEnd` whose medium is a file descriptor."""

    paced = False  # the device's own queue paces frames

    def __init__(self, kernel: Kernel, fd: int, name: str, *, batch: int = 64,
                 sock: socket.socket | None = None, mtu: int = 1500,
                 vnet: bool = False) -> None:
        self.kernel = kernel
        self.fd = fd
        self.name = name
        self.batch = batch
        self.sock = sock  # AF_PACKET: recv skips our own outgoing copies
        self.bufsize = mtu + 18 + 64
        self.mtu = mtu
        # task offload (vnet.py): frames carry a virtio-net header; super-frames both ways
        self.offloads = vnet
        self.tx_partial = False  # tcpip6 enabled TCP checksum offload: its checksums are partial
        if vnet:
            self.bufsize = vnethdr.HDR_LEN + 65_536 + 18  # a super-frame, up to 64 KiB of IP
        self.recorder: Recorder | None = None
        self._receiver: Callable[[bytes], None] | None = None
        self.rx_frames = 0
        self.tx_frames = 0
        self.tx_dropped = 0
        self.rx_batches = 0
        self.closed = False
        # The device's carrier, as Linux sees it (TAP: TUNSETCARRIER; veth: our end down/up);
        # set by backends.topology. None: the medium has no carrier to show.
        self.carrier: Callable[[bool], None] | None = None
        self.carrier_changes = 0

    def attach(self, receiver: Callable[[bytes], None]) -> None:
        self._receiver = receiver

    def transmit(self, frame: bytes) -> None:
        if self.closed:
            return
        try:
            if self.sock is not None:
                self.sock.send(frame)
            elif self.offloads:
                os.writev(self.fd, (vnethdr.encode(frame, self.mtu, self.tx_partial), frame))
            else:
                os.write(self.fd, frame)
        except (BlockingIOError, OSError):
            self.tx_dropped += 1
            return
        self.tx_frames += 1
        if self.recorder is not None:
            self.recorder.write(frame, time.time())

    def set_carrier(self, up: bool) -> None:
        """The emulated cable is plugged in or pulled: show it on the device (a link-flap)."""
        if self.carrier is None or self.closed:
            return
        self.carrier(up)
        self.carrier_changes += 1

    def set_offload(self, tx_checksum: bool) -> None:
        """The miniport's word that tcpip6 enabled TCP checksum offload (and so leaves its TCP
        checksums partial, large sends included)."""
        self.tx_partial = tx_checksum and self.offloads

    def _deliver(self, frames: list[bytes]) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        for frame in frames:
            receiver(frame)

    def _read_batch(self, batch: int) -> list[bytes]:
        frames: list[bytes] = []
        sock = self.sock
        for _ in range(batch):
            try:
                if sock is not None:
                    data, addr = sock.recvfrom(self.bufsize)
                    if addr[2] == socket.PACKET_OUTGOING:
                        continue
                elif self.offloads:
                    data = vnethdr.decode(os.read(self.fd, self.bufsize))
                else:
                    data = os.read(self.fd, self.bufsize)
            except BlockingIOError:
                break
            except OSError:
                break
            frames.append(data)
        return frames

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The fd's reader task: lives in the host's nursery until cancelled."""
        task_status.started()
        recorder_now = time.time
        drain = True
        wakes = 0
        while not self.closed:
            try:
                await trio.lowlevel.wait_readable(self.fd)
            except trio.ClosedResourceError:
                return  # closed under us: the device went away (an adapter's departure)
            # The frame that woke us goes in at once, alone: with one request in flight its
            # reply is out before the read that finds the device empty. Then whatever arrived
            # meanwhile, up to `batch` frames, as one more interrupt — unless the last such
            # read found nothing (one frame per wake: the read that fails costs as much as the
            # frame's own); every DRAIN_PROBE-th wake looks again.
            wakes += 1
            for want in (1, self.batch):
                if want > 1 and not drain and wakes % DRAIN_PROBE:
                    break
                frames = self._read_batch(want)
                if want > 1:
                    drain = bool(frames)
                if not frames:
                    break
                self.rx_frames += len(frames)
                self.rx_batches += 1
                if self.recorder is not None:
                    t = recorder_now()
                    for f in frames:
                        self.recorder.write(f, t)
                self.kernel.interrupt(self._deliver, frames)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # Wake (with ClosedResourceError) a reader still waiting on the fd, if any; outside a
        # trio run nobody can be waiting (RuntimeError).
        with contextlib.suppress(RuntimeError):
            trio.lowlevel.notify_closing(self.fd)
        try:
            if self.sock is not None:
                self.sock.close()
            else:
                os.close(self.fd)
        except OSError:
            pass
