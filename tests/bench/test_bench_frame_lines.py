"""`python -m bench.frame_lines`: instructions and cache lines per frame, counted by callgrind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import frame_lines
from bench.errors import BenchError

_DUMP = """# callgrind format
desc: Trigger: Client Request: {name}
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
summary: 0
totals: {ir} 1 1 1 1 1 {code} {dr} {dw}
"""


def _dump(name: str, ir: int, code: int, dr: int, dw: int) -> tuple[str, dict[str, int]]:
    return frame_lines.parse_dump(_DUMP.format(name=name, ir=ir, code=code, dr=dr, dw=dw))


def test_a_dump_is_read_by_its_name_and_event_names() -> None:
    name, counts = _dump("emulated:3", 1000, 40, 30, 5)
    assert name == "emulated:3"
    assert (counts["Ir"], counts["ILmr"], counts["DLmr"], counts["DLmw"]) == (1000, 40, 30, 5)
    with pytest.raises(BenchError):
        frame_lines.parse_dump("events: Ir\n")


def test_medians_less_the_empty_measurement() -> None:
    dumps = [_dump("nop:0", 100, 10, 5, 1), _dump("nop:1", 100, 10, 5, 1)]
    for i, extra in enumerate((0, 10, 1000)):  # the median ignores the one outlier
        dumps += [_dump(f"emulated:{i}", 5100 + extra, 210, 105, 6),
                  _dump(f"dropped:{i}", 1100, 60, 25, 1),
                  _dump(f"naive:{i}", 2100, 110, 45, 1)]
    per = frame_lines.summarise(dumps)
    assert per["emulated"] == {"instructions": 5010, "code_lines": 200, "data_lines": 105,
                               "lines": 305}
    assert per["naive"]["lines"] == 140 and per["dropped"]["instructions"] == 1000
    with pytest.raises(BenchError, match="not nop"):
        frame_lines.summarise(dumps[2:])  # no empty measurement to subtract


def test_without_valgrind_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert frame_lines.main(["--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt install valgrind" in err


@pytest.mark.skipif(shutil.which("valgrind") is None,
                    reason="needs valgrind (Debian: apt install valgrind; .ci/run installs it)")
def test_a_run_counts_each_path_and_writes_its_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lines.json"
    # (the child raises unless the emulated host answered every measured Echo Request)
    assert frame_lines.main(["--frames", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text(encoding="utf-8"))
    e, d, n = res["emulated"], res["dropped"], res["naive"]
    assert e["lines"] == e["code_lines"] + e["data_lines"]
    # the whole path includes the part that ends at NDIS's filter; both touch some lines
    assert e["lines"] > d["lines"] > 0 and e["instructions"] > d["instructions"] > 0
    assert n["lines"] > 0 and n["instructions"] > 0
    assert res["ratio"]["lines"] == round(e["lines"] / n["lines"], 2)
    assert f"{e['lines']:,}" in capsys.readouterr().out
