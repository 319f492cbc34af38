"""`--trace FILE.perfetto-trace`: a run as a Perfetto timeline (open it in ui.perfetto.dev).

A tracer sink (ndisemu.trace) that turns the emulation's events into Perfetto TracePackets,
built with the `perfetto` package's TraceProtoBuilder and streamed to the file as the run goes.
A trace file is a concatenation of Trace messages, so each packet is written as the
serialization of a one-packet Trace: the hot path keeps one such Trace per packet shape (a
slice's begin with a counter sample, a wait's end with its flow, …: `_Shape`), sets the fields
that vary and serializes it — no packet object per event, which with protobuf's upb backend is
most of a packet's cost — and every CHUNK packets the bytes go to the file (and the shapes start
afresh). Memory stays bounded by the chunk and the live state (open work items, threads), not
the run's length. The tracer hands this sink only the events it draws, as the emitter's fields
(no record dict); a queue's depth is sampled only where it changes. Together — with this module
and ndisemu.trace compiled in the wheel — that keeps a traced 10,000-adapter storm within twice
its untraced time (`python -m bench.trace_cost`). Virtual time is the trace time (nanoseconds
since the emulated boot).

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


class _Shape:
    """One kind of packet the hot path writes (a worker's slice end, a wait's begin with its
    blocked-threads sample, …): a TracePacket held in a one-packet Trace of the package's
    TraceProtoBuilder, its constant fields set once; an event sets the rest in place and
    serializes that Trace. Trace messages concatenate, so the bytes are framed packets of the
    file as they are — and no packet object is made per event, which is what a packet
    costs in Python with the upb backend (its sub-message and repeated-field wrappers)."""

    def __init__(self, kind: int | None, *, flow: bool = False, ends_flow: bool = False,
                 counter: bool = False) -> None:
        self.kind, self._flow, self._ends_flow, self._counter = kind, flow, ends_flow, counter
        self.reset()

    def reset(self) -> None:
        """Afresh (the strings set in a message stay in its arena until the message goes)."""
        builder = TraceProtoBuilder()
        self.packet = p = builder.add_packet()
        p.trusted_packet_sequence_id = SEQUENCE_ID
        self.serialize = builder.trace.SerializeToString
        self.event = e = p.track_event
        if self.kind is None:  # any packet (PerfettoTrace.packet clears it for each)
            p.Clear()
            return
        e.type = self.kind
        # one-element repeated fields, set by index: [0] is this event's value
        self.flows = e.flow_ids
        if self._flow:
            self.flows.append(0)
        self.ends = e.terminating_flow_ids
        if self._ends_flow:
            self.ends.append(0)
        self.counters = e.extra_counter_track_uuids
        self.values = e.extra_counter_values
        if self._counter:
            self.counters.append(0)
            self.values.append(0)


class PerfettoTrace:
    """One .perfetto-trace file; `host_sink(name)` gives each emulated host its sink."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._file: IO[bytes] = open(path, "wb", buffering=1 << 20)  # noqa: SIM115
        except OSError as exc:
            raise Tcpip6LabError(f"cannot write {str(path)!r}: {exc.strerror}") from None
        self.path = str(path)
        self._chunk: list[bytes] = []  # serialized packets not yet written
        self.out = self._chunk.append
        self._uuids = itertools.count(1)
        self._pids = itertools.count(1)
        self._written = 0
        self.closed = False
        self.sinks: list[HostSink] = []
        # the hot path's packets (HostSink): a slice begins (with the flow it ends, with a
        # counter sample) or ends, an instant (with a flow, with a sample), a counter alone
        self.begin = _Shape(_BEGIN)
        self.begin_ends = _Shape(_BEGIN, ends_flow=True)
        self.begin_count = _Shape(_BEGIN, counter=True)
        self.begin_ends_count = _Shape(_BEGIN, ends_flow=True, counter=True)
        self.end = _Shape(_END)
        self.end_ends_count = _Shape(_END, ends_flow=True, counter=True)
        self.instant_flow = _Shape(_INSTANT, flow=True)
        self.instant_flow_count = _Shape(_INSTANT, flow=True, counter=True)
        self.counter = _Shape(_COUNTER)
        self._any = _Shape(None)  # the rest: descriptors, instants with annotations
        self._shapes = (self.begin, self.begin_ends, self.begin_count, self.begin_ends_count,
                        self.end, self.end_ends_count, self.instant_flow,
                        self.instant_flow_count, self.counter, self._any)

    def uuid(self) -> int:
        return next(self._uuids)

    def packet(self) -> TracePacket:
        """A packet of this trace's sequence for the rare kinds (descriptors, instants with
        annotations), empty: fill it, then `write()` it before asking for the next."""
        p = self._any.packet
        p.Clear()
        p.trusted_packet_sequence_id = SEQUENCE_ID
        return p

    def write(self) -> None:
        """Append the packet `packet()` gave."""
        self.out(self._any.serialize())
        self.written()

    def written(self) -> None:
        """One more packet in the chunk (`out`): every CHUNK packets it goes to the file."""
        if len(self._chunk) >= CHUNK:
            self._flush()

    @property
    def packets(self) -> int:
        """Packets written so far (and in the chunk being built)."""
        return self._written + len(self._chunk)

    def _flush(self) -> None:
        if self._chunk:
            self._file.write(b"".join(self._chunk))
            self._written += len(self._chunk)
            self._chunk.clear()
            for shape in self._shapes:
                shape.reset()

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
    __slots__ = ("blocked", "blocked_uuid", "depth", "depth_shown", "depth_uuid", "threads",
                 "threads_uuid", "uuid")

    def __init__(self, uuid: int, depth: int, threads: int, blocked: int) -> None:
        self.uuid, self.depth_uuid, self.threads_uuid, self.blocked_uuid = (
            uuid, depth, threads, blocked)
        self.depth = self.threads = self.blocked = 0
        self.depth_shown = -1  # the depth the trace last showed (a sample only on a change)


class HostSink:
    """A tracer sink writing one emulated host's events as one Perfetto process.

    A field sink (ndisemu.trace.FieldSink): the tracer hands it only the events below, as the
    emitter's fields, with no record built for it. The handlers are the hot path of a traced
    run — about a million packets for a 10,000-adapter storm — so each writes its packet
    itself, setting only the fields it has."""

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
        #: what the tracer hands this sink (FieldSink.events): nothing else is built for it
        self.events = _EVENTS
        self._flow_base = pid << 40
        self._wake_base = (pid << 40) | (1 << 39)
        trace.sinks.append(self)
        p = trace.packet()
        p.track_descriptor.uuid = self.uuid
        p.track_descriptor.process.CopyFrom(ProcessDescriptor(pid=pid, process_name=name))
        trace.write()

    # -- tracks ------------------------------------------------------------------------------

    def _descriptor(self, uuid: int, parent: int, name: str,
                    counter: bool = False) -> None:
        p = self.trace.packet()
        d = p.track_descriptor
        d.uuid, d.parent_uuid, d.name = uuid, parent, name
        if counter:
            d.counter.CopyFrom(CounterDescriptor())
        self.trace.write()

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
    # Each handler fills one of the trace's packet shapes (`_Shape`: only the fields that
    # event has) and appends its bytes; virtual seconds become nanoseconds of trace time. A
    # track is looked up (and described, if new) before a shape is filled: a descriptor may
    # end the chunk, which starts the shapes afresh.

    def _count(self, t: float, track: int, value: int) -> None:
        trace = self.trace
        s = trace.counter
        s.packet.timestamp = int(t * 1e9 + 0.5)
        e = s.event
        e.track_uuid = track
        e.counter_value = value
        trace.out(s.serialize())
        trace.written()

    def _item_flow(self, label: str) -> int:
        """An item's flow id: its executive id (unique per host), in this host's range."""
        _, _, n = label.rpartition("#")
        return self._flow_base | (int(n) if n.isdigit() else hash(label) & 0xFFFFFFFF)

    def on_event(self, event: str, t: float, f: dict[str, Any]) -> None:
        held = self._insert
        if held is not None and not (event == "exec.item.started" and f["item"] == held[2]):
            self.flush()
        # the executive's events by how often a storm has them (one comparison each, no
        # dispatch table: the same in a compiled and in a pure module)
        if event == "exec.item.started":
            self._started(f, t)
        elif event == "exec.item.queued":
            self._queued(f, t)
        elif event == "exec.item.completed":
            self._completed(f, t)
        elif event == "exec.worker.blocked":
            self._blocked(f, t)
        elif event == "exec.worker.resumed":
            self._resumed(f, t)
        elif event == "exec.worker.created":
            self._created(f, t)
        elif event == "exec.worker.exited":
            self._exited(f, t)
        elif event == "exec.item.removed":
            self._removed(f, t)
        elif event in _HOST_INSTANTS:
            self._instant(event, f, t)

    def __call__(self, r: dict[str, Any]) -> None:
        """As a record sink (the tracer gives it fields instead: `on_event`)."""
        event = r["event"]
        if event in _EVENTS:
            self.on_event(event, r["t"], {k: v for k, v in r.items()
                                          if k not in ("event", "t", "seq")})

    def flush(self) -> None:
        """Write the insert held back (see _queued)."""
        if self._insert is not None:
            t, q, label = self._insert
            self._insert = None
            trace = self.trace
            if q.depth != q.depth_shown:
                q.depth_shown = q.depth
                s = trace.instant_flow_count
                s.counters[0] = q.depth_uuid
                s.values[0] = q.depth
            else:
                s = trace.instant_flow
            s.packet.timestamp = int(t * 1e9 + 0.5)
            e = s.event
            e.track_uuid = q.uuid
            e.name = f"insert {label}"
            s.flows[0] = self._item_flow(label)
            trace.out(s.serialize())
            trace.written()

    def _queued(self, f: dict[str, Any], t: float) -> None:
        queue = f["queue"]
        q = self._queues.get(queue) or self._queue(queue)
        label = f["item"]
        routine = label.rpartition("#")[0] or label
        adapter, oid = f.get("adapter"), f.get("oid")
        name = routine if adapter is None else f"{routine} {adapter}"
        self._items[label] = name if oid is None else f"{name} {oid}"
        depth = f.get("depth")
        q.depth = q.depth + 1 if depth is None else int(depth)
        # Held back one event: an item an idle thread takes at once (its exec.item.started is
        # the next event this sink takes, at the same virtual time) needs no insert instant and
        # no flow of length zero — half the items of a storm, and the packets they would cost.
        self._insert = (t, q, label)

    def _started(self, f: dict[str, Any], t: float) -> None:
        queue, label, worker = f["queue"], f["item"], f["worker"]
        q = self._queues.get(queue) or self._queue(queue)
        held = self._insert  # (only this item's insert can still be held)
        if held is not None and held[0] != t:
            self.flush()  # taken at once, but not at the same time: the insert is shown
            held = None
        self._insert = None
        depth = q.depth = max(0, q.depth - 1)
        trace = self.trace
        track = self._workers.get(worker) or self._worker(queue, worker)
        if depth != q.depth_shown:  # a counter sample only where the depth changed
            q.depth_shown = depth
            s = trace.begin_count if held is not None else trace.begin_ends_count
            s.counters[0] = q.depth_uuid
            s.values[0] = depth
        else:
            s = trace.begin if held is not None else trace.begin_ends
        if held is None:  # the end of the flow from its insert
            s.ends[0] = self._item_flow(label)
        s.packet.timestamp = int(t * 1e9 + 0.5)
        e = s.event
        e.track_uuid = track
        e.name = self._items.pop(label, label)
        trace.out(s.serialize())
        trace.written()
        self._current = worker

    def _completed(self, f: dict[str, Any], t: float) -> None:
        worker = f["worker"]
        track = self._workers.get(worker) or self._worker(f["queue"], worker)
        trace = self.trace
        s = trace.end
        s.packet.timestamp = int(t * 1e9 + 0.5)
        s.event.track_uuid = track
        trace.out(s.serialize())
        trace.written()
        if self._current == worker:
            self._current = None

    def _blocked(self, f: dict[str, Any], t: float) -> None:
        queue, worker = f["queue"], f["worker"]
        q = self._queues.get(queue) or self._queue(queue)
        blocked = q.blocked = q.blocked + 1
        track = self._workers.get(worker) or self._worker(queue, worker)
        trace = self.trace
        s = trace.begin_count
        s.packet.timestamp = int(t * 1e9 + 0.5)
        e = s.event
        e.track_uuid = track
        e.name = "wait " + f["waits_on"]
        s.counters[0] = q.blocked_uuid
        s.values[0] = blocked
        trace.out(s.serialize())
        trace.written()
        if self._current == worker:
            self._current = None

    def _resumed(self, f: dict[str, Any], t: float) -> None:
        queue, worker = f["queue"], f["worker"]
        q = self._queues.get(queue) or self._queue(queue)
        flow = self._wake_base | next(self._wakes)
        waker = self._current
        source = self._workers.get(waker) if waker is not None else None
        if source is None:
            source = self._host_track("kernel (DPC/timer)")
        track = self._workers.get(worker) or self._worker(queue, worker)
        ts = int(t * 1e9 + 0.5)
        trace = self.trace
        s = trace.instant_flow  # the waker's signal, where the flow starts
        s.packet.timestamp = ts
        e = s.event
        e.track_uuid = source
        e.name = "signal " + f["obj"]
        s.flows[0] = flow
        trace.out(s.serialize())
        trace.written()
        blocked = q.blocked = max(0, q.blocked - 1)
        s = trace.end_ends_count  # the wait's end, where it ends
        s.packet.timestamp = ts
        s.event.track_uuid = track
        s.ends[0] = flow
        s.counters[0] = q.blocked_uuid
        s.values[0] = blocked
        trace.out(s.serialize())
        trace.written()

    def _created(self, f: dict[str, Any], t: float) -> None:
        q = self._queue(f["queue"])
        self._worker(f["queue"], f["worker"])
        q.threads += 1
        self._count(t, q.threads_uuid, q.threads)

    def _exited(self, f: dict[str, Any], t: float) -> None:
        q = self._queue(f["queue"])
        q.threads = max(0, q.threads - 1)
        self._count(t, q.threads_uuid, q.threads)

    def _removed(self, f: dict[str, Any], t: float) -> None:
        q = self._queue(f["queue"])
        self._items.pop(f["item"], None)
        q.depth = q.depth_shown = max(0, q.depth - 1)
        self._count(t, q.depth_uuid, q.depth)

    def _instant(self, event: str, fields: dict[str, Any], t: float) -> None:
        track = self._host_track(_HOST_INSTANTS[event])
        p = self.trace.packet()
        p.timestamp = int(t * 1e9 + 0.5)
        e = p.track_event
        e.type = _INSTANT
        e.track_uuid = track
        e.name = _instant_name(event, fields)
        for key, v in fields.items():
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
        self.trace.write()


#: what the tracer hands a HostSink (FieldSink.events): nothing else is built for it
_EVENTS = frozenset(("exec.item.queued", "exec.item.started", "exec.item.completed",
                     "exec.worker.blocked", "exec.worker.resumed", "exec.worker.created",
                     "exec.worker.exited", "exec.item.removed", *_HOST_INSTANTS))


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
