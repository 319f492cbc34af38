"""explore: seeded PCT schedules find an order-dependent bug and shrink it."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from faults.explore import RunRecord, explore
from ndisemu.errors import BugCheck
from ndisemu.executive.core import WorkItem
from ndisemu.kernel import Kernel
from ndisemu.params import CRITICAL, ExecutiveParams
from tcpip6lab.cli import main


def planted(adapters: int, seed: int) -> RunRecord:
    """A planted order-dependent bug: per adapter, an item A publishes a value and an item B,
    ready at the same instant on another thread, reads it. B reading before A is harmless —
    except for the third adapter and later, whose B asserts A ran first. Whether it fails
    depends only on the order the scheduler picks among ready threads."""

    async def run() -> None:
        k = Kernel(ExecutiveParams(cpus=64), seed=seed, schedule="pct", pct_depth=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(k.run)
            published: set[int] = set()
            for i in range(adapters):
                async def a(_: WorkItem, i: int = i) -> None:
                    published.add(i)

                async def b(_: WorkItem, i: int = i) -> None:
                    if i >= 2:
                        assert i in published, f"adapter {i}: read before publish"

                k.queue_work_item(CRITICAL, a, name=f"a{i}")
                k.queue_work_item(CRITICAL, b, name=f"b{i}")
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    try:
        trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    except BaseException as exc:  # the bugcheck (in its exception group)
        found = isinstance(exc, BugCheck) or (isinstance(exc, BaseExceptionGroup)
                                              and exc.subgroup(BugCheck) is not None)
        if not found:
            raise
        return RunRecord(adapters, seed, True, "bugcheck")
    return RunRecord(adapters, seed, False, "ok")


def test_explore_finds_and_shrinks_a_planted_order_bug() -> None:
    report = explore(planted, adapters=8, runs=30)
    assert report.failures, "30 PCT schedules never hit the planted bug"
    best = report.smallest
    assert best is not None and best.adapters == 3  # the smallest size that can fail
    assert planted(best.adapters, best.seed).failed  # it reproduces
    assert not planted(2, best.seed).failed


def test_explore_without_the_bug_finds_nothing() -> None:
    report = explore(lambda n, s: RunRecord(n, s, False, "ok"), adapters=8, runs=5)
    assert report.failures == [] and report.smallest is None and report.storms == 5


def test_explore_cli_reports_the_cliff_and_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "--adapters", "30", "--runs", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["failures"] == 3
    best = out["smallest"]
    assert best["adapters"] == 24 and best["outcome"] == "deadlock"
    assert best["reproduce"].startswith("tcpip6-lab storm --adapters 24 --executor critical")
    cmd = best["reproduce"].split()[1:]
    assert main([*cmd, "--expect", "deadlock"]) == 0
