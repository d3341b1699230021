"""Quantized inference: size, generation speed and validation quality of one trained model
stored as fp32, bf16, int8 weight-only (and float8 on a CUDA GPU with compute capability ≥ 8.9).

A model of the default small config is trained for --steps steps on part of the standard
library, then for each format:

* size: the bytes its weights occupy as stored (int8 / float8: the projections' codes and
  per-row scales, the rest fp32; bf16: every tensor in bf16), deterministic;
* generation tokens/s: --new greedy tokens after a short prompt, batch 1 (the model has no KV
  cache: every token runs the whole context), the median of --reps repetitions;
* validation bits per byte on --eval-tokens tokens of the validation split (deterministic).

fp32, int8 and float8 run in fp32 arithmetic (the quantized weights are dequantized per use,
``workers.moe.quantize``); bf16 holds and computes in bf16. The int8 rows are built by the same
code the quantize job runs (``quantize_model`` then ``save_quantized`` / ``load_quantized``, so
the checkpoint round trip is measured too). Each figure is followed by its ratio to fp32; the
1-minute load average is printed (the machine is shared: read tokens/s with it).

Run: .venv/bin/python tests/bench/bench_moe_quantize.py [--steps 300] [--reps 3]
(about a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
DATA = [str(STDLIB / d) for d in ("email", "json", "http", "logging", "unittest")]


def reexec_with_tunables() -> None:
    if os.environ.get("GLIBC_TUNABLES") != TUNABLES:
        os.environ["GLIBC_TUNABLES"] = TUNABLES
        os.execv(sys.executable, [sys.executable, *sys.argv])


def main() -> None:
    reexec_with_tunables()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--new", type=int, default=48, help="generated tokens per repetition")
    p.add_argument("--eval-tokens", type=int, default=32768)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--out", default=None)
    p.add_argument("--weights", default=None, help="a trained weights directory (skips training)")
    args = p.parse_args()

    import torch

    from workers.moe.config import validate_config
    from workers.moe.data import load_corpus
    from workers.moe.events import EventWriter
    from workers.moe.quantize import (
        float8_supported,
        load_any,
        quantize_model,
        save_quantized,
        weight_bytes,
    )
    from workers.moe.train import evaluate_loss
    from workers.moe.train import run as train_run

    tmp = Path(args.out or tempfile.mkdtemp(prefix="bench-quantize-"))
    tmp.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.gettempdir()) / "moe-bench-quantize-corpus"
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raw = {
        "seed": 0,
        "model": {"block_size": args.block},
        "data": {"paths": DATA, "max_bytes": 2_000_000, "cache_dir": str(cache)},
        "runtime": {"device": device.type},
        "train": {
            "steps": args.steps,
            "batch_size": 8,
            "warmup_steps": 20,
            "eval_every": 0,
            "eval_tokens": 8192,
            "checkpoint_every": args.steps,
            "log_every": 50,
        },
    }
    cfg, errors = validate_config("train", raw)
    assert cfg is not None, errors
    t0 = time.perf_counter()
    source = Path(args.weights) if args.weights else tmp / "fp32"
    if not args.weights:
        fd = os.open(tmp / "train.events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            train_run(cfg, source, EventWriter(fd), None)
        finally:
            os.close(fd)
    steps = json.loads((source / "config.json").read_text()).get("step")
    print(
        f"model: {source} ({steps} steps, {time.perf_counter() - t0:.0f} s to train here); "
        f"torch {torch.__version__} on {device.type}, {torch.get_num_threads()} threads",
        flush=True,
    )
    data = load_corpus(cfg.data, tmp, args.block)

    def variant(name: str) -> tuple[Any, str]:
        model, _ = load_any(source)
        if name == "bf16":
            return model.to(torch.bfloat16), "bf16"
        if name in ("int8", "float8"):
            model.to(device)
            quantize_model(model, name)
            if name == "int8":  # through the checkpoint, as evaluate reads the job's output
                save_quantized(model.cpu(), tmp / "int8", {})
                model, _ = load_any(tmp / "int8")
        return model, "fp32"

    names = ["fp32", "bf16", "int8"]
    why = float8_supported(device)
    if why is None:
        names.append("float8")
    rows: dict[str, dict[str, Any]] = {}
    prompt = torch.tensor([[257, *b"def main():\n    "]], device=device)
    for name in names:
        model, dtype = variant(name)
        model.to(device).eval()
        size = weight_bytes(model)
        bpb = evaluate_loss(model, data, 8, args.eval_tokens, device, dtype)["bpb"]
        speeds, loads = [], []
        for _ in range(args.reps):
            loads.append(os.getloadavg()[0])
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.no_grad():
                model.generate(prompt, args.new, temperature=0.0)
            if device.type == "cuda":
                torch.cuda.synchronize()
            speeds.append(args.new / (time.perf_counter() - t))
        rows[name] = {
            "bytes": size,
            "gen_tokens_per_s": statistics.median(speeds),
            "val_bpb": bpb,
            "load": statistics.median(loads),
        }
        print(f"  {name:<6} {rows[name]}", flush=True)
    ref = rows["fp32"]
    print(
        f"\nQuantized inference on {device.type}: generation of {args.new} tokens (batch 1), "
        f"median of {args.reps}; val bpb on {args.eval_tokens:,} tokens"
        + (f"; float8 left out: {why}" if why else "")
        + "\n"
    )
    print("| weights | size | ratio | generation tokens/s | ratio | val bpb | Δ vs fp32 | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['bytes'] / 2**20:.2f} MiB | {r['bytes'] / ref['bytes']:.2f} "
            f"| {r['gen_tokens_per_s']:,.1f} | {r['gen_tokens_per_s'] / ref['gen_tokens_per_s']:.2f} "
            f"| {r['val_bpb']:.4f} | {r['val_bpb'] - ref['val_bpb']:+.4f} | {r['load']:.2f} |"
        )
    (tmp / "quantize.json").write_text(json.dumps(rows, indent=2))
    print(f"\n(raw figures in {tmp / 'quantize.json'})")


if __name__ == "__main__":
    main()
