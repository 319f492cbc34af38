"""Builds the wheel with the hot modules compiled by mypyc, as mypy and black ship theirs.

Everything else about the package is in pyproject.toml. What is compiled is
`tcpip6lab.buildinfo.HOT_MODULES`, read from that file's source (the package is not imported
here), in one mypyc group (`GROUP`: one shared library plus one small extension per module,
each beside its ``.py``). mypyc type-checks them first with the project's mypy configuration
(pyproject.toml's ``[tool.mypy]``, strict): a type error fails the build.

A pure-Python wheel instead, with one ``WARNING: tcpip6-lab: ...`` line (pip shows it with
``-v``; ``./lab`` says it on its own), when there is no mypyc, no C compiler or no Python
headers, or when compiling fails — never a failed install. ``TCPIP6LAB_BUILD_PURE=1`` asks
for a pure build; the in-tree backend (buildsys/tcpip6lab_backend.py) sets it to ``hook``
(pure, without the warning) for every hook but ``build_wheel``, so an editable install, an
sdist and pip's metadata step never compile.
``TCPIP6LAB_BUILD_BASE`` (set by the backend: a fresh temporary directory per build) is where
the build's intermediate files go, so nothing stale from an earlier build can reach a wheel.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
BUILDINFO = HERE / "tcpip6lab" / "buildinfo.py"


def _literal(name: str) -> Any:
    """The value of the module-level assignment `name` in tcpip6lab/buildinfo.py."""
    tree = ast.parse(BUILDINFO.read_text(encoding="utf-8"), str(BUILDINFO))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == name:
            return ast.literal_eval(value)
    raise SystemExit(f"tcpip6-lab: {BUILDINFO} has no literal {name}")


HOT_MODULES: tuple[str, ...] = tuple(_literal("HOT_MODULES"))
GROUP: str = _literal("GROUP")

#: Added to mypyc's flags for the group's library where the compiler is GCC or clang on Linux
#: (ELF). Every symbol but the modules' init functions (PyMODINIT_FUNC keeps those visible)
#: is hidden, and none can be interposed: a call from one compiled module to another is a
#: direct call, not a jump through the PLT and a load from the GOT, and GCC may inline across
#: the functions of a file. ``-fno-plt`` calls into libpython through the GOT, without a PLT
#: stub. Each of those stubs and GOT slots is a cache line more that a frame touches after an
#: idle gap: `python -m bench.frame_lines` counted 2,755 distinct lines per Echo Request
#: without these flags and 2,487 with them (bench/README.md, "sixth round").
LINKAGE_FLAGS: tuple[str, ...] = ("-fvisibility=hidden", "-fno-semantic-interposition",
                                  "-fno-plt")


def warn(message: str) -> None:
    sys.stderr.write(f"WARNING: tcpip6-lab: building a pure-Python wheel: {message}\n")
    sys.stderr.flush()


def why_pure() -> str | None:
    """Why the hot modules cannot (or are not to) be compiled here, or None."""
    if os.environ.get("TCPIP6LAB_BUILD_PURE") == "1":
        return "TCPIP6LAB_BUILD_PURE=1"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy)"
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc} not found)"
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").is_file():
        return f"no Python headers ({include}/Python.h not found)"
    return None


class OptionalBuildExt(build_ext):
    """Compiling that fails (a broken compiler, say) leaves a pure-Python wheel: every
    extension of the group is removed, so none can be half there."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, a missing tool...
            warn(f"compiling failed ({type(exc).__name__}: {exc})")
            for ext in self.extensions:
                for path in (self.get_ext_fullpath(ext.name),):
                    if os.path.exists(path):
                        os.unlink(path)
            self.extensions = []


def ext_modules() -> list[Any]:
    if os.environ.get("TCPIP6LAB_BUILD_PURE") == "hook":  # the backend: not a wheel build
        return []
    why = why_pure()
    if why is not None:
        warn(why)
        return []
    from mypyc.build import mypycify

    base = os.environ.get("TCPIP6LAB_BUILD_BASE") or "build"
    paths = [m.replace(".", "/") + ".py" for m in HOT_MODULES]
    exts = list(mypycify(paths, opt_level="3", group_name=GROUP,
                         target_dir=os.path.join(base, "mypyc"), multi_file=True))
    if sys.platform == "linux":  # ELF, GCC or clang (a compiler that refuses: a pure wheel)
        for ext in exts:
            ext.extra_compile_args = [*(ext.extra_compile_args or []), *LINKAGE_FLAGS]
    return exts


if __name__ == "__main__":  # (setuptools runs it so; tests read HOT_MODULES without building)
    build_base = os.environ.get("TCPIP6LAB_BUILD_BASE")
    setup(
        ext_modules=ext_modules(),
        cmdclass={"build_ext": OptionalBuildExt},
        options={"build": {"build_base": build_base}} if build_base else {},
    )
