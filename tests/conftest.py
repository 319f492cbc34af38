"""Shared test helpers.

What the suite runs is the installed package. ``TCPIP6LAB_EXPECT`` (set by ``./lab test``)
says which build that must be, and the run stops at its start when it is not:
``compiled`` — every hot module (tcpip6lab.buildinfo.HOT_MODULES) is the compiled one and
every package comes from site-packages, so a source tree shadowing the wheel (the cwd or the
repository first on sys.path, PYTHONPATH) fails loudly instead of testing pure Python;
``pure`` — none of the hot modules is compiled (the editable tree).

Tests that need real network devices (root, /dev/net/tun, Linux tools) skip with a clear reason
when those are missing — except under CI=true, where the CI script installs the tools and runs
as root, so a missing piece is a failure, never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator

import pytest
import trio

pytest_plugins = ["pytester"]

EXPECT_ENV = "TCPIP6LAB_EXPECT"
PACKAGES = ("ndisemu", "tcpip6", "faults", "bench", "tcpip6lab")


def build_problems(expect: str) -> list[str]:
    """What is wrong with the modules this process imports, for TCPIP6LAB_EXPECT=`expect`."""
    import importlib
    import sysconfig
    from pathlib import Path

    from tcpip6lab.buildinfo import HOT_MODULES, is_compiled, origin

    if expect not in ("compiled", "pure"):
        return [f"{EXPECT_ENV} must be compiled or pure, not {expect!r}"]
    for name in (*PACKAGES, *HOT_MODULES):
        importlib.import_module(name)
    problems = []
    if expect == "compiled":
        site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
        for name in (*PACKAGES, *HOT_MODULES):
            where = Path(origin(name)).resolve()
            if not any(where.is_relative_to(s) for s in site):
                problems.append(f"{name} is imported from {where}, not from site-packages")
            elif name in HOT_MODULES and not is_compiled(name):
                problems.append(f"{name} is not compiled ({where})")
    else:
        problems = [f"{name} is compiled ({origin(name)})" for name in HOT_MODULES
                    if is_compiled(name)]
    return problems


def pytest_configure(config: pytest.Config) -> None:
    expect = os.environ.get(EXPECT_ENV)
    if expect is None:
        return
    problems = build_problems(expect)
    if problems:
        raise pytest.UsageError(f"{EXPECT_ENV}={expect}, but " + "; ".join(problems))


def require_real_net(*tools: str, tun: bool = True) -> None:
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if tun and not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun")
    missing += [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    reason = "needs " + ", ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run must provide it)")
    pytest.skip(reason)


async def wait_for(cond: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `cond()` holds, failing after `within` seconds (of the run's clock).
    The states polled here (emulated hosts, Linux devices) signal nothing we could await."""
    with trio.fail_after(within):
        while not cond():  # noqa: ASYNC110 - polling a condition that has no event
            await trio.sleep(0.005)


def leftovers() -> list[str]:
    """t6l-* devices and namespaces and state files present now."""
    from ndisemu.backends.netlink import NETNS_DIR, PREFIX, STATE_DIR

    found = [f"link {n}" for n in os.listdir("/sys/class/net") if n.startswith(PREFIX)]
    if NETNS_DIR.exists():
        found += [f"netns {n}" for n in os.listdir(NETNS_DIR) if n.startswith(PREFIX)]
    if STATE_DIR.exists():
        found += [f"state {p.name}" for p in STATE_DIR.glob("*.json")]
        found += [f"state {p.name}" for p in STATE_DIR.glob("*.tmp")]
    return found


def default_signals() -> None:
    """`preexec_fn` for a child that a test will signal: SIGINT and SIGTERM at their default
    dispositions, whatever this process inherited — a background job of a non-interactive
    shell starts with SIGINT ignored, and an ignored signal stays ignored across exec (Python
    then installs no KeyboardInterrupt handler, and the child never sees the Ctrl-C)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """The child never outlives the block: killed and waited for if it is still running
    (a failed assertion inside the block must not leave it behind)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
