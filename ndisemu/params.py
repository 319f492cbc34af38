"""Model parameters of the emulated NT 5.2 executive, each with its default and its source.

Sources are the reference notes (``shared/reference/nt-model.md``):
  W = Windows Research Kernel 1.2 (Server 2003 SP1 kernel), ``base/ntos/``;
  R = ReactOS r71987. Every number the emulation relies on is a field here, never a literal
in the mechanics, so a user can move it and a test can compute thresholds from it.
"""

from __future__ import annotations

import numbers
import operator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

from .errors import ConfigError

CRITICAL: Final = "critical"
DELAYED: Final = "delayed"
HYPERCRITICAL: Final = "hypercritical"
SYSTEM_QUEUES = (CRITICAL, DELAYED, HYPERCRITICAL)
#: How many of the latest entries each history of a host keeps (heartbeat beats, PnP arrivals
#: and removals, ping round trips, stall episodes); older ones are only counted. Our choice, not
#: an NT number: a long-running host needs bounded memory (issue 21's soak checks it).
HISTORY_KEPT: Final = 1024
#: ExecutiveParams.insert_growth: the balance manager's wake-ups (WRK) or the old inline growth
INSERT_GROWTH = ("manager", "inline")


def check_field_types(obj: Any) -> None:
    """Make a (frozen) dataclass's ``int`` fields plain ints and check its ``bool`` and
    ``float`` fields, naming the field in a ConfigError. The compiled modules (a wheel's)
    check argument types at run time: ``seed=3.0`` or a NumPy integer would be a TypeError
    there but run as pure Python, and ``seed=True`` would be seeded as 1 there and as "True"
    here — so values are settled before either sees them. Integers for floats are left as
    they are (both builds treat them alike)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.type == "int":
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(f"{f.name} must be an integer (got {value!r})")
            object.__setattr__(obj, f.name, operator.index(value))
        elif f.type == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{f.name} must be true or false (got {value!r})")
        elif f.type == "float" and (isinstance(value, bool)
                                    or not isinstance(value, numbers.Real)):
            raise ConfigError(f"{f.name} must be a number (got {value!r})")


@dataclass(frozen=True)
class ExecutiveParams:
    # Critical static threads on a server with a Large system: 10.
    # W ex/worker.c:75-80,308-344 (ExpWorkerInitialization); server = NtAs, mm/mminit.c:1688-1703.
    critical_static: int = 10
    # HKLM\...\Session Manager\Executive\AdditionalCriticalWorkerThreads, clamped to 16.
    # W ex/worker.c:111-112,350-356.
    additional_critical: int = 0
    # Delayed: 3 + 4 = 7 on any system size. W ex/worker.c:419-459.
    delayed_static: int = 7
    # AdditionalDelayedWorkerThreads, clamped to 16. W ex/worker.c:111-112,350-356.
    additional_delayed: int = 0
    # HyperCritical: 1. W ex/worker.c:419-459.
    hypercritical_static: int = 1
    # MAX_ADDITIONAL_DYNAMIC_THREADS = 16 per queue. W ex/worker.c:76,256,813.
    max_dynamic: int = 16
    # KeInitializeQueue(q, 0) -> MaximumCount = KeNumberProcessors. W ke/queueobj.c:23-76.
    # The eager-growth predicate compares running (unblocked) threads with it.
    cpus: int = 2
    # THREAD_SET_INTERVAL: the balance-set manager's 1 s periodic timer. W ex/worker.c:92.
    balance_period: float = 1.0
    # Dynamic threads exit after 10 min idle (KeRemoveQueue timeout). W ex/worker.c:86,1028-1036.
    dynamic_idle_exit: float = 600.0
    # MakeThreadsAsNecessary is set only for the critical queue: growth on insert.
    # W ex/worker.c:387-396,558-565,229-283.
    eager_critical_growth: bool = True
    # How an insert's growth happens. "manager" (WRK): the insert only sets
    # ExpThreadSetManagerEvent when ExpNewThreadNecessary holds (W ex/worker.c:558-565); the
    # balance manager, when it runs, re-checks the predicate and creates at most one thread
    # per wake (ExpCheckDynamicThreadCount, :229-283,721-771), so inserts made before it runs
    # coalesce. "inline": the model's old eager growth, a thread created inside the insert.
    insert_growth: str = "manager"
    # The balance manager thread's priority: 14. W ex/worker.c:611-612. It preempts an inserter
    # running at a lower priority at once, but not a DPC (nor a hypercritical worker, 15).
    manager_priority: int = 14
    # Clamp applied to the Additional*WorkerThreads registry values. W ex/worker.c:350-356.
    registry_clamp: int = 16

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("critical_static", "delayed_static", "hypercritical_static"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("additional_critical", "additional_delayed", "max_dynamic"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.insert_growth not in INSERT_GROWTH:
            raise ConfigError(f"insert_growth must be one of {', '.join(INSERT_GROWTH)} "
                              f"(got {self.insert_growth!r})")
        if self.cpus < 1:
            raise ConfigError(f"cpus must be >= 1 (got {self.cpus})")
        if self.balance_period <= 0:
            raise ConfigError(f"balance_period must be > 0 (got {self.balance_period})")
        if self.dynamic_idle_exit <= 0:
            raise ConfigError(f"dynamic_idle_exit must be > 0 (got {self.dynamic_idle_exit})")

    def static_threads(self, queue: str) -> int:
        """Static threads of a system queue, registry extras included (clamped as NT does)."""
        clamp = self.registry_clamp
        if queue == CRITICAL:
            return self.critical_static + min(self.additional_critical, clamp)
        if queue == DELAYED:
            return self.delayed_static + min(self.additional_delayed, clamp)
        if queue == HYPERCRITICAL:
            return self.hypercritical_static
        raise ConfigError(f"unknown system queue {queue!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QueueSpec:
    """How one executive queue behaves. System queues are built from ExecutiveParams; drivers
    may create private queues (a driver's own threads) with no dynamic growth."""

    name: str
    static_threads: int
    max_dynamic: int = 0
    eager_growth: bool = False
    balanced: bool = False  # visited by the balance-set manager's tick
    priority: int = 13  # absolute priority; W ex/worker.c:67-69,913-942 -> 12/13/15
    concurrency: int = 0  # KQUEUE MaximumCount; 0 = the CPU count
    # PsCreateSystemThread semantics: a fresh thread per item, gone when the item returns
    # (a driver's own bind thread). Such a queue has no static threads and no concurrency gate.
    thread_per_item: bool = False
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def max_threads(self) -> int:
        return self.static_threads + self.max_dynamic


def system_queue_specs(p: ExecutiveParams) -> list[QueueSpec]:
    """The three NT system work queues. Priorities: critical 13, delayed 12, hypercritical 15
    (W ex/worker.c:67-69 increments on base 8)."""
    return [
        QueueSpec(CRITICAL, p.static_threads(CRITICAL), p.max_dynamic,
                  eager_growth=p.eager_critical_growth, balanced=True, priority=13),
        QueueSpec(DELAYED, p.static_threads(DELAYED), p.max_dynamic, balanced=True, priority=12),
        QueueSpec(HYPERCRITICAL, p.static_threads(HYPERCRITICAL), p.max_dynamic,
                  balanced=True, priority=15),
    ]
