"""Training, checkpoint/resume, evaluation and the entry points' error handling."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.moe.helpers import by_type, losses_by_step, run_entry, tiny_config, tiny_data
from workers.moe import evaluate, train

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus-cache")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache) -> tuple[Path, list[dict]]:
    """200 steps of a tiny model on a 400 kB slice of the standard library."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(
        cache,
        train={
            "steps": 200,
            "warmup_steps": 20,
            "log_every": 50,
            "eval_every": 100,
            "checkpoint_every": 100,
            "eval_tokens": 16384,
        },
    )
    code, events = run_entry("train", train.run, tmp, cfg, tmp / "out")
    assert code == 0, by_type(events, "error")
    return tmp / "out", events


def test_200_steps_reach_a_validation_bpb_well_below_uniform(trained):
    _, events = trained
    summary = by_type(events, "done")[0]["summary"]
    assert summary["val_bpb"] < 4.5  # a uniform model scores log2(259) ≈ 8.02
    val = [e["values"]["val/bpb"] for e in by_type(events, "metric") if "val/bpb" in e["values"]]
    assert len(val) == 2 and val[1] < val[0]


def test_training_emits_metrics_progress_and_artifacts(trained):
    out, events = trained
    metric = next(e for e in by_type(events, "metric") if "loss" in e["values"])
    for key in (
        "loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "moe/layer1/load/expert0",
        "moe/layer1/bias/expert7",
        "moe/layer1/entropy",
        "moe/layer1/dropped_frac",
        "moe/layer1/aux_loss",
        "moe/load_cv",
    ):
        assert key in metric["values"], key
    loads = [v for k, v in metric["values"].items() if k.startswith("moe/layer1/load/")]
    assert len(loads) == 8 and abs(sum(loads) - 1) < 1e-6
    assert by_type(events, "progress")[-1]["step"] == 200
    kinds = {(e["path"], e["kind"]) for e in by_type(events, "artifact")}
    assert {
        ("model.safetensors", "weights"),
        ("config.json", "config"),
        ("checkpoints/step-00000200.pt", "checkpoint"),
    } <= kinds
    for path, _ in kinds - {("checkpoints/step-00000100.pt", "checkpoint")}:
        assert (out / path).is_file(), path
    assert not list(out.rglob("*.tmp"))


def test_final_weights_hold_the_router_biases_and_a_usable_config(trained):
    out, _ = trained
    state = load_file(str(out / "model.safetensors"))
    assert "blocks.1.ffn.router.balance_bias" in state
    assert float(state["blocks.1.ffn.router.balance_bias"].abs().sum()) > 0  # it did move
    assert "lm_head.weight" not in state  # tied to the embedding
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["n_experts"] == 8 and cfg["step"] == 200


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, cache):
    cfg = tiny_config(
        cache, train={"steps": 12, "log_every": 1, "checkpoint_every": 6, "keep_checkpoints": 3}
    )
    code, full = run_entry("train", train.run, tmp_path, cfg, tmp_path / "full")
    assert code == 0
    # "Crash" after step 6: a new run directory that only has the step-6 checkpoint.
    (tmp_path / "resumed" / "checkpoints").mkdir(parents=True)
    shutil.copy(
        tmp_path / "full/checkpoints/step-00000006.pt",
        tmp_path / "resumed/checkpoints/step-00000006.pt",
    )
    code, resumed = run_entry("train", train.run, tmp_path, cfg, tmp_path / "resumed")
    assert code == 0
    assert any("resumed from step-00000006.pt" in e["message"] for e in by_type(resumed, "log"))
    a, b = losses_by_step(full), losses_by_step(resumed)
    assert sorted(b) == list(range(7, 13))
    assert [a[s] for s in range(7, 13)] == [b[s] for s in range(7, 13)]
    wa = load_file(str(tmp_path / "full/model.safetensors"))
    wb = load_file(str(tmp_path / "resumed/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path, cache):
    cfg = tiny_config(cache, train={"steps": 5, "checkpoint_every": 5})
    assert run_entry("train", train.run, tmp_path, cfg, tmp_path / "o")[0] == 0
    cfg["train"]["lr"] = 2e-3
    code, events = run_entry("train", train.run, tmp_path, cfg, tmp_path / "o")
    assert code == 2 and "different run" in by_type(events, "error")[0]["message"]


def test_init_weights_start_from_the_given_model(trained, tmp_path, cache):
    base, _ = trained
    cfg = tiny_config(cache, train={"steps": 1, "lr": 1e-9, "min_lr": 0.0, "warmup_steps": 0})
    code, events = run_entry(
        "train", train.run, tmp_path, cfg, tmp_path / "o", ["--init-weights", str(base)]
    )
    assert code == 0
    assert by_type(events, "done")[0]["summary"]["val_bpb"] < 4.5  # not a fresh model
    # An architecture change against the weights is refused, listing the field.
    cfg["model"]["n_embd"] = 32
    code, events = run_entry(
        "train", train.run, tmp_path, cfg, tmp_path / "o2", ["--init-weights", str(base)]
    )
    assert code == 2
    assert by_type(events, "error")[0]["details"]["errors"][0]["path"] == "model.n_embd"


def test_evaluate_reports_loss_bpb_utilisation_and_samples(trained, tmp_path, cache):
    base, _ = trained
    cfg = {
        "seed": 3,
        "data": tiny_data(cache),
        "eval": {"max_tokens": 8192, "max_new_tokens": 24, "prompts": ["def ", "import "]},
    }
    code, events = run_entry(
        "evaluate", evaluate.run, tmp_path, cfg, tmp_path / "e", ["--weights", str(base)]
    )
    assert code == 0, by_type(events, "error")
    report = json.loads((tmp_path / "e/eval.json").read_text())
    assert report["val_bpb"] < 4.5 and report["step"] == 200 and report["tokens_per_s"] > 0
    layer = report["layers"]["1"]
    assert len(layer["load"]) == 8 and layer["load_cv"] >= 0 and layer["entropy"] > 0
    samples = json.loads((tmp_path / "e/samples.json").read_text())["samples"]
    assert [s["prompt"] for s in samples] == ["def ", "import "]
    assert all(0 < s["tokens"] <= 24 for s in samples)
    # Same weights, same seed: the same text.
    run_entry("evaluate", evaluate.run, tmp_path, cfg, tmp_path / "e2", ["--weights", str(base)])
    again = json.loads((tmp_path / "e2/samples.json").read_text())["samples"]
    assert [s["completion"] for s in again] == [s["completion"] for s in samples]
    metric = by_type(events, "metric")[0]
    assert metric["step"] == 200 and "eval/moe/layer1/load_cv" in metric["values"]


def test_bad_config_is_an_error_event_and_exit_2(tmp_path):
    code, events = run_entry(
        "train", train.run, tmp_path, {"model": {"top_k": 12, "nope": 1}}, tmp_path / "o"
    )
    assert code == 2
    (err,) = by_type(events, "error")
    assert {e["path"] for e in err["details"]["errors"]} == {"model.top_k", "model.nope"}
    assert "traceback" not in json.dumps(err)


def test_fp16_with_device_auto_and_no_cuda_is_an_error_event_before_any_work(
    tmp_path, cache, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = tiny_config(cache, runtime={"device": "auto", "dtype": "fp16"})
    code, events = run_entry("train", train.run, tmp_path, cfg, tmp_path / "o")
    assert code == 2
    assert [e["type"] for e in events] == ["error"]  # no corpus loaded, no model built
    msg = events[0]["message"]
    assert "fp16 needs CUDA" in msg and "device=auto found no CUDA" in msg and "bf16" in msg
    assert "traceback" not in json.dumps(events[0]).lower()


def test_unusable_corpus_is_a_clear_message_not_a_traceback(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    cfg = tiny_config(cache, data={"paths": [str(tmp_path / "empty")], "max_bytes": None})
    code, events = run_entry("train", train.run, tmp_path, cfg, tmp_path / "o")
    assert code == 2
    (err,) = by_type(events, "error")
    assert "no text files found" in err["message"] and "Traceback" not in json.dumps(err)


def test_evaluate_without_weights_says_what_is_missing(tmp_path):
    code, events = run_entry("evaluate", evaluate.run, tmp_path, None, tmp_path / "o")
    assert code == 2 and "--weights" in by_type(events, "error")[0]["message"]


def test_entry_points_run_as_modules_and_write_events_to_stdout(tmp_path, cache):
    cfg = tiny_config(cache, train={"steps": 2, "warmup_steps": 1, "log_every": 1})
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers.moe.train",
            "--config",
            str(tmp_path / "c.json"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    types = [json.loads(line)["type"] for line in r.stdout.splitlines()]
    assert types[-1] == "done" and "metric" in types


def test_gradient_accumulation_and_bf16_autocast_train(tmp_path, cache):
    cfg = tiny_config(
        cache,
        runtime={"dtype": "bf16"},
        train={"steps": 3, "warmup_steps": 1, "grad_accum": 2, "batch_size": 4, "log_every": 1},
    )
    code, events = run_entry("train", train.run, tmp_path, cfg, tmp_path / "o")
    assert code == 0, by_type(events, "error")
    assert len(losses_by_step(events)) == 3
    assert all(v < 6 for v in losses_by_step(events).values())
    assert "bf16" in next(e["message"] for e in by_type(events, "log") if "model:" in e["message"])


def test_optimizer_step_says_whether_the_scaler_skipped():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(p.sum()).backward()
    p.grad[1] = float("inf")  # what an fp16 overflow leaves behind
    assert train.optimizer_step(scaler, opt) is False
    assert torch.equal(p.data, torch.ones(3)) and scaler.get_scale() == 512.0
    opt.zero_grad()
    scaler.scale(p.sum()).backward()
    assert train.optimizer_step(scaler, opt) is True and float(p.data[0]) < 1.0
    assert train.optimizer_step(torch.amp.GradScaler("cpu", enabled=False), opt) is True


@pytest.mark.parametrize("overflow", [True, False])
def test_the_router_bias_moves_only_when_the_optimizer_steps(
    tmp_path, cache, monkeypatch, overflow
):
    """With fp16 the GradScaler skips a step whose gradients overflowed; the balancing bias
    must skip it too. Faked on CPU: a scaler whose scaled loss is infinite on every step."""
    real = torch.amp.GradScaler

    class Scaler(real):
        def __init__(self, device, enabled=True, **kw):
            super().__init__("cpu", enabled=True, **kw)  # as with fp16, whatever the dtype

        def scale(self, outputs):
            return super().scale(outputs) * (float("inf") if overflow else 1.0)

    monkeypatch.setattr(torch.amp, "GradScaler", Scaler)
    cfg = tiny_config(cache, train={"steps": 3, "warmup_steps": 1, "log_every": 1})
    code, events = run_entry("train", train.run, tmp_path, cfg, tmp_path / "o")
    assert code == 0, by_type(events, "error")
    scales = [
        e["values"]["loss_scale"] for e in by_type(events, "metric") if "loss_scale" in e["values"]
    ]
    state = load_file(str(tmp_path / "o" / "model.safetensors"))
    moved = sum(float(v.abs().sum()) for k, v in state.items() if k.endswith("balance_bias"))
    if overflow:
        assert (
            scales == sorted(scales, reverse=True) and scales[-1] < scales[0]
        )  # every step skipped
        assert moved == 0
    else:
        assert moved > 0
