"""The one duration grammar of every command line and grid: a number, optionally with a unit.

    0.5  500ms  2s  250us  250µs  1.5e-3  1m  2min        (a bare number is seconds)

`split_duration` keeps the unit apart (bench's grids apply a range's suffix to its bare start
and step); `parse_duration` gives seconds, rounded to 12 significant digits so that `0.1` and
`100ms` are the same value.
"""

from __future__ import annotations

import re

from .errors import DurationError

NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
UNITS: dict[str | None, float] = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6,
                                  "m": 60.0, "min": 60.0}
_DURATION = re.compile(rf"^\s*({NUMBER})\s*(us|µs|ms|s|min|m)?\s*$")
EXAMPLES = "e.g. 0, 0.5, 500ms, 2s, 250us, 1m"


def split_duration(text: str) -> tuple[float, str | None]:
    """'500ms' -> (500.0, 'ms'); '2' -> (2.0, None)."""
    m = _DURATION.match(text)
    if m is None:
        raise DurationError(f"invalid duration {text.strip()!r} ({EXAMPLES})")
    return float(m.group(1)), m.group(2)


def round_seconds(x: float) -> float:
    """12 significant digits: 0.1 + 0.2 and 300ms are the same value."""
    return float(f"{x:.12g}")


def parse_duration(text: str) -> float:
    """'0.5', '500ms', '2s', '250us', '1m' -> seconds."""
    value, unit = split_duration(text)
    return round_seconds(value * UNITS[unit])
