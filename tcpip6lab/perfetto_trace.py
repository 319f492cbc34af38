"""`--trace FILE.perfetto-trace`: a run as a Perfetto timeline (open it in ui.perfetto.dev).

A tracer sink (ndisemu.trace) that turns the emulation's events into Perfetto TracePackets,
built with the `perfetto` package's TraceProtoBuilder and streamed to the file as the run goes:
every CHUNK packets the builder's Trace is serialized, appended to the file and started afresh
(a trace file is a concatenation of Trace messages, so the chunks read back as one). Memory
stays bounded by the chunk and the live state (open work items, threads), not the run's
length; building packets in place in the builder's Trace, not one Trace per packet, is what
keeps a traced storm within twice its untraced time. Virtual time is the trace time
(nanoseconds since the emulated boot).

The layout, per emulated host (one Perfetto process each; `PerfettoTrace.host_sink(name)`):

- a track group per work queue (critical, delayed, hypercritical, tcpip.bind, the rescuer,
  dedicated threads…), and in it one track per worker thread (critical#0, …);
- on a thread's track, a slice per work item it runs, named by its routine with the adapter and
  OID it carries (`tcpip6.oid_submit nic003 OID_GEN_LINK_SPEED`), and inside it a slice per
  blocked wait, named by what it waits on (`wait tcpip6.oid_done#41`). In a knot these slices
  never end;
- flows: from an item's insert (an instant on its queue's track) to the slice where a thread
  dequeues it — a completion item stuck behind the knot has a flow that goes nowhere — and from
  the waker (an instant on the signalling thread, or on the host's `kernel (DPC/timer)` track
  when no worker signals) to the end of the wait it releases;
- counters per queue: depth (queued items), threads, blocked threads;
- instants on the host's `PnP & binds`, `faults` and `detector` tracks: arrivals and removals,
  bind start / interface up / bind failure / NDIS bind complete, fault firings and the heal,
  the stall report and the proven knot.

Only the file is written; the emulation's own event trace (and its golden hashes) is the same
with or without this sink.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import IO, Any

from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
    CounterDescriptor,
    ProcessDescriptor,
    TracePacket,
    TrackEvent,
)
from perfetto.trace_builder.proto_builder import TraceProtoBuilder

from ndisemu.trace import Tracer

from .errors import Tcpip6LabError

SEQUENCE_ID = 0x7E6  # one trusted packet sequence: every packet comes from this writer
CHUNK = 4096  # packets per serialized Trace message
_BEGIN, _END = TrackEvent.TYPE_SLICE_BEGIN, TrackEvent.TYPE_SLICE_END
_INSTANT, _COUNTER = TrackEvent.TYPE_INSTANT, TrackEvent.TYPE_COUNTER

_HOST_INSTANTS = {
    "pnp.arrival": "PnP & binds", "pnp.removal": "PnP & binds",
    "pnp.surprise_removal": "PnP & binds", "tcpip6.bind.start": "PnP & binds",
    "tcpip6.interface.up": "PnP & binds", "tcpip6.bind.failed": "PnP & binds",
    "ndis.bind.completed": "PnP & binds", "tcpip6.unbind": "PnP & binds",
    "fault.fired": "faults", "fault.heal": "faults",
    "detector.stall": "detector", "detector.stall_end": "detector",
    "detector.deadlock": "detector", "storm.end": "detector",
}


class PerfettoTrace:
    """One .perfetto-trace file; `host_sink(name)` gives each emulated host its sink."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._file: IO[bytes] = open(path, "wb", buffering=1 << 20)  # noqa: SIM115
        except OSError as exc:
            raise Tcpip6LabError(f"cannot write {str(path)!r}: {exc.strerror}") from None
        self.path = str(path)
        self._builder = TraceProtoBuilder()
        self._add = self._builder.add_packet
        self._in_chunk = 0
        self._uuids = itertools.count(1)
        self._pids = itertools.count(1)
        self._written = 0
        self.closed = False
        self.sinks: list[HostSink] = []

    def uuid(self) -> int:
        return next(self._uuids)

    def packet(self) -> TracePacket:
        """A new packet, in place in the current chunk (fill it before asking for the next)."""
        if self._in_chunk >= CHUNK:
            self._flush()
        self._in_chunk += 1
        p = self._add()
        p.trusted_packet_sequence_id = SEQUENCE_ID
        return p

    @property
    def packets(self) -> int:
        """Packets written so far (and in the chunk being built)."""
        return self._written + self._in_chunk

    def _flush(self) -> None:
        if self._in_chunk:
            self._file.write(self._builder.serialize())
            self._builder = TraceProtoBuilder()
            self._add = self._builder.add_packet
            self._written += self._in_chunk
            self._in_chunk = 0

    def host_sink(self, name: str) -> HostSink:
        return HostSink(self, name, next(self._pids))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                for sink in self.sinks:
                    sink.flush()
                self._flush()
            finally:
                self._file.close()

    def __enter__(self) -> PerfettoTrace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_trace(path: str | None) -> PerfettoTrace | None:
    """The `--trace` option's file, or None without it."""
    return PerfettoTrace(path) if path else None


def tracer_for(trace: PerfettoTrace | None, name: str) -> Tracer | None:
    """A tracer feeding `trace` as the host `name` (None without a trace: the host makes its
    own, disabled one). Give it to the host when it is built: the executive takes its trace
    function then."""
    if trace is None:
        return None
    tracer = Tracer()
    tracer.add_sink(trace.host_sink(name))
    return tracer


class _Queue:
    __slots__ = ("blocked", "blocked_uuid", "depth", "depth_uuid", "threads", "threads_uuid",
                 "uuid")

    def __init__(self, uuid: int, depth: int, threads: int, blocked: int) -> None:
        self.uuid, self.depth_uuid, self.threads_uuid, self.blocked_uuid = (
            uuid, depth, threads, blocked)
        self.depth = self.threads = self.blocked = 0


class HostSink:
    """A tracer sink writing one emulated host's events as one Perfetto process."""

    def __init__(self, trace: PerfettoTrace, name: str, pid: int) -> None:
        self.trace, self.name, self.pid = trace, name, pid
        self.uuid = trace.uuid()
        self._queues: dict[str, _Queue] = {}
        self._workers: dict[str, int] = {}  # worker name -> track uuid
        self._items: dict[str, str] = {}  # queued item label -> its slice name
        self._tracks: dict[str, int] = {}  # host-level instant tracks
        self._current: str | None = None  # the worker whose routine is running now
        self._wakes = itertools.count(1)
        self._insert: tuple[float, _Queue, str] | None = None  # held back by _queued
        self._packet = trace.packet
        trace.sinks.append(self)
        p = trace.packet()
        p.track_descriptor.uuid = self.uuid
        p.track_descriptor.process.CopyFrom(ProcessDescriptor(pid=pid, process_name=name))

    # -- tracks ------------------------------------------------------------------------------

    def _descriptor(self, uuid: int, parent: int, name: str,
                    counter: bool = False) -> None:
        d = self.trace.packet().track_descriptor
        d.uuid, d.parent_uuid, d.name = uuid, parent, name
        if counter:
            d.counter.CopyFrom(CounterDescriptor())

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            t = self.trace
            q = self._queues[name] = _Queue(t.uuid(), t.uuid(), t.uuid(), t.uuid())
            self._descriptor(q.uuid, self.uuid, f"{name} queue")
            self._descriptor(q.depth_uuid, q.uuid, f"{name} depth", counter=True)
            self._descriptor(q.threads_uuid, q.uuid, f"{name} threads", counter=True)
            self._descriptor(q.blocked_uuid, q.uuid, f"{name} blocked", counter=True)
        return q

    def _worker(self, queue: str, worker: str) -> int:
        uuid = self._workers.get(worker)
        if uuid is None:
            uuid = self._workers[worker] = self.trace.uuid()
            self._descriptor(uuid, self._queue(queue).uuid, worker)
        return uuid

    def _host_track(self, name: str) -> int:
        uuid = self._tracks.get(name)
        if uuid is None:
            uuid = self._tracks[name] = self.trace.uuid()
            self._descriptor(uuid, self.uuid, name)
        return uuid

    # -- events ------------------------------------------------------------------------------

    def _event(self, t: float, track: int, kind: int, name: str | None = None,
               flow: int = 0, ends_flow: int = 0, counter: int = 0, value: int = 0,
               annotations: dict[str, Any] | None = None) -> None:
        """One TrackEvent. A nonzero `counter` track gets `value` riding on it (Perfetto's
        extra_counter_values: the counter's value at this event, no packet of its own).
        The hot path of a traced run: positional arguments, no work for absent parts."""
        p = self._packet()
        p.timestamp = int(t * 1e9 + 0.5)
        e = p.track_event
        e.type = kind
        e.track_uuid = track
        if name is not None:
            e.name = name
        if flow:
            e.flow_ids.append(flow)
        if ends_flow:
            e.terminating_flow_ids.append(ends_flow)
        if counter:
            e.extra_counter_track_uuids.append(counter)
            e.extra_counter_values.append(value)
        if annotations:
            for key, v in annotations.items():
                a = e.debug_annotations.add()
                a.name = key
                if isinstance(v, bool):
                    a.bool_value = v
                elif isinstance(v, int):
                    a.int_value = v
                elif isinstance(v, float):
                    a.double_value = v
                else:
                    a.string_value = str(v)

    def _count(self, t: float, track: int, value: int) -> None:
        p = self.trace.packet()
        p.timestamp = int(t * 1e9 + 0.5)
        e = p.track_event
        e.type, e.track_uuid, e.counter_value = _COUNTER, track, value

    def _item_flow(self, label: str) -> int:
        """An item's flow id: its executive id (unique per host), in this host's range."""
        _, _, n = label.rpartition("#")
        return (self.pid << 40) | (int(n) if n.isdigit() else hash(label) & 0xFFFFFFFF)

    def __call__(self, r: dict[str, Any]) -> None:
        event = r["event"]
        if self._insert is not None and not (event == "exec.item.started"
                                             and r["item"] == self._insert[2]):
            self.flush()
        handler = self._handlers.get(event)
        if handler is not None:
            handler(self, r, r["t"])

    def flush(self) -> None:
        """Write the insert held back (see _queued)."""
        if self._insert is not None:
            t, q, label = self._insert
            self._insert = None
            self._event(t, q.uuid, _INSTANT, f"insert {label}", self._item_flow(label), 0,
                        q.depth_uuid, q.depth)

    def _queued(self, r: dict[str, Any], t: float) -> None:
        q = self._queue(r["queue"])
        label = r["item"]
        routine = label.rpartition("#")[0] or label
        adapter, oid = r.get("adapter"), r.get("oid")
        name = routine if adapter is None else f"{routine} {adapter}"
        self._items[label] = name if oid is None else f"{name} {oid}"
        q.depth = int(r.get("depth", q.depth + 1))
        # Held back one event: an item an idle thread takes at once (its exec.item.started is
        # the very next event) needs no insert instant and no flow of length zero — half the
        # items of a storm, and the packets they would cost.
        self._insert = (t, q, label)

    def _started(self, r: dict[str, Any], t: float) -> None:
        q = self._queue(r["queue"])
        label, worker = r["item"], r["worker"]
        q.depth = max(0, q.depth - 1)
        direct = self._insert is not None  # (only this item's insert can still be held)
        self._insert = None
        self._event(t, self._worker(r["queue"], worker), _BEGIN, self._items.pop(label, label),
                    0, 0 if direct else self._item_flow(label), q.depth_uuid, q.depth)
        self._current = worker

    def _completed(self, r: dict[str, Any], t: float) -> None:
        self._event(t, self._worker(r["queue"], r["worker"]), _END)
        if self._current == r["worker"]:
            self._current = None

    def _blocked(self, r: dict[str, Any], t: float) -> None:
        q = self._queue(r["queue"])
        q.blocked += 1
        self._event(t, self._worker(r["queue"], r["worker"]), _BEGIN, f"wait {r['waits_on']}",
                    0, 0, q.blocked_uuid, q.blocked)
        if self._current == r["worker"]:
            self._current = None

    def _resumed(self, r: dict[str, Any], t: float) -> None:
        q = self._queue(r["queue"])
        flow = (self.pid << 40) | (1 << 39) | next(self._wakes)
        waker = self._current
        source = self._workers.get(waker) if waker is not None else None
        if source is None:
            source = self._host_track("kernel (DPC/timer)")
        self._event(t, source, _INSTANT, f"signal {r['obj']}", flow)
        q.blocked = max(0, q.blocked - 1)
        self._event(t, self._worker(r["queue"], r["worker"]), _END, None, 0, flow,
                    q.blocked_uuid, q.blocked)

    def _created(self, r: dict[str, Any], t: float) -> None:
        q = self._queue(r["queue"])
        self._worker(r["queue"], r["worker"])
        q.threads += 1
        self._count(t, q.threads_uuid, q.threads)

    def _exited(self, r: dict[str, Any], t: float) -> None:
        q = self._queue(r["queue"])
        q.threads = max(0, q.threads - 1)
        self._count(t, q.threads_uuid, q.threads)

    def _removed(self, r: dict[str, Any], t: float) -> None:
        q = self._queue(r["queue"])
        self._items.pop(r["item"], None)
        q.depth = max(0, q.depth - 1)
        self._count(t, q.depth_uuid, q.depth)

    def _instant(self, r: dict[str, Any], t: float) -> None:
        event = r["event"]
        fields = {k: v for k, v in r.items() if k not in ("event", "t", "seq")}
        self._event(t, self._host_track(_HOST_INSTANTS[event]), _INSTANT,
                    _instant_name(event, fields), annotations=fields)

    _handlers: dict[str, Any] = {
        "exec.item.queued": _queued, "exec.item.started": _started,
        "exec.item.completed": _completed, "exec.worker.blocked": _blocked,
        "exec.worker.resumed": _resumed, "exec.worker.created": _created,
        "exec.worker.exited": _exited, "exec.item.removed": _removed,
        **dict.fromkeys(_HOST_INSTANTS, _instant),
    }


def _instant_name(event: str, f: dict[str, Any]) -> str:
    if event == "detector.deadlock":
        return (f"knot proven on {f.get('queue')}: {f.get('workers')} workers, "
                f"{f.get('pending')} queued")
    if event == "detector.stall":
        return f"stall on {f.get('queue')}: {f.get('pending')} queued"
    if event == "fault.fired":
        return f"fault {f.get('fault')} ({f.get('action')})"
    where = f.get("adapter")
    return f"{event} {where}" if where else event
