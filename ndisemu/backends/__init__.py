"""Miniport backends on real Linux devices: TAP, and veth through AF_PACKET.

The memory wire (`ndisemu.wire`) stays the default. These backends give an emulated adapter a
real network device whose other side is a Linux network namespace, so Linux's own tools (ping,
ndisc6, nc, curl) talk to the emulated host.
"""
