"""TAP devices: the emulated adapter is the fd side, Linux sees the netdev side.

The device is created in this process's namespace with TUNSETIFF (IFF_TAP | IFF_NO_PI), its fd
made non-blocking, and the netdev is then moved into the namespace where Linux's tools run.
"""

from __future__ import annotations

import fcntl
import os
import struct

TUNSETIFF = 0x400454CA
TUNSETCARRIER = 0x400454E2  # _IOW('T', 226, int), linux/if_tun.h (Linux 4.19+)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def open_tap(name: str) -> int:
    """Create (or attach to) TAP device `name`; returns a non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def set_tap_carrier(fd: int, up: bool) -> None:
    """Carrier on or off on the TAP netdev: Linux sees LOWER_UP come and go (a cable)."""
    fcntl.ioctl(fd, TUNSETCARRIER, struct.pack("i", 1 if up else 0))
