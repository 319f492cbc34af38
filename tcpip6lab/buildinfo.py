"""Which of the emulation's hot modules run compiled in this process — it only reports.

Building a wheel compiles `HOT_MODULES` with mypyc (``setup.py``, through the in-tree build
backend ``buildsys/tcpip6lab_backend.py``), as mypy and black ship theirs: each module's
extension sits beside its ``.py`` in site-packages, and Python's import system prefers the
extension. An editable install, or a wheel built where there is no C compiler, runs the same
modules as pure Python. Nothing is compiled or chosen at run time; this module says which of
the two this process has (`tcpip6-lab native`, bench output, the test suite's start-up check).

`HOT_MODULES` is the one list of what is compiled: ``setup.py`` reads it from this file's
source (without importing the package), so keep it a literal tuple of module names.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

#: What is compiled, in one mypyc group: the per-OID path of a bind storm (bench/README.md has
#: the profile that chose them), the event path of a traced one (`--trace`: the tracer and
#: the Perfetto sink, `python -m bench.trace_cost`), and the live path of a frame (the fd
#: reader, virtio-net headers, the IPv6 stack's receive and transmit: ICMPv6, NUD, routing,
#: TCP and UDP, and the parts whose objects a frame reads — the stack's context, constants,
#: timers, addrconf and MLD; `python -m bench.frame_path`, bench.traffic). The rest —
#: fragments, faults, the CLI — stays Python. `FrameHandler` stays subclassable by
#: interpreted classes (mypyc_attr), as the OID executors do.
HOT_MODULES: tuple[str, ...] = (
    "ndisemu.rng",
    "ndisemu.executive.core",
    "ndisemu.executive.scheduler",
    "ndisemu.drivers.base",
    "ndisemu.drivers.tasks",
    "ndisemu.drivers.coroutines",
    "ndisemu.kernel",
    "ndisemu.ndis",
    "ndisemu.miniport",
    "tcpip6.executors",
    "tcpip6.binder",
    "tcpip6.ipv4",
    "ndisemu.trace",
    "tcpip6lab.perfetto_trace",
    "tcpip6.wire.drops",
    "tcpip6.wire.ethernet",
    "tcpip6.wire.ipv6",
    "tcpip6.wire.icmpv6",
    "tcpip6.wire.tcp",
    "tcpip6.wire.udp",
    "tcpip6.stack.base",
    "tcpip6.stack.constants",
    "tcpip6.stack.context",
    "tcpip6.stack.addrconf",
    "tcpip6.stack.mld",
    "tcpip6.stack.timers",
    "tcpip6.stack.nud",
    "tcpip6.stack.router",
    "tcpip6.stack.host",
    "tcpip6.stack.tcpconn",
    "tcpip6.stack.tcp",
    "tcpip6.stack.udp",
    "ndisemu.backends.vnet",
    "ndisemu.backends.fdport",
)
#: mypyc's shared library for the group: ``tcpip6lab_native__mypyc`` at the top level.
GROUP = "tcpip6lab_native"


def origin(name: str) -> str:
    """The file module `name` is (or would be) loaded from: the loaded module's if it is
    imported, else what the import system would pick now ("" if none)."""
    module = sys.modules.get(name)
    if module is not None:
        return str(getattr(module, "__file__", None) or "")
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return ""
    return str(spec.origin or "") if spec is not None else ""


def is_compiled(name: str) -> bool:
    """True when module `name` is (or would be) loaded from an extension module."""
    return origin(name).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_modules() -> tuple[str, ...]:
    """The hot modules this process runs compiled (in `HOT_MODULES` order)."""
    return tuple(m for m in HOT_MODULES if is_compiled(m))


def describe() -> str:
    """One line: compiled (where from) or pure Python."""
    done = compiled_modules()
    if not done:
        return ("pure Python (no compiled hot modules: an editable install, or a wheel built "
                "without a C compiler)")
    where = Path(origin(done[0])).parent
    for _ in done[0].split(".")[1:]:
        where = where.parent
    if len(done) == len(HOT_MODULES):
        return f"compiled ({len(done)} hot modules, mypyc) from {where}"
    pure = ", ".join(m for m in HOT_MODULES if m not in done)
    return (f"partly compiled ({len(done)} of {len(HOT_MODULES)} hot modules, mypyc, from "
            f"{where}; pure Python: {pure})")


def version() -> str:
    """The installed distribution's version ("unknown" when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("tcpip6-lab")
    except PackageNotFoundError:
        return "unknown"


def version_line() -> str:
    """`tcpip6-lab --version`: the version, Python's, and whether the hot path is compiled."""
    kind = "compiled" if compiled_modules() else "pure Python"
    return (f"tcpip6-lab {version()} (Python {sys.version.split()[0]}, "
            f"{sys.implementation.cache_tag}; hot modules: {kind})")


def report() -> str:
    """`tcpip6-lab native`: the summary line, then each hot module and its file."""
    lines = [describe()]
    width = max(len(m) for m in HOT_MODULES)
    lines += [f"  {m:<{width}}  {'compiled' if is_compiled(m) else 'pure    '}  "
              f"{origin(m) or '?'}" for m in HOT_MODULES]
    return "\n".join(lines)
