"""pytest plugin: test software against an emulated host and its faults.

Registered through the `pytest11` entry point, so it is active wherever tcpip6-lab is installed:

    def test_fixed_binder_survives_pended_oids(emulated_host):
        run = emulated_host(adapters=30, executor="dedicated",
                            plan={"run": {"heal_at": 20},
                                  "oid": [{"oid": "*", "action": "pend", "count": 5}]})
        assert_no_hang(run)

    @pytest.mark.seeds(range(5))
    def test_over_seeds(emulated_host, seed):
        expect_hang(emulated_host(adapters=24, executor="critical", seed=seed))

Every run is recorded; when a test fails, its report gets a "tcpip6-lab" section with each
run's seed, plan and wait-for graph, so the failure can be reproduced with `tcpip6-lab storm`.
It lives in the application layer (it runs storms); the storm machinery is imported lazily,
since this module is loaded at every pytest start-up where tcpip6-lab is installed. Its `-p` name
is `tcpip6lab.pytest_plugin`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from faults.plan import FaultPlan, load_plan, plan_from_dict

if TYPE_CHECKING:  # the storm machinery is imported when a fixture runs one
    from .storm import StormResult


@dataclass
class HostRun:
    """The result of one emulated bind storm, with what is needed to explain it."""

    result: StormResult
    seed: int
    plan: FaultPlan | None
    executor: str
    adapters: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return self.result.outcome

    @property
    def hung(self) -> bool:
        """A proven deadlock, or a stall still active when the run ended."""
        if self.outcome == "deadlock":
            return True
        return any(s.get("ended_at") is None for s in self.result.stalls)

    def explain(self) -> str:
        lines = [f"seed {self.seed}, executor {self.executor}, {self.adapters} adapters -> "
                 f"{self.outcome}"]
        if self.plan is not None:
            lines.append(f"plan ({self.plan.source}): "
                         + json.dumps(self.plan.as_dict(), sort_keys=True, default=str))
        if self.result.deadlock_text is not None:
            lines.append(self.result.deadlock_text)
        lines.extend(self.result.stalls_text)
        lines.append(f"reproduce: tcpip6-lab storm --adapters {self.adapters} --executor "
                     f"{self.executor} --seed {self.seed}"
                     + (f" --faults {self.plan.source}" if self.plan is not None
                        and self.plan.source.endswith(".toml") else ""))
        return "\n".join(lines)


def assert_no_hang(run: HostRun) -> None:
    if run.hung:
        raise AssertionError("the emulated host hung:\n" + run.explain())


def expect_hang(run: HostRun, kind: str = "deadlock") -> None:
    """`kind`: "deadlock" (a proven knot) or "any" (a deadlock or an unresolved stall)."""
    ok = run.outcome == "deadlock" if kind == "deadlock" else run.hung
    if not ok:
        raise AssertionError(f"expected a {kind}, the run ended {run.outcome}:\n"
                             + run.explain())


def _as_plan(plan: FaultPlan | dict[str, Any] | str | Path | None) -> FaultPlan | None:
    if plan is None or isinstance(plan, FaultPlan):
        return plan
    if isinstance(plan, dict):
        return plan_from_dict(plan)
    return load_plan(plan)


RUNS_KEY = pytest.StashKey[list[HostRun]]()


@pytest.fixture
def emulated_host(request: pytest.FixtureRequest) -> Callable[..., HostRun]:
    """A factory: `emulated_host(adapters=24, executor="critical", plan=..., seed=0,
    interval=0.0, horizon=300.0, **model_params)` runs a bind storm in virtual time.
    `executor` is a spec: a built-in name or ``MODULE:ATTR`` (docs/executors.md)."""
    from tcpip6lab.params import ModelParams
    from tcpip6lab.storm import StormConfig, run_storm

    runs = request.node.stash.setdefault(RUNS_KEY, [])

    def run(*, adapters: int = 24, executor: str = "critical",
            plan: FaultPlan | dict[str, Any] | str | Path | None = None, seed: int | None = None,
            interval: float = 0.0, horizon: float = 300.0, **params: Any) -> HostRun:
        fault_plan = _as_plan(plan)
        if seed is None:
            seed = fault_plan.seed if fault_plan is not None and fault_plan.seed else 0
        model = ModelParams(executor=executor).with_(**params)
        result = run_storm(StormConfig(adapters=adapters, params=model, seed=seed,
                                       interval=interval, horizon=horizon, plan=fault_plan))
        host_run = HostRun(result, seed, fault_plan, executor, adapters, params)
        runs.append(host_run)
        return host_run

    return run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "seeds(values): run the test once per seed, passed "
                                       "as the `seed` fixture")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("seeds")
    if marker is None or "seed" not in metafunc.fixturenames:
        return
    values: Iterable[int] = marker.args[0] if marker.args else range(3)
    seeds = list(values)
    metafunc.parametrize("seed", seeds, ids=[f"seed{s}" for s in seeds])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    runs = item.stash.get(RUNS_KEY, [])
    if report.when == "call" and report.failed and runs:
        report.sections.append(("tcpip6-lab", "\n\n".join(r.explain() for r in runs)))
