"""Task offload over a real TAP device, checked against Linux (root, namespaces):

* the emulated host's large sends are cut by Linux into exactly the segments our own NIC model
  cuts (ndisemu/offload.segment_tcp6), byte for byte — captured on the Linux end, after Linux's
  bridge forwarded them out of a veth without TSO (so Linux's tcp_gso_segment does the cutting);
  every captured segment fits the link, has a valid checksum, and the sequence runs on;
* Linux's coalesced super-frames (its TSO over the TAP device) are taken whole, partial
  checksums and all, and every byte comes back;
* with --no-offload every frame both ways is plain and link-sized.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Iterator

import pytest
import trio

from ndisemu import offload
from ndisemu.backends.netlink import PREFIX, in_netns, write_sysctl
from ndisemu.backends.topology import _tx_checksum_off
from tcpip6.wire.ipv6 import NH_TCP, pseudo_header_checksum
from tcpip6lab import services
from tcpip6lab.params import ModelParams, adapter_mac
from tcpip6lab.serve import real_host, running
from tests.conftest import require_real_net, wait_for
from tests.tcpip6lab.test_tcp_interop import where

ETH_P_ALL = 0x0003
MTU = 1500


class Collector:
    """A port recorder keeping the frames the emulated host sends and receives."""

    def __init__(self, mac: bytes) -> None:
        self.mac = mac
        self.sent: list[bytes] = []
        self.received: list[bytes] = []

    def write(self, frame: bytes, timestamp: float) -> None:
        (self.sent if frame[6:12] == self.mac else self.received).append(bytes(frame))


def _tcp_from(frames: list[bytes], mac: bytes) -> list[bytes]:
    return [f for f in frames if f[6:12] == mac and offload.tcp6_offset(f)]


@contextlib.contextmanager
def bridged(ns: str, tap_dev: str, run_id: str) -> Iterator[tuple[str, str]]:
    """In `ns`, a bridge joining the TAP device's Linux side and a veth whose other end is in a
    second namespace (returned with that end's name). The bridge's veth transmits without
    checksum offload, so without TSO: Linux segments what crosses it."""
    from pyroute2 import NetNS
    from pyroute2 import netns as pr_netns

    far = f"{PREFIX}{run_id}-far"
    br, va, vb = f"{PREFIX}{run_id}-br", f"{PREFIX}{run_id}-va", f"{PREFIX}{run_id}-vb"
    pr_netns.create(far)
    try:
        with NetNS(ns) as n:
            n.link("add", ifname=br, kind="bridge")
            n.link("add", ifname=va, kind="veth", peer={"ifname": vb})
            n.link("set", index=n.link_lookup(ifname=vb)[0], net_ns_fd=far)
            bi = n.link_lookup(ifname=br)[0]
            for dev in (tap_dev, va):
                n.link("set", index=n.link_lookup(ifname=dev)[0], master=bi)
            n.link("set", index=n.link_lookup(ifname=va)[0], state="up")
            n.link("set", index=bi, state="up")
        with in_netns(ns):
            _tx_checksum_off(va)
        write_sysctl(far, f"net/ipv6/conf/{vb}/accept_dad", "0")  # usable at once
        with NetNS(far) as f:
            f.link("set", index=f.link_lookup(ifname="lo")[0], state="up")
            f.link("set", index=f.link_lookup(ifname=vb)[0], state="up")
        yield far, vb
    finally:
        with contextlib.suppress(Exception), NetNS(ns) as n:
            for dev in (va, br):
                idx = n.link_lookup(ifname=dev)
                if idx:
                    n.link("del", index=idx[0])
        pr_netns.remove(far)


async def _capture(sock: socket.socket, into: list[bytes], done: trio.Event) -> None:
    while True:
        try:
            data, addr = sock.recvfrom(65_536)
        except BlockingIOError:
            if done.is_set():
                return
            with trio.move_on_after(0.05):
                await trio.lowlevel.wait_readable(sock)
            continue
        if addr[2] != socket.PACKET_OUTGOING:
            into.append(data)


def _valid(frame: bytes) -> bool:
    seg = frame[54:]
    return pseudo_header_checksum(frame[22:38], frame[38:54], len(seg), NH_TCP, seg) == 0


@pytest.mark.parametrize("use_offload", [True, False])
async def test_large_sends_are_cut_as_linux_cuts_them(use_offload: bool) -> None:
    require_real_net()
    mac = adapter_mac(0)
    with real_host(ModelParams(executor="dedicated"), backend="tap", adapters=1,
                   offload=use_offload) as real:
        run_id = real.topology.registry.run_id
        async with running(real) as nursery:
            host = real.host
            services.enable(host, nursery)
            site = real.topology.sites["nic000"]
            ours = Collector(mac)
            site.port.recorder = ours
            host.pnp.schedule(real.configs, start=host.kernel.now)
            await wait_for(lambda: host.ipv6_ready() == 1)
            addr, dev, ns = where(real)
            with bridged(ns, dev, run_id) as (far, vb):
                with in_netns(far):
                    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                        socket.htons(ETH_P_ALL))
                    cap.bind((vb, 0))
                    cap.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
                    cap.setblocking(False)
                    raw = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                    scope = socket.if_nametoindex(vb)
                captured: list[bytes] = []
                done = trio.Event()
                data = os.urandom(2_000_000)
                got = bytearray()
                with cap, trio.fail_after(60):
                    async with trio.open_nursery() as inner:
                        inner.start_soon(_capture, cap, captured, done)
                        stream = trio.SocketStream(trio.socket.from_stdlib_socket(raw))
                        await stream.socket.connect((addr, 7, 0, scope))

                        async def sender() -> None:
                            await stream.send_all(data)
                            await stream.send_eof()

                        async with stream:
                            inner.start_soon(sender)
                            while chunk := await stream.receive_some(1 << 20):
                                got += chunk
                        await trio.sleep(0.3)
                        done.set()
    assert bytes(got) == data
    sent = _tcp_from(ours.sent, mac)
    linux = _tcp_from(captured, mac)
    assert linux and all(len(f) <= MTU + 14 for f in linux)
    assert all(_valid(f) for f in linux)
    if use_offload:
        large = [f for f in sent if len(f) > MTU + 14]
        assert large, "no large send"
        assert any(len(f) > MTU + 14 for f in ours.received), "Linux sent no super-frame"
    else:
        assert all(len(f) <= MTU + 14 for f in sent + ours.received)
        assert all(_valid(f) for f in sent)  # complete checksums: nothing left to the NIC
    # Linux's segments are ours, cut by our NIC model, byte for byte and in order.
    expected = [s for f in sent for s in offload.segment_tcp6(f, offload.segment_size(f, MTU))]
    assert len(linux) == len(expected)
    assert linux == expected
    # And checked against each large send itself, not only our model: Linux's pieces of one
    # send start at its sequence number, run on without gaps and carry exactly its payload
    # (retransmissions may reorder sends, never the pieces of one).
    pos = 0
    for f in sent:
        k = len(offload.segment_tcp6(f, offload.segment_size(f, MTU)))
        pieces, pos = linux[pos : pos + k], pos + k
        seq = _seq(f)
        for piece in pieces:
            assert _seq(piece) == seq
            seq = (seq + len(_payload(piece))) & 0xFFFFFFFF
        assert b"".join(_payload(p) for p in pieces) == _payload(f)
    assert pos == len(linux)


def _seq(frame: bytes) -> int:
    return int(struct.unpack_from("!I", frame, 58)[0])


def _payload(frame: bytes) -> bytes:
    return frame[54 + (frame[66] >> 4) * 4 :]
