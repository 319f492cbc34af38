"""The virtio-net header a TAP device opened with IFF_VNET_HDR puts before every frame.

Linux's include/uapi/linux/virtio_net.h (struct virtio_net_hdr, 10 bytes, little-endian on a
little-endian host unless TUNSETVNETBE): flags (NEEDS_CSUM 1, DATA_VALID 2), gso_type (NONE 0,
TCPV4 1, UDP 3, TCPV6 4, ECN 0x80), hdr_len, gso_size, csum_start, csum_offset. With
TUNSETOFFLOAD (include/uapi/linux/if_tun.h: TUN_F_CSUM 1, TUN_F_TSO4 2, TUN_F_TSO6 4) Linux
hands the device whole super-frames (its TSO/GRO packets, up to 64 KiB, checksum left partial)
and takes super-frames from it to segment itself.

Here the TAP miniport's two halves of NDIS 5.1 task offload (ndisemu/offload.py) meet Linux's:
- receive: a frame whose TCP checksum Linux left partial (NEEDS_CSUM) or vouched for
  (DATA_VALID) reaches NDIS as `ChecksumValidated` — "TCP checksum succeeded"; any other partial
  checksum (UDP, extension headers) is finished here in software, as a NIC without that
  offload would hand over only complete frames;
- transmit: tcpip6's TCP frames carry partial checksums once it enabled checksum offload
  (NEEDS_CSUM), and a large send becomes one GSO_TCPV6 super-frame, cut by Linux at
  `offload.segment_size` (the link MTU less the frame's headers).
"""

from __future__ import annotations

import struct
from typing import Final

from ..offload import ChecksumValidated, complete_checksum, segment_size, tcp6_offset

HDR: Final = struct.Struct("<BBHHHH")
HDR_LEN: Final = HDR.size  # 10: TUNSETVNETHDRSZ's default
F_NEEDS_CSUM: Final = 1
F_DATA_VALID: Final = 2
GSO_NONE: Final = 0
GSO_TCPV6: Final = 4
CSUM_OFFSET_TCP: Final = 16  # the checksum field's offset in the TCP header
PLAIN: Final = bytes(HDR_LEN)  # no offload asked for this frame


def decode(data: bytes) -> bytes:
    """A frame read from the device, header stripped (see the module's docstring)."""
    flags = data[0]
    if not flags:
        return data[HDR_LEN:]
    _f, _gso, _hlen, _gsz, start, offset = HDR.unpack_from(data)
    frame = memoryview(data)[HDR_LEN:]
    tcp = tcp6_offset(frame)
    if tcp and (flags & F_DATA_VALID or (start == tcp and offset == CSUM_OFFSET_TCP)):
        return ChecksumValidated(frame)
    if flags & F_NEEDS_CSUM and start + offset + 2 <= len(frame):
        return complete_checksum(frame, start, offset)
    return bytes(frame)


def encode(frame: bytes, mtu: int, partial: bool) -> bytes:
    """The header to write before `frame`: NEEDS_CSUM for a TCP frame whose checksum tcpip6 left
    partial (`partial`: it enabled checksum offload), GSO_TCPV6 too when it is larger than the
    link; none otherwise."""
    if not partial:
        return PLAIN
    tcp = tcp6_offset(frame)
    if not tcp:
        return PLAIN
    if len(frame) - 14 <= mtu:
        return HDR.pack(F_NEEDS_CSUM, GSO_NONE, 0, 0, tcp, CSUM_OFFSET_TCP)
    thl = (frame[tcp + 12] >> 4) * 4
    return HDR.pack(F_NEEDS_CSUM, GSO_TCPV6, tcp + thl, segment_size(frame, mtu), tcp,
                    CSUM_OFFSET_TCP)
