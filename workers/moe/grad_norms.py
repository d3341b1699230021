"""Per-layer and per-expert gradient norms, logged every ``train.grad_norm_interval`` steps.

Metric names (L2 norms of the gradients after unscaling, before clipping and the step)::

    grad_norm/layer{i}/attn            block i's attention (q, k, v and output projections)
    grad_norm/layer{i}/router          block i's router weights (MoE blocks)
    grad_norm/layer{i}/experts         block i's FFN without the router: every routed expert
                                       and the shared one (a dense block: its FFN)
    grad_norm/layer{i}/expert{j}       routed expert j of block i (its w13 and w2 rows)

A vanishing layer shows as a row of tiny norms, an exploding one as a growing row, and a
starved expert (no tokens routed to it) as an expert row at zero: the run page draws them as
a heatmap (rows × logged steps, log-scale colour).
"""

from __future__ import annotations

import math

from workers.moe.model import MoE, MoETransformer


def _sq(params) -> float:
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(p.grad.detach().float().pow(2).sum())
    return total


def grad_norm_values(model: MoETransformer) -> dict[str, float]:
    values: dict[str, float] = {}
    for i, block in enumerate(model.blocks):
        base = f"grad_norm/layer{i}"
        values[f"{base}/attn"] = math.sqrt(_sq(block.attn.parameters()))
        ffn = block.ffn
        if isinstance(ffn, MoE):
            values[f"{base}/router"] = math.sqrt(_sq([ffn.router.weight]))
            others = [p for n, p in ffn.named_parameters() if not n.startswith("router.")]
            values[f"{base}/experts"] = math.sqrt(_sq(others))
            bank = ffn.experts
            g13, g2 = bank.w13.grad, bank.w2.grad
            if g13 is None or g2 is None:
                continue
            rows13 = g13.detach().float().split([2 * h for h in bank.sizes])
            rows2 = g2.detach().float().split(bank.sizes)
            for j, (a, b) in enumerate(zip(rows13, rows2, strict=True)):
                values[f"{base}/expert{j}"] = math.sqrt(
                    float(a.pow(2).sum()) + float(b.pow(2).sum())
                )
        else:
            values[f"{base}/experts"] = math.sqrt(_sq(ffn.parameters()))
    return values


__all__ = ["grad_norm_values"]
