"""Errors raised by the sans-IO stack to its *caller* (never for bad inbound frames).

Theory of operation: inbound data never raises — it is dropped and counted with a
:class:`~tcpip6.wire.errors.DropReason`. What raises is a programming or usage error on the
local side: an illegal state-machine transition (a bug), a socket bound twice, a send on a
closed socket. Both sit under :class:`tcpip6.errors.Tcpip6Error`, the package's one root.
"""

from __future__ import annotations

from tcpip6.errors import Tcpip6Error


class StackError(Tcpip6Error):
    """Base of the stack's local errors."""


class IllegalTransition(StackError):
    """A state machine got an event its table has no row for."""


class SocketError(StackError):
    """A sans-IO socket call that a BSD socket would fail (EADDRINUSE, EBADF, ...)."""


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
