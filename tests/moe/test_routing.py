"""Router, capacity, dispatch and balancing: the properties the MoE layer promises."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.moe.reference import dispatch_mask_loop, moe_forward_reference
from workers.moe.config import ModelConfig
from workers.moe.dispatch import GroupedSwiGLU, _batched, pad_slices
from workers.moe.model import (
    MoE,
    Routing,
    dispatch_sorted,
    plan_dispatch,
)

pytestmark = pytest.mark.unit


def make_moe(dtype: torch.dtype = torch.float64, seed: int = 0, **kw) -> MoE:
    base = dict(
        n_embd=24,
        n_head=2,
        n_experts=8,
        expert_hidden=16,
        top_k=3,
        n_shared_experts=0,
        shared_hidden=8,
    )
    base.update(kw)
    torch.manual_seed(seed)
    moe = MoE(ModelConfig(**base))
    with torch.no_grad():
        for p in moe.parameters():
            p.normal_(0.0, 0.3)
    return moe.to(dtype)


# ---- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize("score", ["softmax", "sigmoid"])
@pytest.mark.parametrize("k", [2, 4, 8])
def test_every_token_gets_exactly_k_distinct_experts_and_gates_sum_to_one(score, k):
    moe = make_moe(n_experts=8, top_k=k, router_score=score)
    r = moe.router(torch.randn(300, 24, dtype=torch.float64))
    assert r.experts.shape == (300, k)
    assert all(len(set(row)) == k for row in r.experts.tolist())
    torch.testing.assert_close(r.gates.sum(-1), torch.ones(300, dtype=torch.float32))
    assert bool((r.gates > 0).all())


def test_gates_are_the_unbiased_scores_normalised_over_the_chosen_experts():
    moe = make_moe(router_score="sigmoid", route_scale=2.5)
    moe.router.balance_bias[5] = 100.0  # expert 5 now wins every selection
    x = torch.randn(50, 24, dtype=torch.float64)
    r = moe.router(x)
    assert bool((r.experts == 5).any(-1).all())
    s = torch.sigmoid(x.float() @ moe.router.weight.float().T)
    chosen = s.gather(1, r.experts)
    torch.testing.assert_close(r.gates, 2.5 * chosen / chosen.sum(-1, keepdim=True))


def test_router_stays_fp32_under_bf16_autocast():
    moe = make_moe(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r = moe.router(torch.randn(10, 24))
    assert r.logits.dtype == torch.float32 and r.gates.dtype == torch.float32


def test_balance_bias_is_a_buffer_without_gradient():
    moe = make_moe()
    names = {n for n, _ in moe.named_parameters()}
    assert "router.balance_bias" not in names
    assert "router.balance_bias" in moe.state_dict()


# ---- capacity -----------------------------------------------------------------------------


def _skewed_routing(n: int = 64, e: int = 4, k: int = 2, seed: int = 0) -> Routing:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, e, generator=g)
    logits[:, 0] += 2.0  # most tokens want expert 0
    scores = logits.softmax(-1)
    _, experts = scores.topk(k, dim=-1)
    chosen = scores.gather(1, experts)
    return Routing(experts, chosen / chosen.sum(-1, keepdim=True), scores, logits)


def test_capacity_keeps_at_most_capacity_assignments_per_expert():
    r = _skewed_routing()
    plan = plan_dispatch(r, 4, capacity=20)
    assert max(plan.counts) <= 20
    kept_experts = r.experts.reshape(-1)[plan.order]
    assert torch.bincount(kept_experts, minlength=4).tolist() == plan.counts
    assert int(plan.dropped) == r.experts.numel() - plan.order.numel() > 0


def test_capacity_drops_the_same_assignments_every_time():
    r = _skewed_routing()
    first = plan_dispatch(r, 4, capacity=20).order.tolist()
    for _ in range(3):
        assert plan_dispatch(r, 4, capacity=20).order.tolist() == first
    # The same scores in a fresh object (e.g. another process) give the same drops too.
    again = _skewed_routing()
    assert plan_dispatch(again, 4, capacity=20).order.tolist() == first


def test_capacity_drops_the_lowest_scoring_assignments_of_an_overfull_expert():
    r = _skewed_routing()
    plan = plan_dispatch(r, 4, capacity=20)
    flat_e = r.experts.reshape(-1)
    flat_s = r.scores.gather(1, r.experts).reshape(-1)
    kept = torch.zeros_like(flat_e, dtype=torch.bool)
    kept[plan.order] = True
    for e in range(4):
        mine = flat_e == e
        if int(mine.sum()) > 20:
            assert float(flat_s[mine & kept].min()) >= float(flat_s[mine & ~kept].max())


def test_dropless_by_default_keeps_every_assignment():
    r = _skewed_routing()
    plan = plan_dispatch(r, 4, capacity=None)
    assert sorted(plan.order.tolist()) == list(range(r.experts.numel()))
    assert plan.dropped == 0


# ---- dispatch vs the reference loop ---------------------------------------------------------


CASES = {
    "softmax": dict(router_score="softmax"),
    "sigmoid": dict(router_score="sigmoid", route_scale=2.5),
    "shared": dict(n_shared_experts=2, shared_hidden=8),
    "heterogeneous_list": dict(expert_hidden=[16, 32, 8, 16, 48, 24, 24, 8]),
    "heterogeneous_groups": dict(
        expert_hidden=[{"count": 3, "hidden": 8}, {"count": 5, "hidden": 20}],
        router_score="sigmoid",
        n_shared_experts=1,
    ),
    "capacity": dict(capacity_factor=0.75),
}


def _grads(moe: MoE, x: torch.Tensor, y: torch.Tensor, dy: torch.Tensor) -> list[torch.Tensor]:
    params = [x, *moe.parameters()]
    return list(
        torch.autograd.grad((y * dy).sum(), params, allow_unused=True, materialize_grads=True)
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_sort_dispatch_matches_the_mask_loop_in_outputs_and_gradients(case):
    moe = make_moe(dtype=torch.float32, **CASES[case])
    x = torch.randn(3, 20, 24, requires_grad=True)
    y, _ = moe(x)
    y_ref = moe_forward_reference(moe, x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = torch.randn_like(y)
    g = _grads(moe, x, y, dy)
    g_ref = _grads(moe, x, y_ref, dy)
    names = ["x", *(n for n, _ in moe.named_parameters())]
    assert any(float(t.abs().sum()) > 0 for t in g[1:2])  # the router does learn
    for name, a, b in zip(names, g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"gradient of {name}")


@settings(max_examples=12, deadline=None)
@given(
    n_tokens=st.integers(1, 40),
    n_experts=st.integers(2, 9),
    k=st.integers(2, 8),
    score=st.sampled_from(["softmax", "sigmoid"]),
    shared=st.integers(0, 1),
    seed=st.integers(0, 1000),
)
def test_sort_dispatch_matches_the_mask_loop_for_random_shapes(
    n_tokens, n_experts, k, score, shared, seed
):
    k = min(k, n_experts)
    sizes = [4 + (seed * (i + 3)) % 13 for i in range(n_experts)]
    moe = make_moe(
        dtype=torch.float64,
        seed=seed,
        n_experts=n_experts,
        top_k=k,
        router_score=score,
        expert_hidden=sizes,
        n_shared_experts=shared,
    )
    x = torch.randn(1, n_tokens, 24, dtype=torch.float64, requires_grad=True)
    y, _ = moe(x)
    y_ref = moe_forward_reference(moe, x)
    torch.testing.assert_close(y, y_ref)
    dy = torch.randn_like(y)
    for a, b in zip(_grads(moe, x, y, dy), _grads(moe, x, y_ref, dy), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("uniform", [False, True], ids=["granule", "uniform-batched"])
def test_padded_slices_change_nothing(uniform):
    """Padding rows are exact zeros, whether slices are rounded to a granule or all padded to
    the longest one (which runs the experts as batched matmuls)."""
    moe = make_moe(dtype=torch.float64)
    x = torch.randn(40, 24, dtype=torch.float64, requires_grad=True)
    r = moe.router(x)
    plan = plan_dispatch(r, moe.n_experts, None)
    y = dispatch_mask_loop(x, r, moe)  # the obviously-correct loop
    torch.testing.assert_close(dispatch_sorted(x, r, moe.experts, plan), y)
    gates = r.gates.reshape(-1)[plan.order]
    tok, gat, counts = pad_slices(plan.tokens, gates, plan.counts, 16, uniform=uniform)
    assert all(c % 16 == 0 for c in counts) and sum(counts) > sum(plan.counts)
    assert _batched(counts, moe.experts.sizes) == uniform
    y_pad = GroupedSwiGLU.apply(
        x, gat, moe.experts.w13, moe.experts.w2, tok, counts, moe.experts.sizes
    )
    torch.testing.assert_close(y, y_pad)
    dy = torch.randn_like(y)
    params = [x, moe.router.weight, moe.experts.w13, moe.experts.w2]
    g = torch.autograd.grad((y * dy).sum(), params, retain_graph=True)
    g_pad = torch.autograd.grad((y_pad * dy).sum(), params)
    for a, b in zip(g, g_pad, strict=True):
        torch.testing.assert_close(a, b)


def test_bf16_autocast_dispatch_is_close_to_fp32():
    moe = make_moe(dtype=torch.float32, n_shared_experts=1)
    x = torch.randn(2, 50, 24)
    y32, _ = moe(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16, _ = moe(x)
    assert y16.dtype == torch.float32
    rel = (y16 - y32).detach().norm() / y32.detach().norm()
    assert float(rel) < 0.03


# ---- losses and balancing -----------------------------------------------------------------


def test_aux_loss_is_lambda_at_uniform_routing_and_grows_with_skew():
    moe = make_moe(dtype=torch.float32, aux_loss_coef=0.2, n_experts=4, top_k=2)
    with torch.no_grad():
        moe.router.weight.zero_()  # uniform scores; ties make top-k pick experts 0 and 1 ...
    x = torch.randn(1, 64, 24)
    _, loss = moe(x)
    # ... so f = (½, ½, 0, 0) while P is uniform: E·Σ f·P = 4·(¼·½·2) = 1 → L = λ.
    assert math.isclose(float(loss.detach()), 0.2, rel_tol=1e-5)
    with torch.no_grad():
        moe.router.weight[0] = 5.0 * x[0].mean(0) / x[0].mean(0).norm()
    _, skewed = moe(torch.randn(1, 64, 24) + x[0].mean(0))
    assert float(skewed.detach()) > 0.2


def test_z_loss_is_added_when_configured():
    moe = make_moe(dtype=torch.float32, aux_loss_coef=0.0, z_loss_coef=0.01)
    _, loss = moe(torch.randn(1, 16, 24))
    assert float(loss.detach()) > 0
    moe0 = make_moe(dtype=torch.float32, aux_loss_coef=0.0, z_loss_coef=0.0)
    assert float(moe0(torch.randn(1, 16, 24))[1].detach()) == 0.0


def test_sequence_wise_aux_loss_runs_and_is_lambda_when_uniform():
    moe = make_moe(
        dtype=torch.float32, aux_loss_coef=0.1, aux_loss_scope="sequence", n_experts=4, top_k=2
    )
    with torch.no_grad():
        moe.router.weight.zero_()
    _, loss = moe(torch.randn(3, 16, 24))
    assert math.isclose(float(loss.detach()), 0.1, rel_tol=1e-5)


def test_aux_loss_free_bias_moves_a_skewed_router_toward_uniform_load():
    moe = make_moe(
        dtype=torch.float32,
        n_experts=8,
        top_k=2,
        aux_loss_coef=0.0,
        bias_balance=True,
        bias_update_rate=0.01,
        router_score="sigmoid",
    )
    with torch.no_grad():
        moe.router.weight[:2] += 0.5  # experts 0 and 1 attract most tokens
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 512, 24, generator=g).abs()
    moe(x)
    before = moe.pop_stats()
    for _ in range(300):
        moe(torch.randn(1, 512, 24, generator=g).abs())
        moe.update_bias()
        moe.pop_stats()
    moe(x)
    after = moe.pop_stats()
    assert before["load_cv"] > 0.5
    assert after["load_cv"] < 0.25 * before["load_cv"]
    bias = moe.router.balance_bias
    assert float(bias[:2].max()) < 0 < float(bias[2:].max())  # overloaded experts pushed down


def test_bias_does_not_move_when_balancing_is_off():
    moe = make_moe(dtype=torch.float32, bias_balance=False)
    moe(torch.randn(1, 64, 24))
    moe.update_bias()
    assert float(moe.router.balance_bias.abs().sum()) == 0.0


def test_layer_records_load_entropy_drops_aux_and_bias_per_step():
    moe = make_moe(dtype=torch.float32, capacity_factor=0.5, aux_loss_coef=0.01)
    moe(torch.randn(2, 32, 24))
    s = moe.pop_stats()
    assert len(s["load"]) == 8 and math.isclose(sum(s["load"]), 1.0, rel_tol=1e-6)
    assert 0 < s["entropy"] <= math.log(8) + 1e-6
    assert 0 < s["dropped"] < 1
    assert s["aux_loss"] == pytest.approx(0.01 * s["aux_balance"])
    assert len(s["bias"]) == 8
    assert sum(moe.pop_stats()["load"]) == 0  # reset after reading
