"""The receive fast path: a batch of frames that joins one backlog (one tcpip6.receive work
item on the critical queue) gives the same replies, in the same order, as the same frames one at
a time (one item each) — on the memory wire, on both worker drivers."""

from __future__ import annotations

import struct
from typing import Any

import pytest
import trio

from bench.probes import Ends, echo, eth, icmp, ip6, ns_msg, slla, solicited, udp_dgram
from ndisemu.trace import Tracer
from tcpip6.wire.ipv6 import NH_ICMPV6, NH_UDP, link_local_from_mac
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams

PEER_MAC = bytes.fromhex("02aa00000001")
PEER_LL = link_local_from_mac(PEER_MAC)
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")


def frames(host_mac: bytes) -> list[bytes]:
    """An NS that teaches the host our MAC, echo requests of several sizes (one with a bad
    checksum, one to all-nodes), a UDP echo, and a frame for nobody."""
    host_ll = link_local_from_mac(host_mac)
    e = Ends(PEER_LL, PEER_MAC, host_ll, host_mac)
    out = [eth(PEER_MAC, b"\x33\x33" + solicited(host_ll)[12:],
               ip6(PEER_LL, solicited(host_ll), NH_ICMPV6,
                   ns_msg(PEER_LL, solicited(host_ll), host_ll, slla(PEER_MAC)), hlim=255))]
    for seq, size in enumerate((0, 1, 56, 57, 1000)):
        out.append(eth(PEER_MAC, host_mac,
                       ip6(PEER_LL, host_ll, NH_ICMPV6, echo(e, bytes(range(256))[:size] * 1,
                                                             seq=seq))))
    bad = bytearray(echo(e, b"bad", seq=99))
    bad[2] ^= 0xFF
    out.append(eth(PEER_MAC, host_mac, ip6(PEER_LL, host_ll, NH_ICMPV6, bytes(bad))))
    out.append(eth(PEER_MAC, b"\x33\x33\x00\x00\x00\x01",
                   ip6(PEER_LL, ALL_NODES, NH_ICMPV6, echo(e, b"all", seq=7, dst=ALL_NODES))))
    out.append(eth(PEER_MAC, host_mac, ip6(PEER_LL, host_ll, NH_UDP,
                                           udp_dgram(e, dport=7, data=b"udp echo"))))
    out.append(eth(PEER_MAC, bytes.fromhex("02bb00000009"),
                   ip6(PEER_LL, host_ll, NH_ICMPV6, icmp(PEER_LL, host_ll, 128, 0,
                                                         struct.pack("!HH", 1, 1)))))
    for seq in range(8, 24):  # a flood's worth
        out.append(eth(PEER_MAC, host_mac,
                       ip6(PEER_LL, host_ll, NH_ICMPV6, echo(e, b"x" * seq, seq=seq))))
    return out


class Capture:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, frame: bytes, timestamp: float) -> None:
        self.frames.append(frame)


async def replies(workers: str, batched: bool) -> tuple[list[bytes], int, int]:
    """What the host sends back to PEER_MAC; tcpip6.receive items queued; frames sent in."""
    events: list[dict[str, Any]] = []
    tracer = Tracer()
    tracer.add_sink(events.append)
    host = EmulatedHost(ModelParams(), seed=3, workers=workers, tracer=tracer)
    cfg = host.adapter_configs(1)
    async with trio.open_nursery() as nursery:
        await nursery.start(host.kernel.run)
        host.start()
        host.pnp.schedule(cfg, start=host.kernel.now)
        while host.ipv6_ready() < 1:  # noqa: ASYNC110 - the host signals nothing to await
            await trio.sleep(0.05)
        wire = host.wires[cfg[0].name]
        capture = Capture()
        wire.recorder = capture
        mark = len(events)
        batch = frames(cfg[0].mac)
        if batched:  # all at one instant: one DPC sweep indicates them all
            for f in batch:
                wire.b.transmit(f)
            await trio.sleep(0.01)
        else:  # one at a time, each processed before the next arrives
            for f in batch:
                wire.b.transmit(f)
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    host.close()
    items = sum(1 for ev in events[mark:] if ev["event"] == "exec.item.queued"
                and str(ev.get("item", "")).startswith("tcpip6.receive"))
    back = [f for f in capture.frames if f[:6] == PEER_MAC]
    return back, items, len(batch)


@pytest.mark.parametrize("workers", ["coroutines", "tasks"])
async def test_a_batch_gives_the_replies_of_frames_one_at_a_time(
        workers: str, autojump_clock: object) -> None:
    one_by_one, items_single, n = await replies(workers, batched=False)
    batched, items_batch, _ = await replies(workers, batched=True)
    assert batched == one_by_one
    # the NA, 5 echo replies (not the bad checksum, nor the frame for another MAC), the reply
    # to all-nodes, the UDP echo, the flood's 16
    assert len(batched) == 1 + 5 + 1 + 1 + 16
    assert items_single == n - 1  # every frame its own item but the one for another MAC
    assert items_batch == 1  # the batch joined one backlog: one hop through the queue
