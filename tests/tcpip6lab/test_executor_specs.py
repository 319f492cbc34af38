"""`--executor SPEC` on the command line: a spec naming a built-in behaves exactly as its name,
a user's executor travels as a string (replay, explore, the pytest plugin), and a bad spec is
one line and exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tcpip6lab.cli import main

USER = "tests.tcpip6.user_executors"
HOTFIX = "tcpip6.executors:DedicatedExecutor"


def storm(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["storm", "--json", *args]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.parametrize("args", [
    ["--adapters", "30", "--seed", "5"],
    ["--adapters", "12", "--seed", "2", "--dedicated-threads", "2", "--traffic",
     "--horizon", "3s"],
])
def test_a_spec_of_the_hotfix_behaves_exactly_as_its_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    runs = {}
    for i, spec in enumerate(("dedicated", HOTFIX)):
        log = tmp_path / f"run{i}.jsonl"
        r = storm(capsys, *args, "--executor", spec, "--log", str(log))
        lines = log.read_text().splitlines()
        runs[spec] = (r, json.loads(lines[0]), lines[1:-1])
    (named, named_header, named_events), (spec, spec_header, spec_events) = runs.values()
    assert named["executor"] == "dedicated" and spec["executor"] == HOTFIX  # as given
    assert named["outcome"] == spec["outcome"] == "bound"
    assert named["adapters_bound"] == spec["adapters_bound"]
    # Every event between the header and the trailer, byte for byte (the trace hash covers the
    # header too, so it differs with the executor field).
    assert named_events == spec_events
    assert len(named_events) > 100
    # The headers differ only in the executor field of the params.
    assert named_header["params"].pop("executor") == "dedicated"
    assert spec_header["params"].pop("executor") == HOTFIX
    assert named_header == spec_header


def test_a_users_executor_is_logged_by_spec_and_replays(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "user.jsonl"
    r = storm(capsys, "--adapters", "24", "--executor", f"{USER}:Unpatched", "--log", str(log))
    assert r["outcome"] == "deadlock" and r["executor"] == f"{USER}:Unpatched"
    header = json.loads(log.read_text().splitlines()[0])
    assert header["params"]["executor"] == f"{USER}:Unpatched"
    assert main(["replay", str(log)]) == 0  # the replay imports the spec from the header
    out = capsys.readouterr().out
    assert out.startswith("replay: identical") and "outcome deadlock" in out


def test_explore_takes_a_spec_and_its_command_reproduces(
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{USER}:Unpatched"
    assert main(["explore", "--adapters", "26", "--runs", "2", "--json",
                 "--executor", spec]) == 0
    smallest = json.loads(capsys.readouterr().out)["smallest"]
    assert smallest is not None and f"--executor {spec} " in smallest["reproduce"]
    argv = smallest["reproduce"].split()[1:]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == smallest["outcome"]


@pytest.mark.parametrize("command", [
    ["storm", "--adapters", "3"],
    ["serve"],
    ["explore", "--adapters", "3"],
])
@pytest.mark.parametrize("spec,message", [
    ("fast", "unknown executor 'fast' (choose from critical, dedicated, async, rescuer"),
    ("no_such_module_xyz:X", "executor 'no_such_module_xyz:X': no module named"),
    (f"{USER}:Missing", f"module '{USER}' has no attribute 'Missing'"),
    (f"{USER}:NotAnExecutor", "NotAnExecutor is not an OidExecutor subclass"),
])
def test_a_bad_spec_is_one_line_naming_it_and_exit_2(
        capsys: pytest.CaptureFixture[str], command: list[str], spec: str,
        message: str) -> None:
    assert main([*command, "--executor", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"tcpip6-lab {command[0]}: error: argument --executor: ")
    assert message in err


def test_the_help_lists_the_builtin_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["storm", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "{critical,dedicated,async,rescuer}" in help_text and "MODULE:ATTR" in help_text


def test_the_pytest_plugin_takes_a_spec(emulated_host: Callable[..., Any]) -> None:
    run = emulated_host(adapters=24, executor=f"{USER}:Unpatched")
    assert run.outcome == "deadlock" and run.result["executor"] == f"{USER}:Unpatched"
    assert f"--executor {USER}:Unpatched" in run.explain()
    assert emulated_host(adapters=24, executor=HOTFIX).outcome == "bound"
