"""`python -m bench.trace_cost`: the same storm untraced and traced, ratios from one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import trace_cost


def test_a_small_run_measures_both_and_writes_its_json(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    out = tmp_path / "cost.json"
    assert trace_cost.main(["--adapters", "30", "--repeat", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text(encoding="utf-8"))
    assert [r["traced"] for r in res["runs"]] == [False, True]
    assert all(r["outcome"] == "bound" and r["adapters_bound"] == 30 for r in res["runs"])
    u, t = res["untraced"], res["traced"]
    assert t["packets"] > 30 * 50 and t["trace_mb"] > 0  # the traced run wrote its trace
    assert res["cpu_ratio"] == round(t["cpu_seconds"] / u["cpu_seconds"], 2)
    assert res["wall_ratio"] == round(t["wall_seconds"] / u["wall_seconds"], 2)
    text = capsys.readouterr().out
    assert "storm --adapters 30 --executor dedicated" in text
    assert f"cpu {res['cpu_ratio']:.2f}x" in text


def test_bad_values_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert trace_cost.main(["--executor", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--executor must be one of" in err
