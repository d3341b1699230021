"""First-run demo for ``make run``: an admin, a token (printed once, saved as the CLI's
login), and a small MoE checkpoint repo with two branches and a merge, all made through the
public API so a newcomer sees the registry working at once."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hub.client import config
from hub.client.api import Client
from hub.client.errors import HubClientError

ROOT = Path(__file__).resolve().parent.parent
REPO = "admin/moe-demo"


def _manage(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def demo_tensors(seed: int = 0, layers: int = 2, experts: int = 8, d: int = 64, h: int = 128) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {"tok_emb.weight": rng.standard_normal((256, d), dtype=np.float32) * 0.02}
    for i in range(layers):
        p = f"layers.{i}"
        for w in ("wq", "wk", "wv", "wo"):
            t[f"{p}.attn.{w}.weight"] = rng.standard_normal((d, d), dtype=np.float32) * 0.02
        t[f"{p}.moe.router.weight"] = rng.standard_normal((experts, d), dtype=np.float32) * 0.02
        for e in range(experts):
            t[f"{p}.moe.experts.{e}.w1.weight"] = rng.standard_normal((h, d), dtype=np.float32) * 0.02
            t[f"{p}.moe.experts.{e}.w2.weight"] = rng.standard_normal((d, h), dtype=np.float32) * 0.02
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
        token = _manage(env, "hub_admin", "create-token", "--user", "admin", "--name", "demo", "--scope", "write")
        path = config.save(url=url, token=token)
        print(f"\n  Admin API token (shown once; saved for the CLI in {path}):\n\n    {token}\n", flush=True)
    c = Client(url=url, token=token)
    try:
        c.repo_info(REPO)
        print(f"[hub serve] demo repo {REPO} already exists", flush=True)
        return
    except HubClientError as e:
        if e.status != 404:
            raise
    c.create_repo(REPO, description="Demo: a tiny MoE checkpoint with two fine-tuning branches and a merge")
    base = demo_tensors()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root / "base", base, '{"model": {"n_layer": 2, "n_expert": 8, "top_k": 2}}\n')
        c.push(root / "base", repo=REPO, branch="main", message="Base model: 2 layers, 8 experts, top-2")
        c.create_branch(REPO, "finetune/experts", "main")
        c.create_branch(REPO, "finetune/router", "main")
        a = dict(base)
        a["layers.1.moe.experts.3.w1.weight"] = base["layers.1.moe.experts.3.w1.weight"] * 1.05
        _write(root / "a", a, '{"model": {"n_layer": 2, "n_expert": 8, "top_k": 2}}\n')
        c.push(root / "a", repo=REPO, branch="finetune/experts", message="Fine-tune expert 3 of layer 1")
        b = dict(base)
        b["layers.0.moe.router.weight"] = base["layers.0.moe.router.weight"] + 0.01
        _write(root / "b", b, '{"model": {"n_layer": 2, "n_expert": 8, "top_k": 2}}\n')
        c.push(root / "b", repo=REPO, branch="finetune/router", message="Re-balance the router of layer 0")
    c.merge(REPO, "finetune/experts", "main")  # fast-forward
    c.merge(REPO, "finetune/router", "main")  # three-way, tensor-level
    c.create_tag(REPO, "v1", "main", "both fine-tunes merged")
    print(f"[hub serve] demo repo {REPO}: branches main, finetune/experts, finetune/router; try\n"
          f"              hub log {REPO}@main\n              hub diff finetune/experts finetune/router --repo {REPO}",
          flush=True)
