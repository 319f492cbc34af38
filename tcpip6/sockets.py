"""trio sockets on the emulated host's IPv6 stack, for services written as ordinary trio code.

The stack itself is sans-IO and lives inside the emulated kernel. A call from a trio task is
posted into the kernel (`Kernel.post`, like a system call entering the stack); data the stack
receives — in tcpip6's receive work item — wakes the waiting task. So a service on a bound
interface answers as long as tcpip6's receive path runs, and goes silent, like everything else
IPv6, when the critical queue knots.

    sock = await host_sockets.udp_socket("nic000", port=5353)
    data, (addr, port) = await sock.recvfrom()
    await sock.sendto(data.upper(), (addr, port))
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import trio

from .errors import Tcpip6Error
from .stack.udp import UdpSocket

if TYPE_CHECKING:
    from .binder import Tcpip6Binder, Tcpip6Binding


class SocketError(Tcpip6Error):
    """A socket call that cannot work (no such interface, interface down, closed socket)."""


def _addr(address: str | bytes) -> bytes:
    if isinstance(address, bytes):
        return address
    return ipaddress.IPv6Address(address.split("%", 1)[0]).packed


class TrioUdpSocket:
    def __init__(self, sockets: HostSockets, state: Tcpip6Binding, sock: UdpSocket) -> None:
        self._sockets = sockets
        self._state = state
        self._sock = sock
        self.port = sock.port
        self._closed = False

    async def sendto(self, data: bytes, address: tuple[str | bytes, int]) -> None:
        """Send one datagram (from the interface's best source address, RFC 6724)."""
        if self._closed:
            raise SocketError("socket is closed")
        dst = (_addr(address[0]), int(address[1]))
        binder = self._sockets.binder
        done = trio.Event()

        def send() -> None:
            state = self._state
            if state.stack is not None:
                frames = self._sock.sendto(bytes(data), dst, binder.kernel.now)
                for frame in frames:
                    binder.ndis.send(state.binding, frame)
            done.set()

        binder.kernel.post(send)
        await done.wait()

    async def recvfrom(self) -> tuple[bytes, tuple[str, int]]:
        """The next datagram and its sender."""
        while True:
            if self._closed:
                raise SocketError("socket is closed")
            got = self._sock.recvfrom()
            if got is not None:
                data, (addr, port) = got
                return data, (str(ipaddress.IPv6Address(addr)), port)
            event = trio.Event()
            self._sockets.binder.wake_on_data(self._sock, event)
            await event.wait()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()


class HostSockets:
    """The socket API of one emulated host (all its interfaces)."""

    def __init__(self, binder: Tcpip6Binder) -> None:
        self.binder = binder

    def _interface(self, adapter: str) -> Tcpip6Binding:
        from .binder import BindPhase

        state = self.binder.interfaces.get(adapter)
        if state is None or state.phase is not BindPhase.UP or state.stack is None:
            raise SocketError(f"interface {adapter!r} is not up")
        return state

    async def udp_socket(self, adapter: str, port: int = 0) -> TrioUdpSocket:
        state = self._interface(adapter)
        assert state.stack is not None
        sock = state.stack.udp_socket(port)
        await trio.lowlevel.checkpoint()
        return TrioUdpSocket(self, state, sock)
