"""`[[wire]]` faults on a kernel without netem: an eBPF classifier on a clsact hook, and TBF.

Used only where netem is missing (`netem.kernel_has_netem()` says so, probed once). The program
for loss, duplicate and corrupt (ndisemu.backends.bpfprog: raw instructions, no clang/bcc) is
loaded with the bpf(2) syscall through ctypes and attached with pyroute2's tc as a
direct-action "bpf" filter on a clsact qdisc. Which hook of which device carries which
direction of an adapter's wire:

    direction "in"  (Linux -> emulated host): Linux's side of the device (TAP or veth), egress
    direction "out" (emulated host -> Linux): veth: our end (in the emulator's namespace),
                    egress; TAP: the TAP device's *ingress* — what our fd writes is what the TAP
                    netdev receives, and the ingress hook runs before Linux's stack sees it. So
                    the BPF path needs no IFB device.

A window edge loads the program with the new probabilities and replaces the filter (same
priority and handle); no program, map or link is pinned: the kernel keeps the program while
the filter holds it, and the filter and its qdisc go with the device at exit or `cleanup`.
`rate` becomes a TBF root qdisc on the device of the egress directions (TAP "out" has no
egress to shape: refused by faults.netem.check_real_plan on such a kernel).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import struct
from dataclasses import dataclass

from ..errors import BackendError
from .bpfprog import WireProgram, host_is_little_endian
from .netem import TC_H_ROOT, _index, _ns

BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SCHED_CLS = 3
SYS_BPF = {"x86_64": 321, "aarch64": 280}
TC_H_CLSACT = 0xFFFFFFF1
CLSACT_INGRESS = 0xFFFFFFF2
CLSACT_EGRESS = 0xFFFFFFF3
FILTER_PRIO = 1
FILTER_HANDLE = 1
ETH_P_ALL = 0x0003
LOG_SIZE = 65536
TBF_LATENCY_US = 2_000_000  # frames may wait 2 s behind the rate (netem rate drops none either)


@dataclass(frozen=True)
class BpfSpec:
    """What the fallback puts on one device and direction: a program and/or a TBF rate."""

    program: WireProgram | None = None
    rate: float | None = None  # bits per second

    def describe(self) -> str:
        parts = [self.program.describe()] if self.program is not None else []
        if self.rate is not None:
            parts.append(f"tbf rate {self.rate:g}bit")
        return " + ".join(parts) or "(nothing)"


_libc: ctypes.CDLL | None = None


def _syscall_bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    global _libc
    nr = SYS_BPF.get(platform.machine())
    if nr is None or not host_is_little_endian():
        raise BackendError(f"the bpf fallback for [[wire]] faults knows no bpf(2) on "
                           f"{platform.machine()}")
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    ret = int(_libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr,
                            ctypes.c_uint(len(attr))))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def load(program: WireProgram) -> int:
    """BPF_PROG_LOAD a SCHED_CLS program (license "GPL": clone_redirect needs it); its fd."""
    code = program.code()
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr = ctypes.create_string_buffer(128)  # union bpf_attr, the rest zero
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version,
    # prog_flags, prog_name[16]
    struct.pack_into("=IIQQIIQII16s", attr, 0, BPF_PROG_TYPE_SCHED_CLS, len(code) // 8,
                     ctypes.addressof(insns), ctypes.addressof(license_), 1, LOG_SIZE,
                     ctypes.addressof(log), 0, 0, b"t6l_wire")
    try:
        return _syscall_bpf(BPF_PROG_LOAD, attr)
    except OSError as exc:
        verifier = log.value.decode(errors="replace").strip().splitlines()
        raise BackendError(f"the kernel refused the [[wire]] bpf program: {exc.strerror}"
                           + (f" ({verifier[-1]})" if verifier else "")) from None


def set_bpf(netns: str, device: str, spec: BpfSpec | None, *, ingress: bool) -> None:
    """Make `spec` what `device`'s hook (`ingress`, else egress) does: the filter replaced or
    removed, the TBF root qdisc replaced or removed. None removes both."""
    from pyroute2.netlink.exceptions import NetlinkError

    spec = spec or BpfSpec()
    with _ns(netns) as ns:
        idx = _index(ns, device)
        try:
            _set_filter(ns, idx, spec.program, ingress)
            if not ingress:
                _set_tbf(ns, idx, spec.rate)
        except NetlinkError as exc:
            raise BackendError(f"cannot set the [[wire]] bpf fallback on {device}: "
                               f"{exc}") from None


def _set_filter(ns: object, idx: int, program: WireProgram | None, ingress: bool) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    parent = CLSACT_INGRESS if ingress else CLSACT_EGRESS
    tc = ns.tc  # type: ignore[attr-defined]
    if program is None:
        with contextlib.suppress(NetlinkError):  # no filter (or no clsact): nothing to remove
            tc("del-filter", "bpf", index=idx, handle=FILTER_HANDLE, parent=parent,
               prio=FILTER_PRIO, protocol=ETH_P_ALL)
        return
    with contextlib.suppress(NetlinkError):  # EEXIST: the device has its clsact already
        tc("add", "clsact", index=idx)
    fd = load(program)
    try:
        tc("replace-filter", "bpf", index=idx, handle=FILTER_HANDLE, parent=parent,
           prio=FILTER_PRIO, protocol=ETH_P_ALL, fd=fd, name="t6l_wire", classid=1,
           direct_action=True)
    finally:
        os.close(fd)  # the filter holds the program now


def _set_tbf(ns: object, idx: int, rate: float | None) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    tc = ns.tc  # type: ignore[attr-defined]
    if rate is None:
        with contextlib.suppress(NetlinkError):
            tc("del", index=idx, handle=0, parent=TC_H_ROOT)
        return
    burst = max(2 * 1514, int(rate / 8 / 100))  # at least two frames, or 10 ms at the rate
    tc("replace", "tbf", index=idx, handle="1:", parent=TC_H_ROOT, rate=f"{int(rate)}bit",
       burst=burst, latency=TBF_LATENCY_US)


def filters(netns: str, device: str, *, ingress: bool) -> list[str]:
    """The kinds of the filters on `device`'s clsact hook (for tests and diagnostics)."""
    from pyroute2.netlink.exceptions import NetlinkError

    with _ns(netns) as ns:
        idx = ns.link_lookup(ifname=device)
        if not idx:
            return []
        try:
            got = ns.get_filters(index=idx[0],
                                 parent=CLSACT_INGRESS if ingress else CLSACT_EGRESS)
        except NetlinkError:
            return []
        return [str(m.get_attr("TCA_KIND")) for m in got if m.get_attr("TCA_OPTIONS")]
