"""Event tracing with stable event names.

Every emulated component reports transitions as ``tracer.emit("exec.item.started", ...)``.
With no sink attached `tracer.enabled` is False and call sites skip building the event (one
attribute check), so a 10,000-adapter run pays nothing for tracing it does not want.

Sinks: a structlog logger writing JSON lines (``--log FILE``), and any callable (tests, the live
view). Each record carries a sequence number and the virtual time; the JSONL sink keeps a running
SHA-256 over the lines it wrote, so two runs can be compared by one hash.

A sink that only reads some events and no record (the Perfetto trace) is a `FieldSink`: it names
the events it takes (`events`) and gets each as ``on_event(event, t, fields)`` — the emitter's
keyword dict and the unrounded virtual time, no record built, no event it does not take. Every
event still counts in `seq`, so a record sink beside it sees the same records (and hash) as
alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, MutableMapping
from typing import IO, Any, Protocol, cast

import structlog

Record = dict[str, Any]
Sink = Callable[[Record], None]


class FieldSink(Protocol):
    """A sink taking only `events`, each as (event, virtual time, the emitter's fields). A
    type only (`add_sink` looks for the two attributes: mypyc compiles this module, and a
    compiled protocol cannot be runtime-checked)."""

    events: frozenset[str]

    def on_event(self, event: str, t: float, fields: dict[str, Any]) -> None: ...


class Tracer:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._sinks: list[Sink] = []  # record sinks
        self._field_sinks: list[Callable[[str, float, dict[str, Any]], None]] = []
        self._wanted: frozenset[str] | None = None  # None: every event (a record sink is on)
        self._clock = clock or (lambda: 0.0)
        self.enabled = False
        self.seq = 0

    def bind_clock(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def add_sink(self, sink: Sink | FieldSink) -> None:
        on_event = getattr(sink, "on_event", None)
        events = getattr(sink, "events", None)
        if on_event is not None and isinstance(events, frozenset):  # a FieldSink
            self._field_sinks.append(on_event)
            if not self._sinks:
                self._wanted = (self._wanted or frozenset()) | events
        else:
            self._sinks.append(cast("Sink", sink))
            self._wanted = None
        self.enabled = True

    def wants(self, event: str) -> bool:
        """Whether a sink takes `event` (a call site may skip building its fields if not)."""
        return self.enabled and (self._wanted is None or event in self._wanted)

    def emit(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        self.seq += 1
        wanted = self._wanted
        if wanted is not None and event not in wanted:
            return  # only field sinks, none of them takes it
        t = self._clock()
        if self._sinks:
            # the same keys in the same order as before (seq, t, event, then the fields): one
            # dict built in one go, since a traced 10,000-adapter storm emits 1.5 million
            record: Record = {"seq": self.seq, "t": round(t, 9), "event": event, **fields}
            for sink in self._sinks:
                sink(record)
        for on_event in self._field_sinks:
            on_event(event, t, fields)

    def __call__(self, event: str, **fields: Any) -> None:
        """`emit` (the executive is handed `emit` itself: no second frame per event)."""
        self.emit(event, **fields)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "value") and not isinstance(value, int | str | float):
        return value.value
    return str(value)


class _LineWriter:
    """structlog's WriteLogger without its flush after every line: a traced 10,000-adapter
    storm writes 1.5 million lines, and a system call each was an eighth of its time. The sink
    flushes when it is closed (a run that ends in a bugcheck or a Ctrl-C closes it too)."""

    __slots__ = ("_write",)

    def __init__(self, stream: IO[str]) -> None:
        self._write = stream.write

    def msg(self, message: str) -> None:
        self._write(message + "\n")

    # the other method names structlog may call, as on WriteLogger (one each: mypyc compiles
    # this module, and a compiled class takes no aliases)

    def log(self, message: str) -> None:
        self._write(message + "\n")

    def debug(self, message: str) -> None:
        self._write(message + "\n")

    def info(self, message: str) -> None:
        self._write(message + "\n")

    def warn(self, message: str) -> None:
        self._write(message + "\n")

    def warning(self, message: str) -> None:
        self._write(message + "\n")

    def err(self, message: str) -> None:
        self._write(message + "\n")

    def error(self, message: str) -> None:
        self._write(message + "\n")

    def critical(self, message: str) -> None:
        self._write(message + "\n")

    def exception(self, message: str) -> None:
        self._write(message + "\n")


class JsonlSink:
    """Writes records as JSON lines through structlog; keeps a SHA-256 of everything written."""

    def __init__(self, stream: IO[str], *, prefix: Record | None = None) -> None:
        self._digest = hashlib.sha256()
        self._stream = stream
        # One encoder for every line (json.dumps with options builds one per call).
        self._encode = json.JSONEncoder(separators=(",", ":"), default=_jsonable).encode
        self._log = structlog.wrap_logger(
            _LineWriter(stream),
            processors=[self._render],
            cache_logger_on_first_use=True,  # not a fresh bind per line
        )
        if prefix is not None:
            self._write(prefix)

    def _render(self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> str:
        line = self._encode(event_dict)
        self._digest.update(line.encode())
        self._digest.update(b"\n")
        return line

    def _write(self, record: Record) -> None:
        rec = dict(record)
        event = rec.pop("event", "header")
        self._log.msg(event, **rec)

    def __call__(self, record: Record) -> None:
        self._write(record)

    @property
    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def flush(self) -> None:
        self._stream.flush()

    def close(self, trailer: Record | None = None) -> str:
        digest = self.hexdigest
        if trailer is not None:
            self._stream.write(json.dumps({**trailer, "trace_hash": digest},
                                          separators=(",", ":")) + "\n")
        self._stream.flush()
        return digest
