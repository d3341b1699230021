"""Evaluate a model:  python -m workers.moe.evaluate --config FILE --out DIR --weights DIR

Scores the validation split of ``data`` (the same deterministic split training used):
loss, bits per byte, throughput, and per MoE layer the expert utilisation (load fraction per
expert), its coefficient of variation (std / mean; 0 = perfectly even) and the routing entropy.
Then samples ``eval.max_new_tokens`` tokens for each of ``eval.prompts`` (temperature, top-p).

``--weights`` may be a full-precision or a quantized checkpoint (the output of a ``quantize``
job: ``config.json`` has a ``quantization`` section); the quantized one is scored with its
weights kept int8 / float8 and dequantized per use (``workers.moe.quantize.load_any``).

Writes ``eval.json`` (kind ``eval``) and ``samples.json`` (kind ``samples``) and emits the
figures as one metric event at the weights' training step.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from workers.moe.checkpoint import atomic_write_text
from workers.moe.cli import main_for
from workers.moe.config import Config, EvalConfig, InputError
from workers.moe.data import ByteTokenizer, load_corpus
from workers.moe.events import EventWriter
from workers.moe.model import MoETransformer
from workers.moe.quantize import load_any
from workers.moe.train import (
    autocast,
    evaluate_loss,
    moe_metric_values,
    resolve_device,
)

if TYPE_CHECKING:  # imported when a job is watermarked (it needs hub.shared in the sandbox)
    from workers.moe.watermark import WatermarkProcessor


@torch.no_grad()
def sample(
    model: MoETransformer,
    prompts: list[str],
    ecfg: EvalConfig,
    seed: int,
    device: torch.device,
    dtype: str,
    watermark: WatermarkProcessor | None = None,
) -> list[dict[str, Any]]:
    """One continuation per prompt, seeded: the same weights and seed give the same text.
    With ``watermark``, sampled with the playground's generator (KV cache) through the
    watermark's logits processor."""
    if watermark is not None:
        return _sample_watermarked(model, prompts, ecfg, seed, watermark)
    tok = ByteTokenizer()
    model.eval()
    out = []
    for i, prompt in enumerate(prompts):
        g = torch.Generator(device=device).manual_seed(seed * 1000 + i)
        ids = tok.encode(prompt, bos=True)[-model.cfg.block_size :]
        idx = torch.tensor([ids], device=device)
        t0 = time.perf_counter()
        with autocast(device, dtype):
            full = model.generate(
                idx,
                ecfg.max_new_tokens,
                temperature=ecfg.temperature,
                top_p=ecfg.top_p,
                generator=g,
                stop_token=tok.EOT,
            )
        new = full[0, len(ids) :].tolist()
        if new and new[-1] == tok.EOT:
            new = new[:-1]
        out.append(
            {
                "prompt": prompt,
                "completion": tok.decode(new),
                "tokens": len(new),
                "seconds": time.perf_counter() - t0,
            }
        )
    model.pop_moe_stats()  # sampling is not part of the utilisation figures
    return out


def _sample_watermarked(
    model: MoETransformer,
    prompts: list[str],
    ecfg: EvalConfig,
    seed: int,
    watermark: WatermarkProcessor,
) -> list[dict[str, Any]]:
    from workers.moe.generate import SamplingParams, generate_ids

    tok = ByteTokenizer()
    out = []
    for i, prompt in enumerate(prompts):
        params = SamplingParams(
            max_new_tokens=ecfg.max_new_tokens,
            temperature=ecfg.temperature,
            top_p=ecfg.top_p,
            seed=seed * 1000 + i,
        )
        t0 = time.perf_counter()
        ids = tok.encode(prompt, bos=True)[-model.cfg.block_size :]
        new, _, _ = generate_ids(model, ids, params, logits_processors=[watermark])
        if new and new[-1] == tok.EOT:
            new = new[:-1]
        out.append(
            {
                "prompt": prompt,
                "completion": tok.decode(new),
                "tokens": len(new),
                "seconds": time.perf_counter() - t0,
            }
        )
    model.pop_moe_stats()
    return out


def take_watermark(job_dir: Path) -> tuple[WatermarkProcessor | None, dict | None]:
    """The request's watermark (``watermark.json`` that the supervisor wrote beside
    ``config.json``), removed once read so the key does not outlive the need: (processor,
    what samples.json may record: key id and strength) or (None, None)."""
    from workers.moe.watermark import processor_from_dict

    path = job_dir / "watermark.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    finally:
        path.unlink(missing_ok=True)
    return processor_from_dict(raw["params"]), {
        "key_id": raw.get("key_id"),
        "strength": raw.get("strength"),
    }


def run(cfg: Config, out: Path, events: EventWriter, weights: Path | None) -> dict[str, Any]:
    if weights is None:
        raise InputError("evaluate needs a model: --weights DIR (model.safetensors + config.json)")
    assert cfg.eval is not None
    ecfg = cfg.eval
    device = resolve_device(cfg.runtime)
    torch.manual_seed(cfg.seed)
    model, wcfg = load_any(weights, cfg.model_overrides)
    quantization = (wcfg.get("quantization") or {}).get("method", "none")
    events.log(f"loaded {weights} (step {wcfg.get('step', '?')}, weights {quantization})")
    model.to(device)
    step = _weights_step(weights)
    data = load_corpus(cfg.data, out, model.cfg.block_size, log=events.log)
    events.log(f"evaluating on up to {ecfg.max_tokens or data.info.val_tokens:,} validation tokens")
    res = evaluate_loss(model, data, ecfg.batch_size, ecfg.max_tokens, device, cfg.runtime.dtype)
    layers = {
        str(i): {
            "load": s["load"],
            "load_cv": s["load_cv"],
            "entropy": s["entropy"],
            "dropped_frac": s["dropped"],
            "bias": s["bias"],
        }
        for i, s in res["layers"].items()
    }
    n = max(len(layers), 1)
    report = {
        "weights": str(weights),
        "quantization": quantization,
        "step": step,
        "val_loss": res["loss"],
        "val_bpb": res["bpb"],
        "tokens": res["tokens"],
        "tokens_per_s": res["tokens_per_s"],
        "load_cv_mean": sum(v["load_cv"] for v in layers.values()) / n,
        "entropy_mean": sum(v["entropy"] for v in layers.values()) / n,
        "layers": layers,
    }
    atomic_write_text(out / "eval.json", json.dumps(report, indent=2))
    events.artifact("eval.json", "eval")
    values = {
        "eval/loss": res["loss"],
        "eval/bpb": res["bpb"],
        "eval/tokens_per_s": res["tokens_per_s"],
        **moe_metric_values(res["layers"], "eval/moe"),
    }
    events.metric(step, values)

    samples: list[dict[str, Any]] = []
    proc, marked = take_watermark(out.parent)
    if ecfg.prompts and ecfg.max_new_tokens:
        samples = sample(model, ecfg.prompts, ecfg, cfg.seed, device, cfg.runtime.dtype, proc)
        if marked:
            events.log(
                f"samples watermarked (key {marked['key_id']}, strength {marked['strength']})"
            )
        atomic_write_text(
            out / "samples.json",
            json.dumps(
                {
                    "temperature": ecfg.temperature,
                    "top_p": ecfg.top_p,
                    "seed": cfg.seed,
                    "watermark": marked,
                    "samples": samples,
                },
                indent=2,
                ensure_ascii=False,
            ),
        )
        events.artifact("samples.json", "samples")
        for s in samples:
            events.log(f"sample {s['prompt']!r} → {s['completion'][:400]!r}")
    return {k: v for k, v in report.items() if k != "layers"} | {"samples": len(samples)}


def _weights_step(weights: Path) -> int:
    try:
        step = json.loads((weights / "config.json").read_text()).get("step", 0)
        return int(step) if isinstance(step, int) else 0
    except (OSError, ValueError):
        return 0


def main() -> None:
    main_for("evaluate", run)


if __name__ == "__main__":
    main()
