"""Shared test helpers.

Tests that need real network devices (root, /dev/net/tun, Linux tools) skip with a clear reason
when those are missing — except under CI=true, where the CI script installs the tools and runs
as root, so a missing piece is a failure, never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest
import trio

pytest_plugins = ["pytester"]


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
