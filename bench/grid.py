"""Grid syntax of `bench storm`: integer and duration sweeps, executor lists.

A grid is a comma list of items; each item is one value or an inclusive range:

    1..64          1, 2, …, 64                 (integers; step 1)
    8..64:8        8, 16, …, 64
    0,1,2,4        a list
    1..4,8,16      ranges and values mixed
    0..2s:250ms    0, 0.25, …, 2 seconds       (durations: tcpip6lab.units' grammar)
    0..20ms        0, 1, …, 20 ms              (no step: one unit of the range's suffix)
    1ms..1s:x10    1 ms, 10 ms, 100 ms, 1 s    (geometric: multiply by 10)

A suffix on the end of a range applies to its bare start and step (`0..20ms` is 0 ms to 20 ms).
Values keep the order given, duplicates are dropped. Anything else raises `GridError` (a
ValueError) with a message naming the bad part.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

from tcpip6.registry import BUILTIN_NAMES
from tcpip6lab.errors import DurationError
from tcpip6lab.units import UNITS, round_seconds, split_duration

from .errors import GridError

EXECUTORS = BUILTIN_NAMES  # what `--executor all` means
MAX_VALUES = 100_000  # a grid axis longer than this is a typo, not a sweep


def _split_duration(text: str) -> tuple[float, str | None]:
    try:
        return split_duration(text)
    except DurationError as exc:
        raise GridError(str(exc)) from None


def parse_duration(text: str) -> float:
    """'0.5', '500ms', '2s', '250us' -> seconds (the application's one grammar)."""
    value, unit = _split_duration(text)
    return _round(value * UNITS[unit])


_round = round_seconds


def _int(text: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"[-+]?[0-9]+", t):
        raise GridError(f"invalid integer {t!r}")
    return int(t)


def _dedup(values: Iterable[float]) -> list[float]:
    seen: set[float] = set()
    out = []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def _items(text: str, what: str) -> list[str]:
    items = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in items):
        raise GridError(f"empty {what} in {text!r} (use e.g. 1..64, 8,16,24)")
    return items


def _range_parts(item: str) -> tuple[str, str, str | None]:
    lo, _, rest = item.partition("..")
    hi, colon, step = rest.partition(":")
    if not lo.strip() or not hi.strip() or (colon and not step.strip()):
        raise GridError(f"invalid range {item!r} (use A..B or A..B:STEP)")
    return lo.strip(), hi.strip(), step.strip() if colon else None


def _expand(lo: float, hi: float, step: float, item: str, geometric: bool) -> list[float]:
    if hi < lo:
        raise GridError(f"range {item!r} runs backwards")
    if geometric:
        if step <= 1:
            raise GridError(f"geometric step in {item!r} must be > 1 (e.g. x2)")
        if lo <= 0:
            raise GridError(f"geometric range {item!r} must start above 0")
        count = math.floor(math.log(hi / lo, step) + 1e-9) + 1
    else:
        if step <= 0:
            raise GridError(f"step in {item!r} must be > 0")
        count = math.floor((hi - lo) / step + 1e-9) + 1
    if count > MAX_VALUES:
        raise GridError(f"range {item!r} has {count} values (at most {MAX_VALUES})")
    if geometric:
        return [_round(lo * step**i) for i in range(count)]
    return [_round(lo + i * step) for i in range(count)]


def parse_int_grid(text: str, *, minimum: int | None = None, name: str = "value") -> list[int]:
    """'1..64', '8..64:8', '1,2,4', '1..4,8' -> list of ints (order kept, no duplicates)."""
    out: list[float] = []
    for item in _items(text, name):
        if ".." in item:
            lo_s, hi_s, step_s = _range_parts(item)
            geometric = step_s is not None and step_s.startswith("x")
            step = 1 if step_s is None else _int(step_s[1:] if geometric else step_s)
            out += _expand(_int(lo_s), _int(hi_s), step, item, geometric)
        else:
            out.append(_int(item))
    values = [int(v) for v in _dedup(out)]
    if minimum is not None:
        bad = [v for v in values if v < minimum]
        if bad:
            raise GridError(f"{name} must be >= {minimum} (got {bad[0]})")
    if len(values) > MAX_VALUES:
        raise GridError(f"{len(values)} values for {name} (at most {MAX_VALUES})")
    return values


def parse_duration_grid(text: str, *, positive: bool = False,
                        name: str = "duration") -> list[float]:
    """'0..2s:250ms', '0,1ms,5ms', '0..20ms', '1ms..1s:x10' -> seconds."""
    out: list[float] = []
    for item in _items(text, name):
        if ".." in item:
            lo_s, hi_s, step_s = _range_parts(item)
            hi, hi_unit = _split_duration(hi_s)
            lo, lo_unit = _split_duration(lo_s)
            scale_hi = UNITS[hi_unit]
            # A bare start (and step) takes the end's unit: 0..20ms is 0 ms to 20 ms.
            scale_lo = UNITS[lo_unit] if lo_unit is not None else scale_hi
            geometric = step_s is not None and step_s.startswith("x")
            if step_s is None:
                step = scale_hi
            elif geometric:
                try:
                    step = float(step_s[1:])
                except ValueError:
                    raise GridError(f"invalid geometric step {step_s!r} in {item!r} "
                                    "(e.g. x2)") from None
            else:
                s, s_unit = _split_duration(step_s)
                step = s * (UNITS[s_unit] if s_unit is not None else scale_hi)
            out += _expand(lo * scale_lo, hi * scale_hi, step, item, geometric)
        else:
            out.append(parse_duration(item))
    values = _dedup(out)
    if positive and any(v <= 0 for v in values):
        raise GridError(f"{name} must be > 0 (got {min(values):g}s)")
    if len(values) > MAX_VALUES:
        raise GridError(f"{len(values)} values for {name} (at most {MAX_VALUES})")
    return values


def parse_executors(text: str) -> list[str]:
    """'all' (the four built-ins) or a comma list of executor specs: critical, dedicated,
    async, rescuer, an installed executor's name, or MODULE:ATTR (each resolved here, kept as
    given: the spec is what travels to the workers)."""
    from tcpip6.errors import Tcpip6Error
    from tcpip6.registry import resolve

    out: list[str] = []
    for item in _items(text, "executor"):
        names = list(EXECUTORS) if item == "all" else [item]
        for name in names:
            try:
                resolve(name)
            except Tcpip6Error as exc:
                hint = f" ('all' = {','.join(EXECUTORS)})" if ":" not in name else ""
                raise GridError(f"{exc}{hint}") from None
            if name not in out:
                out.append(name)
    return out


def executor_order(names: Iterable[str]) -> list[str]:
    """The executors among `names`, once each: the built-ins in their order, then any others
    (users' specs) in the order first seen."""
    seen = list(dict.fromkeys(names))
    return [e for e in EXECUTORS if e in seen] + [e for e in seen if e not in EXECUTORS]


def argtype(parse: Callable[[str], object]) -> Callable[[str], object]:
    """Wrap a parser for argparse: a GridError becomes argparse's one-line usage error."""
    import argparse

    def convert(text: str) -> object:
        try:
            return parse(text)
        except GridError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "grid")
    return convert


def format_duration(seconds: float) -> str:
    """Short label: 0, 250us, 1.5ms, 2s."""
    if seconds == 0:
        return "0"
    if seconds < 1e-3:
        return f"{_round(seconds * 1e6):g}us"
    if seconds < 1:
        return f"{_round(seconds * 1e3):g}ms"
    return f"{_round(seconds):g}s"
