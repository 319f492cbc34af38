"""The symptom on the wire: IPv6 pings stop after the unpatched host's deadlock (on interfaces
bound long before the storm too), IPv4 pings go on; the fixed host answers both throughout."""

from __future__ import annotations

import itertools

import trio
import trio.testing

from ndisemu.params import CRITICAL
from tcpip6lab.host import EmulatedHost
from tcpip6lab.params import ModelParams

PRE_BOUND_AT = 0.5
BURST_AT = 3.0
PING_EVERY = 0.5
END = 14.0


async def run_host(executor: str) -> EmulatedHost:
    host = EmulatedHost(ModelParams(executor=executor), seed=11)
    async with trio.open_nursery() as nursery:
        await nursery.start(host.kernel.run)
        host.start()
        host.pnp.schedule(host.adapter_configs(1), start=PRE_BOUND_AT)
        host.pnp.schedule(host.adapter_configs(24, first=1), start=BURST_AT)
        host.start_pinging(PING_EVERY, start=0.5)
        await trio.sleep(END)
        nursery.cancel_scope.cancel()
    return host


async def test_unpatched_host_stops_answering_ipv6_but_not_ipv4(
        autojump_clock: trio.testing.MockClock) -> None:
    host = await run_host("critical")
    first = host.peers["nic000"]
    # Before the storm the pre-bound interface answered IPv6.
    assert first.v6.answered >= 2
    assert first.v6.rtts[-1] < 0.01  # answered at once, not only from the resolution queue
    dl = host.deadlock
    assert dl is not None and dl.queue == CRITICAL
    onset = max(link.blocked_since or 0.0 for link in dl.chain)
    assert BURST_AT <= onset < BURST_AT + 0.1
    # After the knot formed no adapter answers IPv6 — nic000 included...
    for side in host.peers.values():
        assert side.v6.last_answered is None or side.v6.last_answered <= onset, side.adapter
    assert first.v6.last_answered is not None and first.v6.last_answered < BURST_AT
    assert first.v6.sent > first.v6.answered + 15
    # ...while IPv4 answers on every adapter to the end.
    for side in host.peers.values():
        assert side.v4.ok_since(END - 2 * PING_EVERY), side.adapter
    # The heartbeat, a real critical work item, stops with the knot and never resumes.
    period = host.kernel.params.balance_period
    last = host.heartbeat.last_beat
    assert last is not None and onset - 2 * period <= last <= onset
    assert host.heartbeat.queued > host.heartbeat.count


async def test_fixed_host_answers_both_throughout(
        autojump_clock: trio.testing.MockClock) -> None:
    host = await run_host("dedicated")
    assert host.deadlock is None
    assert host.bound() == 25
    for side in host.peers.values():
        assert side.v6.ok_since(END - 2 * PING_EVERY), side.adapter
        assert side.v4.ok_since(END - 2 * PING_EVERY), side.adapter
    first = host.peers["nic000"]
    # nic000 answered every ping sent after it was bound, at once, through the storm.
    assert first.v6.answered >= (END - 1.5) / PING_EVERY - 1
    # Only pings queued at the peer while nic000's address was tentative (DAD) waited; the
    # last 20 — through the storm — were answered at once.
    assert sum(r > 0.01 for r in first.v6.rtts) <= 5
    assert len(first.v6.rtts) >= 20 and max(list(first.v6.rtts)[-20:]) < 0.01
    beats = host.heartbeat.beats
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert beats[-1] >= END - 2 * host.params.heartbeat_interval
    assert max(gaps) <= host.params.heartbeat_interval * 1.5
