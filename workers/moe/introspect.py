"""Looking inside a model: attention weights and routing on a prompt, routing on the probe set.

The model's own forward path is left alone: it keeps its fused ``scaled_dot_product_attention``.
``attention_maps`` runs the ordinary forward with forward hooks on each attention module and
router; the attention hook recomputes, from the module's own input, the weights SDPA never
materialises::

    q, k, v = split(x Wqkvᵀ)                      per head, (T, d) each, q and k rotated (RoPE)
    A = softmax(q kᵀ / √d + M)                    M[i, j] = -inf for j > i (causal), else 0
    y = proj(A v)                                 must equal the module's SDPA output

and records ``max |y_explicit - y_sdpa|`` (``max_abs_diff``), so every answer carries its own
check that the weights shown are the ones the model used. ``routing_probe`` runs the probe set
(``workers.moe.probe_set``) and returns, per MoE layer, each token's top-1 expert, the expert
load (share of top-k assignments) and the mean routing entropy; ``hub.shared.routing_diff``
compares two of them.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from workers.moe.data import ByteTokenizer
from workers.moe.model import CausalSelfAttention, MoETransformer, Routing, apply_rotary

#: Attention weights are sent as uint8: round(255 · a); a row still sums to ~1 after /255.
QUANT = 255


def explicit_attention(
    attn: CausalSelfAttention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention module's weights and output computed without SDPA: (A (B, H, T, T),
    y (B, T, C)); eval mode (no dropout)."""
    B, T, C = x.shape
    hd = C // attn.n_head
    q, k, v = attn.qkv(x).split(C, dim=2)
    q = q.view(B, T, attn.n_head, hd).transpose(1, 2)  # (B, H, T, hd)
    k = k.view(B, T, attn.n_head, hd).transpose(1, 2)
    v = v.view(B, T, attn.n_head, hd).transpose(1, 2)
    q, k = apply_rotary(q, cos[:T], sin[:T]), apply_rotary(k, cos[:T], sin[:T])
    scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(hd)  # (B, H, T, T)
    mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
    weights = scores.masked_fill(mask, float("-inf")).softmax(dim=-1)  # (B, H, T, T)
    y = (weights.to(v.dtype) @ v).transpose(1, 2).contiguous().view(B, T, C)
    return weights, attn.proj(y)


def _undo_capacity(model: MoETransformer):
    from workers.moe.generate import _dropless

    return _dropless(model)


@torch.no_grad()
def attention_maps(
    model: MoETransformer, prompt: str, *, max_tokens: int, max_cells: int = 0
) -> dict[str, Any]:
    """Per layer and head the attention weights over the prompt's byte tokens (uint8 rows,
    lower triangle only: row i holds i+1 values), per MoE layer each token's experts and gates.
    """
    tok = ByteTokenizer()
    ids = tok.encode(prompt)
    if not ids:
        raise ValueError("the prompt is empty")
    if len(ids) > min(max_tokens, model.cfg.block_size):
        raise ValueError(
            f"the prompt is {len(ids)} tokens; at most {min(max_tokens, model.cfg.block_size)}"
        )
    cells = len(model.blocks) * model.cfg.n_head * len(ids) * (len(ids) + 1) // 2
    if max_cells and cells > max_cells:
        raise ValueError(
            f"{len(model.blocks)} layers × {model.cfg.n_head} heads over {len(ids)} tokens are "
            f"{cells} attention weights; at most {max_cells}: shorten the prompt"
        )
    model.eval()
    layers: list[dict[str, Any]] = [{} for _ in model.blocks]
    routing: dict[int, Routing] = {}
    handles = []
    for i, block in enumerate(model.blocks):

        def attn_hook(mod, args, out, i=i):
            w, y = explicit_attention(mod, args[0], args[1], args[2])
            layers[i]["weights"] = w[0]
            layers[i]["max_abs_diff"] = float((y.float() - out.float()).abs().max())

        handles.append(block.attn.register_forward_hook(attn_hook))
    for i, moe in model.moe_layers().items():

        def router_hook(mod, args, out, i=i):
            routing[i] = out

        handles.append(moe.router.register_forward_hook(router_hook))
    undo = _undo_capacity(model)
    try:
        idx = torch.tensor([ids], dtype=torch.long, device=model.rope_cos.device)
        model(idx)
    finally:
        undo()
        for h in handles:
            h.remove()
    out_layers = []
    for i, rec in enumerate(layers):
        w = rec["weights"]  # (H, T, T)
        q = (w * QUANT).round().clamp(0, QUANT).to(torch.uint8).cpu()
        heads = [[q[h, t, : t + 1].tolist() for t in range(len(ids))] for h in range(w.shape[0])]
        entry: dict[str, Any] = {
            "layer": i,
            "max_abs_diff": rec["max_abs_diff"],
            "heads": heads,
        }
        r = routing.get(i)
        if r is not None:
            entry["routing"] = {
                "experts": r.experts.cpu().tolist(),
                "gates": [[round(g, 4) for g in row] for row in r.gates.cpu().tolist()],
            }
        out_layers.append(entry)
    return {
        "tokens": [_show(t) for t in ids],
        "token_ids": ids,
        "n_layer": len(model.blocks),
        "n_head": model.cfg.n_head,
        "n_experts": model.cfg.n_experts,
        "top_k": model.cfg.top_k,
        "quant": QUANT,
        "layers": out_layers,
    }


def _show(token: int) -> str:
    """A byte as a character for display: printable ASCII as itself, whitespace named, other
    bytes as \\xNN."""
    if 32 < token < 127:
        return chr(token)
    return {32: "␣", 10: "⏎", 9: "⇥"}.get(token, f"\\x{token:02x}")


@torch.no_grad()
def routing_probe(model: MoETransformer, windows: list[str]) -> dict[str, Any]:
    """Route every probe window: per MoE layer the top-1 expert of each token (windows
    concatenated in order), the load of each expert (share of top-k assignments) and the
    mean per-token routing entropy (nats; scores normalised to sum 1)."""
    tok = ByteTokenizer()
    model.eval()
    n_exp = model.cfg.n_experts
    top1: dict[int, list[int]] = {i: [] for i in model.moe_layers()}
    counts = {i: torch.zeros(n_exp, dtype=torch.float64) for i in model.moe_layers()}
    ent_sum = dict.fromkeys(model.moe_layers(), 0.0)
    seen: dict[int, Routing] = {}
    handles = []
    for i, moe in model.moe_layers().items():

        def hook(mod, args, out, i=i):
            seen[i] = out

        handles.append(moe.router.register_forward_hook(hook))
    undo = _undo_capacity(model)
    n_tokens = 0
    try:
        for text in windows:
            ids = tok.encode(text)[: model.cfg.block_size]
            if not ids:
                continue
            model(torch.tensor([ids], dtype=torch.long, device=model.rope_cos.device))
            n_tokens += len(ids)
            for i, r in seen.items():
                top1[i].extend(r.experts[:, 0].cpu().tolist())
                counts[i] += torch.bincount(r.experts.reshape(-1).cpu(), minlength=n_exp).double()
                p = r.scores.double() / r.scores.double().sum(-1, keepdim=True)
                ent_sum[i] += float(-(p * p.clamp_min(1e-30).log()).sum())
            seen.clear()
    finally:
        undo()
        for h in handles:
            h.remove()
    return {
        "n_experts": n_exp,
        "top_k": model.cfg.top_k,
        "n_tokens": n_tokens,
        "layers": [
            {
                "layer": i,
                "top1": top1[i],
                "load": (counts[i] / counts[i].sum().clamp_min(1)).tolist(),
                "entropy": ent_sum[i] / max(1, n_tokens),
            }
            for i in sorted(top1)
        ],
    }


def attention_output_check(model: MoETransformer, ids: list[int]) -> float:
    """max |explicit - SDPA| over every layer for ``ids`` (tests)."""
    res = attention_maps(model, ByteTokenizer().decode(ids), max_tokens=len(ids))
    return max(L["max_abs_diff"] for L in res["layers"])
