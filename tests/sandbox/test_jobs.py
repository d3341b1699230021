"""Jobs that should work: the venv's torch inside, the event stream, outputs, start-up errors,
and the host checks (probe, refusal to run without the mandatory layers)."""

from __future__ import annotations

import importlib
import json
import time

import pytest

from tests.sandbox.conftest import MiB, make_spec, needs_sandbox, run_job
from workers.sandbox import PYTHON, Sandbox, SandboxSpec, SandboxUnavailable, probe

pytestmark = [pytest.mark.integration, needs_sandbox]


def test_torch_from_the_venv_runs_inside(tmp_path):
    """The real workload's shape: python -m style script, torch matmul, output + events."""
    run = run_job(
        tmp_path,
        """
        import json, os, time
        t0 = time.time()
        import torch
        a = torch.randn(128, 128)
        value = float((a @ a.T).trace())
        os.makedirs("/job/out", exist_ok=True)
        with open("/job/out/result.json", "w") as f:
            json.dump({"trace": value, "torch": torch.__version__}, f)
        ev = {"type": "metric", "seq": 0, "time": time.time(), "step": 1,
              "values": {"trace": value, "import_s": time.time() - t0}}
        os.write(3, (json.dumps(ev) + "\\n").encode())
    """,
        memory_bytes=2048 * MiB,
        pids=128,
        cpus=2.0,
        wall_time_s=120,
    )
    assert run.result.ok, (run.result, run.stderr)
    assert len(run.events) == 1
    ev = json.loads(run.events[0])
    out = json.loads((tmp_path / "job" / "out" / "result.json").read_text())
    assert ev["values"]["trace"] == pytest.approx(out["trace"])
    assert out["torch"].startswith("2.")


def test_events_stream_while_the_job_runs(tmp_path):
    spec = make_spec(
        tmp_path,
        """
        import os, time
        os.write(3, b'{"n": 1}\\n')
        time.sleep(1.0)
        os.write(3, b'{"n": 2}\\n')
    """,
    )
    with Sandbox(spec) as sb:
        sb.start()
        first = sb.read_events(timeout=20)
        assert first == [b'{"n": 1}'] and sb.running  # before the job ended
        assert sb.read_events(timeout=0) == []
        rest = list(sb.events())
        res = sb.wait(timeout=30)
    assert rest == [b'{"n": 2}'] and res.ok


def test_event_lines_are_bounded_and_never_merged(tmp_path):
    run = run_job(
        tmp_path,
        """
        import os
        os.write(3, b"a\\n" + b"b" * 70000 + b"\\n" + b"c\\n")
        os.write(3, b"x" * 65536 + b"\\n")          # exactly at the limit: kept
        os.write(3, b"tail without newline")
    """,
    )
    assert run.result.ok, run.result
    assert run.events == [b"a", b"c", b"x" * 65536, b"tail without newline"]
    assert run.result.dropped_event_lines == 1


def test_only_stdio_and_the_event_fd_are_open_inside(tmp_path):
    run = run_job(
        tmp_path,
        """
        import os, stat
        fds = sorted(int(x) for x in os.listdir("/proc/self/fd"))
        print(fds, stat.S_ISFIFO(os.fstat(7).st_mode))
    """,
        event_fd=7,
    )
    assert run.result.ok, (run.result, run.stderr)
    fds, is_fifo = run.stdout.rsplit(" ", 1)
    # 0, 1, 2, the event pipe, and the directory listdir() itself had open.
    assert set(json.loads(fds)) - {0, 1, 2, 7} <= {3}, fds
    assert is_fifo.strip() == "True"


def test_a_missing_program_is_a_clear_error(tmp_path):
    sb = Sandbox(SandboxSpec(argv=["/nonexistent/trainer"], job_dir=tmp_path / "job"))
    with sb:
        sb.start()
        res = sb.wait(timeout=30)
    assert res.reason == "error"
    assert "cannot execute '/nonexistent/trainer'" in res.message


def test_the_workers_entry_point_is_importable(tmp_path):
    run = run_job(tmp_path, "import workers.moe.events as e; print(e.MAX_LINE_BYTES)")
    assert run.result.ok and run.stdout.strip() == "65536", run.stderr


def test_probe_reports_every_layer():
    r = probe()
    assert r["ok"] and r["missing"] == [] and r["degraded"] == []
    assert r["bwrap"]["version"] and r["userns"]["ok"] and r["seccomp"]["ok"]
    assert r["landlock"]["abi"] >= 1
    assert r["cgroup"]["version"] in ("v1", "v2")
    assert {"memory", "pids"} <= set(r["cgroup"]["controllers"])


def test_refuses_to_run_when_a_layer_is_missing(tmp_path, monkeypatch):
    probe_mod = importlib.import_module("workers.sandbox.probe")
    real = probe_mod.probe()
    monkeypatch.setattr(
        probe_mod, "probe", lambda **kw: {**real, "degraded": ["landlock"], "ok": False}
    )
    with pytest.raises(SandboxUnavailable, match="landlock"):
        Sandbox(make_spec(tmp_path, "pass")).start()
    monkeypatch.setattr(
        probe_mod, "probe", lambda **kw: {**real, "missing": ["userns"], "ok": False}
    )
    with pytest.raises(SandboxUnavailable, match="unprivileged user namespaces"):
        Sandbox(make_spec(tmp_path, "pass"), allow_degraded=True).start()
    assert not (tmp_path / "job").exists()  # nothing was prepared


def test_launch_is_fast_on_an_idle_worker(tmp_path):
    """Not a benchmark (tests/bench/bench_sandbox.py is): a generous sanity bound."""
    t0 = time.monotonic()
    spec = SandboxSpec(
        argv=[PYTHON, "-I", "-S", "-c", "import os; os.write(3, b'hi\\n')"],
        job_dir=tmp_path / "job",
    )
    with Sandbox(spec) as sb:
        sb.start()
        assert sb.read_events(timeout=30) == [b"hi"]
        first_event = time.monotonic() - t0
        assert sb.wait(timeout=30).ok
    assert first_event < 10


def test_an_input_can_be_mounted_inside_the_job_dir(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "weights.bin").write_bytes(b"\1\2\3")
    run = run_job(
        tmp_path,
        """
        import os
        print(open("/job/base/weights.bin", "rb").read().hex())
        open("/job/base/new", "w")
    """,
        ro_binds={base: "/job/base"},
    )
    assert "010203" in run.stdout
    assert "Read-only file system" in run.result.message
    assert not (base / "new").exists()
