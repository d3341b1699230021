"""System metrics (CPU, memory, GPU when present) sampled by the SDK as ordinary system/ series."""

import os
import stat
import time

import pytest

from hub.client.run import Run
from hub.client.system import SystemSampler

pytestmark = pytest.mark.unit


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_cpu_and_memory_on_this_machine():
    sampler = SystemSampler(nvidia_smi="")
    _busy(0.3)
    s = sampler.sample()
    assert set(s) == {
        "system/cpu_percent",
        "system/process_cpu_percent",
        "system/memory_rss_mb",
        "system/memory_percent",
    }
    assert 0 <= s["system/cpu_percent"] <= 100 and 0 < s["system/memory_percent"] <= 100
    assert (
        s["system/process_cpu_percent"] > 0
    )  # it was spinning (on shared cores: by how much varies)
    assert s["system/memory_rss_mb"] > 10  # this interpreter, with NumPy loaded


def _script(tmp_path, body: str) -> str:
    path = tmp_path / "nvidia-smi"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_gpus_from_nvidia_smi(tmp_path):
    smi = _script(tmp_path, 'printf "0, 37, 1024\\n1, [N/A], 12\\n"')
    s = SystemSampler(nvidia_smi=smi).sample()
    assert s["system/gpu0/util_percent"] == 37 and s["system/gpu0/memory_mb"] == 1024
    assert s["system/gpu1/memory_mb"] == 12 and "system/gpu1/util_percent" not in s


@pytest.mark.parametrize("body", ["exit 9", "echo garbage", "sleep 10"])
def test_a_broken_nvidia_smi_is_ignored(tmp_path, body):
    sampler = SystemSampler(nvidia_smi=_script(tmp_path, body))
    started = time.monotonic()
    s = sampler.sample()
    assert not any(k.startswith("system/gpu") for k in s) and "system/memory_rss_mb" in s
    assert time.monotonic() - started < 12


def test_a_missing_nvidia_smi_and_no_proc_give_nothing_and_raise_nothing(tmp_path):
    assert SystemSampler(proc=tmp_path, nvidia_smi=str(tmp_path / "absent")).sample() == {}
    (tmp_path / "stat").write_text("garbage\n")
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "stat").write_text("1 (x) R")
    assert SystemSampler(proc=tmp_path, nvidia_smi="").sample() == {}


class Recorder:
    def __init__(self):
        self.bodies = []

    def request(self, method, path, **kw):
        self.bodies.append(kw["content"])

    def _json(self, *a, **kw):
        return {}


def test_a_run_samples_in_the_background_without_touching_the_training_step(tmp_path):
    from hub.shared import wire

    hub = Recorder()
    run = Run(
        hub,
        {"id": "sys0123456789abc", "started_at": "2020-01-01T00:00:00Z"},
        spool_dir=tmp_path,
        flush_interval=0.05,
        system_interval=0.05,
    )
    run.log({"loss": 1.0})
    time.sleep(0.4)
    run.log({"loss": 0.5})
    assert run.finish(timeout=5)["pending"] == 0
    points: dict[str, list[int]] = {}
    for body in hub.bodies:
        keys, ki, steps, _, _ = wire.decode(body, max_points=10**6)
        for i, s in zip(ki, steps, strict=True):
            points.setdefault(keys[i], []).append(int(s))
    assert points["loss"] == [0, 1]
    rss = points["system/memory_rss_mb"]
    assert len(rss) >= 3 and len(set(rss)) == len(rss)  # one step per sample, none overwritten
    assert (
        abs(max(rss) - (time.time() - 1577836800) * 1000) < 10_000
    )  # milliseconds since the run started


def test_system_metrics_can_be_turned_off(tmp_path):
    run = Run(Recorder(), {"id": "off0123456789abc"}, spool_dir=tmp_path, system_metrics=False)
    assert run._sampler is None
    run.finish(timeout=1)
    assert not any(
        t.name.endswith("-system") and t.is_alive() for t in __import__("threading").enumerate()
    )


def test_default_interval_is_ten_seconds():
    import inspect

    assert inspect.signature(Run).parameters["system_interval"].default == 10.0
    assert os.path.exists("/proc/self/stat")  # this suite runs on Linux: the sampler has data
