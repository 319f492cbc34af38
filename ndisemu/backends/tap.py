"""TAP devices: the emulated adapter is the fd side, Linux sees the netdev side.

The device is created in this process's namespace with TUNSETIFF (IFF_TAP | IFF_NO_PI), its fd
made non-blocking, and the netdev is then moved into the namespace where Linux's tools run.
With `offload`, the device also carries a virtio-net header per frame (IFF_VNET_HDR) and Linux
is told what the fd side can take (TUNSETOFFLOAD: partial checksums, IPv6 TSO): see vnet.py.
"""

from __future__ import annotations

import fcntl
import os
import struct

TUNSETIFF = 0x400454CA
TUNSETCARRIER = 0x400454E2  # _IOW('T', 226, int), linux/if_tun.h (Linux 4.19+)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0  # _IOW('T', 208, unsigned int), include/uapi/linux/if_tun.h
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
#: What the offloading TAP miniport takes from Linux: partial checksums and IPv6 super-frames
#: (its stack is IPv6; IPv4 stays plain, as the IPv4 binder answers frame by frame).
TAP_OFFLOADS = TUN_F_CSUM | TUN_F_TSO6


def open_tap(name: str, *, offload: int | None = None) -> int:
    """Create (or attach to) TAP device `name`; returns a non-blocking fd. With `offload` (the
    TUN_F_* bits), frames carry a virtio-net header both ways (ndisemu/backends/vnet.py)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if offload is not None else 0)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
        if offload is not None:
            fcntl.ioctl(fd, TUNSETOFFLOAD, offload)
    except OSError:
        os.close(fd)
        raise
    return fd


def set_tap_carrier(fd: int, up: bool) -> None:
    """Carrier on or off on the TAP netdev: Linux sees LOWER_UP come and go (a cable)."""
    fcntl.ioctl(fd, TUNSETCARRIER, struct.pack("i", 1 if up else 0))
