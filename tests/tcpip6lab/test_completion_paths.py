"""Each completion path × each queue: where a pended OID's completion needs a worker, and
whether a burst knots (docs/model.md §2, "Completion paths"). The cliff of a knotting
combination is computed from the parameters; the combinations the table says cannot knot bind
well past it."""

from __future__ import annotations

import pytest

from ndisemu.params import SYSTEM_QUEUES
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm

SEEDS = range(20)

#: (completion_via, miniport_completion): the four ways tcpip6 can learn of a completion
PATHS = [("tcpip6", "workitem"), ("ndis", "workitem"), ("miniport", "workitem"),
         ("miniport", "dpc")]

#: the item that runs the completion on the completion queue, per path (None: no item, DPC)
WAKER = {("tcpip6", "workitem"): "tcpip6.oid_complete",
         ("ndis", "workitem"): "ndis.request_complete",
         ("miniport", "workitem"): "miniport.complete_request",
         ("miniport", "dpc"): None}


def knots(via: str, miniport: str, queue: str) -> bool:
    """The table's rule: a completion that needs a worker of the critical queue — the queue
    the blocked submissions hold — knots; any other queue, or DPC, cannot."""
    return WAKER[(via, miniport)] is not None and queue == "critical"


def cliff(p: ModelParams) -> int:
    ex = p.executive
    return ex.critical_static + min(ex.additional_critical, 16) + ex.max_dynamic - p.foreign_holders


def params(via: str, miniport: str, queue: str) -> ModelParams:
    return ModelParams(completion_via=via, miniport_completion=miniport, completion_queue=queue)


@pytest.mark.parametrize("queue", SYSTEM_QUEUES)
@pytest.mark.parametrize("path", PATHS, ids=lambda p: "-".join(p))
def test_each_path_and_queue_knots_at_the_cliff_or_never(path: tuple[str, str],
                                                         queue: str) -> None:
    via, miniport = path
    p = params(via, miniport, queue)
    n = cliff(p)
    if knots(via, miniport, queue):
        for seed in SEEDS:
            below = run_storm(StormConfig(adapters=n - 1, params=p, seed=seed))
            assert below["outcome"] == "bound", (seed, below["outcome"])
            assert below["adapters_bound"] == below["ipv4_bound"] == n - 1
            at = run_storm(StormConfig(adapters=n, params=p, seed=seed))
            assert at["outcome"] == "deadlock", (seed, at["outcome"])
            dl = at["deadlock"]
            assert isinstance(dl, dict)
            wakers = {link["waits_on"].split("#")[0] for link in dl["chain"] if link["adapter"]}
            assert wakers == {WAKER[path]}, (seed, wakers)
            # IPv4: untouched only where tcpip6 alone defers its completions (the KB's case).
            if via == "tcpip6":
                assert at["ipv4_bound"] == n
            else:
                assert at["ipv4_bound"] < n
    else:
        for seed in range(3):
            for count in (n, 3 * n):
                r = run_storm(StormConfig(adapters=count, params=p, seed=seed))
                assert r["outcome"] == "bound", (seed, count, r["outcome"])
                assert r["adapters_bound"] == r["ipv4_bound"] == count


def test_the_miniport_path_really_completes_from_its_own_work_items() -> None:
    n = 30
    item = run_storm(StormConfig(adapters=n, params=params("miniport", "workitem", "delayed")))
    dpc = run_storm(StormConfig(adapters=n, params=params("miniport", "dpc", "critical")))
    oids = item["oids"]
    assert isinstance(oids, dict)
    # One completion item per pended request of every protocol; NDIS queued none.
    assert oids["miniport_completion_items"] == oids["ndis_requests"] > 0
    assert oids["ndis_completion_items"] == 0
    dpc_oids = dpc["oids"]
    assert isinstance(dpc_oids, dict)
    assert dpc_oids["miniport_completion_items"] == dpc_oids["ndis_completion_items"] == 0
    # At DPC nothing needs a critical worker beyond the submissions.
    assert dpc["outcome"] == "bound"


def test_the_cliff_of_the_miniport_path_moves_with_the_parameters() -> None:
    p = params("miniport", "workitem", "critical").with_(critical_static=4, max_dynamic=3)
    p = ModelParams(**{**p.__dict__, "foreign_holders": 1})
    n = cliff(p)
    assert n == 6
    assert run_storm(StormConfig(adapters=n - 1, params=p))["outcome"] == "bound"
    assert run_storm(StormConfig(adapters=n, params=p))["outcome"] == "deadlock"
