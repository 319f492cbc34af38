"""Instructions and cache lines per frame, counted by valgrind: the cold path's size, steadily.

`bench.frame_path` times a frame after an idle gap, and on a shared VM that time moves two- or
threefold between runs, with the host (bench/README.md, "fourth round"). What it pays for is
steady, though: after a gap, about one trip to memory per distinct cache line of code and data
the frame touches. This counts those lines. valgrind's callgrind runs the same frames as
`bench.frame_path` with its instrumentation switched on for one frame at a time; the cache
simulator starts empty each time it is switched on, so its misses in a 32 MiB last-level
cache are the distinct 64-byte lines the frame touches, and its instruction count is the hot
cost. Three ways, each the median of ``--frames`` frames, less the cost of switching the
counting on and off:

* **emulated**: an Echo Request through the whole path (`Kernel.interrupt`: the miniport,
  NDIS, tcpip6's receive item on the critical queue, the stack, the reply back through NDIS),
  as `bench.frame_path` sends it;
* **dropped**: a frame to another MAC address, which NDIS's packet filter drops — the
  interrupt, the miniport and NDIS alone;
* **naive**: the naive responder's `echo_reply` of the same request.

The counts depend on the build (the wheel's compiled modules or pure Python: the first line
says which) and on the Python version, not on the machine's mood; compare runs of one setup.

    python -m bench.frame_lines                    # ~1 min; needs valgrind and a C compiler
    python -m bench.frame_lines --json out.json    # and writes it
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from .errors import BenchError, BenchUsageError
from .frame_path import ECHO_REPLY, _frames
from .jsonout import report
from .naive_responder import echo_reply

VARIANTS = ("emulated", "dropped", "naive")
#: the simulated last-level cache: large enough that a frame's misses are its distinct lines
LL_CACHE = "--LL=33554432,16,64"
#: the client requests the child makes (valgrind/callgrind.h): counting on, off, and a dump
#: of what was counted since the last one, named
HELPER_C = """\
#include <valgrind/callgrind.h>
void t6l_on(void) { CALLGRIND_START_INSTRUMENTATION; }
void t6l_off(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void t6l_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""
#: a timer this close (kernel seconds) would fire inside a measured frame: wait it out first
TIMER_MARGIN = 0.2
OTHER_MAC = bytes.fromhex("0200005e0bad")


class _End:
    """A wire end as lean as the fd port (`ndisemu.backends.fdport`, compiled): the miniport
    hands each frame it sends to a C method (``list.append``) and the frames go in through
    `Kernel.interrupt` straight to the miniport's receive, so the counts hold the emulated
    path, not this bench's Python (`bench.frame_path`'s sink is two Python methods)."""

    paced = False
    offloads = False

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.transmit = self.sent.append
        self.receiver: Callable[[bytes], None] | None = None

    def attach(self, receiver: Callable[[bytes], None]) -> None:
        self.receiver = receiver

    def echo_replies(self) -> int:
        return sum(1 for f in self.sent
                   if f[12:14] == b"\x86\xdd" and len(f) > 54 and f[54] == ECHO_REPLY)


def build_helper(directory: Path) -> Path:
    """Compile the client-request helper; BenchUsageError if valgrind or a compiler is
    missing."""
    if shutil.which("valgrind") is None:
        raise BenchUsageError("needs valgrind (Debian: apt install valgrind)")
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    if shutil.which(cc[0]) is None:
        raise BenchUsageError(f"needs a C compiler ({cc[0]} not found)")
    src, lib = directory / "t6l_callgrind.c", directory / "t6l_callgrind.so"
    src.write_text(HELPER_C)
    done = subprocess.run([*cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["?"])[0]
        raise BenchUsageError(f"cannot build the callgrind helper (valgrind's headers: "
                              f"valgrind/callgrind.h): {first}")
    return lib


def parse_dump(text: str) -> tuple[str, dict[str, int]]:
    """One callgrind dump: its name (the client request's) and its totals by event."""
    name = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
    events = re.search(r"^events: (.*)$", text, re.M)
    totals = re.search(r"^totals: (.*)$", text, re.M)
    if not (name and events and totals):
        raise BenchError("a callgrind dump without a name, events or totals")
    counts = [int(v) for v in totals.group(1).split()]
    keys = events.group(1).split()
    return name.group(1), dict(zip(keys, counts + [0] * (len(keys) - len(counts)), strict=True))


def summarise(dumps: list[tuple[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Medians per variant, less the median of the empty measurements (``nop``)."""
    by: dict[str, list[dict[str, int]]] = {}
    for name, counts in dumps:
        by.setdefault(name.split(":")[0], []).append(counts)
    if "nop" not in by or any(v not in by for v in VARIANTS):
        raise BenchError(f"callgrind measured {sorted(by)}, not nop and {', '.join(VARIANTS)}")

    def medians(rows: list[dict[str, int]]) -> dict[str, int]:
        code = [r["ILmr"] for r in rows]
        data = [r["DLmr"] + r["DLmw"] for r in rows]
        return {"instructions": round(statistics.median(r["Ir"] for r in rows)),
                "code_lines": round(statistics.median(code)),
                "data_lines": round(statistics.median(data)),
                "lines": round(statistics.median(c + d for c, d in zip(code, data,
                                                                       strict=True)))}

    nop = medians(by["nop"])
    return {v: {k: max(0, n - nop[k]) for k, n in medians(by[v]).items()} for v in VARIANTS}


async def _child(helper: Path, frames: int) -> None:
    """Under callgrind: the frames, each counted on its own and dumped by name."""
    from tcpip6lab.host import EmulatedHost
    from tcpip6lab.params import adapter_mac

    lib = ctypes.CDLL(str(helper))
    on, off, dump = lib.t6l_on, lib.t6l_off, lib.t6l_dump
    dump.argtypes = [ctypes.c_char_p]
    end = _End()
    host = EmulatedHost(wire_factory=lambda cfg: end)
    async with trio.open_nursery() as nursery:
        await nursery.start(host.kernel.run)
        host.start()
        host.pnp.schedule(host.adapter_configs(1), start=host.kernel.now + 0.01)
        while host.ipv6_ready() < 1:  # noqa: ASYNC110 - the host signals nothing
            await trio.sleep(0.01)
        ns_frame, reqs = _frames(adapter_mac(0), 200 + frames)
        kernel = host.kernel
        receive = end.receiver
        assert receive is not None
        kernel.interrupt(receive, ns_frame)
        for req in reqs[:200]:  # warm-up: every object and code path made and taken once
            kernel.interrupt(receive, req)
            echo_reply(req)
        interrupt = kernel.interrupt
        for _ in range(2):  # the helper's own first calls (symbol binding) are not counted
            on()
            off()
            dump(b"warm")
        replies = end.echo_replies()
        for i in range(frames):
            req = reqs[200 + i]
            dropped = OTHER_MAC + req[6:]
            for variant in ("nop", *VARIANTS):
                while True:  # no timer (the heartbeat, the stack's) inside the frame
                    await trio.sleep(0.02)
                    kernel._sync_now()
                    if not kernel._timers or kernel._timers[0][0] - kernel.now > TIMER_MARGIN:
                        break
                tag = f"{variant}:{i}".encode()
                if variant == "nop":
                    on()
                    off()
                elif variant == "emulated":
                    on()
                    interrupt(receive, req)
                    off()
                elif variant == "dropped":
                    on()
                    interrupt(receive, dropped)
                    off()
                else:
                    on()
                    echo_reply(req)
                    off()
                dump(tag)
        nursery.cancel_scope.cancel()
    answered = end.echo_replies() - replies
    if answered != frames:
        raise BenchError(f"the emulated host answered {answered} of {frames} measured Echo "
                         "Requests")


def run(frames: int = 5) -> dict[str, Any]:
    """Run the child under callgrind and return the counts per frame."""
    from tcpip6lab.buildinfo import describe

    with tempfile.TemporaryDirectory(prefix="t6l-lines-") as tmp:
        d = Path(tmp)
        helper = build_helper(d)
        print(f"counting {frames} frame(s) each way under callgrind (about a minute)...",
              file=sys.stderr, flush=True)
        out = d / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--cache-sim=yes",
               LL_CACHE, f"--callgrind-out-file={out}",
               sys.executable, *(["-P"] if sys.flags.safe_path else []), "-m",
               "bench.frame_lines", "--child", str(helper), "--frames", str(frames)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if not ln.startswith(("==", "--"))]
            raise BenchError(f"the run under callgrind failed: {(lines or ['?'])[-1]}")
        dumps = [parse_dump(p.read_text()) for p in sorted(d.glob("callgrind.out.*"))]
    per = summarise([dmp for dmp in dumps if not dmp[0].startswith("warm")])
    e, n = per["emulated"], per["naive"]
    return {"build": describe(), "frames": frames, **per,
            "ratio": {k: round(e[k] / n[k], 2) if n[k] else None
                      for k in ("instructions", "lines")}}


def render(res: dict[str, Any]) -> str:
    rows = [f"per frame, counted by callgrind, median of {res['frames']} ({res['build']})",
            f"{'':34s}{'instructions':>13s}{'cache lines':>13s}{'code':>8s}{'data':>8s}"]
    labels = {"emulated": "emulated Echo Request (whole path)",
              "dropped": "  a frame NDIS drops (other MAC)",
              "naive": "naive responder's echo_reply"}
    for v in VARIANTS:
        c = res[v]
        rows.append(f"{labels[v]:34s}{c['instructions']:>13,}{c['lines']:>13,}"
                    f"{c['code_lines']:>8,}{c['data_lines']:>8,}")
    r = {k: "-" if v is None else f"{v:.2f}x" for k, v in res["ratio"].items()}
    rows.append(f"{'emulated / naive':34s}{r['instructions']:>13s}{r['lines']:>13s}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.frame_lines",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--frames", type=int, default=5,
                    help="frames counted per variant; the median counts (default 5)")
    ap.add_argument("--json", type=Path, help="also write the counts here")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # the run under callgrind
    args = ap.parse_args(argv)
    if args.child is not None:
        trio.run(_child, args.child, args.frames)
        return 0
    try:
        if args.frames < 1:
            raise BenchUsageError("--frames must be at least 1")
        res = run(args.frames)
    except BenchError as exc:
        sys.stderr.write(f"bench.frame_lines: error: {exc}\n")
        return 2
    return report("bench.frame_lines", render(res), args.json, res)


if __name__ == "__main__":
    sys.exit(main())
