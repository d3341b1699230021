"""LoRA fine-tuning:  python -m workers.moe.finetune --config FILE --out DIR --init-weights DIR

The base model (``--init-weights``, alias ``--weights``) is frozen; rank-r adapters on the
attention and expert projections (``lora.targets``) are trained with the same loop, schedule,
checkpoints and events as ``train``. The router's selection biases are part of the base and
stay frozen too (no bias updates), so the base weights file is bit-for-bit what it was.

With ``finetune.base_quantization`` nf4 or int8 the frozen base's projection weights are
stored quantized (``workers.moe.quantize``: torchao NF4 with optional double quantization, or
int8 weight-only) before the adapters attach, and the adapters train in full precision on the
dequantized weights: QLoRA. Checkpoints hold the adapters only; a resumed job quantizes the
same base again (deterministic).

Writes ``adapter.safetensors`` + ``adapter_config.json`` (artifact kind ``adapter``): the
commit of a finetune job holds only these, and the supervisor records the base commit in the
commit's metadata and in ``adapter_config.json`` (``base_commit``). Merging is an explicit
step: ``python -m workers.moe.lora merge`` (full-precision base + (α/r)·B A), or
``lora.save_merged`` here, which also writes the merged ``model.safetensors`` + ``config.json``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from workers.moe.checkpoint import load_weights, save_weights
from workers.moe.cli import main_for
from workers.moe.config import Config, InputError
from workers.moe.data import load_corpus
from workers.moe.events import EventWriter
from workers.moe.lora import apply_lora, load_adapter, merge_lora, save_adapter
from workers.moe.model import MoETransformer
from workers.moe.quantize import quantize_model, weight_bytes
from workers.moe.train import build_model, resolve_device, train_loop


def run(cfg: Config, out: Path, events: EventWriter, weights: Path | None) -> dict[str, Any]:
    if weights is None:
        raise InputError(
            "finetune needs the base model: --init-weights DIR (model.safetensors + config.json)"
        )
    assert cfg.lora is not None and cfg.train is not None and cfg.finetune is not None
    model = build_model(cfg, weights, events)
    fc = cfg.finetune
    full_bytes = weight_bytes(model)
    quant = {"method": "none"}
    if fc.base_quantization != "none":
        model.to(resolve_device(cfg.runtime))  # quantized where it will run
        info = quantize_model(
            model,
            fc.base_quantization,
            block_size=fc.nf4_block_size,
            scaler_block_size=fc.nf4_scaler_block_size,
            double_quant=fc.double_quant,
        )
        quant = {"method": fc.base_quantization, "tensors": len(info["tensors"])}
        if fc.base_quantization == "nf4":
            quant |= {
                "block_size": fc.nf4_block_size,
                "double_quant": fc.double_quant,
                "scaler_block_size": fc.nf4_scaler_block_size,
            }
        if info["skipped"]:
            quant["skipped"] = info["skipped"]
            events.log(
                f"{len(info['skipped'])} tensor(s) stay full precision (their size is not a "
                f"multiple of the NF4 blocks): {', '.join(info['skipped'][:8])}"
            )
    base_bytes = weight_bytes(model)
    if quant["method"] != "none":
        events.log(
            f"base quantized to {quant['method']} ({quant['tensors']} tensors): "
            f"{full_bytes / 1e6:.2f} MB → {base_bytes / 1e6:.2f} MB"
        )
    torch.manual_seed(cfg.seed)  # adapter init is seeded too
    adapted = apply_lora(model, cfg.lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    events.log(
        f"LoRA r={cfg.lora.rank} α={cfg.lora.alpha} on {len(adapted)} tensors "
        f"({', '.join(cfg.lora.targets)}): {trainable:,} trainable parameters"
    )
    data = load_corpus(cfg.data, out, model.cfg.block_size, log=events.log)
    lora_cfg = cfg.lora

    def save_final(m: torch.nn.Module) -> list[tuple[str, str]]:
        assert isinstance(m, MoETransformer)
        base = {
            "base_weights": str(weights),
            "base_model": m.cfg.to_dict(),
            "steps": cfg.train.steps if cfg.train else 0,
            "base_quantization": quant,
        }
        files = [(name, "adapter") for name in save_adapter(m, out / "adapter", lora_cfg, base)]
        files = [(f"adapter/{name}", kind) for name, kind in files]
        if lora_cfg.save_merged:
            # Into the full-precision base, read again (a quantized base kept no fp32 copy).
            merged, _ = load_weights(weights, cfg.model_overrides)
            load_adapter(merged, out / "adapter")
            merge_lora(merged)
            save_weights(merged, out, {"job": cfg.to_dict(), "base_weights": str(weights)})
            files += [("model.safetensors", "weights"), ("config.json", "config")]
        return files

    summary = train_loop(cfg, model, data, out, events, save_final=save_final, update_bias=False)
    summary["trainable_params"] = trainable
    summary["base_quantization"] = quant["method"]
    summary["base_weight_bytes"] = base_bytes
    summary["base_weight_bytes_full"] = full_bytes
    summary["corpus"] = {k: v for k, v in asdict(data.info).items() if k != "dir"}
    return summary


def main() -> None:
    main_for("finetune", run)


if __name__ == "__main__":
    main()
