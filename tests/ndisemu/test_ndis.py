"""NDIS: request serialization, pending completion, packet-filter and multicast gating, PnP."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from ndisemu.backends.memory import MemoryCable, MemoryCableEnd
from ndisemu.constants import NdisStatus, Oid, PacketFilter, RequestType
from ndisemu.kernel import Kernel
from ndisemu.miniport import MiniportConfig, NdisRequest, parse_ulong, ulong
from ndisemu.ndis import BindContext, Binding, Ndis
from ndisemu.params import DELAYED
from ndisemu.pnp import Pnp

MAC = bytes.fromhex("02005e100001")
OTHER_MAC = bytes.fromhex("02005e100002")
MCAST_LISTED = bytes.fromhex("333300000001")
MCAST_UNLISTED = bytes.fromhex("3333ff000099")
BROADCAST = b"\xff" * 6


@dataclass(eq=False)
class RecordingProtocol:
    """A minimal protocol driver recording what NDIS calls."""

    name: str = "probe"
    ndis: Ndis | None = None
    bindings: list[Binding] = field(default_factory=list)
    completions: list[tuple[int, NdisStatus, float]] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    unbound: list[str] = field(default_factory=list)
    kernel: Kernel | None = None

    def bind_adapter(self, ctx: BindContext) -> NdisStatus:
        assert self.ndis is not None
        self.bindings.append(self.ndis.open_adapter(self, ctx.adapter))
        return NdisStatus.SUCCESS

    def unbind_adapter(self, binding: Binding) -> None:
        self.unbound.append(binding.adapter)

    def request_complete(self, binding: Binding, request: NdisRequest,
                         status: NdisStatus) -> None:
        assert self.kernel is not None
        self.completions.append((request.oid, status, self.kernel.now))

    def receive(self, binding: Binding, frame: bytes) -> None:
        self.received.append(frame)


def frame(dst: bytes, payload: bytes = b"x" * 46) -> bytes:
    return dst + OTHER_MAC + b"\x86\xdd" + payload


class Rig:
    def __init__(self, kernel: Kernel, **cfg: object) -> None:
        self.kernel = kernel
        self.ndis = Ndis(kernel)
        self.proto = RecordingProtocol(ndis=self.ndis, kernel=kernel)
        self.ndis.register_protocol(self.proto)
        self.wire = MemoryCable(kernel, "w0", delay=0.0001)
        self.pnp = Pnp(kernel, self.ndis, wire_factory=self._wire)
        self.config = MiniportConfig(name="nic000", mac=MAC, **cfg)  # type: ignore[arg-type]

    def _wire(self, _cfg: MiniportConfig) -> MemoryCableEnd:
        return self.wire.a

    @property
    def binding(self) -> Binding:
        return self.proto.bindings[0]


async def start(nursery: trio.Nursery, **cfg: object) -> Rig:
    k = Kernel(seed=5)
    await nursery.start(k.run)
    rig = Rig(k, **cfg)
    rig.pnp.arrive(rig.config)
    return rig


async def test_pending_request_completes_after_the_latency(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery, latency=0.01, latency_jitter=0.0)
        req = NdisRequest(RequestType.QUERY, Oid.GEN_LINK_SPEED)
        assert rig.ndis.request(rig.binding, req) is NdisStatus.PENDING
        assert rig.proto.completions == []
        await trio.sleep(0.02)
        assert rig.proto.completions == [(Oid.GEN_LINK_SPEED, NdisStatus.SUCCESS, 0.01)]
        assert parse_ulong(req.data) == rig.config.link_speed_100bps
        nursery.cancel_scope.cancel()


async def test_synchronous_oids_return_at_once_without_a_completion_call(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery, sync_oids=frozenset({Oid.E802_3_CURRENT_ADDRESS}))
        req = NdisRequest(RequestType.QUERY, Oid.E802_3_CURRENT_ADDRESS)
        assert rig.ndis.request(rig.binding, req) is NdisStatus.SUCCESS
        assert req.data == MAC
        await trio.sleep(1)
        assert rig.proto.completions == []
        nursery.cancel_scope.cancel()


async def test_requests_are_serialized_per_miniport(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery, latency=0.01, latency_jitter=0.0)
        oids = [Oid.GEN_LINK_SPEED, Oid.GEN_MAXIMUM_FRAME_SIZE, Oid.GEN_MAXIMUM_TOTAL_SIZE]
        for oid in oids:
            assert rig.ndis.request(rig.binding, NdisRequest(RequestType.QUERY, oid)) \
                is NdisStatus.PENDING
        block = rig.ndis.miniports["nic000"]
        assert block.outstanding == 3 and len(block.queued) == 2
        assert rig.config.name in rig.ndis.miniports
        await trio.sleep(1)
        # One at a time: each starts only after the previous completed (0.01 s apart), and
        # each next one is dispatched by a MiniportWorker item on the delayed queue.
        assert [c[0] for c in rig.proto.completions] == oids
        assert [round(c[2], 6) for c in rig.proto.completions] == [0.01, 0.02, 0.03]
        assert rig.kernel.queue(DELAYED).completed == 2
        assert rig.ndis.miniports["nic000"].miniport.requests_handled == 3
        nursery.cancel_scope.cancel()


async def test_bad_lengths_and_unknown_oids_get_real_ndis_statuses(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery, sync_oids=frozenset(
            {Oid.GEN_CURRENT_LOOKAHEAD, Oid.E802_3_MULTICAST_LIST, Oid.GEN_LINK_SPEED,
             0x00010199}))
        b = rig.binding
        assert rig.ndis.request(b, NdisRequest(RequestType.SET, Oid.GEN_CURRENT_LOOKAHEAD,
                                               b"\x01")) is NdisStatus.INVALID_LENGTH
        assert rig.ndis.request(b, NdisRequest(RequestType.SET, Oid.E802_3_MULTICAST_LIST,
                                               b"\x33" * 7)) is NdisStatus.INVALID_LENGTH
        short = NdisRequest(RequestType.QUERY, Oid.GEN_LINK_SPEED, query_length=2)
        assert rig.ndis.request(b, short) is NdisStatus.INVALID_LENGTH
        assert short.bytes_needed == 4
        assert rig.ndis.request(b, NdisRequest(RequestType.QUERY, 0x00010199)) \
            is NdisStatus.NOT_SUPPORTED
        nursery.cancel_scope.cancel()


async def set_filter(rig: Rig, value: PacketFilter) -> None:
    st = rig.ndis.request(rig.binding, NdisRequest(
        RequestType.SET, Oid.GEN_CURRENT_PACKET_FILTER, ulong(int(value))))
    if st is NdisStatus.PENDING:
        await trio.sleep(0.1)


async def deliver(rig: Rig, frames: list[bytes]) -> list[bytes]:
    rig.proto.received.clear()
    for f in frames:
        rig.wire.b.transmit(f)
    await trio.sleep(0.01)
    return list(rig.proto.received)


async def test_nothing_is_indicated_until_the_packet_filter_is_set(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery)
        frames = [frame(MAC), frame(BROADCAST), frame(MCAST_LISTED)]
        assert await deliver(rig, frames) == []
        await set_filter(rig, PacketFilter.DIRECTED)
        assert rig.binding.packet_filter == PacketFilter.DIRECTED
        assert await deliver(rig, [*frames, frame(bytes.fromhex("02005e10ffff"))]) == \
            [frame(MAC)]
        await set_filter(rig, PacketFilter.DIRECTED | PacketFilter.BROADCAST)
        assert await deliver(rig, frames) == [frame(MAC), frame(BROADCAST)]
        nursery.cancel_scope.cancel()


async def test_multicast_list_gates_multicast_delivery(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery)
        await set_filter(rig, PacketFilter.DIRECTED | PacketFilter.MULTICAST)
        assert await deliver(rig, [frame(MCAST_LISTED), frame(MCAST_UNLISTED)]) == []
        st = rig.ndis.request(rig.binding, NdisRequest(
            RequestType.SET, Oid.E802_3_MULTICAST_LIST, MCAST_LISTED))
        assert st is NdisStatus.PENDING
        await trio.sleep(0.1)
        assert rig.binding.multicast == frozenset({MCAST_LISTED})
        assert rig.ndis.miniports["nic000"].miniport.multicast == [MCAST_LISTED]
        assert await deliver(rig, [frame(MCAST_LISTED), frame(MCAST_UNLISTED)]) == \
            [frame(MCAST_LISTED)]
        await set_filter(rig, PacketFilter.ALL_MULTICAST)
        assert len(await deliver(rig, [frame(MCAST_LISTED), frame(MCAST_UNLISTED)])) == 2
        nursery.cancel_scope.cancel()


async def test_a_full_multicast_table_fails_the_set(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery, multicast_list_size=1)
        req = NdisRequest(RequestType.SET, Oid.E802_3_MULTICAST_LIST,
                          MCAST_LISTED + MCAST_UNLISTED)
        rig.ndis.request(rig.binding, req)
        await trio.sleep(0.1)
        assert req.status is NdisStatus.MULTICAST_FULL
        assert rig.binding.multicast == frozenset()
        nursery.cancel_scope.cancel()


async def test_removal_unbinds_and_stops_delivery(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery)
        await set_filter(rig, PacketFilter.DIRECTED)
        assert await deliver(rig, [frame(MAC)]) == [frame(MAC)]
        queued = NdisRequest(RequestType.QUERY, Oid.GEN_LINK_SPEED)
        rig.ndis.request(rig.binding, NdisRequest(RequestType.QUERY, Oid.GEN_LINK_SPEED))
        rig.ndis.request(rig.binding, queued)
        rig.pnp.remove("nic000")
        assert rig.proto.unbound == ["nic000"]
        assert "nic000" not in rig.ndis.miniports
        assert not rig.binding.open
        assert queued.status is NdisStatus.ADAPTER_REMOVED
        assert await deliver(rig, [frame(MAC)]) == []
        assert rig.ndis.request(rig.binding, NdisRequest(RequestType.QUERY,
                                                         Oid.GEN_LINK_SPEED)) \
            is NdisStatus.ADAPTER_REMOVED
        nursery.cancel_scope.cancel()


async def test_a_burst_arrives_at_one_instant(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        k = Kernel()
        await nursery.start(k.run)
        ndis = Ndis(k)
        proto = RecordingProtocol(ndis=ndis, kernel=k)
        ndis.register_protocol(proto)
        pnp = Pnp(k, ndis)
        configs = [MiniportConfig(name=f"nic{i:03d}", mac=bytes([2, 0, 0, 0, 0, i]))
                   for i in range(5)]
        arrivals = pnp.schedule(configs, start=2.0)
        await trio.sleep(3)
        assert [a.block.name for a in arrivals if a.block] == [c.name for c in configs]
        assert {a.binds[0].completed_at for a in arrivals} == {2.0}
        assert all(a.binds[0].status is NdisStatus.SUCCESS for a in arrivals)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("serialized", [True, False])
async def test_serialized_and_deserialized_sends_leave_in_order_at_link_speed(
        serialized: bool, autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        # 10 Mbit/s: a 1000-byte frame takes (1000 + 24) * 8 / 1e7 s on the medium.
        rig = await start(nursery, serialized=serialized, link_speed_100bps=100_000)
        got: list[tuple[bytes, float]] = []
        rig.wire.b.attach(lambda f: got.append((f, rig.kernel.now)))
        frames = [bytes([0x02, 0, 0, 0, 0, i]) + MAC + b"\x86\xdd" + bytes(986)
                  for i in range(4)]
        statuses = [rig.ndis.send(rig.binding, f) for f in frames]
        block = rig.ndis.miniports["nic000"]
        if serialized:  # NDIS holds the rest while the miniport sends the first
            assert statuses == [NdisStatus.SUCCESS] + [NdisStatus.PENDING] * 3
            assert block.send_queue is not None and len(block.send_queue) == 3
        else:  # the miniport took them all: NDIS never needed a queue
            assert statuses == [NdisStatus.SUCCESS] * 4
            assert block.send_queue is None
        await trio.sleep(0.1)
        assert [f for f, _ in got] == frames
        tx = (1000 + 24) * 8 / 1e7
        gaps = [b[1] - a[1] for a, b in itertools.pairwise(got)]
        assert gaps == pytest.approx([tx] * 3)
        assert block.miniport.tx_idle and not block.send_queue
        nursery.cancel_scope.cancel()


async def test_a_refused_send_does_not_wedge_the_serialized_queue(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        rig = await start(nursery, link_speed_100bps=100_000)
        got: list[bytes] = []
        rig.wire.b.attach(got.append)
        frames = [bytes([0x02, 0, 0, 0, 0, i]) + MAC + b"\x86\xdd" + bytes(986)
                  for i in range(5)]
        for f in frames[:3]:
            rig.ndis.send(rig.binding, f)
        miniport = rig.ndis.miniports["nic000"].miniport
        miniport.media_connected = False  # the link drops while two sends wait in NDIS
        await trio.sleep(0.1)
        miniport.media_connected = True
        for f in frames[3:]:
            rig.ndis.send(rig.binding, f)
        await trio.sleep(0.1)
        assert got == [frames[0], frames[3], frames[4]]
        block = rig.ndis.miniports["nic000"]
        assert block.send_dropped == 2 and not block.send_queue
        nursery.cancel_scope.cancel()
