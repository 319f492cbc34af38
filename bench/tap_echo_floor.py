"""The floor: a minimal raw TAP ICMPv6 echo responder (read, swap, patch checksum, write).

Same batching and trio fd loop as the emulated host's TAP port, nothing else: no NDIS, no work
queues, no stack. Neighbor resolution is left out on purpose; the benchmark gives Linux a
permanent neighbor entry for both targets.
"""

from __future__ import annotations

import contextlib
import os

import trio


def _csum_add(csum: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3 incremental update of a one's-complement checksum."""
    s = (~csum & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    return ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF


def echo_reply(frame: bytes) -> bytes | None:
    if len(frame) < 62 or frame[12:14] != b"\x86\xdd" or frame[20] != 58 or frame[54] != 128:
        return None
    out = bytearray(frame)
    out[0:6], out[6:12] = frame[6:12], frame[0:6]  # swap MACs
    out[22:38], out[38:54] = frame[38:54], frame[22:38]  # swap IPv6 addresses
    out[54] = 129  # Echo Request -> Echo Reply; the pseudo-header sum is unchanged by a swap
    csum = _csum_add(int.from_bytes(frame[56:58], "big"), 128 << 8, 129 << 8)
    out[56:58] = csum.to_bytes(2, "big")
    return bytes(out)


async def serve(fd: int, batch: int = 64) -> None:
    """Answer echo requests on a non-blocking TAP fd until cancelled."""
    while True:
        await trio.lowlevel.wait_readable(fd)
        for _ in range(batch):
            try:
                frame = os.read(fd, 2048)
            except BlockingIOError:
                break
            reply = echo_reply(frame)
            if reply is not None:
                with contextlib.suppress(BlockingIOError):
                    os.write(fd, reply)
