"""`bench report`: a short run of every benchmark, written up as one report.

DIR/report.html is self-contained (plots embedded as base64 PNG); DIR/report.md says the same
with the plots as files next to it (storm/, scale/). The traffic benchmark (`bench/traffic.py`,
real TAP devices) runs only as root with /dev/net/tun and `ping`; otherwise the report says why
it was skipped.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .grid import format_duration
from .phase import StormBench, machine, summary_numbers
from .scale import TARGET_OID_RATIO, TARGET_WALL

Block = tuple[str, Any]


def traffic_available() -> tuple[bool, str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun")
    if shutil.which("ping") is None:
        missing.append("ping")
    return (not missing, "needs " + ", ".join(missing) if missing else "")


def run_traffic(out: Path, count: int, rtt_count: int) -> dict[str, Any]:
    from . import traffic

    rc = traffic.main(["--count", str(count), "--rtt-count", str(rtt_count), "--out", str(out)])
    if rc != 0:
        raise RuntimeError(f"bench.traffic exited {rc}")
    result: dict[str, Any] = json.loads((out / "traffic.json").read_text(encoding="utf-8"))
    return result


# -- rendering ------------------------------------------------------------------------------------


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(blocks: Sequence[Block], base: Path) -> str:
    parts = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + value)
        elif kind == "p":
            parts.append(value)
        elif kind == "list":
            parts.append("\n".join(f"- {item}" for item in value))
        elif kind == "pre":
            parts.append("```\n" + value + "\n```")
        elif kind == "table":
            parts.append(_md_table(*value))
        elif kind == "img":
            path, alt = value
            parts.append(f"![{alt}]({os.path.relpath(path, base)})")
    return "\n\n".join(parts) + "\n"


def render_html(blocks: Sequence[Block], title: str) -> str:
    e = html.escape
    body = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{e(value)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(value)}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in value) + "</ul>")
        elif kind == "pre":
            body.append(f"<pre>{e(value)}</pre>")
        elif kind == "table":
            headers, rows = value
            body.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in headers)
                        + "</tr>" + "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>"
                                                             for c in r) + "</tr>"
                                            for r in rows) + "</table>")
        elif kind == "img":
            path, alt = value
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{e(alt)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{e(alt)}</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:75em;margin:2em auto;padding:0 1em;"
             "line-height:1.45}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid"
             " #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}img{max-width:100%}"
             "pre{background:#f6f6f6;padding:.8em;overflow-x:auto}code{background:#f3f3f3}"
             "figure{margin:1em 0}figcaption{color:#555;font-size:.9em}")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    """`code` spans and **bold** only."""
    out = []
    for i, part in enumerate(text.split("`")):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            bolds = part.split("**")
            out.append("".join(f"<b>{html.escape(b)}</b>" if j % 2 else html.escape(b)
                               for j, b in enumerate(bolds)))
    return "".join(out)


# -- sections -------------------------------------------------------------------------------------


def storm_blocks(bench: StormBench, command: str) -> list[Block]:
    b: list[Block] = [("h2", "Bind storms: where the unpatched binder deadlocks")]
    d = bench.default_check
    if d is not None:
        verdict = "**agree**" if d.agree else f"**differ** ({d.reason})"
        b.append(("p", f"Measured cliff for the default NT parameters: **{d.measured_text}**; "
                       f"capacity computed from the parameters: {d.formula}. They {verdict}."))
    for c in bench.checks:
        if c is not d:
            b.append(("p", c.caption()))
    s = summary_numbers(bench.records)
    rows = []
    for ex, v in s["executors"].items():
        rows.append([ex, v["cells"], ", ".join(f"{n} {o}" for o, n in sorted(
            v["outcomes"].items())), f"{v.get('cost_vs_cheapest', 1.0):.2f}×"])
    b.append(("table", (["executor", "cells", "outcomes", "wall per OID vs cheapest"],
                        rows)))
    if bench.wall_seconds:
        b.append(("p", f"{s['cells']} cells; the cells' own wall times add up to "
                       f"{s['cell_wall_seconds'] / bench.wall_seconds:.2f}× the sweep's wall "
                       f"time ({bench.jobs} worker processes). Command: `{command}`"))
    for name, p in bench.files.items():
        if name.startswith(("phase", "bind_time")):
            b.append(("img", (p, name.replace("_", " "))))
    b.append(("p", "Every cell: `storm/cells.csv`, `storm/cells.json`."))
    return b


def scale_blocks(res: dict[str, Any], plot_path: Path | None, command: str) -> list[Block]:
    s = res["summary"]
    b: list[Block] = [("h2", "Scale: one large burst, dedicated and async executors")]
    rows = []
    for ex, r in s.items():
        rows.append([
            ex, f"{r['adapters']:,}", r.get("outcome", "?"),
            (f"{r['wall_vs_target']:.2f}×" + (" (projected)" if r["wall_10k_projected"] else ""))
            if "wall_vs_target" in r else "—",
            f"{r['oids_per_second']:,}" if "oids_per_second" in r else "—",
            f"{r['peak_rss_kb'] / 1024:.0f} MB" if "peak_rss_kb" in r else "—",
            f"{r['peak_bytes_per_adapter'] / 1024:.1f} KB ({r['bytes_vs_target']:.2f}×)"
            if "peak_bytes_per_adapter" in r else "—",
            f"{r['gc_policy_speedup']:.2f}×" if "gc_policy_speedup" in r else "—",
            f"{r['native_speedup']:.2f}×" if "native_speedup" in r else "—",
            f"{r['log_slowdown']:.2f}×" if "log_slowdown" in r else "—",
            r.get("growth_exponent_default") or "—",
        ])
    b.append(("table", (["executor", "adapters", "outcome",
                         f"wall at 10,000 adapters vs the {TARGET_WALL:g}s target",
                         "OIDs/s", "peak RSS",
                         "tracemalloc peak per adapter (vs 20 KB)",
                         "run_storm vs Python's default GC thresholds",
                         "compiled vs pure Python",
                         "slowdown with event log on", "growth exponent k (wall ~ n^k)"],
                        rows)))
    wall_rows = [[ex] + [f"{r[k]:.2f}s" if k in r else "—"
                         for k in ("wall_seconds", "pure_wall_seconds", "gc_python_wall_seconds",
                                   "log_wall_seconds")]
                 for ex, r in s.items()]
    b.append(("p", "Wall times behind those ratios (this machine, same run):"))
    b.append(("table", (["executor", "run_storm", "pure Python", "Python GC defaults",
                         "event log on"], wall_rows)))
    natives = sorted({r["native"] for r in s.values() if "native" in r})
    if natives:
        b.append(("p", "Modules measured: " + "; ".join(natives) + ". A wheel build "
                       "compiles them (mypyc); the pure-Python column is the same storm in a "
                       "process importing the hot modules from a copy of their .py files."))
    o = res["oid_overhead"]
    b.append(("h3", "Per-OID overhead"))
    b.append(("p", "Against a bare trio memory-channel round trip in the same process "
                   f"({o['floor_round_trip_us']:.1f} µs; target ≤ {TARGET_OID_RATIO:g}×): the "
                   f"round trip of one OID through the executor on a bound adapter "
                   f"({o['round_trips']:,} in a row), on the kernel's coroutine driver (storms) and"
                   " on its task driver; and, for context, a storm's wall time per OID "
                   f"({o['adapters']} adapters {format_duration(o['interval'])} apart, IPv4 "
                   "off), which also carries every per-adapter cost."))
    b.append(("table", (["executor", "OID round trip", "× floor", "task driver", "× floor",
                         "storm per OID", "× floor"],
                        [[ex, f"{e['round_trip_us']:.1f} µs", f"{e['round_trip_ratio']:.1f}×",
                          f"{e['round_trip_tasks_us']:.1f} µs",
                          f"{e['round_trip_tasks_ratio']:.1f}×",
                          f"{e['wall_per_oid_us']:.1f} µs", f"{e['ratio_to_floor']:.1f}×"]
                         for ex, e in o["executors"].items()])))
    mem = [r for r in res["runs"] if r["spec"]["mode"] == "memory"]
    for m in mem:
        tm = m["tracemalloc"]
        b.append(("h3", f"Memory: {m['spec']['executor']}, {m['spec']['adapters']:,} adapters "
                        f"({tm['peak_bytes_per_adapter'] / 1024:.1f} KB per adapter at the peak,"
                        f" {tm['live_bytes_per_adapter'] / 1024:.1f} KB live at the end)"))
        if m.get("native", {}).get("compiled"):
            b.append(("p", "Measured on the compiled modules: tracemalloc charges what compiled "
                           "code allocates to the nearest Python frame (trio's task wrapper, "
                           "`trio/_core/_run.py`); the other rows are allocations of Python code."))
        b.append(("table", (["bytes per adapter", "share of live", "allocated at"],
                            [[f"{t['bytes_per_adapter']:,}", f"{t['share']:.1%}",
                              f"`{t['where']}` `{t.get('code', '')}`"]
                             for t in tm["top_sites"][:8]])))
    p = res.get("profile")
    if p:
        b.append(("h3", f"Where the time goes (cProfile, {p['spec']['executor']}, "
                        f"{p['spec']['adapters']:,} adapters)"))
        b.append(("table", (["own time", "function", "calls"],
                            [[f"{r['own_pct']}%", f"`{r['where']}`", f"{r['calls']:,}"]
                             for r in p["by_own_time"][:12]])))
        b.append(("table", (["own time", "file"],
                            [[f"{r['own_pct']}%", f"`{r['file']}`"] for r in p["by_file"][:8]])))
        b.append(("table", (["cumulative", "emulation function"],
                            [[f"{r['cum_pct']}%", f"`{r['where']}`"]
                             for r in p["by_cumulative_time"][:8]])))
    g = res.get("garbage")
    if g:
        b.append(("h3", "Cyclic garbage"))
        b.append(("p", f"A storm of {g['spec']['adapters']} adapters leaves {g['objects']:,} "
                       f"objects in reference cycles ({g['objects_per_oid']} per tcpip6 OID) for "
                       "the "
                       "cyclic GC to find; they age into the oldest generation, whose full "
                       "collections scan the whole (growing) heap."))
        b.append(("table", (["type", "objects"],
                            [[f"`{t['type']}`", t["count"]] for t in g["types"][:8]])))
        if g["closures"]:
            b.append(("p", "Closures in those cycles: " + ", ".join(
                f"`{c['function']}` ×{c['count']}" for c in g["closures"])))
    if plot_path is not None:
        b.append(("img", (plot_path, "wall time vs burst size")))
    b.append(("p", f"Command: `{command}`"))
    return b


def traffic_blocks(res: dict[str, Any] | None, skipped: str) -> list[Block]:
    b: list[Block] = [("h2", "Traffic over real TAP devices")]
    if res is None:
        b.append(("p", f"Skipped: {skipped}. Run `sudo .venv/bin/python -m bench.traffic`."))
        return b
    r, n, e, t = res["ratios"], res["naive"], res["emulated"], res["targets"]
    rows = [["ping -f (one in flight)", f"{r['flood1_pps']:.2f}×", t["flood1_pps"]],
            ["ping -f -l 16", f"{r['flood16_pps']:.2f}×", t["flood16_pps"]],
            ["idle RTT", f"{r['idle_rtt']:.2f}×", t["idle_rtt"]]]
    if "mixed_idle_rtt" in r:
        rows.append(["mixed load: idle RTT vs quiet", f"{r['mixed_idle_rtt']:.2f}×",
                     t["mixed_idle_rtt"]])
    b.append(("table", (["measure", "emulated (serve) vs naive responder", "target"], rows)))
    b.append(("p", f"Naive {n['flood1']['pps']:.0f} / {n['flood16']['pps']:.0f} pps / "
                   f"{n['idle']['rtt_avg_ms']:.3f} ms; emulated {e['flood1']['pps']:.0f} / "
                   f"{e['flood16']['pps']:.0f} pps / {e['idle']['rtt_avg_ms']:.3f} ms "
                   f"({res['count']} flood pings, {res['rtt_count']} idle)."))
    return b


def write_report(out: Path, sections: list[Block], *, title: str, started: float,
                 command: str) -> tuple[Path, Path]:
    m = machine()
    head: list[Block] = [
        ("h1", title),
        ("p", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))} · "
              f"{m['cpus']} CPUs · Python {m['python']} · {m['platform']} · report made in "
              f"{time.time() - started:.0f}s by `{command}`. Ratios are measured in the same "
              "run; absolute times are this machine's."),
    ]
    blocks = head + sections
    md = out / "report.md"
    md.write_text(render_markdown(blocks, out), encoding="utf-8")
    page = out / "report.html"
    page.write_text(render_html(blocks, title), encoding="utf-8")
    return md, page


def run_report(out: Path, *, storm: Callable[[Path], StormBench], storm_command: str,
               scale: Callable[[Path], dict[str, Any]] | None, scale_command: str,
               traffic: str = "auto", traffic_counts: tuple[int, int] = (5000, 100),
               say: Callable[[str], None] = lambda _s: None) -> tuple[int, list[Path]]:
    """Run the short benchmarks into `out` and write the report. Returns (exit, files)."""
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    sections: list[Block] = []
    say("bind-storm grid")
    bench = storm(out / "storm")
    sections += storm_blocks(bench, storm_command)
    if scale is not None:
        say("scale")
        res = scale(out / "scale")
        plot_path = out / "scale" / "scale.png"
        sections += scale_blocks(res, plot_path if plot_path.exists() else None, scale_command)
    traffic_res = None
    ok, why = traffic_available()
    if traffic == "off":
        why = "--traffic off"
    elif traffic == "on" or ok:
        say("traffic (TAP)")
        try:
            traffic_res = run_traffic(out / "traffic", *traffic_counts)
        except Exception as exc:  # the report goes on; the section says what happened
            why = f"the traffic benchmark failed: {exc}"
    sections += traffic_blocks(traffic_res, why)
    md, page = write_report(out, sections, title="tcpip6-lab benchmark report", started=started,
                            command=f"tcpip6-lab bench report --out {out}")
    return (0 if bench.ok else 1), [md, page]
