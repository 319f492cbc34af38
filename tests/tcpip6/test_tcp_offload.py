"""tcpip6 with task offload (ndisemu/offload.py): large sends cut by the NIC, partial checksums
finished by it, and coalesced frames taken whole — used only when the miniport declared them."""

from __future__ import annotations

import hashlib
import random
from collections import deque

import pytest

from ndisemu import offload
from ndisemu.constants import NdisStatus, Oid, RequestType
from tcpip6.binder import BIND_OIDS, BindPhase
from tcpip6.stack.context import HostConfig, TcpConfig
from tcpip6.stack.host import Ipv6Host
from tcpip6.stack.tcpconn import TcpState
from tcpip6lab.params import ModelParams
from tcpip6lab.storm import StormConfig, run_storm_async

A_MAC = bytes.fromhex("02000000a001")
B_MAC = bytes.fromhex("02000000b001")
MTU = 1500


def _host(mac: bytes, seed: int, *, lso: int = 0, partial: bool = False) -> Ipv6Host:
    tcp = TcpConfig(rto_min=0.2, send_buffer=1 << 20, recv_buffer=1 << 20)
    cfg = HostConfig(startup_delay=False, dad_transmits=0, max_rtr_solicitations=0, tcp=tcp,
                     tx_checksum_offload=partial or bool(lso), lso_max_size=lso)
    return Ipv6Host(mac, MTU, rng=random.Random(seed), config=cfg)


def _transfer(a: Ipv6Host, b: Ipv6Host, data: bytes, *, nic_a: bool, mark_b: bool,
              mark_a: bool = False) -> tuple[bytes, list[int]]:
    """A sends `data` to B. `nic_a`: A's frames pass an offloading NIC (segment_tcp6) on their
    way; `mark_b` (`mark_a`): B's (A's) frames arrive marked ChecksumValidated (a NIC that
    vouched for them: Linux's NEEDS_CSUM over TAP).
    Returns what B read and the sizes of the frames B received."""
    to_a: deque[bytes] = deque()
    to_b: deque[bytes] = deque()
    sizes: list[int] = []
    now = 0.0

    def from_a(frames: list[bytes]) -> None:
        for f in frames:
            if not offload.tcp6_offset(f):
                to_b.append(f)
            elif nic_a:
                to_b.extend(offload.segment_tcp6(f, offload.segment_size(f, MTU)))
            else:
                to_b.append(offload.ChecksumValidated(f) if mark_a else f)

    def from_b(frames: list[bytes]) -> None:
        to_a.extend(offload.ChecksumValidated(f) if mark_b and offload.tcp6_offset(f) else f
                    for f in frames)

    def pump() -> None:
        while to_a or to_b:
            while to_b:
                f = to_b.popleft()
                sizes.append(len(f))
                from_b(b.handle_frame(f, now))
            while to_a:
                from_a(a.handle_frame(to_a.popleft(), now))

    from_a(a.start(now))
    from_b(b.start(now))
    pump()
    lst = b.tcp_listen(5001, 4)
    conn, frames = a.tcp_connect((b.link_local, 5001), now)
    from_a(frames)
    pump()
    srv = lst.accept()
    assert srv is not None and conn.state is TcpState.ESTABLISHED
    got = bytearray()
    pos = 0
    for _ in range(100_000):
        if pos < len(data) and conn.send_space:
            n = min(conn.send_space, len(data) - pos)
            from_a(conn.send(data[pos : pos + n], now))
            pos += n
        pump()
        while srv.readable:
            got += srv.recv(1 << 22)
        if len(got) == len(data):
            break
        d = min((x for h in (a, b) if (x := h.next_deadline()) is not None), default=None)
        if d is not None:
            now = max(now, d)
            from_a(a.handle_timer(now))
            from_b(b.handle_timer(now))
    return bytes(got), sizes


def test_large_sends_are_cut_by_the_nic_into_link_sized_valid_segments() -> None:
    data = random.Random(3).randbytes(2_000_000)
    a, b = _host(A_MAC, 1, lso=offload.DEFAULT_LSO_MAX), _host(B_MAC, 2)
    got, sizes = _transfer(a, b, data, nic_a=True, mark_b=False)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert max(sizes) <= MTU + 14  # every frame B saw fits the link
    assert b.counters["drop.BAD_CHECKSUM"] == 0  # the NIC finished every checksum
    lso = a.counters["tcp.lso_tx"]
    assert lso > 0 and a.counters["tcp.tx"] < len(data) // 1428 // 4  # far fewer sends


def test_without_offload_every_segment_is_link_sized_and_complete() -> None:
    data = random.Random(4).randbytes(300_000)
    a, b = _host(A_MAC, 1), _host(B_MAC, 2)
    got, _ = _transfer(a, b, data, nic_a=False, mark_b=False)
    assert got == data and a.counters["tcp.lso_tx"] == 0
    assert a.counters["tcp.tx"] >= len(data) // 1428


def test_partial_checksums_are_accepted_only_when_the_nic_vouched_for_them() -> None:
    data = random.Random(5).randbytes(200_000)
    # B (the receiver) leaves its ACKs' checksums partial: A takes them when marked ...
    a, b = _host(A_MAC, 1), _host(B_MAC, 2, partial=True)
    got, _ = _transfer(a, b, data, nic_a=False, mark_b=True)
    assert got == data and a.counters["drop.BAD_CHECKSUM"] == 0
    # ... and drops them unmarked (the handshake never completes)
    a, b = _host(A_MAC, 1), _host(B_MAC, 2, partial=True)
    with pytest.raises(AssertionError):
        _transfer(a, b, data, nic_a=False, mark_b=False)
    assert a.counters["drop.BAD_CHECKSUM"] > 0


def test_a_coalesced_frame_is_taken_whole() -> None:
    """A super-frame larger than the link (Linux's GRO/TSO over TAP) is one segment to us."""
    data = random.Random(6).randbytes(500_000)
    a, b = _host(A_MAC, 1, lso=offload.DEFAULT_LSO_MAX), _host(B_MAC, 2)
    # no NIC cutting them: B gets them whole, vouched for as Linux's NEEDS_CSUM super-frames are
    got, sizes = _transfer(a, b, data, nic_a=False, mark_b=False, mark_a=True)
    assert got == data and max(sizes) > 10 * MTU


async def _storm(offload_caps: offload.OffloadCaps | None, binder_offload: bool = True
                 ) -> tuple[object, list[object]]:
    hosts: list[object] = []
    result = await run_storm_async(StormConfig(adapters=2, params=ModelParams(executor="critical"),
                                               offload=offload_caps), on_host=hosts.append)
    return result, hosts


async def test_bind_queries_and_sets_the_offload_oid_and_uses_what_was_declared(
        autojump_clock: object) -> None:
    caps = offload.OffloadCaps(lso_max_size=20_000, lso_min_segments=3)
    result, hosts = await _storm(caps)
    assert result["outcome"] == "bound"
    host = hosts[0]
    for name, block in host.ndis.miniports.items():  # type: ignore[attr-defined]
        got = [(oid, t) for proto, oid, t in block.requests if proto == "tcpip6"]
        assert got[7:9] == [(Oid.TCP_TASK_OFFLOAD, RequestType.QUERY),
                            (Oid.TCP_TASK_OFFLOAD, RequestType.SET)], name
        assert got[:7] + got[9:] == list(BIND_OIDS)
        assert block.miniport.offload_enabled == offload.enable(caps)
    for state in host.tcpip6_states():  # type: ignore[attr-defined]
        assert state.phase is BindPhase.UP and state.offload_declared == caps
        assert state.stack.config.lso_max_size == 20_000
        assert state.stack.config.lso_min_segments == 3 and state.stack.config.tx_checksum_offload


async def test_a_miniport_without_offload_answers_not_supported_and_the_bind_goes_on(
        autojump_clock: object) -> None:
    # the default: no task-offload OID at all
    hosts: list[object] = []
    result = await run_storm_async(StormConfig(adapters=2), on_host=hosts.append)
    assert result["outcome"] == "bound"
    for block in hosts[0].ndis.miniports.values():  # type: ignore[attr-defined]
        assert all(oid != Oid.TCP_TASK_OFFLOAD for _p, oid, _t in block.requests)
    # tcpip6 asks (offload on) but the miniports declare nothing: NOT_SUPPORTED, no set, the
    # interfaces bind without offload
    hosts = []

    def plain_miniports(host: object) -> None:
        host.offload = None  # type: ignore[attr-defined]  # the binder was built asking
        hosts.append(host)

    events: list[dict[str, object]] = []
    result = await run_storm_async(StormConfig(adapters=2, offload=offload.OffloadCaps(),
                                               extra_sinks=[events.append]),
                                   on_host=plain_miniports)
    assert result["outcome"] == "bound"
    host = hosts[0]
    for block in host.ndis.miniports.values():  # type: ignore[attr-defined]
        got = [(oid, t) for proto, oid, t in block.requests
               if proto == "tcpip6" and oid == Oid.TCP_TASK_OFFLOAD]
        assert got == [(Oid.TCP_TASK_OFFLOAD, RequestType.QUERY)]
        assert block.miniport.offload_enabled is None
    for state in host.tcpip6_states():  # type: ignore[attr-defined]
        assert state.phase is BindPhase.UP and state.offload is None
        assert state.stack.config.lso_max_size == 0 and not state.stack.config.tx_checksum_offload
    answers = [e["status"] for e in events if e.get("event") == "tcpip6.oid.done"
               and e.get("oid") == "OID_TCP_TASK_OFFLOAD"]
    assert answers == [NdisStatus.NOT_SUPPORTED.ndis_name] * 2
