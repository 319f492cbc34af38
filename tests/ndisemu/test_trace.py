"""The JSONL event log: what it writes, its hash, and that a run's lines reach the file."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ndisemu.errors import BugCheck
from ndisemu.trace import JsonlSink, Tracer
from tcpip6lab.storm import StormConfig, run_storm


def test_lines_and_hash() -> None:
    out = io.StringIO()
    sink = JsonlSink(out, prefix={"event": "header", "tool": "t"})
    tracer = Tracer(clock=lambda: 1.5)
    tracer.add_sink(sink)
    tracer.emit("exec.item.queued", item="x#1", mac=b"\x02\x00", depth=3)
    digest = sink.close({"event": "trailer", "outcome": "bound"})
    lines = out.getvalue().splitlines()
    assert json.loads(lines[0]) == {"tool": "t", "event": "header"}
    assert lines[1] == ('{"seq":1,"t":1.5,"item":"x#1","mac":"0200","depth":3,'
                        '"event":"exec.item.queued"}')
    assert digest == hashlib.sha256("".join(ln + "\n" for ln in lines[:2]).encode()).hexdigest()
    assert json.loads(lines[2]) == {"event": "trailer", "outcome": "bound", "trace_hash": digest}


def test_a_run_that_fails_midway_leaves_its_lines_on_disk(tmp_path: Path) -> None:
    """Lines are not flushed one by one (a system call each), but a run that ends in an
    exception flushes what it wrote before the exception leaves run_storm."""
    seen: list[dict[str, Any]] = []

    def explode(record: dict[str, Any]) -> None:
        seen.append(record)
        if len(seen) == 1000:
            raise RuntimeError("sink failed")

    path = tmp_path / "run.jsonl"
    with path.open("w", encoding="utf-8") as f:
        with pytest.raises(BaseException) as info:  # inside trio's exception groups
            run_storm(StormConfig(adapters=40, log=f, extra_sinks=[explode]))
        written = path.read_text(encoding="utf-8").splitlines()  # before the file is closed
    # Raised in a work item, or in a DPC (then a BugCheck naming it): where the 1000th record
    # falls depends on the event order.
    assert (info.group_contains(RuntimeError, match="sink failed")
            or info.group_contains(BugCheck, match="sink failed")
            or "sink failed" in str(info.value))
    assert len(written) == 1 + 1000  # the header and every record up to the failure
    assert json.loads(written[0])["event"] == "header"
    assert [json.loads(ln)["seq"] for ln in written[1:6]] == [1, 2, 3, 4, 5]


class _Fields:
    """A field sink (ndisemu.trace.FieldSink): only `events`, as (event, t, fields)."""

    events = frozenset({"exec.item.started"})

    def __init__(self) -> None:
        self.got: list[tuple[str, float, dict[str, Any]]] = []

    def on_event(self, event: str, t: float, fields: dict[str, Any]) -> None:
        self.got.append((event, t, fields))


def test_a_field_sink_gets_only_its_events_and_every_event_counts() -> None:
    tracer = Tracer(clock=lambda: 2.0000000001)
    sink = _Fields()
    tracer.add_sink(sink)
    assert tracer.enabled and tracer.wants("exec.item.started")
    assert not tracer.wants("ndis.request.submitted")
    tracer.emit("exec.item.queued", item="x#1")
    tracer.emit("exec.item.started", item="x#1", worker="critical#0")
    # unrounded virtual time, the emitter's own fields (no seq, no t, no event in them)
    assert sink.got == [("exec.item.started", 2.0000000001, {"item": "x#1",
                                                              "worker": "critical#0"})]
    assert tracer.seq == 2


def test_a_record_sink_beside_a_field_sink_sees_every_record() -> None:
    records: list[dict[str, Any]] = []
    tracer = Tracer(clock=lambda: 1.0)
    fields = _Fields()
    tracer.add_sink(fields)
    tracer.add_sink(records.append)
    assert tracer.wants("ndis.request.submitted")
    tracer.emit("exec.item.queued", item="x#1")
    tracer.emit("exec.item.started", item="x#1", worker="critical#0")
    assert [(r["seq"], r["event"]) for r in records] == [(1, "exec.item.queued"),
                                                         (2, "exec.item.started")]
    # the field sink is handed every event too then (it ignores what it does not draw)
    assert [e for e, _, _ in fields.got] == ["exec.item.queued", "exec.item.started"]
