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

import contextlib
import ipaddress
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import trio

from .errors import ConnectionClosed, ConnectionReset, InterfaceDown, SocketError, WouldBlock
from .stack.tcp import TcpListener as StackListener
from .stack.tcpconn import TcpConnection, TcpState
from .stack.udp import UdpSocket

if TYPE_CHECKING:
    from .binder import Tcpip6Binder, Tcpip6Binding


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
            binder = self._sockets.binder
            binder.wake_on_data(self._sock, event)
            try:
                await event.wait()
            finally:
                if not event.is_set():
                    binder.forget_waiter(event)

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

    async def open_tcp_stream(self, adapter: str, address: str | bytes, port: int) -> TcpStream:
        """An active open from `adapter` (like trio.open_tcp_stream); BrokenResourceError if
        refused or timed out."""
        state = self._interface(adapter)
        stack = state.stack
        assert stack is not None
        dst = (_addr(address), int(port))
        conn = await _Call.run(self.binder, state, lambda now: stack.tcp_connect(dst, now))
        await _wait_until(self.binder, lambda: conn.state is TcpState.ESTABLISHED
                          or conn.state is TcpState.CLOSE_WAIT or conn.error is not None)
        if conn.error is not None:
            raise trio.BrokenResourceError(f"connection {conn.error}")
        return TcpStream(self, state, conn)

    async def open_tcp_listener(self, adapter: str, port: int,
                                backlog: int = 16) -> TcpListener:
        state = self._interface(adapter)
        assert state.stack is not None
        listener = state.stack.tcp_listen(port, backlog)
        await trio.lowlevel.checkpoint()
        return TcpListener(self, state, listener)

    async def udp_socket(self, adapter: str, port: int = 0) -> TrioUdpSocket:
        state = self._interface(adapter)
        assert state.stack is not None
        sock = state.stack.udp_socket(port)
        await trio.lowlevel.checkpoint()
        return TrioUdpSocket(self, state, sock)


T = TypeVar("T")


class _Call:
    """Run `fn(now) -> (value, frames)` inside the emulated kernel — posted, like a system call
    entering the stack — send the frames, and return the value to the calling task."""

    @staticmethod
    async def run(binder: Tcpip6Binder, state: Tcpip6Binding,
                  fn: Callable[[float], tuple[T, list[bytes]]], *,
                  checkpoint: bool = True) -> T:
        """`checkpoint=False`: a call that ran at once (inline) returns without a trio
        schedule point — for callers that have had theirs (a wait for data, a lock)."""
        done = trio.Event()
        value: list[T] = []
        error: list[BaseException] = []

        def call() -> None:
            frames: list[bytes] = []
            if state.stack is None:  # unbound: the host is closed, nothing of it may run
                error.append(InterfaceDown(f"interface {state.adapter!r} is down"))
                done.set()
                return
            try:
                result, frames = fn(binder.kernel.now)
                value.append(result)
            except Exception as exc:  # handed to the caller's task, not raised in the kernel
                error.append(exc)
            if state.stack is not None:
                binder.after_stack(state, frames)
            done.set()

        # As an interrupt (Kernel.interrupt): run here and now when the dispatcher is asleep
        # (the coroutine driver), instead of waking its task and then ours — two trio hops
        # fewer per socket call; otherwise posted as before.
        binder.kernel.interrupt(call)
        if not done.is_set():
            await done.wait()
        elif checkpoint:  # ran inline: the schedule point a trio call owes, no cancel after it
            await trio.lowlevel.cancel_shielded_checkpoint()
        if error:
            raise error[0]
        return value[0]


async def _wait_until(binder: Tcpip6Binder, condition: Callable[[], bool]) -> bool:
    """Wait until `condition()` holds (checked after every call into the stack); whether it
    had to wait (a trio schedule point) or held at once (none). A cancelled wait is forgotten
    by the binder."""
    waited = False
    while not condition():
        event = trio.Event()
        binder.wake_when(condition, event)
        try:
            await event.wait()
        finally:
            if not event.is_set():
                binder.forget_waiter(event)
        waited = True
    return waited


def _send(conn: TcpConnection, chunk: bytes, now: float) -> tuple[None, list[bytes]]:
    return None, conn.send(chunk, now)


class TcpStream(trio.abc.HalfCloseableStream):
    """A TCP connection of the emulated host as a trio stream (so trio code runs on top)."""

    def __init__(self, sockets: HostSockets, state: Tcpip6Binding, conn: TcpConnection) -> None:
        self._binder = sockets.binder
        self._state = state
        self.conn = conn
        self._send_lock = trio.StrictFIFOLock()
        self._closed = False

    async def _do(self, fn: Callable[[float], tuple[T, list[bytes]]]) -> T:
        """A socket call for a caller that has had its schedule point (the send lock, or
        receive_some's wait): one trio hop per call fewer when it runs inline."""
        try:
            return await _Call.run(self._binder, self._state, fn, checkpoint=False)
        except ConnectionReset as exc:
            raise trio.BrokenResourceError(f"connection {exc}") from exc
        except InterfaceDown as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        except ConnectionClosed as exc:
            raise trio.ClosedResourceError(str(exc)) from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("stream is closed")
        # As trio's own sockets do: a cancellation point first, the data handed over, and the
        # schedule point after it (unless it waited), so a reply leaves before the yield.
        await trio.lowlevel.checkpoint_if_cancelled()
        lock = self._send_lock
        waited = False
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
            waited = True
        try:
            view = memoryview(data)
            conn = self.conn
            while view:
                if await _wait_until(self._binder, conn.can_send):
                    waited = True
                if conn.error is not None:
                    raise trio.BrokenResourceError(f"connection {conn.error}")
                n = min(len(view), conn.send_space)
                chunk = bytes(view[:n])
                await self._do(partial(_send, conn, chunk))
                view = view[n:]
        finally:
            lock.release()
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await _wait_until(self._binder, self.conn.can_send)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("stream is closed")
        conn = self.conn
        if not await _wait_until(self._binder, conn.is_readable):
            await trio.lowlevel.checkpoint()  # data was there: a schedule point, before taking it

        def recv(_now: float) -> tuple[bytes, list[bytes]]:
            try:
                return conn.recv(max_bytes or 65536), []
            except WouldBlock:
                return b"", []

        data = await self._do(recv)
        if not data and not conn.eof and conn.error is None:
            return await self.receive_some(max_bytes)  # raced with nothing: wait again
        if not data and conn.error is not None and not conn.eof:
            raise trio.BrokenResourceError(f"connection {conn.error}")
        return data

    async def send_eof(self) -> None:
        async with self._send_lock:
            await self._do(lambda now: (None, self.conn.shutdown_write(now)))

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        # Not shielded: when the whole host is being cancelled the kernel will not run the
        # close; the stream is closed for us all the same (trio's aclose contract). An
        # interface that went down took the connection with it: closed as well.
        with contextlib.suppress(InterfaceDown):
            await _Call.run(self._binder, self._state, lambda now: (None, self.conn.close(now)))


class TcpListener(trio.abc.Listener[TcpStream]):
    def __init__(self, sockets: HostSockets, state: Tcpip6Binding, listener: StackListener):
        self._sockets = sockets
        self._state = state
        self.listener = listener

    async def accept(self) -> TcpStream:
        binder = self._sockets.binder
        while True:
            await _wait_until(binder, self.listener.has_pending)
            conn = await _Call.run(binder, self._state,
                                   lambda _now: (self.listener.accept(), []))
            if conn is not None:
                return TcpStream(self._sockets, self._state, conn)

    async def aclose(self) -> None:
        with contextlib.suppress(InterfaceDown):  # gone with its interface: closed as well
            await _Call.run(self._sockets.binder, self._state,
                            lambda now: (None, self.listener.close(now)))
