"""Quantized weights: the 4-/8-bit base of QLoRA and the int8 / float8 inference checkpoint.

    python -m workers.moe.quantize --config FILE --out DIR --weights DIR

Which tensors: every projection matrix of the transformer blocks (attention ``qkv``/``proj``,
the packed routed experts ``w13``/``w2``, shared and dense SwiGLU ``w13``/``w2``). Embeddings
(tied with the head), norms and the router stay in full precision: they are small, and the
router's scores decide which experts run.

Storage is torchao's, the arithmetic stays PyTorch's: a quantized weight is a
:class:`QuantizedWeight` parametrization (``torch.nn.utils.parametrize``) that holds the
compressed tensor as non-persistent buffers and hands the module its dequantized weight on
every access, so attention, ``ExpertBank`` and the grouped dispatch run unchanged and LoRA
parametrizations stack on top (``W' = deq(Q(W)) + (α/r)·B A``, the QLoRA forward). Methods:

- ``nf4``   torchao ``NF4Tensor``: 4-bit NormalFloat codes per block of ``block_size``
            values with an absmax scale per block; with double quantization (the default) the
            block scales are themselves int8 per ``scaler_block_size`` blocks (QLoRA §3).
            Without it the codes are torchao's and the block scales stay fp32.
- ``int8``  weight-only, symmetric, one fp32 scale per output row (torchao
            ``choose_qparams_affine`` / ``quantize_affine`` / ``dequantize_affine``).
- ``float8`` e4m3 with one scale per row (torchao's float8 primitives); CUDA only: on a CPU it
            is refused (an input error) rather than emulated.

The quantize job writes ``model.safetensors`` where every quantized tensor ``T`` is stored as
``T.qdata`` (int8 / float8) + ``T.scale`` (fp32) and ``config.json`` says so under
``"quantization"``; :func:`load_quantized` (and so ``evaluate`` and anything calling
:func:`workers.moe.checkpoint.load_weights`' callers through :func:`load_any`) reads it back.
Before writing, the job scores the source and the quantized model on the same validation
tokens and reports the size and the bpb delta (summary and ``quantization.json``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.nn.utils import parametrize

from workers.moe.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    WEIGHTS_FORMAT,
    atomic_write,
    atomic_write_text,
    load_weights,
    read_weights_config,
    resolve_model_config,
    weights_state,
)
from workers.moe.cli import main_for, resolve_device
from workers.moe.config import Config, InputError
from workers.moe.data import load_corpus
from workers.moe.events import EventWriter
from workers.moe.model import ExpertBank, MoE, MoETransformer, SwiGLU
from workers.moe.train import evaluate_loss

QUANT_FORMAT = "moe-hub/quantized"
INFERENCE_METHODS = ("int8", "float8")


def _torchao() -> Any:
    """torchao, imported on first use (it is heavy and only quantized paths need it)."""
    try:
        import torchao.quantization as tq
        from torchao.quantization import quant_primitives as qp
        from torchao.quantization.quantize_.workflows.nf4.nf4_tensor import NF4Tensor
    except ImportError as exc:  # pragma: no cover - a worker image without the dependency
        raise InputError(f"quantization needs torchao ({exc})") from None
    return tq, qp, NF4Tensor


def float8_supported(device: torch.device) -> str | None:
    """None when float8 weights can run on ``device``, else why not."""
    if device.type != "cuda":
        return "float8 needs a CUDA GPU with compute capability ≥ 8.9 (this job runs on a CPU)"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        return f"float8 needs compute capability ≥ 8.9; this GPU has {major}.{minor}"
    return None


class QuantizedWeight(nn.Module):
    """Parametrization W ↦ deq(Q(W)): its input is an empty placeholder (the full-precision
    tensor is gone), its output the dequantized weight in ``dtype``."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, method: str) -> None:
        super().__init__()
        self.shape, self.dtype, self.method = tuple(shape), dtype, method
        self.block_size = self.scaler_block_size = 0
        self.nf4 = None

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def quantize(
        cls,
        W: torch.Tensor,
        method: str,
        *,
        block_size: int = 64,
        scaler_block_size: int = 256,
        double_quant: bool = True,
    ) -> QuantizedWeight:
        tq, qp, NF4Tensor = _torchao()
        W = W.detach().contiguous()
        q = cls(tuple(W.shape), W.dtype, method)
        if method == "nf4":
            q.block_size, q.scaler_block_size = block_size, scaler_block_size
            if double_quant:
                # A small tensor has fewer blocks than one scaler block: its scaler blocks are
                # the largest power-of-two divisor of its block count up to the size asked.
                sbs = math.gcd(W.numel() // block_size, scaler_block_size)
                q.scaler_block_size = sbs
                q.nf4 = tq.to_nf4(W, block_size, sbs)
            else:
                # torchao's codes (normalised by the exact block absmax) and its LUT; the
                # block scales kept in fp32 instead of torchao's int8 second quantization.
                tmp = NF4Tensor.from_tensor(W, block_size, 1)
                absmax = _nf4_module().get_block_absmax(W.flatten(), block_size)
                q.register_buffer("qdata", tmp.quantized_data, persistent=False)
                q.register_buffer("scale", absmax.float(), persistent=False)
                q.register_buffer("lut", tmp.nf4, persistent=False)
        elif method == "int8":
            block = (1, W.shape[1])
            scale, zp = qp.choose_qparams_affine(
                W, qp.MappingType.SYMMETRIC, block, torch.int8, scale_dtype=torch.float32
            )
            data = qp.quantize_affine(W, block, scale, zp, torch.int8)
            q.register_buffer("qdata", data, persistent=False)
            q.register_buffer("scale", scale.reshape(-1, 1).float(), persistent=False)
        elif method == "float8":
            scale = qp._choose_scale_float8(W, [1, W.shape[1]], torch.float8_e4m3fn)
            data = qp._quantize_affine_float8(W, scale, torch.float8_e4m3fn)
            q.register_buffer("qdata", data, persistent=False)
            q.register_buffer("scale", scale.reshape(-1, 1).float(), persistent=False)
        else:
            raise ValueError(f"unknown quantization method {method!r}")
        return q

    @classmethod
    def from_parts(
        cls, qdata: torch.Tensor, scale: torch.Tensor, method: str, dtype: torch.dtype
    ) -> QuantizedWeight:
        """An int8 / float8 weight read back from a quantized checkpoint."""
        q = cls(tuple(qdata.shape), dtype, method)
        q.register_buffer("qdata", qdata, persistent=False)
        q.register_buffer("scale", scale.reshape(-1, 1).float(), persistent=False)
        return q

    def _apply(self, fn: Any, recurse: bool = True) -> QuantizedWeight:
        super()._apply(fn, recurse)
        if self.nf4 is not None:  # a plain attribute (a subclass tensor): moved by hand
            self.nf4 = fn(self.nf4)
        return self

    # --- use --------------------------------------------------------------------------------

    def dequantize(self) -> torch.Tensor:
        if self.method == "nf4" and self.nf4 is not None:
            W = self.nf4.get_original_weight()
        elif self.method == "nf4":
            hi, lo = (self.qdata >> 4).long(), (self.qdata & 0b1111).long()
            codes = torch.stack([hi, lo], dim=-1).flatten()  # (numel,)
            vals = self.lut[codes].view(-1, self.block_size) * self.scale.view(-1, 1)
            W = vals.view(self.shape)
        elif self.method == "int8":
            W = self.qdata.to(torch.float32) * self.scale
        else:
            W = self.qdata.to(torch.float32) * self.scale
        return W.to(self.dtype)

    def forward(self, _placeholder: torch.Tensor) -> torch.Tensor:
        return self.dequantize()

    def nbytes(self) -> int:
        """Bytes this weight occupies (codes and every scale)."""
        if self.nf4 is not None:
            names, _ = self.nf4.__tensor_flatten__()
            inner = [getattr(self.nf4, n) for n in names if n != "nf4"]
            return sum(t.numel() * t.element_size() for t in inner)
        return sum(b.numel() * b.element_size() for n, b in self.named_buffers() if n != "lut")


def _nf4_module() -> Any:
    from torchao.quantization.quantize_.workflows.nf4 import nf4_tensor

    return nf4_tensor


# ---------------------------------------------------------------------------------------------
# Which tensors, attaching, measuring


def projection_weights(model: MoETransformer) -> list[tuple[str, nn.Module, str]]:
    """(module path, module, tensor name) of every block projection matrix (module doc)."""
    found: list[tuple[str, nn.Module, str]] = []
    for i, block in enumerate(model.blocks):
        pre = f"blocks.{i}"
        for name in ("qkv", "proj"):
            found.append((f"{pre}.attn.{name}", getattr(block.attn, name), "weight"))
        ffn = block.ffn
        mlps: list[tuple[str, SwiGLU]] = []
        if isinstance(ffn, MoE):
            bank: ExpertBank = ffn.experts
            found += [(f"{pre}.ffn.experts", bank, "w13"), (f"{pre}.ffn.experts", bank, "w2")]
            if ffn.shared is not None:
                mlps.append((f"{pre}.ffn.shared", ffn.shared))
        elif isinstance(ffn, SwiGLU):
            mlps.append((f"{pre}.ffn", ffn))
        for path, mlp in mlps:
            found += [(f"{path}.w13", mlp.w13, "weight"), (f"{path}.w2", mlp.w2, "weight")]
    return found


def attach(module: nn.Module, tensor: str, q: QuantizedWeight) -> None:
    """Replace ``module.<tensor>`` by an empty placeholder parametrized by ``q``: the full
    precision tensor is released, the module sees deq(Q(W)). It must be the first
    parametrization of that tensor (LoRA goes on top)."""
    old = getattr(module, tensor)
    if parametrize.is_parametrized(module, tensor):
        raise ValueError(f"{tensor} is already parametrized: quantize before attaching adapters")
    placeholder = nn.Parameter(old.detach().new_empty(0).to(q.dtype), requires_grad=False)
    delattr(module, tensor)
    module.register_parameter(tensor, placeholder)
    parametrize.register_parametrization(module, tensor, q, unsafe=True)


def quantize_model(
    model: MoETransformer,
    method: str,
    *,
    block_size: int = 64,
    scaler_block_size: int = 256,
    double_quant: bool = True,
) -> dict[str, Any]:
    """Quantize every projection matrix of ``model`` in place (on its current device).

    A tensor whose size ``block_size`` does not divide stays in full precision and is listed in
    ``skipped``. Returns {"method", "tensors": [...], "skipped": [...]}."""
    if method in ("none", ""):
        return {"method": "none", "tensors": [], "skipped": []}
    done, skipped = [], []
    for path, module, tensor in projection_weights(model):
        W = getattr(module, tensor)
        name = f"{path}.{tensor}"
        if method == "nf4":
            if W.numel() % block_size or W.numel() % 2:
                skipped.append(name)
                continue
        with torch.no_grad():
            q = QuantizedWeight.quantize(
                W,
                method,
                block_size=block_size,
                scaler_block_size=scaler_block_size,
                double_quant=double_quant,
            )
        attach(module, tensor, q)
        done.append(name)
    return {"method": method, "tensors": done, "skipped": skipped}


def _quantized(model: nn.Module) -> dict[str, QuantizedWeight]:
    out: dict[str, QuantizedWeight] = {}
    for mpath, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for tensor, plist in module.parametrizations.items():
                if isinstance(plist[0], QuantizedWeight):
                    out[f"{mpath}.{tensor}"] = plist[0]
    return out


def weight_bytes(model: MoETransformer, *, include_adapters: bool = False) -> int:
    """Bytes the model's weights occupy as stored: quantized tensors at their compressed size,
    the rest at theirs (the tied head counted once). LoRA tensors only when asked."""
    total = sum(q.nbytes() for q in _quantized(model).values())
    seen: set[int] = set()
    for name, p in [*model.named_parameters(), *model.named_buffers()]:
        if id(p) in seen or p.numel() == 0 or name.endswith(".original"):
            continue
        if ".lora_" in name and not include_adapters:
            continue
        if isinstance(p, torch.Tensor) and not getattr(p, "is_nested", False):
            seen.add(id(p))
            total += p.numel() * p.element_size()
    return total


# ---------------------------------------------------------------------------------------------
# The quantized checkpoint


def save_quantized(model: MoETransformer, out_dir: Path, extra: dict[str, Any]) -> list[str]:
    """model.safetensors (T.qdata + T.scale for each quantized T) + config.json."""
    qs = _quantized(model)
    state = {k: v for k, v in weights_state(model).items() if not k.endswith(".original")}
    state = {k: v for k, v in state.items() if ".parametrizations." not in k}
    methods = {q.method for q in qs.values()}
    if methods - set(INFERENCE_METHODS):
        raise ValueError(f"only {INFERENCE_METHODS} checkpoints can be written, not {methods}")
    for name, q in qs.items():
        state[f"{name}.qdata"] = q.qdata.detach().contiguous().cpu()
        state[f"{name}.scale"] = q.scale.detach().contiguous().cpu()
    atomic_write(
        out_dir / WEIGHTS_FILE,
        lambda p: save_file(state, str(p), metadata={"format": QUANT_FORMAT}),
    )
    config = {
        "format": WEIGHTS_FORMAT,
        "version": 1,
        "model": model.cfg.to_dict(),
        "tokenizer": {"type": "byte", "vocab_size": 259, "eot": 256, "bos": 257, "pad": 258},
        **extra,
    }
    config["quantization"] = {  # the job's report first: the format's own keys win
        **config.get("quantization", {}),
        "format": QUANT_FORMAT,
        "method": methods.pop() if methods else "none",
        "granularity": "per output row",
        "tensors": sorted(qs),
        "dtype": str(next(iter(qs.values())).dtype).removeprefix("torch.") if qs else "float32",
    }
    atomic_write_text(out_dir / CONFIG_FILE, json.dumps(config, indent=2))
    return [WEIGHTS_FILE, CONFIG_FILE]


def is_quantized_checkpoint(weights_cfg: dict[str, Any]) -> bool:
    q = weights_cfg.get("quantization")
    return isinstance(q, dict) and q.get("format") == QUANT_FORMAT


def load_quantized(
    weights_dir: Path, overrides: dict[str, Any] | None = None
) -> tuple[MoETransformer, dict[str, Any]]:
    """Build the model a quantized checkpoint describes, its quantized tensors kept quantized."""
    wcfg = read_weights_config(weights_dir)
    q = wcfg["quantization"]
    method = q.get("method")
    if method not in INFERENCE_METHODS:
        raise InputError(f"unknown quantization method {method!r} in {weights_dir}")
    mcfg = resolve_model_config(wcfg, overrides or {})
    model = MoETransformer(mcfg)
    try:
        state = load_file(str(Path(weights_dir) / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"cannot read weights {weights_dir}: {exc}") from None
    targets = {f"{p}.{t}": (m, t) for p, m, t in projection_weights(model)}
    for name in q.get("tensors", []):
        if name not in targets or f"{name}.qdata" not in state:
            raise InputError(f"quantized tensor {name} does not fit the model")
        module, tensor = targets[name]
        qdata, scale = state.pop(f"{name}.qdata"), state.pop(f"{name}.scale")
        if tuple(qdata.shape) != tuple(getattr(module, tensor).shape):
            raise InputError(f"quantized tensor {name} has shape {tuple(qdata.shape)}")
        attach(module, tensor, QuantizedWeight.from_parts(qdata, scale, method, torch.float32))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise InputError(f"weights {weights_dir} do not fit the model: {exc}") from None
    missing = [k for k in missing if not k.endswith(".original") and k != "lm_head.weight"]
    if missing or unexpected:
        raise InputError(
            f"weights {weights_dir} do not fit the model",
            {"missing": missing[:20], "unexpected": unexpected[:20]},
        )
    return model, wcfg


def load_any(
    weights_dir: Path, overrides: dict[str, Any] | None = None
) -> tuple[MoETransformer, dict[str, Any]]:
    """A full-precision or a quantized checkpoint, told apart by its config.json."""
    if is_quantized_checkpoint(read_weights_config(weights_dir)):
        return load_quantized(weights_dir, overrides)
    return load_weights(weights_dir, overrides)


# ---------------------------------------------------------------------------------------------
# The quantize job


def run(cfg: Config, out: Path, events: EventWriter, weights: Path | None) -> dict[str, Any]:
    if weights is None:
        raise InputError("quantize needs a model: --weights DIR (model.safetensors + config.json)")
    assert cfg.quantize is not None
    qc = cfg.quantize
    device = resolve_device(cfg.runtime)
    if qc.method == "float8" and (why := float8_supported(device)):
        raise InputError(f"quantize.method float8 is not available here: {why}; use int8")
    wcfg = read_weights_config(weights)
    if is_quantized_checkpoint(wcfg):
        raise InputError(f"{weights} is already quantized ({wcfg['quantization']['method']})")
    torch.manual_seed(cfg.seed)
    model, _ = load_weights(weights, cfg.model_overrides)
    model.to(device).eval()
    data = load_corpus(cfg.data, out, model.cfg.block_size, log=events.log)

    def score(m: MoETransformer) -> dict[str, Any]:
        res = evaluate_loss(m, data, qc.batch_size, qc.eval_tokens, device, cfg.runtime.dtype)
        return {k: res[k] for k in ("loss", "bpb", "tokens", "tokens_per_s")}

    before_bytes = weight_bytes(model)
    before = score(model)
    t0 = time.perf_counter()
    info = quantize_model(model, qc.method)
    seconds = time.perf_counter() - t0
    after_bytes = weight_bytes(model)
    after = score(model)
    events.log(
        f"{qc.method}: {len(info['tensors'])} tensors, {before_bytes / 1e6:.2f} MB → "
        f"{after_bytes / 1e6:.2f} MB; val bpb {before['bpb']:.4f} → {after['bpb']:.4f}"
    )
    report = {
        "method": qc.method,
        "tensors": len(info["tensors"]),
        "bytes_before": before_bytes,
        "bytes_after": after_bytes,
        "size_ratio": after_bytes / max(before_bytes, 1),
        "val_bpb_before": before["bpb"],
        "val_bpb_after": after["bpb"],
        "val_bpb_delta": after["bpb"] - before["bpb"],
        "val_loss_before": before["loss"],
        "val_loss_after": after["loss"],
        "val_tokens": after["tokens"],
        "quantize_seconds": seconds,
    }
    events.metric(
        int(wcfg.get("step", 0)) if isinstance(wcfg.get("step"), int) else 0,
        {
            "quantize/size_ratio": report["size_ratio"],
            "quantize/val_bpb_before": before["bpb"],
            "quantize/val_bpb_after": after["bpb"],
            "quantize/val_bpb_delta": report["val_bpb_delta"],
        },
    )
    extra = {k: v for k, v in wcfg.items() if k not in ("format", "version", "model", "tokenizer")}
    extra["quantization"] = {"source": str(weights), **report}
    extra["job"] = cfg.to_dict()
    model.cpu()
    files = save_quantized(model, out, extra)
    atomic_write_text(out / "quantization.json", json.dumps(report, indent=2))
    events.artifact(WEIGHTS_FILE, "weights")
    events.artifact(CONFIG_FILE, "config")
    return {"quantization": report, "files": files}


def main() -> None:
    main_for("quantize", run)


if __name__ == "__main__":
    main()
