"""Generation with the KV cache (workers/moe/generate.py) against the uncached path.

The uncached path runs the whole prefix through ``MoETransformer.forward`` at every step (what
``MoETransformer.generate`` does); the cached path runs one token per step through the same
modules. Both must give the same tokens and the same logits (fp32 tolerance) for every
architecture variant the config allows, and the routing reported per token must be the
router's decision for that token in the full forward pass."""

from __future__ import annotations

import pytest
import torch

from tests.moe.helpers import TINY_MODEL
from workers.moe.config import ModelConfig
from workers.moe.generate import (
    KVCache,
    SamplingParams,
    _StopMatcher,
    filter_logits,
    generate_ids,
    stream,
)
from workers.moe.model import MoETransformer

VARIANTS = {
    "top2": {},
    "top4": {"top_k": 4},
    "no_shared": {"n_shared_experts": 0},
    "heterogeneous_sigmoid": {
        "expert_hidden": [16, 16, 32, 32, 48, 48, 64, 64],
        "router_score": "sigmoid",
        "top_k": 3,
    },
    "capacity_dense0": {"capacity_factor": 1.0, "n_dense_layers": 0, "tie_embeddings": False},
}


def _model(seed: int = 0, **over) -> MoETransformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(**{**TINY_MODEL, **over})
    m = MoETransformer(cfg)
    # Non-zero balance biases: selection must use them the same way in both paths.
    for moe in m.moe_layers().values():
        moe.router.balance_bias.normal_(0, 0.01)
    return m.eval()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_new_tokens=24, temperature=0.0),
        SamplingParams(max_new_tokens=24, temperature=0.9, top_k=20, top_p=0.9, seed=7),
    ],
    ids=["greedy", "sampled"],
)
def test_cached_equals_uncached(variant, params):
    model = _model(**VARIANTS[variant])
    prompt = "def main():\n    "
    ids_c, logits_c, done_c = generate_ids(model, prompt, params, use_cache=True)
    ids_u, logits_u, done_u = generate_ids(model, prompt, params, use_cache=False)
    assert len(ids_c) == params.max_new_tokens
    assert ids_c == ids_u
    for a, b in zip(logits_c, logits_u, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert done_c["kv_cache"] is True and done_u["kv_cache"] is False
    assert done_c["text"] == done_u["text"]


def test_routing_per_token_is_the_full_passes_routing():
    model = _model(top_k=4)
    params = SamplingParams(max_new_tokens=10, temperature=0.0)
    events = [e for e in stream(model, "import os", params) if e["type"] == "token"]
    ids = torch.tensor([list(b"import os") + [e["id"] for e in events]])
    seen = {}
    hooks = [
        moe.router.register_forward_hook(
            lambda _m, _i, out, layer=layer: seen.__setitem__(layer, out)
        )
        for layer, moe in model.moe_layers().items()
    ]
    with torch.no_grad():
        model(ids[:, :-1])
    for h in hooks:
        h.remove()
    P = len(b"import os")
    assert sorted(seen) == [1]  # n_dense_layers = 1 of 2 layers
    for i, ev in enumerate(events):
        (r,) = ev["routing"]
        assert r["layer"] == 1
        pos = P - 1 + i  # the position whose output predicted token i
        assert r["experts"] == seen[1].experts[pos].tolist()
        torch.testing.assert_close(
            torch.tensor(r["weights"]), seen[1].gates[pos], rtol=0, atol=1e-4
        )
        assert len(r["experts"]) == 4


def test_seed_repeats_and_differs():
    model = _model()
    p = SamplingParams(max_new_tokens=16, temperature=1.0, seed=1)
    a, _, _ = generate_ids(model, "x = ", p)
    b, _, _ = generate_ids(model, "x = ", p)
    c, _, _ = generate_ids(
        model, "x = ", SamplingParams(max_new_tokens=16, temperature=1.0, seed=2)
    )
    assert a == b
    assert a != c


def test_top_k_and_top_p_filters():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    f = filter_logits(logits, 1.0, 2, 1.0)
    assert torch.isfinite(f).tolist() == [[True, True, False, False, False]]
    p = logits.softmax(-1)[0]  # 0.636, 0.234, 0.086, ...
    f = filter_logits(logits, 1.0, 0, float(p[0]) + 0.01)
    assert torch.isfinite(f).tolist() == [[True, True, False, False, False]]
    f = filter_logits(logits, 1.0, 0, 0.5)  # the top token alone reaches 0.5
    assert torch.isfinite(f).tolist() == [[True, False, False, False, False]]


def test_logits_processor_is_applied_before_sampling():
    model = _model()
    forced = 65  # "A"
    seen_lengths = []

    def force(ids, logits):
        seen_lengths.append(ids.shape[1])
        out = torch.full_like(logits, -1e9)
        out[:, forced] = 0
        return out

    ids, _, done = generate_ids(
        model,
        "ab",
        SamplingParams(max_new_tokens=5, temperature=0.8, seed=3),
        logits_processors=[force],
    )
    assert ids == [forced] * 5
    assert seen_lengths == [2, 3, 4, 5, 6]  # the processor sees the ids so far
    assert done["text"] == "AAAAA"


def test_stop_string_is_not_emitted_and_ends_generation():
    model = _model()
    seq = iter(b"hello STOP world")

    def script(ids, logits):
        out = torch.full_like(logits, -1e9)
        out[:, next(seq)] = 0
        return out

    events = list(
        stream(
            model,
            "",
            SamplingParams(max_new_tokens=30, temperature=0.0, stop=["STOP"]),
            logits_processors=[script],
        )
    )
    done = events[-1]
    assert done["finish_reason"] == "stop"
    assert done["text"] == "hello "
    assert "".join(e.get("text", "") for e in events[:-1]) == "hello "
    assert done["tokens"] == len("hello STOP")


def test_stop_matcher_holds_back_prefixes_only():
    m = _StopMatcher(["</s>"])
    assert m.feed("ab<") == ("ab", False)
    assert m.feed("x") == ("<x", False)
    assert m.feed("</") == ("", False)
    assert m.feed("s>tail") == ("", True)
    assert m.emitted == "ab<x"


def test_multibyte_text_streams_whole_characters():
    model = _model()
    seq = iter("é€!".encode())

    def script(ids, logits):
        out = torch.full_like(logits, -1e9)
        out[:, next(seq)] = 0
        return out

    events = [
        e
        for e in stream(
            model, "", SamplingParams(max_new_tokens=6, temperature=0.0), logits_processors=[script]
        )
        if e["type"] == "token"
    ]
    assert [e["text"] for e in events] == ["", "é", "", "", "€", "!"]


def test_eos_ends_and_deadline_and_cancel():
    model = _model()

    def eos(ids, logits):
        out = torch.full_like(logits, -1e9)
        out[:, 256] = 0
        return out

    done = list(
        stream(
            model, "a", SamplingParams(max_new_tokens=9, temperature=0.0), logits_processors=[eos]
        )
    )[-1]
    assert done["finish_reason"] == "eos" and done["tokens"] == 1
    done = list(stream(model, "a", SamplingParams(max_new_tokens=9), deadline=0.0))[-1]
    assert done["finish_reason"] == "time" and done["tokens"] == 0
    calls = []
    done = list(
        stream(
            model,
            "a",
            SamplingParams(max_new_tokens=9),
            cancelled=lambda: calls.append(1) or len(calls) > 3,
        )
    )[-1]
    assert done["finish_reason"] == "cancelled" and done["tokens"] == 3


def test_past_block_size_the_cache_slides():
    model = _model(block_size=32)
    params = SamplingParams(max_new_tokens=40, temperature=0.0)
    ids, _, done = generate_ids(model, "a" * 20, params)
    assert len(ids) == 40 and done["finish_reason"] == "length"
    # Until the context is full the two paths agree.
    ids_u, _, _ = generate_ids(model, "a" * 20, params, use_cache=False)
    assert ids[:12] == ids_u[:12]


def test_chunk_after_cached_positions_uses_a_shifted_causal_mask():
    model = _model()
    x = torch.tensor([list(b"the quick brown fox")])
    with torch.no_grad():
        full, _ = model(x)
        cache = KVCache(model.cfg.n_layer, model.cfg.block_size)
        a, _ = model(x[:, :7], cache=cache)
        b, _ = model(x[:, 7:], cache=cache)
    torch.testing.assert_close(torch.cat([a, b], 1), full, rtol=1e-4, atol=1e-4)
    assert cache.length == x.shape[1]


def test_params_are_validated():
    with pytest.raises(ValueError, match="unknown generation parameters: foo"):
        SamplingParams.from_dict({"foo": 1})
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams.from_dict({"top_p": 0})
    with pytest.raises(ValueError, match="stop"):
        SamplingParams.from_dict({"stop": ["x" * 100]})
    assert SamplingParams.from_dict({"max_new_tokens": 3}).max_new_tokens == 3
