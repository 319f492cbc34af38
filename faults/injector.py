"""The fault injector: carries out a FaultPlan on one emulated host.

It plugs into the hooks the emulation offers (ndisemu never imports faults/): a miniport's
request hook, a wire's frame hook, the kernel's work-item allocation hook, and plain timers for
queue holds and PnP events. Every decision is drawn from the fault's own generator, seeded with a
stable digest of (root seed, fault id) — never Python's hash() — so adding a fault leaves the
others' draws alone, and the same seed and plan replay bit for bit. Every firing is traced as
`fault.fired` with the fault, the site and the decision.

At `heal_at` the plan is over: nothing fires any more, pended requests complete, hung miniports
resume, links come back and holders let go.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ndisemu.backends.memory import MemoryCable
from ndisemu.constants import (
    NDIS_STATUS_MEDIA_CONNECT,
    NDIS_STATUS_MEDIA_DISCONNECT,
    NdisStatus,
    oid_name,
)
from ndisemu.executive.core import WaitObject, WorkItem
from ndisemu.miniport import EmulatedMiniport, MiniportConfig, NdisRequest, RequestFault
from ndisemu.ndis import Ndis
from ndisemu.pnp import Pnp

from .plan import Fault, FaultPlan
from .rng import fault_rng

if TYPE_CHECKING:
    from ndisemu.kernel import Kernel


@dataclass
class FaultState:
    fault: Fault
    rng: random.Random
    matches: int = 0
    fired: int = 0


@dataclass
class FaultInjector:
    plan: FaultPlan
    kernel: Kernel
    seed: int
    ndis: Ndis | None = None
    pnp: Pnp | None = None
    make_config: Callable[[int], MiniportConfig] | None = None  # for pnp bursts
    states: dict[str, FaultState] = field(default_factory=dict)
    healed: bool = False
    firings: Counter[str] = field(default_factory=Counter)
    _held: list[Callable[[], None]] = field(default_factory=list)
    _hung: list[EmulatedMiniport] = field(default_factory=list)
    _down: list[EmulatedMiniport] = field(default_factory=list)
    _heal_hooks: list[Callable[[], None]] = field(default_factory=list)
    _busy_until: dict[tuple[str, str, str], float] = field(default_factory=dict)  # rate

    def __post_init__(self) -> None:
        for f in self.plan.faults:
            self.states[f.id] = FaultState(f, fault_rng(self.seed, f.id))

    # -- wiring -------------------------------------------------------------------------------

    def start(self) -> None:
        """Arm timers (holds, PnP events, heal) and hooks that do not need an adapter."""
        k = self.kernel
        if any(f.kind == "queue" and f.action == "alloc-fail" for f in self.plan.faults):
            k.alloc_hook = self._on_alloc
        for f in self.plan.of_kind("queue"):
            if f.action == "hold":
                k.call_at(float(f.params.get("at", f.trigger.after or 0.0)), self._hold, f)
        for f in self.plan.of_kind("pnp"):
            k.call_at(float(f.params.get("at", f.trigger.after or 0.0)), self._pnp, f)
        if self.plan.heal_at is not None:
            k.call_at(self.plan.heal_at, self.heal)

    def attach_miniport(self, miniport: EmulatedMiniport) -> None:
        if self.plan.of_kind("oid") or self.plan.of_kind("miniport"):
            miniport.fault_hook = self

    def attach_wire(self, wire: MemoryCable) -> None:
        if self.plan.of_kind("wire"):
            wire.fault_hook = self

    # -- the trigger (Linux fault_attr order: nth > count > window > probability) ---------------

    def _should_fire(self, f: Fault, adapter: str | None) -> bool:
        if self.healed or not f.trigger.selects(adapter):
            return False
        st = self.states[f.id]
        st.matches += 1
        t = f.trigger
        now = self.kernel.now
        if t.nth is not None:
            fire = st.matches == t.nth
        elif t.count is not None and st.fired >= t.count:  # noqa: SIM114 - fault_attr order
            fire = False
        elif (t.after is not None and now < t.after) or (t.until is not None and now >= t.until):
            fire = False
        else:
            fire = t.probability >= 1.0 or st.rng.random() < t.probability
        if fire:
            st.fired += 1
            self.firings[f.id] += 1
        return fire

    def _fired(self, f: Fault, site: str, **decision: Any) -> None:
        tracer = self.kernel.tracer
        if tracer.enabled:
            tracer.emit("fault.fired", fault=f.id, kind=f.kind, action=f.action, site=site,
                        n=self.states[f.id].fired, **decision)

    # -- OID and miniport faults (MiniportFaultHook) ------------------------------------------

    def on_request(self, miniport: EmulatedMiniport, req: NdisRequest) -> RequestFault | None:
        adapter = miniport.name
        for f in self.plan.of_kind("miniport"):
            if self._should_fire(f, adapter):
                self._fired(f, adapter, req=req.id, oid=oid_name(req.oid))
                self._miniport_action(f, miniport)
        for f in self.plan.of_kind("oid"):
            if f.oid is not None and f.oid != req.oid:
                continue
            if not self._should_fire(f, adapter):
                continue
            if f.action == "delay":
                extra = f.params["delay"].draw(self.states[f.id].rng)
                self._fired(f, adapter, req=req.id, oid=oid_name(req.oid), delay=extra)
                return RequestFault(f.id, "delay", delay=extra)
            status = f.params.get("status")
            self._fired(f, adapter, req=req.id, oid=oid_name(req.oid),
                        status=status.ndis_name if status is not None else None)
            return RequestFault(f.id, f.action, status=status)
        return None

    def hold_until_healed(self, release: Callable[[], None]) -> bool:
        if self.healed:
            return False
        self._held.append(release)
        return True

    def _miniport_action(self, f: Fault, miniport: EmulatedMiniport) -> None:
        k = self.kernel
        if f.action == "hang":
            miniport.hang()
            self._hung.append(miniport)
        elif f.action == "reset" and self.ndis is not None:
            k.queue_dpc(self.ndis.reset_miniport, miniport.name)
            duration = f.params.get("duration")
            if duration:
                miniport.stall(float(duration))
        elif f.action == "surprise-removal" and self.pnp is not None:
            k.queue_dpc(self.pnp.surprise_remove, miniport.name)
        elif f.action == "link-flap":
            self._set_media(miniport, False)
            self._down.append(miniport)
            k.call_later(float(f.params["duration"]), self._link_up, miniport)

    def _set_media(self, miniport: EmulatedMiniport, connected: bool) -> None:
        """The cable out or back (on a real device Linux sees the carrier go), indicated to
        the protocols as the miniport would: NdisMIndicateStatus(MEDIA_DISCONNECT/CONNECT)."""
        if miniport.media_connected == connected:
            return
        miniport.set_media(connected)
        if self.ndis is not None:
            self.ndis.indicate_status(miniport.name, NDIS_STATUS_MEDIA_CONNECT if connected
                                      else NDIS_STATUS_MEDIA_DISCONNECT)

    def _link_up(self, miniport: EmulatedMiniport) -> None:
        if miniport in self._down:
            self._down.remove(miniport)
            self._set_media(miniport, True)

    # -- wire faults (WireFaultHook) -------------------------------------------------------

    def on_frame(self, wire: MemoryCable, direction: str,
                 frame: bytes) -> list[tuple[float, bytes]] | None:
        out: list[tuple[float, bytes]] | None = None
        for f in self.plan.of_kind("wire"):
            want = f.params.get("direction", "both")
            if want != "both" and want != direction:
                continue
            if not self._should_fire(f, wire.name):
                continue
            rng = self.states[f.id].rng
            self._fired(f, wire.name, direction=direction, length=len(frame))
            base = out if out is not None else [(0.0, frame)]
            if f.action == "loss":
                return []
            if f.action == "duplicate":
                out = [*base, *base]
            elif f.action == "corrupt":
                out = [(d, _flip(fr, rng)) for d, fr in base]
            else:  # latency, reorder: this frame is late, so later ones overtake it
                extra = self._lateness(f, rng, wire.name, direction, len(frame))
                out = [(d + extra, fr) for d, fr in base]
        return out

    def _lateness(self, f: Fault, rng: random.Random, wire: str, direction: str,
                  length: int) -> float:
        """How late a latency/reorder fault makes one frame: its delay, ± its jitter (uniform,
        clamped at 0: netem's default jitter), plus, with a `rate`, the time it waits behind
        the frames this fault already let through on this wire and direction and its own
        serialization time (netem's rate). No draw without jitter: the plans that existed
        before jitter replay bit for bit."""
        p = f.params
        extra = p["delay"].draw(rng) if "delay" in p else (0.0 if "rate" in p else 0.001)
        jitter = p.get("jitter")
        if jitter:
            extra = max(0.0, extra + rng.uniform(-jitter, jitter))
        rate = p.get("rate")
        if rate:
            now = self.kernel.now
            key = (f.id, wire, direction)
            start = max(now, self._busy_until.get(key, 0.0))
            done = start + length * 8.0 / float(rate)
            self._busy_until[key] = done
            extra += done - now
        return extra

    # -- executive faults -----------------------------------------------------------------------

    def _on_alloc(self, queue: str, name: str, tags: dict[str, Any]) -> str | None:
        for f in self.plan.of_kind("queue"):
            if f.action != "alloc-fail" or f.params.get("queue", queue) != queue:
                continue
            if self._should_fire(f, tags.get("adapter")):
                self._fired(f, queue, item=name)
                return f.id
        return None

    def _hold(self, f: Fault) -> None:
        """Other drivers' items occupy k workers of a queue for a time (then let go)."""
        if self.healed:
            return
        k = self.kernel
        duration = float(f.params["duration"])
        self.states[f.id].fired += 1
        self.firings[f.id] += 1
        self._fired(f, f.params["queue"], workers=f.params["workers"], duration=duration)
        for i in range(int(f.params["workers"])):
            done = k.create_event("fault.hold_done", fault=f.id, holder=i)

            async def hold(_item: WorkItem, done: Any = done) -> None:
                await k.wait(done)

            k.queue_work_item(f.params["queue"], hold, name="fault.hold",
                              tags={"fault": f.id})
            waker_queue = f.params.get("waker_queue")
            if waker_queue is None:
                k.call_later(duration, k.set_event, done)
                self._heal_hooks.append(_releaser(k, done))
            else:
                # Even the heal lets go through the waker item: nothing else sets the event.
                k.declare_future_signal(done, waker_queue, f"fault {f.id} lets go")
                k.call_later(duration, self._queue_waker, f, waker_queue, done)
                self._heal_hooks.append(self._waker_releaser(f, waker_queue, done))

    def _waker_releaser(self, f: Fault, queue: str, done: WaitObject) -> Callable[[], None]:
        def release() -> None:
            self._queue_waker(f, queue, done)
        return release

    def _queue_waker(self, f: Fault, queue: str, done: WaitObject) -> None:
        """A held item's release needs a worker of `queue`: its waker is a work item there."""
        k = self.kernel
        if done.signaled or not done.future_wakers:
            return  # let go already, or its waker is queued

        async def release(_item: WorkItem) -> None:
            k.set_event(done)

        k.clear_future_signals(done)
        k.queue_work_item(queue, release, name="fault.hold_release", tags={"fault": f.id},
                          signals=(done,))

    def _pnp(self, f: Fault) -> None:
        if self.healed or self.pnp is None:
            return
        self.states[f.id].fired += 1
        self.firings[f.id] += 1
        if f.action == "burst" and self.make_config is not None:
            count = int(f.params["count"])
            first = self.pnp.arrived
            configs = [self.make_config(first + i) for i in range(count)]
            self._fired(f, "pnp", count=count)
            self.pnp.schedule(configs, start=self.kernel.now,
                              interval=float(f.params.get("interval", 0.0)))
        elif f.action == "depart":
            names = [n for n in list(self.pnp.ndis.miniports) if f.trigger.selects(n)]
            self._fired(f, "pnp", adapters=len(names))
            for name in names:
                self.pnp.remove(name)

    # -- the end of the plan ------------------------------------------------------------------

    def heal(self) -> None:
        if self.healed:
            return
        self.healed = True
        if self.kernel.tracer.enabled:
            self.kernel.tracer.emit("fault.heal", held=len(self._held), hung=len(self._hung))
        for m in self._hung:
            m.unhang()
        self._hung.clear()
        down, self._down = self._down, []
        for m in down:
            self._set_media(m, True)
        held, self._held = self._held, []
        for release in held:
            release()
        hooks, self._heal_hooks = self._heal_hooks, []
        for hook in hooks:
            hook()

    @property
    def total_firings(self) -> int:
        return sum(self.firings.values())


def _releaser(kernel: Kernel, done: Any) -> Callable[[], None]:
    def release() -> None:
        kernel.set_event(done)  # setting an already-set event is a no-op
    return release


def _flip(frame: bytes, rng: random.Random) -> bytes:
    """Corrupt one byte past the Ethernet header (so it still reaches the same adapter)."""
    if len(frame) <= 14:
        return frame
    i = rng.randrange(14, len(frame))
    out = bytearray(frame)
    out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


FAILURE_STATUSES = tuple(s for s in NdisStatus if s not in (NdisStatus.SUCCESS,
                                                          NdisStatus.PENDING))
