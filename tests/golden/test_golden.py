"""The golden event-trace hashes hold (tests/golden/traces.py says how to move them)."""

from __future__ import annotations

import pytest

from tests.golden.traces import keys, load, run_one

GOLDEN = load()


def test_the_golden_set_is_the_whole_matrix() -> None:
    assert sorted(GOLDEN) == sorted("/".join(k) for k in keys())
    outcomes = {v[0] for v in GOLDEN.values()}
    assert {"bound", "deadlock", "failed"} <= outcomes  # the hang, the fixes, the faults


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_golden_trace(key: str) -> None:
    executor, schedule, workers, variant = key.split("/")
    assert run_one(executor, schedule, workers, variant) == GOLDEN[key], (
        f"{key}: the event trace moved; if on purpose, regenerate with "
        "`python -m tests.golden.traces --update` in one commit that says why")
