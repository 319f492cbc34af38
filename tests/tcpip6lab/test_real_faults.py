"""Fault plans on real devices (root, real namespaces, Linux's own view of the devices):

* a `[[miniport]] link-flap` pulls the carrier: Linux's netlink reports the device without, then
  with IFF_LOWER_UP (pyroute2 monitor, `ip monitor link`'s equivalent), tcpip6 is indicated
  NDIS_STATUS_MEDIA_DISCONNECT then CONNECT, and ping -6 answers again afterwards (TAP, veth);
* a `surprise-removal` deletes the adapter's device (and forgets it in the state file);
* the IFB a TAP device's received frames cross on their way to a netem qdisc carries them, is in
  the state file, and `tcpip6-lab cleanup` removes it after a SIGKILL;
* `[[wire]]` netem faults: loss 100 % in a window stops Linux's pings exactly in it; duplicate and
  reorder show in the pcap. These need a kernel with netem (CONFIG_NET_SCH_NETEM) and are skipped,
  with that reason, on one without it.
* the same windows through the BPF fallback a kernel without netem gets (forced here with
  TCPIP6LAB_WIRE_BPF=1, so these run on every kernel): loss 100 % stops the pings exactly in the
  window, in both directions and in the emulated host's transmit direction alone (the TAP's
  ingress hook); duplicates show in the host's pcap and as ping's DUP!s; a corrupted frame's
  last bit is flipped in the pcap and the host's checksum drops it; what needs netem
  (delay) is refused in one line before anything is made.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import leftovers, require_real_net
from tests.tcpip6lab.test_serve_host import Serve, in_ns, namespace, ours, sites

IFF_LOWER_UP = 0x10000
RTMGRP_LINK = 1
RTM_NEWLINK = 16
IFLA_IFNAME = 3


@pytest.fixture
def nothing_left() -> Any:
    runs: list[Serve] = []
    yield runs
    for s in runs:
        assert ours(s) == []


class LinkMonitor:
    """RTM_NEWLINK messages of one namespace, as `ip monitor link` shows them: (device, lower
    up?) in order. A plain rtnetlink socket subscribed to RTMGRP_LINK (pyroute2 0.9's `get()`
    on a bound IPRoute delivered only the first batch here); `lower_up` asks pyroute2."""

    def __init__(self, netns: str) -> None:
        from ndisemu.backends.netlink import in_netns

        self.netns = netns
        with in_netns(netns):  # the socket stays in the namespace it was made in
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
        self.sock.bind((0, RTMGRP_LINK))
        self.sock.setblocking(False)
        self.seen: list[tuple[str, bool]] = []

    def poll(self) -> None:
        while select.select([self.sock], [], [], 0.02)[0]:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == RTM_NEWLINK:
                    flags = struct.unpack_from("=I", data, off + 16 + 8)[0]
                    self.seen.append((_ifname(data[off + 32:off + length]),
                                      bool(flags & IFF_LOWER_UP)))
                off += (length + 3) & ~3 if length else len(data)

    def states(self, device: str) -> list[bool]:
        self.poll()
        out: list[bool] = []
        for name, up in self.seen:
            if name == device and (not out or out[-1] != up):
                out.append(up)
        return out

    def lower_up(self, device: str) -> bool:
        from pyroute2 import NetNS

        with NetNS(self.netns) as ns:
            links = ns.get_links(ifname=device)
        return bool(links) and bool(links[0]["flags"] & IFF_LOWER_UP)

    def close(self) -> None:
        self.sock.close()


def _ifname(attrs: bytes) -> str:
    """IFLA_IFNAME among an ifinfomsg's attributes."""
    off = 0
    while off + 4 <= len(attrs):
        length, kind = struct.unpack_from("=HH", attrs, off)
        if length < 4:
            break
        if kind == IFLA_IFNAME:
            return attrs[off + 4:off + length].split(b"\0")[0].decode()
        off += (length + 3) & ~3
    return ""


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_a_link_flap_is_seen_by_linux_and_indicated_to_tcpip6(
        backend: str, tmp_path: Path, nothing_left: list[Serve]) -> None:
    require_real_net("ip", "ping", tun=backend == "tap")
    # the 7th request of nic000's bind pulls its cable for 3 s
    s = _serve_with_plan(tmp_path / "flap.toml",
                         '[[miniport]]\naction = "link-flap"\nnth = 7\nduration = 3.0\n'
                         'adapters = ["nic000"]\n', backend, nothing_left, adapters=2)
    monitor = None
    try:
        ns = namespace(s)
        dev = s.wait_for(r"nic000  device (\S+)")[1]
        while not Path(f"/run/netns/{ns}").exists():
            time.sleep(0.01)
        monitor = LinkMonitor(ns)
        monitor.poll()
        s.wait_for(r"nic000 media disconnected \(tcpip6 was indicated "
                   r"NDIS_STATUS_MEDIA_DISCONNECT\)", timeout=15)
        s.wait_for(r"nic000 media connected \(tcpip6 was indicated NDIS_STATUS_MEDIA_CONNECT\)",
                   timeout=15)
        states = monitor.states(dev)
        assert False in states, monitor.seen  # Linux saw the carrier go
        deadline = time.monotonic() + 5
        while not monitor.lower_up(dev) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert monitor.lower_up(dev), monitor.seen  # and come back
        other = sites(s)["nic001"]["device"]
        assert False not in monitor.states(other), monitor.seen  # only nic000 flapped
        assert "nic001 media" not in s.text
        ll = sites(s)["nic000"]["link_local"]
        ping = in_ns(ns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", f"{ll}%{dev}",
                     timeout=20)
        assert ping.returncode == 0, ping.stdout + ping.stderr  # the cable is back for real
    finally:
        if monitor is not None:
            monitor.close()
        out = s.stop()
    assert s.proc.returncode == 0, out


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_a_surprise_removal_deletes_the_device(backend: str, tmp_path: Path,
                                               nothing_left: list[Serve]) -> None:
    require_real_net("ip", tun=backend == "tap")
    s = _serve_with_plan(tmp_path / "gone.toml",
                         '[[miniport]]\naction = "surprise-removal"\nnth = 7\n'
                         'adapters = ["nic001"]\n', backend, nothing_left, adapters=2)
    try:
        ns = namespace(s)
        dev = s.wait_for(r"nic001  device (\S+)")[1]
        gone = s.wait_for(r"nic001 departed; removed link (\S+)", timeout=15)
        assert gone[1] == dev
        links = in_ns(ns, "ip", "-o", "link").stdout
        assert dev not in links and sites(s)["nic000"]["device"] in links
        state = json.loads(next(Path("/run/tcpip6-lab").glob("*.json")).read_text())
        assert dev not in state["links"]
    finally:
        out = s.stop()
    assert s.proc.returncode == 0, out


def test_a_taps_received_frames_cross_its_ifb_and_cleanup_removes_it_after_sigkill() -> None:
    require_real_net("ip")
    script = r"""
import os, sys, time
from ndisemu.backends import netem
from ndisemu.backends.netlink import Registry
from ndisemu.backends.tap import open_tap
from pyroute2 import IPRoute
reg = Registry.open()
dev, ifb = f"t6l-{reg.run_id}-0", f"t6l-{reg.run_id}-0i"
reg.claim_link(dev)
fd = open_tap(dev)
with IPRoute() as ipr:
    ipr.link("set", index=ipr.link_lookup(ifname=dev)[0], state="up")
reg.claim_link(ifb)
netem.add_ifb(".", dev, ifb)
frame = bytes.fromhex("ffffffffffff" "020000000001" "0800") + bytes(46)
for _ in range(5):
    os.write(fd, frame)  # what the emulated host sends: the TAP netdev receives it
time.sleep(0.2)
with IPRoute() as ipr:
    stats = ipr.get_links(ifname=ifb)[0].get_attr("IFLA_STATS64")
print(dev, ifb, stats["rx_packets"], " ".join(netem.qdiscs(".", dev)), flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert len(line) >= 4, (line, proc.stderr.read() if proc.stderr else "")
        dev, ifb, crossed, kinds = line[0], line[1], int(line[2]), line[3:]
        assert crossed >= 5 and "ingress" in kinds
        state = [json.loads(p.read_text()) for p in Path("/run/tcpip6-lab").glob("*.json")]
        assert any(ifb in st["links"] for st in state)
    finally:
        proc.kill()
        proc.wait()
    assert os.path.exists(f"/sys/class/net/{ifb}")  # SIGKILL: nothing removed it
    r = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "cleanup"], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert f"removed link {ifb}" in r.stdout and f"removed link {dev}" in r.stdout, r.stdout
    assert not [x for x in leftovers() if dev in x or ifb in x]


def nic000(s: Serve) -> tuple[str, str]:
    """nic000's (link-local address, device), once serve's listing has its line: the reader
    thread may have the listing's first lines before the rest (seen in a slow guest)."""
    s.wait_for(r"(?m)^  nic000  device .* IPv4 \S+")
    return sites(s)["nic000"]["link_local"], sites(s)["nic000"]["device"]


def _serve_with_plan(path: Path, plan: str, backend: str, nothing_left: list[Serve], *,
                     adapters: int = 1, pcaps: Path | None = None) -> Serve:
    """serve on `backend` with the fault plan `plan` (written to `path`), no applications,
    its captures in `pcaps` if given; `nothing_left` checks what it leaves."""
    path.write_text(plan)
    extra = ["--pcap", str(pcaps)] if pcaps is not None else []
    s = Serve("--backend", backend, "--adapters", str(adapters), "--no-apps", *extra,
              "--faults", str(path))
    nothing_left.append(s)
    return s


def _require_netem() -> None:
    """Skip (with the reason) on a kernel without netem: the qdisc cannot be had there."""
    try:
        r = subprocess.run(["unshare", "--net", sys.executable, "-c",
                            "from ndisemu.backends import netem; netem.probe_netem('.', 'lo')"],
                           capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        pytest.skip("needs unshare to probe for netem")
    if r.returncode != 0:
        reason = ("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): "
                  + (r.stderr.strip().splitlines() or ["?"])[-1])
        if os.environ.get("TCPIP6LAB_NEED_NETEM") == "1":  # tests.guest: a kernel with netem
            pytest.fail(reason)
        pytest.skip(reason + " (`./lab guest --netem-tests` runs these in a guest that has it)")


PING = re.compile(r"^\[(\d+\.\d+)\] .*icmp_seq=(\d+)(?:.* time=(\d+(?:\.\d+)?) ms)?")  # -D


def _pings_lose_exactly_the_window(s: Serve) -> subprocess.CompletedProcess[str]:
    """Linux pings nic000 for 9 s from t≈1 s, every 50 ms, timestamped (-D), misses reported
    (-O); the replies stop for the plan's 3 s window (after = 4, until = 7) and nowhere else.
    The ping run, for more checks."""
    ns = namespace(s)
    ll, dev = nic000(s)
    s.wait_for(r"tcpip6 bound 1/1", timeout=15)  # about t=1s: before the window
    ping = in_ns(ns, "ping", "-6", "-D", "-O", "-n", "-i", "0.05", "-c", "180", "-W", "1",
                 f"{ll}%{dev}", timeout=30)
    # when each answered request was sent (the reply's timestamp less its round trip): the
    # window is in the requests lost, and a slow guest's round trips (up to 0.2 s under TCG)
    # would otherwise stretch or shrink the gap around it
    replies = [float(m[1]) - float(m[3] or 0) / 1000
               for m in map(PING.match, ping.stdout.splitlines()) if m and "bytes from" in m[0]]
    gaps = [b - a for a, b in itertools.pairwise(replies)]
    assert 2.8 <= max(gaps) <= 3.4, (max(gaps), ping.stdout)  # the 3 s window, no more
    assert sorted(gaps)[-2] < 0.5, ping.stdout  # and nothing lost outside it
    return ping


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_netem_loss_in_a_window_stops_pings_exactly_in_it(
        backend: str, tmp_path: Path, nothing_left: list[Serve]) -> None:
    require_real_net("ip", "ping", tun=backend == "tap")
    _require_netem()
    s = _serve_with_plan(tmp_path / "loss.toml",
                         '[[wire]]\naction = "loss"\nafter = 4.0\nuntil = 7.0\n',
                         backend, nothing_left)
    try:
        _pings_lose_exactly_the_window(s)
        start = s.wait_for(r"t=\s*([\d.]+)s  nic000 in \(\S+\): netem loss 100%")
        end = s.wait_for(r"t=\s*([\d.]+)s  nic000 in \(\S+\): removed")
        # the lines name the plan's edges (the ping gaps above check when the loss happened)
        assert (float(start[1]), float(end[1])) == (4.0, 7.0)
    finally:
        out = s.stop()
    assert s.proc.returncode == 0, out
    assert "netem loss 100%" in out


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_netem_duplicate_and_reorder_show_in_the_hosts_pcap(
        backend: str, tmp_path: Path, nothing_left: list[Serve]) -> None:
    require_real_net("ip", "ping", tun=backend == "tap")
    _require_netem()
    from scapy.layers.inet6 import ICMPv6EchoRequest
    from scapy.utils import rdpcap

    pcaps = tmp_path / "pcap"
    # what Linux sends: every frame twice, half of them 100 ms late (the others overtake them)
    s = _serve_with_plan(tmp_path / "mess.toml",
                         '[[wire]]\naction = "duplicate"\ndirection = "in"\n\n'
                         '[[wire]]\naction = "reorder"\nprobability = 0.5\ndelay = 0.1\n'
                         'direction = "in"\n', backend, nothing_left, pcaps=pcaps)
    try:
        ns = namespace(s)
        ll, dev = nic000(s)
        s.wait_for(r"tcpip6 bound 1/1", timeout=15)
        in_ns(ns, "ping", "-6", "-n", "-i", "0.01", "-c", "60", "-W", "1", f"{ll}%{dev}",
              timeout=30)
    finally:
        out = s.stop()
    assert s.proc.returncode == 0, out
    seqs = [int(p[ICMPv6EchoRequest].seq) for f in pcaps.glob("*.pcap")
            for p in rdpcap(str(f)) if p.haslayer(ICMPv6EchoRequest)]
    assert len(seqs) >= 100, seqs  # 60 requests, each twice (a few may be late at the end)
    assert all(seqs.count(q) == 2 for q in set(seqs[:40])), seqs  # duplicated
    assert any(b < a for a, b in itertools.pairwise(seqs)), seqs  # and out of order


def test_a_replaced_netem_qdisc_keeps_nothing_of_the_one_before() -> None:
    """A window's spec replaces the qdisc the one before it left (no removal in between when
    windows abut or nest): what the new spec leaves off is off, as Linux's tc shows it."""
    require_real_net("tc", tun=False)
    _require_netem()
    script = """
import subprocess
from ndisemu.backends import netem
from ndisemu.backends.netem import NetemSpec
for spec in (NetemSpec(delay=0.1, loss=30, corrupt=10, reorder=50, rate=1e6),
             NetemSpec(delay=0.02)):
    netem.set_netem(".", "lo", spec)
    print(subprocess.run(["tc", "qdisc", "show", "dev", "lo"], capture_output=True, text=True,
                         check=True).stdout.strip(), flush=True)
"""
    r = subprocess.run(["unshare", "--net", sys.executable, "-c", script], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    for what in ("delay 100ms", "loss 30%", "reorder 50%", "corrupt 10%", "rate 1Mbit"):
        assert what in first, first
    assert "netem" in second and "delay 20ms" in second, second
    for gone in ("loss", "reorder", "corrupt", "rate"):
        assert gone not in second, second


RTT = re.compile(r"icmp_seq=\d+ .*time=([\d.]+) ms")


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_netem_delay_and_jitter_show_in_linuxs_ping_times(
        backend: str, tmp_path: Path, nothing_left: list[Serve]) -> None:
    require_real_net("ip", "ping", tun=backend == "tap")
    _require_netem()
    delay, jitter = 80.0, 20.0  # ms
    # the emulated host's transmissions (on TAP: through its IFB) late by 80 ± 20 ms from t=5 s
    s = _serve_with_plan(tmp_path / "late.toml",
                         f'[[wire]]\naction = "latency"\ndelay = {delay / 1e3}\n'
                         f'jitter = {jitter / 1e3}\ndirection = "out"\nafter = 5.0\n',
                         backend, nothing_left)
    try:
        ns = namespace(s)
        ll, dev = nic000(s)
        s.wait_for(r"tcpip6 bound 1/1", timeout=15)

        def rtts() -> list[float]:
            ping = in_ns(ns, "ping", "-6", "-n", "-i", "0.05", "-c", "40", "-W", "2",
                         f"{ll}%{dev}", timeout=30)
            return [float(m[1]) for m in map(RTT.search, ping.stdout.splitlines()) if m]

        before = rtts()
        s.wait_for(r"nic000 out \(\S+\): netem delay 80ms 20ms", timeout=15)
        during = rtts()
    finally:
        out = s.stop()
    assert s.proc.returncode == 0, out
    assert len(before) >= 30 and len(during) == 40, (before, during)
    # before the window: no delay (the emulated host answers well within delay - jitter)
    assert sorted(before)[len(before) // 2] < delay - jitter, before
    # netem holds every reply at least delay - jitter, and one direction only: RTT < 2·delay
    assert min(during) >= delay - jitter, during
    # jitter: waiting only adds, so a reply sooner than the delay was one the jitter drew early
    assert min(during) < delay, during
    assert "netem delay 80ms 20ms" in out and "nic000 in (" not in out


@pytest.fixture
def bpf_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve (a child: it inherits the environment) uses the BPF fallback, netem or not."""
    from ndisemu.backends.netem import FORCE_BPF_ENV

    monkeypatch.setenv(FORCE_BPF_ENV, "1")


@pytest.mark.parametrize(("backend", "direction"),
                         [("tap", "both"), ("tap", "out"), ("veth", "both")])
def test_bpf_loss_in_a_window_stops_pings_exactly_in_it(
        backend: str, direction: str, tmp_path: Path, nothing_left: list[Serve],
        bpf_wire: None) -> None:
    require_real_net("ip", "ping", tun=backend == "tap")
    s = _serve_with_plan(tmp_path / "loss.toml",
                         f'[[wire]]\naction = "loss"\nafter = 4.0\nuntil = 7.0\n'
                         f'direction = "{direction}"\n', backend, nothing_left)
    try:
        ping = _pings_lose_exactly_the_window(s)
        assert "sendmsg" not in ping.stderr, ping.stderr  # lost on the wire: the sender is not told
        hook = "out" if direction == "out" else "in"
        start = s.wait_for(rf"t=\s*([\d.]+)s  nic000 {hook} \(\S+\): bpf loss 100%")
        end = s.wait_for(rf"t=\s*([\d.]+)s  nic000 {hook} \(\S+\): removed")
        # the lines name the plan's edges (the ping gaps above check when the loss happened)
        assert (float(start[1]), float(end[1])) == (4.0, 7.0)
    finally:
        out = s.stop()
    assert s.proc.returncode == 0, out
    assert "[[wire]] faults: this kernel has no netem (CONFIG_NET_SCH_NETEM); loss, " \
        "duplicate and corrupt through an eBPF classifier" in out
    assert "netem loss" not in out
    if direction == "out":
        assert "nic000 in (" not in out  # only the host's transmissions were touched


DUPS = re.compile(r"(\d+) packets transmitted, (\d+) received, \+(\d+) duplicates")


@pytest.mark.parametrize("backend", ["tap", "veth"])
def test_bpf_duplicates_show_in_the_hosts_pcap_and_to_linuxs_ping(
        backend: str, tmp_path: Path, nothing_left: list[Serve], bpf_wire: None) -> None:
    require_real_net("ip", "ping", tun=backend == "tap")
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest
    from scapy.utils import rdpcap

    pcaps = tmp_path / "pcap"
    s = _serve_with_plan(tmp_path / "dup.toml",  # both directions, every frame
                         '[[wire]]\naction = "duplicate"\n', backend, nothing_left, pcaps=pcaps)
    try:
        ns = namespace(s)
        ll, dev = nic000(s)
        s.wait_for(r"tcpip6 bound 1/1", timeout=15)
        ping = in_ns(ns, "ping", "-6", "-n", "-i", "0.02", "-c", "40", "-W", "1", f"{ll}%{dev}",
                     timeout=30)
    finally:
        out = s.stop()
    assert s.proc.returncode == 0, out
    packets = [p for f in pcaps.glob("*.pcap") for p in rdpcap(str(f))]
    requests = [int(p[ICMPv6EchoRequest].seq) for p in packets if p.haslayer(ICMPv6EchoRequest)]
    replies = [int(p[ICMPv6EchoReply].seq) for p in packets if p.haslayer(ICMPv6EchoReply)]
    assert sorted(requests) == sorted(list(range(1, 41)) * 2), requests  # each request twice
    assert sorted(replies) == sorted(requests), replies  # each copy answered once
    # each seq: 2 replies sent, each copied on its way back: Linux gets 4 (1 + 3 DUP!s); ping
    # exits on the last seq's first reply, before its copies
    m = DUPS.search(ping.stdout)
    assert m is not None, ping.stdout
    assert (int(m[1]), int(m[2])) == (40, 40) and int(m[3]) >= 3 * 39, ping.stdout
    got = [int(x) for x in re.findall(r"bytes from .* icmp_seq=(\d+) ", ping.stdout)]
    assert all(got.count(q) == 4 for q in range(1, 40)), ping.stdout
    assert "nic000 in (" in out and "bpf duplicate 100%" in out


def test_bpf_corrupt_flips_a_bit_the_hosts_checksum_catches(
        tmp_path: Path, nothing_left: list[Serve], bpf_wire: None) -> None:
    require_real_net("ip", "ping")
    from scapy.layers.inet6 import ICMPv6EchoRequest
    from scapy.utils import rdpcap

    pcaps = tmp_path / "pcap"
    # from t=3 s: Linux has resolved the host's address by then (a corrupt NS is dropped too)
    s = _serve_with_plan(tmp_path / "bad.toml",
                         '[[wire]]\naction = "corrupt"\ndirection = "in"\nafter = 3.0\n',
                         "tap", nothing_left, pcaps=pcaps)
    try:
        ns = namespace(s)
        ll, dev = nic000(s)
        s.wait_for(r"tcpip6 bound 1/1", timeout=15)
        before = in_ns(ns, "ping", "-6", "-n", "-p", "55", "-c", "2", "-W", "1", f"{ll}%{dev}")
        assert " 2 received" in before.stdout, before.stdout
        s.wait_for(r"nic000 in \(\S+\): bpf corrupt 100%", timeout=15)
        ping = in_ns(ns, "ping", "-6", "-n", "-p", "aa", "-i", "0.05", "-c", "10", "-W", "1",
                     f"{ll}%{dev}", timeout=30)
    finally:
        out = s.stop()
    assert s.proc.returncode == 0, out
    assert " 0 received" in ping.stdout, ping.stdout  # no request passed the host's checksum
    tails = [bytes(p[ICMPv6EchoRequest].data)[-2:] for f in pcaps.glob("*.pcap")
             for p in rdpcap(str(f)) if p.haslayer(ICMPv6EchoRequest)
             and bytes(p[ICMPv6EchoRequest].data)[-3:-2] == b"\xaa"]
    assert len(tails) == 10 and set(tails) == {b"\xaa\xab"}, tails  # the last bit flipped
    assert "nic000 in (" in out and "bpf corrupt 100%" in out


def test_without_netem_a_delay_is_refused_in_one_line_before_anything_is_made(
        tmp_path: Path, bpf_wire: None) -> None:
    require_real_net("ip")
    plan = tmp_path / "late.toml"
    plan.write_text('[[wire]]\naction = "latency"\ndelay = 0.05\n')
    before = leftovers()
    r = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "serve", "--backend", "veth",
                        "--adapters", "1", "--faults", str(plan)], capture_output=True, text=True,
                       timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.splitlines() == [
        f"tcpip6-lab: error: {plan}:1: [[wire]] wire0: delay on --backend veth: this kernel has no "
        "netem (CONFIG_NET_SCH_NETEM); only loss, duplicate, corrupt and rate work without it "
        "(or use --backend memory)"], r.stderr
    assert leftovers() == before
