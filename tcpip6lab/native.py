"""`tcpip6-lab native build|status|clean`: compile the hot modules with mypyc.

What is compiled and when it is used is `ndisemu.native`'s business; this module only builds.
The build runs in a temporary directory — the generated C, the object files and mypy's cache
never touch the source tree, and no ``.so`` lands beside a ``.py`` (where it would shadow later
edits) — then appears under its digest's name in one rename. Older builds stay until three
newer ones exist (a running process may still load modules from its own). A build that fails
says why in one line; the compiler's output is kept in ``<digest>.build.log`` beside the
builds. ``--force`` rebuilds the current sources' build in place: not while an emulation that
uses it is running.

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
    build_dir,
    check,
    ext_suffix,
    find,
    native_dir,
    source_digest,
    status,
)

KEEP = 3  # builds kept (the newest), so that running processes keep theirs


class NativeBuildError(NdisEmuError):
    """The compiled modules could not be built (one line: why)."""


class CannotBuildHere(NativeBuildError):
    """No mypyc, setuptools, C compiler or Python headers: pure Python is all there is here
    (`python -m tcpip6lab.native build` exits 3, so that ./lab tells it from a broken build)."""


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
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"needs a C compiler ({cc} not found)"
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").is_file():
        return f"needs Python's C headers ({include}/Python.h not found)"
    return None


def _digest() -> str:
    try:
        return source_digest()
    except OSError as exc:
        raise NativeBuildError(f"cannot read the sources: {exc}") from None


def build(*, force: bool = False, jobs: int | None = None,
          say: Callable[[str], None] = lambda _s: None) -> Path:
    """Build (unless an up-to-date build exists and not `force`); returns the build directory."""
    base = native_dir()
    digest = _digest()
    target = build_dir(digest, base)
    if not force and check(target, digest)[0]:
        say(f"up to date: {target}")
        return target
    why = prerequisites()
    if why is not None:
        raise CannotBuildHere(f"cannot build the compiled modules: {why}")
    base.mkdir(parents=True, exist_ok=True)
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
        log = base / f"{target.name}.build.log"
        log.write_text(proc.stdout, encoding="utf-8")
        if proc.returncode != 0:
            last = [ln for ln in proc.stdout.splitlines() if "error" in ln.lower()]
            raise NativeBuildError(
                f"mypyc failed ({last[0].strip() if last else f'status {proc.returncode}'}); "
                f"full output in {log}")
        if _digest() != digest:
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
                    "ext_suffix": ext_suffix(), "modules": list(MODULES), "digest": digest,
                    "files": files,
                    "sizes": {name: (lib / rel).stat().st_size for name, rel in files.items()},
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "build_seconds": round(time.monotonic() - t0, 1),
                    "mypy": _mypy_version()}
        (lib / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        _install(lib, target, digest)
    _prune(base, keep=target)
    say(f"built {target} in {time.monotonic() - t0:.0f} s")
    return target


def _install(new: Path, target: Path, digest: str) -> None:
    """Move the finished build `new` to `target` with one rename. If another build of the
    same sources got there first, theirs stays (it is the same build)."""
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    shutil.rmtree(staged)
    shutil.move(str(new), staged)
    if target.exists():  # --force, or a leftover that check() refused
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        target.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        staged.rename(target)
    except OSError:  # a concurrent build of the same sources won the rename
        shutil.rmtree(staged, ignore_errors=True)
        if not check(target, digest)[0]:
            raise


def _prune(base: Path, keep: Path) -> None:
    """Remove all but the newest KEEP builds (and staging leftovers of interrupted builds)."""
    builds = sorted((p for p in base.iterdir() if p.is_dir() and _is_build_name(p.name)
                     and p != keep), key=lambda p: p.stat().st_mtime, reverse=True)
    stale = builds[KEEP - 1:]
    now = time.time()
    stale += [p for p in base.iterdir() if p.name.startswith(".") and p.is_dir()
              and now - p.stat().st_mtime > 3600]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
        log = base / f"{p.name}.build.log"
        if log.exists():
            log.unlink()


def _is_build_name(name: str) -> bool:
    return len(name) == 16 and all(c in "0123456789abcdef" for c in name)


def clean() -> bool:
    """Remove every build (not while an emulation that uses one runs)."""
    base = native_dir()
    if not base.exists():
        return False
    shutil.rmtree(base)
    return True


def _mypy_version() -> str:
    try:
        from mypy.version import __version__
    except ImportError:
        return "unknown"
    return str(__version__)


def report(st: NativeStatus) -> str:
    """`native status`: this process's choice, and the build on disk."""
    lines = [f"in use: {st.describe()}", f"mode: {st.mode} (TCPIP6LAB_NATIVE)"]
    if st.error:
        lines.append(f"importing a compiled module fails: {st.error}")
    try:
        digest = source_digest()
        files, why = find(digest=digest)
        lines.append(f"build: {build_dir(digest)}: " + ("fresh" if files else why))
    except OSError as exc:
        files = {}
        lines.append(f"build: cannot read the sources ({exc})")
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
    if not status().active and status().mode != "off":
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
    except CannotBuildHere as exc:
        sys.stderr.write(f"tcpip6-lab: {exc}\n")
        return 3
    except NdisEmuError as exc:
        sys.stderr.write(f"tcpip6-lab: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("tcpip6-lab: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
