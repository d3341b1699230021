"""The README's demo commands run as written against ``hub serve --demo``, and the search
index keeps up while every job slot is busy."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.serve import free_port, wait_http
from tests.e2e.conftest import HUB, ROOT
from tests.helpers import TINY

pytestmark = pytest.mark.e2e

MARK = "<!-- demo-commands -->"
DEMO_READY_S = 900  # the demo's two trainings, two evaluations and a profile


def demo_blocks(text: str) -> list[list[str]]:
    """The command lines of each fenced block that follows a ``<!-- demo-commands -->`` line."""
    blocks = []
    for m in re.finditer(re.escape(MARK) + r"\s*\n```[^\n]*\n(.*?)\n```", text, re.S):
        lines = [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
        blocks.append(lines)
    return blocks


def test_the_readme_marks_its_demo_command_blocks():
    blocks = demo_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 3 and all(blocks)
    assert all(line.startswith(("hub ", "echo ")) for b in blocks for line in b)


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo-hub")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_CONFIG_DIR=str(data / "config"),
        HUB_URL=f"http://127.0.0.1:{port}",
        HUB_BLOB_FSYNC="0",
        PYTHONUNBUFFERED="1",
    )
    if os.environ.get("HUB_DATABASE_URL"):
        env["HUB_DATABASE_URL"] = os.environ["HUB_DATABASE_URL"]
    log = data / "serve.log"
    proc = subprocess.Popen(
        [*HUB, "serve", "--demo", "--port", str(port), "--data-dir", str(data / "data")],
        env=env,
        cwd=ROOT,
        stdout=open(log, "wb"),  # noqa: SIM115 (the child holds it)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/api/v1/health", 120), log.read_text()
        deadline = time.monotonic() + DEMO_READY_S
        while "demo ready" not in log.read_text():
            text = log.read_text()
            assert "demo training failed" not in text and "could not run" not in text, text
            assert proc.poll() is None and time.monotonic() < deadline, text
            time.sleep(2)
        yield env, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


def test_serve_says_what_runs_where(demo_hub):
    _, log = demo_hub
    text = log.read_text()
    assert "search indexer running" in text and "Celery queue hub" in text
    assert "job worker running" in text and "Celery queue cpu" in text
    assert "MoE Hub is up at http://127.0.0.1:" in text and "Ctrl-C" in text


def test_every_readme_demo_command_runs_as_written(demo_hub, tmp_path):
    env, _ = demo_hub
    env = dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for block in demo_blocks((ROOT / "README.md").read_text()):
        for line in block:
            r = subprocess.run(
                ["bash", "-c", line],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
            assert "warning" not in r.stderr.lower(), f"{line}\n{r.stderr}"
            if line.startswith("hub runs list"):
                assert re.search(r"^job\w+ .* (2|4)\s+\d", r.stdout, re.M), r.stdout


def test_unknown_columns_and_sort_keys_warn_with_close_matches(demo_hub):
    env, _ = demo_hub
    r = subprocess.run(
        [*HUB, "runs", "list", "admin/moe-demo", "--sort", "summary.val_loss"]
        + ["--columns", "params.moe.top_k,summary.val/loss"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "column 'params.moe.top_k'" in r.stderr and "params.model.top_k" in r.stderr
    assert "sort key 'summary.val_loss'" in r.stderr and "summary.val/loss" in r.stderr
    header = r.stdout.splitlines()[1]
    assert "params.moe.top_k" in header and "summary.val/loss" in header  # never cut


def test_set_password_labels_what_it_prints(demo_hub):
    env, _ = demo_hub
    r = subprocess.run(
        [*HUB, "admin", "set-password", "--user", "admin"],
        env=dict(env, HUB_DATA_DIR=str(Path(env["HUB_CONFIG_DIR"]).parent / "data")),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"password for admin: \S{8,}\n", r.stdout), r.stdout


def test_a_run_reaches_search_while_every_job_slot_is_busy(demo_hub):
    from hub.client import Client

    env, _ = demo_hub
    c = Client(url=env["HUB_URL"], token=_saved_token(env))
    busy = {
        **TINY,
        "train": {**TINY["train"], "steps": 1_000_000, "checkpoint_every": 500},
        "data": {"max_bytes": 20_000},
    }
    jobs = [
        c._json(
            "POST",
            "/jobs",
            json={
                "project": "admin/moe-demo",
                "kind": "train",
                "config": busy,
                "resources": {"cpus": 0.2, "time_limit_s": 900},
            },
        )["id"]
        for _ in range(3)  # hub serve's job worker runs 3 at a time
    ]
    try:
        deadline = time.monotonic() + 300
        while any(c._json("GET", f"/jobs/{j}")["status"] != "running" for j in jobs):
            assert time.monotonic() < deadline, "the busy jobs did not start"
            time.sleep(1)
        with c.init_run("admin/moe-demo", name="while-busy", params={"probe": 1}) as run:
            run_id = run.id
        deadline = time.monotonic() + 120
        while not c.search_runs("admin/moe-demo", "params.probe:1")["results"]:
            assert time.monotonic() < deadline, f"run {run_id} never reached search"
            time.sleep(1)
        assert all(c._json("GET", f"/jobs/{j}")["status"] == "running" for j in jobs)
    finally:
        for j in jobs:
            c._json("POST", f"/jobs/{j}/cancel")


def _saved_token(env: dict) -> str:
    import json

    cfg = json.loads((Path(env["HUB_CONFIG_DIR"]) / "config.json").read_text())
    return cfg.get("token") or next(iter(cfg.values()))["token"]
