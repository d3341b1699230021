"""Attention maps computed on an explicit path equal what the fused SDPA path computes, and
the routing diff reports a commit against itself and a permuted-experts copy exactly."""

from __future__ import annotations

import copy

import pytest
import torch

from hub.shared.routing_diff import _greedy, match_experts, routing_diff
from tests.moe.helpers import TINY_MODEL
from workers.moe.config import ModelConfig
from workers.moe.introspect import QUANT, attention_maps, explicit_attention, routing_probe
from workers.moe.model import MoETransformer
from workers.moe.probe_set import PROBE_SET_VERSION, PROBE_WINDOWS


def _model(**over) -> MoETransformer:
    torch.manual_seed(0)
    return MoETransformer(ModelConfig(**{**TINY_MODEL, **over})).eval()


def test_explicit_attention_output_equals_sdpa():
    m = _model()
    x = torch.randn(2, 17, m.cfg.n_embd)
    attn = m.blocks[0].attn
    w, y = explicit_attention(attn, x, m.rope_cos, m.rope_sin)
    with torch.no_grad():
        ref = attn(x, m.rope_cos, m.rope_sin)  # the module's own SDPA path
    assert torch.allclose(y, ref, atol=1e-5), (y - ref).abs().max()
    assert torch.allclose(w.sum(-1), torch.ones(2, m.cfg.n_head, 17))
    assert (w.triu(1) == 0).all()  # causal: nothing attends to a later token


def test_attention_maps_per_layer_head_and_routing_per_token():
    m = _model()
    prompt = "def f(x):\n  return x"
    res = attention_maps(m, prompt, max_tokens=64)
    T = len(prompt.encode())
    assert res["tokens"][:3] == ["d", "e", "f"] and res["tokens"][3] == "␣"
    assert len(res["layers"]) == m.cfg.n_layer
    for layer in res["layers"]:
        assert layer["max_abs_diff"] < 1e-5
        assert len(layer["heads"]) == m.cfg.n_head
        for head in layer["heads"]:
            assert [len(r) for r in head] == list(range(1, T + 1))
            assert head[0] == [QUANT]  # the first token attends only to itself
            assert all(abs(sum(r) - QUANT) <= len(r) for r in head)
    moe_layers = [L for L in res["layers"] if "routing" in L]
    assert [L["layer"] for L in moe_layers] == sorted(m.moe_layers())
    assert all(len(L["routing"]["experts"]) == T for L in moe_layers)
    assert all(len(e) == m.cfg.top_k for L in moe_layers for e in L["routing"]["experts"])


def test_attention_maps_refuse_a_prompt_over_the_bound():
    m = _model()
    try:
        attention_maps(m, "x" * 65, max_tokens=256)
    except ValueError as e:
        assert "at most 64" in str(e)
    else:
        raise AssertionError("a prompt longer than block_size was accepted")


def test_routing_diff_of_a_commit_with_itself():
    m = _model()
    p = routing_probe(m, list(PROBE_WINDOWS))
    n = sum(min(len(w.encode()), m.cfg.block_size) for w in PROBE_WINDOWS)
    assert p["n_tokens"] == n and PROBE_SET_VERSION == 1
    d = routing_diff(p, p)
    for layer in d["layers"]:
        assert layer["same_top1"] == 1.0 and layer["swaps"] == []
        assert all(x == 0 for x in layer["load_delta"])
        assert layer["matching"] == list(range(m.cfg.n_experts))
        assert abs(sum(layer["load_a"]) - 1) < 1e-6
        assert 0 < layer["entropy_a"] == layer["entropy_b"] <= torch.log(torch.tensor(8.0))


def _permute_experts(m: MoETransformer, sigma: list[int]) -> MoETransformer:
    """A copy whose expert sigma[i] is the original expert i (weights and router row)."""
    b = copy.deepcopy(m)
    inv = [sigma.index(j) for j in range(len(sigma))]
    with torch.no_grad():
        for i, moe in b.moe_layers().items():
            src = m.moe_layers()[i]
            h = src.experts.sizes[0]
            assert all(s == h for s in src.experts.sizes)
            w13 = src.experts.w13.view(len(sigma), 2 * h, -1)
            w2 = src.experts.w2.view(len(sigma), h, -1)
            moe.experts.w13.copy_(w13[inv].reshape_as(moe.experts.w13))
            moe.experts.w2.copy_(w2[inv].reshape_as(moe.experts.w2))
            moe.router.weight.copy_(src.router.weight[inv])
            moe.router.balance_bias.copy_(src.router.balance_bias[inv])
    return b


def test_routing_diff_detects_exactly_the_swapped_experts():
    m = _model(top_k=1)
    pa = routing_probe(m, list(PROBE_WINDOWS))
    layer = pa["layers"][0]
    busy = sorted(range(8), key=lambda e: -layer["top1"].count(e))[:4]
    sigma = list(range(8))
    sigma[busy[0]], sigma[busy[1]] = busy[1], busy[0]
    sigma[busy[2]], sigma[busy[3]] = busy[3], busy[2]
    b = _permute_experts(m, sigma)
    x = torch.randint(0, 256, (1, 40))
    with torch.no_grad():
        assert torch.allclose(m(x)[0], b(x)[0], atol=1e-4)  # the same function
    pb = routing_probe(b, list(PROBE_WINDOWS))
    d = routing_diff(pa, pb)
    for L in d["layers"]:
        assert L["matching"] == sigma
        assert {(s["a"], s["b"]) for s in L["swaps"]} == {(i, sigma[i]) for i in busy}
        assert all(s["overlap"] == 1.0 for s in L["swaps"])
        assert L["matched_same_top1"] == 1.0 and L["same_top1"] < 1.0
        expected = [L["load_a"][sigma.index(e)] - L["load_a"][e] for e in range(8)]
        assert all(abs(x - y) < 3e-6 for x, y in zip(L["load_delta"], expected, strict=True))
        assert sum(x != 0 for x in L["load_delta"]) >= 2  # the swapped loads moved


def test_routing_diff_of_different_top_k_is_within_range():
    a = routing_probe(_model(top_k=2), list(PROBE_WINDOWS))
    torch.manual_seed(1)
    b = routing_probe(
        MoETransformer(ModelConfig(**{**TINY_MODEL, "top_k": 4})).eval(), list(PROBE_WINDOWS)
    )
    d = routing_diff(a, b)
    assert d["top_k_a"] == 2 and d["top_k_b"] == 4
    for L in d["layers"]:
        assert 0.0 <= L["same_top1"] <= L["matched_same_top1"] <= 1.0
        assert all(-1.0 <= x <= 1.0 for x in L["load_delta"])
        assert abs(sum(L["load_delta"])) < 1e-5
        assert sorted(L["matching"]) == list(range(8))


def test_greedy_matching_agrees_with_hungarian_on_a_permutation():
    overlap = [[0, 5, 0], [7, 0, 1], [0, 0, 9]]
    assert _greedy(overlap) == [1, 0, 2]
    assert match_experts(overlap)[0] == [1, 0, 2]


def test_greedy_matching_without_scipy_reports_the_swap_exactly(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_scipy(name, *args, **kw):
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    m = _model(top_k=1)
    pa = routing_probe(m, list(PROBE_WINDOWS))
    top1 = pa["layers"][0]["top1"]
    i, j = sorted(range(8), key=lambda e: -top1.count(e))[:2]
    sigma = list(range(8))
    sigma[i], sigma[j] = j, i
    d = routing_diff(pa, routing_probe(_permute_experts(m, sigma), list(PROBE_WINDOWS)))
    for L in d["layers"]:
        assert L["method"] == "greedy" and L["matching"] == sigma
        assert {(s["a"], s["b"]) for s in L["swaps"]} == {(i, j), (j, i)}


def test_a_pairing_without_overlap_is_no_swap():
    # A's expert 0 moved to 1 in B; A's expert 1 has tokens, none of which went to 0.
    a = {
        "n_experts": 3,
        "top_k": 1,
        "n_tokens": 6,
        "layers": [
            {"layer": 0, "top1": [0, 0, 0, 1, 1, 2], "load": [0.5, 1 / 3, 1 / 6], "entropy": 1.0}
        ],
    }
    b = {
        "n_experts": 3,
        "top_k": 1,
        "n_tokens": 6,
        "layers": [
            {"layer": 0, "top1": [1, 1, 1, 2, 2, 2], "load": [0.0, 0.5, 0.5], "entropy": 1.0}
        ],
    }
    L = routing_diff(a, b)["layers"][0]
    assert sorted(L["matching"]) == [0, 1, 2] and L["matching"][0] == 1
    assert {(s["a"], s["b"]) for s in L["swaps"]} == {(0, 1), (1, 2)}
    assert all(s["overlap"] > 0 for s in L["swaps"])


def test_attention_maps_refuse_more_weights_than_the_bound():
    m = _model()  # 2 layers × 2 heads: 10 tokens are 2·2·55 = 220 weights
    assert len(attention_maps(m, "x" * 10, max_tokens=64, max_cells=220)["layers"]) == 2
    with pytest.raises(ValueError, match="220 attention weights; at most 219"):
        attention_maps(m, "x" * 10, max_tokens=64, max_cells=219)
