"""Protocol constants, named as their RFCs name them (one place, cited once).

Times are seconds (floats); counts are plain ints. Configurable ones are only defaults — see
:class:`tcpip6.stack.host.HostConfig`.
"""

from __future__ import annotations

# RFC 4861 §10 — Host constants
MAX_RTR_SOLICITATION_DELAY = 1.0
RTR_SOLICITATION_INTERVAL = 4.0
MAX_RTR_SOLICITATIONS = 3
# RFC 4861 §10 — Node constants
MAX_MULTICAST_SOLICIT = 3
MAX_UNICAST_SOLICIT = 3
MAX_NEIGHBOR_ADVERTISEMENT = 3
REACHABLE_TIME = 30.0
RETRANS_TIMER = 1.0
DELAY_FIRST_PROBE_TIME = 5.0
MIN_RANDOM_FACTOR = 0.5
MAX_RANDOM_FACTOR = 1.5

# RFC 4862 §5.1 DupAddrDetectTransmits default; §5.5.3 (e) the two-hour rule
DUP_ADDR_DETECT_TRANSMITS = 1
TWO_HOURS = 7200.0

# RFC 7217 §6: attempts with a new DAD_Counter after a collision
IDGEN_RETRIES = 3

# RFC 3810 §9 — MLDv2 timers and default values
ROBUSTNESS_VARIABLE = 2
QUERY_INTERVAL = 125.0
QUERY_RESPONSE_INTERVAL = 10.0
UNSOLICITED_REPORT_INTERVAL = 1.0
OLDER_VERSION_QUERIER_PRESENT_TIMEOUT = (
    ROBUSTNESS_VARIABLE * QUERY_INTERVAL + QUERY_RESPONSE_INTERVAL
)

# RFC 8200 §4.5 / §5
REASSEMBLY_TIMEOUT = 60.0
IPV6_MIN_MTU = 1280

# RFC 8201 §4: a reduced PMTU estimate is retried after ten minutes ("SHOULD NOT be < 5 min")
PMTU_AGING = 600.0

# RFC 6335 §6: the dynamic (ephemeral) port range
EPHEMERAL_FIRST = 49152
EPHEMERAL_LAST = 65535

# TCP (RFC 9293, RFC 6298, RFC 5681, RFC 1122)
TCP_MSL = 30.0  # Maximum Segment Lifetime; TIME-WAIT lasts 2*MSL = 60 s (our choice, as Linux)
TCP_RTO_INITIAL = 1.0  # RFC 6298 §2.1
TCP_RTO_MIN = 1.0  # RFC 6298 §2.4 ("SHOULD be rounded up to 1 second")
TCP_RTO_MAX = 60.0  # RFC 6298 §2.5 (a maximum of at least 60 s)
TCP_RTO_AFTER_SYN_LOSS = 3.0  # RFC 6298 §5.7
TCP_DELAYED_ACK = 0.2  # our choice; RFC 9293 §3.8.6.3 allows up to 0.5 s
TCP_DUP_THRESH = 3  # RFC 5681 §3.2
TCP_IPV6_DEFAULT_MSS = 1220  # no MSS option: IPv6 minimum MTU 1280 - 60 (RFC 9293 §3.7.1)
TCP_HEADERS = 60  # IPv6 + TCP fixed headers: MSS = MTU - 60 (RFC 9293 §3.7.1, RFC 6691)
TCP_TS_MAX_IDLE = 24 * 24 * 3600.0  # RFC 7323 §5.5: TS.Recent invalid after 24 days idle

INFINITY = float("inf")
