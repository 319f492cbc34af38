"""The applications that rely on TCP/IPv6 (tcpip6lab.apps) on memory wires, in virtual time:
before the burst every exchange succeeds; after it the unpatched host's applications fail —
each within its own timeout plus one period of the moment IPv6 stopped answering — while IPv4
keeps answering; the fixed host's never fail."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from tcpip6lab import apps
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams

PRE, BURST, END = 0.5, 6.0, 20.0


async def _run(executor: str) -> EmulatedHost:
    host = EmulatedHost(ModelParams(executor=executor), seed=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(host.kernel.run)
        host.run_services(nursery)
        host.add_routable_addresses()
        host.run_applications(nursery)
        host.start()
        configs = host.adapter_configs(25)
        host.pnp.schedule(configs[:1], start=PRE)
        host.pnp.schedule(configs[1:], start=BURST)
        host.start_pinging(0.5, start=PRE)
        await trio.sleep(BURST - 0.1)
        assert host.applications is not None
        before = host.applications.totals()
        assert before["tcp-rr"]["ok"] >= 3 and before["tcp-rr"]["failures"] == 0, before
        assert before["udp-lookup"]["ok"] >= 3 and before["udp-lookup"]["failures"] == 0, before
        await trio.sleep(END - BURST + 0.1)
        nursery.cancel_scope.cancel()
    return host


def test_applications_fail_in_the_unpatched_host_within_their_timeouts() -> None:
    host = trio.run(_run, "critical", clock=MockClock(autojump_threshold=0))
    assert host.deadlock is not None
    a = host.applications
    assert a is not None
    nic0 = {s.app: s for (app, ad), s in a.stats.items() if ad == "nic000"}
    # The last successful exchange on nic000 marks when its IPv6 stopped answering for the
    # applications; from then on each fails within its own timeout plus one period.
    tcp, udp = nic0["tcp-rr"], nic0["udp-lookup"]
    assert tcp.first_failure_at is not None and udp.first_failure_at is not None
    assert tcp.last_ok_at is not None and udp.last_ok_at is not None
    assert tcp.first_failure_at - tcp.last_ok_at <= apps.TCP_TIMEOUT + apps.TCP_PERIOD + 0.1
    lookup_budget = apps.LOOKUP_TRIES * apps.LOOKUP_TRY_TIMEOUT + apps.LOOKUP_PERIOD + 0.1
    assert udp.first_failure_at - udp.last_ok_at <= lookup_budget
    assert tcp.timeouts >= 1 and "TooSlowError" in (tcp.last_error or "")
    assert "LookupFailed" in (udp.last_error or "") and udp.retries >= apps.LOOKUP_TRIES - 1
    # and they keep failing: nothing succeeds after the knot
    assert tcp.last_ok_at < tcp.first_failure_at and udp.last_ok_at < udp.first_failure_at
    # IPv4 keeps answering on nic000 meanwhile
    v4 = host.peers["nic000"].v4
    assert v4.last_answered is not None and v4.last_answered >= END - 1.0


def test_applications_never_fail_in_the_fixed_host() -> None:
    host = trio.run(_run, "dedicated", clock=MockClock(autojump_threshold=0))
    assert host.deadlock is None
    a = host.applications
    assert a is not None
    totals = a.totals()
    for app in apps.APPS:
        assert totals[app]["failures"] == 0, totals
        assert totals[app]["adapters"] == 25
        assert totals[app]["ok"] >= 25 * 10
    assert totals["udp-lookup"]["retries"] == 0


@pytest.mark.parametrize("executor", ["critical", "dedicated"])
def test_status_json_carries_the_applications(executor: str) -> None:
    from tcpip6lab.services import status, status_html

    host = trio.run(_run, executor, clock=MockClock(autojump_threshold=0))
    s = status(host)
    assert s["applications"]["totals"]["tcp-rr"]["attempts"] > 0
    assert any(a["address"].startswith("fd36:6c61:6200:") for a in s["interfaces"][0]
               ["addresses"])
    page = status_html(host)
    assert 'id="pool"' in page and 'id="applications"' in page
    assert ("Wait-for chain" in page) == (executor == "critical")
