"""A wire end on a file descriptor (a TAP device, or an AF_PACKET socket on a veth end).

One trio task per fd: it waits until the fd is readable, drains up to `batch` frames with
non-blocking reads and hands them to the kernel as one interrupt-like event (`Kernel.post`).
Transmits are non-blocking writes from the emulation's send path; a full device queue drops the
frame and counts it (as a NIC whose ring is full would). No threads on the packet path.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import trio

if TYPE_CHECKING:
    from ..kernel import Kernel


class Recorder(Protocol):
    def write(self, frame: bytes, timestamp: float) -> None: ...


class FdPort:
    """A `WireEnd` whose medium is a file descriptor."""

    paced = False  # the device's own queue paces frames

    def __init__(self, kernel: Kernel, fd: int, name: str, *, batch: int = 64,
                 sock: socket.socket | None = None, mtu: int = 1500) -> None:
        self.kernel = kernel
        self.fd = fd
        self.name = name
        self.batch = batch
        self.sock = sock  # AF_PACKET: recv skips our own outgoing copies
        self.bufsize = mtu + 18 + 64
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

    def _deliver(self, frames: list[bytes]) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        for frame in frames:
            receiver(frame)

    def _read_batch(self) -> list[bytes]:
        frames: list[bytes] = []
        sock = self.sock
        for _ in range(self.batch):
            try:
                if sock is not None:
                    data, addr = sock.recvfrom(self.bufsize)
                    if addr[2] == socket.PACKET_OUTGOING:
                        continue
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
        while not self.closed:
            try:
                await trio.lowlevel.wait_readable(self.fd)
            except trio.ClosedResourceError:
                return  # closed under us: the device went away (an adapter's departure)
            frames = self._read_batch()
            if not frames:
                continue
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
