"""Executor specs: the one registry of tcpip6's OID executors, and the one factory.

A spec is a string naming an `OidExecutor` subclass:

- a built-in name: ``critical``, ``dedicated``, ``async``, ``rescuer`` (`BUILTIN_EXECUTORS`);
- ``MODULE:ATTR`` — the module is imported and ATTR (dotted for a nested class) taken from it,
  e.g. ``tcpip6.executors:DedicatedExecutor`` or ``mypkg.executors:Bounded``;
- a name an installed package registers in the ``tcpip6lab.executors`` entry-point group
  (`ENTRY_POINT_GROUP`), e.g. in its pyproject.toml::

      [project.entry-points."tcpip6lab.executors"]
      bounded = "mypkg.executors:Bounded"

  A built-in name always means the built-in executor.

Specs travel as strings (process-pool and Dask workers, replay logs, explore) and are resolved
where the host is built, so a user's module must be importable there too. `resolve` raises
`ExecutorSpecError` (a `ConfigError`) with one line naming the spec when it names nothing usable.
Not compiled: nothing here is on the per-OID path.
"""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata

from .errors import ExecutorSpecError
from .executors import (
    AsyncExecutor,
    CriticalExecutor,
    DedicatedExecutor,
    ExecutorContext,
    OidExecutor,
    RescuerExecutor,
)

#: The built-in executors, in the order the tools list them.
BUILTIN_EXECUTORS: dict[str, type[OidExecutor]] = {
    "critical": CriticalExecutor,
    "dedicated": DedicatedExecutor,
    "async": AsyncExecutor,
    "rescuer": RescuerExecutor,
}
#: Their names (argparse help, `bench storm --executor all`).
BUILTIN_NAMES: tuple[str, ...] = tuple(BUILTIN_EXECUTORS)
#: The entry-point group through which an installed package adds named executors.
ENTRY_POINT_GROUP = "tcpip6lab.executors"


def installed_names() -> list[str]:
    """Names registered in `ENTRY_POINT_GROUP` by installed packages (built-ins excluded)."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
                  - set(BUILTIN_EXECUTORS))


def known_names() -> list[str]:
    """Every name a spec may be: the built-ins, then the installed ones."""
    return [*BUILTIN_NAMES, *installed_names()]


def resolve(spec: str) -> type[OidExecutor]:
    """The executor class a spec names (see the module docstring); `ExecutorSpecError` if
    none."""
    if not isinstance(spec, str) or not spec.strip():
        raise ExecutorSpecError(f"executor spec must be a non-empty string (got {spec!r})")
    cls = BUILTIN_EXECUTORS.get(spec)
    if cls is not None:
        return cls
    if ":" in spec:
        return _checked(spec, _import_attr(spec))
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP, name=spec):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ExecutorSpecError(
                f"executor {spec!r} (entry point {ep.value!r} in {ENTRY_POINT_GROUP}) cannot "
                f"be loaded: {type(exc).__name__}: {exc}") from None
        return _checked(spec, obj)
    raise ExecutorSpecError(f"unknown executor {spec!r} (choose from "
                            f"{', '.join(known_names())}, or give MODULE:ATTR)")


def is_executor_subclass(cls: type, base: type[OidExecutor] = OidExecutor) -> bool:
    """``issubclass(cls, base)`` for any object: False for what is not a class. (By the MRO:
    when the executors were ABCs, mypyc's compiled classes shared one `issubclass` cache and
    answered wrongly; OidExecutor is a plain class now, and this stays exact either way.)"""
    return base in getattr(cls, "__mro__", ())


def make_executor(spec: str, ctx: ExecutorContext | None = None) -> OidExecutor:
    """The one factory: ``resolve(spec)(ctx)``."""
    return resolve(spec)(ctx if ctx is not None else ExecutorContext())


def _import_attr(spec: str) -> object:
    module_name, _, attr = spec.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not module_name or not attr:
        raise ExecutorSpecError(f"executor {spec!r}: a spec with ':' must be MODULE:ATTR")
    try:
        obj: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name
                                     or module_name.startswith(exc.name + ".")):
            raise ExecutorSpecError(
                f"executor {spec!r}: no module named {exc.name!r}") from None
        raise ExecutorSpecError(f"executor {spec!r}: importing {module_name!r} failed: "
                                f"{exc}") from None
    except Exception as exc:
        raise ExecutorSpecError(f"executor {spec!r}: importing {module_name!r} failed: "
                                f"{type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ExecutorSpecError(
                f"executor {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _checked(spec: str, obj: object) -> type[OidExecutor]:
    if not (isinstance(obj, type) and is_executor_subclass(obj)):
        what = obj.__name__ if isinstance(obj, type) else type(obj).__name__ + " object"
        raise ExecutorSpecError(
            f"executor {spec!r}: {what} is not an OidExecutor subclass "
            "(tcpip6.executors.OidExecutor)")
    # OidExecutor is a plain class (not an ABC): look for the two methods every executor
    # implements.
    missing = [m for m in ("submit", "completed")
               if not any(m in vars(k) for k in obj.__mro__ if k is not OidExecutor)]
    if missing or inspect.isabstract(obj):
        raise ExecutorSpecError(f"executor {spec!r}: {obj.__name__} is abstract (it must "
                                "implement submit and completed)")
    return obj
