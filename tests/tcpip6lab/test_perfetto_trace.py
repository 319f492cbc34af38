"""`--trace FILE.perfetto-trace`: the run read back with the perfetto package's protobuf classes
(never a trace processor): tracks per queue and thread, the knot's slices left open, flows from
completion items that nobody dequeues, the counters, the instants, virtual time as trace time —
and the emulation's own event trace unchanged by it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TracePacket, TrackEvent

from tcpip6lab.cli import main
from tests.conftest import default_signals, reaped

BEGIN, END = TrackEvent.TYPE_SLICE_BEGIN, TrackEvent.TYPE_SLICE_END
INSTANT, COUNTER = TrackEvent.TYPE_INSTANT, TrackEvent.TYPE_COUNTER


@dataclass
class ReadBack:
    names: dict[int, str] = field(default_factory=dict)
    parents: dict[int, int] = field(default_factory=dict)
    counters: set[int] = field(default_factory=set)
    processes: dict[int, str] = field(default_factory=dict)  # track uuid -> process name
    events: dict[int, list[TracePacket]] = field(default_factory=lambda: defaultdict(list))
    # counter track -> values in order: COUNTER events, and values riding on other events
    samples: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))

    def uuid(self, name: str, under: str | None = None) -> int:
        found = [u for u, n in self.names.items() if n == name
                 and (under is None or self.names.get(self.parents.get(u, 0)) == under)]
        assert len(found) == 1, (name, found)
        return found[0]

    def children(self, name: str) -> list[str]:
        parent = self.uuid(name)
        return [n for u, n in self.names.items() if self.parents.get(u) == parent]

    def open_slices(self, uuid: int) -> list[str]:
        """The slices still open on a track at the end of the trace, outermost first."""
        stack: list[str] = []
        for p in self.events[uuid]:
            if p.track_event.type == BEGIN:
                stack.append(p.track_event.name)
            elif p.track_event.type == END:
                stack.pop()
        return stack

    def last_count(self, name: str, under: str) -> int:
        return self.samples[self.uuid(name, under)][-1]

    def all_events(self) -> list[TracePacket]:
        return [p for evs in self.events.values() for p in evs]


def read_trace(path: Path) -> ReadBack:
    trace = Trace()
    trace.ParseFromString(path.read_bytes())  # the streamed Trace messages concatenate
    rb = ReadBack()
    for p in trace.packet:
        assert p.trusted_packet_sequence_id != 0
        if p.HasField("track_descriptor"):
            d = p.track_descriptor
            assert d.uuid not in rb.names  # described once
            if d.HasField("process"):
                rb.processes[d.uuid] = d.process.process_name
                rb.names[d.uuid] = d.process.process_name
            else:
                rb.names[d.uuid] = d.name
                rb.parents[d.uuid] = d.parent_uuid
                assert d.parent_uuid in rb.names  # a parent is described before its children
            if d.HasField("counter"):
                rb.counters.add(d.uuid)
        else:
            e = p.track_event
            assert e.track_uuid in rb.names  # every event on a described track
            track = rb.events[e.track_uuid]
            assert not track or p.timestamp >= track[-1].timestamp  # each host's virtual time
            rb.events[e.track_uuid].append(p)
            if e.type == COUNTER:
                assert e.track_uuid in rb.counters
                rb.samples[e.track_uuid].append(e.counter_value)
            assert len(e.extra_counter_track_uuids) == len(e.extra_counter_values)
            for uuid, value in zip(e.extra_counter_track_uuids, e.extra_counter_values,
                                   strict=True):
                assert uuid in rb.counters
                rb.samples[uuid].append(value)
    return rb


def storm(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str,
          name: str = "run.perfetto-trace") -> tuple[dict[str, Any], ReadBack]:
    path = tmp_path / name
    assert main(["storm", "--json", "--trace", str(path), *args]) == 0
    result = json.loads(capsys.readouterr().out)
    return result, read_trace(path)


def test_a_knotted_storm_read_back(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    r, rb = storm(capsys, tmp_path, "--adapters", "24")
    assert r["outcome"] == "deadlock"
    cw = r["critical_workers"]
    # one process for the emulated host; a track group per queue, a track per thread in it
    assert list(rb.processes.values()) == ["storm host (critical executor)"]
    queues = [n for u, n in rb.names.items() if rb.parents.get(u) in rb.processes]
    assert {"critical queue", "delayed queue", "hypercritical queue", "tcpip.bind queue",
            "PnP & binds", "detector"} <= set(queues)
    threads = [n for n in rb.children("critical queue") if "#" in n]
    assert len(threads) == cw["static"] + cw["dynamic_created"]
    assert sorted(threads, key=lambda n: int(n.split("#")[1]))[0] == "critical#0"
    # the knot: every critical thread is still inside a work item, blocked in a wait
    knotted = {}
    for name in threads:
        stack = rb.open_slices(rb.uuid(name, "critical queue"))
        if stack and stack[-1].startswith("wait "):
            knotted[name] = stack
    assert len(knotted) == cw["blocked_at_end"] == len(threads)
    submits = [s for s in knotted.values() if s[0].startswith("tcpip6.oid_submit nic")]
    assert submits and all(s[0].split()[2].startswith("OID_") and
                           s[1].startswith("wait tcpip6.oid_done#") for s in submits)
    assert len(submits) + r["params"]["foreign_holders"] == len(knotted)
    # flows: each insert flows to the slice that dequeues it; the completion items that would
    # release the knot are inserted and never dequeued: their flows end nowhere
    ended = {f for p in rb.all_events() for f in p.track_event.terminating_flow_ids}
    inserts = [p for p in rb.events[rb.uuid("critical queue")] if p.track_event.type == INSTANT]
    stuck = [p.track_event.name for p in inserts
             if not set(p.track_event.flow_ids) & ended]
    assert len(stuck) == cw["pending_at_end"]
    assert sum(n.startswith("insert tcpip6.oid_complete#") for n in stuck) == len(submits)
    assert all(p.track_event.flow_ids for p in inserts)
    # a waker's flow ends a wait: the tcpip.bind threads are released many times
    wake_ends = [p for u in (rb.uuid(n, "tcpip.bind queue") for n in
                             rb.children("tcpip.bind queue") if "#" in n)
                 for p in rb.events[u] if p.track_event.type == END
                 and p.track_event.terminating_flow_ids]
    assert wake_ends
    starts = {f for p in rb.all_events() if p.track_event.type == INSTANT
              and p.track_event.name.startswith("signal ") for f in p.track_event.flow_ids}
    assert {f for p in wake_ends for f in p.track_event.terminating_flow_ids} <= starts
    # counters: the queue's depth, threads and blocked threads as the run ends
    assert rb.last_count("critical depth", "critical queue") == cw["pending_at_end"]
    assert rb.last_count("critical threads", "critical queue") == len(threads)
    assert rb.last_count("critical blocked", "critical queue") == cw["blocked_at_end"]
    assert {rb.uuid(n, "critical queue") for n in ("critical depth", "critical threads",
                                                   "critical blocked")} <= rb.counters
    # instants: arrivals at the first arrival's virtual time, binds, and the knot — proven from
    # its declared wakers before any stall is reported
    pnp = [p for p in rb.events[rb.uuid("PnP & binds")]]
    arrivals = [p for p in pnp if p.track_event.name.startswith("pnp.arrival ")]
    assert len(arrivals) == r["adapters"]
    assert {p.timestamp for p in arrivals} == {1_000_000_000}  # start = 1.0 virtual second
    assert sum(p.track_event.name.startswith("tcpip6.bind.start ") for p in pnp) == 24
    detector = [p.track_event.name for p in rb.events[rb.uuid("detector")]]
    assert not any(n.startswith("stall on ") for n in detector)
    assert (f"knot proven on critical: {len(threads)} workers, {cw['pending_at_end']} queued"
            in detector)


def test_a_stall_is_an_instant(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Every static critical worker held for 7 s while the pool cannot grow: a stall that is
    reported, then ends."""
    plan = tmp_path / "hold.toml"
    plan.write_text('[[queue]]\nid = "hog"\naction = "hold"\nworkers = 12\nat = 0.5\n'
                    'duration = 7.0\n')
    r, rb = storm(capsys, tmp_path, "--adapters", "2", "--executor", "async",
                  "--foreign-holders", "0", "--max-dynamic", "0", "--faults", str(plan))
    assert r["outcome"] == "bound" and len(r["stalls"]) == 1
    detector = [p.track_event.name for p in rb.events[rb.uuid("detector")]]
    assert sum(n.startswith("stall on critical") for n in detector) == 1
    assert not any(n.startswith("knot proven") for n in detector)


def test_a_bound_storm_closes_every_slice_and_flow(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    r, rb = storm(capsys, tmp_path, "--adapters", "6", "--executor", "dedicated")
    assert r["outcome"] == "bound"
    # only the other components' holds (foreign_holders, by design) are still open
    open_ = [rb.open_slices(u) for u, n in rb.names.items() if "#" in n and u not in rb.counters]
    held = [s for s in open_ if s]
    assert len(held) == r["params"]["foreign_holders"] > 0
    assert all(s[0] == "foreign.hold" and s[1].startswith("wait foreign.") for s in held)
    ended = {f for p in rb.all_events() for f in p.track_event.terminating_flow_ids}
    unended = [p.track_event.name for p in rb.all_events()
               if set(p.track_event.flow_ids) - ended]
    assert unended == []
    assert rb.last_count("critical blocked", "critical queue") == len(held)


def test_fault_firings_are_instants(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[[oid]]\noid = "OID_GEN_CURRENT_PACKET_FILTER"\naction = "fail"\n'
                    'status = "NDIS_STATUS_NOT_SUPPORTED"\n')
    r, rb = storm(capsys, tmp_path, "--adapters", "3", "--executor", "dedicated",
                  "--faults", str(plan))
    fired = [p for p in rb.events[rb.uuid("faults")]
             if p.track_event.name == "fault oid0 (fail)"]
    assert len(fired) == r["faults"]["total_fired"] > 0
    failed = [p for p in rb.events[rb.uuid("PnP & binds")]
              if p.track_event.name.startswith("tcpip6.bind.failed ")]
    assert len(failed) == r["adapters_failed"] == 3


def test_the_trace_leaves_the_event_log_unchanged(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    hashes = []
    for traced in (False, True):
        args = ["storm", "--json", "--adapters", "24", "--log", str(tmp_path / "run.jsonl")]
        if traced:
            args += ["--trace", str(tmp_path / "t.perfetto-trace")]
        assert main(args) == 0
        hashes.append(json.loads(capsys.readouterr().out)["trace_hash"])
    assert hashes[0] == hashes[1]


def test_an_unwritable_trace_is_one_line(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    assert main(["storm", "--adapters", "2", "--trace", str(tmp_path / "no" / "t.pf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err


def test_demo_traces_both_hosts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "demo.perfetto-trace"
    assert main(["demo", "--plain", "--speed", "40", "--trace", str(path)]) == 0
    assert "Verdict:" in capsys.readouterr().out
    rb = read_trace(path)
    assert sorted(rb.processes.values()) == ["fixed (dedicated)", "unpatched (critical)"]
    knots = {rb.processes[rb.parents[u]]: [p.track_event.name for p in rb.events[u]]
             for u, n in rb.names.items() if n == "detector"}
    assert any(n.startswith("knot proven on critical") for n in knots["unpatched (critical)"])
    assert not any(n.startswith("knot") for n in knots.get("fixed (dedicated)", []))
    # each host has its own tracks: two critical queues, one per process
    assert sorted(rb.processes[rb.parents[u]] for u, n in rb.names.items()
                  if n == "critical queue") == ["fixed (dedicated)", "unpatched (critical)"]


def test_serve_writes_its_trace_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "serve.perfetto-trace"
    env = dict(os.environ)  # the installed package: the wheel in ./lab test's first pass
    proc = subprocess.Popen([sys.executable, "-m", "tcpip6lab.cli", "serve", "--adapters", "3",
                             "--trace", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL, preexec_fn=default_signals)
    with reaped(proc):
        assert proc.stdout is not None
        seen = ""
        while "3/3" not in seen:  # the progress line once every adapter is bound
            line = proc.stdout.readline()
            assert line, seen
            seen += line
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    rb = read_trace(path)
    assert list(rb.processes.values()) == ["serve host (memory)"]
    pnp = [p.track_event.name for p in rb.events[rb.uuid("PnP & binds")]]
    assert sum(n.startswith("tcpip6.interface.up ") for n in pnp) == 3


def test_small_chunks_write_the_same_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The packets stream out every CHUNK packets, and the hot path's packet shapes start
    afresh each time (a track described mid-event included): with a chunk of 7 packets the
    file holds the same packets as with the default."""
    from tcpip6lab import perfetto_trace

    args = ("--adapters", "24", "--faults", str(tmp_path / "plan.toml"))
    (tmp_path / "plan.toml").write_text('[[oid]]\noid = "OID_GEN_LINK_SPEED"\n'
                                        'action = "fail"\nstatus = "NDIS_STATUS_FAILURE"\n')
    storm(capsys, tmp_path, *args, name="big.perfetto-trace")
    monkeypatch.setattr(perfetto_trace, "CHUNK", 7)
    storm(capsys, tmp_path, *args, name="small.perfetto-trace")
    big, small = Trace(), Trace()
    big.ParseFromString((tmp_path / "big.perfetto-trace").read_bytes())
    small.ParseFromString((tmp_path / "small.perfetto-trace").read_bytes())
    assert len(big.packet) > 100 * 7  # a hundred chunks and more
    assert list(small.packet) == list(big.packet)


def test_a_queue_depth_is_sampled_where_it_changes(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    _, rb = storm(capsys, tmp_path, "--adapters", "24", "--executor", "dedicated")
    depth = [u for u, n in rb.names.items() if n.endswith(" depth")]
    assert depth and any(rb.samples[u] for u in depth)
    for u in depth:
        values = rb.samples[u]
        assert all(a != b for a, b in pairwise(values)), rb.names[u]
