"""A job's system metrics come from its own cgroup: a real sandboxed job that holds 200 MB
is measured at about 200 MB while a process outside it holds 500 MB."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.sandbox.conftest import MiB, make_spec, needs_sandbox
from workers.sandbox import Sandbox
from workers.sysmetrics import JobSystemSampler

pytestmark = [pytest.mark.integration, needs_sandbox]


def test_the_jobs_cgroup_counts_the_job_and_nothing_else(tmp_path):
    # 500 MB held outside the job for the whole test, touched so that it is resident
    outside = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; b=bytearray(500<<20); b[::4096]=b'x'*(len(b)//4096);"
            " print('ready', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert outside.stdout.readline().strip() == "ready"
        spec = make_spec(
            tmp_path,
            """
            import os, time
            b = bytearray(200 << 20)
            b[::4096] = b"x" * (len(b) // 4096)
            with open("/job/blob", "wb") as f:
                f.write(os.urandom(8 << 20))
                os.fsync(f.fileno())
            os.write(3, b'{"ready": 1}\\n')
            t = time.time()
            while time.time() - t < 1.5:  # busy: some CPU to measure
                pass
            time.sleep(30)
        """,
            memory_bytes=1024 * MiB,
            cpus=1.0,
            wall_time_s=60,
        )
        with Sandbox(spec) as sb:
            sb.start()
            sampler = JobSystemSampler(cgroup=sb.cgroup, root_pid=sb.pid, cpus=1.0)
            assert sampler.source.startswith("cgroup-")
            assert sb.read_events(timeout=30) == [b'{"ready": 1}']
            sampler.sample()  # the CPU baseline
            time.sleep(1.0)
            out = sampler.sample()
            # no cgroup: the /proc fallback sums the tree under the job's first process
            tree = JobSystemSampler(root_pid=sb.pid, cpus=1.0).sample()
            sb.cancel()
            sb.wait(timeout=30)
    finally:
        outside.kill()
        outside.wait()
    print(sampler.source, out, tree)
    # the job's 200 MB and its Python, not the 500 MB beside it
    assert 190 < out["system/memory_rss_mb"] < 450, out
    assert out["system/memory_peak_mb"] >= out["system/memory_rss_mb"]
    assert 0 < out["system/process_cpu_percent"] <= 110, out  # one CPU's quota
    assert out["system/disk_write_mb"] >= 7.9, out
    assert 190 < tree["system/memory_rss_mb"] < 450, tree
    assert tree["system/disk_write_mb"] >= 7.9, tree
