"""QLoRA: adapters train on a base stored in NF4 / int8, the commit holds the adapters only,
merging into full weights is an explicit step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.moe.helpers import by_type, run_entry, tiny_config
from workers.moe import finetune, train
from workers.moe.checkpoint import load_weights
from workers.moe.config import Config, LoraConfig, ModelConfig, validate_config
from workers.moe.data import load_corpus
from workers.moe.lora import apply_lora, merge_dirs, merge_lora
from workers.moe.model import MoETransformer
from workers.moe.quantize import quantize_model, weight_bytes
from workers.moe.train import evaluate_loss

pytestmark = pytest.mark.unit
ALL_TARGETS = ["attention", "experts", "shared", "dense"]
FT_TRAIN = {"steps": 16, "warmup_steps": 2, "lr": 1e-2, "eval_tokens": 4096, "eval_every": 0}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("qlora-base")
    cache = tmp / "cache"
    cfg = tiny_config(cache, train={"steps": 6, "warmup_steps": 1})
    code, events = run_entry("train", train.run, tmp, cfg, tmp / "base")
    assert code == 0, by_type(events, "error")
    return tmp / "base", cache


def finetune_data(tmp: Path) -> dict:
    """A small corpus of a kind the base never saw (a made-up register language): what a
    fine-tuning job is for, and a clear signal within a few steps."""
    corpus = tmp / "ft-corpus"
    corpus.mkdir(exist_ok=True)
    for d in range(60):
        lines = (f"SET register_{(d * 31 + i) % 17} TO {(d + i * 7) % 100};\n" for i in range(80))
        (corpus / f"doc{d:02d}.txt").write_text("".join(lines))
    return {"paths": [str(corpus)], "cache_dir": str(tmp / "ft-cache")}


def _finetune(base, tmp: Path, quantization: str) -> tuple[Path, list[dict]]:
    base_dir, cache = base
    cfg = tiny_config(cache, train=FT_TRAIN)
    cfg["data"] = finetune_data(cache.parent)
    cfg["lora"] = {"rank": 4, "targets": ALL_TARGETS}
    cfg["finetune"] = {"base_quantization": quantization}
    code, events = run_entry(
        "finetune", finetune.run, tmp, cfg, tmp / "ft", ["--init-weights", str(base_dir)]
    )
    assert code == 0, by_type(events, "error")
    return tmp / "ft", events


@pytest.fixture(scope="module")
def nf4_run(base, tmp_path_factory) -> tuple[Path, list[dict]]:
    return _finetune(base, tmp_path_factory.mktemp("qlora-nf4"), "nf4")


def test_an_nf4_qlora_run_lowers_validation_loss_on_the_finetuning_data(base, nf4_run):
    base_dir, cache = base
    _, events = nf4_run
    cfg, errors = validate_config("finetune", {"data": finetune_data(cache.parent)})
    assert cfg is not None, errors
    model, _ = load_weights(base_dir)
    quantize_model(model, "nf4")  # what the adapters start from: B = 0, so exactly this model
    data = load_corpus(cfg.data, cache.parent / "scratch", model.cfg.block_size)
    before = evaluate_loss(model, data, 8, 4096, torch.device("cpu"), "fp32")["loss"]
    summary = by_type(events, "done")[0]["summary"]
    assert summary["base_quantization"] == "nf4"
    assert summary["val_loss"] < before - 0.2, (summary["val_loss"], before)


def test_the_nf4_base_takes_under_a_third_of_the_full_precision_bytes(nf4_run):
    _, events = nf4_run
    s = by_type(events, "done")[0]["summary"]
    # projections in 4 bit (+ scales); embeddings, norms and routers stay fp32
    assert s["base_weight_bytes"] < s["base_weight_bytes_full"] / 3


def test_the_qlora_output_is_the_adapter_only_and_names_its_quantized_base(nf4_run):
    out, events = nf4_run
    kinds = {e["path"]: e["kind"] for e in by_type(events, "artifact") if e["kind"] != "checkpoint"}
    assert kinds == {
        "adapter/adapter.safetensors": "adapter",
        "adapter/adapter_config.json": "adapter",
    }
    assert not (out / "model.safetensors").exists()
    adapter = load_file(str(out / "adapter/adapter.safetensors"))
    assert all(k.endswith((".lora_A", ".lora_B")) for k in adapter)
    assert adapter["blocks.1.ffn.experts.w13.lora_A"].shape == (8, 4, 64)  # one pair per expert
    meta = json.loads((out / "adapter/adapter_config.json").read_text())
    assert meta["base_quantization"]["method"] == "nf4"
    assert meta["base_quantization"]["double_quant"] is True


def test_checkpoints_of_a_qlora_run_hold_adapters_not_the_base(nf4_run):
    out, _ = nf4_run
    ckpt = sorted((out / "checkpoints").glob("step-*.pt"))[-1]
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    big = {k: v.numel() for k, v in state.items() if ".lora_" not in k and v.numel() > 0}
    assert not any(".parametrizations." in k for k in big), sorted(big)[:5]


def test_merge_gives_the_full_precision_base_plus_the_adapter_delta(base, nf4_run, tmp_path):
    base_dir, _ = base
    out, _ = nf4_run
    merge_dirs(base_dir, out / "adapter", tmp_path / "merged")
    merged = load_file(str(tmp_path / "merged/model.safetensors"))
    orig = load_file(str(base_dir / "model.safetensors"))
    adapter = load_file(str(out / "adapter/adapter.safetensors"))
    meta = json.loads((out / "adapter/adapter_config.json").read_text())
    scale = meta["alpha"] / meta["rank"]
    A = adapter["blocks.1.ffn.experts.w13.lora_A"]  # (E, r, C)
    B = adapter["blocks.1.ffn.experts.w13.lora_B"].view(A.shape[0], -1, A.shape[1])  # (E, 2h, r)
    delta = torch.bmm(B, A).reshape(-1, A.shape[2])
    torch.testing.assert_close(
        merged["blocks.1.ffn.experts.w13"], orig["blocks.1.ffn.experts.w13"] + scale * delta
    )
    cfg = json.loads((tmp_path / "merged/config.json").read_text())
    assert cfg["merged_adapter"]["base_quantization"]["method"] == "nf4"
    # ... and equals the trained (quantized) forward's weight up to NF4's rounding of the base.
    q, _ = load_weights(base_dir)
    quantize_model(q, "nf4")
    with torch.no_grad():
        trained = q.blocks[1].ffn.experts.w13 + scale * delta
    rounding = orig["blocks.1.ffn.experts.w13"] - q.blocks[1].ffn.experts.w13.detach()
    torch.testing.assert_close(merged["blocks.1.ffn.experts.w13"] - trained, rounding)
    assert (
        0 < float(rounding.abs().max()) < 0.15 * float(orig["blocks.1.ffn.experts.w13"].abs().max())
    )


@pytest.mark.parametrize("method", ["nf4", "int8"])
def test_merging_a_quantized_adapted_model_bakes_dequantized_base_plus_delta(method):
    torch.manual_seed(0)
    model = MoETransformer(ModelConfig(**_tiny_model()))
    quantize_model(model, method)
    apply_lora(model, LoraConfig(rank=4, targets=ALL_TARGETS))
    bank = model.blocks[1].ffn.experts
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.02)
    base = bank.parametrizations.w13[0].dequantize().clone()
    lora = bank.parametrizations.w13[1]
    expected = base + lora.scale * lora.delta()
    idx = torch.randint(0, 256, (2, 16))
    model.eval()
    with torch.no_grad():
        adapted = model(idx)[0]
        assert merge_lora(model) > 0
        torch.testing.assert_close(bank.w13, expected)
        torch.testing.assert_close(model(idx)[0], adapted, rtol=1e-5, atol=1e-5)


def test_only_the_adapters_train_on_a_quantized_base():
    torch.manual_seed(0)
    model = MoETransformer(ModelConfig(**_tiny_model()))
    quantize_model(model, "int8")
    apply_lora(model, LoraConfig(rank=2, targets=ALL_TARGETS))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    _, losses = model(torch.randint(0, 256, (2, 16)), torch.randint(0, 256, (2, 16)))
    losses["loss"].backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)
    assert weight_bytes(model) < weight_bytes(MoETransformer(ModelConfig(**_tiny_model())))


def test_base_quantization_is_validated():
    cfg, errors = validate_config("finetune", {"finetune": {"base_quantization": "nf4"}})
    assert isinstance(cfg, Config) and cfg.finetune.base_quantization == "nf4"
    _, errors = validate_config("finetune", {"finetune": {"base_quantization": "int4"}})
    assert [e["path"] for e in errors] == ["finetune.base_quantization"]


def test_an_adapter_commit_holds_only_the_adapters_and_names_its_base(tmp_path):
    from tests.unit.test_supervisor import FakeClient, supervise

    base = {"repo": "alice/moe", "ref": "main", "commit": "a" * 40}

    class Client(FakeClient):
        def _json(self, method, path, json=None, idempotent=False, params=None):
            if path.endswith("/worker/chunks/missing"):
                return {"missing": []}
            return super()._json(method, path, json, idempotent, params)

        def push(self, path, **kw):
            self.pushed = {
                "files": sorted(p.name for p in Path(path).iterdir()),
                "adapter_config": json.loads((Path(path) / "adapter_config.json").read_text()),
                **kw,
            }

            class Res:
                commit = {"sha": "b" * 40}

            return Res()

    client = Client(base=base, target={"repo": "alice/moe", "branch": "ft"})
    client.job["kind"] = "finetune"
    client.branches[("alice/moe", "ft")] = "a" * 40
    events = [
        json.dumps({"type": "artifact", "seq": i, "time": 1.0, "path": p, "kind": "adapter"})
        for i, p in enumerate(["adapter/adapter.safetensors", "adapter/adapter_config.json"])
    ]

    def write(sandbox):
        out = sandbox.spec.job_dir / "out" / "adapter"
        out.mkdir(parents=True, exist_ok=True)
        (out / "adapter.safetensors").write_bytes(b"adapter")
        (out / "adapter_config.json").write_text(json.dumps({"rank": 4}))

    sup, client = supervise(
        tmp_path, client=client, events=[e.encode() for e in events], during=write
    )
    assert sup.run() == "succeeded"
    pushed = client.pushed
    assert pushed["files"] == ["adapter.safetensors", "adapter_config.json"]
    assert pushed["delete_missing"] is True  # the base's weights are not carried along
    assert pushed["metadata"]["base_commit"] == f"alice/moe@{'a' * 40}"
    assert pushed["adapter_config"] == {
        "rank": 4,
        "base_commit": {"repo": "alice/moe", "commit": "a" * 40},
    }


def _tiny_model() -> dict:
    from tests.moe.helpers import TINY_MODEL

    return dict(TINY_MODEL)
