"""The worked example of docs/executors.md: the doc's code is the module's, and it binds a
burst of 40 adapters on which the unpatched executor deadlocks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from tcpip6.example_executors import BoundedExecutor
from tcpip6lab.cli import main
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm_async

ROOT = Path(__file__).resolve().parents[2]
SPEC = "tcpip6.example_executors:BoundedExecutor"


def test_the_docs_show_the_modules_code() -> None:
    doc = (ROOT / "docs" / "executors.md").read_text(encoding="utf-8")
    source = (ROOT / "tcpip6" / "example_executors.py").read_text(encoding="utf-8")
    (shown,) = re.findall(r"checked by a test -->\n```python\n(.*?)```", doc, re.S)
    (code,) = re.findall(r"# --8<-- \[start:bounded\]\n\n\n(.*?)\n\n# --8<-- \[end:bounded\]",
                         source, re.S)
    assert shown.strip() == code.strip()


def storm(spec: str, adapters: int = 40, **params: Any) -> tuple[dict[str, Any], Any]:
    hosts: list[EmulatedHost] = []
    result: dict[str, Any] = {}

    async def run() -> None:
        cfg = StormConfig(adapters=adapters, params=ModelParams(executor=spec, **params))
        result.update(await run_storm_async(cfg, on_host=hosts.append))

    trio.run(run, clock=MockClock(autojump_threshold=0))
    return result, hosts[0].executor


def test_a_burst_of_40_deadlocks_critical_and_binds_with_the_example() -> None:
    critical, _ = storm("critical")
    assert critical["outcome"] == "deadlock"
    bounded, ex = storm(SPEC)
    assert bounded["outcome"] == "bound" and bounded["adapters_bound"] == 40
    assert isinstance(ex, BoundedExecutor)
    assert ex.peak_blocked == BoundedExecutor.limit and ex.went_async > 0 and ex.blocked == 0
    assert ex.submitted == bounded["oids"]["submitted"] >= 40 * 9
    assert bounded["critical_workers"]["blocked_at_end"] <= 2  # the foreign holders only


def test_the_example_with_ndis_completions_and_with_its_cli_spec(
        capsys: pytest.CaptureFixture[str]) -> None:
    r, _ = storm(SPEC, completion_via="ndis")
    assert r["outcome"] == "bound"
    assert main(["storm", "--adapters", "40", "--executor", SPEC, "--expect", "bound"]) == 0
    assert f"40/40 adapters bound by tcpip6 ({SPEC} executor)" in capsys.readouterr().out


def test_at_the_queues_capacity_it_knots_and_the_detector_proves_it() -> None:
    r, _ = storm("tests.tcpip6.user_executors:Bounded24")
    assert r["outcome"] == "deadlock"
    ours = [link for link in r["deadlock"]["chain"] if link["item"].startswith("tcpip6.")]
    assert len(ours) == 24 and all(link["oid"] and link["adapter"] for link in ours)
