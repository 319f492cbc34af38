"""TCP micro-benchmark: an in-memory bulk transfer between two Ipv6Host instances.

Host A sends ``--mb`` megabytes to host B over a lossless in-memory link with zero delay: every
frame either host returns is handed straight to the other (FIFO), and virtual time only jumps to
the next deadline when nothing is in flight. The whole per-segment path is measured — the sender
cutting, checksumming and framing segments through the IPv6 output path and the neighbor cache,
the receiver parsing Ethernet, IPv6 and TCP, verifying checksums, reassembling and acknowledging,
and the sender processing those ACKs — but no I/O and no trio. Wall time is
``time.perf_counter``; the received bytes are checked (SHA-256) after the clock stops.

In the same run, the same volume goes through a plain Python bytes copy in MSS-sized pieces
(slice the source, append to a bytearray) as a floor: the cheapest per-segment Python byte
handling there is, to read the stack's number against.

    python -m bench.tcp_micro [--mb 20] [--mtu 1500] [--cc newreno] [--profile] [--out DIR]

Prints segments/s and MB/s of both and writes ``tcp_micro.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import platform
import pstats
import random
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from tcpip6.stack.context import HostConfig, TcpConfig
from tcpip6.stack.host import Ipv6Host
from tcpip6.stack.tcpconn import TcpState

A_MAC = bytes.fromhex("02000000a001")
B_MAC = bytes.fromhex("02000000b001")


def _hosts(mtu: int, cc: str) -> tuple[Ipv6Host, Ipv6Host]:
    tcp = TcpConfig(rto_min=0.2, congestion_control=cc, send_buffer=1 << 20,
                    recv_buffer=1 << 20)  # fmt: skip
    cfg = HostConfig(startup_delay=False, dad_transmits=0, max_rtr_solicitations=0, tcp=tcp)
    a = Ipv6Host(A_MAC, mtu, rng=random.Random(1), config=cfg)
    b = Ipv6Host(B_MAC, mtu, rng=random.Random(2), config=cfg)
    return a, b


def run_stack(data: bytes, mtu: int, cc: str) -> dict[str, Any]:
    """Transfer ``data`` from A to B; the timed part starts after the handshake."""
    a, b = _hosts(mtu, cc)
    hosts = (a, b)
    queues: tuple[deque[bytes], deque[bytes]] = (deque(), deque())  # frames *to* A, *to* B
    now = 0.0

    def pump() -> None:
        """Deliver until both directions are empty; then run due timers."""
        nonlocal now
        to_a, to_b = queues
        while to_a or to_b:
            while to_b:
                to_a.extend(b.handle_frame(to_b.popleft(), now))
            while to_a:
                to_b.extend(a.handle_frame(to_a.popleft(), now))

    queues[1].extend(a.start(now))
    queues[0].extend(b.start(now))
    pump()
    lst = b.tcp_listen(5001, 4)
    conn, frames = a.tcp_connect((b.link_local, 5001), now)
    queues[1].extend(frames)
    pump()
    srv = lst.accept()
    assert srv is not None and conn.state is TcpState.ESTABLISHED
    got = bytearray()
    view = memoryview(data)
    pos = 0
    shut = False
    eof = False
    to_a, to_b = queues
    t0 = time.perf_counter()
    while not eof:
        while pos < len(data) and (space := conn.send_space):
            n = min(space, len(data) - pos)
            to_b.extend(conn.send(view[pos : pos + n], now))
            pos += n
        if pos == len(data) and not shut:
            shut = True
            to_b.extend(conn.shutdown_write(now))
        if to_a or to_b:
            while to_b:
                to_a.extend(b.handle_frame(to_b.popleft(), now))
            while to_a:
                to_b.extend(a.handle_frame(to_a.popleft(), now))
        while srv.readable:
            chunk = srv.recv(1 << 22)
            if not chunk:
                eof = True
                break
            got += chunk
        if not (to_a or to_b):
            d = min((x for h in hosts if (x := h.next_deadline()) is not None), default=None)
            stuck = (pos == len(data) and not eof) or not conn.send_space
            if d is not None and (d <= now or stuck):
                now = max(now, d)
                to_b.extend(a.handle_timer(now))
                to_a.extend(b.handle_timer(now))
    wall = time.perf_counter() - t0
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), "bytes differ"
    segs = a.counters["tcp.tx"] + b.counters["tcp.tx"]
    return {
        "seconds": wall,
        "MB_per_s": len(data) / wall / 1e6,
        "Mbit_per_s": len(data) * 8 / wall / 1e6,
        "segments": segs,
        "segments_per_s": segs / wall,
        "data_segments": a.counters["tcp.tx"],
        "ack_segments": b.counters["tcp.tx"],
        "retransmits": a.counters["tcp.retransmits"],
        "virtual_seconds": now,
        "smss": conn.smss,
        "cc": cc,
    }


def run_floor(data: bytes, mss: int) -> dict[str, Any]:
    """The same volume in MSS-sized pieces: slice (a copy) and append to a bytearray."""
    t0 = time.perf_counter()
    out = bytearray()
    n = len(data)
    pieces = 0
    for i in range(0, n, mss):
        out += data[i : i + mss]
        pieces += 1
    wall = time.perf_counter() - t0
    assert len(out) == n
    return {"seconds": wall, "MB_per_s": n / wall / 1e6, "Mbit_per_s": n * 8 / wall / 1e6,
            "pieces": pieces, "pieces_per_s": pieces / wall}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    doc = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m bench.tcp_micro", description=doc)
    p.add_argument("--mb", type=float, default=20.0, help="megabytes to transfer (default 20)")
    p.add_argument("--mtu", type=int, default=1500, help="link MTU (default 1500)")
    p.add_argument("--cc", default="newreno", help="congestion control (newreno, cubic)")
    p.add_argument("--profile", action="store_true", help="print the top functions (cProfile)")
    p.add_argument("--out", default="bench/results", help="directory for tcp_micro.json")
    args = p.parse_args(argv)
    data = random.Random(7).randbytes(int(args.mb * 1e6))
    stack = run_stack(data, args.mtu, args.cc)
    floor = run_floor(data, stack["smss"])
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "bytes": len(data), "mtu": args.mtu, "stack": stack, "floor": floor,
        "ratio_MB_per_s": stack["MB_per_s"] / floor["MB_per_s"],
    }  # fmt: skip
    print(f"tcp stack   {stack['MB_per_s']:8.1f} MB/s  {stack['Mbit_per_s']:7.0f} Mbit/s  "
          f"{stack['segments_per_s']:9.0f} segments/s  ({stack['data_segments']} data + "
          f"{stack['ack_segments']} ACK segments, {stack['seconds']:.2f} s)")
    print(f"bytes copy  {floor['MB_per_s']:8.1f} MB/s  {floor['Mbit_per_s']:7.0f} Mbit/s  "
          f"{floor['pieces_per_s']:9.0f} pieces/s    (floor, same volume in "
          f"{stack['smss']}-byte pieces)")
    print(f"ratio       {report['ratio_MB_per_s']:.4f} of the floor")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run_stack(data[: len(data) // 4], args.mtu, args.cc)
        prof.disable()
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(18)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tcp_micro.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {out / 'tcp_micro.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
