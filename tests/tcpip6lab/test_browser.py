"""A real browser (headless Chromium, Debian's `chromium`) on the status page, from the
namespace, at the adapter's routable ULA address (browsers take no zone ids in URLs): while the
host is healthy it renders the bindings, the critical pool and the applications; after the
unpatched host's knot a load of the page times out."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.conftest import require_real_net
from tests.tcpip6lab.test_serve_host import Serve, namespace, ours, sites

LOAD_DEADLINE = 45.0  # seconds for one headless load (a cold Chromium on a busy machine)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    require_real_net("chromium")  # fails under CI=true, skips otherwise
    raise AssertionError("unreachable")


def load(ns: str, url: str, profile: Path, deadline: float) -> tuple[str | None, float]:
    """The DOM Chromium rendered (None: no load within `deadline`), and the time it took."""
    argv = ["ip", "netns", "exec", ns, chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--disable-extensions", "--disable-background-networking",
            "--disable-crash-reporter", "--disable-breakpad",
            f"--user-data-dir={profile}", "--dump-dom", url]
    env = dict(os.environ, HOME=str(profile))
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        return None, time.monotonic() - t0
    return out, time.monotonic() - t0


def test_the_status_page_in_headless_chromium(tmp_path: Path) -> None:
    require_real_net("ip")
    chromium()
    s = Serve("--backend", "tap", "--adapters", "1", "--burst", "24", "--burst-at", "40",
              "--executor", "critical")
    try:
        ns = namespace(s)
        s.wait_for(r"tcpip6 bound 1/1")
        s.wait_for(r"apps tcp-rr ok \([1-9]")
        ula = sites(s)["nic000"]["ula"]
        url = f"http://[{ula}]/"
        dom, _took = load(ns, url, tmp_path / "p1", LOAD_DEADLINE)
        assert dom is not None, f"no page within {LOAD_DEADLINE}s"
        assert "tcpip6-lab emulated host host (critical executor)" in dom
        assert 'id="pool"' in dom and dom.count('class="idle"') + dom.count(
            'class="blocked"') + dom.count('class="running"') == 10  # the 10 static workers
        assert "<td>nic000</td><td>up</td>" in dom
        assert ula in dom  # the routable address, listed
        assert 'id="applications"' in dom and "<td>tcp-rr</td>" in dom
        assert "no deadlock detected" in dom
        assert "Wait-for chain" not in dom
        # the knot: wait for it, then a load times out
        s.wait_for(r"DEADLOCK on critical", timeout=70)
        dom2, _took2 = load(ns, url, tmp_path / "p2", 20.0)
        assert dom2 is None or "tcpip6-lab emulated host" not in dom2, dom2
    finally:
        s.stop()
    # Chromium's helpers may outlive the killed browser for a moment in the namespace
    deadline = time.monotonic() + 10.0
    while ours(s) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ours(s) == []
