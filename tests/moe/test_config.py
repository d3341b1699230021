"""The job config schema (shared with the hub) and the validate CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.moe.config import (
    KINDS,
    ConfigError,
    RuntimeConfig,
    config_json_schema,
    default_config,
    fp16_needs_cuda,
    load_config,
    validate_config,
)

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", KINDS)
def test_the_default_config_of_every_kind_is_valid(kind):
    cfg, errors = validate_config(kind, default_config(kind))
    assert errors == [] and cfg is not None and cfg.kind == kind
    assert cfg.to_dict() == default_config(kind)


def test_an_empty_config_means_the_defaults():
    cfg, errors = validate_config("train", {})
    assert errors == [] and cfg is not None
    assert cfg.model.top_k == 2 and cfg.model.aux_loss_coef == 0.01 and cfg.train.steps == 600


def test_every_problem_is_listed_at_once():
    raw = {
        "seed": "zero",
        "model": {
            "top_k": 9,
            "router_score": "tanh",
            "n_head": 3,
            "expert_hidden": [8, 8],
            "wat": 1,
        },
        "train": {"lr": -1, "checkpoint_every": 1000, "steps": 10, "warmup_steps": 50},
        "data": {"paths": "not-a-list"},
        "lora": {"rank": 4},
    }
    cfg, errors = validate_config("train", raw)
    assert cfg is None
    got = {(e["path"], e["message"]) for e in errors}
    assert ("model.top_k", "must be between 2 and 8") in got
    assert ("model.router_score", "must be one of softmax, sigmoid") in got
    assert ("model.wat", "unknown key") in got
    assert ("train.checkpoint_every", "must be between 1 and 500") in got
    assert ("train.lr", "must be > 0 and ≤ 10") in got
    assert ("data.paths", "must be a list of strings") in got
    assert ("model.n_head", "must divide n_embd (128)") in got
    assert ("model.expert_hidden", "has 2 sizes, n_experts is 16") in got
    assert ("train.warmup_steps", "must be ≤ steps (10)") in got
    paths = {p for p, _ in got}
    assert "seed" in paths and "lora" in paths
    assert len(errors) == 11


def test_unknown_keys_suggest_the_closest_name():
    _, errors = validate_config("train", {"model": {"top_kk": 2}})
    assert errors == [{"path": "model.top_kk", "message": "unknown key (did you mean 'top_k'?)"}]


def test_types_are_strict():
    _, errors = validate_config(
        "train", {"model": {"n_layer": 2.0, "tie_embeddings": 1}, "train": {"steps": True}}
    )
    assert {e["path"]: e["message"] for e in errors} == {
        "model.n_layer": "must be an integer",
        "model.tie_embeddings": "must be true or false",
        "train.steps": "must be an integer",
    }


def test_heterogeneous_expert_groups_are_checked():
    ok, errors = validate_config(
        "train",
        {
            "model": {
                "n_experts": 6,
                "expert_hidden": [{"count": 2, "hidden": 64}, {"count": 4, "hidden": 32}],
            }
        },
    )
    assert errors == [] and ok is not None and ok.model.expert_sizes() == [64, 64, 32, 32, 32, 32]
    _, errors = validate_config(
        "train",
        {
            "model": {
                "n_experts": 6,
                "expert_hidden": [{"count": 2, "hidden": 64}, {"count": 2, "size": 3}],
            }
        },
    )
    paths = {e["path"] for e in errors}
    assert {"model.expert_hidden[1]", "model.expert_hidden[1].hidden"} <= paths


def test_the_seeds_lambda_is_accepted_and_the_capacity_can_be_null():
    cfg, errors = validate_config(
        "train", {"model": {"aux_loss_coef": 0.2, "capacity_factor": None}}
    )
    assert errors == [] and cfg.model.aux_loss_coef == 0.2 and cfg.model.capacity_factor is None
    _, errors = validate_config("train", {"model": {"capacity_factor": 0}})
    assert errors == [{"path": "model.capacity_factor", "message": "must be > 0 and ≤ 64"}]


def test_sections_depend_on_the_kind():
    _, errors = validate_config("evaluate", {"train": {}})
    assert errors[0]["path"] == "train" and "evaluate accepts" in errors[0]["message"]
    cfg, errors = validate_config("finetune", {"lora": {"rank": 4, "targets": ["attention"]}})
    assert errors == [] and cfg.lora.rank == 4
    _, errors = validate_config("finetune", {"lora": {"targets": ["router"]}})
    assert errors == [
        {"path": "lora.targets[0]", "message": "must be one of attention, experts, shared, dense"}
    ]
    _, errors = validate_config("nope", {})
    assert "unknown kind" in errors[0]["message"]


def test_fp16_on_cpu_is_rejected():
    _, errors = validate_config("train", {"runtime": {"device": "cpu", "dtype": "fp16"}})
    assert errors == [
        {"path": "runtime.dtype", "message": "fp16 needs CUDA: set device=cuda, or use bf16"}
    ]


def test_fp16_needs_cuda_only_where_cuda_is_ruled_out():
    """One rule for the config, the hub (a job without GPUs) and the entry point (no CUDA
    found): device=cpu always breaks it; device=auto or cuda only when the caller knows the
    job will have no CUDA device, and the message then says why."""
    auto = RuntimeConfig(device="auto", dtype="fp16")
    assert fp16_needs_cuda(auto) is None  # the config alone: auto may find CUDA
    msg = fp16_needs_cuda(auto, no_cuda="the job asks for no GPU")
    assert (
        msg is not None
        and msg.startswith("fp16 needs CUDA and the job asks for no GPU")
        and "bf16" in msg
    )
    cpu = RuntimeConfig(device="cpu", dtype="fp16")
    assert (
        fp16_needs_cuda(cpu)
        == fp16_needs_cuda(cpu, no_cuda="x")
        == "fp16 needs CUDA: set device=cuda, or use bf16"
    )
    for dtype in ("fp32", "bf16"):
        assert fp16_needs_cuda(RuntimeConfig(device="cpu", dtype=dtype), no_cuda="no GPU") is None


def test_the_job_schema_imports_without_torch_or_django():
    """The hub validates every job config with this module: loading it must not pull in torch
    (or Django, which the workload never needs)."""
    code = (
        "import sys, workers.moe.config; "
        "print(sorted(m for m in ('torch', 'django') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", KINDS)
def test_json_schema_accepts_the_defaults_and_rejects_unknown_keys(kind):
    jsonschema = pytest.importorskip("jsonschema")
    schema = config_json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(default_config(kind), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": {"top_k": 9}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"bogus": 1}, schema)


def test_load_config_reports_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config("train", tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_config("train", bad)


def test_validate_cli_prints_errors_and_exits_2(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"model": {"top_k": 1}}))
    good = tmp_path / "g.json"
    good.write_text(json.dumps({"model": {"top_k": 4}}))
    cmd = [sys.executable, "-m", "workers.moe.validate", "--kind", "train", "--config"]
    r = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert json.loads(r.stdout) == {
        "valid": False,
        "errors": [{"path": "model.top_k", "message": "must be between 2 and 8"}],
    }
    r = subprocess.run([*cmd, str(good)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and json.loads(r.stdout)["valid"] is True


def test_the_package_imports_without_django():
    # Of the hub, only the Django-free shared code (the MoE health rules) — what the sandbox
    # binds beside workers/.
    code = (
        "import sys, workers.moe.train, workers.moe.finetune, workers.moe.evaluate, "
        "workers.moe.profile, workers.moe.validate, workers.moe.lora; "
        "assert not any(m == 'django' or m.startswith('django.') or (m.startswith('hub') and "
        "m != 'hub' and not m.startswith('hub.shared')) for m in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_default_warmup_longer_than_a_short_run_is_fitted_to_it_and_said_so():
    cfg, errors = validate_config("train", {"train": {"steps": 20}})
    assert errors == []
    assert cfg.train.warmup_steps == 2
    assert cfg.to_dict()["train"]["warmup_steps"] == 2  # the resolved config says it too
    [note] = cfg.notes
    assert "train.warmup_steps" in note and "50" in note and "2 step(s)" in note


def test_an_explicit_warmup_longer_than_the_run_is_still_refused():
    cfg, errors = validate_config("train", {"train": {"steps": 20, "warmup_steps": 30}})
    assert cfg is None
    assert {"path": "train.warmup_steps", "message": "must be ≤ steps (20)"} in errors


def test_a_config_without_max_bytes_tokenizes_a_bounded_corpus():
    from workers.moe.config import DEFAULT_MAX_BYTES, config_json_schema

    cfg, _ = validate_config("train", {})
    assert cfg.data.max_bytes == DEFAULT_MAX_BYTES == 8_000_000
    assert cfg.notes == []
    schema = config_json_schema("train")["properties"]["data"]["properties"]["max_bytes"]
    assert schema["default"] == 8_000_000 and "8 MB" in schema["description"]
    cfg, _ = validate_config("train", {"data": {"max_bytes": None}})
    assert cfg.data.max_bytes is None  # null still means the whole corpus, on request
