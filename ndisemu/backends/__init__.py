"""Miniport backends: the in-memory cable (`memory`, the default: virtual time, no device),
and real Linux devices — TAP, and veth through AF_PACKET. A device backend gives an emulated
adapter a real network device whose other side is a Linux network namespace, so Linux's own
tools (ping, ndisc6, nc, curl) talk to the emulated host.
"""
