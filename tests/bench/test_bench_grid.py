"""Grid syntax of `bench storm`: ranges, lists, durations, executors, and clear errors."""

from __future__ import annotations

import argparse

import pytest

from bench.cli import add_bench_parser
from bench.grid import (
    GridError,
    format_duration,
    parse_duration,
    parse_duration_grid,
    parse_executors,
    parse_int_grid,
)
from tcpip6lab.cli.options import Parser as _Parser


@pytest.mark.parametrize("text,expected", [
    ("1..5", [1, 2, 3, 4, 5]),
    ("8..32:8", [8, 16, 24, 32]),
    ("8..30:8", [8, 16, 24]),  # inclusive only when the step lands on the end
    ("24", [24]),
    ("1,2,4", [1, 2, 4]),
    ("1..3,8,2", [1, 2, 3, 8]),  # order kept, duplicates dropped
    (" 4 , 1..2 ", [4, 1, 2]),
    ("1..16:x2", [1, 2, 4, 8, 16]),
    ("5..5", [5]),
])
def test_integer_grids(text: str, expected: list[int]) -> None:
    assert parse_int_grid(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("0", [0.0]),
    ("0.5", [0.5]),
    ("250us", [0.00025]),
    ("500ms", [0.5]),
    ("2s", [2.0]),
    ("0..2s:500ms", [0.0, 0.5, 1.0, 1.5, 2.0]),
    ("0..2s:0.5", [0.0, 0.5, 1.0, 1.5, 2.0]),  # a bare step takes the end's unit
    ("0..3ms", [0.0, 0.001, 0.002, 0.003]),  # no step: one unit of the end's suffix
    ("1..2ms:0.25ms", [0.001, 0.00125, 0.0015, 0.00175, 0.002]),
    ("1ms..1s:x10", [0.001, 0.01, 0.1, 1.0]),
    ("0,1ms,5ms", [0.0, 0.001, 0.005]),
    ("0,0.5ms,1..2ms:0.5ms,1ms", [0.0, 0.0005, 0.001, 0.0015, 0.002]),
])
def test_duration_grids(text: str, expected: list[float]) -> None:
    assert parse_duration_grid(text) == expected


def test_steps_do_not_accumulate_float_noise() -> None:
    values = parse_duration_grid("0..1s:100ms")
    assert values == [round(0.1 * i, 9) for i in range(11)]
    assert parse_duration("0.3s") == 0.3


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("1,,2", "empty"),
    ("a", "invalid integer 'a'"),
    ("1.5", "invalid integer"),
    ("1..", "invalid range"),
    ("..4", "invalid range"),
    ("1..4:", "invalid range"),
    ("5..1", "runs backwards"),
    ("1..4:0", "step in '1..4:0' must be > 0"),
    ("1..4:x1", "must be > 1"),
    ("0..4:x2", "must start above 0"),
    ("1..1000000", "at most"),
])
def test_bad_integer_grids(text: str, message: str) -> None:
    with pytest.raises(GridError, match=message):
        parse_int_grid(text)


@pytest.mark.parametrize("text,message", [
    ("1h", "invalid duration '1h'"),
    ("-1ms", "invalid duration"),
    ("fast", "invalid duration"),
    ("2s..1s", "runs backwards"),
    ("0..1s:0ms", "must be > 0"),
    ("0..1s:xz", "invalid geometric step"),
    ("0..1s:x2", "must start above 0"),
    ("0..10s:1us", "at most"),
])
def test_bad_duration_grids(text: str, message: str) -> None:
    with pytest.raises(GridError, match=message):
        parse_duration_grid(text)


def test_minimum_and_positive() -> None:
    with pytest.raises(GridError, match="adapters must be >= 1"):
        parse_int_grid("0..4", minimum=1, name="adapters")
    with pytest.raises(GridError, match="latency must be > 0"):
        parse_duration_grid("0,2ms", positive=True, name="latency")


def test_executors() -> None:
    assert parse_executors("all") == ["critical", "dedicated", "async", "rescuer"]
    assert parse_executors("async,critical,async") == ["async", "critical"]
    with pytest.raises(GridError, match="unknown executor 'fast'"):
        parse_executors("critical,fast")


def test_duration_labels() -> None:
    assert [format_duration(x) for x in (0, 0.00025, 0.0015, 0.5, 2.0)] == [
        "0", "250us", "1.5ms", "500ms", "2s"]


# -- the command line ---------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tcpip6-lab")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    add_bench_parser(sub)
    return p


def test_storm_defaults_parse_to_the_documented_grid(tmp_path: object) -> None:
    a = parser().parse_args(["bench", "storm", "--out", "x"])
    assert a.adapters == list(range(1, 65))
    assert a.interval[:3] == [0.0, 0.0005, 0.001] and a.interval[-1] == 0.1
    assert a.executor == ["critical", "dedicated", "async", "rescuer"]
    assert a.seeds == [0, 1] and a.latency == [0.002] and a.static_threads == [10]
    assert a.foreign_holders == [2] and a.max_dynamic == [16] and a.horizon is None


@pytest.mark.parametrize("argv,message", [
    (["storm", "--out", "x", "--adapters", "5..1"], "argument --adapters: range '5..1' runs"),
    (["storm", "--out", "x", "--interval", "1h"], "argument --interval: invalid duration"),
    (["storm", "--out", "x", "--executor", "fast"], "unknown executor 'fast'"),
    (["storm", "--out", "x", "--static-threads", "0"], "static threads must be >= 1"),
    (["storm", "--out", "x", "--latency", "0"], "latency must be > 0"),
    (["storm", "--out", "x", "--jobs", "-1"], "must be >= 0"),
    (["storm"], "required: --out"),
    (["scale", "--out", "x", "--modes", "turbo"], "unknown mode 'turbo'"),
    (["report", "--out", "x", "--traffic", "maybe"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                               argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["bench", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_wired_into_the_real_tcpip6_lab_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """The bench subcommand reaches the parser through the tcpip6lab.commands entry point."""
    from tcpip6lab.cli.app import build_parser

    p = build_parser()
    a = p.parse_args(["bench", "scale", "--out", "x", "--adapters", "200"])
    assert (a.command, a.bench_command, a.scale_adapters) == ("bench", "scale", 200)
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["bench", "storm", "--out", "x", "--seeds", "1..0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == ("tcpip6-lab bench storm: error: argument --seeds/--seed: range '1..0' runs "
                   "backwards\n")
