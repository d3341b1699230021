"""The JSON-line event stream."""

from __future__ import annotations

import json
import math
import os

import pytest

from tests.moe.helpers import parse_events
from workers.moe.events import MAX_LINE_BYTES, EventWriter, validate_event

pytestmark = pytest.mark.unit


@pytest.fixture
def stream(tmp_path):
    path = tmp_path / "events.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    yield EventWriter(fd), path
    os.close(fd)


def test_each_event_is_one_valid_json_line_with_seq_and_time(stream):
    w, path = stream
    w.log("hello")
    w.progress(3, 10, 1.5)
    w.metric(3, {"loss": 2.5, "lr": 1e-3})
    w.artifact("model.safetensors", "weights")
    w.done({"steps": 10})
    w.error("boom", {"why": "test"})
    events = parse_events(path.read_text())
    assert [e["type"] for e in events] == ["log", "progress", "metric", "artifact", "done", "error"]
    assert all(isinstance(e["time"], float) for e in events)
    assert events[2]["values"] == {"loss": 2.5, "lr": 1e-3}
    assert events[1] == {**events[1], "step": 3, "total": 10, "eta_s": 1.5}


def test_a_huge_metric_is_split_into_lines_under_64_kib_with_the_same_step(stream):
    w, path = stream
    values = {f"moe/layer{i}/load/expert{e}": 1 / 3 for i in range(60) for e in range(256)}
    w.metric(7, values)
    lines = path.read_text().splitlines()
    assert len(lines) > 1 and all(len(line.encode()) < MAX_LINE_BYTES for line in lines)
    merged: dict[str, float] = {}
    for e in parse_events(path.read_text()):
        assert e["step"] == 7
        merged.update(e["values"])
    assert merged == values


def test_non_finite_values_become_null(stream):
    w, path = stream
    w.metric(1, {"loss": math.nan, "x": math.inf, "ok": 1.0})
    (event,) = parse_events(path.read_text())
    assert event["values"] == {"loss": None, "x": None, "ok": 1.0}


def test_long_messages_are_truncated(stream):
    w, path = stream
    w.log("x" * 200_000)
    w.error("y" * 200_000, {"traceback": "z" * 200_000})
    for line in path.read_text().splitlines():
        assert len(line.encode()) < MAX_LINE_BYTES
        assert validate_event(json.loads(line)) == []


def test_artifacts_must_be_relative_and_of_a_known_kind(stream):
    w, _ = stream
    with pytest.raises(ValueError):
        w.artifact("/etc/passwd", "weights")
    with pytest.raises(ValueError):
        w.artifact("../x", "weights")
    with pytest.raises(ValueError):
        w.artifact("x", "pickle")


def test_validate_event_names_what_is_wrong():
    assert validate_event(
        {"type": "metric", "seq": 0, "time": 1.0, "step": "1", "values": {"a": "b"}}
    ) == ["metric.step must be an integer", "metric.values must be an object of numbers"]
    assert validate_event({"type": "shell"}) != []
    assert validate_event([]) == ["event must be a JSON object"]


def test_the_launcher_and_the_entry_point_share_one_seq_sequence(tmp_path):
    """workers.launch writes "started" before the entry point's own writer exists; the
    entry point carries on at seq 1 instead of starting over at 0."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": {"top_k": 99}}))  # invalid: the entry point stops at once
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers.launch",
            "train",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "o"),
            "--event-fd",
            "1",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    events = parse_events(proc.stdout)  # checks seq 0, 1, 2, ... with no repeat or gap
    assert [e["type"] for e in events] == ["log", "error"]
    assert "train: started" in events[0]["message"]


def test_a_handed_over_seq_is_taken_once_per_fd(tmp_path):
    fd = os.open(tmp_path / "e.jsonl", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        first = EventWriter(fd)
        first.log("a")
        first.log("b")
        first.hand_over()
        second = EventWriter(fd)
        second.log("c")
        third = EventWriter(fd)  # a new, unrelated writer on the same fd number starts afresh
        third.log("d")
    finally:
        os.close(fd)
    lines = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [(e["message"], e["seq"]) for e in lines] == [("a", 0), ("b", 1), ("c", 2), ("d", 0)]
