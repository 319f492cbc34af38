"""Task offload: the OID_TCP_TASK_OFFLOAD buffer, the virtio-net header codec, and what an
offloading NIC does with frames (segmenting a large send, finishing a partial checksum)."""

from __future__ import annotations

import struct

import pytest

from ndisemu import offload
from ndisemu.backends import vnet
from ndisemu.errors import ConfigError
from tcpip6.wire import tcp
from tcpip6.wire.ethernet import ETHERTYPE_IPV6, pack_header
from tcpip6.wire.ipv6 import NH_TCP, packet, pseudo_header_checksum

SRC = bytes.fromhex("fe800000000000000000000000000001")
DST = bytes.fromhex("fe800000000000000000000000000002")
MACS = pack_header(bytes.fromhex("020000000002"), bytes.fromhex("020000000001"),
                   ETHERTYPE_IPV6)
TS = tcp.ts_option(1000, 2000)


def _frame(payload: bytes, flags: int, *, partial: bool, seq: int = 1_000_000) -> bytes:
    make = tcp.emit_partial if partial else tcp.emit
    seg = make(tcp.pseudo_sum(SRC, DST), 40000, 7, seq, 555, flags, 512, TS, payload)
    return MACS + packet(SRC, DST, NH_TCP, 64, seg)


def _tcp_ok(frame: bytes) -> bool:
    seg = frame[54:]
    return pseudo_header_checksum(SRC, DST, len(seg), NH_TCP, seg) == 0


def test_caps_round_trip_through_the_information_buffer() -> None:
    caps = offload.OffloadCaps(lso_max_size=30_000, lso_min_segments=3)
    buf = offload.pack(caps)
    # NDIS_TASK_OFFLOAD_HEADER: version 1, size 28, first task right after it, 802.3
    assert struct.unpack_from("<IIIIIII", buf) == (1, 28, 0, 28, 2, 1, 14)
    assert offload.parse(buf) == caps
    none = offload.OffloadCaps(tx_tcp_checksum_v6=False, rx_tcp_checksum_v6=False,
                               lso_max_size=0)
    assert struct.unpack_from("<I", offload.pack(none), 12) == (0,)  # no tasks
    back = offload.parse(offload.pack(none))
    assert not (back.tx_tcp_checksum_v6 or back.rx_tcp_checksum_v6 or back.large_send)


def test_a_malformed_buffer_is_refused() -> None:
    with pytest.raises(ConfigError):
        offload.parse(b"\x01\x00")
    buf = bytearray(offload.pack(offload.OffloadCaps()))
    struct.pack_into("<I", buf, 12, 4000)  # OffsetFirstTask beyond the buffer
    with pytest.raises(ConfigError):
        offload.parse(bytes(buf))
    with pytest.raises(ConfigError):
        offload.OffloadCaps(lso_max_size=70_000)


def test_enable_drops_a_large_send_that_cannot_carry_tcp_options() -> None:
    assert offload.enable(offload.OffloadCaps(lso_tcp_options=False)).lso_max_size == 0
    assert offload.enable(offload.OffloadCaps()).lso_max_size == offload.DEFAULT_LSO_MAX


def test_a_large_send_is_cut_like_linux_tcp_gso_segment() -> None:
    mtu = 1500
    data = bytes(range(256)) * 40  # 10,240 bytes
    big = _frame(data, tcp.ACK | tcp.PSH | tcp.FIN | 0x80, partial=True)  # CWR too
    mss = offload.segment_size(big, mtu)
    assert mss == mtu - 40 - 32
    segs = offload.segment_tcp6(big, mss)
    assert len(segs) == -(-len(data) // mss)
    got = b""
    for i, f in enumerate(segs):
        assert len(f) - 14 <= mtu and _tcp_ok(f)
        (plen,) = struct.unpack_from("!H", f, 18)
        assert plen == len(f) - 54
        seq, = struct.unpack_from("!I", f, 58)
        assert seq == 1_000_000 + len(got)
        flags = f[67]
        last = i == len(segs) - 1
        assert bool(flags & tcp.FIN) == last and bool(flags & tcp.PSH) == last
        assert bool(flags & 0x80) == (i == 0)
        assert f[54 + 20 : 54 + 32] == TS  # options copied to every segment
        got += f[54 + 32 :]
    assert got == data


def test_a_small_partial_frame_is_only_finished() -> None:
    f = _frame(b"hello", tcp.ACK | tcp.PSH, partial=True)
    assert not _tcp_ok(f)
    (done,) = offload.segment_tcp6(f, 1428)
    assert _tcp_ok(done) and done == _frame(b"hello", tcp.ACK | tcp.PSH, partial=False)


def test_vnet_receive_marks_tcp_and_finishes_other_partial_checksums() -> None:
    f = _frame(b"x" * 3000, tcp.ACK, partial=True)
    hdr = vnet.HDR.pack(vnet.F_NEEDS_CSUM, vnet.GSO_TCPV6, 86, 1428, 54, 16)
    got = vnet.decode(hdr + f)
    assert type(got) is offload.ChecksumValidated and got == f
    assert type(vnet.decode(vnet.PLAIN + f)) is bytes  # no flag: the stack verifies
    # a partial UDP checksum (offset 6 in the UDP header) is finished here
    udp = bytearray(_frame(b"", tcp.ACK, partial=False))
    udp[20] = 17
    start = 54
    struct.pack_into("!H", udp, start + 6, 0x1234)
    done = vnet.decode(vnet.HDR.pack(vnet.F_NEEDS_CSUM, 0, 0, 0, start, 6) + bytes(udp))
    assert type(done) is bytes and done[start + 6 : start + 8] != b"\x12\x34"


def test_vnet_transmit_asks_linux_to_segment_only_large_partial_frames() -> None:
    big = _frame(b"y" * 5000, tcp.ACK, partial=True)
    flags, gso, hlen, gsz, start, off = vnet.HDR.unpack(vnet.encode(big, 1500, True))
    assert (flags, gso, hlen, gsz, start, off) == (vnet.F_NEEDS_CSUM, vnet.GSO_TCPV6, 86,
                                                   1428, 54, 16)
    small = _frame(b"y", tcp.ACK, partial=True)
    assert vnet.HDR.unpack(vnet.encode(small, 1500, True))[:2] == (vnet.F_NEEDS_CSUM, 0)
    assert vnet.encode(small, 1500, False) == vnet.PLAIN  # --no-offload: plain frames
