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


class NativeUnavailable(NdisEmuError, ImportError):
    """TCPIP6LAB_NATIVE=require, but the compiled modules cannot be used (one line: why).

    Raised while `ndisemu` is imported, before the CLI's error handling exists: `user_error`
    tells `tcpip6lab.cli` to print it as one line."""

    user_error = True


class InvariantViolation(NdisEmuError):
    """The emulation's own state is inconsistent (a bug of ours, never the user's)."""


class BackendError(NdisEmuError):
    """A real-device backend cannot be set up (one line, exit 2)."""
