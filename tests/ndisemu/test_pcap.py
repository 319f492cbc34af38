"""PcapWriter output read back with scapy's rdpcap and by hand."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from ndisemu.pcap import LINKTYPE_ETHERNET, PcapWriter

FRAMES = [
    bytes(Ether(dst="33:33:00:00:00:01", src="02:00:00:00:00:01") / IPv6() / ICMPv6EchoRequest()),
    bytes(range(60)),
    b"\xff" * 1514,
]
TIMES = [0.0, 1.5, 12345.000001]


def records(blob: bytes) -> list[tuple[int, int, int, int, bytes]]:
    out = []
    off = 24
    while off < len(blob):
        sec, usec, incl, orig = struct.unpack_from("<IIII", blob, off)
        out.append((sec, usec, incl, orig, blob[off + 16 : off + 16 + incl]))
        off += 16 + incl
    assert off == len(blob)
    return out


def test_written_file_reads_back_with_scapy(tmp_path: Path) -> None:
    path = tmp_path / "wire.pcap"
    with PcapWriter(path) as w:
        for f, t in zip(FRAMES, TIMES, strict=True):
            w.write(f, t)
        assert w.packets == 3
    assert w.closed
    pkts = rdpcap(str(path))
    assert [bytes(p) for p in pkts] == FRAMES
    for p, t in zip(pkts, TIMES, strict=True):
        assert abs(float(p.time) - t) < 1e-6
    assert pkts[0].haslayer(ICMPv6EchoRequest)
    magic, vmaj, vmin, zone, sigfigs, snap, link = struct.unpack_from("<IHHiIII", path.read_bytes())
    assert (magic, vmaj, vmin, zone, sigfigs, snap, link) == (
        0xA1B2C3D4, 2, 4, 0, 0, 262_144, LINKTYPE_ETHERNET,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("ts", "sec", "usec"),
    [
        (0.0, 0, 0),
        (1.9999996, 2, 0),  # rounds up into the next second, never usec == 1_000_000
        (1.9999994, 1, 999999),
        (0.0000004, 0, 0),
        (3.000001, 3, 1),
        (86400.25, 86400, 250000),
        (4294967295.0, 4294967295, 0),
    ],
)
def test_timestamp_rounding(ts: float, sec: int, usec: int) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf)
    w.write(b"\x00" * 14, ts)
    w.close()
    ((s, u, incl, orig, data),) = records(buf.getvalue())
    assert (s, u) == (sec, usec)
    assert u < 1_000_000
    assert (incl, orig, data) == (14, 14, b"\x00" * 14)


def test_a_super_frame_is_captured_whole(tmp_path: Path) -> None:
    """An offloaded TAP device's frames exceed 65535 bytes (64 KiB of TCP payload plus headers):
    the default snaplen keeps them whole."""
    frame = bytes(14 + 40 + 32) + bytes(65_535 - 40)
    path = tmp_path / "big.pcap"
    with PcapWriter(str(path)) as w:
        w.write(frame, 0.0)
    data = path.read_bytes()
    incl, orig = struct.unpack_from("<II", data, 24 + 8)
    assert incl == orig == len(frame) > 65_535
    assert data[24 + 16:] == frame


def test_snaplen_truncates_and_keeps_original_length(tmp_path: Path) -> None:
    path = tmp_path / "snap.pcap"
    with PcapWriter(str(path), snaplen=64) as w:
        w.write(FRAMES[2], 1.0)
        w.write(FRAMES[1], 2.0)
    recs = records(path.read_bytes())
    assert [(r[2], r[3]) for r in recs] == [(64, 1514), (60, 60)]
    pkts = rdpcap(str(path))
    assert pkts[0].wirelen == 1514
    assert bytes(pkts[0]) == FRAMES[2][:64]


def test_borrowed_file_is_flushed_not_closed() -> None:
    buf = io.BytesIO()
    with PcapWriter(buf) as w:
        w.write(FRAMES[0], 0.5)
        w.write(memoryview(FRAMES[1]), 0.75)
    assert not buf.closed
    recs = records(buf.getvalue())
    assert [r[4] for r in recs] == FRAMES[:2]
    assert [(r[0], r[1]) for r in recs] == [(0, 500000), (0, 750000)]


def test_misuse_raises(tmp_path: Path) -> None:
    w = PcapWriter(tmp_path / "x.pcap")
    with pytest.raises(ValueError):
        w.write(b"\x00" * 14, -1.0)
    w.close()
    w.close()  # idempotent
    with pytest.raises(ValueError):
        w.write(b"\x00" * 14, 1.0)
    with pytest.raises(ValueError):
        PcapWriter(io.BytesIO(), snaplen=0)
    with pytest.raises(ValueError):
        PcapWriter(io.BytesIO()).write(b"", 2.0**40)
    assert len((tmp_path / "x.pcap").read_bytes()) == 24
