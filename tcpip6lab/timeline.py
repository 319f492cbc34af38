"""`storm --timeline FILE.png`: the worker threads as horizontal lanes — running, blocked, idle —
with the knot marked; a picture for reports and the README.

`TimelineRecorder` is a tracer sink (ndisemu.trace) that keeps, per worker thread, the spans it
ran and the spans it was blocked; `figure()` draws them with matplotlib, one lane per thread,
grouped by queue, in virtual time. A thread is idle where it is neither. A routine takes no
virtual time in the model (time passes in waits), so running spans are drawn with a minimum
width. The proven knot is a dashed vertical line at its time, and the threads blocked from
before it to the end of the run have their lane labels in red. It keeps every span: meant for
runs of a size one looks at, not for 10,000-adapter storms. `python -m tcpip6lab.timeline
OUT.png` draws the README's picture: the KB's 24-adapter burst on the unpatched host beside the
same burst on the fixed one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

RUNNING, BLOCKED = "running", "blocked"
COLOURS = {RUNNING: "#2e7d32", BLOCKED: "#c62828"}


@dataclass
class Lane:
    queue: str
    name: str
    created: float
    spans: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, state
    state: str | None = None  # running / blocked / None (idle)
    since: float = 0.0


class TimelineRecorder:
    """A tracer sink: each worker thread's running and blocked spans."""

    def __init__(self) -> None:
        self.lanes: dict[str, Lane] = {}
        self.knot_at: float | None = None
        self.knot_queue: str | None = None
        self.end = 0.0

    def _lane(self, queue: str, worker: str, t: float) -> Lane:
        lane = self.lanes.get(worker)
        if lane is None:
            lane = self.lanes[worker] = Lane(queue, worker, t, since=t)
        return lane

    def _to(self, lane: Lane, state: str | None, t: float) -> None:
        if lane.state == RUNNING or (lane.state is not None and t > lane.since):
            lane.spans.append((lane.since, t, lane.state))
        lane.state, lane.since = state, t

    def __call__(self, r: dict[str, Any]) -> None:
        event = r["event"]
        t = float(r["t"])
        self.end = max(self.end, t)
        if event == "exec.worker.created":
            self._lane(r["queue"], r["worker"], t)
        elif event in ("exec.item.started", "exec.worker.resumed"):
            self._to(self._lane(r["queue"], r["worker"], t), RUNNING, t)
        elif event == "exec.worker.blocked":
            self._to(self._lane(r["queue"], r["worker"], t), BLOCKED, t)
        elif event in ("exec.item.completed", "exec.worker.exited"):
            self._to(self._lane(r["queue"], r["worker"], t), None, t)
        elif event == "detector.deadlock" and self.knot_at is None:
            self.knot_at, self.knot_queue = t, r.get("queue")

    def finish(self, end: float | None = None) -> None:
        """Close the open spans at the end of the run (a knot's blocked spans run to it)."""
        end = max(self.end, end or 0.0)
        self.end = end
        for lane in self.lanes.values():
            self._to(lane, lane.state, end)

    def in_knot(self, lane: Lane) -> bool:
        """Blocked from before the knot was proven to the end of the run."""
        return self.knot_at is not None and bool(lane.spans) and \
            lane.spans[-1][2] == BLOCKED and lane.spans[-1][0] <= self.knot_at and \
            lane.spans[-1][1] >= self.end

    def ordered(self) -> list[Lane]:
        """Lanes grouped by queue (in order of first appearance), threads by number."""
        queues: list[str] = []
        for lane in self.lanes.values():
            if lane.queue not in queues:
                queues.append(lane.queue)

        def key(lane: Lane) -> tuple[int, int, str]:
            _, _, n = lane.name.rpartition("#")
            return (queues.index(lane.queue), int(n) if n.isdigit() else 0, lane.name)

        return sorted(self.lanes.values(), key=key)


def draw(ax: Any, rec: TimelineRecorder, title: str) -> None:
    """One run's lanes on `ax` (lane i at y = i, top to bottom)."""
    lanes = rec.ordered()
    # A routine runs in no virtual time (the model charges time to waits, not to CPU): a
    # running span is drawn with a little width before its start, under the blocked spans, so
    # that work shows where it happened without hiding the waits around it.
    least = max(rec.end, 1e-9) / 1500
    for i, lane in enumerate(lanes):
        for state in (RUNNING, BLOCKED):
            bars = [(s - least, e - s + least) if state == RUNNING else (s, e - s)
                    for s, e, st in lane.spans if st == state]
            if bars:
                ax.broken_barh(bars, (i - 0.4, 0.8), facecolors=COLOURS[state], label=state,
                               gid=f"lane:{lane.name}:{state}")
    ax.set_yticks(range(len(lanes)), [lane.name for lane in lanes], fontsize=6)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_xlim(0, max(rec.end, 1e-9))
    ax.set_xlabel("virtual seconds")
    ax.set_title(title, fontsize=10)
    if rec.knot_at is not None:
        ax.axvline(rec.knot_at, color="black", linestyle="--", linewidth=1, gid="knot")
        ax.annotate(f"knot proven on {rec.knot_queue} (t={rec.knot_at:.2f}s)",
                    (rec.knot_at, -0.5), xytext=(3, -12), textcoords="offset points",
                    fontsize=7)
        for tick, lane in zip(ax.get_yticklabels(), lanes, strict=True):
            if rec.in_knot(lane):
                tick.set_color(COLOURS[BLOCKED])
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=COLOURS[s], label=s) for s in (RUNNING, BLOCKED)],
              loc="lower right", fontsize=7, title="idle: blank", title_fontsize=7)


def figure(runs: list[tuple[str, TimelineRecorder]]) -> Any:
    """A matplotlib Figure with one panel per run, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    height = max(3.0, 0.12 * max(len(rec.lanes) for _, rec in runs) + 1.2)
    fig = Figure(figsize=(6.5 * len(runs), height), layout="constrained")
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    for ax, (title, rec) in zip(axes, runs, strict=True):
        draw(ax, rec, title)
    return fig


def save(runs: list[tuple[str, TimelineRecorder]], path: str) -> Any:
    """Draw and write the PNG; returns the Figure (its data is what tests read back)."""
    from .errors import UsageError

    fig = figure(runs)
    try:
        fig.savefig(path, dpi=130)
    except OSError as exc:
        raise UsageError(f"cannot write {path!r}: {exc.strerror}") from None
    return fig


def main(argv: list[str] | None = None) -> int:
    """The README's picture: 24 adapters, unpatched beside fixed."""
    from .params import ModelParams
    from .storm import StormConfig, run_storm

    args = sys.argv[1:] if argv is None else argv
    out = args[0] if args else "docs/timeline.png"
    runs = []
    for executor, label in (("critical", "unpatched (critical executor)"),
                            ("dedicated", "fixed (dedicated executor)")):
        rec = TimelineRecorder()
        r = run_storm(StormConfig(adapters=24, params=ModelParams(executor=executor),
                                  extra_sinks=[rec]))
        rec.finish()
        runs.append((f"{label}: 24 adapters, {r.outcome.value}", rec))
    save(runs, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
