"""Linux netem qdiscs on real devices, through netlink (pyroute2's tc; no `tc` process).

netem shapes what a device *sends*. Which device sends which direction of an adapter's wire:

    direction "in"  (Linux -> emulated host): Linux's side of the device (TAP or veth), root qdisc
    direction "out" (emulated host -> Linux): veth: our end's root qdisc (AF_PACKET sends go
                    through it); TAP: our writes to the fd are what the TAP netdev *receives*,
                    so its ingress qdisc redirects them (u32 match-all + mirred) to an IFB
                    device whose root qdisc is the netem, after which they go on up the stack

An IFB device is named like the device it serves plus "i", recorded in the run's state file
before it exists (Registry.claim_link), and removed with the others at exit or by `cleanup`;
qdiscs live on their devices and go with them.

`NetemSpec` is what one netem qdisc does; None removes it (the device's default qdisc again).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError

CURRENT = "."  # a namespace name: this process's own (backends.topology.CURRENT)
TC_H_ROOT = 0xFFFFFFFF
INGRESS_HANDLE = 0xFFFF0000
NETEM_LIMIT = 10000  # packets netem may hold (iproute2's default is 1000; delays need more)


@dataclass(frozen=True)
class NetemSpec:
    """One netem qdisc: percentages 0-100, times in seconds, rate in bits per second."""

    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0  # netem's "reorder P%": P % of the frames skip the delay
    corrupt: float = 0.0
    rate: float | None = None

    def tc_args(self) -> dict[str, Any]:
        """pyroute2's netem keywords (sched_netem.get_parameters: delay/jitter in µs)."""
        args: dict[str, Any] = {"delay": round(self.delay * 1e6),
                                "jitter": round(self.jitter * 1e6),
                                "loss": self.loss, "duplicate": self.duplicate,
                                "prob_corrupt": self.corrupt, "limit": NETEM_LIMIT}
        if self.reorder > 0:
            args["prob_reorder"] = self.reorder
        if self.rate is not None:
            args["rate"] = f"{int(self.rate)}bit"
        return args

    def describe(self) -> str:
        """As `tc qdisc show` would print it (for the run's log lines)."""
        parts = []
        if self.delay or self.jitter:
            parts.append(f"delay {self.delay * 1e3:g}ms"
                         + (f" {self.jitter * 1e3:g}ms" if self.jitter else ""))
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            v = getattr(self, name)
            if v:
                parts.append(f"{name} {v:g}%")
        if self.rate is not None:
            parts.append(f"rate {self.rate:g}bit")
        return "netem " + (" ".join(parts) or "(nothing)")


@contextlib.contextmanager
def _ns(netns: str) -> Iterator[Any]:
    from pyroute2 import IPRoute, NetNS

    with (IPRoute() if netns == CURRENT else NetNS(netns)) as ns:
        yield ns


def _index(ns: Any, device: str) -> int:
    idx = ns.link_lookup(ifname=device)
    if not idx:
        raise BackendError(f"no network device {device!r} for a netem qdisc")
    return int(idx[0])


# Each attribute a netem request must carry even when it is off (0): net/sched/sch_netem.c's
# netem_change keeps the qdisc's current value for every one a request lacks.
_WHOLE = {"TCA_NETEM_REORDER": {"prob_reorder": 0, "corr_reorder": 0},
          "TCA_NETEM_CORRUPT": {"prob_corrupt": 0, "corr_corrupt": 0},
          "TCA_NETEM_RATE": {"rate": 0, "packet_overhead": 0, "cell_size": 0,
                             "cell_overhead": 0}}


def _netem_requests_are_whole() -> None:
    """Two fixes to pyroute2 0.9's netem requests, in its netem plugin's `fix_request` hook
    (installed once, after any hook pyroute2 has of its own):

    * its `rate` keyword stays in the request after the netem options are built from it, where
      it also becomes the qdisc's TCA_RATE (a rate estimator), which the kernel refuses
      (ERANGE): dropped, as pyroute2's tbf plugin does;
    * it sends the reorder, corrupt and rate attributes only when they are not 0, and the
      kernel's netem_change keeps a replaced qdisc's old value for each attribute a request
      lacks (`if (tb[TCA_NETEM_CORRUPT]) get_corrupt(q, ...)`): a window's corrupt, rate or
      reorder would outlive it whenever the next spec replaces the qdisc rather than removing
      it (seen on a kernel with netem: "loss 30% corrupt 10%" then "delay 20ms" left
      "delay 20ms corrupt 10%"). Each is sent, at 0 when off.
    """
    from pyroute2.netlink.rtnl.tcmsg import sched_netem

    if getattr(sched_netem.__dict__.get("fix_request"), "tcpip6lab", False):
        return
    theirs = sched_netem.__dict__.get("fix_request")

    def fix_request(request: dict[str, Any]) -> None:
        if theirs is not None:
            theirs(request)
        request.pop("rate", None)
        options = request.get("options")
        if isinstance(options, dict):
            attrs = options.setdefault("attrs", [])
            present = {a[0] for a in attrs}
            attrs.extend([name, dict(off)] for name, off in _WHOLE.items()
                         if name not in present)

    fix_request.tcpip6lab = True  # type: ignore[attr-defined]
    sched_netem.fix_request = fix_request


def set_netem(netns: str, device: str, spec: NetemSpec | None) -> None:
    """Make `spec` the root qdisc of `device` (replacing what was there), or with None remove
    the root qdisc (a missing one is fine: nothing to remove)."""
    from pyroute2.netlink.exceptions import NetlinkError

    _netem_requests_are_whole()

    with _ns(netns) as ns:
        idx = _index(ns, device)
        try:
            if spec is None:
                with contextlib.suppress(NetlinkError):
                    ns.tc("del", index=idx, handle=0, parent=TC_H_ROOT)
                return
            ns.tc("replace", "netem", index=idx, handle="1:", parent=TC_H_ROOT,
                  **spec.tc_args())
        except NetlinkError as exc:
            raise BackendError(_netem_error(device, exc)) from None


def _netem_error(device: str, exc: Any) -> str:
    code = getattr(exc, "code", 0)
    if code in (2, 95):  # ENOENT / EOPNOTSUPP: "Specified qdisc kind is unknown"
        return (f"cannot put a netem qdisc on {device}: this kernel has no netem "
                "(CONFIG_NET_SCH_NETEM, module sch_netem); [[wire]] faults on tap/veth need it "
                "(or use --backend memory)")
    return f"cannot put a netem qdisc on {device}: {exc}"


def probe_netem(netns: str, device: str) -> None:
    """Raise BackendError (one line) unless a netem qdisc can be put on `device`; leaves the
    device's qdisc as it was."""
    set_netem(netns, device, NetemSpec())
    set_netem(netns, device, None)


_has_netem: bool | None = None
FORCE_BPF_ENV = "TCPIP6LAB_WIRE_BPF"


def kernel_has_netem() -> bool:
    """Whether this kernel can make a netem qdisc, asked once per process and before anything
    is made: this thread steps into a fresh network namespace of its own (unshare), tries a
    netem qdisc on that namespace's loopback, and steps back (the namespace goes with it).
    Unknown (no CAP_SYS_ADMIN to unshare) counts as yes: `probe_netem` on a real device then
    says in one line what is missing. FORCE_BPF_ENV=1 in the environment answers no (the
    tests use it to run the BPF fallback on kernels that have netem too)."""
    global _has_netem
    if os.environ.get(FORCE_BPF_ENV) == "1":
        return False
    if _has_netem is not None:
        return _has_netem
    import ctypes

    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    from .netlink import CLONE_NEWNET, _setns

    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            return True
        try:
            with IPRoute() as ipr:
                lo = ipr.link_lookup(ifname="lo")[0]
                ipr.tc("replace", "netem", index=lo, handle="1:", parent=TC_H_ROOT)
            _has_netem = True
        except NetlinkError:
            _has_netem = False
        finally:
            _setns(home)
    finally:
        os.close(home)
    return _has_netem


def add_ifb(netns: str, device: str, ifb: str) -> None:
    """Create IFB device `ifb` beside `device` (in namespace `netns`, or the current one) and
    send everything `device` receives through it: an ingress qdisc on `device` with a u32
    match-all filter whose action is mirred egress redirect to `ifb`. The caller has claimed
    the name in its Registry."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=ifb, kind="ifb")
            if netns != CURRENT:
                ipr.link("set", index=ipr.link_lookup(ifname=ifb)[0], net_ns_fd=netns)
        with _ns(netns) as ns:
            ifb_idx = _index(ns, ifb)
            ns.link("set", index=ifb_idx, state="up")
            idx = _index(ns, device)
            ns.tc("add", "ingress", index=idx, handle=INGRESS_HANDLE)
            ns.tc("add-filter", "u32", index=idx, parent=INGRESS_HANDLE, protocol=0x0003,
                  prio=1, target=0x10001, keys=["0x0/0x0+0"],
                  action=[{"kind": "mirred", "direction": "egress", "action": "redirect",
                           "ifindex": ifb_idx}])
    except NetlinkError as exc:
        raise BackendError(f"cannot redirect {device}'s received frames through IFB {ifb}: "
                           f"{exc}") from None


def qdiscs(netns: str, device: str) -> list[str]:
    """The kinds of the qdiscs on `device` (for tests and diagnostics)."""
    with _ns(netns) as ns:
        idx = ns.link_lookup(ifname=device)
        if not idx:
            return []
        return [str(m.get_attr("TCA_KIND")) for m in ns.get_qdiscs(index=idx[0])]
