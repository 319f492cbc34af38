"""`tcpip6-lab native build|status|clean`: compile the hot modules with mypyc.

What is compiled and when it is used is `ndisemu.native`'s business; this module only builds.
The build runs in a temporary directory — the generated C, the object files and mypy's cache
never touch the source tree, and no ``.so`` lands beside a ``.py`` (where it would shadow later
edits) — then replaces the old build in one rename. A build that fails leaves the old one in
place (still used only while it matches the sources) and says why in one line; the compiler's
output is kept in ``build.log`` next to the build.

Needs mypy (which ships mypyc; in the ``dev`` extra), setuptools, a C compiler and Python's
headers: what ``./lab`` installs on a Debian-like machine. It takes about a minute on two cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ndisemu.errors import NdisEmuError
from ndisemu.native import (
    FORMAT,
    GROUP,
    MANIFEST,
    MODULES,
    ROOT,
    NativeStatus,
    check,
    native_dir,
    source_digest,
    status,
)


class NativeBuildError(NdisEmuError):
    """The compiled modules could not be built (one line: why)."""


_SETUP = """\
import sys
from setuptools import setup
from mypyc.build import mypycify

c_dir, lib_dir, temp_dir, jobs, *paths = sys.argv[1:]
sys.argv[1:] = []
setup(
    name="tcpip6lab-native",
    ext_modules=mypycify(paths, opt_level="3", group_name={group!r}, target_dir=c_dir,
                         multi_file=True),
    script_args=["-q", "build_ext", "--build-lib", lib_dir, "--build-temp", temp_dir,
                 "--parallel", jobs],
)
"""


def prerequisites() -> str | None:
    """Why a build cannot run here, or None."""
    for module in ("mypyc", "setuptools"):
        if importlib.util.find_spec(module) is None:
            return f"needs mypy and setuptools ({module} is missing: pip install mypy setuptools)"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"needs a C compiler ({cc} not found)"
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").is_file():
        return f"needs Python's C headers ({include}/Python.h not found)"
    return None


def fresh(directory: Path | None = None) -> bool:
    files, _why = check(directory or native_dir())
    return bool(files)


def build(*, force: bool = False, jobs: int | None = None,
          say: Callable[[str], None] = lambda _s: None) -> Path:
    """Build (unless an up-to-date build exists and not `force`); returns the build directory."""
    target = native_dir()
    if not force and fresh(target):
        say(f"up to date: {target}")
        return target
    why = prerequisites()
    if why is not None:
        raise NativeBuildError(f"cannot build the compiled modules: {why}")
    digest = source_digest()
    target.parent.mkdir(parents=True, exist_ok=True)
    paths = [str(ROOT / (m.replace(".", "/") + ".py")) for m in MODULES]
    jobs = jobs or os.cpu_count() or 1
    t0 = time.monotonic()
    say(f"compiling {len(MODULES)} modules with mypyc (about a minute)...")
    with tempfile.TemporaryDirectory(prefix="t6l-native-") as tmp:
        work = Path(tmp)
        (work / "setup.py").write_text(_SETUP.format(group=GROUP), encoding="utf-8")
        lib = work / "lib"
        env = dict(os.environ, MYPY_CACHE_DIR=str(work / "mypy-cache"))
        env.pop("PYTHONPATH", None)  # the sources come from ROOT, by path
        proc = subprocess.run(
            [sys.executable, "setup.py", str(work / "c"), str(lib), str(work / "temp"),
             str(jobs), *paths],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            check=False)
        log = target.parent / f"{target.name}.build.log"
        log.write_text(proc.stdout, encoding="utf-8")
        if proc.returncode != 0:
            last = [ln for ln in proc.stdout.splitlines() if "error" in ln.lower()]
            raise NativeBuildError(
                f"mypyc failed ({last[0].strip() if last else f'status {proc.returncode}'}); "
                f"full output in {log}")
        if source_digest() != digest:
            raise NativeBuildError("the sources changed during the build: run it again")
        files = {}
        for so in sorted(lib.rglob("*.so")) + sorted(lib.rglob("*.pyd")):
            rel = so.relative_to(lib)
            name = ".".join((*rel.parts[:-1], rel.name.split(".", 1)[0]))
            files[name] = rel.as_posix()
        missing = [m for m in (*MODULES, f"{GROUP}__mypyc") if m not in files]
        if missing:
            raise NativeBuildError(f"mypyc built no extension for {', '.join(missing)}; "
                                   f"see {log}")
        manifest = {"format": FORMAT, "cache_tag": sys.implementation.cache_tag,
                    "modules": list(MODULES), "digest": digest, "files": files,
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "build_seconds": round(time.monotonic() - t0, 1),
                    "mypy": _mypy_version()}
        (lib / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        _replace(lib, target)
    say(f"built {target} in {time.monotonic() - t0:.0f} s")
    return target


def _replace(new: Path, target: Path) -> None:
    """Move `new` to `target`, replacing an older build with one rename."""
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    shutil.rmtree(staged)
    shutil.move(str(new), staged)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    staged.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def clean() -> bool:
    target = native_dir()
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True


def _mypy_version() -> str:
    try:
        from mypy.version import __version__
    except ImportError:
        return "unknown"
    return str(__version__)


def report(st: NativeStatus) -> str:
    """`native status`: this process's choice, and the build on disk."""
    files, why = check(Path(st.directory))
    lines = [f"in use: {st.describe()}", f"mode: {st.mode} (TCPIP6LAB_NATIVE)",
             f"build: {st.directory}: " + ("fresh" if files else why)]
    if not files:
        blocker = prerequisites()
        lines.append("can build here: " + ("yes" if blocker is None else f"no, {blocker}"))
    return "\n".join(lines)


def cmd_native(action: str, *, force: bool = False, out: Callable[[str], None] = print) -> int:
    if action == "status":
        out(report(status()))
        return 0
    if action == "clean":
        out(f"removed {native_dir()}" if clean() else f"nothing to remove at {native_dir()}")
        return 0
    build(force=force, say=out)
    if not status().active:
        out("(this process was started without them; new processes use them)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m tcpip6lab.native build|status|clean [--force]` (what ./lab runs)."""
    args = list(sys.argv[1:] if argv is None else argv)
    action = args[0] if args else "status"
    if action not in ("build", "status", "clean") or set(args[1:]) - {"--force"}:
        sys.stderr.write("usage: python -m tcpip6lab.native build|status|clean [--force]\n")
        return 2
    try:
        return cmd_native(action, force="--force" in args)
    except NdisEmuError as exc:
        sys.stderr.write(f"tcpip6-lab: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
