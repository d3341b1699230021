"""The Inspector's computation graph end to end through `hub serve`: an inspect job runs in
the sandbox from the real queue, its graph and ONNX file reach the hub, the graph's parameter
count is the model's, the ONNX file passes onnx.checker, the diff of a top-k 2 and a top-k 4
commit shows the top-k change, and a private repo's graph is a 404 to others."""

from __future__ import annotations

import json
import time

import onnx
import pytest
import torch

from hub.client import Client, HubClientError
from tests.sandbox.conftest import needs_sandbox
from workers.moe.checkpoint import save_weights
from workers.moe.config import ModelConfig
from workers.moe.model import MoETransformer

pytestmark = [pytest.mark.e2e, needs_sandbox]

MODEL = {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_experts": 4, "expert_hidden": 32}
MODEL.update(block_size=64, n_dense_layers=1, dense_hidden=64, shared_hidden=32)
RES = {"cpus": 1, "memory_mb": 3072, "time_limit_s": 300}
INSPECT = {"inspect": {"what": "graph", "seq_len": 8, "batch": 1}}


def _wait(c: Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = c._json("GET", f"/jobs/{job_id}")
        if j["status"] in ("succeeded", "failed", "cancelled", "lost"):
            return j
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {j['status']}")


@pytest.fixture(scope="module")
def graphs(live_hub, tmp_path_factory):
    token = live_hub.make_user("gra")
    other = live_hub.make_user("grb")
    c = Client(url=live_hub.url, token=token)
    models = {}
    for repo, private in (("gra/lm", False), ("gra/secret", True)):
        c.create_repo(repo, private=private)
    for k in (2, 4):
        torch.manual_seed(0)
        m = MoETransformer(ModelConfig(**MODEL, top_k=k))
        models[k] = m
        w = tmp_path_factory.mktemp(f"graph-top{k}")
        save_weights(m, w)
        c.push(w, repo="gra/lm", message=f"top-{k}")
        c.create_tag("gra/lm", f"top{k}", "main")
    w = tmp_path_factory.mktemp("graph-secret")
    save_weights(models[2], w)
    c.push(w, repo="gra/secret", message="private")
    jobs = {}
    for name, base in (
        ("top2", "gra/lm@top2"),
        ("top4", "gra/lm@top4"),
        ("secret", "gra/secret@main"),
    ):
        body = {"project": "gra/inspect", "resources": RES, "kind": "inspect", "config": INSPECT}
        jobs[name] = c._json("POST", "/jobs", json={**body, "base": base})["id"]
    done = {name: _wait(c, jid) for name, jid in jobs.items()}
    return {
        "client": c,
        "other": Client(url=live_hub.url, token=other),
        "jobs": done,
        "models": models,
        "token": token,
    }


def test_inspect_job_stores_a_graph_matching_the_model(graphs):
    c, j = graphs["client"], graphs["jobs"]["top2"]
    assert j["status"] == "succeeded", j["reason"]
    assert {a["path"] for a in j["artifacts"]} == {"inspect/graph.json", "inspect/model.onnx"}
    res = c._json("GET", f"/jobs/{j['id']}/graph")
    g = res["graph"]
    expected = sum(p.numel() for p in graphs["models"][2].parameters())
    assert g["params_total"] == expected
    assert sum(n.get("params", 0) for n in g["nodes"]) == expected
    assert g["export_check_max_abs_diff"] == 0.0
    assert j["summary"]["inspect"]["nodes"] == len(g["nodes"])
    by_commit = c._json("GET", "/repos/gra/lm/commits/top2/graph")
    assert by_commit["job"] == j["id"] and by_commit["commit"] == j["base"]["commit"]


def test_onnx_download_loads_and_passes_the_checker(graphs, tmp_path):
    c, j = graphs["client"], graphs["jobs"]["top2"]
    url = c._json("GET", f"/jobs/{j['id']}/graph")["onnx_url"]
    resp = c.request("GET", url.removeprefix("/api/v1"))
    assert resp.status_code == 200
    path = tmp_path / "model.onnx"
    path.write_bytes(resp.content)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert any(n.op_type == "TopK" for n in model.graph.node)


def test_diff_of_top_k_2_and_4(graphs):
    d = graphs["client"]._json(
        "GET", "/graphs/diff", params={"a": "gra/lm@top2", "b": "gra/lm@top4"}
    )
    topk = [x for x in d["diff"]["changed"] if x["target"] == "aten.topk.default"]
    assert len(topk) == 1 and topk[0]["module"] == "blocks.1.ffn.router"
    args = next(f for f in topk[0]["changes"] if f["field"] == "args")
    assert (args["a"]["arg1"], args["b"]["arg1"]) == (2, 4)
    assert d["diff"]["summary"]["added"] == d["diff"]["summary"]["removed"] == 0


def test_bad_spec_is_a_400(graphs):
    with pytest.raises(HubClientError) as e:
        graphs["client"]._json("GET", "/graphs/diff", params={"a": "gra/lm", "b": "gra/lm@top4"})
    assert e.value.status == 400 and e.value.code == "invalid_spec"


def test_private_repo_graph_is_404_to_others(graphs):
    c, other, j = graphs["client"], graphs["other"], graphs["jobs"]["secret"]
    assert j["status"] == "succeeded", j["reason"]
    assert c._json("GET", "/repos/gra/secret/commits/main/graph")["job"] == j["id"]
    for path, params in (
        (f"/jobs/{j['id']}/graph", None),
        ("/repos/gra/secret/commits/main/graph", None),
        ("/graphs/diff", {"a": "gra/lm@top2", "b": "gra/secret@main"}),
        (f"/jobs/{j['id']}/artifacts/inspect/model.onnx", None),
    ):
        with pytest.raises(HubClientError) as e:
            other._json("GET", path, params=params)
        assert e.value.status == 404, path


def test_cli_launches_waits_and_diffs(graphs, live_hub, tmp_path):
    out = tmp_path / "g.json"
    onnx_path = tmp_path / "m.onnx"
    args = ("inspect", "graph", "gra/lm@top4", "--project", "gra/inspect", "--seq-len", "8")
    res = live_hub.cli(
        *args,
        "--wait",
        "--out",
        str(out),
        "--onnx",
        str(onnx_path),
        token=graphs["token"],
        check=True,
    ).stdout
    expected = sum(p.numel() for p in graphs["models"][4].parameters())
    assert f"{expected:,} parameters" in res and "top-4" in res
    assert json.loads(out.read_text())["params_total"] == expected
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    diff = live_hub.cli(
        "inspect", "diff", "gra/lm@top2", "gra/lm@top4", token=graphs["token"], check=True
    ).stdout
    assert "0 added, 0 removed" in diff
    line = next(x for x in diff.splitlines() if "aten.topk.default" in x)
    assert "blocks.1.ffn.router" in line and '{"arg1": 2} → {"arg1": 4}' in line
