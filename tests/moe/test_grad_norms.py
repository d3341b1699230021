"""Per-layer and per-expert gradient norms: their values, and their metrics during training."""

from __future__ import annotations

import math

import pytest
import torch

from tests.moe.helpers import TINY_MODEL, by_type, run_entry, tiny_config
from workers.moe import train
from workers.moe.config import ModelConfig
from workers.moe.grad_norms import grad_norm_values
from workers.moe.model import MoETransformer

pytestmark = pytest.mark.unit


def _backward(**over) -> MoETransformer:
    torch.manual_seed(0)
    m = MoETransformer(ModelConfig(**{**TINY_MODEL, **over}))
    x = torch.randint(0, 256, (4, 32))
    m(x, x)[1]["loss"].backward()
    return m


def test_norms_add_up_to_the_blocks_gradient_norm():
    m = _backward()
    v = grad_norm_values(m)
    for i, block in enumerate(m.blocks):
        ref = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in block.attn.parameters()))
        assert v[f"grad_norm/layer{i}/attn"] == pytest.approx(ref, rel=1e-5)
        ffn = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in block.ffn.parameters()))
        parts = v[f"grad_norm/layer{i}/experts"] ** 2 + v.get(f"grad_norm/layer{i}/router", 0) ** 2
        assert math.sqrt(parts) == pytest.approx(ffn, rel=1e-5)
    moe = sorted(m.moe_layers())
    assert moe and all(f"grad_norm/layer{i}/expert7" in v for i in moe)
    assert "grad_norm/layer0/expert0" not in v  # layer 0 is dense
    for i in moe:
        experts = [v[f"grad_norm/layer{i}/expert{j}"] for j in range(8)]
        bank = m.moe_layers()[i].experts
        ref = math.sqrt(float(bank.w13.grad.pow(2).sum() + bank.w2.grad.pow(2).sum()))
        assert math.sqrt(sum(e * e for e in experts)) == pytest.approx(ref, rel=1e-5)


def test_a_starved_expert_has_a_zero_gradient_norm():
    m = _backward(top_k=1, debug_force_expert=3)
    v = grad_norm_values(m)
    for i in m.moe_layers():
        assert v[f"grad_norm/layer{i}/expert3"] > 0
        assert all(v[f"grad_norm/layer{i}/expert{j}"] == 0 for j in range(8) if j != 3)


def test_training_logs_grad_norms_every_interval(tmp_path):
    cache = tmp_path / "cache"
    cfg = tiny_config(cache, train={"steps": 10, "grad_norm_interval": 4})
    code, events = run_entry("train", train.run, tmp_path, cfg, tmp_path / "out")
    assert code == 0, by_type(events, "error")
    steps = [e["step"] for e in by_type(events, "metric") if "grad_norm/layer1/attn" in e["values"]]
    assert steps == [4, 8, 10]
    last = next(
        e["values"]
        for e in by_type(events, "metric")
        if e["step"] == 10 and "grad_norm/layer1/expert0" in e["values"]
    )
    assert all(math.isfinite(x) and x >= 0 for x in last.values())
    assert {f"grad_norm/layer1/expert{j}" for j in range(8)} <= set(last)


def test_grad_norm_interval_is_validated(tmp_path):
    cfg = tiny_config(tmp_path / "cache", train={"grad_norm_interval": -1})
    code, events = run_entry("train", train.run, tmp_path, cfg, tmp_path / "out")
    assert code == 2 and "grad_norm_interval" in by_type(events, "error")[0]["message"]
