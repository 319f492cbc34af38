"""The faults exception tree: every error the faults package raises."""

from __future__ import annotations


class FaultsError(Exception):
    """Base of every faults error."""


class PlanError(FaultsError):
    """A plan that cannot run; the message names the file, line and key."""


class ReplayError(FaultsError):
    """The log cannot be replayed (missing, not a storm log, truncated header)."""
