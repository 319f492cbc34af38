"""Compiled hot modules: the emulation's inner loop built with mypyc, used only when fresh.

The executive, NDIS, the miniports and tcpip6's binder are plain, type-checked Python.
`tcpip6-lab native build` (run by ``./lab`` after installing) compiles the modules in `MODULES`
with mypyc into one extension group under `native_dir()`, with a manifest naming the digest of
the sources it was built from. `install` — called when `ndisemu` is first imported — puts a
finder in front of the import system that loads those extensions instead of the ``.py`` files,
but only if the manifest matches the sources exactly: every ``.py`` file of ``ndisemu`` and
``tcpip6`` (mypyc inlines ``Final`` constants and relies on the layouts of the classes it
compiles, so an edit anywhere in either package makes the build stale), this interpreter's
ABI, and the module list. Anything else — no build, an edited file, another Python — runs the
pure-Python modules, and `status()` says why. Compiled or not, a run is the same run: the
tests compare event-trace hashes of both (tests/ndisemu/test_native.py).

Each build has its own directory, named by that digest (``<native_dir>/<digest[:16]>``), and is
never rewritten: a process keeps loading its compiled modules lazily from the build it chose at
start-up, so a rebuild in another terminal can never hand it a module of another build (which
would not match the group library it already loaded). Builds no longer current are removed by
later builds, the newest few kept.

``TCPIP6LAB_NATIVE`` chooses: ``auto`` (default: compiled when fresh and loadable), ``0``/``off``
(never), ``1``/``require`` (compiled, or `NativeUnavailable` when one of `MODULES` is imported —
what ``./lab test`` uses once the build succeeded, so the compiled modules are what the suite
tests; ``import ndisemu`` itself never fails, so ``tcpip6-lab native build`` always runs).
``TCPIP6LAB_NATIVE_DIR`` moves the builds (default: ``.native/<cache tag>`` beside the packages).

Compiled classes are closed: Python code cannot subclass them or add attributes to their
instances (`Kernel`, `Ndis`, `EmulatedMiniport`, `Tcpip6Binder`, …) — except the OID executors,
which stay subclassable — and they check argument types at run time (an ``int`` parameter
refuses ``3.0``); the public configuration (`ExecutiveParams`, `ModelParams`, `StormConfig`)
normalises and checks its values first, so both builds see the same ones.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import stat
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .errors import NativeUnavailable

#: What is compiled, in one mypyc group: the per-OID path of a bind storm (bench/README.md has
#: the profile that chose them). The rest — the IPv6 stack, faults, the CLI — stays Python.
MODULES: tuple[str, ...] = (
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
)
#: The packages whose sources the build's digest covers.
PACKAGES: tuple[str, ...] = ("ndisemu", "tcpip6")
GROUP = "tcpip6lab_native"  # mypyc's shared library: tcpip6lab_native__mypyc
MANIFEST = "manifest.json"
FORMAT = 1
ENV = "TCPIP6LAB_NATIVE"
DIR_ENV = "TCPIP6LAB_NATIVE_DIR"
MODES = {"auto": "auto", "": "auto", "1": "require", "require": "require", "on": "require",
         "0": "off", "off": "off"}

#: Where the packages live (the repository, for an editable install).
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class NativeStatus:
    """Whether the compiled modules are in use, and if not, why not."""

    mode: str  # auto | off | require | invalid
    active: bool
    reason: str  # why not active ("" when active)
    directory: str
    modules: tuple[str, ...] = ()
    error: str = ""  # what importing a compiled module raises (require without a build)

    def describe(self) -> str:
        if self.active:
            return f"compiled ({len(self.modules)} modules, mypyc) from {self.directory}"
        return f"pure Python ({self.reason})"


def mode_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    raw = env.get(ENV, "auto").strip().lower()
    try:
        return MODES[raw]
    except KeyError:
        raise NativeUnavailable(f"{ENV} must be auto, 1/require or 0/off, not {raw!r}") from None


def native_dir() -> Path:
    """Where the builds for this interpreter live, one directory each."""
    env = os.environ.get(DIR_ENV)
    if env:
        return Path(env)
    return ROOT / ".native" / sys.implementation.cache_tag


def build_dir(digest: str, base: Path | None = None) -> Path:
    """The build of the sources with this digest."""
    return (base or native_dir()) / digest[:16]


def source_digest(root: Path = ROOT, packages: Sequence[str] = PACKAGES) -> str:
    """SHA-256 over every .py file of `packages` (relative path and contents, sorted): regular
    files only, and not an editor's lock or backup files (``.#x.py``, ``#x.py#``). Raises
    OSError when a source cannot be read."""
    h = hashlib.sha256()
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            if path.name.startswith((".", "#")) or not stat.S_ISREG(path.lstat().st_mode):
                continue
            rel = path.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0")
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def ext_suffix() -> str:
    """This interpreter's extension suffix: its ABI, OS and machine (cpython-311-x86_64-...)."""
    return str(sysconfig.get_config_var("EXT_SUFFIX") or "")


def read_manifest(directory: Path) -> dict[str, object] | None:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def find(base: Path | None = None, digest: str | None = None) -> tuple[dict[str, Path], str]:
    """The extension files of the build for the current sources, or ({}, why there is none)."""
    base = base or native_dir()
    digest = digest or source_digest()
    directory = build_dir(digest, base)
    if not (directory / MANIFEST).is_file():
        others = base.is_dir() and any((p / MANIFEST).is_file() for p in base.iterdir())
        if others:
            return {}, "stale: sources changed since the build (`tcpip6-lab native build`)"
        return {}, f"not built: run `tcpip6-lab native build` (looked in {base})"
    return check(directory, digest)


def check(directory: Path, digest: str) -> tuple[dict[str, Path], str]:
    """The extension files of the build in `directory` if it is one of the sources with
    `digest` for this interpreter, or ({}, why it cannot be used)."""
    manifest = read_manifest(directory)
    if manifest is None:
        return {}, f"not built: run `tcpip6-lab native build` (looked in {directory})"
    if manifest.get("format") != FORMAT:
        return {}, "built by another version of this tool: rebuild"
    if manifest.get("cache_tag") != sys.implementation.cache_tag \
            or manifest.get("ext_suffix") != ext_suffix():
        return {}, (f"built for {manifest.get('ext_suffix') or manifest.get('cache_tag')}, "
                    f"this is {ext_suffix() or sys.implementation.cache_tag}")
    files = manifest.get("files")
    if manifest.get("modules") != list(MODULES) or not isinstance(files, dict):
        return {}, "built for another module list: rebuild"
    if digest != manifest.get("digest"):
        return {}, "stale: sources changed since the build (`tcpip6-lab native build`)"
    sizes = manifest.get("sizes")
    if not isinstance(sizes, dict):
        return {}, "built by another version of this tool: rebuild"
    out: dict[str, Path] = {}
    for name, rel in files.items():
        path = directory / str(rel)
        if not path.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            return {}, f"not an extension module here: {rel}"
        try:
            size = path.stat().st_size
        except OSError:
            return {}, f"incomplete build: {rel} is missing"
        if size != sizes.get(name):
            return {}, f"damaged build: {rel} is {size} bytes, built as {sizes.get(name)}"
        out[str(name)] = path
    return out, ""


class NativeFinder(importlib.abc.MetaPathFinder):
    """Finds exactly the compiled modules (and their shared group library) — or, with
    `error`, refuses to import them (TCPIP6LAB_NATIVE=require without a usable build)."""

    def __init__(self, files: dict[str, Path], error: str = "") -> None:
        self.files = files
        self.error = error

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if self.error and fullname in MODULES:
            raise NativeUnavailable(self.error)
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


_status: NativeStatus | None = None


def install() -> NativeStatus:
    """Decide once per process (at `ndisemu`'s import) and install the finder if compiled.
    Never raises: what cannot be had is refused when a compiled module is imported."""
    global _status
    if _status is not None:
        return _status
    base = native_dir()
    try:
        mode = mode_from_env()
    except NativeUnavailable as exc:
        return _refuse("invalid", str(exc), str(base), str(exc))
    if mode == "off":
        _status = NativeStatus(mode, False, f"{ENV}=0", str(base))
        return _status
    loaded = [m for m in MODULES if m in sys.modules]
    files: dict[str, Path] = {}
    digest = ""
    if loaded:
        reason = f"imported before ndisemu: {', '.join(loaded)}"
    else:
        try:
            digest = source_digest()
            files, reason = find(base, digest)
        except OSError as exc:
            reason = f"cannot read the sources ({exc})"
    if files:
        finder = NativeFinder(files)
        sys.meta_path.insert(0, finder)
        group = f"{GROUP}__mypyc"
        try:  # the shared library holds all the compiled code: can this process load it?
            importlib.import_module(group)
        except (ImportError, OSError) as exc:
            sys.meta_path.remove(finder)
            sys.modules.pop(group, None)
            files, reason = {}, f"the build cannot be loaded here ({exc})"
    if not files:
        if mode == "require":
            return _refuse(mode, reason, str(base),
                           f"{ENV}=require, but the compiled modules are {reason}")
        _status = NativeStatus(mode, False, reason, str(base))
        return _status
    _status = NativeStatus(mode, True, "", str(build_dir(digest, base)), MODULES)
    return _status


def _refuse(mode: str, reason: str, directory: str, error: str) -> NativeStatus:
    global _status
    sys.meta_path.insert(0, NativeFinder({}, error=error))
    _status = NativeStatus(mode, False, reason, directory, error=error)
    return _status


def status() -> NativeStatus:
    """This process's choice (made at import)."""
    return install()


def compiled(module: ModuleType) -> bool:
    """True when `module` was loaded from an extension (a compiled build)."""
    return str(getattr(module, "__file__", "")).endswith((".so", ".pyd"))
