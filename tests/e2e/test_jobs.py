"""Jobs end to end: the real queue, the real sandbox, the real workload (tiny configs)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from hub.client import Client, HubClientError

pytestmark = pytest.mark.e2e

MODEL = {
    "n_layer": 2,
    "n_embd": 32,
    "n_head": 2,
    "n_experts": 4,
    "expert_hidden": 32,
    "top_k": 2,
    "block_size": 64,
}
DATA = {"max_bytes": 200_000}
RES = {"cpus": 1, "memory_mb": 3072, "time_limit_s": 300}


def train_config(steps: int = 20, **model) -> dict:
    return {
        "model": {**MODEL, **model},
        "data": DATA,
        "train": {
            "steps": steps,
            "batch_size": 4,
            "warmup_steps": 2,
            "checkpoint_every": min(steps, 100),
            "eval_every": min(steps, 100),
            "log_every": 5,
            "eval_tokens": 4096,
        },
    }


@pytest.fixture(scope="module")
def hub(live_hub):
    token = live_hub.make_user("jane")
    c = Client(url=live_hub.url, token=token)
    c.create_repo("jane/moe")
    return c


def launch(c: Client, **body) -> dict:
    return c._json("POST", "/jobs", json={"project": "jane/exp", "resources": RES, **body})


def wait(
    c: Client,
    job_id: str,
    *,
    until=("succeeded", "failed", "cancelled", "lost"),
    timeout: float = 240,
) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = c._json("GET", f"/jobs/{job_id}")
        if j["status"] in until:
            return j
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {j['status']} after {timeout}s: {j['reason']}")


def test_train_evaluate_profile_with_lineage(hub):
    c = hub
    j = wait(c, launch(c, kind="train", config=train_config(), target="jane/moe@main")["id"])
    assert j["status"] == "succeeded", j["reason"]
    assert [t["to"] for t in j["transitions"]] == ["queued", "running", "succeeded"]
    sha = j["result"]["commit"]
    commit = c.commit_info("jane/moe", sha)
    assert commit["job_id"] == j["id"] and commit["run_id"] == j["run_id"]
    assert {f["path"] for f in commit["files"]} >= {"model.safetensors", "config.json"}
    run = c.get_run(j["run_id"])
    assert run["commit"] == {"repo": "jane/moe", "sha": sha} and run["job_id"] == j["id"]
    assert run["params"]["model.top_k"] == 2 and run["status"] == "finished"
    assert "moe/layer1/load/expert0" in run["summary"] and run["summary"]["loss"]["last_step"] == 20
    assert j["summary"]["events"]["rejected"] == 0

    ev = launch(
        c,
        kind="evaluate",
        config={"eval": {"max_tokens": 4096}, "data": DATA},
        base=f"jane/moe@{sha}",
    )
    pr = launch(c, kind="profile", config={"data": DATA}, base="jane/moe@main")
    ev, pr = wait(c, ev["id"]), wait(c, pr["id"])
    assert ev["status"] == "succeeded" and 0 < ev["summary"]["eval"]["val_bpb"] < 8.5
    assert pr["status"] == "succeeded" and pr["base"]["commit"] == sha
    paths = {a["path"] for a in pr["artifacts"]}
    assert {
        "profile/ops.json",
        "profile/stacks.folded",
        "profile/trace.json",
        "profile/memory.json",
    } <= paths
    ops = c._json("GET", f"/jobs/{pr['id']}/profile")["ops"]
    assert ops and ops[0]["self_us"] > 0
    folded = c.request("GET", f"/jobs/{pr['id']}/artifacts/profile/stacks.folded").text
    assert all(line.rsplit(" ", 1)[1].isdigit() for line in folded.strip().splitlines()[:20])
    cmp = c._json("GET", "/jobs/profile-compare", params={"a": pr["id"], "b": pr["id"]})
    assert cmp["ops"][0]["self_us_ratio"] == pytest.approx(1.0)
    logs = c._json("GET", f"/jobs/{ev['id']}/logs")["lines"]
    assert any("job succeeded" in x["line"] for x in logs)


def test_result_goes_to_a_side_branch_when_the_target_moved(hub, tmp_path):
    c = hub
    c.create_repo("jane/race")
    job = launch(c, kind="train", config=train_config(steps=60), target="jane/race@main")
    wait(c, job["id"], until=("running",), timeout=120)
    (tmp_path / "notes.txt").write_text("someone else pushed")
    c.push(tmp_path / "notes.txt", repo="jane/race", message="concurrent change")
    j = wait(c, job["id"])
    assert j["status"] == "succeeded", j["reason"]
    assert (
        j["result"]["branch"] == f"main/job-{job['id']}"
        and "moved while the job ran" in j["summary"]["note"]
    )
    assert c.branch_info("jane/race", f"main/job-{job['id']}")["commit"] == j["result"]["commit"]


def test_cancel_mid_run(hub):
    c = hub
    job = launch(c, kind="train", config=train_config(steps=20_000))
    deadline = time.time() + 120
    while time.time() < deadline:
        j = c._json("GET", f"/jobs/{job['id']}")
        if j["status"] == "running" and (j["progress"] or {}).get("step"):
            break
        time.sleep(0.5)
    c._json("POST", f"/jobs/{job['id']}/cancel")
    t0 = time.time()
    j = wait(c, job["id"], timeout=60)
    assert j["status"] == "cancelled" and time.time() - t0 < 30
    assert c.get_run(j["run_id"])["status"] == "killed"
    with pytest.raises(HubClientError) as e:
        c._json("POST", f"/jobs/{job['id']}/cancel")
    assert e.value.code == "job_finished"


def _worker_pids(serve_pid: int) -> list[int]:
    """The job worker (queue cpu) that ``hub serve`` started; not its inference worker."""
    out = subprocess.run(
        ["pgrep", "-f", "celery -A workers.celery_app worker -Q cpu "],
        capture_output=True,
        text=True,
    ).stdout
    pids = [int(p) for p in out.split()]
    mine = []
    for p in pids:
        try:
            if int(open(f"/proc/{p}/stat").read().split(")")[1].split()[1]) == serve_pid:
                mine.append(p)
        except (OSError, IndexError, ValueError):
            pass
    return mine


def test_worker_sigkill_marks_the_job_lost_and_it_can_be_relaunched(hub, live_hub):
    c = hub
    job = launch(c, kind="train", config=train_config(steps=20_000))
    wait(c, job["id"], until=("running",), timeout=120)
    [worker] = _worker_pids(live_hub.proc.pid)
    os.kill(worker, signal.SIGKILL)
    j = wait(c, job["id"], until=("lost",), timeout=60)  # HUB_JOB_LOST_AFTER_S=10 in this hub
    assert "no heartbeat" in j["reason"]
    again = c._json("POST", f"/jobs/{job['id']}/relaunch")
    assert again["status"] == "queued" and again["relaunched_from"] == job["id"]
    c._json("POST", f"/jobs/{again['id']}/cancel")
    wait(c, again["id"], timeout=120)


def test_cli_launch_validates_then_follows_logs(hub, live_hub, tmp_path):
    token = hub.token
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {"top_k": 1, "experts": 3}}')
    r = live_hub.cli(
        "jobs", "launch", "train", "--project", "jane/exp", "--config", str(bad), token=token
    )
    assert r.returncode == 2 and "model.top_k" in r.stderr and "model.experts" in r.stderr
    good = tmp_path / "good.json"
    import json

    good.write_text(json.dumps(train_config(steps=10)))
    r = live_hub.cli(
        "jobs",
        "launch",
        "train",
        "--project",
        "jane/exp",
        "--config",
        str(good),
        "--cpus",
        "1",
        "--memory-mb",
        "3072",
        token=token,
        check=True,
    )
    job_id = r.stdout.split()[3]
    r = live_hub.cli("jobs", "logs", "-f", job_id, token=token, check=True, timeout=240)
    assert "job succeeded" in r.stdout and "-- job succeeded" in r.stdout
    r = live_hub.cli("jobs", "list", "--project", "jane/exp", token=token, check=True)
    assert job_id in r.stdout and "succeeded" in r.stdout
    r = live_hub.cli("jobs", "show", job_id, token=token, check=True)
    assert "queued → running" in r.stdout and "running → succeeded" in r.stdout
