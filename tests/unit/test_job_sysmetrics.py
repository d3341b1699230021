"""The job's system metrics (workers.sysmetrics): cgroup and /proc parsers on fixture trees
laid out as the kernel writes them, and the GPU filter on a fake NVML module."""

from __future__ import annotations

import time
import types
from pathlib import Path

import pytest

from workers.sysmetrics import (
    MB,
    JobSystemSampler,
    JobSystemThread,
    gpu_handles,
    parse_io_stat,
    parse_proc_stat,
    parse_status_rss_kb,
    process_tree,
)

CPU_STAT_V2 = "usage_usec {usec}\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n"
MEMORY_STAT_V2 = "anon {anon}\nfile 4096000\nkernel 12288\nshmem 0\n"
IO_STAT_V2 = (
    "8:0 rbytes=1048576 wbytes=2097152 rios=10 wios=20 dbytes=0 dios=0\n"
    "259:0 rbytes=1048576 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
)


def stat_line(pid: int, ppid: int, comm: str, ticks: tuple[int, int, int, int], start: int):
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime priority nice threads itrealvalue starttime ...
    rest = [ppid, 1, 1, 0, -1, 4194560, 10, 0, 0, 0, *ticks, 20, 0, 1, 0, start, 1000, 50]
    return f"{pid} ({comm}) S " + " ".join(map(str, rest)) + "\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_parsers():
    assert parse_io_stat(IO_STAT_V2) == (2 * 1048576, 2097152)
    assert parse_io_stat("") == (0, 0)
    # a comm with spaces and a ")" does not shift the fields
    ppid, ticks, start = parse_proc_stat(stat_line(7, 3, "evil) x (y", (10, 5, 2, 1), 999))
    assert (ppid, ticks, start) == (3, 18, 999)
    assert parse_status_rss_kb("Name:\tpython\nVmRSS:\t  204800 kB\n") == 204800
    assert parse_status_rss_kb("Name:\tkworker\n") is None


def fake_proc(root: Path) -> Path:
    """1 (init) -> 100 (the job) -> 101 -> 102, and 200 (someone else, 1 GB) beside them."""
    proc = root / "proc"
    tree = {1: (0, 0), 100: (1, 500), 101: (100, 300), 102: (101, 200), 200: (1, 1_048_576)}
    for pid, (ppid, rss_kb) in tree.items():
        write(proc / str(pid) / "stat", stat_line(pid, ppid, f"p{pid}", (100, 50, 0, 0), pid))
        write(proc / str(pid) / "status", f"Name:\tp{pid}\nVmRSS:\t{rss_kb} kB\n")
        write(
            proc / str(pid) / "io",
            f"rchar: 1\nwchar: 2\nread_bytes: {pid * MB}\nwrite_bytes: {MB}\n",
        )
    write(proc / "self" / "stat", "not a pid dir")
    return proc


def test_proc_fallback_sums_the_job_tree_only(tmp_path):
    proc = fake_proc(tmp_path)
    assert set(process_tree(100, proc)) == {100, 101, 102}
    assert process_tree(4242, proc) == {}  # gone: nothing, not the machine
    s = JobSystemSampler(root_pid=100, cpus=2, proc=proc)
    assert s.source == "proc"
    first = s.sample()
    assert first["system/memory_rss_mb"] == pytest.approx(1000 / 1024, abs=0.01)  # not 200's GB
    assert first["system/disk_read_mb"] == pytest.approx(100 + 101 + 102)
    assert first["system/disk_write_mb"] == pytest.approx(3)
    assert "system/process_cpu_percent" not in first  # the baseline
    # 102 exits: its read bytes stay counted, its memory does not
    import shutil

    shutil.rmtree(proc / "102")
    second = s.sample()
    assert second["system/memory_rss_mb"] == pytest.approx(800 / 1024, abs=0.01)
    assert second["system/disk_read_mb"] == pytest.approx(303)
    assert second["system/process_cpu_percent"] >= 0


class FakeCgroup:
    def __init__(self, version: str, dirs: dict[str, Path], pids=()):
        self.version, self.dirs, self._pids = version, dirs, set(pids)

    def pids(self):
        return self._pids


def test_cgroup_v2(tmp_path):
    d = tmp_path / "job"
    write(d / "cpu.stat", CPU_STAT_V2.format(usec=1_000_000))
    write(d / "memory.current", "314572800\n")
    write(d / "memory.peak", "419430400\n")
    write(d / "memory.stat", MEMORY_STAT_V2.format(anon=209715200))
    write(d / "io.stat", IO_STAT_V2)
    s = JobSystemSampler(cgroup=FakeCgroup("v2", {"unified": d}), cpus=2, proc=tmp_path / "none")
    assert s.source == "cgroup-v2"
    out = s.sample()
    assert out["system/memory_rss_mb"] == 200.0
    assert out["system/memory_used_mb"] == 300.0
    assert out["system/memory_peak_mb"] == 400.0
    assert (out["system/disk_read_mb"], out["system/disk_write_mb"]) == (2.0, 2.0)
    write(d / "cpu.stat", CPU_STAT_V2.format(usec=1_000_000 + 10**9))  # 1000 CPU s later
    out = s.sample()
    assert out["system/process_cpu_percent"] > 0
    assert out["system/cpu_percent"] == 100.0  # capped at the job's CPUs


def test_cgroup_v1_reads_io_of_the_groups_processes(tmp_path):
    mem, acct = tmp_path / "memory" / "job", tmp_path / "cpuacct" / "job"
    write(mem / "memory.usage_in_bytes", str(150 * MB))
    write(mem / "memory.max_usage_in_bytes", str(180 * MB))
    write(mem / "memory.stat", f"cache 1000\nrss {100 * MB}\ntotal_rss {120 * MB}\n")
    write(acct / "cpuacct.usage", "5000000000\n")
    proc = fake_proc(tmp_path)
    cg = FakeCgroup("v1", {"memory": mem, "cpuacct": acct, "pids": tmp_path}, pids=[101])
    s = JobSystemSampler(cgroup=cg, root_pid=100, proc=proc)
    out = s.sample()
    assert s.source == "cgroup-v1"
    assert out["system/memory_rss_mb"] == 120.0 and out["system/memory_peak_mb"] == 180.0
    assert out["system/disk_read_mb"] == 101.0  # the group's one process, not the tree's


def fake_nvml(minors: list[int]) -> types.SimpleNamespace:
    """Devices in NVML order with these /dev/nvidia<N> minor numbers; each reports its own
    minor number in every figure, so a wrong device shows."""
    dev = [types.SimpleNamespace(minor=m) for m in minors]
    return types.SimpleNamespace(
        nvmlDeviceGetCount=lambda: len(dev),
        nvmlDeviceGetHandleByIndex=lambda i: dev[i],
        nvmlDeviceGetMinorNumber=lambda h: h.minor,
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=10 + h.minor),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=(100 + h.minor) * MB),
        nvmlDeviceGetPowerUsage=lambda h: (200 + h.minor) * 1000,
    )


def test_gpus_only_the_jobs_own_by_minor_number(tmp_path):
    nvml = fake_nvml([0, 3, 1, 2])  # NVML order differs from the minor numbers
    assert set(gpu_handles(nvml, [1, 3])) == {1, 3}
    s = JobSystemSampler(root_pid=None, gpus=[1, 3], nvml=nvml, proc=tmp_path)
    out = s.sample()
    gpu = {k: v for k, v in out.items() if k.startswith("system/gpu")}
    assert gpu == {
        "system/gpu1/util_percent": 11.0,
        "system/gpu1/memory_mb": 101.0,
        "system/gpu1/power_w": 201.0,
        "system/gpu3/util_percent": 13.0,
        "system/gpu3/memory_mb": 103.0,
        "system/gpu3/power_w": 203.0,
    }
    assert JobSystemSampler(gpus=[], nvml=nvml, proc=tmp_path).sample() == {}


def test_a_broken_source_never_raises(tmp_path):
    nvml = fake_nvml([0])
    nvml.nvmlDeviceGetPowerUsage = lambda h: (_ for _ in ()).throw(RuntimeError("no"))
    s = JobSystemSampler(gpus=[0], nvml=nvml, cgroup=FakeCgroup("v2", {}), proc=tmp_path)
    out = s.sample()  # the cgroup part fails (no dir), GPU power is not supported
    assert "system/gpu0/power_w" not in out and out["system/gpu0/util_percent"] == 10.0
    got = []
    t = JobSystemThread(s, lambda v, ms: got.append((v, ms)), 60).start()
    t.stop()
    assert len(got) == 1 and got[0][1] >= 0  # the last one (the first waits a second)
    bad = JobSystemThread(s, lambda v, ms: 1 / 0, 60).start()
    bad.stop()  # an emit that raises is logged, not raised
    assert bad.samples == 0


def test_interval_setting():
    from workers.settings import load

    assert load({}).job_system_interval_s == 5.0
    assert load({"HUB_JOB_SYSTEM_INTERVAL_S": "0.5"}).job_system_interval_s == 0.5
    for bad in ("x", "-1", "nan", "inf"):
        with pytest.raises(ValueError, match="HUB_JOB_SYSTEM_INTERVAL_S"):
            load({"HUB_JOB_SYSTEM_INTERVAL_S": bad})


def test_the_supervisor_logs_the_jobs_tree_on_its_run_and_survives_failures(tmp_path):
    """The supervisor's wiring, with the fake hub and sandbox of test_supervisor: the "job" is
    a real process (its tree read from /proc); a run whose log raises does not fail the job."""
    import subprocess
    import sys

    from tests.unit.test_supervisor import FakeSandbox, supervise

    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:

        def running(sb):
            time.sleep(1.6)  # the first sample comes after a second

        FakeSandbox.pid = job.pid  # the fake has no cgroup: the /proc fallback
        sup, client = supervise(tmp_path, during=running)
        sup.system_interval_s = 0.2
        assert sup.run() == "succeeded"
        system = [v for _, v in client.run.logged if "system/memory_rss_mb" in v]
        assert system and 3 < max(v["system/memory_rss_mb"] for v in system) < 200
        assert any("source proc" in line for line in client.log_lines()), client.log_lines()

        tried = []

        def broken_log(values, step):
            tried.append(values)
            raise RuntimeError("the spool is full")

        (tmp_path / "2").mkdir()
        sup, client = supervise(tmp_path / "2", during=running)
        sup.system_interval_s = 0.2
        client.run.log = broken_log
        assert sup.run() == "succeeded"
        assert tried  # it was called, raised, and the job still succeeded
    finally:
        del FakeSandbox.pid
        job.kill()
        job.wait()
