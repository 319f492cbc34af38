"""The benchmarks' exception tree: values a user must fix (exit status 2, one line)."""

from __future__ import annotations


class BenchError(Exception):
    """Base of every bench error."""


class BenchUsageError(BenchError):
    """A value or combination the user must fix (exit 2)."""


class GridError(BenchError, ValueError):
    """A grid the user must fix (bench.grid)."""
