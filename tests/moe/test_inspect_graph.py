"""The inspect job's graph view (workers/moe/inspect.py) and the graph diff
(hub/shared/graph_diff.py) on real exports of small models."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest
import torch

from hub.shared.graph_diff import diff_graphs
from workers.moe.config import validate_config
from workers.moe.inspect import graph_document
from workers.moe.model import MoETransformer

SMALL = {"n_layer": 2, "n_embd": 32, "n_head": 2, "block_size": 32, "n_experts": 4, "top_k": 2}


def _model(**over) -> MoETransformer:
    cfg, errors = validate_config("inspect", {"model": {**SMALL, **over}})
    assert cfg is not None, errors
    torch.manual_seed(0)
    return MoETransformer(cfg.model)


def _doc(**over) -> dict:
    doc, _ = graph_document(_model(**over), batch=2, seq_len=8)
    return doc


def test_graph_counts_every_parameter_once_and_matches_the_model():
    model = _model()
    expected = sum(p.numel() for p in model.parameters())
    doc, ep = graph_document(model, batch=2, seq_len=8)
    assert doc["params_total"] == expected
    assert sum(n.get("params", 0) for n in doc["nodes"]) == expected
    assert doc["export_check_max_abs_diff"] == 0.0
    ids = {n["id"] for n in doc["nodes"]}
    assert (
        len(ids)
        == len(doc["nodes"])
        == len(ep.graph.nodes)
        - sum(1 for n in ep.graph.nodes if "assert_tensor_metadata" in str(n.target))
    )
    assert all(s in ids and d in ids for s, d in doc["edges"])
    # The MoE layer reads router → top-k → dispatch → experts.
    topk = [n for n in doc["nodes"] if n["target"] == "aten.topk.default"]
    assert [n["module"] for n in topk] == ["blocks.1.ffn.router"]  # block 0 is dense
    assert topk[0]["args"]["arg1"] == 2
    assert topk[0]["outputs"][1]["shape"] == [16, 2]
    modules = {n["module"] for n in doc["nodes"]}
    assert {"blocks.1.ffn.dispatch", *(f"blocks.1.ffn.expert.{e}" for e in range(4))} <= modules
    views = [m for m in doc["modules"] if m["type"] == "ExpertView"]
    bank = model.blocks[1].ffn.experts
    assert sum(m["view_params"] for m in views) == bank.w13.numel() + bank.w2.numel()
    assert sum(m["params"] for m in doc["modules"]) == expected
    # FLOPs: the lm_head linear is 2·B·T·C·V.
    head = next(n for n in doc["nodes"] if n["module"] == "lm_head" and n["kind"] == "op")
    assert head["flops"] == 2 * 2 * 8 * 32 * model.cfg.vocab_size


def test_diff_top_k_2_to_4_changes_the_topk_node():
    d = diff_graphs(_doc(top_k=2), _doc(top_k=4))
    topk = [c for c in d["changed"] if c["target"] == "aten.topk.default"]
    assert len(topk) == 1
    fields = {f["field"]: f for f in topk[0]["changes"]}
    assert fields["args"]["a"]["arg1"] == 2 and fields["args"]["b"]["arg1"] == 4
    assert d["added"] == [] and d["removed"] == []
    assert d["summary"]["params_a"] == d["summary"]["params_b"]


def test_diff_4_to_8_experts_adds_expert_modules_and_changes_the_router():
    d = diff_graphs(_doc(n_experts=4), _doc(n_experts=8))
    assert {f"blocks.1.ffn.expert.{e}" for e in range(4, 8)} <= set(d["modules_added"])
    assert d["modules_removed"] == []
    router = next(
        c
        for c in d["changed"]
        if c["module"] == "blocks.1.ffn.router" and c["target"] == "aten.linear.default"
    )
    out = next(f for f in router["changes"] if f["field"] == "outputs")
    assert out["a"][0]["shape"] == [16, 4] and out["b"][0]["shape"] == [16, 8]
    assert d["summary"]["params_b"] > d["summary"]["params_a"]


def test_same_model_diff_is_empty():
    d = diff_graphs(_doc(), _doc())
    assert d["summary"]["added"] == d["summary"]["removed"] == d["summary"]["changed"] == 0


def test_inspect_entry_point_writes_graph_and_a_valid_onnx(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": SMALL, "inspect": {"seq_len": 8, "batch": 1}}))
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, "-m", "workers.moe.inspect", "--config", str(cfg), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    kinds = {e["kind"] for e in events if e["type"] == "artifact"}
    assert kinds == {"inspect_graph", "inspect_onnx"}
    doc = json.loads((out / "inspect" / "graph.json").read_text())
    model = onnx.load(str(out / "inspect" / "model.onnx"))
    onnx.checker.check_model(model)
    assert len(model.graph.node) > 0
    done = next(e for e in events if e["type"] == "done")
    assert done["summary"]["inspect"]["params_total"] == doc["params_total"]


def test_seq_len_over_block_size_is_an_input_error(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": SMALL, "inspect": {"seq_len": 64}}))
    p = subprocess.run(
        [sys.executable, "-m", "workers.moe.inspect", "--config", str(cfg), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 2
    assert "block_size" in p.stdout


@pytest.mark.parametrize("what", ["nope"])
def test_unknown_what_is_refused_by_the_config(what):
    cfg, errors = validate_config("inspect", {"inspect": {"what": what}})
    assert cfg is None and errors[0]["path"] == "inspect.what"
