"""One miniport conformance suite, run against the memory, TAP and veth backends.

The far end is the emulated peer's wire end (memory) or an AF_PACKET socket on Linux's side of
the device, inside the namespace the backend created (TAP, veth). Test frames use the local
experimental EtherType 0x88B5, so Linux's own chatter (MLD reports…) is told apart.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from ndisemu.backends.memory import MemoryCable
from ndisemu.backends.netlink import Registry, in_netns
from ndisemu.backends.topology import SiteSpec, build
from ndisemu.constants import NdisStatus, Oid, PacketFilter, RequestType
from ndisemu.kernel import Kernel
from ndisemu.miniport import MiniportConfig, NdisRequest, ulong
from ndisemu.ndis import Ndis
from ndisemu.pnp import Pnp
from tests.conftest import leftovers, require_real_net, wait_for
from tests.ndisemu.test_ndis import RecordingProtocol

ETHERTYPE = b"\x88\xb5"
MAC = bytes.fromhex("02005e100007")
FAR_MAC = bytes.fromhex("02005e200007")
GROUP = bytes.fromhex("3333000000fb")
OTHER_GROUP = bytes.fromhex("3333000000fc")
BROADCAST = b"\xff" * 6


class FarEnd:
    """The other side of the adapter's medium."""

    def __init__(self, send: Callable[[bytes], None]) -> None:
        self.send = send
        self.got: list[bytes] = []

    def ours(self) -> list[bytes]:
        return [f for f in self.got if f[12:14] == ETHERTYPE]


class Setup:
    def __init__(self, kernel: Kernel, ndis: Ndis, proto: RecordingProtocol, far: FarEnd) -> None:
        self.kernel = kernel
        self.ndis = ndis
        self.proto = proto
        self.far = far

    @property
    def binding(self):  # type: ignore[no-untyped-def]
        return self.proto.bindings[0]

    def ours(self) -> list[bytes]:
        return [f for f in self.proto.received if f[12:14] == ETHERTYPE]


def frame(dst: bytes, tag: int) -> bytes:
    return dst + FAR_MAC + ETHERTYPE + bytes([tag]) * 50


@contextlib.asynccontextmanager
async def backend_setup(backend: str) -> AsyncIterator[Setup]:
    kernel = Kernel(seed=1)
    ndis = Ndis(kernel)
    proto = RecordingProtocol(ndis=ndis, kernel=kernel)
    ndis.register_protocol(proto)
    cfg = MiniportConfig(name="nic007", mac=MAC, latency=0.001, latency_jitter=0.0)
    if backend == "memory":
        async with trio.open_nursery() as nursery:
            await nursery.start(kernel.run)
            wire = MemoryCable(kernel, "w", delay=0.0001)
            far = FarEnd(wire.b.transmit)
            wire.b.attach(far.got.append)
            Pnp(kernel, ndis, wire_factory=lambda _c: wire.a).arrive(cfg)
            yield Setup(kernel, ndis, proto, far)
            nursery.cancel_scope.cancel()
        return
    registry = Registry.open()
    topo = None
    sock = None
    try:
        topo = build(kernel, backend, [SiteSpec("nic007", 7, FAR_MAC, bytes([198, 18, 0, 30]))],
                     netns=None, registry=registry)
        site = topo.sites["nic007"]
        with in_netns(site.netns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
            sock.bind((site.device, 0))
        sock.setblocking(False)
        far = FarEnd(sock.send)

        async def far_reader() -> None:
            assert sock is not None
            while True:
                await trio.lowlevel.wait_readable(sock)
                with contextlib.suppress(BlockingIOError):
                    while True:
                        data, addr = sock.recvfrom(4096)
                        if addr[2] != socket.PACKET_OUTGOING:
                            far.got.append(data)

        async with trio.open_nursery() as nursery:
            await nursery.start(kernel.run)
            nursery.start_soon(site.port.run)
            nursery.start_soon(far_reader)
            Pnp(kernel, ndis, wire_factory=lambda _c: site.port).arrive(cfg)
            yield Setup(kernel, ndis, proto, far)
            nursery.cancel_scope.cancel()
    finally:
        if sock is not None:
            sock.close()
        if topo is not None:
            topo.close()
        else:
            registry.teardown()


@pytest.fixture(params=["memory", "tap", "veth"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name != "memory":
        require_real_net(tun=(name == "tap"))
    return name



async def set_oid(s: Setup, oid: Oid, data: bytes) -> None:
    req = NdisRequest(RequestType.SET, oid, data)
    st = s.ndis.request(s.binding, req)
    if st is NdisStatus.PENDING:
        await wait_for(lambda: req.status is not NdisStatus.PENDING)
    assert req.status is NdisStatus.SUCCESS


async def test_frames_sent_arrive_intact_and_in_order(backend: str) -> None:
    async with backend_setup(backend) as s:
        frames = [frame(FAR_MAC, i) for i in range(20)]
        for f in frames:
            assert s.ndis.send(s.binding, f) in (NdisStatus.SUCCESS, NdisStatus.PENDING)
        await wait_for(lambda: len(s.far.ours()) >= 20)
        assert s.far.ours() == frames


async def test_receive_is_gated_by_packet_filter_and_multicast_list(backend: str) -> None:
    async with backend_setup(backend) as s:
        s.far.send(frame(MAC, 1))
        await trio.sleep(0.2)
        assert s.ours() == []  # no packet filter yet: nothing indicated
        await set_oid(s, Oid.GEN_CURRENT_PACKET_FILTER,
                      ulong(PacketFilter.DIRECTED | PacketFilter.MULTICAST))
        for f in (frame(MAC, 2), frame(BROADCAST, 3), frame(GROUP, 4),
                  frame(bytes.fromhex("02005e10ffff"), 5)):
            s.far.send(f)
        await wait_for(lambda: len(s.ours()) >= 1)
        await trio.sleep(0.1)
        assert s.ours() == [frame(MAC, 2)]  # no broadcast bit, group not listed, not ours
        await set_oid(s, Oid.E802_3_MULTICAST_LIST, GROUP)
        s.proto.received.clear()
        for f in (frame(GROUP, 6), frame(OTHER_GROUP, 7), frame(MAC, 8)):
            s.far.send(f)
        await wait_for(lambda: len(s.ours()) >= 2)
        await trio.sleep(0.1)
        assert s.ours() == [frame(GROUP, 6), frame(MAC, 8)]


async def test_backend_devices_are_removed_afterwards(backend: str) -> None:
    before = leftovers() if backend != "memory" else []
    async with backend_setup(backend) as s:
        assert s.binding.open
    if backend != "memory":
        assert leftovers() == before


def test_a_state_file_write_interrupted_by_ctrl_c_leaves_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry("abc", path=tmp_path / "abc.json")
    reg.links.append("t6l-abc-0")
    reg._save()
    assert json.loads((tmp_path / "abc.json").read_text())["links"] == ["t6l-abc-0"]

    def interrupted(self: Path, target: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reg._save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc.json"]


def test_cleanup_removes_orphaned_temporary_state_files_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ndisemu.backends import netlink

    monkeypatch.setattr(netlink, "STATE_DIR", tmp_path)
    monkeypatch.setattr(netlink, "_list_links", list)  # leave this machine's devices alone
    monkeypatch.setattr(netlink, "_list_netns", list)
    (tmp_path / "dea.99999999.tmp").write_text("")  # its writer is gone (SIGKILL mid-write)
    (tmp_path / "old.tmp").write_text("")  # the format before pids were in the name
    (tmp_path / "liv.1.tmp").write_text("")  # pid 1 is alive: a run writing right now
    removed = netlink.cleanup_leftovers()
    assert sorted(removed) == ["state dea.99999999.tmp", "state old.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liv.1.tmp"]
