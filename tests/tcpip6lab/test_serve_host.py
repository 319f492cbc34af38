"""`serve` as a real host, tried as a user would (root, real devices, real Linux tools):

* the built-in services answer curl -6 and nc -6 on TAP and veth, at the link-local address with
  its zone and at the routable ULA address; HTTP keeps connections alive and serves /favicon.ico;
* `serve --adapters 1 --burst 24`: before the burst every request succeeds; after it, with the
  unpatched executor, ping -6, curl and the applications fail while ping -4 keeps answering; with
  the hotfix everything keeps working; a burst one below the cliff does not knot;
* the devices of late arrivals exist, are announced, and are removed at exit and by `cleanup`;
* a plan's `[[pnp]] burst` and `depart` get and lose devices; a `[[wire]]` fault netem cannot
  express is refused in one line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import leftovers, require_real_net
from tests.tcpip6lab.test_cliff import expected_cliff

NS_PREFIX = "t6l-"


class Serve:
    """`tcpip6-lab serve …` in a child process; its stdout collected by a reader thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tcpip6lab.cli", "serve", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=dict(os.environ))
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text)
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.2)
                m = re.search(pattern, self.text)
                if m:
                    return m
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"serve ended ({self.proc.returncode}) before {pattern!r}:"
                                     f"\n{self.text}\n{err}")
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not printed within {timeout}s:\n{self.text}")

    def stop(self, sig: int = signal.SIGINT) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        return self.text

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def in_ns(ns: str, *argv: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


def sites(s: Serve) -> dict[str, dict[str, str]]:
    """adapter -> {device, link_local, ula} from serve's listing."""
    out = {}
    for m in re.finditer(r"^  (nic\d+)  device (\S+)\s+MAC \S+  (fe80::\S+)%\S+  (fd\S+)  IPv4 "
                         r"(\S+)", s.text, re.M):
        out[m[1]] = {"device": m[2], "link_local": m[3], "ula": m[4], "ipv4": m[5]}
    return out


def namespace(s: Serve) -> str:
    return s.wait_for(r"namespace (t6l-\S+) ")[1]


def curl(ns: str, url: str, *extra: str, max_time: float = 3.0) -> subprocess.CompletedProcess[str]:
    return in_ns(ns, "curl", "-6", "-sS", "-g", "--max-time", str(max_time), *extra, url,
                 timeout=max_time + 10)


def ours(s: Serve) -> list[str]:
    """What is left of this run: devices named after its run id, its namespace, its state file
    (other runs on the machine may have theirs)."""
    m = re.search(r"device (t6l-(\w+)-\d+)", s.text)
    assert m is not None, s.text
    run_id = m[2]
    ns = re.search(r"namespace (t6l-\S+) ", s.text)
    names = {f"t6l-{run_id}-"} | ({ns[1]} if ns else set())
    left = [x for x in leftovers() if any(n in x for n in names)]
    return left + [str(p) for p in Path("/run/tcpip6-lab").glob(f"{run_id}.*")]


@pytest.fixture
def nothing_left() -> Any:
    runs: list[Serve] = []
    yield runs
    for s in runs:
        assert ours(s) == []


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_services_answer_curl_and_nc_by_default(backend: str, nothing_left: list[Serve]) -> None:
    require_real_net("curl", "nc", "ip", tun=backend == "tap")
    s = Serve("--backend", backend, "--adapters", "2")
    nothing_left.append(s)
    try:
        ns = namespace(s)
        s.wait_for(r"tcp 80  HTTP status page")
        s.wait_for(r"udp 7 ")
        s.wait_for(r"peer services \(tcpip6lab.peerd\)")
        s.wait_for(r"tcpip6 bound 2/2")
        time.sleep(1.5)  # DAD of the addresses (1 probe, 1 s)
        site = sites(s)["nic001"]
        ula, ll, dev = site["ula"], site["link_local"], site["device"]
        page = curl(ns, f"http://[{ula}]/")
        assert page.returncode == 0, page.stderr
        assert "tcpip6-lab emulated host" in page.stdout and "nic001 up" in page.stdout
        js = curl(ns, f"http://[{ll}%25{dev}]/status.json")
        assert js.returncode == 0, js.stderr
        status = json.loads(js.stdout)
        nic1 = next(i for i in status["interfaces"] if i["adapter"] == "nic001")
        assert {"address": ula, "prefix_len": 64, "state": "preferred"} in nic1["addresses"]
        # persistent connections: curl re-uses one for three URLs; the favicon as browsers ask
        multi = curl(ns, f"http://[{ula}]/", "-v", "-o", "/dev/null", "-o", "/dev/null",
                     "-o", "/dev/null", f"http://[{ula}]/status.json",
                     f"http://[{ula}]/favicon.ico")
        assert multi.returncode == 0, multi.stderr
        assert multi.stderr.count("Connected to") == 1, multi.stderr
        assert re.search(r"[Rr]e-?us(e|ing) (existing )?connection", multi.stderr), multi.stderr
        fav = curl(ns, f"http://[{ula}]/favicon.ico", "-o", "/dev/null", "-w",
                   "%{http_code} %{content_type}")
        assert fav.stdout.startswith("200 image/"), fav.stdout
        html = curl(ns, f"http://[{ula}]/", "-H", "Accept: text/html")
        assert '<meta http-equiv="refresh"' in html.stdout and 'id="pool"' in html.stdout
        # TCP echo and discard with nc -6, UDP echo
        echo = subprocess.run(["ip", "netns", "exec", ns, "nc", "-6", "-N", "-w", "3", ula, "7"],
                              input="hello over TCP/IPv6\n", capture_output=True, text=True,
                              timeout=15, check=False)
        assert echo.stdout == "hello over TCP/IPv6\n", (echo.stdout, echo.stderr)
        udp = subprocess.run(["ip", "netns", "exec", ns, "nc", "-6", "-u", "-w", "1", ula, "7"],
                             input="datagram\n", capture_output=True, text=True, timeout=15,
                             check=False)
        assert udp.stdout == "datagram\n", (udp.stdout, udp.stderr)
        # the applications talk to the peer services in the namespace, and succeed
        s.wait_for(r"apps tcp-rr ok \([1-9]\d* ok, 0 errors\), udp-lookup ok \([1-9]\d* ok, "
                   r"0 errors\)", timeout=15)
    finally:
        out = s.stop()
    assert "removed" in out


def test_no_services_means_none_not_even_the_udp_echo(nothing_left: list[Serve]) -> None:
    require_real_net("curl", "nc", "ip")
    s = Serve("--backend", "tap", "--adapters", "1", "--no-services")
    nothing_left.append(s)
    try:
        ns = namespace(s)
        s.wait_for(r"services: off \(--no-services\)")
        s.wait_for(r"tcpip6 bound 1/1")
        time.sleep(1.5)
        ula = sites(s)["nic000"]["ula"]
        page = curl(ns, f"http://[{ula}]/")
        assert page.returncode == 7, (page.returncode, page.stdout)  # refused at once
        udp = subprocess.run(["ip", "netns", "exec", ns, "nc", "-6", "-u", "-w", "1", ula, "7"],
                             input="datagram\n", capture_output=True, text=True, timeout=15,
                             check=False)
        assert udp.stdout == ""
        ping = in_ns(ns, "ping", "-6", "-c", "1", "-W", "2", ula)
        assert ping.returncode == 0, ping.stdout  # the host itself still answers
    finally:
        s.stop()


def _burst_run(executor: str, burst: int, burst_at: float = 6.0) -> tuple[Serve, str]:
    s = Serve("--backend", "tap", "--adapters", "1", "--burst", str(burst), "--burst-at",
              str(burst_at), "--executor", executor)
    return s, namespace(s)


@pytest.mark.parametrize("executor", ["critical", "dedicated"])
def test_a_burst_of_24_after_one_bound_adapter(executor: str, nothing_left: list[Serve]) -> None:
    require_real_net("curl", "ping", "ip")
    burst = expected_cliff(10, 0, 16, 2)  # the model's defaults: the KB's 24
    s, ns = _burst_run(executor, burst)
    nothing_left.append(s)
    try:
        s.wait_for(r"tcpip6 bound 1/1")
        time.sleep(1.5)
        nic0 = sites(s)["nic000"]
        ula, ipv4 = nic0["ula"], nic0["ipv4"]
        # the devices of the late arrivals exist before they arrive, announced as such
        assert len(sites(s)) == burst + 1
        assert s.text.count("(arrives later)") == burst
        links = in_ns(ns, "ip", "-o", "link").stdout
        assert len(re.findall(r"t6l-\w+-\d+", links)) == burst + 1
        state = json.loads(next(Path("/run/tcpip6-lab").glob("*.json")).read_text())
        assert len(state["links"]) == burst + 1
        # before the burst every request succeeds
        for _ in range(3):
            assert curl(ns, f"http://[{ula}]/").returncode == 0
        assert in_ns(ns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", ula).returncode == 0
        s.wait_for(r"apps tcp-rr ok \([2-9]\d* ok, 0 errors\), udp-lookup ok \([2-9]\d* ok, "
                   r"0 errors\)")
        s.wait_for(rf"{burst} adapters arrived: nic001…nic{burst:03d}", timeout=15)
        if executor == "critical":
            s.wait_for(r"critical 26/26 blocked", timeout=10)
            s.wait_for(r"apps tcp-rr FAILING on 1/\d+ .*udp-lookup FAILING on 1/\d+",
                       timeout=10)
            assert in_ns(ns, "ping", "-6", "-c", "3", "-i", "0.3", "-W", "1",
                         ula).returncode != 0
            assert curl(ns, f"http://[{ula}]/").returncode != 0
            assert "DEADLOCK" in s.wait_for(r"DEADLOCK on critical", timeout=15)[0]
            # serve's own count, beside the applications: IPv6 silent, IPv4 answering
            s.wait_for(rf"apps tcp-rr FAILING.*ping -6 answered on 0/{burst + 1}, ping -4 on "
                       rf"{burst + 1}/{burst + 1}", timeout=15)
        else:
            s.wait_for(rf"tcpip6 bound {burst + 1}/{burst + 1}", timeout=15)
            time.sleep(3.0)
            assert in_ns(ns, "ping", "-6", "-c", "3", "-i", "0.3", "-W", "1",
                         ula).returncode == 0
            assert curl(ns, f"http://[{ula}]/").returncode == 0
            last = sites(s)[f"nic{burst:03d}"]["ula"]
            assert curl(ns, f"http://[{last}]/").returncode == 0
            s.wait_for(rf"apps tcp-rr ok .*ping -6 answered on {burst + 1}/{burst + 1}, ping -4 "
                       rf"on {burst + 1}/{burst + 1}", timeout=15)
        # IPv4 keeps answering in both
        assert in_ns(ns, "ping", "-4", "-c", "3", "-i", "0.3", "-W", "1",
                     ipv4).returncode == 0
        if executor == "dedicated":
            time.sleep(2.0)
            assert "FAILING" not in s.text and "DEADLOCK" not in s.text
            assert not re.search(r"[1-9]\d* errors", s.text), s.text
    finally:
        out = s.stop()
    assert "removed" in out  # and the fixture finds nothing left


def test_a_burst_one_below_the_cliff_does_not_knot(nothing_left: list[Serve]) -> None:
    require_real_net("ping", "ip")
    burst = expected_cliff(10, 0, 16, 2) - 1
    s, ns = _burst_run("critical", burst, burst_at=3.0)
    nothing_left.append(s)
    try:
        s.wait_for(rf"tcpip6 bound {burst + 1}/{burst + 1}", timeout=20)
        time.sleep(1.5)
        last = sites(s)[f"nic{burst:03d}"]["ula"]
        assert in_ns(ns, "ping", "-6", "-c", "2", "-i", "0.3", "-W", "1", last).returncode == 0
        assert "DEADLOCK" not in s.text
    finally:
        s.stop()


def test_late_devices_are_removed_by_cleanup_after_a_kill(nothing_left: list[Serve]) -> None:
    require_real_net("ip")
    s, ns = _burst_run("critical", 5, burst_at=2.0)
    nothing_left.append(s)
    try:
        s.wait_for(r"5 adapters arrived", timeout=20)
        assert len(re.findall(r"t6l-\w+-\d+", in_ns(ns, "ip", "-o", "link").stdout)) == 6
    finally:
        s.kill()
    assert len(ours(s)) >= 2  # its namespace and state file at least (a TAP goes with its fd)
    out = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "cleanup"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert ours(s) == []


def test_a_plan_burst_and_departure_get_and_lose_devices(tmp_path: Path,
                                                          nothing_left: list[Serve]) -> None:
    require_real_net("ip")
    plan = tmp_path / "p.toml"
    plan.write_text('[[pnp]]\naction = "burst"\ncount = 3\nat = 2.0\n\n'
                    '[[pnp]]\naction = "depart"\nat = 4.0\nadapters = ["nic002"]\n')
    s = Serve("--backend", "tap", "--adapters", "1", "--faults", str(plan), "--executor",
              "dedicated")
    nothing_left.append(s)
    try:
        ns = namespace(s)
        assert s.text.count("(arrives later)") == 3
        s.wait_for(r"nic001 arrived on device (t6l-\w+-1)", timeout=15)
        s.wait_for(r"nic003 arrived", timeout=5)
        dev2 = sites(s)["nic002"]["device"]
        gone = s.wait_for(r"nic002 departed; removed link (\S+)", timeout=15)
        assert gone[1] == dev2
        links = in_ns(ns, "ip", "-o", "link").stdout
        assert dev2 not in links and sites(s)["nic003"]["device"] in links
        state = json.loads(next(Path("/run/tcpip6-lab").glob("*.json")).read_text())
        assert dev2 not in state["links"] and len(state["links"]) == 3
        assert "KeyError" not in s.text
    finally:
        out = s.stop()
    assert s.proc.returncode == 0, out


def test_a_wire_fault_netem_cannot_express_is_refused_in_one_line_before_set_up(
        tmp_path: Path, nothing_left: list[Serve]) -> None:
    require_real_net("ip")
    plan = tmp_path / "w.toml"
    plan.write_text('[[wire]]\naction = "loss"\nnth = 4\n')
    s = Serve("--backend", "tap", "--faults", str(plan))
    s.proc.wait(timeout=30)
    err = s.proc.stderr.read() if s.proc.stderr else ""
    assert s.proc.returncode == 2
    assert err == (f"tcpip6-lab: error: {plan}:1: [[wire]] wire0: nth = 4: netem cannot express "
                   "it on --backend tap (it draws every frame on its own: use probability and "
                   "after/until)\n"), err
    assert s.text == "" and not list(Path("/run/tcpip6-lab").glob("*.json"))
