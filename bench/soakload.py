"""The soak's load from Linux's side (run by bench.soak inside the namespace, never by hand).

Real Linux sockets and tools against the emulated host's adapters, in a loop of cycles that
bench.soak designs (its JSON spec is argv[1]): `ping -6` at a fixed rate to every target for
the whole run, and, outside each cycle's quiet phase, HTTP requests (GET /status.json, one
connection each), UDP echo requests (port 7) and one paced TCP bulk stream per target into the
discard service (port 9). Every failed request is a JSON line on stdout with the wall-clock time
its failure was seen and its own timeout; successes are counted and reported every
`report` seconds. Lines: {"kind": "fail", ...} | {"kind": "counts", ...} | {"kind": "ready"}.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import trio

HTTP_TIMEOUT = 3.0
UDP_TIMEOUT = 1.0
BULK_TIMEOUT = 5.0
PING_TIMEOUT = 1.0
_NO_ANSWER = re.compile(rb"^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)")
_REPLY = re.compile(rb"bytes from .*icmp_seq=(\d+)")


class Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.start = float(spec["start"])  # wall clock of the soak's t = 0
        self.cycle = float(spec["cycle"])
        self.quiet = float(spec["quiet"])
        self.counts: dict[str, int] = {}
        self.out = sys.stdout

    def emit(self, rec: dict[str, Any]) -> None:
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    def ok(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def fail(self, kind: str, target: str, timeout: float, error: str,
             at: float | None = None) -> None:
        self.counts[kind + "_failed"] = self.counts.get(kind + "_failed", 0) + 1
        self.emit({"kind": "fail", "request": kind, "target": target,
                   "t": (at if at is not None else time.time()) - self.start,
                   "timeout": timeout, "error": error})

    def busy(self) -> bool:
        """Outside the cycle's quiet phase (the load pauses there)."""
        phase = (time.time() - self.start) % self.cycle
        return phase < self.cycle - self.quiet

    async def until_busy(self) -> None:
        while not self.busy():  # noqa: ASYNC110 - a phase of the clock, nothing to await on
            await trio.sleep(0.1)

    async def report(self) -> None:
        while True:
            await trio.sleep(float(self.spec["report"]))
            self.emit({"kind": "counts", "t": time.time() - self.start, "counts": self.counts})

    # -- the requests -------------------------------------------------------------------------

    async def ping(self, target: str) -> None:
        """`ping -6 -O`: it says "no answer yet" for a request one interval old; the request
        failed if no reply follows within PING_TIMEOUT of its sending."""
        interval = float(self.spec["ping_interval"])
        argv = ["ping", "-6", "-D", "-O", "-n", "-i", f"{interval:g}", "-W",
                f"{PING_TIMEOUT:g}", target]
        pending: dict[int, float] = {}  # seq -> wall time it was sent

        async def expire() -> None:
            while True:
                await trio.sleep(0.25)
                now = time.time()
                for seq, sent in list(pending.items()):
                    if now - sent > PING_TIMEOUT:
                        del pending[seq]
                        self.fail("ping", target, PING_TIMEOUT, f"no answer for icmp_seq={seq}",
                                  at=sent + PING_TIMEOUT)

        proc = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE,
                                                stderr=subprocess.DEVNULL,
                                                stdin=subprocess.DEVNULL)
        try:
            assert proc.stdout is not None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(expire)
                buf = b""
                async for chunk in proc.stdout:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        m = _NO_ANSWER.match(line)
                        if m:
                            pending[int(m.group(2))] = float(m.group(1)) - interval
                            continue
                        r = _REPLY.search(line)
                        if r:
                            pending.pop(int(r.group(1)), None)
                            self.ok("ping")
                nursery.cancel_scope.cancel()
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()

    async def http(self, target: str) -> None:
        period = float(self.spec["http_period"])
        request = (f"GET /status.json HTTP/1.1\r\nHost: [{target}]\r\nConnection: close\r\n"
                   "\r\n").encode()
        while True:
            await self.until_busy()
            start = trio.current_time()
            try:
                with trio.fail_after(HTTP_TIMEOUT):
                    stream = await trio.open_tcp_stream(target, 80)
                    async with stream:
                        await stream.send_all(request)
                        got = b""
                        while chunk := await stream.receive_some(65536):
                            got += chunk
                if not got.startswith(b"HTTP/1.1 200") or b'"schema_version"' not in got:
                    raise ValueError(f"bad reply {got[:40]!r}")
            except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError) as exc:
                self.fail("http", target, HTTP_TIMEOUT, f"{type(exc).__name__}: {exc}")
            else:
                self.ok("http")
            await trio.sleep_until(max(start + period, trio.current_time()))

    async def udp(self, target: str) -> None:
        period = float(self.spec["udp_period"])
        sock = trio.socket.socket(trio.socket.AF_INET6, trio.socket.SOCK_DGRAM)
        seq = 0
        with sock:
            await sock.connect((target, 7))
            while True:
                await self.until_busy()
                start = trio.current_time()
                seq += 1
                payload = f"soak {seq}".encode()
                try:
                    with trio.fail_after(UDP_TIMEOUT):
                        await sock.send(payload)
                        while (await sock.recv(2048)) != payload:
                            pass  # a late echo of an earlier request
                except (OSError, trio.TooSlowError) as exc:
                    self.fail("udp", target, UDP_TIMEOUT, f"{type(exc).__name__}: {exc}")
                else:
                    self.ok("udp")
                await trio.sleep_until(max(start + period, trio.current_time()))

    async def bulk(self, target: str) -> None:
        """One paced stream into the discard service during each busy phase."""
        rate = float(self.spec["bulk_bytes_per_s"])
        chunk = bytes(8192)
        while True:
            await self.until_busy()
            try:
                with trio.fail_after(BULK_TIMEOUT):
                    stream = await trio.open_tcp_stream(target, 9)
                async with stream:
                    sent = 0
                    began = trio.current_time()
                    while self.busy():
                        with trio.fail_after(BULK_TIMEOUT):
                            await stream.send_all(chunk)
                        sent += len(chunk)
                        await trio.sleep_until(began + sent / rate)
                    self.counts["bulk_bytes"] = self.counts.get("bulk_bytes", 0) + sent
                self.ok("bulk")
            except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
                self.fail("bulk", target, BULK_TIMEOUT, f"{type(exc).__name__}: {exc}")
                await trio.sleep(0.5)

    async def watch_parent(self, nursery: trio.Nursery) -> None:
        """End with the soak, however it ends (polled, as tcpip6lab.peerd does)."""
        parent = int(self.spec["parent"])
        while os.getppid() == parent:  # noqa: ASYNC110 - a parent's death signals nothing
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.watch_parent, nursery)
            nursery.start_soon(self.report)
            for target in self.spec["targets"]:
                nursery.start_soon(self.ping, target)
                nursery.start_soon(self.http, target)
                nursery.start_soon(self.udp, target)
                if float(self.spec["bulk_bytes_per_s"]) > 0:
                    nursery.start_soon(self.bulk, target)
            self.emit({"kind": "ready"})


def main() -> None:
    spec = json.loads(sys.argv[1])
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(Load(spec).run)


if __name__ == "__main__":
    main()
