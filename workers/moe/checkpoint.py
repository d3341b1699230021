"""Weights directories (model.safetensors + config.json) and resumable checkpoints.

Every file is written atomically: to a temporary file in the same directory, fsynced, then
renamed over the final name. A crash leaves either the old file or the new one, never half.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from workers.moe.config import ConfigError, InputError, ModelConfig
from workers.moe.model import ARCH_FIELDS, MoETransformer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
WEIGHTS_FORMAT = "moe-hub/moe-transformer"
_CKPT_RE = re.compile(r"^step-(\d{8})\.pt$")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` then rename tmp over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the supervisor must read it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Weights


def weights_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a weights file holds: parameters and persistent buffers (router biases),
    without the head when it is tied to the embedding (safetensors refuses shared storage)."""
    sd = model.state_dict()
    if getattr(model, "cfg", None) is not None and model.cfg.tie_embeddings:
        sd.pop("lm_head.weight", None)
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def save_weights(
    model: MoETransformer, out_dir: Path, extra: dict[str, Any] | None = None
) -> list[str]:
    """Write model.safetensors + config.json into out_dir; returns the file names."""
    state = weights_state(model)
    atomic_write(
        out_dir / WEIGHTS_FILE,
        lambda p: save_file(state, str(p), metadata={"format": WEIGHTS_FORMAT}),
    )
    config = {
        "format": WEIGHTS_FORMAT,
        "version": 1,
        "model": model.cfg.to_dict(),
        "tokenizer": {"type": "byte", "vocab_size": 259, "eot": 256, "bos": 257, "pad": 258},
        **(extra or {}),
    }
    atomic_write_text(out_dir / CONFIG_FILE, json.dumps(config, indent=2))
    return [WEIGHTS_FILE, CONFIG_FILE]


def read_weights_config(weights_dir: Path) -> dict[str, Any]:
    path = Path(weights_dir) / CONFIG_FILE
    if not (Path(weights_dir) / WEIGHTS_FILE).is_file():
        raise InputError(f"weights directory {weights_dir} has no {WEIGHTS_FILE}")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"weights directory {weights_dir} has no {CONFIG_FILE}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise InputError(f'{path} has no "model" section')
    return cfg


def resolve_model_config(weights_cfg: dict[str, Any], overrides: dict[str, Any]) -> ModelConfig:
    """The architecture of the weights, with the job's non-architectural model keys on top.
    A job key that contradicts the weights' architecture is an error, never a silent reshape."""
    known = {f.name for f in fields(ModelConfig)}
    base_fields = {k: v for k, v in weights_cfg["model"].items() if k in known}
    try:
        base = ModelConfig(**base_fields)
    except TypeError as exc:
        raise InputError(f"weights config.json has an unusable model section: {exc}") from None
    errors = [
        {
            "path": f"model.{k}",
            "message": f"is {getattr(base, k)!r} in the weights; architecture fields cannot change",
        }
        for k, v in overrides.items()
        if k in ARCH_FIELDS and getattr(base, k) != v
    ]
    if errors:
        raise ConfigError(errors)
    return replace(base, **{k: v for k, v in overrides.items() if k not in ARCH_FIELDS})


def load_weights(
    weights_dir: Path, overrides: dict[str, Any] | None = None
) -> tuple[MoETransformer, dict[str, Any]]:
    """Build the model a weights directory describes and load its tensors."""
    wcfg = read_weights_config(weights_dir)
    mcfg = resolve_model_config(wcfg, overrides or {})
    model = MoETransformer(mcfg)
    load_state_into(model, Path(weights_dir) / WEIGHTS_FILE)
    return model, wcfg


def load_state_into(model: torch.nn.Module, path: Path) -> None:
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"cannot read weights {path}: {exc}") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise InputError(f"weights {path} do not fit the model: {exc}") from None
    if getattr(model, "cfg", None) is not None and model.cfg.tie_embeddings:
        missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise InputError(
            f"weights {path} do not fit the model",
            {"missing": missing[:20], "unexpected": unexpected[:20]},
        )


# ---------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_dir(out_dir: Path) -> Path:
    return out_dir / "checkpoints"


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    d = checkpoint_dir(out_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), d / name) for name in os.listdir(d) if (m := _CKPT_RE.match(name))]
    return sorted(found)


def save_checkpoint(out_dir: Path, step: int, state: dict[str, Any], keep: int) -> str:
    """Write checkpoints/step-NNNNNNNN.pt atomically, drop all but the newest ``keep``;
    returns the path relative to out_dir."""
    name = f"step-{step:08d}.pt"
    atomic_write(checkpoint_dir(out_dir) / name, lambda p: torch.save(state, p))
    for _, old in list_checkpoints(out_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return f"checkpoints/{name}"


def load_latest_checkpoint(out_dir: Path) -> dict[str, Any] | None:
    ckpts = list_checkpoints(out_dir)
    if not ckpts:
        return None
    step, path = ckpts[-1]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is an input problem
        raise InputError(f"cannot read checkpoint {path}: {exc}") from None
    state["path"] = str(path)
    return state
