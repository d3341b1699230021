"""Differential-privacy training (DP-SGD) of the MoE transformer: ``train.dp``.

One DP-SGD step (Abadi et al. 2016, as Opacus implements it):

1. **Poisson sampling.** The training set is N disjoint windows of block_size + 1 tokens
   (``examples``: example i is tokens [i·(T+1), (i+1)·(T+1)) of the train split). Each
   example joins the step's batch independently with probability q = B / N, B =
   train.batch_size · train.grad_accum (the *expected* batch; the real one varies, and may be
   empty). This is the sampling the accountant's amplification assumes.
2. **Per-example gradients** g_i of each example's own loss (its mean cross-entropy plus its
   own router loss), with ``torch.func``: ``vmap(grad(loss of one example))`` over
   ``functional_call`` of the model. The sampled batch is processed in chunks of
   train.batch_size examples.
3. **Clipping**: g_i ← g_i · min(1, C / (‖g_i‖₂ + 1e-6)), ‖·‖ over *all* parameters at once.
4. **Noise**: ĝ = (Σ_i g_i + N(0, σ²C² I)) / B, the expected batch (Opacus's normalisation
   under Poisson sampling), then the usual AdamW step (post-processing: no privacy cost).

Why not Opacus's ``GradSampleModule``: its hooks compute per-sample gradients for the layers
it knows (Linear, Embedding, norms ...) from activations and backprops, but the MoE layer's
grouped expert kernel (``dispatch.GroupedSwiGLU``, a hand-written autograd Function over a
data-dependent sort, with ``.tolist()`` slice lengths) mixes every example's tokens into
per-expert slices, so neither its hooks nor ``vmap`` see per-example structure there. While
the per-example gradients are computed, each MoE layer runs ``DPMoE.forward`` instead: the
same function computed *dense-masked* — every expert on every token, weighted by the gate of
the experts the router chose (0 elsewhere) — which has no data-dependent shapes and runs
under ``vmap``. Outputs and gradients equal the sorted dispatch's (up to float rounding); the
cost is E/k times the expert FLOPs and activation memory (README: figures). Attention,
dense FFNs, norms and the embedding run unchanged. ``tests/moe/test_dp.py`` checks the
per-example gradients against single-example backward passes through the normal model, and
against Opacus's ``GradSampleModule`` on a model it supports.

What DP-SGD changes beyond the gradient:

* the router's balance bias (a buffer moved from each step's expert counts, outside the
  gradient) is frozen at its initial value: moving it would publish an un-noised statistic
  of the private batches in the weights;
* the balance loss is computed per example (``aux_loss_scope`` batch = sequence for one
  example): a batch-wide balance term would make one example's gradient depend on the others;
* the noise and the sampling draw from the operating system's entropy (``secrets``), never
  from the job's seed, which is public in the config and the commit metadata: knowing the seed
  would let anyone subtract the noise. A DP run is therefore not bit-reproducible, and a
  resumed run continues the accounting, not the same random stream.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from workers.moe import dp_accountant
from workers.moe.config import (
    DP_DEFAULT_DELTA,
    DP_DELTA_PER_EXAMPLES,
    DPConfig,
    InputError,
    TrainConfig,
)
from workers.moe.data import TokenData
from workers.moe.model import MoE, MoETransformer

# ---------------------------------------------------------------------------------------------
# The plan: q, σ, δ and how many steps the budget allows


@dataclass
class DPPlan:
    """Everything the accountant needs, fixed before the first step."""

    epsilon_budget: float
    delta: float
    noise_multiplier: float  # σ
    sample_rate: float  # q
    max_grad_norm: float  # C
    n_examples: int  # N
    expected_batch: int  # B = q·N
    steps: int  # steps the run will take: train.steps, or fewer if the budget ends first
    sigma_from_budget: bool  # σ computed from (ε, δ, q, train.steps)

    def epsilon_after(self, steps: int) -> float:
        return dp_accountant.epsilon(self.sample_rate, self.noise_multiplier, steps, self.delta)

    def metadata(self, steps: int) -> dict[str, Any]:
        """What a commit records of the run's privacy (``dp`` in its metadata)."""
        return {
            "epsilon": self.epsilon_after(steps),
            "epsilon_budget": self.epsilon_budget,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": steps,
            "max_grad_norm": self.max_grad_norm,
            "n_examples": self.n_examples,
            "expected_batch": self.expected_batch,
            "accountant": "rdp",
            "unit": "example: one disjoint window of block_size + 1 training tokens",
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_dp(dp: DPConfig, t: TrainConfig, n_examples: int) -> DPPlan:
    """q from the expected batch and N; δ (default min(1e-5, 0.1/N)); σ as configured or the
    smallest that spends at most ε in train.steps; the steps the budget allows."""
    if n_examples < 2:
        raise InputError(
            f"differential privacy needs at least 2 training examples (windows of block_size + "
            f"1 tokens); the corpus has {n_examples}"
        )
    expected = t.batch_size * t.grad_accum
    if expected >= n_examples:
        raise InputError(
            f"train.batch_size · grad_accum ({expected}) must be below the number of training "
            f"examples ({n_examples}) for Poisson sampling (q < 1)"
        )
    q = expected / n_examples
    delta = (
        dp.delta
        if dp.delta is not None
        else min(DP_DEFAULT_DELTA, DP_DELTA_PER_EXAMPLES / n_examples)
    )
    if dp.noise_multiplier is not None:
        sigma = dp.noise_multiplier
        steps = dp_accountant.steps_within(q, sigma, delta, dp.epsilon, t.steps)
        if steps == 0:
            raise InputError(
                f"train.dp: with noise_multiplier {sigma} one step already spends more than "
                f"ε = {dp.epsilon} (q = {q:.3g}, δ = {delta:.3g}); raise noise_multiplier or epsilon"
            )
    else:
        try:
            sigma = dp_accountant.noise_multiplier_for(dp.epsilon, delta, q, t.steps)
        except ValueError:
            raise InputError(
                f"train.dp: ε = {dp.epsilon} cannot be met in {t.steps} steps at q = {q:.3g} "
                f"(σ would exceed {dp_accountant.MAX_SIGMA:g})"
            ) from None
        steps = t.steps
    return DPPlan(
        epsilon_budget=dp.epsilon,
        delta=delta,
        noise_multiplier=sigma,
        sample_rate=q,
        max_grad_norm=dp.max_grad_norm,
        n_examples=n_examples,
        expected_batch=expected,
        steps=steps,
        sigma_from_budget=dp.noise_multiplier is None,
    )


# ---------------------------------------------------------------------------------------------
# Examples and Poisson sampling


def n_examples(data: TokenData) -> int:
    """N: disjoint windows of block_size + 1 tokens in the train split."""
    return len(data.train) // (data.block_size + 1)


def examples(data: TokenData, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y (len(idx), T) int64 of examples idx (y is x shifted by one, within the window)."""
    return data._windows(data.train, np.asarray(idx, dtype=np.int64) * (data.block_size + 1))


def poisson_sample(rng: np.random.Generator, n: int, q: float) -> np.ndarray:
    """Indices of the examples in one batch: each of n independently with probability q."""
    return np.flatnonzero(rng.random(n) < q)


def secret_rng() -> np.random.Generator:
    """A sampler seeded from the OS's entropy (never from the public job seed)."""
    return np.random.default_rng(secrets.randbits(128))


def secret_generator(device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(secrets.randbits(63))
    return g


# ---------------------------------------------------------------------------------------------
# The dense-masked MoE forward (vmap-able)


class DPMoE(MoE):
    """``MoE`` whose forward has no data-dependent shapes: every expert runs on every token and
    the outputs are combined with a dense (N, E) gate matrix that is zero off the top-k. Same
    value as ``MoE.forward`` (dropless routing; no statistics recorded, no in-place buffer
    updates, so it runs under ``torch.func.vmap``). Installed for the per-example gradient
    computation only (``dense_moe``): it is E/k times the expert compute."""

    _dp_sink: list[torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        h = x.reshape(B * T, C)  # (N, C)
        routing = self.router(h)
        E, k = self.n_experts, self.top_k
        chosen = routing.experts.unsqueeze(-1) == torch.arange(E, device=h.device)  # (N, k, E)
        gates = (chosen * routing.gates.unsqueeze(-1)).sum(1)  # (N, E), 0 off the top-k
        if torch.is_autocast_enabled(h.device.type):
            h = h.to(torch.get_autocast_dtype(h.device.type))
        gates_h = gates.to(h.dtype)
        sizes = self.experts.sizes
        w13, w2 = self.experts.w13.to(h.dtype), self.experts.w2.to(h.dtype)
        if len(set(sizes)) == 1:  # homogeneous: all experts in two batched matmuls
            hid = sizes[0]
            ab = torch.einsum("nc,efc->enf", h, w13.view(E, 2 * hid, C))  # (E, N, 2h)
            a, b = ab.chunk(2, dim=-1)
            z = F.silu(a) * b * gates_h.t().unsqueeze(-1)  # (E, N, h)
            y = torch.einsum("enf,efc->nc", z, w2.view(E, hid, C))  # (N, C)
        else:
            y = torch.zeros_like(h)
            for e, (u13, u2) in enumerate(
                zip(w13.split([2 * s for s in sizes]), w2.split(sizes), strict=True)
            ):
                a, b = F.linear(h, u13).chunk(2, dim=-1)  # (N, h_e)
                y = y + ((F.silu(a) * b) * gates_h[:, e : e + 1]) @ u2  # (N, C)
        if self.shared is not None:
            y = y + self.shared(h)
        # Router losses of these tokens alone (one example per call under vmap).
        s = routing.scores
        p = s if self.cfg.router_score == "softmax" else s / s.sum(-1, keepdim=True)
        count = chosen.sum((0, 1)).to(torch.float32)  # (E,) assignments per expert
        if self.cfg.aux_loss_scope == "sequence":
            f = chosen.sum(1).float().view(B, T, E).mean(1) / k  # (B, E)
            balance = (E * (f * p.view(B, T, E).mean(1)).sum(-1)).mean()
        else:
            balance = E * (count / (B * T * k) * p.mean(0)).sum()
        loss = self.cfg.aux_loss_coef * balance
        if self.cfg.z_loss_coef > 0:
            loss = loss + self.cfg.z_loss_coef * torch.logsumexp(routing.logits, -1).square().mean()
        if self._dp_sink is not None:  # statistics leave through grad's aux output
            entropy = -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
            self._dp_sink.append(torch.cat([count, entropy.reshape(1), balance.reshape(1)]))
        return y.view(B, T, C).to(x.dtype), loss


@contextmanager
def dense_moe(model: MoETransformer, sink: list[torch.Tensor] | None = None) -> Iterator[None]:
    """Run the model's MoE layers as ``DPMoE`` (same parameters, same state dict) inside."""
    layers = list(model.moe_layers().values())
    for m in layers:
        m.__class__ = DPMoE
        m._dp_sink = sink  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for m in layers:
            m.__class__ = MoE
            del m._dp_sink


# ---------------------------------------------------------------------------------------------
# Per-example gradients, clipping, noise


def trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The trained parameters by name (a tied output head appears once, as wte.weight)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def per_sample_grads(
    model: MoETransformer, x: torch.Tensor, y: torch.Tensor, autocast: Any = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of each example's own loss: ({name: (B, *shape)}, loss (B,), lm (B,),
    router (B,), routing statistics (B, moe layers, E + 2): counts, entropy, balance).

    ``autocast`` is a context factory (train.autocast) applied inside the per-example call
    (a no-op today: the config accepts train.dp with fp32 only — bf16 autocast under vmap
    mixes dtypes in the backward)."""
    params = {n: p.detach() for n, p in trainable(model).items()}
    buffers = dict(model.named_buffers())
    sink: list[torch.Tensor] = []

    def loss_one(
        ps: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        sink.clear()
        ctx = autocast() if autocast is not None else _null()
        with ctx:
            _, losses = functional_call(model, (ps, buffers), (xi.unsqueeze(0), yi.unsqueeze(0)))
        stats = torch.stack(sink) if sink else torch.zeros(0, device=xi.device)
        return losses["loss"], (losses["loss"].detach(), losses["lm"], losses["router"], stats)

    # The math attention backend decomposes into ops vmap batches; the fused CPU kernel has no
    # batching rule and would run once per example (~2x slower here).
    with dense_moe(model, sink), sdpa_kernel(SDPBackend.MATH):
        grads, (loss, lm, router, stats) = vmap(
            grad(loss_one, has_aux=True), in_dims=(None, 0, 0), randomness="different"
        )(params, x, y)
    return grads, loss, lm, router, stats


@contextmanager
def _null() -> Iterator[None]:
    yield


def clip_and_sum(
    grads: dict[str, torch.Tensor], max_norm: float
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Σ_i g_i · min(1, C / (‖g_i‖ + 1e-6)) per parameter, and the per-example norms ‖g_i‖
    (before clipping, over all parameters together)."""
    flat = [g.reshape(g.shape[0], -1) for g in grads.values()]
    norms = torch.stack([f.float().norm(2, dim=1) for f in flat], dim=1).norm(2, dim=1)  # (B,)
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # (B,)
    summed = {n: torch.einsum("i,i...->...", factor.to(g.dtype), g) for n, g in grads.items()}
    return summed, norms


class DPSGD:
    """Builds each step's private gradient into the parameters' ``.grad`` (then the caller
    runs its optimizer). ``rng``/``generator`` default to OS-entropy-seeded ones; tests pass
    seeded ones to be reproducible."""

    def __init__(
        self,
        model: MoETransformer,
        plan: DPPlan,
        data: TokenData,
        chunk: int,
        device: torch.device,
        autocast: Any = None,
        rng: np.random.Generator | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.model, self.plan, self.data, self.chunk = model, plan, data, chunk
        self.device, self.autocast = device, autocast
        self.rng = rng or secret_rng()
        self.generator = generator or secret_generator(device)

    def step(self) -> dict[str, Any]:
        """Sample, compute clipped per-example gradients, add noise; p.grad = ĝ. Returns the
        batch's mean losses (over its examples), its size, the share of examples clipped and
        the routing statistics (summed counts, mean entropy and balance per MoE layer)."""
        plan = self.plan
        idx = poisson_sample(self.rng, plan.n_examples, plan.sample_rate)
        params = trainable(self.model)
        total = {n: torch.zeros_like(p) for n, p in params.items()}
        loss_sum = lm_sum = router_sum = 0.0
        clipped = 0
        stats_sum: torch.Tensor | None = None
        for start in range(0, len(idx), self.chunk):
            x, y = examples(self.data, idx[start : start + self.chunk])
            x, y = x.to(self.device), y.to(self.device)
            grads, loss, lm, router, stats = per_sample_grads(self.model, x, y, self.autocast)
            summed, norms = clip_and_sum(grads, plan.max_grad_norm)
            for n in total:
                total[n] += summed[n].to(total[n].dtype)
            del grads, summed
            loss_sum += float(loss.sum())
            lm_sum += float(lm.sum())
            router_sum += float(router.sum())
            clipped += int((norms > plan.max_grad_norm).sum())
            if stats.numel():
                s = stats.sum(0)
                stats_sum = s if stats_sum is None else stats_sum + s
        std = plan.noise_multiplier * plan.max_grad_norm
        for n, p in params.items():
            noise = torch.randn(
                p.shape, generator=self.generator, device=p.device, dtype=torch.float32
            )
            p.grad = ((total[n].float() + std * noise) / plan.expected_batch).to(p.dtype)
        b = len(idx)
        out: dict[str, Any] = {
            "batch": b,
            "loss": loss_sum / b if b else math.nan,
            "lm": lm_sum / b if b else math.nan,
            "router": router_sum / b if b else math.nan,
            "clipped_frac": clipped / b if b else 0.0,
        }
        out["layers"] = self._layer_stats(stats_sum, b)
        return out

    def _layer_stats(self, s: torch.Tensor | None, b: int) -> dict[int, dict[str, Any]]:
        """Routing statistics of the sampled batch in MoE.pop_stats's form (for the metrics)."""
        from workers.moe.model import cv

        layers = self.model.moe_layers()
        out: dict[int, dict[str, Any]] = {}
        for j, (i, moe) in enumerate(layers.items()):
            E = moe.n_experts
            if s is None:
                counts = torch.zeros(E)
                entropy = balance = 0.0
            else:
                counts = s[j, :E].detach().float().cpu()
                entropy, balance = float(s[j, E]) / b, float(s[j, E + 1]) / b
            out[i] = {
                "load": (counts / counts.sum().clamp_min(1)).tolist(),
                "load_cv": cv(counts),
                "entropy": entropy,
                "dropped": 0.0,
                "aux_balance": balance,
                "aux_loss": moe.cfg.aux_loss_coef * balance,
                "bias": moe.router.balance_bias.tolist(),
            }
        return out
