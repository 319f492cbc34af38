"""Real devices, real Linux tools: the hang as Linux's own `ping -6` sees it.

Each test creates its own namespace (root; skipped with a reason elsewhere, failing under
CI=true). Tests wait on conditions with deadlines, never on bare sleeps.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from scapy.layers.inet import ICMP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest
from scapy.utils import rdpcap

from ndisemu.backends.netlink import PREFIX, link_exists, netns_preexec
from ndisemu.kernel import WORKER_MODES
from tcpip6.wire.ipv6 import addr_str, link_local_from_mac
from tcpip6lab.cli import main
from tcpip6lab.params import ModelParams, adapter_ipv4
from tcpip6lab.serve import RealHost, real_host, running
from tests.conftest import default_signals, leftovers, reaped, require_real_net, wait_for

ROOT = Path(__file__).resolve().parents[2]


async def ping(real: RealHost, adapter: str, family: int, count: int = 2) -> bool:
    """Linux's ping from the namespace to one emulated adapter; True if it got replies."""
    site = real.topology.sites[adapter]
    cfg = next(c for c in real.configs if c.name == adapter)
    if family == 6:
        target = f"{addr_str(link_local_from_mac(cfg.mac))}%{site.device}"
        argv = ["ping", "-6", "-n", "-c", str(count), "-i", "0.3", "-W", "1", target]
    else:
        target = socket.inet_ntoa(adapter_ipv4(int(cfg.tags["index"])))
        argv = ["ping", "-4", "-n", "-c", str(count), "-i", "0.3", "-W", "1", target]
    proc = await trio.run_process(argv, check=False, capture_stdout=True, capture_stderr=True,
                                  preexec_fn=netns_preexec(site.netns))
    return proc.returncode == 0



async def ping_all(real: RealHost, adapters: list[str], family: int) -> dict[str, bool]:
    results: dict[str, bool] = {}

    async def one(name: str) -> None:
        results[name] = await ping(real, name, family)

    async with trio.open_nursery() as nursery:
        for name in adapters:
            nursery.start_soon(one, name)
    return results


@pytest.mark.parametrize("backend", ["tap", "veth"])
async def test_linux_ping_reaches_each_adapter(backend: str, tmp_path: Path) -> None:
    require_real_net("ping", tun=backend == "tap")
    with real_host(ModelParams(executor="dedicated"), backend=backend, adapters=3, seed=1,
                   pcap_dir=str(tmp_path)) as real:
        run_id = real.topology.registry.run_id
        async with running(real):
            host = real.host
            host.pnp.schedule(real.configs, start=host.kernel.now)
            await wait_for(lambda: host.ipv6_ready() == 3 and host.ipv4_bound() == 3)
            names = [c.name for c in real.configs]
            assert await ping_all(real, names, 6) == dict.fromkeys(names, True)
            assert await ping_all(real, names, 4) == dict.fromkeys(names, True)
    assert not [x for x in leftovers() if run_id in x]
    # --pcap captured both directions of every adapter, readable by standard tools.
    for i in range(3):
        packets = rdpcap(str(tmp_path / f"host-nic00{i}.pcap"))
        assert any(p.haslayer(ICMPv6EchoRequest) for p in packets)
        assert any(p.haslayer(ICMPv6EchoReply) for p in packets)
        assert any(p.haslayer(ICMP) and p[ICMP].type == 0 for p in packets)


@pytest.mark.parametrize("executor", ["critical", "dedicated"])
async def test_burst_of_24_stops_ipv6_only_with_the_unpatched_binder(executor: str) -> None:
    require_real_net("ping")
    # serve's worker driver (coroutines): the fast path, frames batched into one backlog
    with real_host(ModelParams(executor=executor), backend="tap", adapters=25, seed=3,
                   workers="coroutines") as real:
        host = real.host
        first, burst = real.configs[0], real.configs[1:]
        async with running(real):
            host.pnp.schedule([first], start=host.kernel.now)
            await wait_for(lambda: host.ipv6_ready() == 1)  # bound, and DAD done
            assert await ping(real, first.name, 6)  # answered before the storm
            host.pnp.schedule(burst, start=host.kernel.now)
            crit = host.kernel.queue("critical")
            if executor == "critical":
                await wait_for(lambda: crit.blocked == len(crit.workers) == 26)
            else:
                await wait_for(lambda: host.ipv6_ready() == 25)
            await wait_for(lambda: host.ipv4_bound() == 25)
            names = [c.name for c in real.configs]
            v6 = await ping_all(real, names, 6)
            v4 = await ping_all(real, names, 4)
    assert v4 == dict.fromkeys(names, True)  # IPv4 answers on every adapter, storm or not
    if executor == "critical":
        assert v6 == dict.fromkeys(names, False)  # nic000 too: bound before the storm
    else:
        assert v6 == dict.fromkeys(names, True)


def _serve(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)  # the installed package: the wheel in ./lab test's first pass
    return subprocess.Popen([sys.executable, "-m", "tcpip6lab.cli", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, stdin=subprocess.DEVNULL, preexec_fn=default_signals)


def _wait_line(proc: subprocess.Popen[str], needle: str, timeout: float = 20.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not printed; got:\n{seen}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_removes_everything_on_signal(sig: signal.Signals) -> None:
    require_real_net()
    before = leftovers()
    proc = _serve("--backend", "tap", "--adapters", "3", "--netns", "sigtest")
    with reaped(proc):
        out = _wait_line(proc, "serving")
        assert "t6l-sigtest" in out and "fe80::5eff:fe10:0%t6l-" in out
        assert any(x.startswith("netns t6l-sigtest") for x in leftovers())
        proc.send_signal(sig)
        proc.wait(timeout=20)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert leftovers() == before


def test_serve_refuses_an_existing_namespace_in_one_line() -> None:
    require_real_net()
    from pyroute2 import netns

    name = f"{PREFIX}clash"
    netns.create(name)
    try:
        proc = _serve("--backend", "veth", "--netns", "clash")
        _, err = proc.communicate(timeout=30)
    finally:
        netns.remove(name)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and "already exists" in err and "Traceback" not in err
    assert not [x for x in leftovers() if x.startswith("state")]


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_serve_without_root_says_so_in_one_line(
        backend: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    # The interpreter lives under /root here, so a real privilege drop cannot start it; the
    # check is on the effective uid, which is what we fake.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr("ndisemu.backends.netlink.STATE_DIR", tmp_path / "state")
    assert main(["serve", "--backend", backend]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs root" in err and "--backend memory" in err
    assert not (tmp_path / "state").exists()  # refused before touching anything


def test_demo_on_tap_with_real_ping_processes() -> None:
    require_real_net("ping")
    before = leftovers()
    env = dict(os.environ)  # the installed package: the wheel in ./lab test's first pass
    proc = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "demo", "--backend", "tap",
                           "--duration", "8"], capture_output=True, text=True, timeout=90,
                          env=env, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "unpatched (critical): DEADLOCK" in out
    assert "IPv6 answers on 0/25 adapters, IPv4 on 25/25" in out
    assert "fixed (dedicated): HEALTHY — 25/25 bound" in out
    assert "IPv6 answers on 25/25 adapters (nic000, bound before the storm, too), IPv4 on 25/25" \
        in out
    # real kernel-socket TCP clients from the namespaces, and the host's own applications
    unpatched, fixed = (next(line for line in out.splitlines()
                             if line.startswith(f"  {label}")) for label in ("unpatched", "fixed"))
    assert "real HTTP GET answered on 0/25, TCP echo on 0/25" in unpatched
    assert "real HTTP GET answered on 25/25, TCP echo on 25/25" in fixed
    assert re.search(r"tcp-rr [1-9]\d* ok/[1-9]\d* failed \(failing on 1/1\)", unpatched)
    assert re.search(r"udp-lookup [1-9]\d* ok/[1-9]\d* failed \(failing on 1/1\)", unpatched)
    assert re.search(r"tcp-rr [1-9]\d* ok/0 failed, udp-lookup [1-9]\d* ok/0 failed", fixed)
    first = next(line for line in out.splitlines() if line.startswith("t="))
    assert "STOPPED" not in first  # never before the heartbeat's first interval
    assert leftovers() == before


@pytest.mark.parametrize("workers", WORKER_MODES)
async def test_linux_side_in_the_current_namespace(workers: str) -> None:
    require_real_net("ping")
    with real_host(ModelParams(executor="dedicated"), backend="tap", adapters=1, seed=1,
                   netns=".", workers=workers) as real:
        assert real.host.kernel.workers == workers
        run_id = real.topology.registry.run_id
        site = real.topology.sites["nic000"]
        assert link_exists(site.device)  # visible in this namespace
        assert not real.topology.registry.netns
        host = real.host
        async with running(real):
            host.pnp.schedule(real.configs, start=host.kernel.now)
            await wait_for(lambda: host.ipv6_ready() == 1)
            target = f"{addr_str(link_local_from_mac(real.configs[0].mac))}%{site.device}"
            proc = await trio.run_process(["ping", "-6", "-n", "-c", "2", "-i", "0.3", "-W",
                                           "1", target], check=False, capture_stdout=True)
            assert proc.returncode == 0
    assert not [x for x in leftovers() if run_id in x]



def _moments(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return sorted(round(rng.uniform(0.0, 2.5), 3) for _ in range(n))


@pytest.mark.parametrize("moment", _moments(5, 1))
def test_sigint_at_any_moment_leaves_nothing(moment: float) -> None:
    """SIGINT at seeded random moments — during start-up, set-up or while serving."""
    require_real_net()
    before = leftovers()
    proc = _serve("--backend", "veth", "--adapters", "4")
    with reaped(proc):
        time.sleep(moment)  # the moment of the interrupt, not a wait for a condition
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode in (0, -signal.SIGINT), proc.stderr.read() if proc.stderr else ""
    assert leftovers() == before


@pytest.mark.parametrize("moment", _moments(4, 2))
def test_a_killed_run_is_cleaned_up_by_the_cleanup_command(moment: float) -> None:
    """SIGKILL leaves devices behind; `tcpip6-lab cleanup` finds them by their t6l- names and
    the state files, and removes them — while a live run's devices are left alone."""
    require_real_net()
    before = leftovers()
    live = _serve("--backend", "tap", "--adapters", "2", "--netns", "livebystander")
    victim = _serve("--backend", "veth", "--adapters", "3")
    try:
        _wait_line(live, "serving")
        time.sleep(moment)
        victim.kill()
        victim.wait(timeout=30)
        env = dict(os.environ)  # the installed package: the wheel in ./lab test's first pass
        clean = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "cleanup"],
                               capture_output=True, text=True, env=env, timeout=60,
                               check=False)
        assert clean.returncode == 0, clean.stderr
        remaining = [x for x in leftovers() if x not in before]
        # Only the live run's namespace and state file are left: the victim's are gone.
        assert [x for x in remaining if x.startswith("netns")] == ["netns t6l-livebystander"]
        assert len([x for x in remaining if x.startswith("state")]) == 1
        assert not [x for x in remaining if x.startswith("link")]
    finally:
        live.send_signal(signal.SIGINT)
        live.wait(timeout=30)
        if victim.poll() is None:
            victim.kill()
    assert leftovers() == before


@pytest.mark.parametrize("moment", _moments(2, 3))
def test_sigint_during_the_tap_demo_leaves_nothing(moment: float) -> None:
    require_real_net("ping")
    before = leftovers()
    env = dict(os.environ)  # the installed package: the wheel in ./lab test's first pass
    proc = subprocess.Popen([sys.executable, "-m", "tcpip6lab.cli", "demo", "--backend", "tap",
                             "--duration", "10"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL, preexec_fn=default_signals)
    with reaped(proc):
        time.sleep(1.0 + moment)  # the moment of the interrupt: set-up or the live run
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGINT), err
    assert "Traceback" not in err
    assert leftovers() == before
