"""The receive entry point every sans-IO responder and host shares: count, parse, and turn a
malformed frame into a counted drop (bad inbound data never raises past `handle_frame`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from mypy_extensions import mypyc_attr

from ..errors import MalformedFrame
from ..wire.drops import DropReason


@mypyc_attr(allow_interpreted_subclasses=True)
class FrameHandler:
    """Mix-in: subclasses provide `counters` and `_rx(frame, now) -> frames`."""

    counters: Counter[str]

    def _rx(self, frame: bytes | bytearray | memoryview, now: float) -> list[bytes]:
        raise NotImplementedError

    def handle_frame(self, frame: bytes | bytearray | memoryview, now: float) -> list[bytes]:
        """Process one received frame; return the frames to transmit (possibly none)."""
        counters = self.counters
        counters["rx"] += 1
        try:
            out = self._rx(frame, now)
        except MalformedFrame as exc:
            counters["drop." + exc.reason] += 1
            return []
        if out:
            counters["tx"] += len(out)
        return out

    def handle_batch(self, frames: Iterable[bytes | bytearray | memoryview],
                     now: float) -> list[bytes]:
        """Frames received together (one receive item's backlog), each as `handle_frame`;
        the frames to transmit, in the order of the frames that caused them."""
        out: list[bytes] = []
        for frame in frames:
            out += self.handle_frame(frame, now)
        return out

    def _drop(self, reason: DropReason) -> list[bytes]:
        self.counters["drop." + reason] += 1
        return []
