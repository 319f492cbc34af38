"""The faults exception tree."""

from __future__ import annotations


class FaultsError(Exception):
    """Base of every faults error."""
