"""MoE quality benchmark on the default corpus (the standard library's .py sources).

1. MoE vs dense at equal training FLOPs: the default small MoE config and a dense model with
   the same active parameters (every FFN a SwiGLU of hidden top_k·h + shared, i.e. 384), same
   tokens, same schedule. Goal: MoE validation bits-per-byte ≤ 0.95 × dense.
2. Expert-load balance: the coefficient of variation (std / mean) of per-expert load on the
   validation split, averaged over MoE layers, for the default config (aux loss λ = 0.01 +
   auxiliary-loss-free bias γ = 0.001) and with the bias alone (λ = 0). Goal: < 0.1.

Run: .venv/bin/python tests/bench/bench_moe_quality.py [--steps 600] [--quick]
(fp32; about 8 minutes on 2 cores with the defaults, --quick halves the steps).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# glibc's malloc returns big blocks to the OS and faults them back in on every step; keeping
# them (no mmap, no trim) speeds fp32 up 10-25% here. It must be set before the process
# starts, hence the re-exec.
TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"


def reexec_with_tunables() -> None:
    if os.environ.get("GLIBC_TUNABLES") != TUNABLES and "--no-tunables" not in sys.argv:
        os.environ["GLIBC_TUNABLES"] = TUNABLES
        os.execv(sys.executable, [sys.executable, *sys.argv])


def train_one(name: str, raw: dict[str, Any], out: Path) -> dict[str, Any]:
    from workers.moe.config import validate_config
    from workers.moe.events import EventWriter
    from workers.moe.train import run

    cfg, errors = validate_config("train", raw)
    assert cfg is not None, errors
    metrics = out / f"{name}.events.jsonl"
    fd = os.open(metrics, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t0 = time.perf_counter()
    try:
        summary = run(cfg, out / name, EventWriter(fd), None)
    finally:
        os.close(fd)
    summary["wall_s"] = time.perf_counter() - t0
    print(
        f"  {name:<22} val bpb {summary['val_bpb']:.4f}  "
        f"load CV {summary.get('val_load_cv', float('nan')):.3f}  "
        f"{summary['tokens_per_s']:,.0f} tok/s  {summary['wall_s']:.0f} s",
        flush=True,
    )
    return summary


def main() -> None:
    reexec_with_tunables()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--quick", action="store_true", help="half the steps")
    p.add_argument("--max-bytes", type=int, default=None, help="cap the corpus (default: all)")
    p.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "moe-bench-corpus"))
    p.add_argument("--out", default=None, help="keep runs here (default: a temp dir)")
    p.add_argument("--no-tunables", action="store_true")
    p.add_argument("--skip-bias-only", action="store_true")
    p.add_argument(
        "--bias-rate",
        type=float,
        default=None,
        help="γ for the MoE runs (default: the config default, 0.001)",
    )
    args = p.parse_args()
    steps = args.steps // 2 if args.quick else args.steps

    from workers.moe.config import default_config

    base = default_config("train")
    base["data"].update({"cache_dir": args.cache_dir, "max_bytes": args.max_bytes})
    base["train"].update(
        {
            "steps": steps,
            "eval_every": 0,
            "eval_tokens": 262144,
            "checkpoint_every": 500,
            "warmup_steps": min(50, steps // 10),
        }
    )
    m = base["model"]
    if args.bias_rate is not None:
        m["bias_update_rate"] = args.bias_rate
    active_hidden = m["top_k"] * m["expert_hidden"] + m["n_shared_experts"] * m["shared_hidden"]
    dense = json.loads(json.dumps(base))
    dense["model"].update({"n_dense_layers": m["n_layer"], "dense_hidden": active_hidden})
    bias_only = json.loads(json.dumps(base))
    bias_only["model"]["aux_loss_coef"] = 0.0

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="moe-quality-"))
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"γ (bias_update_rate) = {m['bias_update_rate']}, λ (aux_loss_coef) = {m['aux_loss_coef']}"
    )
    print(
        f"MoE quality: {steps} steps × {base['train']['batch_size']}×{m['block_size']} tokens,"
        f" fp32, corpus = stdlib .py (cap {args.max_bytes}), runs in {out}",
        flush=True,
    )
    runs = {"dense": train_one("dense", dense, out), "moe": train_one("moe", base, out)}
    if not args.skip_bias_only:
        runs["moe_bias_only"] = train_one("moe_bias_only", bias_only, out)

    d, e = runs["dense"], runs["moe"]
    ratio = e["val_bpb"] / d["val_bpb"]
    print()
    print("| model | params | active | train FLOPs | val loss | val bpb | load CV | tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in runs.items():
        flops = s["flops_per_token"] * steps * base["train"]["batch_size"] * m["block_size"]
        cv = s.get("val_load_cv")
        print(
            f"| {name} | {s['params'] / 1e6:.2f}M | {s['active_params'] / 1e6:.2f}M | "
            f"{flops / 1e12:.1f} T | {s['val_loss']:.4f} | {s['val_bpb']:.4f} | "
            f"{'-' if cv is None else f'{cv:.3f}'} | {s['tokens_per_s']:,.0f} |"
        )
    print()
    print(
        f"MoE / dense val bpb = {ratio:.3f}   (goal ≤ 0.95: {'met' if ratio <= 0.95 else 'NOT met'})"
    )
    for name in ("moe", "moe_bias_only"):
        if name in runs:
            cv = runs[name]["val_load_cv"]
            print(
                f"{name}: expert-load CV on validation = {cv:.3f}   "
                f"(goal < 0.1: {'met' if cv < 0.1 else 'NOT met'})"
            )
    (out / "summary.json").write_text(json.dumps(runs, indent=1, default=str))


if __name__ == "__main__":
    main()
