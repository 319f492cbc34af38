"""Pure wire codecs: Ethernet, IPv6 and its extension headers, ICMPv6/ND, MLD, UDP, IPv4,
ICMPv4, ARP (no I/O, no clocks).

Parsers raise :class:`MalformedFrame` with a :class:`DropReason`; builders return ``bytes``.
"""

from tcpip6.errors import MalformedFrame
from tcpip6.wire.drops import DropReason

__all__ = ["DropReason", "MalformedFrame"]
