"""A decoder-only Mixture-of-Experts transformer, in one file.

    tokens ─► embedding ─► [ block ] × n_layer ─► RMSNorm ─► head ─► logits
    block:  x = x + attention(RMSNorm(x))           causal, rotary, SDPA
            x = x + ffn(RMSNorm(x))                 SwiGLU (first n_dense_layers) or MoE

An MoE feed-forward layer is a router, ``n_experts`` routed SwiGLU experts (their hidden sizes
may differ) and optional shared experts that see every token. The router picks ``top_k``
experts per token; the sort-based dispatch (``plan_dispatch``, ``dispatch_sorted``) groups the
token→expert assignments by expert so each expert runs one matmul chain on a contiguous slice.
This file says what is computed; the hand-written grouped kernel that computes it fast
(forward and backward over preallocated buffers, CPU padding) is ``dispatch.py``, and the
profiler's labels are ``scopes.py``.

Load balancing comes in two flavours, usable together: the auxiliary balance loss
(Switch/GShard) and the auxiliary-loss-free per-expert bias of DeepSeek-V3, which only steers
*selection* and is nudged by ±γ after each optimizer step (``MoE.update_bias``).

The architecture is ``ModelConfig``, which lives in ``config.py`` with the rest of the job
schema (every field carries its validation rules), so the schema imports without torch.

Activation checkpointing (``MoETransformer.set_activation_checkpointing``) wraps regions in
``torch.utils.checkpoint`` (non-reentrant): their activations are recomputed in the backward
pass instead of stored. The recomputation runs the MoE layers' forward a second time, so the
per-step routing statistics (and through them the balance bias) are recorded only when
``is_recomputing()`` is false: each token counts once, as without checkpointing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from workers.moe.config import ACTIVATION_CHECKPOINTING, ModelConfig
from workers.moe.dispatch import grouped_swiglu
from workers.moe.scopes import scope

# Fields that change parameter shapes: a checkpoint only loads into a model that agrees on them.
ARCH_FIELDS = (
    "vocab_size",
    "n_layer",
    "n_head",
    "n_embd",
    "n_dense_layers",
    "dense_hidden",
    "n_experts",
    "expert_hidden",
    "n_shared_experts",
    "shared_hidden",
    "tie_embeddings",
)


# --------------------------------------------------------------------------------------------
# Activation checkpointing

_recompute = threading.local()  # the backward of CUDA tensors runs on the engine's threads


@contextmanager
def _recomputing() -> Iterator[None]:
    depth = getattr(_recompute, "depth", 0)
    _recompute.depth = depth + 1
    try:
        yield
    finally:
        _recompute.depth = depth


def is_recomputing() -> bool:
    """Whether the running code is a checkpointed region being recomputed for the backward
    pass (in this thread): forward side effects (statistics) must not happen twice."""
    return getattr(_recompute, "depth", 0) > 0


def _checkpoint_contexts() -> tuple[AbstractContextManager[Any], AbstractContextManager[Any]]:
    return nullcontext(), _recomputing()


def checkpointed(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) with its activations recomputed in the backward pass instead of stored
    (``torch.utils.checkpoint``, non-reentrant, RNG state preserved so dropout repeats). The
    recomputation runs under ``is_recomputing()``. Without grad mode there is nothing to
    save, so fn simply runs."""
    if not torch.is_grad_enabled():
        return fn(*args)
    return torch.utils.checkpoint.checkpoint(
        fn, *args, use_reentrant=False, context_fn=_checkpoint_contexts
    )


# --------------------------------------------------------------------------------------------
# Building blocks


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · w"""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def rotary_cache(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position·θ^(-2i/d) for i < d/2, each (T, head_dim/2)."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the (first half, second half) pairs of x (B, H, T, hd) by position angles."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, hd/2) each
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv: Any = None
    ) -> torch.Tensor:
        """``kv``: a layer's key/value cache for incremental decoding (``generate.LayerCache``:
        it rotates q and k at the cached positions, appends k and v, and runs the same SDPA)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, hd)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, hd)
        drop = self.dropout if self.training else 0.0
        if kv is not None:
            y = kv.attend(q, k, v, cos, sin)  # (B, H, T, hd)
        else:
            q, k = apply_rotary(q, cos[:T], sin[:T]), apply_rotary(k, cos[:T], sin[:T])
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return F.dropout(self.proj(y), drop, self.training)


class SwiGLU(nn.Module):
    """One expert (or a dense FFN): y = W2 · (silu(W1 x) ⊙ W3 x).

    W1 and W3 are stored stacked as one (2h, C) ``w13`` so the up-projection is one matmul,
    which matters for fine-grained experts whose token slices are small."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.w13 = nn.Linear(dim, 2 * hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w13(x).chunk(2, dim=-1)  # (N, h) each
        return self.w2(F.silu(a) * b)  # (N, C)


# --------------------------------------------------------------------------------------------
# Router


@dataclass
class Routing:
    """The router's decision for N tokens."""

    experts: torch.Tensor  # (N, k) int64, chosen expert ids
    gates: torch.Tensor  # (N, k) fp32, combine weights (sum to route_scale per token)
    scores: torch.Tensor  # (N, E) fp32, unbiased scores s
    logits: torch.Tensor  # (N, E) fp32


class Router(nn.Module):
    """Scores every expert for every token and picks k of them.

        logits  l = x Wᵣᵀ                                  (N, E), always in fp32
        scores  s = softmax(l)  or  s = sigmoid(l)          (N, E)
        choose  K(t) = top-k_e ( s[t, e] + b[e] )           b: balance bias, selection only
        gates   g[t, e] = route_scale · s[t, e] / Σ_{e'∈K(t)} s[t, e']   for e ∈ K(t)

    The bias b (DeepSeek-V3's auxiliary-loss-free balancing) is a buffer, never a parameter:
    it receives no gradient and never enters the gates, so it changes *which* experts a token
    uses but not *how much* their outputs weigh. The router runs in fp32 even under autocast
    because top-k on bf16 scores ties often and flips selections between runs.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.top_k = cfg.top_k
        self.score_fn = cfg.router_score
        self.route_scale = cfg.route_scale
        self.weight = nn.Parameter(torch.empty(cfg.n_experts, cfg.n_embd))
        self.register_buffer("balance_bias", torch.zeros(cfg.n_experts, dtype=torch.float32))
        # model.debug_force_expert: a deliberately broken router (every token picks this
        # expert), for testing the collapse alert; selection only, like the bias.
        self.force_expert = cfg.debug_force_expert

    def forward(self, x: torch.Tensor) -> Routing:
        with torch.autocast(x.device.type, enabled=False):
            logits = F.linear(x.float(), self.weight.float())  # (N, E)
            if self.score_fn == "softmax":
                scores = logits.softmax(dim=-1)  # (N, E)
            else:
                scores = logits.sigmoid()  # (N, E)
            select = scores.detach() + self.balance_bias  # (N, E)
            if self.force_expert is not None:
                select[:, self.force_expert] = float("inf")
            _, experts = torch.topk(select, self.top_k, dim=-1)
            chosen = scores.gather(1, experts)  # (N, k)
            gates = chosen / chosen.sum(dim=-1, keepdim=True) * self.route_scale  # (N, k)
        return Routing(experts=experts, gates=gates, scores=scores, logits=logits)


# --------------------------------------------------------------------------------------------
# Dispatch


@dataclass
class Plan:
    """Assignments grouped by expert: the sorted order and each expert's slice length."""

    order: torch.Tensor  # (M,) flat assignment ids (token·k + j), grouped by expert
    tokens: torch.Tensor  # (M,) token index of each sorted assignment
    counts: list[int]  # (E,) slice length per expert, after capacity
    assigned: torch.Tensor  # (E,) int64 assignments per expert before capacity
    dropped: int | torch.Tensor  # assignments dropped by capacity


def plan_dispatch(routing: Routing, n_experts: int, capacity: int | None) -> Plan:
    """Sort the N·k token→expert assignments by expert.

    Dropless: a stable argsort of the flat expert ids, so inside an expert's slice tokens
    keep their batch order. With a capacity c, each expert keeps the c assignments with the
    highest score s[t, e], ties to the lower token index, and drops the rest: the sort key is
    (expert ↑, score ↓, assignment id ↑), built from two stable sorts, so the dropped set is a
    pure function of the scores and identical on every run.
    """
    N, k = routing.experts.shape
    flat = routing.experts.reshape(-1)  # (N·k,)
    assigned = torch.bincount(flat, minlength=n_experts)  # (E,)
    if capacity is None:
        order = torch.argsort(flat, stable=True)  # (N·k,)
        counts = assigned.tolist()
        dropped: int | torch.Tensor = 0
    else:
        prio = routing.scores.detach().gather(1, routing.experts).reshape(-1)  # (N·k,)
        by_score = torch.argsort(-prio, stable=True)
        order = by_score[torch.argsort(flat[by_score], stable=True)]  # (N·k,)
        starts = torch.cumsum(assigned, 0) - assigned  # (E,)
        rank = torch.arange(flat.numel(), device=flat.device) - starts[flat[order]]
        order = order[rank < capacity]  # (M,) keeps the grouping
        kept = assigned.clamp(max=capacity)
        counts = kept.tolist()
        dropped = (assigned - kept).sum()
    return Plan(order=order, tokens=order // k, counts=counts, assigned=assigned, dropped=dropped)


class ExpertBank(nn.Module):
    """E SwiGLU experts, expert e of hidden size h_e, stored packed so slices are contiguous:

    w13  (Σ_e 2·h_e, C)   rows [W1_e; W3_e] of expert e, one after the other
    w2   (Σ_e h_e, C)     rows W2_eᵀ, so the down-projection is  z_e @ w2_e

    expert_e(x) = (silu(x W1_eᵀ) ⊙ x W3_eᵀ) @ w2_e
    """

    def __init__(self, dim: int, sizes: list[int]) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.w13 = nn.Parameter(torch.empty(2 * sum(sizes), dim))
        self.w2 = nn.Parameter(torch.empty(sum(sizes), dim))

    def __len__(self) -> int:
        return len(self.sizes)

    def forward(self, x: torch.Tensor, e: int) -> torch.Tensor:
        """Run expert e alone on x (n, C) through plain autograd (reference and tests)."""
        w13, w2 = self.w13.split([2 * h for h in self.sizes]), self.w2.split(self.sizes)
        a, b = F.linear(x, w13[e]).chunk(2, dim=-1)  # (n, h_e) each
        return (F.silu(a) * b) @ w2[e]  # (n, C)


def dispatch_sorted(
    x: torch.Tensor, routing: Routing, experts: ExpertBank, plan: Plan
) -> torch.Tensor:
    """y[t] = Σ_{e ∈ K(t)} g[t, e] · expert_e(x[t]) for x (N, C).

    The gates are put in the plan's expert-grouped order and the grouped kernel
    (``dispatch.grouped_swiglu``: gather, one matmul chain per expert slice, scatter-add) does
    the rest. x and the expert weights are used in x's dtype (the caller casts under autocast)."""
    if not plan.order.numel():
        return torch.zeros_like(x)
    gates = routing.gates.reshape(-1)[plan.order]  # (M,) in expert-grouped order
    w13, w2 = experts.w13.to(x.dtype), experts.w2.to(x.dtype)  # (Σ2h, C), (Σh, C)
    return grouped_swiglu(x, gates, w13, w2, plan.tokens, plan.counts, experts.sizes)  # (N, C)


# --------------------------------------------------------------------------------------------
# The MoE layer


class MoE(nn.Module):
    """Router + routed experts (+ shared experts) with balance losses and per-step statistics.

    Balance loss (Switch/GShard, for top-k), with f_e the fraction of the N·k assignments that
    went to expert e and P_e the mean normalised score of e over the N tokens:

        L_aux = λ · E · Σ_e f_e · P_e            (= λ exactly when routing is uniform)

    With ``aux_loss_scope="sequence"`` f and P are taken per sequence and L_aux averaged over
    sequences (DeepSeek-V3). For sigmoid scores P uses s / Σ_e s. The z-loss (ST-MoE) keeps
    router logits small:  L_z = c_z · mean_t (logsumexp_e l[t, e])².

    Auxiliary-loss-free balancing (DeepSeek-V3): after each optimizer step, with c_e the
    step's assignment count of expert e and c̄ their mean,

        b_e ← b_e + γ · sign(c̄ − c_e)

    so an overloaded expert becomes less attractive to the top-k selection and an idle one
    more, while gates (and gradients) never see b.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_experts = cfg.n_experts
        self.top_k = cfg.top_k
        self.cfg = cfg
        self.router = Router(cfg)
        self.experts = ExpertBank(cfg.n_embd, cfg.expert_sizes())
        self.shared = (
            SwiGLU(cfg.n_embd, cfg.n_shared_experts * cfg.shared_hidden)
            if cfg.n_shared_experts > 0
            else None
        )
        # Per-step accumulators (reset by ``pop_stats``); not part of the checkpoint because
        # a checkpoint is only written right after they were consumed.
        self.register_buffer("step_counts", torch.zeros(cfg.n_experts), persistent=False)
        self.register_buffer("step_sums", torch.zeros(4), persistent=False)  # see pop_stats

    def capacity(self, n_tokens: int) -> int | None:
        if self.cfg.capacity_factor is None:
            return None
        return math.ceil(self.cfg.capacity_factor * n_tokens * self.top_k / self.n_experts)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C) → (y (B, T, C), router loss scalar: aux + z)."""
        B, T, C = x.shape
        h = x.reshape(B * T, C)  # (N, C)
        with scope("router"):
            routing = self.router(h)
            plan = plan_dispatch(routing, self.n_experts, self.capacity(B * T))
            loss, balance = self._router_losses(routing, plan, B)
        if torch.is_autocast_enabled(h.device.type):
            # Cast once before the gather: the experts would each cast their slice otherwise.
            h = h.to(torch.get_autocast_dtype(h.device.type))
        y = dispatch_sorted(h, routing, self.experts, plan)  # (N, C)
        if self.shared is not None:
            with scope("experts"):
                y = y + self.shared(h)
        if not is_recomputing():  # a checkpoint's second forward: these tokens were counted
            self._record(routing, plan, balance)
        return y.view(B, T, C).to(x.dtype), loss

    def _router_losses(
        self, routing: Routing, plan: Plan, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s = routing.scores  # (N, E)
        p = s if self.cfg.router_score == "softmax" else s / s.sum(-1, keepdim=True)
        E, k = self.n_experts, self.top_k
        if self.cfg.aux_loss_scope == "sequence":
            one_hot = F.one_hot(routing.experts, E).sum(1).float()  # (N, E)
            f = one_hot.view(batch, -1, E).mean(1) / k  # (B, E)
            P = p.view(batch, -1, E).mean(1)  # (B, E)
            balance = (E * (f * P).sum(-1)).mean()
        else:
            f = plan.assigned.float() / routing.experts.numel()  # (E,)
            balance = E * (f * p.mean(0)).sum()
        loss = self.cfg.aux_loss_coef * balance
        if self.cfg.z_loss_coef > 0:
            loss = loss + self.cfg.z_loss_coef * torch.logsumexp(routing.logits, -1).square().mean()
        return loss, balance.detach()

    @torch.no_grad()
    def _record(self, routing: Routing, plan: Plan, balance: torch.Tensor) -> None:
        p = routing.scores
        if self.cfg.router_score == "sigmoid":
            p = p / p.sum(-1, keepdim=True)
        entropy = -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
        self.step_counts += plan.assigned
        total = float(routing.experts.numel())
        self.step_sums += torch.stack(
            [
                entropy,
                torch.as_tensor(plan.dropped, dtype=torch.float32, device=p.device) / total,
                balance,
                torch.ones((), device=p.device),
            ]
        )

    @torch.no_grad()
    def update_bias(self) -> None:
        """b_e ← b_e + γ · sign(c̄ − c_e) from the counts accumulated since the last step."""
        c = self.step_counts
        if self.cfg.bias_balance and c.sum() > 0:
            self.router.balance_bias += self.cfg.bias_update_rate * torch.sign(c.mean() - c)

    @torch.no_grad()
    def pop_stats(self) -> dict[str, Any]:
        """Statistics since the last call (one optimizer step), then reset the accumulators.

        load: fraction of assignments per expert (sums to 1); entropy: mean router entropy in
        nats (ln E = uniform); dropped: fraction of assignments over capacity; aux_balance:
        E·Σ f·P (1 = balanced); aux_loss: λ·aux_balance; bias: the selection bias b."""
        c = self.step_counts.clone()
        n = max(self.step_sums[3].item(), 1.0)
        entropy, dropped, balance = (self.step_sums[:3] / n).tolist()
        self.step_counts.zero_()
        self.step_sums.zero_()
        load = (c / c.sum().clamp_min(1)).tolist()
        return {
            "load": load,
            "load_cv": cv(c),
            "entropy": entropy,
            "dropped": dropped,
            "aux_balance": balance,
            "aux_loss": self.cfg.aux_loss_coef * balance,
            "bias": self.router.balance_bias.tolist(),
        }


def cv(counts: torch.Tensor) -> float:
    """Coefficient of variation std/mean of per-expert loads (0 = perfectly balanced)."""
    c = counts.double()
    return float(c.std(unbiased=False) / c.mean()) if c.sum() > 0 else 0.0


# --------------------------------------------------------------------------------------------
# The transformer


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.ffn: nn.Module = (
            MoE(cfg) if cfg.is_moe_layer(layer) else SwiGLU(cfg.n_embd, cfg.dense_hidden)
        )
        self.dropout = cfg.dropout
        self.checkpoint_moe = False  # set by MoETransformer.set_activation_checkpointing

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        with scope("attention"):
            x = x + self.attn(self.norm1(x), cos, sin, kv)  # (B, T, C)
        if isinstance(self.ffn, MoE):
            if self.checkpoint_moe:
                y, router_loss = checkpointed(self._moe, x)
            else:
                y, router_loss = self._moe(x)
            return x + F.dropout(y, self.dropout, self.training), router_loss
        with scope("experts"):
            y = self.ffn(self.norm2(x))
        return x + F.dropout(y, self.dropout, self.training), None

    def _moe(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The MoE sub-layer (pre-norm included, so only its input x is kept when it is
        checkpointed): (y, router loss)."""
        return self.ffn(self.norm2(x))


class MoETransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm_f = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        cos, sin = rotary_cache(cfg.block_size, cfg.n_embd // cfg.n_head, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.activation_checkpointing = "none"
        self.reset_parameters()

    def set_activation_checkpointing(self, mode: str) -> None:
        """Which regions recompute their activations in the backward pass (saving only their
        inputs) instead of storing them (``train.activation_checkpointing``):

        none    nothing (the default)
        blocks  each transformer block (attention + FFN, dense or MoE)
        moe     each MoE FFN sub-layer (pre-norm, router, dispatch, experts); attention and
                dense blocks keep their activations
        full    each block, and the tail: final norm, output head and cross-entropy (with
                its fp32 log-softmax over the vocabulary). The embedding lookup stores only
                the token ids, so it is left alone.

        Loss and gradients are those of ``none`` (tests/moe/test_activation_checkpointing.py);
        routing statistics count each token once (see ``is_recomputing``). The recomputation
        reads the balance bias again, so the bias must not move between a forward and its
        backward (train.py updates it after the optimizer step)."""
        if mode not in ACTIVATION_CHECKPOINTING:
            raise ValueError(
                f"activation checkpointing {mode!r}: one of {ACTIVATION_CHECKPOINTING}"
            )
        self.activation_checkpointing = mode
        for block in self.blocks:
            block.checkpoint_moe = mode == "moe"

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, 0.02), residual output projections scaled by 1/√(2·n_layer)."""
        out_std = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue  # norm weights stay at 1
            std = out_std if name.endswith(("proj.weight", "w2.weight", "experts.w2")) else 0.02
            nn.init.normal_(p, 0.0, std)
        for moe in self.moe_layers().values():
            moe.router.balance_bias.zero_()

    def moe_layers(self) -> dict[int, MoE]:
        """{block index: MoE layer}."""
        return {i: b.ffn for i, b in enumerate(self.blocks) if isinstance(b.ffn, MoE)}

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: Any = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """idx (B, T) → logits (B, T, V) and, with targets, losses {loss, lm, router}.

        loss = lm + router, where router sums every MoE layer's aux (and z) loss. ``cache``
        (``generate.KVCache``, inference only): idx continues the cached sequence; each block
        attends over its cached keys and values and the cache then advances by T."""
        if cache is not None:
            x = self.wte(idx)  # (B, T, C)
            for block, kv in zip(self.blocks, cache.layers, strict=True):
                x, _ = block(x, self.rope_cos, self.rope_sin, kv)
            cache.advance(idx.shape[1])
            return self.lm_head(self.norm_f(x)), {}
        B, T = idx.shape
        assert T <= self.cfg.block_size, f"sequence of {T} > block_size {self.cfg.block_size}"
        mode = self.activation_checkpointing
        x = self.wte(idx)  # (B, T, C)
        router_loss = torch.zeros((), device=idx.device)
        for block in self.blocks:
            if mode in ("blocks", "full"):
                x, rl = checkpointed(block, x, self.rope_cos, self.rope_sin)  # (B, T, C)
            else:
                x, rl = block(x, self.rope_cos, self.rope_sin)  # (B, T, C)
            if rl is not None:
                router_loss = router_loss + rl
        if targets is None:
            return self.lm_head(self.norm_f(x)), {}
        if mode == "full":
            logits, lm = checkpointed(self._head, x, targets)
        else:
            logits, lm = self._head(x, targets)
        return logits, {"loss": lm + router_loss, "lm": lm.detach(), "router": router_loss.detach()}

    def _head(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final norm, output head and mean cross-entropy: (logits (B, T, V), lm loss)."""
        B, T, _ = x.shape
        logits = self.lm_head(self.norm_f(x))  # (B, T, V)
        lm = F.cross_entropy(logits.float().view(B * T, -1), targets.reshape(-1))
        return logits, lm

    # ---- balancing and statistics ----

    def update_router_bias(self) -> None:
        for moe in self.moe_layers().values():
            moe.update_bias()

    def pop_moe_stats(self) -> dict[int, dict[str, Any]]:
        return {i: moe.pop_stats() for i, moe in self.moe_layers().items()}

    # ---- accounting ----

    def num_params(self, active: bool = False, embeddings: bool = True) -> int:
        """Total parameters, or those one token touches (k routed experts of average size)."""
        n = 0
        for name, p in self.named_parameters():
            if not embeddings and name.startswith("wte"):
                continue
            n += p.numel()
        if not embeddings and not self.cfg.tie_embeddings:
            n -= self.lm_head.weight.numel()
        if active:
            for moe in self.moe_layers().values():
                sizes = moe.experts.sizes
                per_unit = 3 * self.cfg.n_embd  # one hidden unit of a SwiGLU: w1, w3, w2 rows
                inactive = (sum(sizes) - moe.top_k * sum(sizes) / len(sizes)) * per_unit
                n -= int(inactive)
        return n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward): 6·N_active + 12·L·C·T (PaLM),
        counting the output head but not the embedding lookup."""
        T = seq_len or self.cfg.block_size
        n = self.num_params(active=True, embeddings=False)
        n += self.cfg.vocab_size * self.cfg.n_embd  # the head's matmul (tied or not)
        return 6.0 * n + 12.0 * self.cfg.n_layer * self.cfg.n_embd * T

    # ---- sampling ----

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        stop_token: int | None = None,
    ) -> torch.Tensor:
        """Append max_new_tokens tokens to idx (B, T) by temperature / nucleus sampling."""
        for _ in range(max_new_tokens):
            ctx = idx[:, -self.cfg.block_size :]  # (B, ≤block)
            logits, _ = self(ctx)
            logits = logits[:, -1, :].float()  # (B, V)
            if temperature <= 0:
                nxt = logits.argmax(-1, keepdim=True)  # (B, 1)
            else:
                probs = (logits / temperature).softmax(-1)
                nxt = sample_top_p(probs, top_p, generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
            if stop_token is not None and bool((nxt == stop_token).all()):
                break
        return idx


def sample_top_p(
    probs: torch.Tensor, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Sample from the smallest set of tokens whose probability mass reaches top_p."""
    sorted_p, sorted_i = probs.sort(dim=-1, descending=True)  # (B, V)
    outside = sorted_p.cumsum(-1) - sorted_p > top_p  # mass before this token already ≥ p
    sorted_p = sorted_p.masked_fill(outside, 0.0)
    pick = torch.multinomial(sorted_p / sorted_p.sum(-1, keepdim=True), 1, generator=generator)
    return sorted_i.gather(-1, pick)  # (B, 1)


def iter_named_linears(model: nn.Module) -> Iterator[tuple[str, nn.Linear]]:
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            yield name, mod
