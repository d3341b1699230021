"""First-run demo for ``make run``: an admin, a token (printed once, saved as the CLI's
login), and a small MoE checkpoint repo with two branches and a merge, all made through the
public API so a newcomer sees the registry working at once."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hub.client import config
from hub.client.api import Client
from hub.client.errors import HubClientError

ROOT = Path(__file__).resolve().parent.parent
REPO = "admin/moe-demo"


def _manage(env: dict, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def demo_tensors(
    seed: int = 0, layers: int = 2, experts: int = 8, d: int = 64, h: int = 128
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {
        "tok_emb.weight": rng.standard_normal((256, d), dtype=np.float32) * 0.02
    }
    for i in range(layers):
        p = f"layers.{i}"
        for w in ("wq", "wk", "wv", "wo"):
            t[f"{p}.attn.{w}.weight"] = rng.standard_normal((d, d), dtype=np.float32) * 0.02
        t[f"{p}.moe.router.weight"] = rng.standard_normal((experts, d), dtype=np.float32) * 0.02
        for e in range(experts):
            t[f"{p}.moe.experts.{e}.w1.weight"] = (
                rng.standard_normal((h, d), dtype=np.float32) * 0.02
            )
            t[f"{p}.moe.experts.{e}.w2.weight"] = (
                rng.standard_normal((d, h), dtype=np.float32) * 0.02
            )
    return t


def _write(dirpath: Path, tensors: dict[str, np.ndarray], cfg: str) -> None:
    from safetensors.numpy import save_file

    dirpath.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dirpath / "model.safetensors"), metadata={"format": "np"})
    (dirpath / "config.json").write_text(cfg)


def seed(*, url: str, env: dict) -> None:
    _manage(env, "hub_admin", "create-user", "--user", "admin", "--admin", "--exist-ok")
    saved_url, saved_token = config.resolve()
    token = saved_token if saved_url == url.rstrip("/") else None
    if token:
        try:
            if Client(url=url, token=token, retries=1).whoami()["username"] != "admin":
                token = None
        except HubClientError:
            token = None
    if not token:
        token = _manage(
            env,
            "hub_admin",
            "create-token",
            "--user",
            "admin",
            "--name",
            "demo",
            "--scope",
            "write",
        )
        password = _manage(env, "hub_admin", "set-password", "--user", "admin")
        path = config.save(url=url, token=token)
        print(
            f"\n  Admin API token (shown once; saved for the CLI in {path}):\n\n    {token}\n"
            f"\n  Dashboard sign-in: admin / {password}   (change it: hub admin set-password --user admin)\n",
            flush=True,
        )
    c = Client(url=url, token=token)
    try:
        c.repo_info(REPO)
        print(f"[hub serve] demo repo {REPO} already exists", flush=True)
        return
    except HubClientError as e:
        if e.status != 404:
            raise
    c.create_repo(
        REPO, description="Demo: a tiny MoE checkpoint with two fine-tuning branches and a merge"
    )
    base = demo_tensors()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root / "base", base, '{"model": {"n_layer": 2, "n_expert": 8, "top_k": 2}}\n')
        c.push(
            root / "base",
            repo=REPO,
            branch="main",
            message="Base model: 2 layers, 8 experts, top-2",
        )
        c.create_tag(REPO, "v0", "main", "the base model, before the fine-tunes")
        c.create_branch(REPO, "finetune/experts", "main")
        c.create_branch(REPO, "finetune/router", "main")
        a = dict(base)
        a["layers.1.moe.experts.3.w1.weight"] = base["layers.1.moe.experts.3.w1.weight"] * 1.05
        _write(root / "a", a, '{"model": {"n_layer": 2, "n_expert": 8, "top_k": 2}}\n')
        c.push(
            root / "a",
            repo=REPO,
            branch="finetune/experts",
            message="Fine-tune expert 3 of layer 1",
        )
        b = dict(base)
        b["layers.0.moe.router.weight"] = base["layers.0.moe.router.weight"] + 0.01
        _write(root / "b", b, '{"model": {"n_layer": 2, "n_expert": 8, "top_k": 2}}\n')
        c.push(
            root / "b",
            repo=REPO,
            branch="finetune/router",
            message="Re-balance the router of layer 0",
        )
    c.merge(REPO, "finetune/experts", "main")  # fast-forward
    c.merge(REPO, "finetune/router", "main")  # three-way, tensor-level
    c.create_tag(REPO, "v1", "main", "both fine-tunes merged")
    print(
        f"[hub serve] demo repo {REPO}: branches main, finetune/experts, finetune/router, tags v0, v1; try\n"
        f"              hub log {REPO}@main\n              hub diff finetune/experts finetune/router --repo {REPO}",
        flush=True,
    )
    if env.get("HUB_REDIS_URL"):
        threading.Thread(target=_jobs_demo, args=(c,), name="demo-jobs", daemon=True).start()


JOBS_REPO = "admin/moe-small"
DEMO_MODEL = {
    "n_layer": 2,
    "n_embd": 64,
    "n_head": 4,
    "n_experts": 8,
    "expert_hidden": 64,
    "block_size": 128,
}
DEMO_TRAIN = {
    "steps": 150,
    "batch_size": 8,
    "warmup_steps": 10,
    "checkpoint_every": 150,
    "eval_every": 50,
    "log_every": 5,
    "eval_tokens": 16384,
}
DEMO_DATA = {"max_bytes": 2_000_000}
DEMO_RES = {"cpus": 1, "memory_mb": 3072, "time_limit_s": 1800}


def _wait(c: Client, job_id: str) -> dict:
    while True:
        j = c._json("GET", f"/jobs/{job_id}")
        if j["status"] not in ("queued", "running"):
            return j
        time.sleep(2)


def _jobs_demo(c: Client) -> None:
    """Two short training jobs that differ in top_k, on two branches, through the real queue
    and sandbox; then both evaluated, one profiled, and their runs ready to compare."""
    try:
        c.create_repo(JOBS_REPO, description="Demo: MoE models trained by sandboxed jobs")
        for b in ("top2", "top4"):
            c.create_branch(JOBS_REPO, b, "main")
        jobs = {}
        for k in (2, 4):
            cfg = {"model": {**DEMO_MODEL, "top_k": k}, "train": DEMO_TRAIN, "data": DEMO_DATA}
            jobs[k] = c._json(
                "POST",
                "/jobs",
                json={
                    "project": "admin/moe-demo",
                    "kind": "train",
                    "config": cfg,
                    "target": f"{JOBS_REPO}@top{k}",
                    "resources": DEMO_RES,
                },
            )
        print(
            f"[hub serve] demo jobs queued: train top_k=2 ({jobs[2]['id']}) and top_k=4 ({jobs[4]['id']}); "
            "follow them with `hub jobs list --project admin/moe-demo`",
            flush=True,
        )
        done = {k: _wait(c, j["id"]) for k, j in jobs.items()}
        if any(j["status"] != "succeeded" for j in done.values()):
            print(
                "[hub serve] demo training failed: "
                + "; ".join(f"{j['id']}: {j['reason']}" for j in done.values()),
                flush=True,
            )
            return
        follow = [
            c._json(
                "POST",
                "/jobs",
                json={
                    "project": "admin/moe-demo",
                    "kind": "evaluate",
                    "config": {"data": DEMO_DATA, "eval": {"max_tokens": 16384}},
                    "base": f"{JOBS_REPO}@top{k}",
                    "resources": DEMO_RES,
                },
            )
            for k in (2, 4)
        ]
        follow.append(
            c._json(
                "POST",
                "/jobs",
                json={
                    "project": "admin/moe-demo",
                    "kind": "profile",
                    "config": {"data": DEMO_DATA},
                    "base": f"{JOBS_REPO}@top4",
                    "resources": DEMO_RES,
                },
            )
        )
        for j in follow:
            _wait(c, j["id"])
        runs = " ".join(done[k]["run_id"] for k in (2, 4))
        print(
            f"[hub serve] demo ready: compare the two trainings with\n              hub runs compare {runs}"
            f"\n            and their profiles (top4's is taken; top2's is launched with the same "
            f"settings) with\n              hub profile diff {JOBS_REPO}@top2 {JOBS_REPO}@top4 "
            "--project admin/moe-demo",
            flush=True,
        )
    except Exception as e:  # the demo must never take the hub down
        print(f"[hub serve] demo jobs could not run: {e}", flush=True)
