"""tcpip6's NDIS protocol binder: ProtocolBindAdapter and what follows it.

On each adapter arrival NDIS calls `bind_adapter`. tcpip6 opens the adapter, starts its OID
sequence through the configured executor and returns NDIS_STATUS_PENDING; when the sequence is
done it calls NdisCompleteBindAdapter and the IPv6 interface comes up (nt-model §5).

The bind OID sequence (nt-model §5, rows 1–7 in table order, R tcpip/datalink/lan.c), then the
multicast list (all-nodes and solicited-node MACs, RFC 2464 §7), then the packet filter last:

  1 Q   OID_GEN_MAXIMUM_SEND_PACKETS   5 Q   OID_GEN_MAXIMUM_FRAME_SIZE
  2 Q   OID_802_3_CURRENT_ADDRESS      6 Q   OID_GEN_MAXIMUM_TOTAL_SIZE
  3 Set OID_GEN_CURRENT_LOOKAHEAD      7 Q   OID_GEN_MEDIA_CONNECT_STATUS
  4 Q   OID_GEN_LINK_SPEED             +  Set OID_802_3_MULTICAST_LIST
                                       8 Set OID_GEN_CURRENT_PACKET_FILTER

With `offload` (an extension, off by default: ndisemu/offload.py), two more after row 7: a query
of OID_TCP_TASK_OFFLOAD (what the miniport declares; NOT_SUPPORTED means nothing) and a set of
it (what tcpip6 enables: TCP checksums and large sends for IPv6). NDIS 5.1's own TCP/IP
transport queried and set this OID for IPv4 only (MS ff564239); this tcpip6 doing so is inferred
from the same documented sequence. The interface's stack then leaves TCP checksums partial and
sends large segments only when the miniport declared it could take them.

Receive path (how the hang reaches IPv6 traffic, docs/model.md "receive deferral"): frames that
NDIS indicates to tcpip6 are put on the interface's bounded backlog at DPC level, and tcpip6
processes the backlog in a work item on `rx_queue` (the critical queue by default; inferred —
tcpip6 defers IPv6 work that must run at PASSIVE_LEVEL to the critical queue). The item never
blocks, so it neither serialises binds nor changes where the knot forms; but once the critical
queue is knotted it never runs, and every bound interface — including those bound long before
the storm — stops answering.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from ndisemu import offload as task_offload
from ndisemu.constants import (
    NDIS_STATUS_MEDIA_CONNECT,
    NDIS_STATUS_MEDIA_DISCONNECT,
    NdisStatus,
    Oid,
    PacketFilter,
    RequestType,
    oid_name,
)
from ndisemu.errors import ConfigError as NdisConfigError
from ndisemu.executive.core import WorkItem
from ndisemu.miniport import NdisRequest, parse_ulong, ulong
from ndisemu.ndis import BindContext, Binding, Ndis
from ndisemu.params import CRITICAL, SYSTEM_QUEUES
from ndisemu.rng import SplitMix64

from .counters import Counters
from .errors import ConfigError
from .executors import OidExecutor, Submission
from .stack.context import HostConfig
from .stack.host import Ipv6Host

if TYPE_CHECKING:
    from ndisemu.kernel import Kernel, Timer

#: nt-model §5 rows 1–7, in table order: (OID, request type).
BIND_OIDS_HEAD: tuple[tuple[Oid, RequestType], ...] = (
    (Oid.GEN_MAXIMUM_SEND_PACKETS, RequestType.QUERY),
    (Oid.E802_3_CURRENT_ADDRESS, RequestType.QUERY),
    (Oid.GEN_CURRENT_LOOKAHEAD, RequestType.SET),
    (Oid.GEN_LINK_SPEED, RequestType.QUERY),
    (Oid.GEN_MAXIMUM_FRAME_SIZE, RequestType.QUERY),
    (Oid.GEN_MAXIMUM_TOTAL_SIZE, RequestType.QUERY),
    (Oid.GEN_MEDIA_CONNECT_STATUS, RequestType.QUERY),
)
#: The full sequence tcpip6 sends at bind, as (OID, type).
BIND_OIDS: tuple[tuple[Oid, RequestType], ...] = (
    *BIND_OIDS_HEAD,
    (Oid.E802_3_MULTICAST_LIST, RequestType.SET),
    (Oid.GEN_CURRENT_PACKET_FILTER, RequestType.SET),
)
#: With task offload (the extension): asked after row 7, before the stack is built.
OFFLOAD_OIDS: tuple[tuple[Oid, RequestType], ...] = (
    (Oid.TCP_TASK_OFFLOAD, RequestType.QUERY),
    (Oid.TCP_TASK_OFFLOAD, RequestType.SET),
)
BIND_OIDS_OFFLOAD: tuple[tuple[Oid, RequestType], ...] = (
    *BIND_OIDS_HEAD, *OFFLOAD_OIDS, *BIND_OIDS[len(BIND_OIDS_HEAD):],
)
#: InformationBufferLength of tcpip6's task-offload query (room for a header and two tasks).
OFFLOAD_QUERY_LENGTH: Final = 256
#: Lookahead tcpip6 asks for (inferred: enough for the IPv6 header chain it parses first).
LOOKAHEAD: Final = 128

#: where ProtocolRequestComplete's news reaches tcpip6 (docs/model.md §2, the completion paths):
#: tcpip6's own follow-up item (nt-model §6 candidate 2), NDIS's work item (candidate 1), or
#: the miniport's completion (its NdisScheduleWorkItem item, or DPC)
COMPLETION_PATHS: Final = ("tcpip6", "ndis", "miniport")
PACKET_FILTER: Final = PacketFilter.DIRECTED | PacketFilter.MULTICAST


def _submission(state: Tcpip6Binding, req: NdisRequest,
                on_done: Callable[[Submission, NdisStatus], None]) -> Submission:
    sub = Submission(state, req, on_done)
    req.tags["submission"] = sub  # how request_complete finds it again
    return sub


def _release(sub: Submission) -> None:
    """Break the request <-> submission <-> event <-> item links once tcpip6 knows the result,
    so reference counting frees them (a burst leaves thousands otherwise for the cyclic GC)."""
    sub.request.tags.pop("submission", None)
    sub.request.tags.pop("signals", None)
    if sub.event is not None:
        sub.event.tags.pop("request", None)
    sub.completion_item = None


def _readable(sock: Any) -> bool:
    """A stack socket has something for its reader (datagrams, or data/EOF/error)."""
    readable = getattr(sock, "readable", None)
    if callable(readable):
        return bool(readable())
    return bool(getattr(sock, "queue", None))


class BindPhase(Enum):
    BINDING = "binding"
    UP = "up"
    FAILED = "failed"
    UNBOUND = "unbound"


# The per-frame paths read BindPhase.UP through this name: on CPython 3.11 reading an enum
# member through its class goes through EnumType.__getattr__ (about 900 instructions; gone in
# 3.12), while a Final name is a C static in the wheel (bench/README.md, "fifth round").
_UP: Final = BindPhase.UP


@dataclass(eq=False)
class Tcpip6Binding:
    """tcpip6's per-adapter state (its interface)."""

    adapter: str
    binding: Binding
    ctx: BindContext
    started_at: float
    phase: BindPhase = BindPhase.BINDING
    step: int = 0
    bound_at: float | None = None
    failure: str | None = None
    mac: bytes = b""
    mtu: int = 1500
    link_speed_100bps: int = 0
    media_connected: bool = True
    offload_declared: task_offload.OffloadCaps | None = None  # the miniport's answer
    offload: task_offload.OffloadCaps | None = None  # what tcpip6 enabled (the set succeeded)
    stack: Ipv6Host | None = None
    current: Submission | None = None
    timer: Timer | None = None  # the stack's next deadline, as a kernel timer
    timer_item_queued: bool = False
    mcast_gen: int = 0  # the multicast set programmed into the NIC
    mcast_pending: bool = False
    backlog: list[bytes] = field(default_factory=list)
    rx_item_queued: bool = False
    # the receive item's routine and tags, made once per interface (as a driver initializes
    # its WORK_QUEUE_ITEM's routine and context once and queues it again and again)
    rx_routine: Callable[[WorkItem], Any] | None = None
    rx_tags: dict[str, Any] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counters)


class Tcpip6Binder:
    """The tcpip6 protocol driver (NDIS_PROTOCOL_CHARACTERISTICS handlers)."""

    name = "tcpip6"

    def __init__(
        self,
        kernel: Kernel,
        ndis: Ndis,
        executor: OidExecutor,
        *,
        completion_queue: str = CRITICAL,
        completion_via: str = "tcpip6",
        rx_queue: str = CRITICAL,
        rx_backlog: int = 256,
        on_settled: Callable[[Tcpip6Binding], None] | None = None,
        stack_config: HostConfig | None = None,
        offload: bool = False,
    ) -> None:
        if completion_via not in COMPLETION_PATHS:
            raise ConfigError(f"completion_via must be one of {', '.join(COMPLETION_PATHS)}, "
                              f"not {completion_via!r}")
        for label, q in (("completion queue", completion_queue), ("rx queue", rx_queue)):
            if q not in SYSTEM_QUEUES:
                raise ConfigError(f"{label} must be one of {', '.join(SYSTEM_QUEUES)}, not {q!r}")
        if rx_backlog < 1:
            raise ConfigError("rx_backlog must be >= 1")
        self.kernel = kernel
        self.ndis = ndis
        self.executor = executor
        self.completion_queue = completion_queue
        self.completion_via = completion_via
        self.rx_queue = rx_queue
        self.rx_backlog = rx_backlog
        self.stack_config = stack_config
        # Task offload (extension, module docstring): query and set OID_TCP_TASK_OFFLOAD at bind.
        self.offload = offload
        self.bind_oids = BIND_OIDS_OFFLOAD if offload else BIND_OIDS
        # (condition, trio.Event) of tasks outside the emulation waiting on a socket
        self._waiters: list[tuple[Callable[[], bool], Any]] = []
        self.on_settled = on_settled  # called when a bind ends (up or failed)
        self.on_up: list[Callable[[str], None]] = []  # called with each adapter that comes up
        #: called with each adapter whose interface ends (its adapter removed): the services
        #: and applications on it stop
        self.on_down: list[Callable[[str], None]] = []
        self.interfaces: dict[str, Tcpip6Binding] = {}
        self.counters: Counter[str] = Counters()
        self.bound = 0  # interfaces up
        self.failed = 0  # binds that failed
        self.unbound = 0  # interfaces (or binds in progress) ended by the adapter's removal
        executor.attach(self)

    # -- NDIS protocol handlers ------------------------------------------------------------

    def bind_adapter(self, ctx: BindContext) -> NdisStatus:
        binding = self.ndis.open_adapter(self, ctx.adapter)
        state = Tcpip6Binding(ctx.adapter, binding, ctx, self.kernel.now)
        binding.context = state
        self.interfaces[ctx.adapter] = state
        self._trace("tcpip6.bind.start", adapter=ctx.adapter)
        self._submit_next(state)
        return NdisStatus.PENDING

    def unbind_adapter(self, binding: Binding) -> None:
        state: Tcpip6Binding | None = binding.context
        if state is None:
            return
        if state.phase is BindPhase.UNBOUND:
            return
        if state.phase is BindPhase.UP:
            self.bound -= 1
        elif state.phase is BindPhase.FAILED:
            self.failed -= 1
        was_binding = state.phase is BindPhase.BINDING
        state.phase = BindPhase.UNBOUND
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        self.unbound += 1
        if was_binding and state.ctx.status is NdisStatus.PENDING:
            # The bind ends with the adapter: cleanly, not stuck (NdisCompleteBindAdapter).
            self.ndis.complete_bind_adapter(state.ctx, NdisStatus.ADAPTER_REMOVED)
        if self.on_settled is not None:
            self.on_settled(state)
        if state.stack is not None:
            state.stack.close()  # frees it now, cycles and all (storms run without cyclic GC)
        state.stack = None
        state.backlog.clear()
        self._trace("tcpip6.unbind", adapter=state.adapter)
        for down in list(self.on_down):
            down(state.adapter)
        if self._waiters:
            self._wake_waiters()  # a task waiting on the interface's sockets sees it gone

    def request_complete(self, binding: Binding, request: NdisRequest,
                         status: NdisStatus) -> None:
        """ProtocolRequestComplete. completion_via="tcpip6": called at DPC level, tcpip6 learns
        of the result in its follow-up work item. "ndis": called in NDIS's work item, and
        "miniport": called wherever the miniport completes (its own work item, or at DPC) —
        in both tcpip6 sets its event right here, as ReactOS's tcpip does (R lan.c:41-90)."""
        sub: Submission | None = request.tags.get("submission")
        if sub is None:
            return
        if self.completion_via != "tcpip6":
            self.executor.completed(sub)
            return

        async def oid_complete(_item: WorkItem) -> None:
            self.executor.completed(sub)

        sub.completion_item = self.executor.queue_completion(sub, oid_complete)

    def status(self, binding: Binding, status: int) -> None:
        """ProtocolStatus: the adapter's media went away or came back (NdisMIndicateStatus).
        The interface keeps its addresses (Windows keeps a disconnected interface's
        configuration for a while; tcpip6 only counts the events here — inferred, the sources
        are silent on what tcpip6 does beyond that)."""
        state: Tcpip6Binding | None = binding.context
        if state is None or state.phase is BindPhase.UNBOUND:
            return
        if status == NDIS_STATUS_MEDIA_DISCONNECT:
            state.media_connected = False
            state.counters["media_disconnect"] += 1
        elif status == NDIS_STATUS_MEDIA_CONNECT:
            state.media_connected = True
            state.counters["media_connect"] += 1
        else:
            return
        self._trace("tcpip6.media", adapter=state.adapter, connected=state.media_connected)

    def receive(self, binding: Binding, frame: bytes) -> None:
        """ProtocolReceive at DPC level: backlog the frame, defer processing to a work item."""
        state: Tcpip6Binding | None = binding.context
        if state is None or state.phase is not _UP:
            self.counters["rx_drop_not_up"] += 1
            return
        if len(state.backlog) >= self.rx_backlog:
            state.counters["rx_drop_backlog_full"] += 1
            return
        state.backlog.append(frame)
        if not state.rx_item_queued:
            state.rx_item_queued = True
            routine = state.rx_routine
            if routine is None:
                routine = state.rx_routine = self._rx_routine(state)
                state.rx_tags = {"adapter": state.adapter}
            self.kernel.queue_work_item(self.rx_queue, routine, name="tcpip6.receive",
                                        tags=state.rx_tags)

    # -- bind sequence ------------------------------------------------------------------------

    def _stack_config(self, state: Tcpip6Binding) -> HostConfig | None:
        """The interface's stack settings: the binder's, plus the offloads enabled at bind."""
        caps = state.offload
        if caps is None:
            return self.stack_config
        lso = caps.lso_max_size if caps.tx_tcp_checksum_v6 else 0  # LSO needs TX checksums
        return replace(self.stack_config or HostConfig(),
                       tx_checksum_offload=caps.tx_tcp_checksum_v6, lso_max_size=lso,
                       lso_min_segments=caps.lso_min_segments)

    def _build_request(self, state: Tcpip6Binding, oid: Oid, rtype: RequestType) -> NdisRequest:
        if rtype is RequestType.QUERY:
            if oid == Oid.TCP_TASK_OFFLOAD:
                return NdisRequest(rtype, oid, task_offload.query_header(),
                                   query_length=OFFLOAD_QUERY_LENGTH)
            return NdisRequest(rtype, oid)
        if oid == Oid.GEN_CURRENT_LOOKAHEAD:
            return NdisRequest(rtype, oid, ulong(LOOKAHEAD))
        if oid == Oid.TCP_TASK_OFFLOAD:
            assert state.offload_declared is not None
            want = task_offload.enable(state.offload_declared)
            state.offload = want
            return NdisRequest(rtype, oid, task_offload.pack(want))
        if oid == Oid.E802_3_MULTICAST_LIST:
            stack = Ipv6Host(state.mac, state.mtu, config=self._stack_config(state),
                             rng=SplitMix64(f"ipv6:{self.kernel.seed}:{state.adapter}"))
            state.stack = stack
            state.mcast_gen = stack.multicast_generation
            return NdisRequest(rtype, oid, b"".join(stack.multicast_macs()))
        if oid == Oid.GEN_CURRENT_PACKET_FILTER:
            return NdisRequest(rtype, oid, ulong(int(PACKET_FILTER)))
        raise AssertionError(f"no builder for {oid_name(oid)}")  # pragma: no cover

    def _submit_next(self, state: Tcpip6Binding) -> None:
        if state.phase is not BindPhase.BINDING:
            return
        oids = self.bind_oids
        if (state.step < len(oids) and state.offload_declared is None
                and oids[state.step] == (Oid.TCP_TASK_OFFLOAD, RequestType.SET)):
            state.step += 1  # nothing declared: nothing to enable
        if state.step >= len(oids):
            self._up(state)
            return
        oid, rtype = oids[state.step]
        req = self._build_request(state, oid, rtype)
        sub = state.current = _submission(state, req, self._oid_done)
        self.executor.submit(sub)

    def _oid_done(self, sub: Submission, status: NdisStatus) -> None:
        state = sub.state
        req = sub.request
        state.current = None
        _release(sub)
        if state.phase is not BindPhase.BINDING:
            return
        if self.kernel.tracer.wants("tcpip6.oid.done"):
            self._trace("tcpip6.oid.done", adapter=state.adapter, oid=oid_name(req.oid),
                        status=status.ndis_name)
        if req.oid == Oid.TCP_TASK_OFFLOAD:
            self._absorb_offload(state, req, status)
        elif status is not NdisStatus.SUCCESS:
            self._fail(state, f"{req.label} failed with {status.ndis_name}")
            return
        elif req.type is RequestType.QUERY:
            self._absorb(state, req)
        state.step += 1
        self._submit_next(state)

    @staticmethod
    def _absorb_offload(state: Tcpip6Binding, req: NdisRequest, status: NdisStatus) -> None:
        """Task offload is optional: a miniport without it (NOT_SUPPORTED, or an answer tcpip6
        cannot read) or a refused set leaves the interface without offloads, never unbound."""
        if req.type is RequestType.SET:
            if status is not NdisStatus.SUCCESS:
                state.offload = None
            return
        state.offload_declared = None
        if status is NdisStatus.SUCCESS:
            try:
                caps = task_offload.parse(bytes(req.data))
            except NdisConfigError:
                return
            if caps.tx_tcp_checksum_v6 or caps.rx_tcp_checksum_v6 or caps.large_send:
                state.offload_declared = caps

    @staticmethod
    def _absorb(state: Tcpip6Binding, req: NdisRequest) -> None:
        if req.oid == Oid.E802_3_CURRENT_ADDRESS:
            state.mac = bytes(req.data[:6])
        elif req.oid == Oid.GEN_MAXIMUM_FRAME_SIZE:
            state.mtu = parse_ulong(req.data)
        elif req.oid == Oid.GEN_LINK_SPEED:
            state.link_speed_100bps = parse_ulong(req.data)
        elif req.oid == Oid.GEN_MEDIA_CONNECT_STATUS:
            state.media_connected = parse_ulong(req.data) == 0

    def _up(self, state: Tcpip6Binding) -> None:
        state.phase = BindPhase.UP
        state.bound_at = self.kernel.now
        self.bound += 1
        self.ndis.complete_bind_adapter(state.ctx, NdisStatus.SUCCESS)
        self._trace("tcpip6.interface.up", adapter=state.adapter)
        if state.stack is not None:
            self._after_stack(state, state.stack.start(self.kernel.now))
        for hook in self.on_up:
            hook(state.adapter)
        if self.on_settled is not None:
            self.on_settled(state)

    def _fail(self, state: Tcpip6Binding, reason: str) -> None:
        state.phase = BindPhase.FAILED
        state.failure = reason
        self.failed += 1
        self.ndis.close_adapter(state.binding)
        self.ndis.complete_bind_adapter(state.ctx, NdisStatus.FAILURE)
        self._trace("tcpip6.bind.failed", adapter=state.adapter, reason=reason)
        if self.on_settled is not None:
            self.on_settled(state)

    # -- receive processing --------------------------------------------------------------------

    def _rx_routine(self, state: Tcpip6Binding) -> Callable[[WorkItem], Any]:
        async def receive(_item: WorkItem) -> None:
            # The item drains the whole backlog: a frame indicated while it is queued (or
            # running) joins the backlog and costs no work item, no hop of its own. The
            # replies go out after the batch, in the order of the frames that caused them.
            # The stack takes them as one batch (TCP acknowledges a batch's data once).
            stack = state.stack
            frames = state.backlog
            out: list[bytes] = []
            try:
                if frames:  # taken whole: the next frame starts a new backlog
                    state.backlog = []
                    if stack is not None:
                        out = stack.handle_batch(frames, self.kernel.now)
            finally:
                state.rx_item_queued = False
            if stack is not None and state.phase is _UP:
                self._after_stack(state, out)

        return receive

    # -- the stack's timers and multicast changes ------------------------------------------------

    def after_stack(self, state: Tcpip6Binding, frames: list[bytes]) -> None:
        """For socket calls made into the stack: send, re-arm, wake (see _after_stack)."""
        self._after_stack(state, frames)

    def _after_stack(self, state: Tcpip6Binding, frames: list[bytes]) -> None:
        """After any call into the stack: send, log, re-arm its timer, and reprogram the NIC's
        multicast list when the stack's groups changed."""
        for frame in frames:
            self.ndis.send(state.binding, frame)
        stack = state.stack
        if stack is None:
            return
        tracer = self.kernel.tracer
        events = stack.pop_events()
        if tracer.enabled:
            for ev in events:
                tracer.emit("tcpip6." + ev.kind, adapter=state.adapter,
                            address=ev.address.hex() if ev.address else None, detail=ev.detail)
        self._arm(state)
        if stack.multicast_generation != state.mcast_gen and not state.mcast_pending:
            self._reprogram_multicast(state)
        stack.pop_tcp_ready()  # the waiters below re-check the sockets' own flags
        if self._waiters:
            self._wake_waiters()

    def wake_when(self, condition: Callable[[], bool], event: Any) -> None:
        """Set `event` (a trio.Event of a task outside the emulation) once `condition()` holds;
        checked after every call into the stack."""
        self._waiters.append((condition, event))
        self._wake_waiters()

    def forget_waiter(self, event: Any) -> None:
        """Drop `event`'s wait (its task was cancelled before the condition held), so waits
        abandoned on a departed interface do not pile up."""
        self._waiters = [(c, e) for c, e in self._waiters if e is not event]

    @property
    def waiters(self) -> int:
        """Tasks outside the emulation waiting on a condition of the stack."""
        return len(self._waiters)

    def wake_on_data(self, sock: Any, event: Any) -> None:
        """Set `event` when the datagram socket `sock` has data (or is closed)."""
        self.wake_when(lambda: _readable(sock) or bool(sock.closed), event)

    def _wake_waiters(self) -> None:
        keep = []
        for condition, event in self._waiters:
            if condition():
                event.set()
            else:
                keep.append((condition, event))
        self._waiters = keep

    def _arm(self, state: Tcpip6Binding) -> None:
        stack = state.stack
        deadline = stack.next_deadline() if stack is not None else None
        if state.timer is not None:
            if deadline is not None and state.timer.when == deadline:
                return
            state.timer.cancel()
            state.timer = None
        if deadline is not None:
            state.timer = self.kernel.call_at(deadline, self._timer_dpc, state)

    def _timer_dpc(self, state: Tcpip6Binding) -> None:
        """tcpip6's timer DPC defers the stack's timer work to the same work queue as its
        receive processing (inferred, docs/model.md): a knotted queue freezes DAD, NUD, MLD."""
        state.timer = None
        if state.timer_item_queued or state.phase is not _UP:
            return
        state.timer_item_queued = True

        async def ipv6_timer(_item: WorkItem) -> None:
            state.timer_item_queued = False
            if state.stack is not None and state.phase is _UP:
                self._after_stack(state, state.stack.handle_timer(self.kernel.now))

        self.kernel.queue_work_item(self.rx_queue, ipv6_timer, name="tcpip6.timer",
                                    tags={"adapter": state.adapter})

    def _reprogram_multicast(self, state: Tcpip6Binding) -> None:
        """New addresses, new solicited-node groups: set OID_802_3_MULTICAST_LIST again, through
        the same executor as the bind's OIDs."""
        stack = state.stack
        assert stack is not None
        gen = stack.multicast_generation
        req = NdisRequest(RequestType.SET, Oid.E802_3_MULTICAST_LIST,
                          b"".join(stack.multicast_macs()))
        state.mcast_pending = True

        def done(sub: Submission, status: NdisStatus) -> None:
            state.mcast_pending = False
            if status is NdisStatus.SUCCESS:
                state.mcast_gen = gen
            self._trace("tcpip6.multicast.set", adapter=state.adapter, status=status.ndis_name)
            if state.stack is not None and state.stack.multicast_generation != state.mcast_gen \
                    and status is NdisStatus.SUCCESS:
                self._reprogram_multicast(state)

        self.submit_oid(state.adapter, req, done)

    def submit_oid(self, adapter: str, request: NdisRequest,
                   on_done: Callable[[Submission, NdisStatus], None]) -> Submission:
        """Issue one more OID request on an interface through tcpip6's executor, as the bind's
        own are; ``on_done(submission, status)`` runs where tcpip6 learns the result."""
        state = self.interfaces.get(adapter)
        if state is None:
            raise ConfigError(f"tcpip6 has no interface {adapter!r}")
        sub = _submission(state, request, on_done)
        self.executor.submit(sub)
        return sub

    # -- observation ------------------------------------------------------------------------------

    def _trace(self, event: str, **fields: Any) -> None:
        tracer = self.kernel.tracer
        if tracer.enabled:
            tracer.emit(event, **fields)
