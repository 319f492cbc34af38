"""ICMPv6 error policy (RFC 4443 §2.4): the rate limit and "was the invoking packet an error?".

Theory of operation: :class:`TokenBucket` is the limiter RFC 4443 §2.4 (f) suggests — ``burst``
tokens, refilled at ``rate`` per second of virtual time; one error costs one token.
:func:`invokes_error` walks the invoking packet's extension headers to its upper-layer header
and says whether it is an ICMPv6 error or a Redirect, to which no error may be sent (§2.4 e.1,
e.2). A non-first fragment hides its upper layer: it counts as not an error. The remaining §2.4
(e) rules — not to multicast destinations or link-layer multicast/broadcast (except Packet Too
Big and Parameter Problem code 2), not to an unspecified or multicast source — are checked by
the host, which has those facts at hand.
"""

from __future__ import annotations

from tcpip6.wire.icmpv6 import REDIRECT
from tcpip6.wire.ipv6 import HEADER_LEN, NH_DSTOPTS, NH_FRAGMENT, NH_HOPOPTS, NH_ICMPV6, NH_ROUTING


class TokenBucket:
    """``burst`` tokens refilled at ``rate`` per second (virtual time passed in)."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last: float | None = None

    def take(self, now: float) -> bool:
        if self.last is not None and now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        if self.last is None or now > self.last:
            self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def invokes_error(pkt: bytes | bytearray | memoryview) -> bool:
    """True if ``pkt`` (a whole IPv6 packet) carries an ICMPv6 error message or a Redirect."""
    n = len(pkt)
    if n < HEADER_LEN:
        return False
    nh = pkt[6]
    off = HEADER_LEN
    while off < n:
        if nh == NH_ICMPV6:
            t = pkt[off]
            return t < 128 or t == REDIRECT
        if nh in (NH_HOPOPTS, NH_DSTOPTS, NH_ROUTING):
            if off + 2 > n:
                return False
            nh, off = pkt[off], off + (pkt[off + 1] + 1) * 8
        elif nh == NH_FRAGMENT:
            if off + 8 > n or (pkt[off + 2] << 8 | pkt[off + 3]) & 0xFFF8:
                return False
            nh, off = pkt[off], off + 8
        else:
            return False
    return False
