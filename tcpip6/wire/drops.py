"""Why an inbound frame was dropped.

Theory of operation: codecs in ``tcpip6.wire`` raise :class:`~tcpip6.errors.MalformedFrame`
carrying a :class:`DropReason`; responders (``tcpip6.stack``) catch it in ``handle_frame`` and count
``"drop.<NAME>"``. Bad wire data therefore never propagates past a responder, matching the
"silently discard" wording of RFC 4861 §7.1 / RFC 4443 §2.4 / RFC 1122 §3.2.1. The enum values
equal the names so counter keys and logs stay stable across refactors.
"""

from __future__ import annotations

from enum import StrEnum


class DropReason(StrEnum):
    """Stable drop-reason names; the value is the counter suffix (``drop.TRUNCATED``)."""

    TRUNCATED = "TRUNCATED"  # shorter than a fixed header / than the length fields claim
    BAD_VERSION = "BAD_VERSION"  # IP version nibble wrong
    BAD_CHECKSUM = "BAD_CHECKSUM"  # RFC 1071 sum did not verify
    BAD_LENGTH = "BAD_LENGTH"  # length fields inconsistent (IHL, message too short for its type)
    HOP_LIMIT = "HOP_LIMIT"  # ND message not sent with hop limit 255 (RFC 4861 §7.1.1)
    BAD_CODE = "BAD_CODE"  # ICMP code not valid for the type (ND: must be 0)
    BAD_OPTION = "BAD_OPTION"  # ND option: length 0, overrunning, bad lladdr (size, group MAC)
    BAD_TARGET = "BAD_TARGET"  # ND target is multicast (RFC 4861 §7.1.1/§7.1.2)
    BAD_SOURCE = "BAD_SOURCE"  # source address not allowed (multicast, or :: where forbidden)
    BAD_DEST = "BAD_DEST"  # destination not allowed (DAD NS not to solicited-node group)
    BAD_FLAGS = "BAD_FLAGS"  # e.g. solicited NA to a multicast address (RFC 4861 §7.1.2)
    NOT_FOR_US = "NOT_FOR_US"  # addressed (L2 or L3) to someone else
    UNSUPPORTED = "UNSUPPORTED"  # protocol/type/feature we do not implement (ext hdrs, frags)
    UNSOLICITED = "UNSOLICITED"  # answer with no matching request/neighbor entry
    TOO_BIG = "TOO_BIG"  # reply would exceed the interface MTU (we never fragment)
    QUEUE_FULL = "QUEUE_FULL"  # outbound packet dropped while waiting for address resolution
    # --- the full host stack (tcpip6.stack.host) ---
    ZERO_CHECKSUM = "ZERO_CHECKSUM"  # UDP over IPv6 with checksum 0 (RFC 8200 §8.1)
    BAD_HEADER = "BAD_HEADER"  # extension header malformed or in a forbidden place (RFC 8200 §4)
    UNRECOGNIZED = "UNRECOGNIZED"  # unknown option/next header/routing type -> RFC 8200 §4 action
    FRAG_INVALID = "FRAG_INVALID"  # fragment length/offset rules of RFC 8200 §4.5 broken
    FRAG_OVERLAP = "FRAG_OVERLAP"  # overlapping fragments: the whole datagram goes (RFC 5722)
    FRAG_TIMEOUT = "FRAG_TIMEOUT"  # reassembly not complete after 60 s (RFC 8200 §4.5)
    REASSEMBLY_FULL = "REASSEMBLY_FULL"  # reassembly buffers/bytes bound reached
    TOO_MANY_OPTIONS = "TOO_MANY_OPTIONS"  # options header over max_hbh/dst_options (Linux: 8)
    BAD_PADDING = "BAD_PADDING"  # > max_padding consecutive pad bytes, or PadN data not zero
    HEADER_TOO_LONG = "HEADER_TOO_LONG"  # options header over max_hbh/dst_length bytes
    TOO_MANY_HEADERS = "TOO_MANY_HEADERS"  # more than max_ext_headers extension headers
    BAD_JUMBO = "BAD_JUMBO"  # Jumbo Payload option invalid (RFC 2675 §3)
    INCOMPLETE_CHAIN = "INCOMPLETE_CHAIN"  # first fragment without the upper layer (RFC 7112)
    FRAGMENTED_ND = "FRAGMENTED_ND"  # ND message that used fragmentation (RFC 6980 §5)
    TENTATIVE = "TENTATIVE"  # addressed to an address still under DAD (RFC 4862 §5.4)
    DISABLED = "DISABLED"  # IPv6 disabled on the interface (duplicate EUI-64 link-local)
    FOR_ROUTERS = "FOR_ROUTERS"  # RS / MLD reports: hosts discard them (RFC 4861 §6.2.6)
    NO_ROUTE = "NO_ROUTE"  # off-link destination and no default router (RFC 4861 §5.2)
    NO_SOURCE = "NO_SOURCE"  # no usable (non-tentative) source address for the destination
    ADDRESS_UNREACHABLE = "ADDRESS_UNREACHABLE"  # address resolution failed (RFC 4861 §7.2.2)
    PORT_UNREACHABLE = "PORT_UNREACHABLE"  # UDP datagram for a port nobody bound
    RATE_LIMITED = "RATE_LIMITED"  # ICMPv6 error suppressed by the token bucket (RFC 4443 §2.4)
    LOOPED = "LOOPED"  # our own frame came back (our MAC as Ethernet source)
    # --- TCP (tcpip6.stack.tcp) ---
    PORT_CLOSED = "PORT_CLOSED"  # TCP segment for no connection/listener: RST (RFC 9293 §3.10.7.1)
    OUT_OF_WINDOW = "OUT_OF_WINDOW"  # sequence number not acceptable (RFC 9293 §3.10.7.4)
    PAWS = "PAWS"  # timestamp older than TS.Recent (RFC 7323 §5.3)
    NO_TIMESTAMP = "NO_TIMESTAMP"  # no TSopt after timestamps were negotiated (RFC 7323 §3.2)
    BAD_ACK = "BAD_ACK"  # ACK outside the acceptable range (RFC 9293 §3.10.7.4, RFC 5961 §5.2)
    CHALLENGE_ACK = "CHALLENGE_ACK"  # RST/SYN answered by a challenge ACK (RFC 5961 §3.2, §4.2)
    BACKLOG_FULL = "BACKLOG_FULL"  # SYN while the SYN backlog or the accept queue is full
    OOO_FULL = "OOO_FULL"  # out-of-order queue at its bound
    NO_CONNECTION = "NO_CONNECTION"  # segment valid on the wire but no state wants it
