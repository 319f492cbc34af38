"""`bench storm` and `bench report` write their files; the scale harness measures and renders."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest

from bench.cli import add_bench_parser, run_bench
from bench.phase import StormBench, run_storm_bench
from bench.report import run_report
from bench.scale import (
    RunSpec,
    ScalePlan,
    channel_round_trip,
    growth_exponent,
    measure,
    plot,
    render,
    run_scale,
)
from bench.sweep import FIELDS, Cell
from tcpip6lab.cli.options import Parser as _Parser

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--adapters", "23..24", "--interval", "0,2ms", "--executor", "critical,async",
        "--seeds", "0", "--jobs", "2", "--no-progress"]


def bench_args(*argv: str) -> argparse.Namespace:
    p = _Parser(prog="tcpip6-lab")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    add_bench_parser(sub)
    return p.parse_args(["bench", *argv])


def test_storm_writes_csv_json_and_plots(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "storm"
    assert run_bench(bench_args("storm", *TINY, "--out", str(out))) == 0
    text = capsys.readouterr().out
    assert "8 cells" in text and "measured 24 adapters (23 bind, 24 deadlock)" in text
    assert "agree" in text
    with (out / "cells.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and tuple(rows[0]) == FIELDS
    outcomes = {(r["executor"], r["adapters"], r["interval"]): r["outcome"] for r in rows}
    assert outcomes[("critical", "24", "0.0")] == "deadlock"
    assert outcomes[("critical", "24", "0.002")] == "bound"
    data = json.loads((out / "cells.json").read_text())
    assert len(data["cells"]) == 8 and data["fields"] == list(FIELDS)
    assert data["cliff"][0]["measured"] == data["cliff"][0]["computed"] == 24
    assert data["grid"]["adapters"] == [23, 24] and data["machine"]["cpus"] >= 1
    for name in ("phase.png", "bind_time.png"):
        assert (out / name).read_bytes().startswith(PNG)


def test_other_model_parameters_get_their_own_figures(tmp_path: Path) -> None:
    cells = [Cell("critical", n, foreign_holders=fh) for n in (23, 24, 25) for fh in (1, 2)]
    bench = run_storm_bench(cells, tmp_path, jobs=2)
    assert isinstance(bench, StormBench) and bench.ok
    assert [c.measured for c in bench.checks] == [24, 25]  # the defaults first
    assert {"phase", "phase-2", "bind_time", "bind_time-2"} <= set(bench.files)
    assert (tmp_path / "phase-2.png").read_bytes().startswith(PNG)


def test_report_without_scale_or_traffic(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rep"
    assert run_bench(bench_args("report", *TINY, "--no-scale", "--traffic", "off",
                                "--out", str(out))) == 0
    md = (out / "report.md").read_text()
    assert "Measured cliff for the default NT parameters: **24 adapters" in md
    assert "![phase](storm/phase.png)" in md and "Skipped: --traffic off" in md
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page
    assert (out / "storm" / "cells.csv").exists()
    assert "report.html" in capsys.readouterr().out


def tiny_plan() -> ScalePlan:
    return ScalePlan(adapters=30, executors=("async",), modes=("default", "memory", "tasks"),
                     curve=(10,), oid_adapters=3, oid_repeat=1, oid_round_trips=50,
                     profile_adapters=10, census_adapters=10)


def test_scale_measures_renders_and_plots(tmp_path: Path) -> None:
    from bench.scale import _task

    res = run_scale(tiny_plan(), runner=_task)  # in this process: quick
    row = res["summary"]["async"]
    assert row["outcome"] == "bound" and row["oids_per_second"] > 0
    assert row["peak_bytes_per_adapter"] > 0 and row["bytes_vs_target"] > 0
    assert row["growth_exponent_default"] is not None
    crit = res["oid_overhead"]["executors"]["critical"]
    assert crit["ratio_to_floor"] > 1 and crit["round_trip_ratio"] > 0.1
    assert crit["round_trip_tasks_us"] > 0 and row["driver_speedup"] > 0
    assert res["profile"]["by_own_time"] and res["garbage"]["objects_per_oid"] is not None
    text = render(res)
    assert "task driver" in text and "tracemalloc" in text and "hot spots" in text
    assert "drivers: the coroutine driver is" in text
    plot(res, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").read_bytes().startswith(PNG)
    report_out = tmp_path / "rep"
    rc, files = run_report(
        report_out,
        storm=lambda d: run_storm_bench([Cell("critical", 23), Cell("critical", 24)], d,
                                        jobs=1),
        storm_command="storm", scale=lambda _d: res, scale_command="scale", traffic="off")
    assert rc == 0
    assert "Per-OID overhead" in files[0].read_text()


def test_log_and_gc_modes_leave_this_process_as_they_found_it() -> None:
    import gc

    before = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    for mode in ("gc-off", "gc-freeze", "gc-python", "log"):
        r = measure(RunSpec("async", 5, mode))
        assert r["outcome"] == "bound"
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == before
    assert r["log"]["events"] > 0 and r["log"]["bytes"] > 0


def test_a_fresh_process_measures_peak_rss() -> None:
    from bench.scale import in_fresh_process

    r = in_fresh_process("measure", RunSpec("dedicated", 5))
    assert r["outcome"] == "bound" and r["peak_rss_kb"] >= r["baseline_rss_kb"] > 0


def test_the_pure_mode_runs_without_the_compiled_modules() -> None:
    from bench.scale import in_fresh_process
    from tcpip6lab.buildinfo import compiled_modules

    pure = in_fresh_process("measure", RunSpec("async", 5, "pure"))
    default = in_fresh_process("measure", RunSpec("async", 5))
    assert pure["outcome"] == default["outcome"] == "bound"
    assert pure["native"]["compiled"] is False
    assert pure["native"]["describe"].startswith("pure Python")
    # The default run uses the compiled modules exactly when this installation has them (the
    # wheel's, in ./lab test's first pass).
    assert default["native"]["compiled"] is bool(compiled_modules())


def test_floor_and_growth_exponent() -> None:
    assert 0 < channel_round_trip(200) < 0.01
    assert growth_exponent([(1000, 1.0), (2000, 2.0), (4000, 4.0)]) == 1.0
    assert growth_exponent([(1000, 1.0), (2000, 4.0)]) == 2.0
    assert growth_exponent([(1000, 1.0)]) is None


def test_any_executor_can_run_the_cells(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        rc = run_bench(bench_args("storm", *TINY, "--no-plots", "--out", str(tmp_path)), pool)
    assert rc == 0
    data = json.loads((tmp_path / "cells.json").read_text())
    assert data["executor"] == "ThreadPoolExecutor" and len(data["cells"]) == 8
