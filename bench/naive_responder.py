"""The naive per-frame responder: what a plain trio TAP echo responder costs, nothing clever.

It wakes once per frame (`trio.lowlevel.wait_readable`), reads that one frame (`os.read`),
recomputes the ICMPv6 checksum from scratch in plain Python (RFC 4443 §2.3: the pseudo-header
and the whole message, summed 16 bits at a time) and writes the reply (`os.write`). No batching,
no incremental checksum, no NDIS, no work queues, no stack: issue 18's yardstick for the
emulated host's per-frame cost. (`bench/tap_echo_floor.py`, beside it, is the floor: the same
fd loop as the host's TAP port, 64 frames per wake, an RFC 1624 checksum patch.)

Neighbor resolution is left out on purpose; the benchmark gives Linux a permanent neighbor
entry for it.
"""

from __future__ import annotations

import contextlib
import os

import trio

ETH_IPV6 = b"\x86\xdd"
NH_ICMPV6 = 58
ECHO_REQUEST, ECHO_REPLY = 128, 129


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`, in plain Python, 16 bits at a time."""
    if len(data) & 1:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def echo_reply(frame: bytes) -> bytes | None:
    """The Echo Reply to an Ethernet + IPv6 + ICMPv6 Echo Request frame, else None."""
    if len(frame) < 62 or frame[12:14] != ETH_IPV6 or frame[20] != NH_ICMPV6 \
            or frame[54] != ECHO_REQUEST:
        return None
    plen = int.from_bytes(frame[18:20], "big")
    src, dst = frame[22:38], frame[38:54]
    msg = bytearray(frame[54:54 + plen])
    msg[0] = ECHO_REPLY
    msg[2:4] = b"\0\0"
    pseudo = dst + src + plen.to_bytes(4, "big") + b"\0\0\0" + bytes([NH_ICMPV6])
    msg[2:4] = checksum(pseudo + bytes(msg)).to_bytes(2, "big")
    return frame[6:12] + frame[0:6] + frame[12:22] + dst + src + bytes(msg)


async def serve(fd: int) -> None:
    """Answer echo requests on a non-blocking TAP fd, one wake-up per frame, until cancelled."""
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            frame = os.read(fd, 2048)
        except BlockingIOError:
            continue
        reply = echo_reply(frame)
        if reply is not None:
            with contextlib.suppress(BlockingIOError):
                os.write(fd, reply)
