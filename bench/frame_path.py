"""What one frame costs inside the process, without a device: no root, no TAP, no Linux.

An Echo Request goes into a bound adapter as the fd reader hands it over (`Kernel.interrupt`:
the miniport's receive, NDIS's indication, tcpip6's receive item on the critical queue, the
worker's turn, the stack, the reply's send back through NDIS to the wire end, which counts it),
and the naive responder's per-frame work (`bench/naive_responder.py`'s `echo_reply`) gets the
same frame, in the same run. Three ways each:

* **hot**: frames one after another, one per interrupt (`ping -f` with one in flight, minus the
  device and the wake-ups);
* **batch**: 16 frames per interrupt (what the reader hands over under `ping -f -l 16`);
* **after idle**: one frame after the process slept `--gap` ms (`ping -i 0.01`'s idle RTT: the
  caches have gone cold meanwhile, on this kind of machine, and a longer path pays more).

What is left of an RTT is the device, Linux and trio's wake-up, the same for both responders
(bench.traffic measures those, with root). The median of each counts.

Beside them, a memory probe says what an idle gap does to this machine: the time to read one
byte in each of 256 pages right after a sleep of the same gap, against the same reads without
the sleep (per page, less a loop over one page, which times the interpreter's own cold start).
Where a page costs several times as much after the gap, a longer path pays for every line it
touches (bench/README.md, "Issue 18, fourth round").

    python -m bench.frame_path                     # ~10 s; prints the table
    python -m bench.frame_path --json out.json     # and writes it
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from .errors import BenchError, BenchUsageError
from .jsonout import report
from .naive_responder import echo_reply

PEER_MAC = bytes.fromhex("020000aa0001")
PEER_LL = bytes.fromhex("fe80000000000000000000fffeaa0001")
BATCH = 16
#: frames each way sends once first, so every object and code path exists before timing
WARM_UP = 200
ECHO_REPLY = 129


class _Sink:
    """A wire end (a `WireEnd`, as the fd port is) that counts the Echo Replies the adapter
    transmits."""

    paced = False
    offloads = False

    def __init__(self) -> None:
        self.receiver: Callable[[bytes], None] | None = None
        self.sent = 0

    def attach(self, receiver: Callable[[bytes], None]) -> None:
        self.receiver = receiver

    def transmit(self, frame: bytes) -> None:
        # Echo Replies only (the host also sends its own ND, MLD and router solicitations)
        if frame[12:14] == b"\x86\xdd" and len(frame) > 54 and frame[54] == ECHO_REPLY:
            self.sent += 1

    def deliver(self, frames: list[bytes]) -> None:
        receiver = self.receiver
        assert receiver is not None
        for frame in frames:
            receiver(frame)


def _frames(mac: bytes, count: int) -> tuple[bytes, list[bytes]]:
    """A Neighbor Solicitation from the peer (so the host knows its link-layer address) and
    `count` Echo Requests from it, to the adapter's link-local address."""
    from tcpip6.wire import ethernet, icmpv6, ipv6

    ll = bytes.fromhex("fe80000000000000") + bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:]
    sol = ipv6.SOLICITED_NODE_PREFIX + ll[-3:]
    ns = icmpv6.neighbor_solicitation(PEER_LL, sol, ll, PEER_MAC)
    ns_frame = ethernet.frame(ethernet.ipv6_multicast_mac(sol), PEER_MAC, 0x86DD,
                              ipv6.packet(PEER_LL, sol, ipv6.NH_ICMPV6, 255, ns))
    reqs = [ethernet.frame(mac, PEER_MAC, 0x86DD, ipv6.packet(
        PEER_LL, ll, ipv6.NH_ICMPV6, 64,
        icmpv6.echo_request(PEER_LL, ll, 7, i & 0xFFFF, b"x" * 56))) for i in range(count)]
    return ns_frame, reqs


def _us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 2)


async def _measure(count: int, idle: int, gap: float) -> dict[str, Any]:
    from tcpip6lab.host import EmulatedHost
    from tcpip6lab.params import adapter_mac

    sink = _Sink()
    host = EmulatedHost(wire_factory=lambda cfg: sink)  # serve's driver and model defaults
    out: dict[str, Any] = {}
    answered = (0, 0)  # (Echo Replies, Echo Requests) of the emulated host
    async with trio.open_nursery() as nursery:
        await nursery.start(host.kernel.run)
        host.start()
        host.pnp.schedule(host.adapter_configs(1), start=host.kernel.now + 0.01)
        with trio.fail_after(30):
            while host.ipv6_ready() < 1:  # noqa: ASYNC110 - the host signals nothing
                await trio.sleep(0.01)
        ns_frame, reqs = _frames(adapter_mac(0), max(count, idle, WARM_UP))
        kernel = host.kernel
        kernel.interrupt(sink.deliver, [ns_frame])
        await trio.sleep(0.05)

        def emulated(frames: list[bytes]) -> None:
            kernel.interrupt(sink.deliver, frames)

        def naive(frames: list[bytes]) -> None:
            for frame in frames:
                echo_reply(frame)

        for name, fn in (("emulated", emulated), ("naive", naive)):
            sent0 = sink.sent
            fn(reqs[:WARM_UP])
            hot: list[float] = []
            for i in range(count):
                t0 = time.perf_counter()
                fn(reqs[i:i + 1])
                hot.append(time.perf_counter() - t0)
            batch: list[float] = []
            for i in range(0, count - BATCH + 1, BATCH):
                t0 = time.perf_counter()
                fn(reqs[i:i + BATCH])
                batch.append((time.perf_counter() - t0) / BATCH)
            cold: list[float] = []
            for i in range(idle):
                await trio.sleep(gap)
                t0 = time.perf_counter()
                fn(reqs[i:i + 1])
                cold.append(time.perf_counter() - t0)
            out[name] = {"hot_us": _us(hot), "batch_us": _us(batch), "after_idle_us": _us(cold)}
            if name == "emulated":
                answered = (sink.sent - sent0,
                            WARM_UP + count + (count // BATCH) * BATCH + idle)
        nursery.cancel_scope.cancel()
    if answered[0] != answered[1]:  # a frame that got no reply measured nothing
        raise BenchError(f"the emulated host answered {answered[0]} of {answered[1]} "
                         "Echo Requests")
    return out


PAGE = 4096
PROBE_PAGES = 256
PROBE_ROUNDS = 40  # per loop, after the gap and without it


def memory_probe(gap: float, rounds: int = PROBE_ROUNDS) -> dict[str, float]:
    """ns per page read: after a `gap`-second sleep, and without one (see the docstring)."""
    buf = bytearray(PROBE_PAGES * 2 * PAGE)  # every other page: no neighbour prefetch
    spread = list(range(0, len(buf), 2 * PAGE))  # lists both: the same loop, other addresses
    for i in spread:
        buf[i] = 1  # faulted in before anything is timed
    same = [0] * PROBE_PAGES
    clock = time.perf_counter_ns

    def read(offsets: list[int]) -> int:
        t0 = clock()
        total = 0
        for i in offsets:
            total += buf[i]
        return clock() - t0

    cold: dict[str, float] = {}
    hot: dict[str, float] = {}
    for name, offsets in (("spread", spread), ("same", same)):
        hot[name] = statistics.median(read(offsets) for _ in range(rounds))
        samples = []
        for _ in range(rounds):
            time.sleep(gap)
            samples.append(read(offsets))
        cold[name] = statistics.median(samples)
    return {"page_ns_after_idle": round((cold["spread"] - cold["same"]) / PROBE_PAGES, 1),
            "page_ns_hot": round((hot["spread"] - hot["same"]) / PROBE_PAGES, 1)}


def run(count: int = 20_000, idle: int = 300, gap_ms: float = 10.0) -> dict[str, Any]:
    from tcpip6lab.buildinfo import describe

    res = trio.run(_measure, count, idle, gap_ms / 1000)
    res["memory"] = memory_probe(gap_ms / 1000)
    e, n = res["emulated"], res["naive"]
    res.update(build=describe(), count=count, idle=idle, gap_ms=gap_ms, batch=BATCH,
               ratio={k: round(e[k] / n[k], 2) for k in ("hot_us", "batch_us", "after_idle_us")})
    return res


def render(res: dict[str, Any]) -> str:
    e, n, r = res["emulated"], res["naive"], res["ratio"]
    rows = [f"per frame, in process ({res['build']})",
            f"{'':24s}{'emulated':>10s}{'naive':>10s}{'ratio':>8s}"]
    for key, label in (("hot_us", "one at a time"), ("batch_us", f"in batches of {BATCH}"),
                       ("after_idle_us", f"after {res['gap_ms']:g} ms idle")):
        rows.append(f"{label:24s}{e[key]:>8.2f}us{n[key]:>8.2f}us{r[key]:>7.1f}x")
    m = res.get("memory")
    if m is not None:
        rows.append(f"memory: a page read costs {m['page_ns_after_idle']:g} ns after "
                    f"{res['gap_ms']:g} ms idle, {m['page_ns_hot']:g} ns without the gap")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.frame_path",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--count", type=int, default=20_000, help="hot frames (default 20000)")
    ap.add_argument("--idle", type=int, default=300,
                    help="frames after an idle gap (default 300)")
    ap.add_argument("--gap", type=float, default=10.0, help="the idle gap, ms (default 10)")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)
    try:
        if args.count < BATCH or args.idle < 1 or args.gap <= 0:
            raise BenchUsageError(f"--count must be at least {BATCH}, --idle at least 1 and "
                                  "--gap above 0")
    except BenchUsageError as exc:
        print(f"python -m bench.frame_path: {exc}", file=sys.stderr)
        return 2
    print(f"measuring ({args.idle} idle frames take {args.idle * args.gap / 1000 * 2:.0f} s, "
          f"the memory probe {2 * PROBE_ROUNDS * args.gap / 1000:.0f} s)...",
          file=sys.stderr, flush=True)
    try:
        res = run(args.count, args.idle, args.gap)
    except BenchError as exc:
        print(f"python -m bench.frame_path: {exc}", file=sys.stderr)
        return 1
    return report("python -m bench.frame_path", render(res), args.json, res)


if __name__ == "__main__":
    raise SystemExit(main())
