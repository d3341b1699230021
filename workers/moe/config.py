"""The job configuration: one schema for every entry point, reused by the hub.

A job config is nested JSON::

    {"seed": 0, "model": {...}, "data": {...}, "runtime": {...}, "train": {...}}

Which sections a kind accepts is ``SECTIONS[kind]``; every section is a dataclass whose fields
carry their rules in ``metadata`` (``min``/``max``/``exclusive_min``/``choices``/``nullable``/
``help``). ``validate_config`` checks a raw dict against them and lists *every* problem as
``{"path": "model.top_k", "message": "must be between 2 and 8"}``; unknown keys are errors.
``config_json_schema`` renders the same rules as JSON Schema for the dashboard. Rules that
relate two fields (``n_head`` divides ``n_embd``, ``min_lr ≤ lr``, ...) live in ``_cross_checks``
and are the only ones JSON Schema cannot express.
"""

from __future__ import annotations

import difflib
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hub.shared.moe_health import ACTIONS as ALERT_ACTIONS
from hub.shared.moe_health import DEFAULTS as ALERT_DEFAULTS

KINDS = ("train", "finetune", "evaluate", "profile", "quantize", "inspect")
LORA_TARGETS = ("attention", "experts", "shared", "dense")
# train.activation_checkpointing: which regions recompute their activations in the backward
# pass instead of storing them (see model.MoETransformer.set_activation_checkpointing).
ACTIVATION_CHECKPOINTING = ("none", "blocks", "moe", "full")


class InputError(Exception):
    """Bad input from the job (config, corpus, weights): reported as an ``error`` event and
    exit code 2, never as a traceback."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(InputError):
    """The config failed validation; ``errors`` lists every problem."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        lines = "; ".join(f"{e['path'] or '<root>'}: {e['message']}" for e in errors)
        super().__init__(f"invalid config: {lines}", {"errors": errors})
        self.errors = errors


# ---------------------------------------------------------------------------------------------
# Sections. ModelConfig is the model's architecture (model.py reads it); the module imports
# neither torch nor Django, so the hub validates job configs without loading either.


#: data.max_bytes when a config does not set it: enough text for the default small config,
#: without tokenizing the whole standard library (~30 MB) by surprise.
DEFAULT_MAX_BYTES = 8_000_000
#: With train.warmup_steps unset and its default longer than train.steps, warm-up is this
#: share of the steps (said in the config's notes, which the job logs).
AUTO_WARMUP_FRACTION = 0.1

# Byte-level vocabulary: 256 byte values + <|endoftext|>, <|bos|>, <|pad|> (see data.py).
BYTE_VOCAB_SIZE = 259


def _f(default: Any, help: str, **rules: Any) -> Any:
    """A dataclass field whose validation rules travel with it (read by config.py)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **rules})
    return field(default=default, metadata={"help": help, **rules})


@dataclass
class ModelConfig:
    """The whole architecture. The defaults are the "default small config" (about 3.0M
    parameters, 0.9M active per token) that trains in minutes on two CPU cores."""

    vocab_size: int = _f(
        BYTE_VOCAB_SIZE, "vocabulary size (byte tokenizer: 259)", min=BYTE_VOCAB_SIZE, max=1 << 20
    )
    block_size: int = _f(256, "context length in tokens", min=8, max=1 << 16)
    n_layer: int = _f(4, "transformer blocks", min=1, max=256)
    n_head: int = _f(4, "attention heads", min=1, max=256)
    n_embd: int = _f(128, "residual width C", min=8, max=1 << 16)
    n_dense_layers: int = _f(
        1, "first N blocks use a dense SwiGLU FFN (DeepSeek: 3)", min=0, max=256
    )
    dense_hidden: int = _f(384, "hidden size of the dense FFN layers", min=1, max=1 << 18)
    n_experts: int = _f(16, "routed experts per MoE layer", min=2, max=1024)
    expert_hidden: Any = _f(
        128,
        "routed expert hidden size: an int (all equal), a list of n_experts ints, "
        'or groups [{"count": 8, "hidden": 256}, ...] summing to n_experts',
        kind="expert_hidden",
    )
    n_shared_experts: int = _f(1, "shared experts every token uses (0 = none)", min=0, max=64)
    shared_hidden: int = _f(128, "hidden size of each shared expert", min=1, max=1 << 18)
    top_k: int = _f(2, "experts per token", min=2, max=8)
    router_score: str = _f("softmax", "router scoring function", choices=["softmax", "sigmoid"])
    route_scale: float = _f(
        1.0,
        "multiplier on the normalised gates (DeepSeek-V3: 2.5)",
        min=0.0,
        max=100.0,
        exclusive_min=True,
    )
    aux_loss_coef: float = _f(
        0.01,
        "λ of the auxiliary balance loss (0 = off); 0.01 as in Switch/GShard",
        min=0.0,
        max=10.0,
    )
    aux_loss_scope: str = _f(
        "batch",
        "balance loss over the whole batch or per sequence (DeepSeek-V3's sequence-wise loss)",
        choices=["batch", "sequence"],
    )
    bias_balance: bool = _f(True, "auxiliary-loss-free balancing: per-expert selection bias")
    bias_update_rate: float = _f(
        0.001, "γ: bias step per optimizer step (DeepSeek-V3: 0.001)", min=0.0, max=1.0
    )
    capacity_factor: float | None = _f(
        None,
        "expert capacity = ceil(factor · tokens · k / n_experts); null = dropless",
        min=0.0,
        max=64.0,
        exclusive_min=True,
        nullable=True,
    )
    z_loss_coef: float = _f(
        0.0, "router z-loss coefficient (ST-MoE: 0.001; 0 = off)", min=0.0, max=1.0
    )
    tie_embeddings: bool = _f(True, "share the token embedding with the output head")
    rope_theta: float = _f(10000.0, "rotary embedding base", min=1.0, max=1e9)
    dropout: float = _f(0.0, "dropout on attention and residual branches", min=0.0, max=0.9)
    norm_eps: float = _f(1e-5, "RMSNorm epsilon", min=0.0, max=1.0, exclusive_min=True)
    debug_force_expert: int | None = _f(
        None,
        "DEBUG: every token's top-k always includes this expert (a broken router, to see the "
        "collapse alert fire); null = off",
        min=0,
        max=1023,
        nullable=True,
    )

    def expert_sizes(self) -> list[int]:
        """The hidden size of every routed expert, resolving the three accepted forms."""
        h = self.expert_hidden
        if isinstance(h, int):
            return [h] * self.n_experts
        if h and isinstance(h[0], dict):
            return [int(g["hidden"]) for g in h for _ in range(int(g["count"]))]
        return [int(v) for v in h]

    def is_moe_layer(self, i: int) -> bool:
        return i >= self.n_dense_layers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DataConfig:
    paths: list[str] | None = _f(
        None,
        "text files and directories to train on; null = the Python standard library's "
        "own .py sources (found via sysconfig)",
        nullable=True,
    )
    extensions: list[str] | None = _f(
        None,
        'file suffixes to take from directories, e.g. [".py", ".txt"]; null = every '
        "file for data.paths, .py for the default corpus",
        nullable=True,
    )
    max_bytes: int | None = _f(
        DEFAULT_MAX_BYTES,
        "cap on corpus bytes (documents taken in a fixed pseudo-random order); default "
        "8 MB (the default corpus is ~30 MB); null = all",
        min=1024,
        max=1 << 40,
        nullable=True,
    )
    val_fraction: float = _f(
        0.05,
        "share of documents held out for validation (by path hash)",
        min=0.0,
        max=0.5,
        exclusive_min=True,
    )
    cache_dir: str | None = _f(
        None, "where token files are cached; null = <out>/data", nullable=True
    )


@dataclass
class RuntimeConfig:
    device: str = _f("auto", "auto = CUDA when present, else CPU", choices=["auto", "cpu", "cuda"])
    dtype: str = _f(
        "fp32",
        "fp32; bf16 autocast (CPU and CUDA); fp16 autocast + GradScaler (CUDA only)",
        choices=["fp32", "bf16", "fp16"],
    )
    threads: int = _f(0, "CPU threads for torch (0 = torch's default)", min=0, max=1024)
    peak_tflops: float | None = _f(
        None,
        "the device's peak dense TFLOP/s for the chosen dtype; enables the mfu metric",
        min=0.0,
        max=1e6,
        exclusive_min=True,
        nullable=True,
    )


#: train.dp.delta when unset: δ = min(DP_DEFAULT_DELTA, DP_DELTA_PER_EXAMPLES / N) for N
#: training examples, so δ stays well under 1/N (the usual requirement: δ ≪ 1/N).
DP_DEFAULT_DELTA = 1e-5
DP_DELTA_PER_EXAMPLES = 0.1


@dataclass
class DPConfig:
    """Differential-privacy training (DP-SGD; see workers/moe/dp.py). The unit of privacy is
    one training example: a disjoint window of block_size + 1 tokens of the training split."""

    epsilon: float = _f(
        8.0,
        "privacy budget ε: the job stops before the step that would spend more",
        min=0.0,
        max=1000.0,
        exclusive_min=True,
    )
    delta: float | None = _f(
        None,
        "δ of (ε, δ)-DP; null = min(1e-5, 0.1 / N) for N training examples",
        min=0.0,
        max=0.1,
        exclusive_min=True,
        nullable=True,
    )
    max_grad_norm: float = _f(
        1.0,
        "C: each example's gradient is clipped to this L2 norm before the batch sum",
        min=0.0,
        max=1e6,
        exclusive_min=True,
    )
    noise_multiplier: float | None = _f(
        None,
        "σ: Gaussian noise std / C; null = the smallest σ (RDP accountant) that spends at most "
        "ε over train.steps at the sampling rate q = batch_size · grad_accum / N",
        min=0.0,
        max=1e6,
        exclusive_min=True,
        nullable=True,
    )


@dataclass
class TrainConfig:
    steps: int = _f(600, "optimizer steps", min=1, max=10_000_000)
    batch_size: int = _f(16, "sequences per micro-batch", min=1, max=65536)
    grad_accum: int = _f(1, "micro-batches per optimizer step", min=1, max=4096)
    lr: float = _f(3e-3, "peak learning rate (AdamW)", min=0.0, max=10.0, exclusive_min=True)
    min_lr: float = _f(3e-4, "learning rate at the end of the cosine decay", min=0.0, max=10.0)
    warmup_steps: int = _f(
        50,
        "linear warm-up steps; when unset and longer than steps, a tenth of steps",
        min=0,
        max=10_000_000,
    )
    weight_decay: float = _f(0.1, "AdamW decoupled weight decay (matrices only)", min=0.0, max=10.0)
    beta1: float = _f(0.9, "AdamW β1", min=0.0, max=1.0, exclusive_max=True)
    beta2: float = _f(0.95, "AdamW β2", min=0.0, max=1.0, exclusive_max=True)
    grad_clip: float = _f(1.0, "clip the global gradient norm to this (0 = off)", min=0.0, max=1e6)
    checkpoint_every: int = _f(200, "write a resumable checkpoint every N steps", min=1, max=500)
    keep_checkpoints: int = _f(
        2, "checkpoints kept on disk (older ones are deleted)", min=1, max=1000
    )
    eval_every: int = _f(
        200, "validation every N steps (0 = only at the end)", min=0, max=10_000_000
    )
    eval_tokens: int = _f(65536, "validation tokens per evaluation", min=1, max=1 << 40)
    log_every: int = _f(10, "metric event every N steps", min=1, max=1_000_000)
    grad_norm_interval: int = _f(
        10,
        "log per-layer and per-expert gradient norms (grad_norm/layer{i}/...) every N steps "
        "(0 = off)",
        min=0,
        max=1_000_000,
    )
    activation_checkpointing: str = _f(
        "none",
        "recompute activations in the backward pass instead of storing them: none; blocks "
        "(each transformer block); moe (each MoE FFN sub-layer: norm, router, experts); full "
        "(every block, plus the final norm, output head and cross-entropy). Same loss and "
        "gradients, less memory, ~1 more forward per step",
        choices=list(ACTIVATION_CHECKPOINTING),
    )
    dp: DPConfig | None = _f(
        None,
        "differential-privacy training (DP-SGD with per-example clipping, Gaussian noise, "
        "Poisson sampling and an RDP accountant); null = off",
        kind="section",
        section=DPConfig,
        nullable=True,
    )


@dataclass
class LoraConfig:
    rank: int = _f(8, "LoRA rank r", min=1, max=1024)
    alpha: float = _f(16.0, "LoRA α; the update is (α/r)·B·A", min=0.0, max=1e6, exclusive_min=True)
    targets: list[str] = _f(
        ["attention", "experts"], "which projections get adapters", choices=list(LORA_TARGETS)
    )
    save_merged: bool = _f(False, "also write the adapter merged into the base weights")


@dataclass
class FinetuneConfig:
    base_quantization: str = _f(
        "none",
        "store the frozen base's projection weights quantized (QLoRA): nf4 = torchao NF4 "
        "(4 bit), int8 = weight-only per row; the adapters train in full precision on top",
        choices=["none", "nf4", "int8"],
    )
    nf4_block_size: int = _f(64, "NF4: values sharing one absmax scale", min=2, max=4096)
    double_quant: bool = _f(
        True, "NF4: quantize the block scales again (int8 per nf4_scaler_block_size blocks)"
    )
    nf4_scaler_block_size: int = _f(
        256, "NF4 double quantization: block scales sharing one int8 factor", min=1, max=65536
    )


@dataclass
class QuantizeConfig:
    method: str = _f(
        "int8",
        "int8 = weight-only, one scale per output row; float8 = e4m3 per row (CUDA, "
        "compute capability ≥ 8.9 only)",
        choices=["int8", "float8"],
    )
    eval_tokens: int = _f(
        65536, "validation tokens scored before and after (the quality delta)", min=1, max=1 << 40
    )
    batch_size: int = _f(16, "sequences per validation forward pass", min=1, max=65536)


@dataclass
class EvalConfig:
    max_tokens: int | None = _f(
        262144,
        "validation tokens to score (null = the whole split)",
        min=1,
        max=1 << 40,
        nullable=True,
    )
    batch_size: int = _f(16, "sequences per forward pass", min=1, max=65536)
    prompts: list[str] = _f(["def ", "import os\n", "class "], "prompts to sample from")
    max_new_tokens: int = _f(128, "tokens sampled per prompt", min=0, max=65536)
    temperature: float = _f(0.8, "sampling temperature (0 = greedy)", min=0.0, max=100.0)
    top_p: float = _f(0.95, "nucleus sampling mass", min=0.0, max=1.0, exclusive_min=True)
    watermark: bool | None = _f(
        None,
        "text watermark on the samples, with the base repo's key: null = the repo owner's "
        "setting, true / false = on / off for this job (the hub hands the key to this attempt "
        "only; samples.json records the key id and strength)",
        nullable=True,
    )


@dataclass
class ProfileConfig:
    steps: int = _f(3, "profiled (active) steps", min=1, max=100)
    warmup: int = _f(1, "steps run under the profiler before recording", min=0, max=100)
    mode: str = _f(
        "train", "profile training steps or forward passes only", choices=["train", "forward"]
    )
    batch_size: int = _f(8, "sequences per profiled step", min=1, max=65536)
    with_stack: bool = _f(
        False,
        "also record Python stacks in the trace (the collapsed stacks "
        "come from the op tree either way; torch 2.13 can fail to parse "
        "stacks that hold non-ASCII text)",
    )
    lifetimes: bool = _f(
        True,
        "record tensor lifetimes and memory by category (lifetimes.json); the profiler's "
        "memory profile needs Python stacks, so this records them too",
    )


@dataclass
class InspectConfig:
    """What an inspect job looks at (``workers/moe/inspect.py``): one view per ``what``."""

    what: str = _f(
        "graph",
        "graph = the model's computation graph (torch.export) as nodes and edges, plus an ONNX "
        "export",
        choices=["graph"],
    )
    seq_len: int = _f(32, "tokens per example input sequence", min=1, max=4096)
    batch: int = _f(2, "sequences in the example input", min=1, max=64)


_ACTION_HELP = (
    "when the {} alert fires: none (record it), stop (the job ends cancelled at once, "
    "nothing saved), checkpoint_stop (write a checkpoint and the weights so far, then end)"
)


def _action(kind: str) -> Any:
    return _f("none", _ACTION_HELP.format(kind), choices=list(ALERT_ACTIONS))


@dataclass
class AlertsConfig:
    """MoE health alerts (hub/shared/moe_health.py: the rules and why these defaults). Each
    threshold null = that rule off."""

    enabled: bool = _f(True, "evaluate the MoE health rules at every logged step")
    dead_expert_fraction: float | None = _f(
        ALERT_DEFAULTS.dead_expert_fraction,
        "dead expert: load share below this fraction of the uniform share 1/n_experts",
        min=0.0,
        max=1.0,
        exclusive_min=True,
        nullable=True,
    )
    dead_expert_steps: int = _f(
        ALERT_DEFAULTS.dead_expert_steps,
        "... for this many consecutive logged steps",
        min=1,
        max=100_000,
    )
    collapse_share: float | None = _f(
        ALERT_DEFAULTS.collapse_share,
        "collapse: one expert serves more than this share of the tokens (top_k · load share)",
        min=0.0,
        max=1.0,
        exclusive_min=True,
        exclusive_max=True,
        nullable=True,
    )
    collapse_steps: int = _f(
        ALERT_DEFAULTS.collapse_steps,
        "... for this many consecutive logged steps",
        min=1,
        max=100_000,
    )
    dropped_tokens: float | None = _f(
        ALERT_DEFAULTS.dropped_tokens,
        "dropped tokens: a layer drops more than this share of its assignments over capacity",
        min=0.0,
        max=1.0,
        exclusive_max=True,
        nullable=True,
    )
    dropped_tokens_steps: int = _f(
        ALERT_DEFAULTS.dropped_tokens_steps,
        "... for this many consecutive logged steps",
        min=1,
        max=100_000,
    )
    nonfinite_loss: bool = _f(True, "non-finite loss: alert when the logged loss is NaN or inf")
    divergence_factor: float | None = _f(
        ALERT_DEFAULTS.divergence_factor,
        "divergence: the loss exceeds this × the median of the recent logged losses",
        min=1.0,
        max=1e6,
        exclusive_min=True,
        nullable=True,
    )
    divergence_window: int = _f(
        ALERT_DEFAULTS.divergence_window,
        "divergence: logged losses in the median",
        min=1,
        max=10_000,
    )
    divergence_min_history: int = _f(
        ALERT_DEFAULTS.divergence_min_history,
        "divergence: logged losses needed before the rule runs",
        min=1,
        max=10_000,
    )
    on_dead_expert: str = _action("dead_expert")
    on_collapse: str = _action("collapse")
    on_dropped_tokens: str = _action("dropped_tokens")
    on_nonfinite_loss: str = _action("nonfinite_loss")
    on_divergence: str = _action("divergence")


SECTION_TYPES: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "runtime": RuntimeConfig,
    "train": TrainConfig,
    "lora": LoraConfig,
    "finetune": FinetuneConfig,
    "quantize": QuantizeConfig,
    "eval": EvalConfig,
    "profile": ProfileConfig,
    "inspect": InspectConfig,
    "alerts": AlertsConfig,
}

SECTIONS: dict[str, tuple[str, ...]] = {
    "train": ("model", "data", "runtime", "train", "alerts"),
    "finetune": ("model", "data", "runtime", "train", "lora", "finetune", "alerts"),
    "evaluate": ("model", "data", "runtime", "eval"),
    "profile": ("model", "data", "runtime", "train", "profile"),
    "quantize": ("model", "data", "runtime", "quantize"),
    "inspect": ("model", "runtime", "inspect"),
}

SEED_MAX = 2**63 - 1


@dataclass
class Config:
    """A validated job config. Sections a kind does not use are None."""

    kind: str
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    train: TrainConfig | None = None
    lora: LoraConfig | None = None
    finetune: FinetuneConfig | None = None
    quantize: QuantizeConfig | None = None
    eval: EvalConfig | None = None
    profile: ProfileConfig | None = None
    inspect: InspectConfig | None = None
    alerts: AlertsConfig | None = None
    # Model keys the job set explicitly: with --init-weights the architecture comes from the
    # weights and only these may override (non-architectural) fields.
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # What validation adjusted in a config it accepted (the entry point logs each line).
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The job config as JSON (only this kind's sections, defaults filled in)."""
        out: dict[str, Any] = {"seed": self.seed}
        for name in SECTIONS[self.kind]:
            out[name] = asdict(getattr(self, name))
        return out


# ---------------------------------------------------------------------------------------------
# Validation


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), True
    return tp, False


def _range_message(meta: dict[str, Any]) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    lo_ex, hi_ex = meta.get("exclusive_min", False), meta.get("exclusive_max", False)
    if lo is not None and hi is not None and not lo_ex and not hi_ex:
        return f"must be between {_num(lo)} and {_num(hi)}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_ex else '≥'} {_num(lo)}")
    if hi is not None:
        parts.append(f"{'<' if hi_ex else '≤'} {_num(hi)}")
    return "must be " + " and ".join(parts)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)


def _in_range(v: float, meta: dict[str, Any]) -> bool:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (v <= lo if meta.get("exclusive_min") else v < lo):
        return False
    if hi is not None and (v >= hi if meta.get("exclusive_max") else v > hi):
        return False
    return True


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, "a list of strings"
    )


def _check_value(f: Field, tp: Any, value: Any, path: str, errors: list[dict[str, str]]) -> Any:
    """Check one field's value; append errors and return the (normalised) value."""
    meta = dict(f.metadata)
    base, nullable = _base_type(tp)
    if value is None:
        if nullable or meta.get("nullable"):
            return None
        errors.append({"path": path, "message": "must not be null"})
        return None
    if meta.get("kind") == "expert_hidden":
        return _check_expert_hidden(value, path, errors)
    if meta.get("kind") == "section":  # a nested section (train.dp): its own fields' rules
        return _check_section(meta["section"], value, path, errors)
    if base is bool:
        if not isinstance(value, bool):
            errors.append({"path": path, "message": "must be true or false"})
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append({"path": path, "message": "must be an integer"})
            return value
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append({"path": path, "message": "must be a number"})
            return value
        if not math.isfinite(value):
            errors.append({"path": path, "message": "must be a finite number"})
            return value
        value = float(value)
    elif base is str:
        if not isinstance(value, str):
            errors.append({"path": path, "message": "must be a string"})
            return value
    elif typing.get_origin(base) is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append({"path": path, "message": "must be a list of strings"})
            return value
        choices = meta.get("choices")
        for i, v in enumerate(value):
            if choices is not None and v not in choices:
                errors.append(
                    {"path": f"{path}[{i}]", "message": f"must be one of {', '.join(choices)}"}
                )
        return list(value)
    if base in (int, float) and not _in_range(value, meta):
        errors.append({"path": path, "message": _range_message(meta)})
    if base is str and meta.get("choices") is not None and value not in meta["choices"]:
        errors.append({"path": path, "message": f"must be one of {', '.join(meta['choices'])}"})
    return value


def _check_expert_hidden(value: Any, path: str, errors: list[dict[str, str]]) -> Any:
    def ok_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= (1 << 18)

    if ok_int(value):
        return value
    if isinstance(value, list) and value and all(ok_int(v) for v in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(g, dict) for g in value):
        n_before = len(errors)
        for i, g in enumerate(value):
            extra = sorted(set(g) - {"count", "hidden"})
            if extra:
                errors.append({"path": f"{path}[{i}]", "message": f"unknown key(s) {extra}"})
            if not (
                isinstance(g.get("count"), int)
                and not isinstance(g.get("count"), bool)
                and g["count"] >= 1
            ):
                errors.append({"path": f"{path}[{i}].count", "message": "must be an integer ≥ 1"})
            if not ok_int(g.get("hidden")):
                errors.append(
                    {
                        "path": f"{path}[{i}].hidden",
                        "message": "must be an integer between 1 and 262144",
                    }
                )
        return [dict(g) for g in value] if len(errors) == n_before else value
    errors.append(
        {
            "path": path,
            "message": "must be an integer between 1 and 262144, a "
            "non-empty list of such integers, or a list of {count, hidden} groups",
        }
    )
    return value


def _unknown_key(key: str, allowed: list[str], path: str) -> dict[str, str]:
    hint = difflib.get_close_matches(key, allowed, n=1)
    msg = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    return {"path": path, "message": msg}


def _check_section(cls: type, raw: Any, path: str, errors: list[dict[str, str]]) -> Any:
    """An instance of the section built from its valid fields (invalid ones keep their
    defaults, so the cross-field checks can still run); problems go to ``errors``."""
    if not isinstance(raw, dict):
        errors.append({"path": path, "message": "must be an object"})
        return cls()
    hints = _hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            errors.append(_unknown_key(str(key), list(known), f"{path}.{key}"))
    values = {}
    for name, f in known.items():
        if name in raw:
            n_before = len(errors)
            value = _check_value(f, hints[name], raw[name], f"{path}.{name}", errors)
            if len(errors) == n_before:
                values[name] = value
    return cls(**values)


def fp16_needs_cuda(rt: RuntimeConfig, *, no_cuda: str = "") -> str | None:
    """The rule "fp16 needs CUDA" (fp16 autocast with a GradScaler has no CPU path), stated
    once for every place that enforces it: the message for a runtime section that breaks it,
    or None.

    ``no_cuda`` says why the job will have no CUDA device, where that is known: the hub knows
    that a job asking for no GPU runs on a CPU worker, an entry point knows when it found none.
    Without it only ``device=cpu`` rules CUDA out (the config alone, ``validate_config``).
    Strings in, a string out: callable from the hub without Django or torch in the way."""
    if rt.dtype != "fp16":
        return None
    if rt.device == "cpu":
        return "fp16 needs CUDA: set device=cuda, or use bf16"
    if no_cuda:
        return f"fp16 needs CUDA and {no_cuda}: set device=cuda on a GPU worker (resources.gpus ≥ 1), or use bf16"
    return None


def _cross_checks(cfg: Config, errors: list[dict[str, str]]) -> None:
    """Rules between fields; a rule is skipped when a field it reads was itself invalid."""
    bad = {e["path"].split("[")[0] for e in errors}

    def rule(ok: bool, path: str, message: str, reads: tuple[str, ...]) -> None:
        if not ok and not bad.intersection(reads) and path not in bad:
            errors.append({"path": path, "message": message})

    m = cfg.model
    rule(
        m.n_embd % m.n_head == 0,
        "model.n_head",
        f"must divide n_embd ({m.n_embd})",
        ("model.n_embd",),
    )
    rule(
        m.n_embd % m.n_head != 0 or (m.n_embd // m.n_head) % 2 == 0,
        "model.n_head",
        "n_embd / n_head must be even (rotary embeddings)",
        ("model.n_embd",),
    )
    rule(
        m.top_k <= m.n_experts,
        "model.top_k",
        f"must be ≤ n_experts ({m.n_experts})",
        ("model.n_experts",),
    )
    rule(
        m.debug_force_expert is None or m.debug_force_expert < m.n_experts,
        "model.debug_force_expert",
        f"must be < n_experts ({m.n_experts})",
        ("model.n_experts",),
    )
    rule(
        m.n_dense_layers <= m.n_layer,
        "model.n_dense_layers",
        f"must be ≤ n_layer ({m.n_layer})",
        ("model.n_layer",),
    )
    h = m.expert_hidden
    if isinstance(h, list) and h and isinstance(h[0], dict):
        total = sum(g["count"] for g in h)
        rule(
            total == m.n_experts,
            "model.expert_hidden",
            f"group counts sum to {total}, n_experts is {m.n_experts}",
            ("model.n_experts",),
        )
    elif isinstance(h, list):
        rule(
            len(h) == m.n_experts,
            "model.expert_hidden",
            f"has {len(h)} sizes, n_experts is {m.n_experts}",
            ("model.n_experts",),
        )
    fp16 = fp16_needs_cuda(cfg.runtime)
    rule(fp16 is None, "runtime.dtype", fp16 or "", ("runtime.device",))
    if cfg.data.paths is not None:
        rule(
            bool(cfg.data.paths),
            "data.paths",
            "must name at least one file or directory (or be null)",
            (),
        )
        for i, p in enumerate(cfg.data.paths):
            rule(bool(p.strip()), f"data.paths[{i}]", "must not be empty", ("data.paths",))
    t = cfg.train
    if t is not None:
        rule(t.min_lr <= t.lr, "train.min_lr", f"must be ≤ lr ({t.lr})", ("train.lr",))
        rule(
            t.warmup_steps <= t.steps,
            "train.warmup_steps",
            f"must be ≤ steps ({t.steps})",
            ("train.steps",),
        )
        if t.dp is not None:
            _dp_checks(cfg, rule)
    if cfg.lora is not None:
        rule(bool(cfg.lora.targets), "lora.targets", "must name at least one target", ())
        rule(
            len(set(cfg.lora.targets)) == len(cfg.lora.targets),
            "lora.targets",
            "must not repeat a target",
            (),
        )


def _dp_checks(cfg: Config, rule: Callable[[bool, str, str, tuple[str, ...]], None]) -> None:
    """What DP-SGD training (workers/moe/dp.py) cannot do: per-example gradients need each
    example's loss to depend on that example alone, and the noise has no fp16 loss scaling."""
    rule(
        cfg.kind == "train",
        "train.dp",
        f"differential privacy is for train jobs only (not {cfg.kind})",
        (),
    )
    rule(
        cfg.model.capacity_factor is None,
        "train.dp",
        "needs dropless routing (model.capacity_factor null): with a capacity one example's "
        "tokens decide which tokens of the others are dropped",
        ("model.capacity_factor",),
    )
    assert cfg.train is not None
    rule(
        cfg.train.activation_checkpointing == "none",
        "train.dp",
        "needs train.activation_checkpointing none (per-example gradients are computed with "
        "torch.func.vmap, which torch.utils.checkpoint does not run under)",
        ("train.activation_checkpointing",),
    )
    rule(
        cfg.runtime.dtype == "fp32",
        "train.dp",
        "needs runtime.dtype fp32 (the per-example gradients are not computed under autocast)",
        ("runtime.dtype",),
    )


def validate_config(kind: str, raw: dict[str, Any]) -> tuple[Config | None, list[dict[str, str]]]:
    """Check a raw job config. Returns (Config, []) when valid, else (None, every error)."""
    if kind not in KINDS:
        return None, [{"path": "", "message": f"unknown kind {kind!r}; one of {', '.join(KINDS)}"}]
    if not isinstance(raw, dict):
        return None, [{"path": "", "message": "the config must be a JSON object"}]
    errors: list[dict[str, str]] = []
    allowed = ["seed", *SECTIONS[kind]]
    for key in raw:
        if key not in allowed:
            err = _unknown_key(str(key), allowed, str(key))
            err["message"] += f"; {kind} accepts {', '.join(allowed)}"
            errors.append(err)
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        errors.append({"path": "seed", "message": f"must be between 0 and {SEED_MAX}"})
    sections: dict[str, Any] = {}
    for name in SECTIONS[kind]:
        sections[name] = _check_section(SECTION_TYPES[name], raw.get(name, {}), name, errors)
    model_raw = raw.get("model", {})
    cfg = Config(
        kind=kind,
        seed=seed if isinstance(seed, int) else 0,
        model_overrides=dict(model_raw) if isinstance(model_raw, dict) else {},
        **sections,
    )
    _adjust(cfg, raw, errors)
    _cross_checks(cfg, errors)
    return (None, errors) if errors else (cfg, [])


def _adjust(cfg: Config, raw: dict[str, Any], errors: list[dict[str, str]]) -> None:
    """Defaults that do not fit the rest of a config are fitted to it, and said so in
    ``cfg.notes``; values the config sets itself are never changed (they are checked)."""
    t = cfg.train
    train_raw = raw.get("train")
    if t is None or not isinstance(train_raw, dict) or "warmup_steps" in train_raw:
        return
    if any(e["path"] == "train.steps" for e in errors) or t.warmup_steps <= t.steps:
        return
    default = t.warmup_steps
    t.warmup_steps = int(t.steps * AUTO_WARMUP_FRACTION)
    cfg.notes.append(
        f"train.warmup_steps: the default {default} is longer than train.steps ({t.steps}); "
        f"warming up for {t.warmup_steps} step(s) ({AUTO_WARMUP_FRACTION:.0%} of steps) instead"
    )


def load_config(kind: str, path: str | Path) -> Config:
    """Read and validate a JSON config file; raises ConfigError listing every problem."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([{"path": "", "message": f"config file not found: {path}"}]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([{"path": "", "message": f"cannot read {path}: {exc}"}]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([{"path": "", "message": f"invalid JSON in {path}: {exc}"}]) from None
    cfg, errors = validate_config(kind, raw)
    if cfg is None:
        raise ConfigError(errors)
    return cfg


def default_config(kind: str) -> dict[str, Any]:
    """The full default config of a kind, as JSON (the "default small config" for train)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    return Config(kind=kind, **{s: SECTION_TYPES[s]() for s in SECTIONS[kind]}).to_dict()


# ---------------------------------------------------------------------------------------------
# JSON Schema


def _field_schema(f: Field, tp: Any) -> dict[str, Any]:
    meta = dict(f.metadata)
    base, nullable = _base_type(tp)
    nullable = nullable or bool(meta.get("nullable"))
    s: dict[str, Any]
    if meta.get("kind") == "expert_hidden":
        size = {"type": "integer", "minimum": 1, "maximum": 1 << 18}
        s = {
            "oneOf": [
                size,
                {"type": "array", "items": size, "minItems": 1},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["count", "hidden"],
                        "properties": {"count": {"type": "integer", "minimum": 1}, "hidden": size},
                    },
                },
            ]
        }
    elif meta.get("kind") == "section":
        cls = meta["section"]
        hints = _hints(cls)
        s = {
            "type": "object",
            "additionalProperties": False,
            "properties": {g.name: _field_schema(g, hints[g.name]) for g in fields(cls)},
        }
    elif typing.get_origin(base) is list:
        item: dict[str, Any] = {"type": "string"}
        if meta.get("choices"):
            item["enum"] = list(meta["choices"])
        s = {"type": "array", "items": item}
    else:
        s = {"type": {int: "integer", float: "number", bool: "boolean", str: "string"}[base]}
        if meta.get("choices"):
            s["enum"] = list(meta["choices"])
        for key, js_key, js_ex in (
            ("min", "minimum", "exclusiveMinimum"),
            ("max", "maximum", "exclusiveMaximum"),
        ):
            if meta.get(key) is not None:
                excl = meta.get("exclusive_" + key)
                s[js_ex if excl else js_key] = meta[key]
    if nullable:
        s = {"anyOf": [s, {"type": "null"}]}
    s["description"] = meta.get("help", "")
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    s["default"] = default
    if meta.get("kind") == "section":  # what {} (every field at its default) stands for
        s["x-section-defaults"] = asdict(meta["section"]())
    return s


def config_json_schema(kind: str) -> dict[str, Any]:
    """JSON Schema (2020-12) of a kind's config. Cross-field rules are listed in
    ``x-cross-field-rules``; ``validate_config`` is the authority."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    props: dict[str, Any] = {
        "seed": {
            "type": "integer",
            "minimum": 0,
            "maximum": SEED_MAX,
            "default": 0,
            "description": "seeds model init, data order and sampling",
        },
    }
    for name in SECTIONS[kind]:
        cls = SECTION_TYPES[name]
        hints = _hints(cls)
        props[name] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {f.name: _field_schema(f, hints[f.name]) for f in fields(cls)},
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"MoE {kind} job config",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "x-cross-field-rules": [
            "model.n_head divides model.n_embd and n_embd / n_head is even",
            "model.top_k ≤ model.n_experts; model.n_dense_layers ≤ model.n_layer",
            "model.debug_force_expert < model.n_experts",
            "model.expert_hidden lists n_experts sizes (or groups summing to n_experts)",
            "runtime.dtype fp16 needs a CUDA device",
            "train.min_lr ≤ train.lr; train.warmup_steps ≤ train.steps (when warmup_steps is "
            "unset and its default exceeds steps, it becomes a tenth of steps)",
            "train.dp: train jobs only, with model.capacity_factor null, "
            "train.activation_checkpointing none and runtime.dtype fp32",
        ],
    }
