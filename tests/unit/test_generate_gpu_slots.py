"""The inference engine reserves GPUs like a job does (``GpuSlots.lease``) when it is
configured with some (``HUB_INFER_GPUS``): the lease is taken before the sandbox starts,
its devices go into the sandbox spec, and it is released when the engine stops, also when
the engine fails to start. No GPU here: a recording slot allocator and a stand-in sandbox
(the real sandbox with device nodes is tests/sandbox/test_gpu.py's)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading

import pytest

from workers.inference.service import InferenceConfig, InferenceError, InferenceService

pytestmark = pytest.mark.unit


class Slots:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    @contextlib.contextmanager
    def lease(self, n, job_id, ttl=60.0, **kw):
        self.events.append(("lease", n, job_id))
        try:
            yield [3, 5][:n]
        finally:
            self.events.append(("release", n))


class FakeSandbox:
    """Connects to the service's control socket like the engine and says ready."""

    specs: list = []

    def __init__(self, spec, *, answer: bool = True) -> None:
        self.spec = spec
        self.answer = answer
        self.running = True
        self.events_closed = False
        self.lines: list[bytes] = []
        FakeSandbox.specs.append(spec)

    def start(self) -> None:
        if not self.answer:
            return
        ctl = dict((v, k) for k, v in self.spec.ro_binds.items())["/ctl"]

        def connect():
            for _ in range(200):
                try:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(f"{ctl}/engine.sock")
                    self.sock = s
                    self.lines.append(json.dumps({"type": "ready"}).encode())
                    return
                except OSError:
                    threading.Event().wait(0.01)

        threading.Thread(target=connect, daemon=True).start()

    def read_events(self, timeout=0.0):
        threading.Event().wait(min(timeout or 0, 0.05))
        out, self.lines = self.lines, []
        return out

    def cancel(self) -> None:
        self.running = False

    def wait(self, timeout=None):
        class R:
            reason, message, stderr_tail = "cancelled", "stopped", ""

        return R()


def test_the_engine_leases_its_gpus_for_its_lifetime(tmp_path):
    slots = Slots()
    svc = InferenceService(
        InferenceConfig(work_root=tmp_path, gpus=2),
        fetch=None,
        gpu_slots=slots,
        sandbox_factory=FakeSandbox,
    )
    svc.start_engine()
    assert slots.events == [("lease", 2, slots.events[0][2])]
    assert slots.events[0][2].startswith("infer-")
    assert list(FakeSandbox.specs[-1].gpus) == [3, 5]
    svc.close()
    assert slots.events[-1] == ("release", 2)


def test_a_failed_start_releases_the_gpus(tmp_path, monkeypatch):
    import workers.inference.service as service

    monkeypatch.setattr(service, "ENGINE_START_S", 0.3)
    slots = Slots()
    svc = InferenceService(
        InferenceConfig(work_root=tmp_path, gpus=1),
        fetch=None,
        gpu_slots=slots,
        sandbox_factory=lambda spec: FakeSandbox(spec, answer=False),
    )
    with pytest.raises(InferenceError, match="did not start"):
        svc.start_engine()
    assert [e[0] for e in slots.events] == ["lease", "release"]


def test_no_gpus_configured_takes_no_lease(tmp_path):
    slots = Slots()
    svc = InferenceService(
        InferenceConfig(work_root=tmp_path),
        fetch=None,
        gpu_slots=slots,
        sandbox_factory=FakeSandbox,
    )
    svc.start_engine()
    assert slots.events == [] and list(FakeSandbox.specs[-1].gpus) == []
    svc.close()


def test_a_sandbox_that_cannot_start_releases_the_gpus(tmp_path):
    slots = Slots()

    def broken(spec):
        raise RuntimeError("bwrap is missing")

    svc = InferenceService(
        InferenceConfig(work_root=tmp_path, gpus=1),
        fetch=None,
        gpu_slots=slots,
        sandbox_factory=broken,
    )
    with pytest.raises(RuntimeError, match="bwrap"):
        svc.start_engine()
    assert [e[0] for e in slots.events] == ["lease", "release"]


def test_two_inference_workers_on_one_host_get_separate_folders(tmp_path):
    import subprocess
    import sys

    from workers.inference.tasks import _claim_work_root

    first = _claim_work_root(tmp_path / "host")
    code = (
        "import sys; from pathlib import Path; from workers.inference.tasks import _claim_work_root;"
        f"print(_claim_work_root(Path({str(tmp_path / 'host')!r})))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert first == tmp_path / "host"
    assert other.stdout.strip() == str(tmp_path / "host-1")
