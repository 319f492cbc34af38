"""The tcpip6 exception tree. Bad inbound frames never raise: they are dropped and counted."""

from __future__ import annotations


class Tcpip6Error(Exception):
    """Base of every tcpip6 error."""


class ConfigError(Tcpip6Error):
    """An executor or binder option is invalid (one line for the user)."""


class ExecutorSpecError(ConfigError):
    """An executor spec (a registered name or ``MODULE:ATTR``) that names no usable executor:
    unknown name, module not found, no such attribute, or not an OidExecutor subclass."""
