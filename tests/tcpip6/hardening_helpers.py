"""Helpers for the fuzz and flood tests: bound checks read from HostConfig, a legitimate ping
from a PeerPort, counter monotonicity."""

from __future__ import annotations

from collections import Counter

from bench.fuzz import HOST_LL, PEER_MAC
from tcpip6.stack.addrconf import AddrOrigin
from tcpip6.stack.host import Ipv6Host
from tcpip6.stack.mld import _MAX_SOURCES
from tcpip6.stack.peer import PeerPort


def new_peer() -> PeerPort:
    return PeerPort(PEER_MAC)


def _exchange(host: Ipv6Host, peer: PeerPort, to_host: list[bytes], now: float) -> None:
    for _ in range(8):
        to_peer: list[bytes] = []
        for f in to_host:
            to_peer += host.handle_frame(f, now)
        to_host = []
        for f in to_peer:
            to_host += peer.handle_frame(f, now)
        if not to_host:
            return


def ping(
    host: Ipv6Host, peer: PeerPort, now: float, seq: int, ident: int = 0x4242, tries: int = 0
) -> tuple[bool, float]:
    """The peer pings the host's link-local address as ``ping`` does: one Echo Request a
    second, up to ``tries``; frames are exchanged and the host's timers run in virtual time (an
    INCOMPLETE entry left by earlier traffic may still fail and drop its queue, RFC 4861 §7.2.2,
    which is why a real ping retries; a spoofed NS/NA that rewrote the peer's MAC — plain RFC
    4861 without SEND — is undone by NUD: REACHABLE up to 1.5 x BaseReachableTime, DELAY 5 s,
    PROBE 3 x RetransTimer, then multicast resolution; ``tries`` 0 covers that).
    Return (did a reply with ``seq`` come back, the time)."""
    cfg = host.config
    tries = tries or int(1.5 * cfg.base_reachable_time + 5 + 6 * cfg.retrans_timer) + 3
    for i in range(tries):
        if i == 3:  # the peer's own NUD gives up on the host: it re-resolves with a multicast
            peer.forget_neighbors()  # NS whose SLLA also fixes the host's entry (§7.2.3)
        _exchange(host, peer, peer.ping6(HOST_LL, now, ident, seq, b"legit"), now)
        deadline = now + 1.0
        while True:
            if any(r.seq == seq and r.ident == ident for r in peer.pop_replies()):
                return True, now
            d = host.next_deadline()
            if d is None or d > deadline:
                break
            now = max(now, d)
            for f in host.handle_timer(now):
                _exchange(host, peer, peer.handle_frame(f, now), now)
        now = deadline
    return False, now


def ping_ok(host: Ipv6Host, peer: PeerPort, now: float, seq: int) -> bool:
    return ping(host, peer, now, seq)[0]


def check_bounds(host: Ipv6Host, *, listener_backlog: int = 16) -> None:
    """Every bounded structure within the limit its HostConfig sets."""
    cfg = host.config
    assert len(host.nud) <= cfg.neighbor_cache_size
    for e in host.nud.entries.values():
        assert len(e.queue) <= cfg.neighbor_queue_len
    ra = host.reassembler
    assert len(ra.datagrams) <= cfg.reassembly_max_datagrams
    assert 0 <= ra.nbytes <= cfg.reassembly_max_bytes
    assert ra.nbytes == sum(d.nbytes for d in ra.datagrams.values())
    assert len(host.router.routers) <= cfg.max_routers
    assert len(host.router.prefixes) <= cfg.max_prefixes
    assert len(host.router.destinations) <= cfg.destination_cache_size
    slaac = [e for e in host.addrconf.entries.values() if e.origin is AddrOrigin.SLAAC]
    assert len(slaac) <= cfg.max_addresses
    # groups: all-nodes plus a solicited-node group per address (no remote party can add any)
    assert len(host.mld.groups) <= 1 + len(host.addrconf.entries)
    for srcs in host.mld._queried_sources.values():
        assert len(srcs) <= _MAX_SOURCES
    for lst in host.tcp.listeners.values():
        assert len(lst.embryonic) <= cfg.tcp.syn_backlog
        assert len(lst.accept_queue) <= max(lst.backlog, listener_backlog)
    per_listener = cfg.tcp.syn_backlog + listener_backlog
    assert len(host.tcp.conns) <= per_listener * max(1, len(host.tcp.listeners)) + 16
    assert len(host._ctx.events) <= 256
    assert len(host.echo_replies) <= 1024


def assert_grew(before: Counter[str], after: Counter[str]) -> None:
    """Counters only grow."""
    for k, v in before.items():
        assert after[k] >= v, (k, v, after[k])
