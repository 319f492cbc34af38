"""Protocol constants, named as their RFCs name them (one place, cited once).

Times are seconds (floats); counts are plain ints. Configurable ones are only defaults — see
:class:`tcpip6.stack.host.HostConfig`.
"""

from __future__ import annotations

from typing import Final

# RFC 4861 §10 — Host constants
MAX_RTR_SOLICITATION_DELAY: Final = 1.0
RTR_SOLICITATION_INTERVAL: Final = 4.0
MAX_RTR_SOLICITATIONS: Final = 3
# RFC 4861 §10 — Node constants
MAX_MULTICAST_SOLICIT: Final = 3
MAX_UNICAST_SOLICIT: Final = 3
MAX_NEIGHBOR_ADVERTISEMENT: Final = 3
REACHABLE_TIME: Final = 30.0
RETRANS_TIMER: Final = 1.0
DELAY_FIRST_PROBE_TIME: Final = 5.0
MIN_RANDOM_FACTOR: Final = 0.5
MAX_RANDOM_FACTOR: Final = 1.5

# RFC 4862 §5.1 DupAddrDetectTransmits default; §5.5.3 (e) the two-hour rule
DUP_ADDR_DETECT_TRANSMITS: Final = 1
TWO_HOURS: Final = 7200.0

# RFC 7217 §6: attempts with a new DAD_Counter after a collision
IDGEN_RETRIES: Final = 3

# RFC 3810 §9 — MLDv2 timers and default values
ROBUSTNESS_VARIABLE: Final = 2
QUERY_INTERVAL: Final = 125.0
QUERY_RESPONSE_INTERVAL: Final = 10.0
UNSOLICITED_REPORT_INTERVAL: Final = 1.0
OLDER_VERSION_QUERIER_PRESENT_TIMEOUT: Final = (
    ROBUSTNESS_VARIABLE * QUERY_INTERVAL + QUERY_RESPONSE_INTERVAL
)

# RFC 8200 §4.5 / §5
REASSEMBLY_TIMEOUT: Final = 60.0
IPV6_MIN_MTU: Final = 1280

# RFC 8201 §4: a reduced PMTU estimate is retried after ten minutes ("SHOULD NOT be < 5 min")
PMTU_AGING: Final = 600.0

# RFC 6335 §6: the dynamic (ephemeral) port range
EPHEMERAL_FIRST: Final = 49152
EPHEMERAL_LAST: Final = 65535

# TCP (RFC 9293, RFC 6298, RFC 5681, RFC 1122)
# Maximum Segment Lifetime; TIME-WAIT lasts 2*MSL = 60 s (our choice, as Linux)
TCP_MSL: Final = 30.0
TCP_RTO_INITIAL: Final = 1.0  # RFC 6298 §2.1
TCP_RTO_MIN: Final = 1.0  # RFC 6298 §2.4 ("SHOULD be rounded up to 1 second")
TCP_RTO_MAX: Final = 60.0  # RFC 6298 §2.5 (a maximum of at least 60 s)
TCP_RTO_AFTER_SYN_LOSS: Final = 3.0  # RFC 6298 §5.7
TCP_DELAYED_ACK: Final = 0.2  # our choice; RFC 9293 §3.8.6.3 allows up to 0.5 s
TCP_DUP_THRESH: Final = 3  # RFC 5681 §3.2
TCP_IPV6_DEFAULT_MSS: Final = 1220  # no MSS option: IPv6 minimum MTU 1280 - 60 (RFC 9293 §3.7.1)
TCP_HEADERS: Final = 60  # IPv6 + TCP fixed headers: MSS = MTU - 60 (RFC 9293 §3.7.1, RFC 6691)
TCP_TS_MAX_IDLE: Final = 24 * 24 * 3600.0  # RFC 7323 §5.5: TS.Recent invalid after 24 days idle

INFINITY: Final = float("inf")
