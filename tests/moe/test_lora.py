"""LoRA fine-tuning: base untouched, adapter on its own, exact merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.moe.helpers import by_type, run_entry, tiny_config
from workers.moe import finetune, train
from workers.moe.checkpoint import load_weights
from workers.moe.config import LoraConfig, ModelConfig
from workers.moe.lora import apply_lora, load_adapter, merge_dirs, merge_lora
from workers.moe.model import MoETransformer

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("lora-base")
    cache = tmp / "cache"
    cfg = tiny_config(cache, train={"steps": 6, "warmup_steps": 1})
    code, events = run_entry("train", train.run, tmp, cfg, tmp / "base")
    assert code == 0, by_type(events, "error")
    return tmp / "base", cache


@pytest.fixture(scope="module")
def finetuned(base, tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor], list[dict]]:
    base_dir, cache = base
    before = load_file(str(base_dir / "model.safetensors"))
    tmp = tmp_path_factory.mktemp("lora-ft")
    cfg = tiny_config(cache, train={"steps": 6, "warmup_steps": 1, "lr": 1e-2})
    cfg["lora"] = {
        "rank": 4,
        "targets": ["attention", "experts", "shared", "dense"],
        "save_merged": True,
    }
    code, events = run_entry(
        "finetune", finetune.run, tmp, cfg, tmp / "ft", ["--init-weights", str(base_dir)]
    )
    assert code == 0, by_type(events, "error")
    return tmp / "ft", before, events


def test_finetune_leaves_the_base_weights_untouched(base, finetuned):
    base_dir, _ = base
    _, before, _ = finetuned
    after = load_file(str(base_dir / "model.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_adapter_is_saved_on_its_own(finetuned):
    out, _, events = finetuned
    adapter = load_file(str(out / "adapter/adapter.safetensors"))
    assert adapter and all(k.endswith((".lora_A", ".lora_B")) for k in adapter)
    assert "blocks.1.ffn.experts.w13.lora_A" in adapter
    assert adapter["blocks.1.ffn.experts.w13.lora_A"].shape == (8, 4, 64)  # one pair per expert
    assert any(float(v.abs().sum()) > 0 for k, v in adapter.items() if k.endswith("lora_B"))
    meta = json.loads((out / "adapter/adapter_config.json").read_text())
    assert meta["rank"] == 4 and "base_model" in meta
    kinds = {e["path"]: e["kind"] for e in by_type(events, "artifact")}
    assert kinds["adapter/adapter.safetensors"] == "adapter"
    assert "trainable_params" in by_type(events, "done")[0]["summary"]


def test_merge_reproduces_the_adapted_model(base, finetuned, tmp_path):
    base_dir, _ = base
    out, before, _ = finetuned
    adapted, _ = load_weights(base_dir)
    load_adapter(adapted, out / "adapter")
    merged_dir = tmp_path / "merged"
    merge_dirs(base_dir, out / "adapter", merged_dir)
    merged, _ = load_weights(merged_dir)
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    adapted.eval()
    merged.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(idx)[0], adapted(idx)[0], rtol=1e-5, atol=1e-5)
    merged_state = load_file(str(merged_dir / "model.safetensors"))
    assert not torch.equal(
        merged_state["blocks.1.ffn.experts.w13"], before["blocks.1.ffn.experts.w13"]
    )
    # The finetune job's own merged output is the same tensors.
    own = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(own[k], merged_state[k]) for k in merged_state)


def test_merging_bakes_exactly_the_weight_the_adapted_forward_used():
    torch.manual_seed(0)
    cfg = ModelConfig(
        block_size=16,
        n_layer=2,
        n_head=2,
        n_embd=32,
        n_experts=4,
        expert_hidden=[8, 16, 8, 16],
        shared_hidden=8,
        dense_hidden=32,
    )
    model = MoETransformer(cfg)
    apply_lora(model, LoraConfig(rank=2, targets=["attention", "experts"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    adapted_w = model.blocks[1].ffn.experts.w13.detach().clone()
    idx = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        y_adapted = model(idx)[0]
    assert merge_lora(model) == 6
    assert torch.equal(model.blocks[1].ffn.experts.w13.detach(), adapted_w)
    with torch.no_grad():
        assert torch.equal(model(idx)[0], y_adapted)


def test_a_fresh_adapter_changes_nothing_and_only_adapters_train():
    torch.manual_seed(0)
    model = MoETransformer(
        ModelConfig(
            block_size=16,
            n_layer=2,
            n_head=2,
            n_embd=32,
            n_experts=4,
            expert_hidden=8,
            shared_hidden=8,
            dense_hidden=32,
        )
    )
    idx = torch.randint(0, 256, (1, 16))
    with torch.no_grad():
        y0 = model(idx)[0]
    apply_lora(model, LoraConfig(rank=2))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], y0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_finetune_needs_a_base_model(tmp_path):
    code, events = run_entry("finetune", finetune.run, tmp_path, None, tmp_path / "o")
    assert code == 2 and "--init-weights" in by_type(events, "error")[0]["message"]
