"""LoRA adapters for the attention and expert projections, and merging them into the base.

For a weight W (out, in) the adapted weight is

    W' = W + (α / r) · B A,      A (r, in) ~ N(0, 1/in),  B (out, r) = 0 at the start

so an untrained adapter changes nothing. The packed expert weights of ``ExpertBank`` get one
independent (A_e, B_e) pair per expert, i.e. a block-low-rank update over the rows of each
expert, never a single low-rank update shared across experts.

Adapters are ``torch.nn.utils.parametrize`` parametrizations: the module keeps computing with
``W'`` and the base tensor W stays untouched (``requires_grad=False``). Merging bakes W' into
the weight with ``remove_parametrizations(leave_parametrized=True)``, i.e. it stores exactly
the tensor the adapted forward pass used, so the merged model computes the same outputs.

QLoRA: on a base whose weights ``workers.moe.quantize`` stored quantized (NF4 / int8), the
quantized weight is the first parametrization of the tensor and the adapter the second, so the
adapter sees ``deq(Q(W))`` and trains in full precision; merging such a model in memory gives
``deq(Q(W)) + (α/r)·B A`` in full precision.

Merging is an explicit step: a finetune commit holds the adapter only (``adapter.safetensors``
+ ``adapter_config.json``, whose ``base_commit`` names the base). To get full weights, pull the
base commit and the adapter commit, then

    python -m workers.moe.lora merge --base DIR --adapter DIR --out DIR

which writes ``W + (α/r)·B A`` over the full-precision base (for an adapter trained on a
quantized base this differs from the trained forward by the base's quantization error only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from torch.nn.utils import parametrize

from workers.moe.checkpoint import atomic_write, atomic_write_text, load_weights, save_weights
from workers.moe.config import LORA_TARGETS, InputError, LoraConfig
from workers.moe.model import ExpertBank, MoE, MoETransformer, SwiGLU

ADAPTER_FILE = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class LoRA(nn.Module):
    """Parametrization W ↦ W + (α/r)·B A with one (A, B) per block of rows.

    ``blocks`` are the row counts of the blocks (one block for a plain Linear weight);
    the update of block b is B_b A_b with A_b (r, in) and B_b (rows_b, r)."""

    def __init__(self, blocks: list[int], in_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.blocks = list(blocks)
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.randn(len(blocks), rank, in_features) / in_features**0.5)
        self.lora_B = nn.Parameter(torch.zeros(sum(blocks), rank))

    def delta(self) -> torch.Tensor:
        if len(set(self.blocks)) == 1:  # equal blocks: one batched matmul
            n, rows = len(self.blocks), self.blocks[0]
            B = self.lora_B.view(n, rows, -1)  # (n, rows, r)
            return torch.bmm(B, self.lora_A).reshape(n * rows, -1)  # (Σ rows, in)
        Bs = self.lora_B.split(self.blocks)
        return torch.cat([b @ a for b, a in zip(Bs, self.lora_A, strict=True)])

    def forward(self, W: torch.Tensor) -> torch.Tensor:
        return W + self.scale * self.delta().to(W.dtype)


def lora_targets(
    model: MoETransformer, targets: list[str]
) -> list[tuple[str, nn.Module, str, list[int]]]:
    """(module path, module, tensor name, row blocks) for every weight the targets select."""
    unknown = set(targets) - set(LORA_TARGETS)
    if unknown:
        raise ValueError(f"unknown LoRA targets {sorted(unknown)}")
    found: list[tuple[str, nn.Module, str, list[int]]] = []
    for i, block in enumerate(model.blocks):
        pre = f"blocks.{i}"
        if "attention" in targets:
            for name in ("qkv", "proj"):
                lin = getattr(block.attn, name)
                found.append((f"{pre}.attn.{name}", lin, "weight", [lin.out_features]))
        ffn = block.ffn
        if isinstance(ffn, MoE):
            if "experts" in targets:
                bank: ExpertBank = ffn.experts
                found.append((f"{pre}.ffn.experts", bank, "w13", [2 * h for h in bank.sizes]))
                found.append((f"{pre}.ffn.experts", bank, "w2", list(bank.sizes)))
            if "shared" in targets and ffn.shared is not None:
                found += _swiglu_targets(f"{pre}.ffn.shared", ffn.shared)
        elif "dense" in targets and isinstance(ffn, SwiGLU):
            found += _swiglu_targets(f"{pre}.ffn", ffn)
    return found


def _swiglu_targets(path: str, mlp: SwiGLU) -> list[tuple[str, nn.Module, str, list[int]]]:
    return [
        (f"{path}.w13", mlp.w13, "weight", [mlp.w13.out_features]),
        (f"{path}.w2", mlp.w2, "weight", [mlp.w2.out_features]),
    ]


def apply_lora(model: MoETransformer, cfg: LoraConfig) -> list[str]:
    """Freeze every base tensor and attach adapters; returns the adapted tensor names."""
    for p in model.parameters():
        p.requires_grad_(False)
    names = []
    for path, module, tensor, blocks in lora_targets(model, cfg.targets):
        W = getattr(module, tensor)
        lora = LoRA(blocks, W.shape[1], cfg.rank, cfg.alpha).to(W.device)
        parametrize.register_parametrization(module, tensor, lora, unsafe=True)
        names.append(f"{path}.{tensor}")
    return names


def _adapters(model: nn.Module) -> dict[str, LoRA]:
    """{"blocks.0.attn.qkv.weight": LoRA, ...} for every attached adapter."""
    out: dict[str, LoRA] = {}
    for mpath, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor, plist in module.parametrizations.items():
            for p in plist:
                if isinstance(p, LoRA):
                    out[f"{mpath}.{tensor}"] = p
    return out


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = {}
    for name, lora in _adapters(model).items():
        state[f"{name}.lora_A"] = lora.lora_A.detach().contiguous().cpu()
        state[f"{name}.lora_B"] = lora.lora_B.detach().contiguous().cpu()
    return state


def save_adapter(
    model: MoETransformer, out_dir: Path, cfg: LoraConfig, base: dict[str, Any]
) -> list[str]:
    """Write adapter.safetensors (only the A/B tensors) + adapter_config.json."""
    state = adapter_state(model)
    atomic_write(out_dir / ADAPTER_FILE, lambda p: save_file(state, str(p)))
    meta = {
        "format": "moe-hub/lora",
        "version": 1,
        "rank": cfg.rank,
        "alpha": cfg.alpha,
        "targets": list(cfg.targets),
        "tensors": sorted(_adapters(model)),
        **base,
    }
    atomic_write_text(out_dir / ADAPTER_CONFIG, json.dumps(meta, indent=2))
    return [ADAPTER_FILE, ADAPTER_CONFIG]


def load_adapter(model: MoETransformer, adapter_dir: Path) -> LoraConfig:
    """Attach the adapter stored in adapter_dir to model (which must be its base)."""
    try:
        meta = json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text())
        state = load_file(str(Path(adapter_dir) / ADAPTER_FILE))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read adapter in {adapter_dir}: {exc}") from None
    cfg = LoraConfig(rank=meta["rank"], alpha=meta["alpha"], targets=meta["targets"])
    apply_lora(model, cfg)
    adapters = _adapters(model)
    if sorted(adapters) != sorted(meta.get("tensors", adapters)):
        raise InputError("adapter does not match the base model's layers")
    with torch.no_grad():
        for name, lora in adapters.items():
            try:
                lora.lora_A.copy_(state[f"{name}.lora_A"])
                lora.lora_B.copy_(state[f"{name}.lora_B"])
            except (KeyError, RuntimeError) as exc:
                raise InputError(f"adapter tensor {name} missing or misshapen: {exc}") from None
    return cfg


def merge_lora(model: nn.Module) -> int:
    """Bake every adapter into its weight (W ← W + (α/r)·B A); returns how many merged."""
    n = 0
    for _, module in list(model.named_modules()):
        if parametrize.is_parametrized(module):
            for tensor in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, tensor, leave_parametrized=True)
                n += 1
    for p in model.parameters():
        p.requires_grad_(True)
    return n


def merge_dirs(base_dir: Path, adapter_dir: Path, out_dir: Path) -> dict[str, Any]:
    """base weights + adapter → a merged weights directory (model.safetensors + config.json)."""
    model, wcfg = load_weights(base_dir)
    lcfg = load_adapter(model, adapter_dir)
    meta = json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text())
    n = merge_lora(model)
    extra = {k: v for k, v in wcfg.items() if k not in ("format", "version", "model", "tokenizer")}
    extra["merged_adapter"] = {
        "adapter": str(adapter_dir),
        "rank": lcfg.rank,
        "alpha": lcfg.alpha,
        "targets": lcfg.targets,
        "base_commit": meta.get("base_commit"),
        "base_quantization": meta.get("base_quantization", {"method": "none"}),
    }
    save_weights(model, Path(out_dir), extra)
    return {"merged_tensors": n, "out": str(out_dir)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workers.moe.lora")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge", help="merge an adapter into its base weights")
    m.add_argument("--base", type=Path, required=True)
    m.add_argument("--adapter", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        result = merge_dirs(args.base, args.adapter, args.out)
    except InputError as exc:
        print(json.dumps({"error": exc.message, "details": exc.details}), file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
