"""The tcpip6 exception tree, the package's one error module.

Bad inbound frames never reach a caller: wire codecs raise `MalformedFrame` carrying a
`DropReason`, and the stack catches it, drops the frame and counts ``drop.<REASON>``. What
raises to a caller is a local error: a bad option (`ConfigError`), an illegal state-machine
transition (a bug), a socket call that a BSD socket would fail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tcpip6.wire.drops import DropReason


class Tcpip6Error(Exception):
    """Base of every tcpip6 error."""


class ConfigError(Tcpip6Error):
    """An executor or binder option is invalid (one line for the user)."""


class ExecutorSpecError(ConfigError):
    """An executor spec (a registered name or ``MODULE:ATTR``) that names no usable executor:
    unknown name, module not found, no such attribute, or not an OidExecutor subclass."""


class MalformedFrame(Tcpip6Error):
    """Raised by wire parsers; ``reason`` says which rule the input broke."""

    __slots__ = ("reason",)

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


class StackError(Tcpip6Error):
    """Base of the stack's local errors."""


class IllegalTransition(StackError):
    """A state machine got an event its table has no row for."""


class SocketError(StackError):
    """A socket call that a BSD socket would fail (EADDRINUSE, EBADF, ...), on the sans-IO
    sockets and on the trio socket API alike (no such interface, interface down, closed)."""


class WouldBlock(SocketError):
    """A non-blocking call cannot proceed now: nothing to read, or the send buffer lacks room
    (nothing was taken). Wait for the connection's "data"/"writable" event (EAGAIN)."""


class ConnectionReset(SocketError):
    """The connection is gone: ``reason`` is "refused", "reset", "timeout" or "aborted"."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"connection {reason}")
        self.reason = reason


class ConnectionClosed(SocketError):
    """Sending after shutdown_write/close (EPIPE), or reading after close."""


class InterfaceDown(SocketError):
    """A call on a socket whose interface is gone (its adapter was removed): the interface's
    host is closed, and its connections and sockets with it (ENETDOWN)."""
