"""LoRA fine-tuning:  python -m workers.moe.finetune --config FILE --out DIR --init-weights DIR

The base model (``--init-weights``, alias ``--weights``) is frozen; rank-r adapters on the
attention and expert projections (``lora.targets``) are trained with the same loop, schedule,
checkpoints and events as ``train``. The router's selection biases are part of the base and
stay frozen too (no bias updates), so the base weights file is bit-for-bit what it was.

Writes ``adapter.safetensors`` + ``adapter_config.json`` (artifact kind ``adapter``), and with
``lora.save_merged`` also the merged ``model.safetensors`` + ``config.json``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from workers.moe.checkpoint import save_weights
from workers.moe.cli import main_for
from workers.moe.config import Config, InputError
from workers.moe.data import load_corpus
from workers.moe.events import EventWriter
from workers.moe.lora import apply_lora, merge_lora, save_adapter
from workers.moe.model import MoETransformer
from workers.moe.train import build_model, train_loop


def run(cfg: Config, out: Path, events: EventWriter, weights: Path | None) -> dict[str, Any]:
    if weights is None:
        raise InputError(
            "finetune needs the base model: --init-weights DIR (model.safetensors + config.json)"
        )
    assert cfg.lora is not None and cfg.train is not None
    model = build_model(cfg, weights, events)
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
        }
        files = [(name, "adapter") for name in save_adapter(m, out / "adapter", lora_cfg, base)]
        files = [(f"adapter/{name}", kind) for name, kind in files]
        if lora_cfg.save_merged:
            merged = MoETransformer(m.cfg)  # a CPU copy: the trained model stays adapted
            apply_lora(merged, lora_cfg)
            merged.load_state_dict(m.state_dict())
            merge_lora(merged)
            save_weights(merged, out, {"job": cfg.to_dict(), "base_weights": str(weights)})
            files += [("model.safetensors", "weights"), ("config.json", "config")]
        return files

    summary = train_loop(cfg, model, data, out, events, save_final=save_final, update_bias=False)
    summary["trainable_params"] = trainable
    summary["corpus"] = {k: v for k, v in asdict(data.info).items() if k != "dir"}
    return summary


def main() -> None:
    main_for("finetune", run)


if __name__ == "__main__":
    main()
