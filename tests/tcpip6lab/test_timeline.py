"""`storm --timeline FILE.png`: one lane per worker thread (read back from the figure's data,
not its pixels), running and blocked spans, the knot marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tcpip6lab.cli import main
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm
from tcpip6lab.timeline import TimelineRecorder, figure


def run(executor: str, adapters: int) -> tuple[Any, TimelineRecorder, set[str]]:
    rec = TimelineRecorder()
    threads: set[str] = set()

    def created(r: dict[str, Any]) -> None:
        if r["event"] == "exec.worker.created":
            threads.add(r["worker"])

    result = run_storm(StormConfig(adapters=adapters, params=ModelParams(executor=executor),
                                   extra_sinks=[rec, created]))
    rec.finish()
    return result, rec, threads


def lanes_of(ax: Any) -> dict[str, set[str]]:
    """lane name -> the states drawn in it, from the artists' gids (lane:NAME:STATE)."""
    out: dict[str, set[str]] = {}
    for artist in ax.collections:
        gid = artist.get_gid() or ""
        if gid.startswith("lane:"):
            _, name, state = gid.split(":")
            out.setdefault(name, set()).add(state)
    return out


def test_one_lane_per_thread_and_the_knot_marked() -> None:
    result, rec, threads = run("critical", 24)
    assert result.outcome == "deadlock"
    fig = figure([("hang", rec)])
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(threads) and set(labels) == threads
    cw = result.critical_workers
    critical = [n for n in labels if n.startswith("critical#")]
    assert len(critical) == cw.static + cw.dynamic_created
    drawn = lanes_of(ax)
    assert all("blocked" in drawn[n] for n in critical)
    assert any("running" in states for states in drawn.values())
    knot = [a for a in ax.lines if a.get_gid() == "knot"]
    assert len(knot) == 1 and knot[0].get_xdata()[0] == pytest.approx(rec.knot_at)
    red = [t.get_text() for t in ax.get_yticklabels() if t.get_color() == "#c62828"]
    assert sorted(red) == sorted(critical) and len(red) == cw.blocked_at_end


def test_the_fixed_host_has_no_knot_and_hang_beside_fixed_is_two_panels() -> None:
    _, hang, _ = run("critical", 24)
    fixed_result, fixed, threads = run("dedicated", 24)
    assert fixed_result.outcome == "bound" and fixed.knot_at is None
    fig = figure([("hang", hang), ("fixed", fixed)])
    assert len(fig.axes) == 2
    ax = fig.axes[1]
    assert len(ax.get_yticklabels()) == len(threads)
    assert not [a for a in ax.lines if a.get_gid() == "knot"]


def test_storm_timeline_writes_a_png(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    path = tmp_path / "t.png"
    assert main(["storm", "--adapters", "24", "--timeline", str(path)]) == 0
    assert "DEADLOCK" in capsys.readouterr().out
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_an_unwritable_timeline_is_one_line(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    assert main(["storm", "--adapters", "2", "--timeline", str(tmp_path / "no" / "t.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err
