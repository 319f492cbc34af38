"""The root-only benchmarks fail in one line that names the cause, not trio's group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from bench import tcp_bulk, traffic
from tcpip6lab.cli.interrupts import leaf_exception


def test_the_leaf_is_the_error_inside_trios_groups() -> None:
    err = OSError(2, "No such file or directory")
    group = BaseExceptionGroup("outer", [trio.Cancelled._create(),
                                         ExceptionGroup("inner", [err])])
    assert leaf_exception(group) is err
    ctrl_c = KeyboardInterrupt()
    assert leaf_exception(BaseExceptionGroup("g", [err, ctrl_c])) is ctrl_c  # a Ctrl-C first
    usage = ValueError("bad")
    assert leaf_exception(ExceptionGroup("g", [err, usage])) is usage  # then a user error
    assert leaf_exception(err) is err


def test_traffic_without_ping_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no ping on it
    assert traffic.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "iputils-ping" in err


@pytest.mark.parametrize("bench", [traffic, tcp_bulk], ids=["traffic", "tcp_bulk"])
def test_an_error_in_a_task_is_reported_by_its_own_message(
        bench: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    async def failing_run(*_: Any) -> None:
        async def child() -> None:
            raise OSError(19, "No such device")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    monkeypatch.setattr(bench, "run", failing_run)
    monkeypatch.setattr(traffic.shutil, "which", lambda _: "/usr/bin/ping")
    assert bench.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "No such device" in err and "Exceptions from Trio nursery" not in err
