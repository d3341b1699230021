"""Quantized inference weights: the quantize job, its checkpoint format, evaluate reading it,
and the job kind through the hub's jobs API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.moe.helpers import by_type, run_entry, tiny_config
from workers.moe import evaluate, train
from workers.moe import quantize as q

EVAL = {"max_tokens": 4096, "batch_size": 8, "max_new_tokens": 8, "prompts": ["def "]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("quant")
    cache = tmp / "cache"
    cfg = tiny_config(cache, train={"steps": 12, "warmup_steps": 1})
    code, events = run_entry("train", train.run, tmp, cfg, tmp / "base")
    assert code == 0, by_type(events, "error")
    return tmp, tmp / "base", cache


def _quantize(trained, method: str, name: str) -> tuple[int, list[dict], Path]:
    tmp, base, cache = trained
    cfg = {
        "seed": 0,
        "data": tiny_config(cache)["data"],
        "quantize": {"method": method, "eval_tokens": 4096, "batch_size": 8},
    }
    out = tmp / name
    code, events = run_entry("quantize", q.run, tmp, cfg, out, ["--weights", str(base)])
    return code, events, out


@pytest.fixture(scope="module")
def int8(trained) -> tuple[list[dict], Path]:
    code, events, out = _quantize(trained, "int8", "int8")
    assert code == 0, by_type(events, "error")
    return events, out


@pytest.mark.unit
def test_an_int8_checkpoint_stores_int8_projections_with_one_scale_per_row(int8):
    _, out = int8
    state = load_file(str(out / "model.safetensors"))
    qkv = state["blocks.0.attn.qkv.weight.qdata"]
    assert qkv.dtype == torch.int8
    assert state["blocks.0.attn.qkv.weight.scale"].shape == (qkv.shape[0], 1)
    assert state["blocks.1.ffn.experts.w13.qdata"].dtype == torch.int8
    assert "blocks.0.attn.qkv.weight" not in state  # no full-precision copy beside it
    assert state["wte.weight"].dtype == torch.float32  # embeddings stay
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization"]["method"] == "int8"
    assert "blocks.1.ffn.experts.w2" in cfg["quantization"]["tensors"]


@pytest.mark.unit
def test_the_quantize_job_reports_size_and_the_validation_quality_delta(int8):
    events, _ = int8
    report = by_type(events, "done")[0]["summary"]["quantization"]
    assert report["bytes_after"] < 0.75 * report["bytes_before"]
    assert report["val_bpb_delta"] == pytest.approx(
        report["val_bpb_after"] - report["val_bpb_before"]
    )
    assert abs(report["val_bpb_delta"]) < 0.02
    kinds = {e["path"]: e["kind"] for e in by_type(events, "artifact")}
    assert kinds == {"model.safetensors": "weights", "config.json": "config"}


@pytest.mark.unit
def test_evaluate_loads_the_int8_checkpoint_and_scores_close_to_fp32(trained, int8):
    tmp, base, cache = trained
    _, out = int8
    cfg = {"seed": 0, "data": tiny_config(cache)["data"], "eval": EVAL}
    results = {}
    for name, weights in (("fp32", base), ("int8", out)):
        code, events = run_entry(
            "evaluate", evaluate.run, tmp, cfg, tmp / f"eval-{name}", ["--weights", str(weights)]
        )
        assert code == 0, by_type(events, "error")
        results[name] = json.loads((tmp / f"eval-{name}" / "eval.json").read_text())
    assert results["int8"]["quantization"] == "int8"
    assert results["fp32"]["quantization"] == "none"
    assert abs(results["int8"]["val_bpb"] - results["fp32"]["val_bpb"]) < 0.02


@pytest.mark.unit
def test_a_loaded_int8_model_keeps_its_weights_int8(int8):
    _, out = int8
    model, _ = q.load_any(out)
    qw = model.blocks[1].ffn.experts.parametrizations.w13[0]
    assert isinstance(qw, q.QuantizedWeight) and qw.qdata.dtype == torch.int8
    assert model.blocks[1].ffn.experts.parametrizations.w13.original.numel() == 0


@pytest.mark.unit
def test_float8_on_a_cpu_is_refused_with_a_clear_error(trained):
    code, events, _ = _quantize(trained, "float8", "f8")
    assert code == 2
    assert "float8" in by_type(events, "error")[0]["message"]
    assert "CUDA" in by_type(events, "error")[0]["message"]


@pytest.mark.unit
def test_quantizing_a_quantized_checkpoint_is_refused(trained, int8):
    tmp, _, cache = trained
    _, out = int8
    cfg = {"data": tiny_config(cache)["data"], "quantize": {"eval_tokens": 1024}}
    code, events = run_entry("quantize", q.run, tmp, cfg, tmp / "again", ["--weights", str(out)])
    assert code == 2 and "already quantized" in by_type(events, "error")[0]["message"]


@pytest.mark.unit
def test_a_quantize_commit_records_lineage_size_and_quality_in_its_metadata(tmp_path):
    from tests.unit.test_supervisor import FakeClient, supervise

    class Client(FakeClient):
        def _json(self, method, path, json=None, idempotent=False, params=None):
            if path.endswith("/worker/chunks/missing"):
                return {"missing": []}
            return super()._json(method, path, json, idempotent, params)

        def push(self, path, **kw):
            self.pushed = {"files": sorted(p.name for p in Path(path).iterdir()), **kw}

            class Res:
                commit = {"sha": "c" * 40}

            return Res()

    base = {"repo": "alice/moe", "ref": "main", "commit": "a" * 40}
    client = Client(base=base, target={"repo": "alice/moe", "branch": "quantized/int8"})
    client.job["kind"] = "quantize"
    report = {"method": "int8", "bytes_before": 100, "bytes_after": 40, "size_ratio": 0.4}
    report |= {"val_bpb_before": 2.0, "val_bpb_after": 2.01, "val_bpb_delta": 0.01}
    events = [
        {"type": "artifact", "seq": 0, "time": 1.0, "path": "model.safetensors", "kind": "weights"},
        {"type": "artifact", "seq": 1, "time": 1.0, "path": "config.json", "kind": "config"},
        {"type": "done", "seq": 2, "time": 1.0, "summary": {"quantization": report}},
    ]

    def write(sandbox):
        out = sandbox.spec.job_dir / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(b"w")
        (out / "config.json").write_text("{}")

    sup, client = supervise(
        tmp_path, client=client, events=[json.dumps(e).encode() for e in events], during=write
    )
    assert sup.run() == "succeeded"
    meta = client.pushed["metadata"]
    assert client.pushed["files"] == ["config.json", "model.safetensors"]
    assert client.pushed["delete_missing"] is False
    assert meta["base_commit"] == f"alice/moe@{'a' * 40}" and meta["kind"] == "quantize"
    assert meta["job"] == "j1" and meta["run"] == "run1"
    assert meta["quantization"] == report
    # the branch did not exist: created at the base commit, in the base's repo
    assert client.branches[("alice/moe", "quantized/int8")] == "a" * 40


# ---------------------------------------------------------------------------------------------
# The hub: kind=quantize through the jobs API


@pytest.fixture
def hub(api):
    from tests.helpers import model, push, st_bytes

    client, _ = api
    client.post("/api/v1/repos", {"name": "moe"}, format="json")
    push(client, "alice/moe", {"model.safetensors": st_bytes(model())}, message="base")
    return client


def _launch(client, **body):
    body = {"project": "alice/exp", "kind": "quantize", "config": {}, **body}
    return client.post("/api/v1/jobs", body, format="json")


@pytest.mark.integration
@pytest.mark.pg
def test_the_jobs_api_serves_the_quantize_schema(hub):
    r = hub.get("/api/v1/jobs/schema?kind=quantize")
    assert r.status_code == 200, r.content
    props = r.json()["schema"]["properties"]
    assert props["quantize"]["properties"]["method"]["enum"] == ["int8", "float8"]
    assert r.json()["defaults"]["quantize"]["method"] == "int8"


@pytest.mark.integration
@pytest.mark.pg
def test_a_quantize_job_is_queued_onto_a_branch_of_its_bases_repo(hub):
    r = _launch(hub, base="alice/moe@main", config={"quantize": {"eval_tokens": 2048}})
    assert r.status_code == 201, r.content
    job = r.json()
    assert job["kind"] == "quantize"
    assert job["target"] == {"repo": "alice/moe", "branch": "quantized/int8"}


@pytest.mark.integration
@pytest.mark.pg
def test_a_bad_quantize_config_is_refused_with_invalid_config(hub):
    from hub.jobs.models import Job

    r = _launch(hub, base="alice/moe@main", config={"quantize": {"method": "int4", "x": 1}})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_config"
    assert {e["path"] for e in err["details"]["errors"]} == {"quantize.method", "quantize.x"}
    assert _launch(hub, config={}).json()["error"]["code"] == "base_required"
    hub.post("/api/v1/repos", {"name": "other"}, format="json")
    other = _launch(hub, base="alice/moe@main", target="alice/other@main")
    assert other.status_code == 400 and other.json()["error"]["code"] == "quantize_target_repo"
    assert Job.objects.count() == 0
