"""A hub-launched job's run records the job's own system metrics (its cgroup, or its process
tree), through the real queue and sandbox, and not a process beside it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hub.client import Client
from tests.e2e.test_jobs import launch, train_config, wait

pytestmark = pytest.mark.e2e

OUTSIDE_MB = 1024


@pytest.fixture(scope="module")
def hub(live_hub):
    token = live_hub.make_user("sysm")
    return Client(url=live_hub.url, token=token)


def test_job_run_has_its_own_system_metrics(hub):
    # held outside the job for the whole job, resident: counting it would show
    outside = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; b=bytearray({OUTSIDE_MB}<<20); b[::4096]=b'x'*(len(b)//4096);"
            " print('ready', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert outside.stdout.readline().strip() == "ready"
        job = launch(hub, kind="train", config=train_config(steps=40), project="sysm/exp")
        j = wait(hub, job["id"])
    finally:
        outside.kill()
        outside.wait()
    assert j["status"] == "succeeded", j["reason"]
    keys = ["system/memory_rss_mb", "system/process_cpu_percent", "system/memory_peak_mb"]
    series = {s["key"]: s for s in hub.series([j["run_id"]], keys)}
    rss = series["system/memory_rss_mb"]["value"]
    print("rss samples (MB):", rss)
    assert rss  # one after a second, then every interval (5 s) while the job runs
    # torch and a tiny MoE: tens to hundreds of MB; never the GB held beside it
    assert 10 < max(rss) < OUTSIDE_MB, rss
    assert 10 < max(series["system/memory_peak_mb"]["value"]) < OUTSIDE_MB
    assert max(series["system/process_cpu_percent"]["value"]) > 0
    logs = hub.request("GET", f"/jobs/{j['id']}/logs").text
    assert "system metrics every" in logs and "source cgroup-" in logs
