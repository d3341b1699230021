"""QLoRA: the same LoRA fine-tuning on a base stored in fp32 (none), int8 and NF4.

A base model (--model-width, the default small config's shape otherwise) is first trained for
--base-steps steps on one part of the standard library; then each mode fine-tunes rank-8
adapters on the attention and expert projections for --steps steps on another part
(``finetune.base_quantization``), same seed, same batches. Per mode:

* base memory: the bytes the frozen base's weights occupy as stored (quantized projections at
  their compressed size with every scale; embeddings, norms and routers in fp32), deterministic;
* tokens/s of the fine-tuning steps (the median of --reps runs);
* validation bits per byte on the fine-tuning corpus after the fine-tuning (deterministic: the
  same seed gives the same number in every repetition; the first is reported).

Each figure is followed by its ratio to ``none``; the 1-minute load average is printed with
each run (the machine is shared: read tokens/s with it).

Run: .venv/bin/python tests/bench/bench_moe_qlora.py [--base-steps 300] [--steps 60] [--reps 3]
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
BASE_DATA = [str(STDLIB / d) for d in ("email", "json", "http", "logging")]
FT_DATA = [str(STDLIB / d) for d in ("unittest", "concurrent", "xml")]
MODES = ("none", "int8", "nf4")


def reexec_with_tunables() -> None:
    if os.environ.get("GLIBC_TUNABLES") != TUNABLES:
        os.environ["GLIBC_TUNABLES"] = TUNABLES
        os.execv(sys.executable, [sys.executable, *sys.argv])


def run_job(kind: str, raw: dict[str, Any], out: Path, weights: Path | None) -> dict[str, Any]:
    from workers.moe import finetune, train
    from workers.moe.config import validate_config
    from workers.moe.events import EventWriter

    cfg, errors = validate_config(kind, raw)
    assert cfg is not None, errors
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        run = train.run if kind == "train" else finetune.run
        return run(cfg, out, EventWriter(fd), weights)
    finally:
        os.close(fd)


def main() -> None:
    reexec_with_tunables()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-steps", type=int, default=300)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(args.out or tempfile.mkdtemp(prefix="bench-qlora-"))
    cache = Path(tempfile.gettempdir()) / "moe-bench-qlora-corpus"
    model = {"block_size": args.block}
    common = {"seed": 0, "model": model, "runtime": {"device": "cpu", "dtype": "fp32"}}
    t0 = time.perf_counter()
    done = tmp / "base" / "summary.json"  # a base trained by an earlier run into --out is reused
    base = (
        json.loads(done.read_text())
        if done.is_file()
        else run_job(
            "train",
            {
                **common,
                "data": {"paths": BASE_DATA, "max_bytes": 1_500_000, "cache_dir": str(cache)},
                "train": {
                    "steps": args.base_steps,
                    "batch_size": args.batch,
                    "warmup_steps": 10,
                    "eval_every": 0,
                    "eval_tokens": 8192,
                    "checkpoint_every": args.base_steps,
                },
            },
            tmp / "base",
            None,
        )
    )
    done.write_text(json.dumps(base))
    print(
        f"base: {base['params'] / 1e6:.2f}M parameters, {args.base_steps} steps, val bpb "
        f"{base['val_bpb']:.3f} ({time.perf_counter() - t0:.0f} s); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    rows: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        tps, summaries, loads = [], [], []
        for rep in range(args.reps):
            loads.append(os.getloadavg()[0])
            s = run_job(
                "finetune",
                {
                    **common,
                    "data": {"paths": FT_DATA, "max_bytes": 1_000_000, "cache_dir": str(cache)},
                    "train": {
                        "steps": args.steps,
                        "batch_size": args.batch,
                        "lr": 1e-2,
                        "min_lr": 1e-3,
                        "warmup_steps": 3,
                        "eval_every": 0,
                        "eval_tokens": 16384,
                        "checkpoint_every": args.steps,
                        "log_every": args.steps,
                    },
                    "lora": {"rank": 8, "targets": ["attention", "experts"]},
                    "finetune": {"base_quantization": mode},
                },
                tmp / f"ft-{mode}-{rep}",
                tmp / "base",
            )
            tps.append(s["tokens_per_s"])
            summaries.append(s)
            print(
                f"  {mode:<5} rep {rep}: {s['tokens_per_s']:,.0f} tok/s, val bpb "
                f"{s['val_bpb']:.4f}, load {loads[-1]:.2f}",
                flush=True,
            )
        rows[mode] = {
            "base_bytes": summaries[0]["base_weight_bytes"],
            "tokens_per_s": statistics.median(tps),
            "val_bpb": summaries[0]["val_bpb"],
            "val_bpb_spread": max(s["val_bpb"] for s in summaries)
            - min(s["val_bpb"] for s in summaries),
            "load": statistics.median(loads),
        }
    ref = rows["none"]
    print(
        f"\nQLoRA, {args.steps} fine-tuning steps of {args.batch}×{args.block} tokens, median of "
        f"{args.reps} (load = 1-min load average, {os.cpu_count()} cores)\n"
    )
    print("| base | base memory | ratio | tokens/s | ratio | val bpb after | ratio | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode, r in rows.items():
        print(
            f"| {mode} | {r['base_bytes'] / 2**20:.2f} MiB | {r['base_bytes'] / ref['base_bytes']:.2f} "
            f"| {r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / ref['tokens_per_s']:.2f} "
            f"| {r['val_bpb']:.4f} | {r['val_bpb'] / ref['val_bpb']:.3f} | {r['load']:.2f} |"
        )
    (tmp / "qlora.json").write_text(json.dumps(rows, indent=2))
    print(f"\n(raw figures in {tmp / 'qlora.json'})")


if __name__ == "__main__":
    main()
