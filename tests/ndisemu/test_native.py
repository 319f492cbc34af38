"""The compiled build (ndisemu.native, tcpip6lab.native): used only when it matches the
sources, the same run as pure Python, and executors stay subclassable from Python."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ndisemu.kernel
import tcpip6.binder
from ndisemu import native
from ndisemu.errors import ConfigError, NativeUnavailable
from ndisemu.params import ExecutiveParams
from tcpip6.executors import AsyncExecutor, DedicatedExecutor, ExecutorContext, Submission
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm

ROOT = Path(__file__).resolve().parents[2]


def _fresh_build() -> bool:
    files, _why = native.find()
    return bool(files)


def _require_build() -> None:
    """Skip without a fresh build — unless the run asked for one (./lab test does, once it
    built it), where a missing build is a failure, not a skip."""
    if _fresh_build():
        return
    if native.mode_from_env() == "require":
        pytest.fail("TCPIP6LAB_NATIVE=require but no fresh build")
    pytest.skip(f"no compiled build: {native.find()[1]}")


# -- the loader's decisions ----------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "mode"), [("", "auto"), ("auto", "auto"), ("1", "require"),
                                           ("REQUIRE", "require"), ("0", "off"), (" off ", "off")])
def test_mode_from_env(raw: str, mode: str) -> None:
    assert native.mode_from_env({native.ENV: raw}) == mode


def test_a_bad_mode_is_one_clear_line() -> None:
    with pytest.raises(NativeUnavailable, match=r"^TCPIP6LAB_NATIVE must be auto, 1/require or "
                                                 r"0/off, not 'yes'$"):
        native.mode_from_env({native.ENV: "yes"})


def _fake_build(d: Path, **override: Any) -> dict[str, Any]:
    files = {m: m.replace(".", "/") + ".so" for m in native.MODULES}
    files[f"{native.GROUP}__mypyc"] = f"{native.GROUP}__mypyc.so"
    for rel in files.values():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(b"")
    manifest = {"format": native.FORMAT, "cache_tag": sys.implementation.cache_tag,
                "ext_suffix": native.ext_suffix(), "modules": list(native.MODULES),
                "digest": "abc", "files": files, "sizes": {m: 0 for m in files}, **override}
    (d / native.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return files


def test_check_accepts_only_a_matching_complete_build(tmp_path: Path) -> None:
    assert native.check(tmp_path, "abc")[1].startswith("not built")
    files = _fake_build(tmp_path)
    found, why = native.check(tmp_path, "abc")
    assert why == "" and found == {m: tmp_path / rel for m, rel in files.items()}
    assert native.check(tmp_path, "abd")[1].startswith("stale: sources changed")
    (tmp_path / files["ndisemu.rng"]).write_bytes(b"x")  # not the file the build made
    assert native.check(tmp_path, "abc")[1] == (f"damaged build: {files['ndisemu.rng']} is 1 "
                                                "bytes, built as 0")
    (tmp_path / files["ndisemu.rng"]).write_bytes(b"")
    (tmp_path / files["ndisemu.kernel"]).unlink()
    assert native.check(tmp_path, "abc")[1] == f"incomplete build: {files['ndisemu.kernel']} " \
                                               "is missing"


@pytest.mark.parametrize(("override", "why"), [
    ({"format": 0}, "built by another version"),
    ({"cache_tag": "cpython-399"}, "built for "),
    ({"ext_suffix": ".cpython-311-darwin.so"}, "built for .cpython-311-darwin.so, this is "),
    ({"sizes": None}, "built by another version"),
    ({"files": {"ndisemu.kernel": "ndisemu/kernel.py"}}, "not an extension module here"),
    ({"modules": ["ndisemu.kernel"]}, "built for another module list"),
])
def test_check_refuses_a_build_for_something_else(tmp_path: Path, override: dict[str, Any],
                                                  why: str) -> None:
    _fake_build(tmp_path, **override)
    files, reason = native.check(tmp_path, "abc")
    assert files == {} and reason.startswith(why)


def test_find_takes_the_build_named_by_the_sources_digest(tmp_path: Path) -> None:
    digest = "ab" * 32
    assert native.find(tmp_path, digest)[1] == ("not built: run `tcpip6-lab native build` "
                                                f"(looked in {tmp_path})")
    other = tmp_path / ("cd" * 8)
    other.mkdir()
    _fake_build(other, digest="cd" * 32)
    assert native.find(tmp_path, digest)[1].startswith("stale: sources changed")
    mine = native.build_dir(digest, tmp_path)
    assert mine == tmp_path / digest[:16]
    mine.mkdir()
    files = _fake_build(mine, digest=digest)
    found, why = native.find(tmp_path, digest)
    assert why == "" and found == {m: mine / rel for m, rel in files.items()}
    # A build directory under the right name but of other sources is refused, not trusted.
    _fake_build(mine, digest="ef" * 32)
    assert native.find(tmp_path, digest)[1].startswith("stale: sources changed")


def test_a_build_keeps_the_newest_builds_for_running_processes(tmp_path: Path) -> None:
    from tcpip6lab.native import KEEP, _prune

    names = [f"{i:016x}" for i in range(6)]
    for age, name in enumerate(names):  # names[0] is the newest
        d = tmp_path / name
        d.mkdir()
        (d / native.MANIFEST).write_text("{}")
        (tmp_path / f"{name}.build.log").write_text("")
        os.utime(d, (1e9 - age, 1e9 - age))
    (tmp_path / "notes").mkdir()  # not a build: left alone
    leftover = tmp_path / f".{names[0]}.new-x"
    leftover.mkdir()
    os.utime(leftover, (1e9, 1e9))  # an interrupted build's staging directory, long ago
    new = tmp_path / names[3]  # the build just made (not the newest by mtime here)
    _prune(tmp_path, keep=new)
    left = sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != "notes")
    assert left == sorted([names[0], names[1], names[3]]) and len(left) == KEEP
    assert (tmp_path / "notes").is_dir()
    assert sorted(p.name for p in tmp_path.glob("*.build.log")) == [f"{n}.build.log"
                                                                    for n in sorted(left)]


def test_the_digest_covers_every_source_file_of_both_packages(tmp_path: Path) -> None:
    for rel in ("ndisemu/__init__.py", "ndisemu/executive/core.py", "tcpip6/stack/tcp.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    before = native.source_digest(tmp_path)
    assert native.source_digest(tmp_path) == before
    (tmp_path / "tcpip6/stack/tcp.py").write_text("x = 2\n")  # not compiled, but in the digest
    edited = native.source_digest(tmp_path)
    assert edited != before
    (tmp_path / "ndisemu/new.py").write_text("")
    assert native.source_digest(tmp_path) != edited
    with_new = native.source_digest(tmp_path)
    (tmp_path / "ndisemu/notes.txt").write_text("not a source")
    (tmp_path / "ndisemu/.#kernel.py").symlink_to("user@host.1234:1")  # an Emacs lock: dangling
    (tmp_path / "ndisemu/#kernel.py#").write_text("autosave")
    (tmp_path / "ndisemu/link.py").symlink_to(tmp_path / "ndisemu/new.py")
    assert native.source_digest(tmp_path) == with_new


def test_the_finder_answers_only_for_the_compiled_modules(tmp_path: Path) -> None:
    so = tmp_path / "kernel.so"
    finder = native.NativeFinder({"ndisemu.kernel": so})
    assert finder.find_spec("ndisemu.ndis", None) is None
    spec = finder.find_spec("ndisemu.kernel", None)
    assert spec is not None and spec.origin == str(so)
    assert type(spec.loader).__name__ == "ExtensionFileLoader"


def test_this_process_reports_what_it_loaded() -> None:
    st = native.status()
    assert native.compiled(ndisemu.kernel) is st.active
    assert native.compiled(tcpip6.binder) is st.active
    assert st.describe().startswith("compiled" if st.active else "pure Python")


# -- the same run, compiled or not ----------------------------------------------------------------

_TRACES = r"""
import io, json, sys
import ndisemu.kernel
from ndisemu import native
from faults.plan import parse_plan
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm

from tests.tcpip6lab.test_worker_drivers import PLAN  # faults of every kind
out = {"compiled": native.compiled(ndisemu.kernel), "runs": {}}
for executor in ("critical", "dedicated", "async", "rescuer"):
    for schedule in ("random", "pct"):
        for workers in ("coroutines", "tasks"):
            r = run_storm(StormConfig(adapters=30, seed=1, workers=workers, log=io.StringIO(),
                                      params=ModelParams(executor=executor, schedule=schedule)))
            out["runs"][f"{executor}/{schedule}/{workers}"] = [r["outcome"], r["trace_hash"]]
r = run_storm(StormConfig(adapters=12, seed=3, interval=0.1, traffic=True, horizon=60.0,
                          log=io.StringIO(),
                          plan=parse_plan(PLAN, source="<test>"),
                          params=ModelParams(executor="critical")))
out["runs"]["faults+traffic"] = [r["outcome"], r["trace_hash"], r["faults"]["fired"]]
json.dump(out, sys.stdout)
"""


def _run_traces(mode: str) -> dict[str, Any]:
    env = dict(os.environ, **{native.ENV: mode})
    proc = subprocess.run([sys.executable, "-c", _TRACES], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_compiled_and_pure_python_give_the_same_traces() -> None:
    _require_build()
    pure, compiled = _run_traces("0"), _run_traces("require")
    assert pure["compiled"] is False and compiled["compiled"] is True
    assert compiled["runs"] == pure["runs"]
    outcomes = {v[0] for v in pure["runs"].values()}
    assert {"bound", "deadlock"} <= outcomes  # the set covers the hang and the fixes
    assert pure["runs"]["faults+traffic"][2]  # the plan's faults fired


def test_require_without_a_build_is_one_line_and_status_2(tmp_path: Path) -> None:
    env = dict(os.environ, **{native.ENV: "require", native.DIR_ENV: str(tmp_path)})
    proc = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "storm", "--adapters", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "tcpip6-lab: error: TCPIP6LAB_NATIVE=require, but the compiled modules are not built: "
        f"run `tcpip6-lab native build` (looked in {tmp_path})\n")


def test_require_does_not_stop_the_build_command(tmp_path: Path) -> None:
    """Under require without a build, importing ndisemu still works — the error comes when a
    compiled module is imported — so `native build` (here: no compiler, exit 3) and
    `native status` run."""
    env = dict(os.environ, **{native.ENV: "require", native.DIR_ENV: str(tmp_path),
                              "CC": str(tmp_path / "no-such-cc")})
    build = subprocess.run([sys.executable, "-m", "tcpip6lab.native", "build"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=60, check=False)
    assert build.returncode == 3, build.stderr
    assert build.stderr == ("tcpip6-lab: cannot build the compiled modules: needs a C compiler "
                            f"({tmp_path / 'no-such-cc'} not found)\n")
    st = subprocess.run([sys.executable, "-m", "tcpip6lab.native", "status"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert st.returncode == 0, st.stderr
    assert ("importing a compiled module fails: TCPIP6LAB_NATIVE=require, but the compiled "
            "modules are not built") in st.stdout


def test_a_build_this_process_cannot_load_is_not_used(tmp_path: Path) -> None:
    """A complete build whose code does not load here (another machine's, say, in a shared
    checkout): auto runs pure Python and says why; require refuses at the first import."""
    _require_build()
    import shutil

    digest = native.source_digest()
    base = tmp_path / "builds"
    shutil.copytree(native.build_dir(digest), native.build_dir(digest, base))
    group = native.find(base, digest)[0][f"{native.GROUP}__mypyc"]
    group.write_bytes(b"\0" * group.stat().st_size)  # same size, not an ELF file
    code = ("import ndisemu.kernel; from ndisemu import native; "
            "print(native.compiled(ndisemu.kernel), native.status().reason)")
    auto = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, **{native.ENV: "auto", native.DIR_ENV: str(base)}),
                          timeout=60, check=False)
    assert auto.stdout.startswith("False the build cannot be loaded here ("), auto.stderr
    req = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "storm", "--adapters", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                         env=dict(os.environ, **{native.ENV: "1", native.DIR_ENV: str(base)}))
    assert req.returncode == 2 and req.stdout == ""
    assert req.stderr.startswith("tcpip6-lab: error: TCPIP6LAB_NATIVE=require, but the "
                                 "compiled modules are the build cannot be loaded here (")
    assert req.stderr.count("\n") == 1


def test_native_status_command(tmp_path: Path) -> None:
    env = dict(os.environ, **{native.ENV: "auto", native.DIR_ENV: str(tmp_path)})
    proc = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "native", "status"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"in use: pure Python (not built: run `tcpip6-lab native build` " \
                       f"(looked in {tmp_path}))"
    assert lines[1] == "mode: auto (TCPIP6LAB_NATIVE)"
    assert lines[2].startswith(f"build: {tmp_path}/") and lines[2].endswith(
        f"not built: run `tcpip6-lab native build` (looked in {tmp_path})")
    assert lines[3].startswith("can build here: ")


def test_a_stale_build_is_not_used(tmp_path: Path) -> None:
    """A complete build of other sources (before an edit) runs pure Python, even though its
    extension files are all there."""
    _require_build()
    import shutil

    stale = tmp_path / "builds"
    shutil.copytree(native.build_dir(native.source_digest()), stale / ("0" * 16))
    env = dict(os.environ, **{native.ENV: "auto", native.DIR_ENV: str(stale)})
    code = ("import ndisemu.kernel; from ndisemu import native; "
            "print(native.compiled(ndisemu.kernel), native.status().reason)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.stdout.strip() == ("False stale: sources changed since the build "
                                   "(`tcpip6-lab native build`)"), proc.stderr


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
