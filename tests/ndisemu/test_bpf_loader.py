"""The [[wire]] fallback on the real kernel (root; a private network namespace of its own): the
verifier accepts every variant of the program, the filter sits on the clsact hook, and frames
sent through a veth are lost, copied, or rate-limited as asked — counted by the peer's receive
statistics, which are Linux's own."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import require_real_net

SCRIPT = r"""
import socket, time
from pyroute2 import IPRoute
from ndisemu.backends import bpf
from ndisemu.backends.bpfprog import WireProgram

for k in ("all", "default"):  # no IPv6 chatter (RS, MLD, DAD) in the counts
    with open(f"/proc/sys/net/ipv6/conf/{k}/disable_ipv6", "w") as f:
        f.write("1")
with IPRoute() as ipr:
    ipr.link("add", ifname="v0", kind="veth", peer="v1")
    for n in ("v0", "v1"):
        ipr.link("set", index=ipr.link_lookup(ifname=n)[0], state="up")

def rx(dev):
    with IPRoute() as ipr:
        return ipr.get_links(ifname=dev)[0].get_attr("IFLA_STATS64")["rx_packets"]

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("v0", 0))
frame = bytes.fromhex("020000000002" "020000000001" "88b5") + bytes(46)  # local experimental

def sent(n, spec):
    bpf.set_bpf(".", "v0", spec, ingress=False)
    before = rx("v1")
    for _ in range(n):
        s.send(frame)
    time.sleep(0.2)
    return rx("v1") - before

for p in (WireProgram(loss=100), WireProgram(loss=0.5, duplicate=99.5),
          WireProgram(loss=1, corrupt=2, duplicate=3, ingress=True), WireProgram(corrupt=100),
          WireProgram(duplicate=100, ingress=True), WireProgram()):
    bpf.set_bpf(".", "v1", bpf.BpfSpec(p), ingress=True)  # each variant passes the verifier
bpf.set_bpf(".", "v1", None, ingress=True)
print("plain", sent(50, None))
print("loss100", sent(50, bpf.BpfSpec(WireProgram(loss=100))))
print("filters", *bpf.filters(".", "v0", ingress=False))
print("dup100", sent(50, bpf.BpfSpec(WireProgram(duplicate=100))))
print("loss50", sent(400, bpf.BpfSpec(WireProgram(loss=50))))
print("removed", sent(50, None), *bpf.filters(".", "v0", ingress=False))
r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
r.bind(("v1", 0))
r.settimeout(2)
body = frame[:-1] + b"\x5a"
bpf.set_bpf(".", "v0", bpf.BpfSpec(WireProgram(corrupt=100)), ingress=False)
s.send(body)
got = r.recv(2048)
print("corrupt", got[:-1] == body[:-1], hex(got[-1]))
bpf.set_bpf(".", "v0", None, ingress=False)
bpf.set_bpf(".", "v0", bpf.BpfSpec(None, rate=80_000), ingress=False)  # 10 kB/s
before = rx("v1")
for _ in range(20):
    s.send(frame + bytes(940))  # 1000 B: 100 ms each at the rate
time.sleep(0.3)
early = rx("v1") - before
time.sleep(2.2)
print("rate", early, rx("v1") - before)
with IPRoute() as ipr:
    kinds = [m.get_attr("TCA_KIND") for m in ipr.get_qdiscs(index=ipr.link_lookup(ifname="v0")[0])]
print("qdiscs", *kinds)
"""


def test_the_program_loses_copies_and_the_tbf_paces_frames_on_a_real_veth() -> None:
    require_real_net(tun=False)
    r = subprocess.run(["unshare", "--net", sys.executable, "-c", SCRIPT], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    got = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()}
    assert got["plain"] == ["50"]
    assert got["loss100"] == ["0"]  # every frame lost
    assert got["filters"] == ["bpf"]
    assert got["dup100"] == ["100"]  # every frame twice, and no copy of a copy
    assert 120 <= int(got["loss50"][0]) <= 280, got  # 400 frames, half lost (±7 σ)
    assert got["removed"] == ["50"]  # the filter went
    assert got["corrupt"] == ["True", "0x5b"], got  # the last byte's low bit, nothing else
    # TBF at 80 kbit/s, burst 3028 B: of 20 frames of 1000 B, 3 at once and one per 100 ms;
    # none lost (netem's rate drops none either: the queue holds 2 s)
    assert int(got["rate"][0]) <= 8 and got["rate"][1] == "20", got
    assert "tbf" in got["qdiscs"] and "clsact" in got["qdiscs"], got


PROBE = r"""
import os
from ndisemu.backends import netem
from ndisemu.errors import BackendError
home = os.readlink("/proc/thread-self/ns/net")
found = netem.kernel_has_netem()
try:
    netem.probe_netem(".", "lo")  # the device probe netem's path has always made
    real = True
except BackendError:
    real = False
print(found, real, os.readlink("/proc/thread-self/ns/net") == home)
os.environ[netem.FORCE_BPF_ENV] = "1"
print(netem.kernel_has_netem())
"""


def test_the_netem_probe_agrees_with_the_kernel_and_leaves_the_thread_at_home() -> None:
    require_real_net(tun=False)
    r = subprocess.run(["unshare", "--net", sys.executable, "-c", PROBE], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    first, forced = r.stdout.splitlines()
    found, real, home = first.split()
    assert found == real and home == "True", r.stdout  # asked in a namespace of its own
    assert forced == "False"  # the tests' switch to the fallback
