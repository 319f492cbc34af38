"""Executor specs: built-in names, MODULE:ATTR, entry points, one clear error per bad spec, and
one factory constructing every executor from one context."""

from __future__ import annotations

from pathlib import Path

import pytest

from ndisemu.errors import ConfigError as ModelConfigError
from tcpip6.errors import ConfigError, ExecutorSpecError, Tcpip6Error
from tcpip6.example_executors import BoundedExecutor
from tcpip6.executors import (
    AsyncExecutor,
    CriticalExecutor,
    DedicatedExecutor,
    ExecutorContext,
    OidExecutor,
    RescuerExecutor,
)
from tcpip6.registry import (
    BUILTIN_EXECUTORS,
    BUILTIN_NAMES,
    ENTRY_POINT_GROUP,
    installed_names,
    is_executor_subclass,
    make_executor,
    resolve,
)
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams
from tests.tcpip6 import user_executors

USER = "tests.tcpip6.user_executors"


def test_builtin_names_and_their_classes() -> None:
    assert BUILTIN_NAMES == ("critical", "dedicated", "async", "rescuer")
    assert [resolve(n) for n in BUILTIN_NAMES] == [CriticalExecutor, DedicatedExecutor,
                                                    AsyncExecutor, RescuerExecutor]
    assert all(BUILTIN_EXECUTORS[n].name == n for n in BUILTIN_NAMES)


def test_module_attr_specs_resolve_to_the_class() -> None:
    assert resolve("tcpip6.executors:DedicatedExecutor") is DedicatedExecutor
    assert resolve(f"{USER}:Unpatched") is user_executors.Unpatched
    assert resolve("tcpip6.example_executors:BoundedExecutor") is BoundedExecutor


@pytest.mark.parametrize("spec,message", [
    ("fast", "unknown executor 'fast' (choose from critical, dedicated, async, rescuer"),
    ("", "executor spec must be a non-empty string"),
    ("no_such_module_xyz:Thing", "executor 'no_such_module_xyz:Thing': no module named "
                                 "'no_such_module_xyz'"),
    ("tcpip6.nope:Thing", "executor 'tcpip6.nope:Thing': no module named 'tcpip6.nope'"),
    (f"{USER}:Missing", f"executor '{USER}:Missing': module '{USER}' has no attribute "
                        "'Missing'"),
    (f"{USER}:NotAnExecutor", f"executor '{USER}:NotAnExecutor': NotAnExecutor is not an "
                              "OidExecutor subclass"),
    (f"{USER}:not_a_class", f"executor '{USER}:not_a_class': int object is not an OidExecutor "
                            "subclass"),
    (f"{USER}:Incomplete", f"executor '{USER}:Incomplete': Incomplete is abstract"),
    (":Thing", "executor ':Thing': a spec with ':' must be MODULE:ATTR"),
])
def test_a_bad_spec_is_one_error_naming_it(spec: str, message: str) -> None:
    with pytest.raises(ExecutorSpecError) as info:
        resolve(spec)
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text
    assert isinstance(info.value, ConfigError) and isinstance(info.value, Tcpip6Error)


def test_model_params_keep_the_spec_and_reject_a_bad_one() -> None:
    spec = "tcpip6.executors:DedicatedExecutor"
    assert ModelParams(executor=spec).executor == spec
    assert ModelParams.from_dict(ModelParams(executor=spec).as_dict()).executor == spec
    with pytest.raises(ConfigError, match=r"^unknown executor 'fast'"):
        ModelParams(executor="fast")
    # A rescuer, whatever the spec, needs tcpip6's own completion items.
    with pytest.raises(ModelConfigError, match="rescuer"):
        ModelParams(executor="tcpip6.executors:RescuerExecutor", completion_via="ndis")


def test_subclass_checks_do_not_depend_on_earlier_checks() -> None:
    """Compiled ABCs shared one issubclass cache (OidExecutor is a plain class for that): the
    answers, the registry's and Python's own, do not depend on which checks ran before."""
    for _ in range(2):
        for spec in ("tcpip6.executors:DedicatedExecutor", "tcpip6.executors:CriticalExecutor",
                     f"{USER}:Unpatched"):
            ModelParams(executor=spec)  # asks whether it is a rescuer
            assert resolve(spec) is not None
    assert is_executor_subclass(user_executors.Unpatched, CriticalExecutor)
    assert not is_executor_subclass(DedicatedExecutor, RescuerExecutor)
    assert not is_executor_subclass(user_executors.NotAnExecutor)
    assert not issubclass(DedicatedExecutor, RescuerExecutor)
    assert issubclass(DedicatedExecutor, OidExecutor)
    assert isinstance(make_executor("dedicated"), OidExecutor)
    assert not isinstance(make_executor("dedicated"), RescuerExecutor)


def test_every_executor_is_built_from_one_context() -> None:
    ctx = ExecutorContext(dedicated_threads=3, mayday_initial=0.5, mayday_interval=2.0)
    for name in BUILTIN_NAMES:
        assert make_executor(name, ctx).ctx is ctx
    dedicated = make_executor("dedicated", ctx)
    assert type(dedicated) is DedicatedExecutor and dedicated.threads == 3
    rescuer = make_executor("rescuer", ctx)
    assert type(rescuer) is RescuerExecutor
    assert (rescuer.mayday_initial, rescuer.mayday_interval) == (0.5, 2.0)
    # Direct construction keeps its keyword defaults.
    assert DedicatedExecutor().threads == 1 and DedicatedExecutor(threads=2).threads == 2
    assert RescuerExecutor(mayday_initial=0.02).mayday_initial == 0.02
    assert make_executor("critical").ctx == ExecutorContext()
    with pytest.raises(ConfigError, match="dedicated executor needs >= 1 thread"):
        make_executor("dedicated", ExecutorContext(dedicated_threads=0))


def test_the_host_passes_its_parameters_in_the_context(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    monkeypatch.setattr(user_executors.RememberingContext, "contexts", [])
    host = EmulatedHost(ModelParams(executor=f"{USER}:RememberingContext", dedicated_threads=4,
                                    mayday_initial=0.25, mayday_interval=0.5))
    (ctx,) = user_executors.RememberingContext.contexts
    assert ctx == ExecutorContext(dedicated_threads=4, mayday_initial=0.25,
                                  mayday_interval=0.5)
    assert isinstance(host.executor, user_executors.RememberingContext)


def _install(site: Path, dist: str, entry_points: str) -> None:
    """A minimal installed distribution (what pip leaves in site-packages)."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}\n")


def test_an_installed_package_adds_named_executors(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _install(tmp_path, "lab_plugin", f"unpatched = {USER}:Unpatched\n"
                                     "critical = tcpip6.executors:AsyncExecutor\n"
                                     "broken = no_such_module_xyz:Thing\n"
                                     f"notone = {USER}:NotAnExecutor")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed_names() == ["broken", "notone", "unpatched"]
    assert resolve("unpatched") is user_executors.Unpatched
    assert ModelParams(executor="unpatched").executor == "unpatched"
    assert resolve("critical") is CriticalExecutor  # a built-in name is never taken over
    with pytest.raises(ExecutorSpecError, match=r"^executor 'broken' \(entry point "
                                                r"'no_such_module_xyz:Thing' in "
                                                r"tcpip6lab.executors\) cannot be loaded"):
        resolve("broken")
    with pytest.raises(ExecutorSpecError, match="not an OidExecutor subclass"):
        resolve("notone")
    with pytest.raises(ExecutorSpecError, match="rescuer, broken, notone, unpatched, or give"):
        resolve("nope")
