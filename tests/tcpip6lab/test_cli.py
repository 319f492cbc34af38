"""The command line: JSON per outcome, --expect, errors, logs, pcaps, and the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest
from scapy.utils import rdpcap

from tcpip6lab.cli import main
from tests.conftest import default_signals, reaped

ROOT = Path(__file__).resolve().parents[2]


def storm_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["storm", "--json", *args]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.parametrize("args,outcome", [
    (["--adapters", "23"], "bound"),
    (["--adapters", "24"], "deadlock"),
    (["--adapters", "100", "--executor", "dedicated", "--horizon", "50ms"], "stalled"),
    (["--adapters", "4", "--multicast-list-size", "1"], "failed"),
])
def test_storm_json_for_each_outcome(capsys: pytest.CaptureFixture[str], args: list[str],
                                     outcome: str) -> None:
    r = storm_json(capsys, *args)
    assert r["outcome"] == outcome
    for key in ("adapters", "adapters_bound", "executor", "seed", "params", "critical_workers",
                "virtual_seconds", "wall_seconds"):
        assert key in r
    cw = r["critical_workers"]
    assert isinstance(cw, dict)
    assert set(cw) >= {"static", "dynamic_created", "peak_dynamic", "max_dynamic"}
    params = r["params"]
    assert isinstance(params, dict)
    assert params["critical_static"] == 10 and params["foreign_holders"] == 2
    if outcome == "deadlock":
        dl = r["deadlock"]
        assert isinstance(dl, dict)
        assert dl["detected_at"] > 0
        link = dl["chain"][0]
        assert set(link) >= {"queue", "worker", "item", "adapter", "oid", "waits_on"}
    else:
        assert "deadlock" not in r


def test_storm_parameters_reach_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    r = storm_json(capsys, "--adapters", "5", "--static-threads", "2", "--additional-critical",
                   "1", "--max-dynamic", "0", "--foreign-holders", "0", "--cpus", "4",
                   "--latency", "5ms", "--seed", "9")
    assert r["outcome"] == "deadlock"  # 2 + 1 + 0 - 0 = 3 <= 5
    params = r["params"]
    assert isinstance(params, dict)
    assert (params["critical_static"], params["additional_critical"], params["max_dynamic"],
            params["cpus"], params["latency"], r["seed"]) == (2, 1, 0, 4, 0.005, 9)


def test_expect_mismatch_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["storm", "--adapters", "24", "--expect", "deadlock"]) == 0
    assert main(["storm", "--adapters", "24", "--expect", "bound"]) == 1
    err = capsys.readouterr().err
    assert "expected outcome 'bound', got 'deadlock'" in err


@pytest.mark.parametrize("args", [
    ["storm"],
    ["storm", "--adapters", "0"],
    ["storm", "--adapters", "x"],
    ["storm", "--adapters", "3", "--executor", "nope"],
    ["storm", "--adapters", "3", "--interval", "fast"],
    ["storm", "--adapters", "3", "--latency", "0"],
    ["storm", "--adapters", "3", "--log", "/nonexistent/dir/log.jsonl"],
    ["demo", "--speed", "0"],
    ["bogus"],
])
def test_bad_arguments_one_line_exit_2(capsys: pytest.CaptureFixture[str],
                                       args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        code = main(args)
        raise SystemExit(code)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err
    assert "Traceback" not in err


def test_log_is_jsonl_with_a_trace_hash_and_reproducible(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hashes = []
    for i in range(2):
        log = tmp_path / f"run{i}.jsonl"
        r = storm_json(capsys, "--adapters", "24", "--seed", "3", "--log", str(log))
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert lines[0]["event"] == "header" and lines[0]["seed"] == 3
        assert lines[-1]["event"] == "trailer" and lines[-1]["trace_hash"] == r["trace_hash"]
        events = {rec["event"] for rec in lines}
        assert {"pnp.arrival", "exec.item.queued", "exec.worker.blocked",
                "ndis.request.submitted", "detector.deadlock"} <= events
        hashes.append(r["trace_hash"])
    assert hashes[0] == hashes[1]  # same seed, same model: bit-identical event log


def test_pcap_files_hold_the_traffic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = storm_json(capsys, "--adapters", "2", "--executor", "dedicated", "--traffic",
                   "--horizon", "3s", "--pcap", str(tmp_path))
    assert r["outcome"] == "bound"
    files = sorted(os.listdir(tmp_path))
    assert files == ["host-nic000.pcap", "host-nic001.pcap"]
    packets = rdpcap(str(tmp_path / files[0]))
    assert any(p.haslayer(ICMPv6EchoRequest) for p in packets)
    assert any(p.haslayer(ICMPv6EchoReply) for p in packets)


def test_demo_without_a_tty_prints_a_verdict_quickly() -> None:
    env = dict(os.environ)  # the installed package: the wheel in ./lab test's first pass
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "demo", "--speed", "40"],
                          capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL, check=False)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 60
    out = proc.stdout
    assert "Verdict:" in out
    assert "unpatched (critical): DEADLOCK" in out
    assert "fixed (dedicated): HEALTHY — 25/25 bound" in out
    assert "IPv4 on 25/25" in out
    assert "waits on tcpip6.oid_done" in out
    assert out.count("t=") >= 10  # plain progress lines
    # the heartbeat is never reported stopped before its first interval
    assert "heartbeat ok" in out.splitlines()[0] and "STOPPED" not in out.splitlines()[0]
    # the applications that rely on TCP/IPv6: failing in the unpatched host, never in the fixed
    verdict = out[out.index("Verdict:"):]
    unpatched = next(line for line in verdict.splitlines() if "unpatched (critical):" in line)
    fixed = next(line for line in verdict.splitlines() if "fixed (dedicated):" in line)
    assert "tcp-rr" in unpatched and "(failing on 1/1)" in unpatched
    assert "/0 failed, udp-lookup" in fixed and fixed.endswith("/0 failed")


def test_demo_without_services_or_applications() -> None:
    proc = subprocess.run([sys.executable, "-m", "tcpip6lab.cli", "demo", "--speed", "40",
                           "--no-services", "--no-apps"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "applications:" not in proc.stdout and "apps " not in proc.stdout
    assert "fixed (dedicated): HEALTHY — 25/25 bound" in proc.stdout


def test_ctrl_c_ends_with_one_line_and_death_by_sigint() -> None:
    """After cleaning up, an interrupted run dies of SIGINT (so a shell loop around it stops)."""
    env = dict(os.environ)  # the installed package: the wheel in ./lab test's first pass
    proc = subprocess.Popen([sys.executable, "-m", "tcpip6lab.cli", "demo", "--speed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL, preexec_fn=default_signals)
    with reaped(proc):
        assert proc.stdout is not None
        assert "t=" in proc.stdout.readline()  # the live run has started
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGINT
    assert err == "tcpip6-lab: interrupted\n"


def test_main_returns_130_in_process_after_an_interrupt(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tcpip6lab.cli import storm as storm_command

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(storm_command, "run", interrupted)
    assert main(["storm", "--adapters", "2"]) == 130
    assert capsys.readouterr().err == "tcpip6-lab: interrupted\n"


def test_an_interrupt_wrapped_by_class_creation_still_reads_as_an_interrupt(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """CPython 3.11 turns a Ctrl-C inside `__set_name__` into `RuntimeError(...) from it`."""
    from tcpip6lab.cli import storm as storm_command

    def interrupted(*_: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from exc

    monkeypatch.setattr(storm_command, "run", interrupted)
    assert main(["storm", "--adapters", "2"]) == 130
    assert capsys.readouterr().err == "tcpip6-lab: interrupted\n"


def test_debug_shows_the_traceback_and_errors_stay_one_line_without_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[oid]]\naction = 'explode'\n")
    assert main(["storm", "--adapters", "2", "--faults", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["--debug", "storm", "--adapters", "2", "--faults", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "PlanError" in err


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_the_ctrl_c_test_passes_when_the_suite_starts_with_sigint_ignored() -> None:
    """`./lab test &` in a non-interactive shell: the suite inherits SIGINT as ignored. The
    tests that send signals set their children's dispositions themselves, so they still pass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    test = f"{__file__}::test_ctrl_c_ends_with_one_line_and_death_by_sigint"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--import-mode=append", "--rootdir", str(ROOT), test],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, preexec_fn=_ignore_sigint, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    from tcpip6lab.buildinfo import compiled_modules

    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    kind = "compiled" if compiled_modules() else "pure Python"
    assert out == (f"tcpip6-lab {version('tcpip6-lab')} (Python {sys.version.split()[0]}, "
                   f"{sys.implementation.cache_tag}; hot modules: {kind})\n")


def test_serve_offload_defaults_and_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    """--offload/--no-offload: on for TAP by default, off for memory and veth; veth cannot."""
    from tcpip6lab.serve import offload_default

    assert offload_default("tap", None) and not offload_default("tap", False)
    assert not offload_default("memory", None) and offload_default("memory", True)
    assert not offload_default("veth", None)
    assert main(["serve", "--backend", "veth", "--offload"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--offload needs --backend tap or memory" in err
