"""The application's exception tree: errors a user must fix (exit status 2, one line)."""

from __future__ import annotations


class Tcpip6LabError(Exception):
    """Base of every tcpip6lab error."""


class UsageError(Tcpip6LabError):
    """A command-line value or combination the user must fix (exit 2)."""


class DurationError(Tcpip6LabError, ValueError):
    """Text that is not a duration of the one grammar (tcpip6lab.units)."""


class ApplicationError(Tcpip6LabError):
    """What an application on the emulated host sees fail (tcpip6lab.apps counts them; they
    never end the run)."""
