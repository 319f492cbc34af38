"""The pytest plugin, used the way a user's test suite would (through pytester)."""

from __future__ import annotations

import pytest

USER_TESTS = '''
import pytest
from tcpip6lab.pytest_plugin import assert_no_hang, expect_hang

def test_fixed_survives_pended_oids(emulated_host):
    run = emulated_host(adapters=30, executor="dedicated",
                        plan={"run": {"heal_at": 10}, "oid": [{"action": "pend", "count": 5}]})
    assert_no_hang(run)
    assert run.outcome == "bound"

@pytest.mark.seeds([0, 1, 2])
def test_unpatched_hangs_over_seeds(emulated_host, seed):
    expect_hang(emulated_host(adapters=24, executor="critical", seed=seed))

def test_this_one_fails_and_explains(emulated_host):
    assert_no_hang(emulated_host(adapters=24, executor="critical", seed=4))

def test_plan_from_a_file(emulated_host, tmp_path):
    plan = tmp_path / "p.toml"
    plan.write_text("[run]\\nseed = 9\\n[[queue]]\\naction='hold'\\nworkers=40\\nat=0.5\\n"
                    "duration=30.0\\n")
    run = emulated_host(adapters=2, executor="critical", plan=plan, max_dynamic=0,
                        horizon=10.0)
    assert run.seed == 9
    expect_hang(run, kind="any")
'''


def test_plugin_fixtures_markers_and_failure_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=1)
    out = result.stdout.str()
    assert "test_unpatched_hangs_over_seeds[seed2]" in out or "5 passed" in out
    # The failing test's report carries the seed, the wait-for graph and a reproduce line.
    assert "tcpip6-lab" in out
    assert "seed 4, executor critical, 24 adapters -> deadlock" in out
    assert "DEADLOCK on the critical queue" in out
    assert "reproduce: tcpip6-lab storm --adapters 24 --executor critical --seed 4" in out
