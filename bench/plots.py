"""Phase diagrams and bind-time curves of a sweep, with matplotlib's Agg backend (no display,
no pyplot state: each figure is its own object, safe in any thread)."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cliff import computed_cliff
from .grid import executor_order, format_duration

OUTCOME_COLORS = {
    "bound": "#4caf50",
    "deadlock": "#d62728",
    "stalled": "#ff9800",
    "failed": "#9467bd",
    "mixed": "#bdbdbd",
    "error": "#000000",
}
EXECUTOR_COLORS = {"critical": "#d62728", "dedicated": "#1f77b4", "async": "#2ca02c",
                   "rescuer": "#ff7f0e"}
# Lines of different executors often coincide (critical = async below the cliff): vary the
# style too, widest first so the narrower ones stay visible on top.
EXECUTOR_STYLES = {"critical": ("-", 3.2, "o"), "dedicated": ("-", 1.3, "."),
                   "async": ("--", 1.6, "."), "rescuer": (":", 1.8, "^")}


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _caption(fig: Any, caption: str, width_chars: int) -> float:
    """Write `caption` at the bottom; return the fraction of the height it takes."""
    lines = []
    for para in caption.split("\n"):
        lines += textwrap.wrap(para, width_chars) or [""]
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=8.5, va="bottom", ha="left")
    height_in = float(fig.get_figheight())
    return min(0.45, (len(lines) * 0.17 + 0.25) / height_in)


def _executors(records: Sequence[dict[str, Any]]) -> list[str]:
    return executor_order(r["executor"] for r in records)


def _outcome(outcomes: list[str]) -> str:
    return outcomes[0] if len(set(outcomes)) == 1 else "mixed"


def _ticks(values: list[int], at_most: int = 10) -> list[int]:
    """Indices of the values to label: round numbers when the axis is evenly spaced."""
    if len(values) <= at_most:
        return list(range(len(values)))
    for step in (2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 250, 500, 1000):
        idx = [i for i, v in enumerate(values) if v % step == 0]
        if 2 <= len(idx) <= at_most:
            return idx
    step = math.ceil(len(values) / at_most)
    return list(range(0, len(values), step))


def phase_diagram(records: Sequence[dict[str, Any]], path: Path, *, title: str,
                  caption: str = "") -> None:
    """Adapters × arrival interval, coloured by outcome (all seeds agree, else "mixed"); one
    panel per executor. `records` should share their model parameters."""
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    execs = _executors(records)
    adapters = sorted({int(r["adapters"]) for r in records})
    intervals = sorted({float(r["interval"]) for r in records})
    cells: dict[tuple[str, int, float], list[str]] = defaultdict(list)
    for r in records:
        cells[(r["executor"], int(r["adapters"]), float(r["interval"]))].append(r["outcome"])
    names = list(OUTCOME_COLORS)
    cmap = ListedColormap([OUTCOME_COLORS[n] for n in names] + ["#ffffff"])
    norm = BoundaryNorm([i - 0.5 for i in range(len(names) + 2)], cmap.N)
    ncols = min(len(execs), 2) if len(execs) > 1 else 1
    nrows = math.ceil(len(execs) / ncols)
    fig = _figure(6.0 * ncols, 3.4 * nrows + 1.2)
    bottom = _caption(fig, caption, 60 * ncols) if caption else 0.08
    used: set[str] = set()
    first = records[0] if records else {}
    cliff = (computed_cliff(first["static_threads"], first["additional_critical"],
                            first["max_dynamic"], first["foreign_holders"]) if records else None)
    for k, ex in enumerate(execs):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        grid = []
        for iv in intervals:
            row = []
            for n in adapters:
                got = cells.get((ex, n, iv))
                if got is None:
                    row.append(len(names))  # not in the grid: white
                else:
                    o = _outcome(got)
                    used.add(o)
                    row.append(names.index(o if o in OUTCOME_COLORS else "error"))
            grid.append(row)
        ax.imshow(grid, aspect="auto", origin="lower", cmap=cmap, norm=norm,
                  interpolation="nearest")
        ax.set_title(ex, fontsize=11)
        xt = _ticks(adapters)
        ax.set_xticks(xt, [str(adapters[i]) for i in xt], fontsize=8)
        ystep = max(1, math.ceil(len(intervals) / 12))
        yt = list(range(0, len(intervals), ystep))
        ax.set_yticks(yt, [format_duration(intervals[i]) for i in yt], fontsize=8)
        ax.set_xlabel("adapters", fontsize=9)
        ax.set_ylabel("arrival interval", fontsize=9)
        if ex == "critical" and cliff is not None and cliff in adapters:
            x = adapters.index(cliff) - 0.5
            ax.axvline(x, color="black", linestyle="--", linewidth=1)
            ax.annotate(f"computed\ncapacity {cliff}", (x, len(intervals) - 0.5),
                        xytext=(4, -4), textcoords="offset points", fontsize=7.5,
                        va="top")
    handles = [Patch(color=OUTCOME_COLORS[n], label=n) for n in names if n in used]
    fig.legend(handles=handles, loc="upper right", ncols=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.75 / fig.get_figheight(),
                        bottom=bottom + 0.08, hspace=0.45, wspace=0.22)
    fig.savefig(path)


def _pick(values: list[float], at_most: int) -> list[float]:
    if len(values) <= at_most:
        return values
    idx = sorted({round(i * (len(values) - 1) / (at_most - 1)) for i in range(at_most)})
    return [values[i] for i in idx]


def bind_time_plot(records: Sequence[dict[str, Any]], path: Path, *, title: str,
                   caption: str = "", panels: int = 4) -> None:
    """Time to bind every adapter (virtual seconds, median over seeds) vs adapters, one line
    per executor, one panel per arrival interval (at most `panels`, spread over the grid).
    A deadlocked storm never binds: it is marked × at the top of the panel."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    execs = _executors(records)
    intervals = _pick(sorted({float(r["interval"]) for r in records}), panels)
    by: dict[tuple[str, float, int], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by[(r["executor"], float(r["interval"]), int(r["adapters"]))].append(r)
    ncols = min(len(intervals), 2)
    nrows = math.ceil(len(intervals) / max(ncols, 1))
    fig = _figure(6.0 * max(ncols, 1), 3.3 * nrows + 1.2)
    bottom = _caption(fig, caption, 60 * max(ncols, 1)) if caption else 0.08
    first = records[0] if records else {}
    cliff = (computed_cliff(first["static_threads"], first["additional_critical"],
                            first["max_dynamic"], first["foreign_holders"]) if records else None)
    for k, iv in enumerate(intervals):
        ax = fig.add_subplot(nrows, max(ncols, 1), k + 1)
        top = ax.get_xaxis_transform()
        plotted = False
        for ex in execs:
            xs, ys, dx = [], [], []
            for (e, i, n), rs in sorted(by.items(), key=lambda kv: kv[0][2]):
                if e != ex or i != iv:
                    continue
                times = [r["bind_all_seconds"] for r in rs if r["outcome"] == "bound"
                         and r["bind_all_seconds"] is not None and r["bind_all_seconds"] > 0]
                if len(times) == len(rs):
                    xs.append(n)
                    ys.append(statistics.median(times))
                elif any(r["outcome"] == "deadlock" for r in rs):
                    dx.append(n)
            color = EXECUTOR_COLORS.get(ex, "grey")
            style, width, marker = EXECUTOR_STYLES.get(ex, ("-", 1.2, "."))
            plotted = plotted or bool(ys)
            ax.plot(xs, ys, linestyle=style, marker=marker, markersize=2.5, linewidth=width,
                    color=color, label=ex, alpha=0.85)
            if dx:
                ax.plot(dx, [0.96] * len(dx), linestyle="none", marker="x", markersize=5,
                        color=color, transform=top,
                        label=f"{ex}: deadlock" if k == 0 else None)
        if cliff is not None:
            ax.axvline(cliff - 0.5, color="black", linestyle="--", linewidth=0.8)
        if plotted:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        else:
            ax.text(0.5, 0.5, "no storm bound every adapter", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9, color="grey")
        ax.set_title(f"arrival interval {format_duration(iv)}", fontsize=10)
        ax.set_xlabel("adapters", fontsize=9)
        ax.set_ylabel("time to bind all (virtual s)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, which="both", alpha=0.25)
        if k == 0:
            ax.legend(fontsize=7.5, loc="best")
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.subplots_adjust(left=0.09, right=0.98, top=1 - 0.75 / fig.get_figheight(),
                        bottom=bottom + 0.08, hspace=0.5, wspace=0.25)
    fig.savefig(path)
