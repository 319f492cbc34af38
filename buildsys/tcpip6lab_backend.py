"""tcpip6-lab's PEP 517 build backend: setuptools' own, with the hot modules compiled only
where a compiled wheel is built.

- ``build_wheel`` compiles (setup.py: mypyc, or a pure wheel with a warning where it cannot);
  its build requirements add mypy (which ships mypyc) and what mypyc needs to type-check the
  hot modules as ``mypy`` does in development (trio's and structlog's types).
- Every other hook — the editable install above all, also the sdist and pip's metadata step —
  runs setup.py with ``TCPIP6LAB_BUILD_PURE=hook``: no mypyc, no build_ext, no ``.so`` in the
  source tree (setuptools' editable mode would otherwise build the extensions in place).
- Each hook runs with a fresh temporary build directory and mypy cache
  (``TCPIP6LAB_BUILD_BASE``, ``MYPY_CACHE_DIR``): nothing of an earlier build reaches a wheel,
  and the only file a build leaves in the tree is setuptools' ``*.egg-info``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from setuptools import build_meta as _st

#: Installed into the isolated build environment of a wheel build (not an editable one).
COMPILE_REQUIRES = [
    "mypy>=1.10,<3",
    "mypy_extensions>=1.0",
    # for mypyc's type check of the hot modules (the same ranges as the runtime dependencies)
    "trio>=0.25,<0.36",
    "structlog>=24.1,<27",
]

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]


@contextlib.contextmanager
def _building(*, pure: bool) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in
             ("TCPIP6LAB_BUILD_PURE", "TCPIP6LAB_BUILD_BASE", "MYPY_CACHE_DIR")}
    with tempfile.TemporaryDirectory(prefix="tcpip6lab-build-") as tmp:
        os.environ["TCPIP6LAB_BUILD_BASE"] = os.path.join(tmp, "build")
        os.environ["MYPY_CACHE_DIR"] = os.path.join(tmp, "mypy-cache")
        if pure:  # "hook": pure by design, no warning (a user's "1" is kept: it warns)
            os.environ.setdefault("TCPIP6LAB_BUILD_PURE", "hook")
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _compiling() -> bool:
    return not os.environ.get("TCPIP6LAB_BUILD_PURE")


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    compiling = _compiling()
    with _building(pure=True):
        reqs = list(_st.get_requires_for_build_wheel(config_settings))
    return reqs + (COMPILE_REQUIRES if compiling else [])


def prepare_metadata_for_build_wheel(metadata_directory: str,
                                     config_settings: dict[str, Any] | None = None) -> str:
    with _building(pure=True):
        return str(_st.prepare_metadata_for_build_wheel(metadata_directory, config_settings))


def build_wheel(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    with _building(pure=not _compiling()):
        return str(_st.build_wheel(wheel_directory, config_settings, metadata_directory))


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    with _building(pure=True):
        return list(_st.get_requires_for_build_editable(config_settings))


def prepare_metadata_for_build_editable(metadata_directory: str,
                                        config_settings: dict[str, Any] | None = None) -> str:
    with _building(pure=True):
        return str(_st.prepare_metadata_for_build_editable(metadata_directory, config_settings))


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    with _building(pure=True):
        return str(_st.build_editable(wheel_directory, config_settings, metadata_directory))


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    with _building(pure=True):
        return list(_st.get_requires_for_build_sdist(config_settings))


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    with _building(pure=True):
        return str(_st.build_sdist(sdist_directory, config_settings))
