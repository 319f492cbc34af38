"""The compiled hot modules (a wheel's, built by setup.py with mypyc): the same run as pure
Python, reported by tcpip6lab.buildinfo, checked at the suite's start (tests/conftest.py), and
the executors stay subclassable from Python."""

from __future__ import annotations

import ast
import ctypes
import dataclasses
import importlib
import json
import os
import re
import runpy
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import ndisemu.kernel
import tcpip6.binder
import tcpip6.executors
from ndisemu.errors import ConfigError
from ndisemu.params import ExecutiveParams
from tcpip6.executors import AsyncExecutor, DedicatedExecutor, ExecutorContext, Submission
from tcpip6lab import buildinfo
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm

ROOT = Path(__file__).resolve().parents[2]
COMPILED = bool(buildinfo.compiled_modules())


def _needs_compiled() -> None:
    """Skip where this installation has no compiled modules (the editable tree; a machine
    without a C compiler) — unless the run expects them (./lab test's first pass)."""
    if COMPILED:
        return
    if os.environ.get("TCPIP6LAB_EXPECT") == "compiled":
        pytest.fail("TCPIP6LAB_EXPECT=compiled, but no hot module is compiled")
    pytest.skip("needs the compiled wheel installed (./lab test's first pass)")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONSAFEPATH", "TCPIP6LAB_EXPECT")}
    return {**env, **extra}


# -- what is compiled, and what this process reports ---------------------------------------------


def test_setup_compiles_the_one_list_of_hot_modules() -> None:
    """setup.py reads HOT_MODULES from buildinfo.py's source, without importing the package."""
    setup = runpy.run_path(str(ROOT / "setup.py"), run_name="setup_under_test")
    assert setup["HOT_MODULES"] == buildinfo.HOT_MODULES
    assert setup["GROUP"] == buildinfo.GROUP
    for name in buildinfo.HOT_MODULES:
        assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), name


def test_this_process_reports_what_it_loaded() -> None:
    for module in (ndisemu.kernel, tcpip6.binder, tcpip6.executors):
        assert buildinfo.is_compiled(module.__name__) is str(module.__file__).endswith(".so")
    done = buildinfo.compiled_modules()
    assert done in ((), buildinfo.HOT_MODULES)  # all or nothing: one mypyc group
    assert buildinfo.describe().startswith(
        f"compiled ({len(buildinfo.HOT_MODULES)} hot modules" if done else "pure Python")
    lines = buildinfo.report().splitlines()
    assert lines[0] == buildinfo.describe() and len(lines) == 1 + len(buildinfo.HOT_MODULES)


@pytest.mark.skipif(sys.platform != "linux", reason="setup.py's LINKAGE_FLAGS are for ELF")
def test_the_group_library_hides_all_but_its_init() -> None:
    """setup.py's LINKAGE_FLAGS took effect: the compiled modules' functions are hidden, so
    they call one another directly, not through the PLT (bench.frame_lines counts the lines
    this saves). The library's init function stays visible, or it could not be imported."""
    _needs_compiled()
    lib = ctypes.CDLL(importlib.import_module(f"{buildinfo.GROUP}__mypyc").__file__)
    assert hasattr(lib, f"PyInit_{buildinfo.GROUP}__mypyc")
    for hidden in ("CPy_AddTraceback", "CPyStatics"):  # mypyc's runtime, its constants
        assert not hasattr(lib, hidden), hidden


def test_the_native_command_says_which(capsys: pytest.CaptureFixture[str]) -> None:
    from tcpip6lab.cli import main

    assert main(["native"]) == 0
    out = capsys.readouterr().out
    assert out == buildinfo.report() + "\n"


# -- the suite's start-up check catches a source tree shadowing the wheel -------------------------


def _pytest_subprocess(env: dict[str, str], *opts: str) -> subprocess.CompletedProcess[str]:
    """pytest on one quick test of this file; `opts`: "-P" for Python, the rest for pytest."""
    py = [o for o in opts if o == "-P"]
    return subprocess.run(
        [sys.executable, *py, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *(o for o in opts if o != "-P"),
         "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
         f"{Path(__file__)}::test_setup_compiles_the_one_list_of_hot_modules"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_source_tree_first_on_sys_path_fails_the_compiled_check_loudly() -> None:
    """TCPIP6LAB_EXPECT=compiled with the repository first on sys.path (PYTHONPATH): the run
    stops before any test, naming the module and where it came from."""
    proc = _pytest_subprocess(_env(TCPIP6LAB_EXPECT="compiled", PYTHONPATH=str(ROOT)))
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage error
    assert (f"TCPIP6LAB_EXPECT=compiled, but ndisemu is imported from {ROOT}/ndisemu/"
            "__init__.py, not from site-packages") in proc.stderr, proc.stderr
    assert "passed" not in proc.stdout


def test_the_installed_wheel_passes_the_compiled_check() -> None:
    """The positive side, run as ./lab test runs the suite: -P, --import-mode=append."""
    _needs_compiled()
    proc = _pytest_subprocess(_env(TCPIP6LAB_EXPECT="compiled", PYTHONSAFEPATH="1"), "-P")
    assert proc.returncode != 0  # the default import mode puts the repository first...
    proc = _pytest_subprocess(_env(TCPIP6LAB_EXPECT="compiled", PYTHONSAFEPATH="1"), "-P",
                              "--import-mode=append")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # ...append keeps site-packages first
    assert "1 passed" in proc.stdout


def test_the_pure_check_refuses_compiled_modules() -> None:
    _needs_compiled()
    from tests.conftest import build_problems

    assert build_problems("compiled") == []
    assert build_problems("pure") == [f"{m} is compiled ({buildinfo.origin(m)})"
                                      for m in buildinfo.HOT_MODULES]
    assert build_problems("yes") == ["TCPIP6LAB_EXPECT must be compiled or pure, not 'yes'"]


# -- the same run, compiled or not ----------------------------------------------------------------

_TRACES = r"""
import io, json, sys
ROOT = {root!r}
{path_edit}  # the repository: `tests.*`, and for the pure side the packages too
from faults.plan import parse_plan
from tcpip6lab import buildinfo
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm
from tests.golden.traces import PLAN  # faults of every kind

out = {"compiled": buildinfo.compiled_modules(), "runs": {}}
for executor in ("critical", "dedicated", "async", "rescuer"):
    for schedule in ("random", "pct"):
        for workers in ("coroutines", "tasks"):
            r = run_storm(StormConfig(adapters=30, seed=1, workers=workers, log=io.StringIO(),
                                      params=ModelParams(executor=executor, schedule=schedule)))
            out["runs"][f"{executor}/{schedule}/{workers}"] = [r["outcome"], r["trace_hash"]]
r = run_storm(StormConfig(adapters=12, seed=3, interval=0.1, traffic=True, horizon=60.0,
                          log=io.StringIO(), plan=parse_plan(PLAN, source="<test>"),
                          params=ModelParams(executor="critical")))
out["runs"]["faults+traffic"] = [r["outcome"], r["trace_hash"], r["faults"]["fired"]]
json.dump(out, sys.stdout)
"""


def _run_traces(where: str) -> dict[str, Any]:
    edit = "sys.path.append(ROOT)" if where == "append" else "sys.path.insert(0, ROOT)"
    code = _TRACES.replace("{path_edit}", edit).replace("{root!r}", repr(str(ROOT)))
    proc = subprocess.run([sys.executable, "-P", "-c", code], cwd="/", env=_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_compiled_and_pure_python_give_the_same_traces() -> None:
    """The installed wheel against the repository's sources first on sys.path (pure Python:
    nothing compiled is ever written into the tree)."""
    _needs_compiled()
    compiled = _run_traces("append")
    pure = _run_traces("insert")
    assert compiled["compiled"] == list(buildinfo.HOT_MODULES) and pure["compiled"] == []
    assert compiled["runs"] == pure["runs"]
    outcomes = {v[0] for v in pure["runs"].values()}
    assert {"bound", "deadlock"} <= outcomes  # the set covers the hang and the fixes
    assert pure["runs"]["faults+traffic"][2]  # the plan's faults fired


# -- the public configuration settles its values before either build sees them ------------------


@pytest.mark.parametrize(("make", "message"), [
    (lambda: StormConfig(adapters=3, seed=3.0), "seed must be an integer (got 3.0)"),
    (lambda: StormConfig(adapters=3, seed=True), "seed must be an integer (got True)"),
    (lambda: StormConfig(adapters="3"), "adapters must be an integer (got '3')"),
    (lambda: StormConfig(adapters=3, interval="1ms"), "interval must be a number (got '1ms')"),
    (lambda: StormConfig(adapters=3, traffic=1), "traffic must be true or false (got 1)"),
    (lambda: ExecutiveParams(cpus=2.0), "cpus must be an integer (got 2.0)"),
    (lambda: ModelParams(multicast_list_size=32.5), "multicast_list_size must be an integer"),
    (lambda: ModelParams(ipv4=0), "ipv4 must be true or false (got 0)"),
])
def test_config_values_of_the_wrong_type_are_one_clear_error(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        make()


def test_config_takes_any_integer_type_as_a_plain_int() -> None:
    class Count(int):  # an int subclass standing in for a NumPy integer
        pass

    cfg = StormConfig(adapters=Count(3), seed=Count(7),
                      params=ModelParams(executive=ExecutiveParams(cpus=Count(2))))
    assert type(cfg.adapters) is int and type(cfg.seed) is int
    assert type(cfg.params.executive.cpus) is int
    assert ModelParams(latency=1).latency == 1  # an integer for a float is fine in both builds
    assert run_storm(cfg)["outcome"] == "bound"


# -- the executors stay an extension point ----------------------------------------------------


class CountingAsync(AsyncExecutor):
    """A user's executor: a plain-Python subclass of a (possibly compiled) one."""

    name = "counting-async"
    made: list[Any] = []

    def __init__(self, ctx: ExecutorContext) -> None:
        super().__init__(ctx)
        self.seen: list[int] = []
        CountingAsync.made.append(self)

    def submit(self, sub: Submission) -> None:
        self.seen.append(sub.request.oid)
        super().submit(sub)


class TwoThreadDedicated(DedicatedExecutor):
    made: list[Any] = []

    def __init__(self, ctx: ExecutorContext) -> None:
        super().__init__(ctx, threads=2)
        TwoThreadDedicated.made.append(self)


@pytest.mark.parametrize("cls", [CountingAsync, TwoThreadDedicated])
def test_python_subclasses_of_the_executors_run(monkeypatch: pytest.MonkeyPatch,
                                                cls: type[Any]) -> None:
    monkeypatch.setattr(cls, "made", [])
    spec = f"{__name__}:{cls.__name__}"
    r = run_storm(StormConfig(adapters=3, params=ModelParams(executor=spec)))
    assert r["outcome"] == "bound" and r["adapters_bound"] == 3 and r["executor"] == spec
    (ex,) = cls.made
    assert ex.submitted == r["oids"]["submitted"] > 0
    if isinstance(ex, CountingAsync):
        assert len(ex.seen) == ex.submitted
    else:
        assert ex.threads == 2
    # Under the compiled build, these are Python subclasses of compiled classes.
    assert buildinfo.is_compiled("tcpip6.executors") is COMPILED


# -- per-packet objects: written-out __init__s ---------------------------------------------------
# A compiled dataclass keeps the interpreted __init__ that `dataclass` generates at import; the
# ones made per packet or per work item write theirs out, which mypyc compiles to native code
# (bench/README.md, "Issue 18, fourth round"). The list must not drift from the fields.

#: Made per received packet or per work item: their __init__ is written out.
PER_PACKET = (
    "ndisemu.executive.core:WaitObject", "ndisemu.executive.core:WorkItem",
    "ndisemu.executive.core:Worker", "ndisemu.executive.core:Start",
    "ndisemu.executive.core:Resume", "ndisemu.executive.core:WorkerExit",
    "tcpip6.wire.ipv6:Ipv6Header", "tcpip6.wire.icmpv6:Icmpv6Message",
)


_Params = list[tuple[str, bool]]


def _dataclass_inits(path: Path) -> list[tuple[str, _Params, _Params]]:
    """(class, its fields as (name, has a default), its __init__'s parameters likewise) for each
    dataclass in `path` that writes its own __init__, from the source (compiled or not)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ClassDef):
            continue
        names = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
        if not any(isinstance(n, ast.Name) and n.id == "dataclass" for n in names):
            continue
        init = next((f for f in node.body
                     if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        if init is None:
            continue
        fields = []
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if "ClassVar" in ast.unparse(stmt.annotation):
                    continue
                fields.append((stmt.target.id, stmt.value is not None))
        args = init.args
        params = args.args[1:]
        first_default = len(params) - len(args.defaults)
        got = [(a.arg, i >= first_default) for i, a in enumerate(params)]
        assert not args.kwonlyargs and not args.vararg and not args.kwarg, node.name
        out.append((node.name, fields, got))
    return out


def test_hand_written_inits_match_their_fields() -> None:
    """Every dataclass of the compiled modules that writes its own __init__ takes exactly its
    fields, in order, each with a default where the field has one — so the generated methods
    (repr, eq, `dataclasses.replace`) and every caller keep working."""
    seen = set()
    for name in buildinfo.HOT_MODULES:
        for cls, fields, params in _dataclass_inits(ROOT / (name.replace(".", "/") + ".py")):
            assert params == fields, f"{name}.{cls}: __init__ {params} != fields {fields}"
            seen.add(f"{name}:{cls}")
    assert seen >= set(PER_PACKET), set(PER_PACKET) - seen


def test_per_packet_objects_are_built_by_native_code() -> None:
    """Compiled, their __init__ is native (a slot wrapper), not the interpreted function
    `dataclass` generates (which is what they would get without a written-out one)."""
    _needs_compiled()
    for spec in PER_PACKET:
        mod, _, cls_name = spec.partition(":")
        cls = getattr(importlib.import_module(mod), cls_name)
        assert dataclasses.is_dataclass(cls), spec
        assert buildinfo.is_compiled(mod), spec
        assert not isinstance(cls.__dict__["__init__"], types.FunctionType), spec
