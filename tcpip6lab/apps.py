"""Applications on the emulated host that rely on TCP/IPv6 — ordinary trio code on its sockets.

KB968597: after the knot "function failures or exceptions also occur on any applications or
services that rely on TCP/IPv6". Two such applications run on every interface tcpip6 brings up
(`serve` and `demo` start them by default):

* `tcp-rr` — every TCP_PERIOD seconds it opens a TCP connection to the peer's echo service
  (port PEER_ECHO), sends one request line and reads the reply, then closes; the whole exchange
  must finish within TCP_TIMEOUT (`trio.fail_after`, as an application sets its own timeout).
* `udp-lookup` — every LOOKUP_PERIOD seconds a name-lookup-like exchange with the peer's lookup
  service (UDP port PEER_LOOKUP): a query, LOOKUP_TRY_TIMEOUT to answer it, LOOKUP_TRIES
  attempts (retries, like a stub resolver), then `LookupFailed` raised to the application.

The exceptions are the ones an application sees (trio.TooSlowError, trio.BrokenResourceError,
tcpip6.errors.SocketError, LookupFailed); each is counted per application and adapter, with the
last error's text. In the unpatched host an interface that stops answering makes each
application fail within its own timeout plus one period; in the fixed host they never fail.

The peer service on the other side of each adapter is `tcpip6lab.peerd` in the namespace (TAP and
veth) or, on memory wires, `tcpip6lab.peer.PeerServices` (a second instance of the IPv6 host
stack on the peer's side of the cable). Both speak the same two protocols:

    TCP echo:   bytes back as received (RFC 862)
    lookup:     "Q <id> <name>\n"  ->  "A <id> <name> <address>\n"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import trio

from tcpip6.errors import Tcpip6Error
from tcpip6.wire.ipv6 import addr_str

from .errors import ApplicationError
from .status import ApplicationsStatus, AppTotals

if TYPE_CHECKING:
    from .host import EmulatedHost

PEER_ECHO = 7
PEER_LOOKUP = 53
TCP_PERIOD = 1.0
TCP_TIMEOUT = 2.0
LOOKUP_PERIOD = 1.0
LOOKUP_TRY_TIMEOUT = 0.5
LOOKUP_TRIES = 3
APPS = ("tcp-rr", "udp-lookup")


class LookupFailed(ApplicationError):
    """No answer to a lookup after every retry (what a resolver raises to its caller)."""


class ReplyMismatch(ApplicationError):
    """The peer answered something else than the request asked for."""


@dataclass
class AppStats:
    app: str
    adapter: str
    attempts: int = 0
    ok: int = 0
    failures: int = 0
    timeouts: int = 0
    retries: int = 0
    last_ok_at: float | None = None
    last_failure_at: float | None = None
    last_error: str | None = None
    first_failure_at: float | None = None

    def succeeded(self, now: float) -> None:
        self.ok += 1
        self.last_ok_at = now

    def failed(self, now: float, exc: BaseException) -> None:
        self.failures += 1
        self.last_failure_at = now
        if self.first_failure_at is None:
            self.first_failure_at = now
        if isinstance(exc, trio.TooSlowError):
            self.timeouts += 1
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Applications:
    """The applications of one host, on every interface as it comes up."""

    def __init__(self, host: EmulatedHost, peer_address: Callable[[str], bytes],
                 only: Callable[[str], bool] | None = None) -> None:
        self.host = host
        self.peer_address = peer_address  # adapter name -> the peer service's IPv6 address
        self.only = only  # run on the interfaces it accepts (default: every one)
        self.stats: dict[tuple[str, str], AppStats] = {}
        #: called with (stats, when, exception) at each failed exchange (bench.soak checks
        #: every one against its fault windows)
        self.on_failure: list[Callable[[AppStats, float, BaseException], None]] = []

    def _failed(self, st: AppStats, exc: BaseException) -> None:
        now = self.host.kernel.now
        st.failed(now, exc)
        for hook in self.on_failure:
            hook(st, now, exc)

    def enable(self, nursery: trio.Nursery) -> None:
        def up(adapter: str) -> None:
            if self.only is None or self.only(adapter):
                nursery.start_soon(self.run_interface, adapter)

        self.host.tcpip6.on_up.append(up)

    def _stats(self, app: str, adapter: str) -> AppStats:
        st = self.stats.get((app, adapter))
        if st is None:
            st = self.stats[(app, adapter)] = AppStats(app, adapter)
        return st

    async def run_interface(self, adapter: str) -> None:
        """Both applications on `adapter` while its interface is up."""
        with self.host.while_up(adapter):
            await self._address_ready(adapter)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.tcp_rr, adapter)
                nursery.start_soon(self.udp_lookup, adapter)

    async def _address_ready(self, adapter: str) -> None:
        """Start once the interface's link-local address has passed DAD (like a service that
        waits for its address), so that the first exchange does not fail for want of one."""
        from tcpip6.stack.addrconf import AddrState

        binder = self.host.tcpip6

        def ready() -> bool:
            state = binder.interfaces.get(adapter)
            stack = state.stack if state is not None else None
            return stack is None or stack.address_state(stack.link_local) is AddrState.PREFERRED

        while not ready():
            event = trio.Event()
            binder.wake_when(ready, event)
            try:
                await event.wait()
            finally:
                if not event.is_set():
                    binder.forget_waiter(event)

    # -- the applications -----------------------------------------------------------------------

    async def tcp_rr(self, adapter: str) -> None:
        st = self._stats("tcp-rr", adapter)
        sockets = self.host.sockets
        peer = self.peer_address(adapter)
        seq = 0
        while True:
            start = trio.current_time()
            seq += 1
            st.attempts += 1
            request = f"REQ {adapter} {seq}\n".encode()
            try:
                with trio.fail_after(TCP_TIMEOUT):
                    stream = await sockets.open_tcp_stream(adapter, peer, PEER_ECHO)
                    async with stream:
                        await stream.send_all(request)
                        got = b""
                        while len(got) < len(request):
                            chunk = await stream.receive_some(4096)
                            if not chunk:
                                raise ReplyMismatch("connection closed before the reply")
                            got += chunk
                        if got != request:
                            raise ReplyMismatch(f"echo returned {got[:40]!r}")
            except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError,
                    Tcpip6Error, ApplicationError) as exc:
                self._failed(st, exc)
            else:
                st.succeeded(self.host.kernel.now)
            await trio.sleep_until(start + TCP_PERIOD if trio.current_time() < start + TCP_PERIOD
                                   else trio.current_time())

    async def lookup(self, sock: Any, peer: bytes, qid: int, name: str, st: AppStats) -> str:
        """One lookup with retries: the answer's address, or LookupFailed."""
        query = f"Q {qid} {name}\n".encode()
        prefix = f"A {qid} ".encode()
        for attempt in range(LOOKUP_TRIES):
            if attempt:
                st.retries += 1
            await sock.sendto(query, (peer, PEER_LOOKUP))
            with trio.move_on_after(LOOKUP_TRY_TIMEOUT):
                while True:
                    data, _src = await sock.recvfrom()
                    if data.startswith(prefix):
                        return str(data.split()[-1].decode(errors="replace"))
        raise LookupFailed(f"no answer for {name} after {LOOKUP_TRIES} tries "
                           f"({LOOKUP_TRY_TIMEOUT:g}s each)")

    async def udp_lookup(self, adapter: str) -> None:
        st = self._stats("udp-lookup", adapter)
        peer = self.peer_address(adapter)
        qid = 0
        sock: Any = None
        try:
            while True:
                start = trio.current_time()
                qid += 1
                st.attempts += 1
                try:
                    if sock is None:
                        sock = await self.host.sockets.udp_socket(adapter)
                    await self.lookup(sock, peer, qid, f"{adapter}.peer.lab", st)
                except (LookupFailed, Tcpip6Error) as exc:
                    self._failed(st, exc)
                else:
                    st.succeeded(self.host.kernel.now)
                await trio.sleep_until(max(start + LOOKUP_PERIOD, trio.current_time()))
        finally:
            if sock is not None:
                sock.close()

    # -- observation ----------------------------------------------------------------------------

    def totals(self) -> dict[str, AppTotals]:
        out: dict[str, AppTotals] = {}
        for app in APPS:
            rows = [s for (a, _), s in sorted(self.stats.items()) if a == app]
            last = max((s for s in rows if s.last_failure_at is not None),
                       key=lambda s: s.last_failure_at or 0.0, default=None)
            out[app] = {"attempts": sum(s.attempts for s in rows),
                        "ok": sum(s.ok for s in rows),
                        "failures": sum(s.failures for s in rows),
                        "timeouts": sum(s.timeouts for s in rows),
                        "retries": sum(s.retries for s in rows),
                        "failing_adapters": sum(1 for s in rows if s.last_failure_at is not None
                                                and (s.last_ok_at is None
                                                     or s.last_failure_at > s.last_ok_at)),
                        "adapters": len(rows),
                        "last_error": last.last_error if last is not None else None}
        return out

    def failures(self) -> int:
        return sum(s.failures for s in self.stats.values())

    def as_dict(self) -> ApplicationsStatus:
        return {"totals": self.totals(),
                "per_adapter": [asdict(s) for _, s in sorted(self.stats.items())],
                "peer": {a: addr_str(self.peer_address(a)) for (_, a) in sorted(self.stats)}}

    def summary(self) -> str:
        """One line for progress output: per application ok/failed."""
        return "  ".join(f"{app} {t['ok']} ok/{t['failures']} failed"
                         for app, t in self.totals().items())
