"""TCP codec against scapy: golden segments, option layouts, checksums, malformed input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6

from tcpip6.wire import DropReason, MalformedFrame, tcp
from tcpip6.wire.ipv6 import parse_addr
from tcpip6.wire.tcp import ACK, FIN, PSH, RST, SYN

SRC_S, DST_S = "fe80::1", "2001:db8::2"
SRC, DST = parse_addr(SRC_S), parse_addr(DST_S)


def scapy_tcp(payload: bytes = b"", **kw: Any) -> bytes:
    """The TCP bytes scapy builds (checksum over the same pseudo-header)."""
    return bytes(IPv6(src=SRC_S, dst=DST_S) / TCP(**kw) / payload)[40:]


def test_syn_golden_matches_scapy() -> None:
    ours = tcp.build(
        SRC, DST, 40000, 80, 0x01020304, 0, SYN, 65535,
        tcp.options(mss=1440, wscale=7, sack_permitted=True, ts=(1000, 0)),
    )  # fmt: skip
    ref = scapy_tcp(
        sport=40000, dport=80, seq=0x01020304, flags="S", window=65535,
        options=[("MSS", 1440), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None),
                 ("WScale", 7)],
    )  # fmt: skip
    assert ours == ref
    # Linux's SYN layout: MSS, SACK_PERM+TS in one word, NOP+WS
    assert ours[20:40].hex() == "020405a00402080a000003e80000000001030307"
    seg = tcp.parse(SRC, DST, ours)
    assert (seg.mss, seg.wscale, seg.sack_permitted, seg.tsval, seg.tsecr) == (
        1440, 7, True, 1000, 0,
    )  # fmt: skip
    assert seg.flags == SYN and seg.seq == 0x01020304 and not seg.payload


def test_data_segment_golden_matches_scapy() -> None:
    payload = bytes(range(100)) * 3 + b"x"  # odd length: the RFC 1071 pad
    ours = tcp.build(SRC, DST, 80, 40000, 7, 0xFFFFFFFF, ACK | PSH, 501,
                     tcp.ts_option(5, 6), payload)  # fmt: skip
    ref = scapy_tcp(payload, sport=80, dport=40000, seq=7, ack=0xFFFFFFFF, flags="PA",
                    window=501, options=[("NOP", None), ("NOP", None), ("Timestamp", (5, 6))])
    assert ours == ref
    seg = tcp.parse(SRC, DST, ours)
    assert bytes(seg.payload) == payload
    assert (seg.tsval, seg.tsecr, seg.ack, seg.window) == (5, 6, 0xFFFFFFFF, 501)


@pytest.mark.parametrize("nblocks", [1, 2, 3, 4])
def test_sack_blocks_round_trip(nblocks: int) -> None:
    blocks = tuple((1000 * i, 1000 * i + 500) for i in range(1, nblocks + 1))
    ts = (9, 8) if nblocks < 4 else None  # 4 blocks only fit without timestamps
    opts = (tcp.ts_option(*ts) if ts else b"") + tcp.options(sack=blocks)
    ours = tcp.build(SRC, DST, 1, 2, 3, 4, ACK, 5, opts)
    flat = tuple(x for b in blocks for x in b)
    sc_opts: list[tuple[str, Any]] = []
    if ts:
        sc_opts += [("NOP", None), ("NOP", None), ("Timestamp", ts)]
    sc_opts += [("NOP", None), ("NOP", None), ("SAck", flat)]
    assert ours == scapy_tcp(sport=1, dport=2, seq=3, ack=4, flags="A", window=5,
                             options=sc_opts)  # fmt: skip
    seg = tcp.parse(SRC, DST, ours)
    assert seg.sack == blocks
    assert seg.emit(SRC, DST) == ours  # parse -> emit round trip


def test_parses_what_scapy_lays_out_differently() -> None:
    raw = scapy_tcp(
        b"data", sport=5, dport=6, seq=1, ack=2, flags="A",
        options=[("WScale", 20), ("NOP", None), ("MSS", 536), ("SAck", (10, 20)),
                 (30, b"\x01\x02"), ("Timestamp", (3, 4)), ("EOL", None)],
    )  # fmt: skip
    seg = tcp.parse(SRC, DST, raw)
    assert seg.wscale == 14  # RFC 7323 §2.3: > 14 is taken as 14
    assert (seg.mss, seg.sack, seg.tsval, seg.tsecr) == (536, ((10, 20),), 3, 4)
    assert bytes(seg.payload) == b"data"


@given(
    payload=st.binary(max_size=1500),
    sport=st.integers(1, 0xFFFF),
    dport=st.integers(1, 0xFFFF),
    seq=st.integers(0, 0xFFFFFFFF),
    ack=st.integers(0, 0xFFFFFFFF),
    flags=st.sampled_from([ACK, ACK | PSH, ACK | FIN, SYN, RST, RST | ACK, ACK | PSH | FIN]),
    window=st.integers(0, 0xFFFF),
    ts=st.none() | st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
)
def test_checksum_and_fields_match_scapy(
    payload: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
    ts: tuple[int, int] | None,
) -> None:  # fmt: skip
    opts = tcp.ts_option(*ts) if ts else b""
    ours = tcp.build(SRC, DST, sport, dport, seq, ack, flags, window, opts, payload)
    sc_opts = [("NOP", None), ("NOP", None), ("Timestamp", ts)] if ts else []
    ref = scapy_tcp(payload, sport=sport, dport=dport, seq=seq, ack=ack, flags=flags,
                    window=window, options=sc_opts)  # fmt: skip
    assert ours == ref
    seg = tcp.parse(SRC, DST, ours)
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack, seg.flags, seg.window) == (
        sport, dport, seq, ack, flags, window,
    )  # fmt: skip
    assert bytes(seg.payload) == payload
    assert seg.tsval == (ts[0] if ts else None)


def _reason(raw: bytes | bytearray) -> DropReason:
    with pytest.raises(MalformedFrame) as ei:
        tcp.parse(SRC, DST, raw)
    return ei.value.reason


def _with_options(opts: bytes) -> bytes:
    """A segment with raw (possibly broken) option bytes and a correct checksum."""
    return tcp.build(SRC, DST, 1, 2, 3, 4, ACK, 5, opts)


def test_malformed() -> None:
    good = tcp.build(SRC, DST, 1, 2, 3, 4, ACK, 5, tcp.ts_option(1, 2), b"abc")
    assert _reason(good[:19]) is DropReason.TRUNCATED
    short_offset = bytearray(good)
    short_offset[12] = 0x40  # data offset 4 words
    assert _reason(short_offset) is DropReason.BAD_LENGTH
    assert _reason(good[:30]) is DropReason.TRUNCATED  # offset says 32 bytes of header
    bad = bytearray(good)
    bad[-1] ^= 0x01
    assert _reason(bad) is DropReason.BAD_CHECKSUM
    assert _reason(_with_options(b"\x02\x00\x00\x00")) is DropReason.BAD_OPTION  # length 0
    assert _reason(_with_options(b"\x01\x01\x08\x0c" + bytes(8))) is DropReason.BAD_OPTION
    assert _reason(_with_options(b"\x01\x01\x01\x1e")) is DropReason.BAD_OPTION  # no length
    assert tcp.parse(SRC, DST, bad, verify=False).payload.tobytes() == b"ab" + bytes([99 ^ 1])


def test_known_option_with_wrong_length_is_skipped() -> None:
    seg = tcp.parse(SRC, DST, _with_options(b"\x02\x03\x05\x01\x01\x01\x08\x0a" + bytes(8)))
    assert seg.mss is None and seg.tsval == 0  # MSS of length 3 ignored, the TS still read
    seg = tcp.parse(SRC, DST, _with_options(b"\x05\x06\x00\x00\x00\x01\x00\x00"))
    assert seg.sack == ()  # a SACK option that is not 2 + 8n long


def test_zero_checksum_result_is_valid() -> None:
    # TCP has no "checksum absent": a computed 0 is sent as 0 and verifies
    for n in range(0x10000):
        raw = tcp.build(SRC, DST, 1, 2, 3, 4, ACK, n & 0xFFFF)
        if raw[16:18] == b"\x00\x00":
            tcp.parse(SRC, DST, raw)
            assert raw == scapy_tcp(sport=1, dport=2, seq=3, ack=4, flags="A", window=n)
            return
    pytest.fail("no zero-checksum segment found")


def test_options_too_long_rejected_and_repr() -> None:
    with pytest.raises(ValueError):
        tcp.options(ts=(1, 2), sack=((1, 2), (3, 4), (5, 6), (7, 8)))
    seg = tcp.parse(SRC, DST, tcp.build(SRC, DST, 1, 2, 3, 4, SYN | ACK, 5,
                                        tcp.options(mss=1440, sack_permitted=True)))
    assert "[S.]" in repr(seg) and "mss=1440" in repr(seg) and "sackOK" in repr(seg)
