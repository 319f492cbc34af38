"""tcpip6's bind: the exact OID sequence the miniport receives, and what it does with them."""

from __future__ import annotations

import pytest

from ndisemu.constants import RequestType
from tcpip6.binder import BindPhase
from tcpip6lab.params import ModelParams, adapter_mac
from tcpip6lab.storm import StormConfig, run_storm_async

Q, S = RequestType.QUERY, RequestType.SET
# nt-model §5 rows 1-7 in table order (hex from ReactOS ntddndis.h), then the multicast list,
# then row 8 last — written out here, not imported, so a change to the binder shows up.
EXPECTED = [
    (0x00010115, Q),  # OID_GEN_MAXIMUM_SEND_PACKETS
    (0x01010102, Q),  # OID_802_3_CURRENT_ADDRESS
    (0x0001010F, S),  # OID_GEN_CURRENT_LOOKAHEAD
    (0x00010107, Q),  # OID_GEN_LINK_SPEED
    (0x00010106, Q),  # OID_GEN_MAXIMUM_FRAME_SIZE
    (0x00010111, Q),  # OID_GEN_MAXIMUM_TOTAL_SIZE
    (0x00010114, Q),  # OID_GEN_MEDIA_CONNECT_STATUS
    (0x01010103, S),  # OID_802_3_MULTICAST_LIST
    (0x0001010E, S),  # OID_GEN_CURRENT_PACKET_FILTER
]


@pytest.mark.parametrize("executor", ["critical", "dedicated", "async", "rescuer"])
async def test_miniport_receives_exactly_the_bind_oids_in_order(
        executor: str, autojump_clock: object) -> None:
    hosts = []
    result = await run_storm_async(
        StormConfig(adapters=3, params=ModelParams(executor=executor)),
        on_host=hosts.append)
    assert result["outcome"] == "bound"
    host = hosts[0]
    for name, block in host.ndis.miniports.items():
        got = [(oid, rtype) for proto, oid, rtype in block.requests if proto == "tcpip6"]
        assert got == EXPECTED, name
        # IPv4 sent its own, interleaved on the same serialized miniport.
        assert any(proto == "tcpip" for proto, _, _ in block.requests)


async def test_bind_programs_all_nodes_and_solicited_node_groups(autojump_clock: object) -> None:
    hosts = []
    await run_storm_async(StormConfig(adapters=2), on_host=hosts.append)
    host = hosts[0]
    for i, state in enumerate(host.tcpip6_states()):
        mac = adapter_mac(i)
        assert state.phase is BindPhase.UP
        assert state.mac == mac and state.mtu == 1500
        binding = state.binding
        assert binding.multicast == frozenset({
            bytes.fromhex("333300000001"),
            bytes.fromhex("3333ff") + mac[3:],  # ff02::1:ffXX:XXXX of the EUI-64 link-local
        })
        assert int(binding.packet_filter) == 0x3  # DIRECTED | MULTICAST
        assert state.ctx.status.name == "SUCCESS"


@pytest.mark.parametrize("executor", ["critical", "dedicated", "async", "rescuer"])
def test_submit_oid_goes_through_the_executor_after_bind(executor: str) -> None:
    from bench.scale import oid_round_trip

    # 30 media-status queries in a row on a bound adapter, each submitted from the previous
    # one's completion: all succeed (oid_round_trip raises otherwise) on both drivers.
    for workers in ("coroutines", "tasks"):
        assert oid_round_trip(executor, 30, workers) > 0


def test_submit_oid_refuses_an_unknown_interface() -> None:
    from ndisemu.miniport import NdisRequest
    from tcpip6.errors import ConfigError
    from tcpip6lab.host import EmulatedHost

    host = EmulatedHost()
    with pytest.raises(ConfigError, match="no interface 'nic404'"):
        host.tcpip6.submit_oid("nic404", NdisRequest(Q, 0x00010114), lambda _s, _st: None)
