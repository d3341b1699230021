"""Activation checkpointing (train.activation_checkpointing): every mode computes the loss and
gradients of the plain run, counts each token once in the routing statistics and the balance
bias although the forward runs twice, stores fewer activations, and trains end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.checkpoint import set_checkpoint_early_stop

from tests.bench.bench_moe_memory import saved_activation_bytes
from tests.moe.helpers import TINY_MODEL, by_type, losses_by_step, run_entry, tiny_config
from workers.moe import train
from workers.moe.config import ModelConfig, config_json_schema, validate_config
from workers.moe.model import MoETransformer

pytestmark = pytest.mark.unit

MODES = ("blocks", "moe", "full")

# Routing set-ups the recomputation must reproduce exactly: plain top-2; top-4 with a capacity
# that drops assignments, sigmoid scores, sequence-wise balance loss and z-loss; top-3 over
# heterogeneous experts with dropout (the recomputation must replay the same masks).
SETUPS = {
    "top2": {},
    "top4-capacity": {
        "top_k": 4,
        "capacity_factor": 0.75,
        "router_score": "sigmoid",
        "aux_loss_scope": "sequence",
        "z_loss_coef": 0.001,
    },
    "top3-hetero-dropout": {
        "top_k": 3,
        "n_layer": 3,
        "expert_hidden": [16, 16, 32, 32, 48, 48, 64, 64],
        "dropout": 0.1,
    },
}


def _model(setup: str, mode: str) -> MoETransformer:
    """The same tiny model for every mode (seeded), with a non-zero balance bias so it
    changes which experts are chosen."""
    torch.manual_seed(0)
    model = MoETransformer(ModelConfig(**{**TINY_MODEL, **SETUPS[setup]}))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for moe in model.moe_layers().values():
            bias = moe.router.balance_bias
            bias.copy_(0.05 * torch.randn(bias.shape, generator=g))
    model.set_activation_checkpointing(mode)
    model.train()
    return model


def _batch(batch: int = 4, seq: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (batch, seq), generator=g), torch.randint(
        0, 256, (batch, seq), generator=g
    )


def _step(model: MoETransformer) -> tuple[dict, dict, dict]:
    """One forward + backward with the RNG seeded (dropout): losses, gradients, then the raw
    accumulators, the routing statistics and the bias after the bias update, as a training
    step leaves them."""
    x, y = _batch()
    torch.manual_seed(11)
    losses = model(x, y)[1]
    losses["loss"].backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    raw = {i: (m.step_counts.tolist(), m.step_sums.tolist()) for i, m in model.moe_layers().items()}
    model.update_router_bias()
    stats = {"raw": raw, "stats": model.pop_moe_stats()}
    return {k: v.detach() for k, v in losses.items()}, grads, stats


@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("mode", MODES)
def test_each_mode_gives_the_loss_and_gradients_of_the_plain_run(setup, mode):
    ref_losses, ref_grads, _ = _step(_model(setup, "none"))
    losses, grads, _ = _step(_model(setup, mode))
    for key in ("loss", "lm", "router"):
        torch.testing.assert_close(losses[key], ref_losses[key], rtol=1e-6, atol=1e-7)
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-5, atol=1e-7, msg=name)
    nonzero = [n for n, g in grads.items() if g.abs().sum() > 0]
    assert any("experts.w13" in n for n in nonzero) and any("router" in n for n in nonzero)


@pytest.mark.parametrize("mode", MODES)
def test_under_bf16_autocast_each_mode_gives_the_plain_runs_loss_and_gradients(mode):
    """The recomputation runs under the forward's autocast state (the router opts out)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref_losses, ref_grads, ref_stats = _step(_model("top4-capacity", "none"))
        losses, grads, stats = _step(_model("top4-capacity", mode))
    torch.testing.assert_close(losses["loss"], ref_losses["loss"], rtol=1e-6, atol=1e-7)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-3, atol=1e-6, msg=name)
    assert stats == ref_stats


@pytest.mark.parametrize("early_stop", [True, False], ids=["early-stop", "full-recompute"])
@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("mode", MODES)
def test_routing_statistics_and_bias_count_each_token_once(setup, mode, early_stop):
    """Without early stop torch recomputes each region to its end, the MoE statistics
    included; they and the bias updated from them must still equal the plain run's."""
    _, _, ref = _step(_model(setup, "none"))
    with set_checkpoint_early_stop(early_stop):
        _, _, stats = _step(_model(setup, mode))
    assert stats == ref  # exact: counts, sums, load, entropy, dropped, balance, bias
    if setup == "top4-capacity":
        assert all(s["dropped"] > 0 for s in stats["stats"].values())  # the capacity did bite


def test_accumulated_counts_equal_tokens_times_k_under_recomputation():
    model = _model("top4-capacity", "blocks")
    x, y = _batch()
    with set_checkpoint_early_stop(False):
        model(x, y)[1]["loss"].backward()
    for moe in model.moe_layers().values():
        assert moe.step_counts.sum().item() == x.numel() * moe.top_k
        assert moe.step_sums[3].item() == 1.0  # one forward recorded


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_keeps_fewer_activations_than_none(mode):
    x, y = _batch(seq=64)
    saved = {m: saved_activation_bytes(_model("top2", m), x, y) for m in ("none", mode)}
    # moe keeps attention's and the dense block's activations: only the MoE ones go.
    assert saved[mode] < saved["none"] * (0.9 if mode == "moe" else 0.5), saved


def test_full_keeps_fewer_activations_than_blocks():
    x, y = _batch(seq=64)
    blocks = saved_activation_bytes(_model("top2", "blocks"), x, y)
    full = saved_activation_bytes(_model("top2", "full"), x, y)
    assert full < blocks


def test_without_grad_nothing_is_checkpointed_and_the_logits_are_the_same():
    x, _ = _batch()
    ref = _model("top2", "none")
    model = _model("top2", "full")
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], ref(x)[0], rtol=0, atol=0)
    assert model.pop_moe_stats() == ref.pop_moe_stats()


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="activation checkpointing 'sometimes'"):
        _model("top2", "none").set_activation_checkpointing("sometimes")


def test_the_mode_is_validated_like_every_config_field():
    cfg, errors = validate_config("train", {"train": {"activation_checkpointing": "sometimes"}})
    assert cfg is None
    assert errors == [
        {
            "path": "train.activation_checkpointing",
            "message": "must be one of none, blocks, moe, full",
        }
    ]
    cfg, errors = validate_config("train", {})
    assert errors == [] and cfg.train.activation_checkpointing == "none"
    schema = config_json_schema("train")["properties"]["train"]["properties"]
    assert schema["activation_checkpointing"]["enum"] == ["none", "blocks", "moe", "full"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus-cache")


def _train(tmp: Path, cache: Path, mode: str) -> list[dict]:
    cfg = tiny_config(
        cache,
        train={
            "steps": 3,
            "batch_size": 4,
            "log_every": 1,
            "checkpoint_every": 3,
            "eval_tokens": 1024,
            "activation_checkpointing": mode,
        },
        model={"capacity_factor": 1.0, "top_k": 3},
    )
    code, events = run_entry("train", train.run, tmp, cfg, tmp / mode)
    assert code == 0, by_type(events, "error")
    return events


def test_training_runs_end_to_end_with_each_mode(tmp_path, cache):
    ref = _train(tmp_path, cache, "none")
    ref_metrics = {e["step"]: e["values"] for e in by_type(ref, "metric") if "loss" in e["values"]}
    for mode in MODES:
        events = _train(tmp_path, cache, mode)
        assert any(
            f"activation checkpointing: {mode}" in e["message"] for e in by_type(events, "log")
        )
        assert losses_by_step(events) == pytest.approx(losses_by_step(ref), rel=1e-5)
        first = next(e["values"] for e in by_type(events, "metric") if e["step"] == 1)
        routing = {k: v for k, v in first.items() if k.startswith("moe/")}
        assert routing and routing == {k: ref_metrics[1][k] for k in routing}
        assert by_type(events, "done")[0]["summary"]["steps"] == 3
