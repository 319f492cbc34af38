"""`python -m bench.frame_path`: the in-process cost of one frame, emulated vs naive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import frame_path


def test_a_small_run_answers_every_frame_and_writes_its_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "frame.json"
    # (run() raises unless the emulated host answered every one of the frames it was given)
    assert frame_path.main(["--count", "400", "--idle", "5", "--gap", "1",
                            "--json", str(out)]) == 0
    res = json.loads(out.read_text(encoding="utf-8"))
    for side in ("emulated", "naive"):
        assert all(res[side][k] > 0 for k in ("hot_us", "batch_us", "after_idle_us"))
    e, n = res["emulated"], res["naive"]
    assert res["ratio"]["hot_us"] == round(e["hot_us"] / n["hot_us"], 2)
    text = capsys.readouterr().out
    assert "one at a time" in text and f"{e['hot_us']:.2f}us" in text
    m = res["memory"]
    assert set(m) == {"page_ns_after_idle", "page_ns_hot"}
    assert f"a page read costs {m['page_ns_after_idle']:g} ns after 1 ms idle" in text


def test_the_memory_probe_times_the_pages_not_the_loop() -> None:
    """Per page, less a loop over one page: without a sleep, a read of a page already in the
    cache costs next to nothing (tens of ns at most, not the loop's microseconds)."""
    m = frame_path.memory_probe(0.0005, rounds=10)
    assert -50 < m["page_ns_hot"] < 200, m
    assert m["page_ns_after_idle"] > -50, m


def test_the_naive_work_is_a_real_echo_reply() -> None:
    """The yardstick answers the very frames the emulated host gets (not an empty loop)."""
    from tcpip6.wire import icmpv6, ipv6

    _, reqs = frame_path._frames(bytes.fromhex("02005e100000"), 1)
    reply = frame_path.echo_reply(reqs[0])
    assert reply is not None
    hdr, payload = ipv6.Ipv6Header.parse(memoryview(reply)[14:])
    msg = icmpv6.parse(hdr.src, hdr.dst, payload)  # the checksum verifies
    assert msg.type == icmpv6.ECHO_REPLY


def test_bad_values_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert frame_path.main(["--count", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--count must be at least 16" in err


def test_fewer_frames_than_the_warm_up_are_measured_too() -> None:
    """--count and --idle below the 200 warm-up frames: the warm-up still sends all of them
    (it once sent only --count, and the run failed its own count of replies)."""
    assert frame_path.main(["--count", str(frame_path.BATCH), "--idle", "1", "--gap", "1"]) == 0


def test_a_host_that_does_not_answer_is_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A frame without a reply measured nothing: the run says so and fails."""
    monkeypatch.setattr(frame_path._Sink, "transmit", lambda self, frame: None)
    assert frame_path.main(["--count", "32", "--idle", "1", "--gap", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    wanted = 200 + 32 + 32 + 1  # warm-up, one at a time, two batches of 16, after idle
    assert err[-1] == (f"python -m bench.frame_path: the emulated host answered 0 of {wanted} "
                       "Echo Requests")
