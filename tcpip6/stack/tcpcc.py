"""Pluggable TCP congestion control: the interface, NewReno (RFC 5681) and CUBIC (RFC 9438).

Theory of operation: a :class:`CongestionControl` owns ``cwnd`` and ``ssthresh`` (bytes) of one
connection and is told four things by it, always with the virtual time ``now``:

* :meth:`~CongestionControl.on_ack` — ``acked`` new bytes were cumulatively acknowledged
  outside loss recovery (slow start / congestion avoidance grow the window here);
* :meth:`~CongestionControl.on_congestion` — fast retransmit starts a recovery (RFC 5681 §3.2
  step 2, RFC 6675 §5 (4.2)): set ``ssthresh`` and ``cwnd``;
* :meth:`~CongestionControl.on_recovery_end` — the recovery point was acknowledged;
* :meth:`~CongestionControl.on_rto` — a retransmission timeout (RFC 5681 §3.1 eq. 4: the loss
  window of one segment).

Loss *recovery* (which segment to retransmit, NewReno's window inflation, RFC 6675's pipe) is the
connection's business (:mod:`tcpip6.stack.tcpconn`); it may adjust ``cwnd`` during a recovery
and hands control back through ``on_recovery_end``. New algorithms register a factory in
:data:`ALGORITHMS` under the name ``TcpConfig.congestion_control`` selects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable


def initial_window(smss: int, segments: int = 0) -> int:
    """RFC 5681 §3.1: IW = 4*SMSS if SMSS <= 1095, 3*SMSS if <= 2190, else 2*SMSS; or a
    configured number of segments (e.g. RFC 6928's 10)."""
    if segments:
        return segments * smss
    if smss > 2190:
        return 2 * smss
    if smss > 1095:
        return 3 * smss
    return 4 * smss


class CongestionControl(ABC):
    """One connection's congestion window (see module docstring)."""

    name = "abstract"

    def __init__(self, smss: int, iw_segments: int = 0) -> None:
        self.smss = smss
        self.cwnd = initial_window(smss, iw_segments)
        self.ssthresh = 0x7FFFFFFF  # RFC 5681 §3.1: "arbitrarily high"

    def set_mss(self, smss: int) -> None:
        """The effective MSS changed (negotiation, Path MTU): keep cwnd in whole segments."""
        if smss != self.smss:
            self.cwnd = max(smss, self.cwnd * smss // self.smss)
            self.smss = smss

    def loss_ssthresh(self, flight: int) -> int:
        """RFC 5681 §3.1 eq. 4: max(FlightSize / 2, 2*SMSS)."""
        return max(flight // 2, 2 * self.smss)

    @abstractmethod
    def on_ack(self, acked: int, flight: int, srtt: float | None, now: float) -> None: ...

    @abstractmethod
    def on_congestion(self, flight: int, now: float) -> None: ...

    def on_recovery_end(self, now: float) -> None:
        """RFC 6675 / RFC 6582: leave recovery with cwnd = ssthresh."""
        self.cwnd = self.ssthresh

    def on_rto(self, flight: int, now: float) -> None:
        """RFC 5681 §3.1: ssthresh per eq. 4 (RFC 5681 §3.1 note: not again after backoff)
        and cwnd = LW = 1 SMSS."""
        self.ssthresh = self.loss_ssthresh(flight)
        self.cwnd = self.smss


class NewReno(CongestionControl):
    """RFC 5681 slow start and congestion avoidance with byte counting (RFC 3465, L = 2)."""

    name = "newreno"

    def __init__(self, smss: int, iw_segments: int = 0) -> None:
        super().__init__(smss, iw_segments)
        self._bytes_acked = 0

    def on_ack(self, acked: int, flight: int, srtt: float | None, now: float) -> None:
        smss = self.smss
        if self.cwnd < self.ssthresh:  # RFC 5681 §3.1 slow start; RFC 3465 §2.2 L = 2*SMSS
            self.cwnd += min(acked, 2 * smss)
            return
        # RFC 5681 §3.1 congestion avoidance, the byte-counting form of eq. 3
        self._bytes_acked += acked
        if self._bytes_acked >= self.cwnd:
            self._bytes_acked -= self.cwnd
            self.cwnd += smss

    def on_congestion(self, flight: int, now: float) -> None:
        self.ssthresh = self.loss_ssthresh(flight)  # RFC 5681 §3.2 step 2
        self.cwnd = self.ssthresh
        self._bytes_acked = 0

    def on_rto(self, flight: int, now: float) -> None:
        super().on_rto(flight, now)
        self._bytes_acked = 0


class Cubic(CongestionControl):
    """CUBIC (RFC 9438): a cubic window growth around W_max, with the Reno-friendly region.

    Windows are computed in segments (floats), as RFC 9438 writes them, and applied in bytes.
    """

    name = "cubic"
    C = 0.4  # RFC 9438 §4.1
    BETA = 0.7  # β_cubic, RFC 9438 §4.6
    ALPHA = 3.0 * (1.0 - BETA) / (1.0 + BETA)  # α_cubic, RFC 9438 §4.3

    def __init__(self, smss: int, iw_segments: int = 0) -> None:
        super().__init__(smss, iw_segments)
        self.w_max = 0.0  # segments
        self._epoch: float | None = None  # start of the current congestion avoidance stage
        self._k = 0.0
        self._w_est = 0.0
        self._cwnd_epoch = 0.0

    def on_ack(self, acked: int, flight: int, srtt: float | None, now: float) -> None:
        smss = self.smss
        if self.cwnd < self.ssthresh:  # slow start as Reno (RFC 9438 §4.10)
            self.cwnd += min(acked, 2 * smss)
            return
        cwnd = self.cwnd / smss
        if self._epoch is None:  # RFC 9438 §4.2: a new congestion avoidance stage
            self._epoch = now
            self._cwnd_epoch = cwnd
            self._w_est = cwnd
            if self.w_max > cwnd:
                self._k = ((self.w_max - cwnd) / self.C) ** (1.0 / 3.0)  # eq. 2
            else:
                self._k = 0.0
                self.w_max = cwnd
        rtt = srtt if srtt is not None else 0.0
        t = now - self._epoch
        # RFC 9438 §4.3: W_est grows by α_cubic per cwnd of acknowledged segments
        self._w_est += self.ALPHA * (acked / smss) / cwnd
        w_cubic_t = self.C * (t - self._k) ** 3 + self.w_max  # eq. 1
        if w_cubic_t < self._w_est:  # Reno-friendly region (§4.3)
            target = self._w_est
        else:  # concave / convex regions (§4.4, §4.5): target W_cubic(t + RTT), clamped
            target = self.C * (t + rtt - self._k) ** 3 + self.w_max
            target = min(max(target, cwnd), 1.5 * cwnd)
        if target > cwnd:
            cwnd += (target - cwnd) / cwnd * (acked / smss)
        self.cwnd = max(int(cwnd * smss), self.cwnd)

    def on_congestion(self, flight: int, now: float) -> None:
        cwnd = self.cwnd / self.smss
        # RFC 9438 §4.7 fast convergence
        self.w_max = cwnd * (1.0 + self.BETA) / 2.0 if cwnd < self.w_max else cwnd
        # RFC 9438 §4.6: ssthresh = cwnd_prior * β_cubic, at least 2 segments
        self.ssthresh = max(int(self.cwnd * self.BETA), 2 * self.smss)
        self.cwnd = self.ssthresh
        self._epoch = None

    def on_rto(self, flight: int, now: float) -> None:
        # RFC 9438 §4.8: remember W_max as for a congestion event; cwnd to the loss window
        cwnd = self.cwnd / self.smss
        self.w_max = cwnd * (1.0 + self.BETA) / 2.0 if cwnd < self.w_max else cwnd
        self.ssthresh = max(int(self.cwnd * self.BETA), 2 * self.smss)
        self.cwnd = self.smss
        self._epoch = None


Factory = Callable[[int, int], CongestionControl]
"""``(smss, initial_window_segments) -> CongestionControl``"""

ALGORITHMS: dict[str, Factory] = {"newreno": NewReno, "cubic": Cubic}
