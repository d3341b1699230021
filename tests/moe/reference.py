"""The slow, obviously-correct MoE dispatch: a loop over experts with boolean masks.

    for e in experts:
        mask = tokens that chose e                      (N,) bool
        y[mask] += g[mask, e] · expert_e(x[mask])

Used by the tests (outputs and gradients of the sort-based dispatch must match it) and by
the dispatch benchmark (as the baseline). Plain autograd, no custom Function; the masked
rows are gathered with ``index_select`` and added back with an in-place ``index_add_`` so it
is the reasonable version of the loop, not a strawman.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workers.moe.model import MoE, Routing, plan_dispatch


def dispatch_mask_loop(
    x: torch.Tensor, routing: Routing, moe: MoE, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """y (N, C) = Σ_e mask_e ⊙ g_e ⊙ expert_e(x). ``keep`` (N, k) bool drops assignments
    (capacity); None keeps all."""
    y = torch.zeros_like(x)
    chosen = routing.experts if keep is None else routing.experts.masked_fill(~keep, -1)
    sizes = moe.experts.sizes
    # Split the packed weights once: per-expert slicing would make every expert's backward
    # materialise a gradient the size of the whole bank.
    w13s = moe.experts.w13.to(x.dtype).split([2 * h for h in sizes])
    w2s = moe.experts.w2.to(x.dtype).split(sizes)
    for e in range(moe.n_experts):
        hit = chosen == e  # (N, k)
        rows = hit.any(dim=-1).nonzero().squeeze(1)  # (n_e,) the tokens that chose e
        if rows.numel() == 0:
            continue
        gate = (routing.gates * hit).sum(dim=-1).index_select(0, rows)  # (n_e,) fp32
        a, b = F.linear(x.index_select(0, rows), w13s[e]).chunk(2, dim=-1)  # (n_e, h_e) each
        out = (F.silu(a) * b) @ w2s[e]  # (n_e, C)
        y.index_add_(0, rows, out * gate[:, None].to(out.dtype))
    return y


def moe_forward_reference(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """The MoE layer's output (without its losses) through the mask loop: x (B, T, C)."""
    B, T, C = x.shape
    h = x.reshape(B * T, C)
    routing = moe.router(h)
    keep = None
    cap = moe.capacity(B * T)
    if cap is not None:
        plan = plan_dispatch(routing, moe.n_experts, cap)
        kept = torch.zeros(routing.experts.numel(), dtype=torch.bool, device=x.device)
        kept[plan.order] = True
        keep = kept.view_as(routing.experts)
    y = dispatch_mask_loop(h, routing, moe, keep)
    if moe.shared is not None:
        y = y + moe.shared(h)
    return y.view(B, T, C)
