"""The trio socket API when an interface goes down under an open socket (its adapter removed):
the host's stack is closed with the interface, and a socket call must not reach into it.
A send fails as a broken stream, a close succeeds (trio's aclose contract) — as when a host is
stopped while its applications unwind."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from tcpip6.wire.ipv6 import link_local_from_mac
from tcpip6lab.apps import PEER_ECHO
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import service_mac


async def test_a_stream_and_a_listener_on_an_interface_that_went_down(
        autojump_clock: MockClock) -> None:
    host = EmulatedHost(seed=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(host.kernel.run)
        host.start()
        host.peer.enable_services()
        host.pnp.schedule(host.adapter_configs(1), start=0.1)
        with trio.fail_after(30):
            while host.ipv6_ready() < 1:  # noqa: ASYNC110 - the host signals nothing
                await trio.sleep(0.05)
        stream = await host.sockets.open_tcp_stream(
            "nic000", link_local_from_mac(service_mac(0)), PEER_ECHO)
        listener = await host.sockets.open_tcp_listener("nic000", 8080)
        await stream.send_all(b"ping\n")
        got = b""
        while len(got) < 5:
            got += await stream.receive_some(64)
        assert got == b"ping\n"  # the stream works before

        host.kernel.post(host.pnp.remove, "nic000")
        await trio.sleep(0.5)
        assert host.ipv6_ready() == 0

        with pytest.raises(trio.BrokenResourceError, match=r"nic000.*down"):
            await stream.send_all(b"more\n")
        await stream.aclose()  # closed with its interface: no error, no call into the stack
        await listener.aclose()
        nursery.cancel_scope.cancel()
