"""The supervisor's distrust of the sandbox's output."""

import json
import os

import pytest

from workers.supervisor import EventCounters, safe_output, validate_event

pytestmark = pytest.mark.unit


def test_malformed_and_oversized_events_are_counted_not_trusted():
    c = EventCounters()
    good = json.dumps({"type": "metric", "seq": 0, "time": 1.0, "step": 1, "values": {"loss": 1.0}}).encode()
    assert validate_event(good, c)["values"] == {"loss": 1.0}
    for raw in (b"not json", b'{"type": "metric"}', b'{"type": "rm -rf", "seq": 1, "time": 1}',
                json.dumps({"type": "log", "seq": 1, "time": 1.0, "level": "info", "message": "x" * 70_000}).encode(),
                b"[1, 2, 3]"):
        assert validate_event(raw, c) is None
    assert c.received == 6 and c.rejected == 5
    assert set(c.reasons) >= {"not JSON", "oversized"}


def test_artifacts_must_be_regular_files_inside_the_output_dir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"x")
    (out / "sub").mkdir()
    (out / "sub" / "a.json").write_text("{}")
    secret = tmp_path / "secret"
    secret.write_text("root only")
    os.symlink(secret, out / "link.json")
    os.symlink(tmp_path, out / "dirlink")
    assert safe_output(out, "model.safetensors") == (out / "model.safetensors").resolve()
    assert safe_output(out, "sub/a.json") is not None
    for bad in ("link.json", "dirlink/secret", "../secret", "/etc/passwd", "sub", "missing", "a\x00b", ""):
        assert safe_output(out, bad) is None, bad
