"""Replay: run a logged storm again from its header and compare the two event streams.

A storm's JSONL log (`storm --log FILE`) starts with a header holding everything the run
depended on — the model parameters, the seed, the fault plan's text — then one line per event
(dispatches, OID requests and completions, fault decisions, detections) and ends with the trace
hash. Because a run is a function of that header, a replay must produce the same events; the
first event that differs is reported by its sequence number.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ReplayError


@dataclass
class Divergence:
    seq: int
    expected: dict[str, Any] | None  # None: the replay produced more events than the log
    got: dict[str, Any] | None  # None: the replay ended before this logged event


@dataclass
class ReplayResult:
    events: int
    logged_hash: str | None
    divergence: Divergence | None


def read_log(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]],
                                        dict[str, Any] | None]:
    """(header, events, trailer) of a storm log."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ReplayError(f"cannot read {p}: {exc.strerror}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            raise ReplayError(f"{p}:{number}: not a JSON line") from None
    if not records or records[0].get("event") != "header" or "params" not in records[0]:
        raise ReplayError(f"{p}: not a tcpip6-lab storm log (no header line)")
    trailer = records[-1] if records[-1].get("event") == "trailer" else None
    events = records[1:-1] if trailer is not None else records[1:]
    return records[0], events, trailer


class Comparator:
    """A trace sink that compares each new event with the logged one at the same place."""

    def __init__(self, logged: list[dict[str, Any]], on_diverge: Callable[[], None]) -> None:
        self._logged: Iterator[dict[str, Any]] = iter(logged)
        self._total = len(logged)
        self.seen = 0
        self.divergence: Divergence | None = None
        self._on_diverge = on_diverge

    @staticmethod
    def normalize(record: dict[str, Any]) -> dict[str, Any]:
        from ndisemu.trace import _jsonable

        normal: dict[str, Any] = json.loads(json.dumps(record, default=_jsonable))
        return normal

    def __call__(self, record: dict[str, Any]) -> None:
        if self.divergence is not None:
            return
        got = self.normalize(record)
        expected = next(self._logged, None)
        self.seen += 1
        if expected != got:
            self.divergence = Divergence(int(got.get("seq", self.seen)), expected, got)
            self._on_diverge()

    def finish(self) -> None:
        if self.divergence is None and self.seen < self._total:
            missing = next(self._logged)
            self.divergence = Divergence(int(missing.get("seq", self.seen + 1)), missing, None)
