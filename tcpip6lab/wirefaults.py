"""A plan's `[[wire]]` faults on TAP and veth devices: netem qdiscs, changed at window edges.

`WireFaults.prepare` (before the host runs) checks that the kernel has netem and, on TAP, gives
each adapter whose emulated host's transmissions ("out") a fault may shape an IFB device with its
ingress redirect (ndisemu.backends.netem). `WireFaults.run` is a trio task in serve's nursery: at
each edge of the plan's windows (faults.netem.edges, `heal_at` included) it computes every
adapter's spec per direction and replaces or removes the qdiscs that change. Each change is one
`wire.netem` trace event and one line on serve's output. The qdiscs and IFBs go with the devices
at exit (and with `tcpip6-lab cleanup` after a crash: the IFBs are in the state file).

On a kernel without netem (`netem.kernel_has_netem()`, asked once) the same edges drive the BPF
fallback instead (ndisemu.backends.bpf): an eBPF classifier for loss/duplicate/corrupt on the
clsact hook of the device and direction netem would shape — TAP "out" on the TAP's own ingress
hook, so no IFB — and TBF for `rate`; serve has refused what it cannot do before anything was
made (faults.netem.check_bpf_plan). Same `wire.netem` events, with "bpf …" as the qdisc text.
"""

from __future__ import annotations

from typing import IO, Any

import trio

from faults import netem as plan_netem
from faults.plan import FaultPlan
from ndisemu.backends import bpf, netem
from ndisemu.backends.topology import Site, Topology
from ndisemu.kernel import Kernel

Spec = netem.NetemSpec | bpf.BpfSpec | None


def check_plan(plan: FaultPlan | None, backend: str) -> None:
    """Refuse, in one line and before anything is made, the `[[wire]]` faults this kernel
    cannot carry out on `backend`: netem's limits, and without netem the BPF fallback's."""
    if plan is None or backend == "memory" or not plan.of_kind("wire"):
        plan_netem.check_real_plan(plan, backend)
        return
    plan_netem.check_real_plan(plan, backend, netem=netem.kernel_has_netem())


class WireFaults:
    def __init__(self, topology: Topology, kernel: Kernel, plan: FaultPlan,
                 out: IO[str] | None = None) -> None:
        self.topology = topology
        self.kernel = kernel
        self.plan = plan
        self.out = out
        self.current: dict[tuple[str, str], Spec] = {}
        self.changes: list[tuple[float, str, str, Spec]] = []
        self.netem = True  # False: the kernel has none, the BPF fallback shapes (prepare)

    @property
    def active(self) -> bool:
        return bool(self.plan.of_kind("wire"))

    def prepare(self) -> None:
        """Probe netem (without it: the BPF fallback) and make the IFBs TAP needs."""
        if not self.active:
            return
        self.netem = netem.kernel_has_netem()
        if not self.netem:
            plan_netem.check_bpf_plan(self.plan, self.topology.backend)
            return
        sites = list(self.topology.sites.values())
        if sites:
            netem.probe_netem(sites[0].netns, sites[0].device)
        for site in sites:
            self._ifb(site)

    def _ifb(self, site: Site) -> None:
        if self.topology.backend != "tap" or site.ifb is not None:
            return
        if not plan_netem.needs_direction(self.plan, site.spec.adapter, "out"):
            return
        name = site.device + "i"
        self.topology.registry.claim_link(name)  # recorded before it exists
        netem.add_ifb(site.netns, site.device, name)
        site.ifb = name

    def device_for(self, site: Site, direction: str) -> tuple[str, str]:
        """(namespace, device) whose transmissions are `direction` of this adapter's wire (BPF
        fallback on TAP "out": the TAP device, whose ingress hook sees them first)."""
        if direction == "in" or (not self.netem and self.topology.backend == "tap"):
            return site.netns, site.device
        if self.topology.backend == "veth":
            assert self.topology.emu_netns is not None and site.emu_device is not None
            return self.topology.emu_netns, site.emu_device
        self._ifb(site)  # an adapter whose device was made late
        assert site.ifb is not None
        return site.netns, site.ifb

    def apply(self, t: float) -> None:
        """Put every adapter's qdiscs in the state the plan wants at plan time `t`."""
        for adapter, site in sorted(self.topology.sites.items()):
            for direction in plan_netem.DIRECTIONS:
                ingress = direction == "out" and self.topology.backend == "tap"
                spec: Spec = plan_netem.spec_at(self.plan, t, adapter, direction) \
                    if self.netem else plan_netem.bpf_spec_at(self.plan, t, adapter, direction,
                                                              ingress=ingress)
                key = (adapter, direction)
                if self.current.get(key) == spec:
                    continue
                ns, dev = self.device_for(site, direction)
                if isinstance(spec, bpf.BpfSpec) or (spec is None and not self.netem):
                    bpf.set_bpf(ns, dev, spec, ingress=ingress)
                else:
                    netem.set_netem(ns, dev, spec)
                self.current[key] = spec
                self.changes.append((t, adapter, direction, spec))
                self._report(t, adapter, direction, dev, spec)

    def _report(self, t: float, adapter: str, direction: str, dev: str, spec: Spec) -> None:
        """One trace event and one line. The line's time is the edge's: `run` applies it when
        the kernel's time is `t`, while `kernel.now` is stale if the dispatcher is asleep."""
        what = spec.describe() if spec is not None else "removed"
        tracer = self.kernel.tracer
        if tracer.enabled:
            fields: dict[str, Any] = {"adapter": adapter, "direction": direction,
                                      "device": dev, "qdisc": what}
            tracer.emit("wire.netem", **fields)
        if self.out is not None:
            self.out.write(f"t={t:7.1f}s  {adapter} {direction} ({dev}): "
                           f"{what}\n")
            self.out.flush()

    async def run(self) -> None:
        """Until cancelled: the qdiscs change at each window edge, on the kernel's timeline."""
        if not self.active:
            return
        for edge in plan_netem.edges(self.plan):
            await trio.sleep_until(self.kernel.trio_time(edge))
            self.apply(edge)
        await trio.sleep_forever()
