"""The ndisemu exception tree. NDIS results are NdisStatus values, never exceptions; these are
for misuse of the emulation and for configuration the user got wrong."""

from __future__ import annotations


class NdisEmuError(Exception):
    """Base of every ndisemu error."""


class ConfigError(NdisEmuError):
    """A model parameter is out of range or inconsistent (message is one line for the user)."""


class ExecutiveError(NdisEmuError):
    """The executive was used against its rules (e.g. waiting outside a work item)."""


class BugCheck(NdisEmuError):
    """A work item raised: in NT an unhandled exception in a system worker is a bugcheck."""


class InvariantViolation(NdisEmuError):
    """The emulation's own state is inconsistent (a bug of ours, never the user's)."""


class BackendError(NdisEmuError):
    """A real-device backend cannot be set up (one line, exit 2)."""
