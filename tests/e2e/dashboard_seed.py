"""Real data for the dashboard's browser tests, made through the public API (the SDK).

- a project with a sweep of runs (params, tags, statuses, a few points each), three runs to
  compare, one run whose name and notes hold HTML, and one long run with 120,000 steps
  (~390,000 points: train/loss, lr, throughput every step; val/loss; per-layer, per-expert MoE
  routing metrics under ``moe/layer{L}/...``; system metrics);
- a model repo with branches, a fast-forward and a three-way merge (a commit graph with a
  merge), a tag, and two branches that changed the same tensor (a merge conflict to resolve).

``python -m tests.e2e.dashboard_seed --url http://127.0.0.1:8077 --token ...`` seeds a running
hub by hand (for screenshots or ``npm run dev``).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hub.client import Client

XSS_NAME = '<script>window.__xss = 1</script> <img src=x onerror="window.__xss=2">'
LAYERS = 2
EXPERTS = 8


@dataclass
class Seeded:
    project: str
    repo: str
    runs: dict[str, str] = field(default_factory=dict)  # name -> id
    big_run: str = ""
    xss_run: str = ""
    compare_runs: list[str] = field(default_factory=list)
    big_points: int = 0


# --- runs ------------------------------------------------------------------------------------


def _sweep_run(client: Client, project: str, i: int, spool: Path) -> tuple[str, str]:
    rng = np.random.default_rng(i)
    top_k = (2, 4, 8)[i % 3]
    lr = (1e-4, 3e-4, 1e-3)[(i // 3) % 3]
    opt = ("adamw", "lion")[i % 2]
    name = f"sweep-{i:03d}"
    tags = ["sweep"] + (["baseline"] if i % 10 == 0 else []) + (["ablation"] if i % 7 == 0 else [])
    run = client.init_run(
        project,
        name=name,
        params={
            "moe": {"top_k": top_k, "n_expert": 16, "aux_coef": 0.01 * (i % 4)},
            "lr": lr,
            "optimizer": opt,
            "seed": i % 5,
        },
        tags=tags,
        spool_dir=spool,
        flush_interval=0.2,
    )
    final = 2.0 + 0.3 / top_k + 50 * abs(lr - 3e-4) + 0.02 * rng.standard_normal()
    for s in range(0, 1000, 50):
        run.log(
            {
                "train/loss": final + 2.0 / (1 + s / 100),
                "val/loss": final + 0.05 + 2.0 / (1 + s / 100),
            },
            step=s,
        )
    run.finish("failed" if i % 17 == 5 else "finished")
    return name, run.id


def _curve_run(
    client: Client, project: str, name: str, top_k: int, spool: Path, steps: int = 3000
) -> str:
    run = client.init_run(
        project,
        name=name,
        params={
            "moe": {"top_k": top_k, "n_expert": 16, "aux_coef": 0.01},
            "lr": 3e-4,
            "optimizer": "adamw",
            "seed": 0,
        },
        tags=["compare"],
        spool_dir=spool,
        notes=f"top-{top_k} routing",
        flush_interval=0.2,
    )
    for s in range(steps):
        loss = 2.0 + 0.4 / top_k + 2.5 / (1 + s / 200)
        vals = {"train/loss": loss + 0.05 * math.sin(s / 7)}
        if s % 50 == 0:
            vals["val/loss"] = loss + 0.08
        run.log(vals, step=s)
    run.finish()
    return run.id


def _big_run(client: Client, project: str, spool: Path, steps: int) -> tuple[str, int]:
    """A long MoE training run: every step logs 3 keys; MoE routing every 200 steps."""
    run = client.init_run(
        project,
        name="moe-16x-top2-long",
        params={
            "moe": {
                "top_k": 2,
                "n_expert": EXPERTS,
                "n_layer": LAYERS,
                "aux_coef": 0.0,
                "bias_balancing": True,
            },
            "lr": 3e-4,
            "optimizer": "adamw",
            "batch_size": 256,
            "seq_len": 1024,
        },
        tags=["long", "baseline"],
        notes="A long run for the dashboard: 120k steps, per-expert routing load.",
        spool_dir=spool,
    )
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(steps)
    points = 0
    t0 = time.time() - steps * 0.05
    for s in range(steps):
        loss = (
            1.8 + 3.0 / (1 + s / 2000) + 0.03 * noise[s] + (0.8 if s == 60_000 else 0.0)
        )  # one spike
        vals = {
            "train/loss": loss,
            "train/lr": 3e-4 * min(1.0, s / 2000) * (0.5 + 0.5 * math.cos(math.pi * s / steps)),
            "train/tokens_per_s": 250_000 + 5000 * noise[(s * 7) % steps],
        }
        if s % 500 == 0:
            vals["val/loss"] = loss + 0.1
        if s % 100 == 0:
            vals["system/gpu_util"] = 92 + 4 * noise[(s * 3) % steps]
            vals["system/gpu_mem_gb"] = 61.5
        if s % 200 == 0:
            for layer in range(LAYERS):
                # routing starts collapsed onto a few experts and balances out over training
                skew = math.exp(-s / 25_000) * 3.0
                logits = np.array(
                    [
                        skew * math.cos(e + layer) + 0.1 * math.sin(s / 3000 + e)
                        for e in range(EXPERTS)
                    ]
                )
                load = np.exp(logits) / np.exp(logits).sum()
                for e in range(EXPERTS):
                    vals[f"moe/layer{layer}/load/expert{e}"] = float(load[e])
                    vals[f"moe/layer{layer}/bias/expert{e}"] = float(
                        -0.1 * skew * math.cos(e + layer)
                    )
                vals[f"moe/layer{layer}/entropy"] = float(-(load * np.log(load)).sum())
                vals[f"moe/layer{layer}/dropped_frac"] = float(0.05 * math.exp(-s / 20_000))
                vals[f"moe/layer{layer}/aux_loss"] = float(0.01 + 0.02 * math.exp(-s / 30_000))
        points += len(vals)
        run.log(vals, step=s, time_=t0 + s * 0.05)
        if s % 40_000 == 39_999:
            run.flush(timeout=120)  # keep the SDK's buffer well below its spill threshold
    report = run.finish(timeout=300)
    assert not report.get("pending"), report
    return run.id, points


def seed_runs(
    client: Client,
    project: str,
    *,
    sweep: int = 120,
    big_steps: int = 120_000,
    spool: Path | None = None,
) -> Seeded:
    spool = spool or Path(tempfile.mkdtemp(prefix="dash-spool-"))
    ns, _ = project.split("/")
    out = Seeded(project=project, repo="")
    with ThreadPoolExecutor(4) as pool:
        for name, run_id in pool.map(lambda i: _sweep_run(client, project, i, spool), range(sweep)):
            out.runs[name] = run_id
        cmp = list(
            pool.map(lambda k: _curve_run(client, project, f"cmp-top{k}", k, spool), (2, 4, 8))
        )
    out.compare_runs = cmp
    out.runs.update({f"cmp-top{k}": r for k, r in zip((2, 4, 8), cmp, strict=True)})
    xss = client.init_run(
        project,
        name=XSS_NAME,
        params={"note": "<b>not bold</b>"},
        tags=["<i>tag</i>"],
        notes="<script>window.__xss = 3</script>",
        spool_dir=spool,
    )
    xss.log({"train/loss": 1.0}, step=0)
    xss.finish()
    out.xss_run = xss.id
    out.runs[XSS_NAME] = xss.id
    out.big_run, out.big_points = _big_run(client, project, spool, big_steps)
    out.runs["moe-16x-top2-long"] = out.big_run
    wait_indexed(client, project, out.runs.values())
    return out


def wait_indexed(client: Client, project: str, run_ids, timeout: float = 90) -> None:
    """Search is derived (indexed after commit, debounced through Celery): wait until every run
    is searchable with its final status; re-touch stragglers (PATCH re-schedules indexing)."""
    want = set(run_ids)
    deadline = time.monotonic() + timeout
    touched = 0.0
    while True:
        found: dict[str, str] = {}
        cursor = None
        while True:
            page = client._json(
                "GET",
                f"/projects/{project}/runs",
                params={
                    "page_size": 1000,
                    "sort": "name",
                    **({"cursor": cursor} if cursor else {}),
                },
            )
            found.update({r["id"]: r["status"] for r in page["results"]})
            if not page.get("next"):
                break
            import json

            cursor = json.dumps(page["next"])
        missing = [r for r in want if found.get(r) in (None, "running")]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(missing)} run(s) never became searchable: {missing[:5]}")
        if time.monotonic() - touched > 10:
            for r in missing:
                client._json("PATCH", f"/runs/{r}", json={})
            touched = time.monotonic()
        time.sleep(0.5)


# --- a model repo ----------------------------------------------------------------------------


def _tensors(seed: int = 0, d: int = 64, h: int = 128) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = {"tok_emb.weight": rng.standard_normal((256, d), dtype=np.float32) * 0.02}
    for i in range(LAYERS):
        p = f"layers.{i}"
        for w in ("wq", "wk", "wv", "wo"):
            t[f"{p}.attn.{w}.weight"] = rng.standard_normal((d, d), dtype=np.float32) * 0.02
        t[f"{p}.moe.router.weight"] = rng.standard_normal((EXPERTS, d), dtype=np.float32) * 0.02
        for e in range(EXPERTS):
            t[f"{p}.moe.experts.{e}.w1.weight"] = (
                rng.standard_normal((h, d), dtype=np.float32) * 0.02
            )
            t[f"{p}.moe.experts.{e}.w2.weight"] = (
                rng.standard_normal((d, h), dtype=np.float32) * 0.02
            )
    return t


def _push(client: Client, repo: str, branch: str, tensors: dict, message: str, tmp: Path, **kw):
    from safetensors.numpy import save_file

    d = tmp / f"{branch.replace('/', '_')}-{time.monotonic_ns()}"
    d.mkdir(parents=True)
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "np"})
    (d / "config.json").write_text('{"model": {"n_layer": 2, "n_expert": 8, "top_k": 2}}\n')
    return client.push(d, repo=repo, branch=branch, message=message, **kw)


def seed_repo(client: Client, repo: str, *, run_id: str = "") -> dict:
    """main ← (ff) finetune/experts, main ← (merge) finetune/router; exp/a and exp/b both
    change layers.1.moe.router.weight (merging one into the other conflicts)."""
    client.create_repo(
        repo, description="MoE checkpoints: two fine-tunes merged, two conflicting experiments"
    )
    base = _tensors()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        _push(
            client, repo, "main", base, "Base model: 2 layers, 8 experts, top-2", tmp, run_id=run_id
        )
        for b in ("finetune/experts", "finetune/router", "exp/a", "exp/b"):
            client.create_branch(repo, b, "main")
        a = dict(base)
        a["layers.1.moe.experts.3.w1.weight"] = base["layers.1.moe.experts.3.w1.weight"] * 1.05
        a["layers.1.moe.experts.5.w2.weight"] = base["layers.1.moe.experts.5.w2.weight"] * 0.9
        _push(client, repo, "finetune/experts", a, "Fine-tune experts 3 and 5 of layer 1", tmp)
        b = dict(base)
        b["layers.0.moe.router.weight"] = base["layers.0.moe.router.weight"] + 0.01
        b["layers.0.moe.experts.8.w1.weight"] = np.full(
            (128, 64), 0.01, dtype=np.float32
        )  # a new expert
        _push(
            client,
            repo,
            "finetune/router",
            b,
            "Re-balance the router of layer 0, add expert 8",
            tmp,
        )
        ea = dict(base)
        ea["layers.1.moe.router.weight"] = base["layers.1.moe.router.weight"] * 1.1
        _push(client, repo, "exp/a", ea, "exp/a: sharpen the layer-1 router", tmp)
        eb = dict(base)
        eb["layers.1.moe.router.weight"] = base["layers.1.moe.router.weight"] + 0.05
        del eb["layers.0.attn.wk.weight"]
        _push(
            client,
            repo,
            "exp/b",
            eb,
            "exp/b: shift the layer-1 router, drop one attention key",
            tmp,
        )
    client.merge(repo, "finetune/experts", "main")  # fast-forward
    client.merge(repo, "finetune/router", "main")  # three-way, tensor-level
    client.create_tag(repo, "v1", "main", "both fine-tunes merged")
    return {
        "repo": repo,
        "branches": ["main", "finetune/experts", "finetune/router", "exp/a", "exp/b"],
        "conflict": ("exp/b", "exp/a"),
        "tag": "v1",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--project", default=None, help="ns/name (default: <you>/dashboard)")
    ap.add_argument("--repo", default=None, help="ns/name (default: <you>/moe-ckpt)")
    ap.add_argument("--sweep", type=int, default=120)
    ap.add_argument("--big-steps", type=int, default=120_000)
    args = ap.parse_args()
    c = Client(url=args.url, token=args.token)
    me = c.whoami()["username"]
    s = seed_runs(c, args.project or f"{me}/dashboard", sweep=args.sweep, big_steps=args.big_steps)
    r = seed_repo(c, args.repo or f"{me}/moe-ckpt", run_id=s.big_run)
    print(
        f"project {s.project}: {len(s.runs)} runs; long run {s.big_run} ({s.big_points} points); repo {r['repo']}"
    )


if __name__ == "__main__":
    main()
