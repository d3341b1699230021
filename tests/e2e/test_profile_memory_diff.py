"""Profile memory (tensor lifetimes) and profile diff end to end: the real queue, the real
sandbox, the real workload (tiny configs), the CLI as a user runs it."""

from __future__ import annotations

import json

import pytest

from hub.client import Client
from tests.e2e.test_jobs import DATA, MODEL, RES, train_config, wait

pytestmark = pytest.mark.e2e

PROFILE = {"data": DATA, "profile": {"steps": 2, "warmup": 1, "batch_size": 4}}


@pytest.fixture(scope="module")
def two_commits(live_hub):
    """prof/moe@main after two trainings: top_k 2, then top_k 4 (same everything else)."""
    token = live_hub.make_user("prof")
    c = Client(url=live_hub.url, token=token)
    c.create_repo("prof/moe")
    shas = []
    for k in (2, 4):
        cfg = train_config(steps=6, top_k=k)
        job = c._json(
            "POST",
            "/jobs",
            json={
                "project": "prof/exp",
                "kind": "train",
                "config": cfg,
                "target": "prof/moe@main",
                "resources": RES,
            },
        )
        j = wait(c, job["id"])
        assert j["status"] == "succeeded", j["reason"]
        shas.append(j["result"]["commit"])
    return c, token, shas


def test_profile_diff_of_two_commits_then_memory_lifetimes(two_commits, live_hub, tmp_path):
    c, token, (sha_a, sha_b) = two_commits
    cfg = tmp_path / "profile.json"
    cfg.write_text(json.dumps(PROFILE))
    args = ["profile", "diff", f"prof/moe@{sha_a}", f"prof/moe@{sha_b}"]
    r = live_hub.cli(
        *args, "--project", "prof/exp", "--config", str(cfg), "-n", "500", token=token, timeout=900
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr.count("launched profile job") == 2, r.stderr
    assert "succeeded" in r.stderr  # the progress lines
    assert "aten::topk" in r.stdout and "B/A" in r.stdout

    # Asked again, the hub reuses both finished profiles of identical settings.
    r = live_hub.cli(*args, "--config", str(cfg), "--json", token=token, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("reusing profile job") == 2, r.stderr
    d = json.loads(r.stdout)
    assert d["same_settings"] and (d["a"]["commit"], d["b"]["commit"]) == (sha_a, sha_b)
    ops = {o["op"]: o for o in d["ops"]}
    topk = ops["aten::topk"]  # the router's top-k: both commits run it, with k 2 and 4
    assert topk["a_self_us"] > 0 and topk["b_self_us"] > 0
    assert topk["self_ratio"] == pytest.approx(topk["b_self_us"] / topk["a_self_us"])
    impacts = [abs(o["delta_us"]) for o in d["ops"]]
    assert impacts == sorted(impacts, reverse=True)
    names = []

    def walk(n):
        names.append(n["name"])
        for ch in n["children"]:
            assert ch["a_us"] <= n["a_us"] + 1e-6 and ch["b_us"] <= n["b_us"] + 1e-6
            walk(ch)

    walk(d["flame"]["root"])
    assert "moe::router" in names and "train_step" in names

    # Memory of profile A: categories, the peak, parameter bytes.
    m = c.profile_memory(d["a"]["job"])
    cats = {t["category"] for t in m["tensors"]}
    assert {"parameter", "activation"} <= cats
    totals = [sum(p[1:]) for p in m["points"]]
    assert m["peak"]["bytes"] == max(totals)
    assert sum(m["peak"]["by_category"].values()) == m["peak"]["bytes"]
    from workers.moe.config import ModelConfig
    from workers.moe.model import MoETransformer

    model = MoETransformer(ModelConfig(**{**MODEL, "top_k": 2}))
    want = sum(p.numel() * p.element_size() for p in model.parameters())
    params = [t for t in m["tensors"] if t["category"] == "parameter" and t["alloc_ms"] is None]
    got = sum(t["bytes"] for t in params)
    assert abs(got - want) <= 0.01 * want, (got, want)
    r = live_hub.cli("profile", "memory", d["a"]["job"], token=token)
    assert r.returncode == 0 and "peak" in r.stdout and "parameter" in r.stdout, r.stderr


def test_profile_diff_unknown_ref_is_a_clear_error(two_commits, live_hub):
    _, token, (sha_a, _) = two_commits
    r = live_hub.cli("profile", "diff", f"prof/moe@{sha_a}", "prof/moe@no-such-branch", token=token)
    assert r.returncode != 0
    assert "no branch, tag or commit 'no-such-branch'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = live_hub.cli("profile", "diff", "not a ref", "prof/moe@main", token=token)
    assert r.returncode != 0 and "neither a job id nor namespace/repo@ref" in r.stderr, r.stderr
    r = live_hub.cli("profile", "diff", "nosuch/repo@main", "prof/moe@main", token=token)
    assert r.returncode != 0 and "not found" in r.stderr.lower(), r.stderr
