"""Train an MoE transformer:  python -m workers.moe.train --config FILE --out DIR

AdamW with linear warm-up then cosine decay, global-norm gradient clipping, gradient
accumulation, bf16 autocast (CPU and CUDA) or fp16 autocast with a GradScaler (CUDA).
After every optimizer step the MoE layers' selection biases move toward balance and their
routing statistics are emitted as metrics. ``train.activation_checkpointing`` trades memory
for recomputation (``MoETransformer.set_activation_checkpointing``). A checkpoint is written
atomically every ``train.checkpoint_every`` steps; started again with the same ``--out`` the run resumes from
the newest checkpoint and, on CPU, reproduces the uninterrupted run's losses exactly (the
model, optimizer, scaler and RNG states are restored, and each batch is a pure function of
(seed, step, micro-step)). The final weights are ``model.safetensors`` + ``config.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from workers.moe.checkpoint import (
    load_latest_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)
from workers.moe.cli import main_for, resolve_device
from workers.moe.config import Config, InputError, TrainConfig
from workers.moe.data import TokenData, load_corpus
from workers.moe.events import EventWriter
from workers.moe.model import MoETransformer

if TYPE_CHECKING:
    from workers.moe.dp import DPPlan

# Config keys that may change between a checkpoint and its resumption (they do not alter
# what is computed). Anything else differing means the --out belongs to another run.
RESUMABLE_CHANGES = {
    "log_every",
    "eval_every",
    "checkpoint_every",
    "keep_checkpoints",
    "eval_tokens",
    "activation_checkpointing",
}


# ---------------------------------------------------------------------------------------------
# Runtime helpers (shared with finetune / evaluate / profile)


def autocast(device: torch.device, dtype: str) -> AbstractContextManager[Any]:
    """bf16/fp16 autocast; the router opts out and stays in fp32 (see model.Router)."""
    if dtype == "fp32":
        return nullcontext()
    amp = torch.bfloat16 if dtype == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=amp)


def optimizer_step(scaler: torch.amp.GradScaler, opt: torch.optim.Optimizer) -> bool:
    """``scaler.step`` + ``scaler.update``; whether the optimizer really stepped. With fp16 the
    scaler skips a step whose gradients hold inf/NaN and lowers its scale, which is how a skip
    shows (the scale never falls otherwise); without fp16 every step happens."""
    before = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(opt)
    scaler.update()
    return before is None or scaler.get_scale() >= before


def lr_at(step: int, t: TrainConfig) -> float:
    """Linear warm-up over warmup_steps, then cosine decay from lr to min_lr at the end."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    span = max(1, t.steps - t.warmup_steps)
    progress = min(1.0, (step - t.warmup_steps) / span)
    return t.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (t.lr - t.min_lr)


def build_optimizer(
    model: torch.nn.Module, t: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on norms, nor on 1-d parameters)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in params if p.dim() >= 2]
    no_decay = [p for n, p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": t.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=1e-8, foreach=device.type == "cuda" or None
    )


def moe_metric_values(stats: dict[int, dict[str, Any]], prefix: str = "moe") -> dict[str, float]:
    """Flatten per-layer routing statistics into metric names (see README: metric names)."""
    values: dict[str, float] = {}
    for layer, s in stats.items():
        base = f"{prefix}/layer{layer}"
        for e, v in enumerate(s["load"]):
            values[f"{base}/load/expert{e}"] = v
        for e, v in enumerate(s["bias"]):
            values[f"{base}/bias/expert{e}"] = v
        values[f"{base}/load_cv"] = s["load_cv"]
        values[f"{base}/entropy"] = s["entropy"]
        values[f"{base}/dropped_frac"] = s["dropped"]
        values[f"{base}/aux_loss"] = s["aux_loss"]
        values[f"{base}/aux_balance"] = s["aux_balance"]
    if stats:
        n = len(stats)
        values[f"{prefix}/load_cv"] = sum(s["load_cv"] for s in stats.values()) / n
        values[f"{prefix}/entropy"] = sum(s["entropy"] for s in stats.values()) / n
        values[f"{prefix}/dropped_frac"] = sum(s["dropped"] for s in stats.values()) / n
    return values


@torch.no_grad()
def evaluate_loss(
    model: MoETransformer,
    data: TokenData,
    batch_size: int,
    max_tokens: int | None,
    device: torch.device,
    dtype: str,
) -> dict[str, Any]:
    """Validation loss (nats/token), bits per byte over byte targets, routing statistics.

    bpb = Σ CE over targets that are bytes / (ln 2 · #byte targets); the few <|endoftext|>
    targets count in the loss but not in bpb, which is a per-byte figure."""
    was_training = model.training
    model.eval()
    model.pop_moe_stats()  # start clean: only validation batches count below
    nll = torch.zeros((), dtype=torch.float64)
    byte_nll = torch.zeros((), dtype=torch.float64)
    n_tok = n_byte = 0
    t0 = time.perf_counter()
    for x, y in data.val_batches(batch_size, max_tokens):
        x, y = x.to(device), y.to(device)
        with autocast(device, dtype):
            logits, _ = model(x)
        ce = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
        is_byte = y.flatten() < 256
        nll += ce.sum().double().cpu()
        byte_nll += ce[is_byte].sum().double().cpu()
        n_tok += y.numel()
        n_byte += int(is_byte.sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    stats = model.pop_moe_stats()
    model.train(was_training)
    loss = float(nll / max(n_tok, 1))
    return {
        "loss": loss,
        "bpb": float(byte_nll / max(n_byte, 1) / math.log(2)),
        "tokens": n_tok,
        "seconds": seconds,
        "tokens_per_s": n_tok / max(seconds, 1e-9),
        "layers": stats,
    }


# ---------------------------------------------------------------------------------------------
# The loop


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in cfg_dict.items() if k not in ("runtime", "alerts")}
    if "train" in out:
        out["train"] = {k: v for k, v in out["train"].items() if k not in RESUMABLE_CHANGES}
    return out


def train_loop(
    cfg: Config,
    model: MoETransformer,
    data: TokenData,
    out: Path,
    events: EventWriter,
    *,
    save_final: Callable[[torch.nn.Module], list[tuple[str, str]]],
    update_bias: bool = True,
    dp_plan: DPPlan | None = None,
) -> dict[str, Any]:
    """Run cfg.train.steps optimizer steps (resuming from out/checkpoints if present) and
    return the summary. ``save_final`` writes the final artifacts, returning (path, kind).

    With ``dp_plan`` (train.dp) each step's gradient is DP-SGD's (workers/moe/dp.py), the
    router's balance bias stays frozen, and the run ends after ``dp_plan.steps``: before the
    step that would spend more than the privacy budget when that comes first."""
    t = cfg.train
    assert t is not None
    end = dp_plan.steps if dp_plan is not None else t.steps
    if dp_plan is not None:
        update_bias = False  # the bias would be an un-noised statistic of the private batches
    device = resolve_device(cfg.runtime)
    model.to(device)
    model.train()
    model.set_activation_checkpointing(t.activation_checkpointing)
    opt = build_optimizer(model, t, device)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.runtime.dtype == "fp16")
    params = [p for p in model.parameters() if p.requires_grad]
    start = 0

    ckpt = load_latest_checkpoint(out)
    if ckpt is not None:
        if _comparable(ckpt["config"]) != _comparable(cfg.to_dict()):
            raise InputError(
                f"{out} holds checkpoints of a different run (config differs); "
                "use a fresh --out or the original config"
            )
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"])
        start = int(ckpt["step"])
        events.log(f"resumed from {Path(ckpt['path']).name} at step {start}")

    dpsgd = None
    if dp_plan is not None:
        from workers.moe.dp import DPSGD

        dpsgd = DPSGD(
            model,
            dp_plan,
            data,
            t.batch_size,
            device,
            autocast=lambda: autocast(device, cfg.runtime.dtype),
        )

    tokens_per_step = t.batch_size * t.grad_accum * model.cfg.block_size
    flops_per_token = model.flops_per_token()
    peak = cfg.runtime.peak_tflops
    n_params, n_active = model.num_params(), model.num_params(active=True)
    events.log(
        f"model: {n_params / 1e6:.2f}M parameters, {n_active / 1e6:.2f}M active per "
        f"token; {tokens_per_step:,} tokens per step on {device.type} "
        f"({cfg.runtime.dtype}, {torch.get_num_threads()} threads, activation "
        f"checkpointing: {t.activation_checkpointing})"
    )

    from workers.moe.health import JobHealth

    health = JobHealth.for_config(cfg, events)  # MoE health alerts (alerts section)
    stop: str | None = None  # the action an alert asked for: "stop" or "checkpoint_stop"
    last_loss = float("nan")
    last_val: dict[str, Any] | None = None
    window_t, window_tokens = 0.0, 0
    train_time, train_tokens = 0.0, 0
    dp_step: dict[str, Any] = {}
    for step in range(start, end):
        t0 = time.perf_counter()
        lr = lr_at(step, t)
        for group in opt.param_groups:
            group["lr"] = lr
        loss_sum = lm_sum = router_sum = 0.0
        for micro in range(t.grad_accum if dpsgd is None else 0):
            x, y = data.train_batch(t.batch_size, cfg.seed, step, micro)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, cfg.runtime.dtype):
                losses = model(x, y)[1]  # the logits die here, not after the backward
            scaler.scale(losses["loss"] / t.grad_accum).backward()
            loss_sum += float(losses["loss"].detach())
            lm_sum += float(losses["lm"])
            router_sum += float(losses["router"])
        if dpsgd is not None:  # the noised sum of clipped per-example gradients, into .grad
            dp_step = dpsgd.step()
            n_micro = t.grad_accum
            loss_sum, lm_sum, router_sum = (n_micro * dp_step[k] for k in ("loss", "lm", "router"))
        scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            params, t.grad_clip if t.grad_clip > 0 and dpsgd is None else float("inf")
        )
        if t.grad_norm_interval and ((step + 1) % t.grad_norm_interval == 0 or step + 1 == end):
            from workers.moe.grad_norms import grad_norm_values

            events.metric(step + 1, grad_norm_values(model))
        stepped = optimizer_step(scaler, opt)
        opt.zero_grad(set_to_none=True)
        if update_bias and stepped:  # a step fp16 skipped (inf/NaN gradients) moves nothing
            model.update_router_bias()
        stats = model.pop_moe_stats()  # every step: the accumulators are per step
        if dpsgd is not None:
            stats = dp_step["layers"]
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        done = step + 1
        last_loss = loss_sum / t.grad_accum
        if (
            not math.isfinite(last_loss)
            and not scaler.is_enabled()
            and not dp_step.get("batch") == 0
        ):
            if health is not None:  # the alert is recorded before the job fails on it
                health.observe(done, {"loss": last_loss})
            raise RuntimeError(f"loss is {last_loss} at step {done}; lower train.lr or use fp32")
        window_t += dt
        window_tokens += tokens_per_step
        train_time += dt
        train_tokens += tokens_per_step

        if done % t.log_every == 0 or done == end:
            tps = window_tokens / max(window_t, 1e-9)
            values = {
                "loss": last_loss,
                "lm_loss": lm_sum / t.grad_accum,
                "router_loss": router_sum / t.grad_accum,
                "lr": lr,
                "grad_norm": float(grad_norm),
                "tokens_per_s": tps,
                "model_flops_per_s": tps * flops_per_token,
            }
            if peak:
                values["mfu"] = tps * flops_per_token / (peak * 1e12)
            if scaler.is_enabled():
                values["loss_scale"] = float(scaler.get_scale())
            if dp_plan is not None:
                values["dp/epsilon"] = dp_plan.epsilon_after(done)
                values["dp/batch_size"] = dp_step["batch"]
                values["dp/clipped_frac"] = dp_step["clipped_frac"]
            values.update(moe_metric_values(stats))
            events.metric(done, values)
            if health is not None:
                stop = health.observe(done, values)
            eta = (end - done) * train_time / max(done - start, 1)
            events.progress(done, end, eta)
            window_t, window_tokens = 0.0, 0

        if (t.eval_every and done % t.eval_every == 0) or done == end:
            last_val = evaluate_loss(
                model, data, t.batch_size, t.eval_tokens, device, cfg.runtime.dtype
            )
            events.metric(
                done,
                {
                    "val/loss": last_val["loss"],
                    "val/bpb": last_val["bpb"],
                    **moe_metric_values(last_val["layers"], "val/moe"),
                },
            )

        if done % t.checkpoint_every == 0 or done == end or stop == "checkpoint_stop":
            state = {
                "step": done,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                "config": cfg.to_dict(),
            }
            rel = save_checkpoint(out, done, state, t.keep_checkpoints)
            events.artifact(rel, "checkpoint")
        if stop is not None:
            break

    if stop == "stop" and health is not None:  # ended by an alert at once: nothing saved
        events.log(str(health.stop_reason))
        return {
            "steps": done,
            "final_loss": last_loss,
            "stop_reason": health.stop_reason,
            "alerts": health.summary(),
        }

    if last_val is None:  # resumed at the very end: nothing ran, evaluate once
        last_val = evaluate_loss(
            model, data, t.batch_size, t.eval_tokens, device, cfg.runtime.dtype
        )
    for path, kind in save_final(model):
        events.artifact(path, kind)
    tps = train_tokens / max(train_time, 1e-9)
    summary: dict[str, Any] = {
        "steps": end,
        "resumed_from": start or None,
        "final_loss": last_loss,
        "val_loss": last_val["loss"],
        "val_bpb": last_val["bpb"],
        "tokens_per_s": tps,
        "model_flops_per_s": tps * flops_per_token,
        "flops_per_token": flops_per_token,
        "params": n_params,
        "active_params": n_active,
        "train_seconds": train_time,
    }
    if last_val["layers"]:
        summary["val_load_cv"] = sum(s["load_cv"] for s in last_val["layers"].values()) / len(
            last_val["layers"]
        )
    if peak:
        summary["mfu"] = tps * flops_per_token / (peak * 1e12)
    if health is not None:
        summary["alerts"] = health.summary()
        if stop is not None:  # checkpoint_stop: the weights so far were saved above
            summary["steps"] = done
            summary["stop_reason"] = health.stop_reason
            events.log(str(health.stop_reason))
    if dp_plan is not None:
        summary["dp"] = dp_plan.metadata(end)
        if end < t.steps:
            summary["stop_reason"] = (
                f"privacy budget reached: ε = {summary['dp']['epsilon']:.4g} after {end} of "
                f"{t.steps} steps (budget {dp_plan.epsilon_budget:g}, δ = {dp_plan.delta:.3g})"
            )
            events.log(summary["stop_reason"])
    return summary


# ---------------------------------------------------------------------------------------------
# Entry point


def build_model(cfg: Config, weights: Path | None, events: EventWriter) -> MoETransformer:
    """A fresh model from cfg.model (seeded), or the model stored in ``weights``."""
    torch.manual_seed(cfg.seed)
    if weights is None:
        return MoETransformer(cfg.model)
    model, wcfg = load_weights(weights, cfg.model_overrides)
    events.log(f"initialised from {weights} (step {wcfg.get('step', '?')})")
    return model


def run(cfg: Config, out: Path, events: EventWriter, weights: Path | None) -> dict[str, Any]:
    model = build_model(cfg, weights, events)
    data = load_corpus(cfg.data, out, model.cfg.block_size, log=events.log)
    assert cfg.train is not None
    dp_plan = None
    if cfg.train.dp is not None:
        from workers.moe.dp import n_examples, plan_dp

        dp_plan = plan_dp(cfg.train.dp, cfg.train, n_examples(data))
        events.log(
            f"differential privacy: {dp_plan.n_examples:,} examples, q = "
            f"{dp_plan.sample_rate:.4g} (expected batch {dp_plan.expected_batch}), σ = "
            f"{dp_plan.noise_multiplier:.4g}"
            f"{' (from the budget)' if dp_plan.sigma_from_budget else ''}, C = "
            f"{dp_plan.max_grad_norm:g}, δ = {dp_plan.delta:.3g}; ε budget "
            f"{dp_plan.epsilon_budget:g} allows {dp_plan.steps} of {cfg.train.steps} steps "
            f"(ε = {dp_plan.epsilon_after(dp_plan.steps):.4g})"
        )

    def save_final(m: torch.nn.Module) -> list[tuple[str, str]]:
        assert isinstance(m, MoETransformer)
        extra = {
            "step": dp_plan.steps if dp_plan else cfg.train.steps if cfg.train else 0,
            "job": cfg.to_dict(),
            "init_weights": str(weights) if weights else None,
        }
        if dp_plan is not None:
            extra["dp"] = dp_plan.metadata(dp_plan.steps)
        save_weights(m, out, extra)
        return [("model.safetensors", "weights"), ("config.json", "config")]

    summary = train_loop(cfg, model, data, out, events, save_final=save_final, dp_plan=dp_plan)
    summary["corpus"] = {k: v for k, v in asdict(data.info).items() if k != "dir"}
    return summary


def main() -> None:
    main_for("train", run)


if __name__ == "__main__":
    main()
