"""End-to-end training throughput of the default small config: tokens/s and model FLOP
utilisation (MFU), fp32 and bf16 autocast.

MFU = model FLOPs per token (6·N_active + 12·L·C·T, PaLM) × tokens/s ÷ the peak matmul rate
measured here on a 2048³ matmul in the same dtype (this CPU has no datasheet peak that torch
reaches; the measured one is the honest ceiling). The first --skip steps (allocator and
oneDNN kernel warm-up) are excluded.

Run: .venv/bin/python tests/bench/bench_moe_train.py [--steps 80] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"


def reexec_with_tunables() -> None:
    """glibc malloc otherwise unmaps and re-faults big blocks every step (fp32 +10-25%)."""
    if os.environ.get("GLIBC_TUNABLES") != TUNABLES and "--no-tunables" not in sys.argv:
        os.environ["GLIBC_TUNABLES"] = TUNABLES
        os.execv(sys.executable, [sys.executable, *sys.argv])


def peak_matmul_flops(dtype: object, n: int = 2048, reps: int = 5) -> float:
    import torch

    a = torch.randn(n, n, dtype=dtype)  # type: ignore[arg-type]
    b = torch.randn(n, n, dtype=dtype)  # type: ignore[arg-type]
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def measure(dtype: str, steps: int, skip: int, cache: str, tmp: Path) -> dict[str, float]:
    from workers.moe.config import default_config, validate_config
    from workers.moe.events import EventWriter
    from workers.moe.train import run

    raw = default_config("train")
    raw["runtime"]["dtype"] = dtype
    raw["data"].update({"max_bytes": 4_000_000, "cache_dir": cache})
    raw["train"].update(
        {
            "steps": steps,
            "warmup_steps": 10,
            "log_every": 10,
            "eval_every": 0,
            "eval_tokens": 4096,
            "checkpoint_every": 500,
        }
    )
    cfg, errors = validate_config("train", raw)
    assert cfg is not None, errors
    events_path = tmp / f"{dtype}.jsonl"
    fd = os.open(events_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        summary = run(cfg, tmp / dtype, EventWriter(fd), None)
    finally:
        os.close(fd)
    tokens = seconds = 0.0
    per_window = cfg.train.log_every * cfg.train.batch_size * cfg.model.block_size
    for line in events_path.read_text().splitlines():
        e = json.loads(line)
        if e["type"] == "metric" and "tokens_per_s" in e["values"] and e["step"] > skip:
            tokens += per_window
            seconds += per_window / e["values"]["tokens_per_s"]
    return {
        "tokens_per_s": tokens / seconds,
        "flops_per_token": summary["flops_per_token"],
        "params": summary["params"],
        "active": summary["active_params"],
    }


def main() -> None:
    reexec_with_tunables()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--skip", type=int, default=20, help="warm-up steps left out")
    p.add_argument("--quick", action="store_true", help="40 steps")
    p.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "moe-bench-corpus"))
    p.add_argument("--no-tunables", action="store_true")
    args = p.parse_args()
    steps = 40 if args.quick else args.steps

    import torch

    print(
        f"End-to-end training, default small config, {torch.get_num_threads()} threads, "
        f"{steps} steps (first {args.skip} excluded), GLIBC_TUNABLES="
        f"{'set' if os.environ.get('GLIBC_TUNABLES') else 'unset'}"
    )
    print()
    print("| dtype | tokens/s | model GFLOP/s | peak matmul GFLOP/s (measured) | MFU |")
    print("|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="moe-train-bench-"))
    for dtype, tdt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        r = measure(dtype, steps, args.skip, args.cache_dir, tmp)
        peak = peak_matmul_flops(tdt)
        model = r["tokens_per_s"] * r["flops_per_token"]
        print(
            f"| {dtype} | {r['tokens_per_s']:,.0f} | {model / 1e9:.1f} | {peak / 1e9:.0f} | "
            f"{model / peak:.1%} |",
            flush=True,
        )
    print()
    print(
        f"model: {r['params'] / 1e6:.2f}M parameters, {r['active'] / 1e6:.2f}M active, "
        f"{r['flops_per_token'] / 1e6:.2f} MFLOP per token (training)"
    )


if __name__ == "__main__":
    main()
