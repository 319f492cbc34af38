"""The queue order matters where it should: the executive dequeues FIFO (KQUEUE entries are
removed from the head, W ke/queueobj.c). In a burst bound at DPC level the critical queue's
items wait for a running slot, so a LIFO executive would start the last adapter's submission
first (at PASSIVE_LEVEL each submission runs at once, preempting the binder)."""

from __future__ import annotations

from typing import Any

from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm


def test_a_burst_starts_its_submissions_in_arrival_order() -> None:
    events: list[dict[str, Any]] = []
    r = run_storm(StormConfig(adapters=20, params=ModelParams(pnp_binds="dpc"),
                              extra_sinks=[events.append]))
    assert r["outcome"] == "bound"
    queued = [e["item"] for e in events
              if e.get("event") == "exec.item.queued" and e["queue"] == "critical"
              and e["item"].startswith("tcpip6.oid_submit")]
    started = [e["item"] for e in events
               if e.get("event") == "exec.item.started" and e["queue"] == "critical"
               and e["item"].startswith("tcpip6.oid_submit")]
    assert len(started) == len(queued) > 20
    # Some submissions really waited in the queue (more arrivals than running slots)...
    waited = [e for e in events if e.get("event") == "exec.item.queued"
              and e["queue"] == "critical" and e["depth"] > 1]
    assert waited
    # ...and they started in the order they were queued.
    assert started == queued
