"""Differential-privacy training: what it costs and what it buys.

1. **Cost** (``--cost``, default config's shape unless --small): one training step of the plain
   loop (sorted dispatch, one backward for the batch) against one DP-SGD step (dense-masked
   MoE under ``vmap``, per-example gradients, clipping, noise), same batch size and length.
   tokens/s (median of --reps steps after a warm-up step) and the peak RSS a step adds
   (VmHWM after resetting it through /proc/self/clear_refs, minus the RSS before the step);
   the per-example gradients alone are B × parameters × 4 bytes.
2. **Audit** (Carlini et al. 2019, "The Secret Sharer"; tests/moe/dp_audit.py): --canaries
   random --digits-digit secrets inserted --repeats times each into ~--base-bytes of training
   text; a plain run and one DP run per ε in --epsilons, all of --steps steps, same
   hyper-parameters. Per run: exposure of each canary (log2 10^digits − log2 rank over the
   whole space of 10^digits strings: ≈1.44 bits on average for a model that learnt nothing
   of it, log2 10^digits when memorised), its mean and max, validation bits per byte, the ε
   spent and σ. Each figure is printed beside the plain run's, as a ratio. One run per
   setting (the spread is across canaries; training is not repeated).

The 1-minute load average is printed with each measurement (2 shared cores: read times with it).

Run: .venv/bin/python tests/bench/bench_dp_audit.py [--steps 120] [--epsilons 8,1] [--reps 3]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"


def reexec_with_tunables() -> None:
    if os.environ.get("GLIBC_TUNABLES") != TUNABLES:
        os.environ["GLIBC_TUNABLES"] = TUNABLES
        os.execv(sys.executable, [sys.executable, *sys.argv])


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cost(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from workers.moe import dp
    from workers.moe.config import DPConfig, ModelConfig, TrainConfig
    from workers.moe.model import MoETransformer

    torch.manual_seed(0)
    cfg = ModelConfig() if not args.small else ModelConfig(block_size=64, n_embd=64, n_head=2)
    m = MoETransformer(cfg)
    B, T = args.batch, cfg.block_size
    n_params = sum(p.numel() for p in dp.trainable(m).values())

    class Data:  # random tokens: the cost does not depend on the text
        block_size = T
        train = np.random.default_rng(0).integers(0, 256, 4096 * (T + 1)).astype(np.uint16)

        def _windows(self, arr, starts):
            buf = np.stack([arr[s : s + T + 1] for s in starts]).astype(np.int64)
            t = torch.from_numpy(buf)
            return t[:, :-1], t[:, 1:]

    data = Data()
    x, y = dp.examples(data, np.arange(B))
    plan = dp.plan_dp(DPConfig(noise_multiplier=1.0), TrainConfig(batch_size=B), 4096)
    # a fixed batch of exactly B examples for the timing (q·N = B on average)
    plan.sample_rate = 1.0 - 1e-12

    class Fixed(dp.DPSGD):
        def step(self):  # type: ignore[override]
            g, loss, *_ = dp.per_sample_grads(self.model, x, y)
            summed, _ = dp.clip_and_sum(g, plan.max_grad_norm)
            for n, p in dp.trainable(self.model).items():
                p.grad = (summed[n] + torch.randn_like(p)) / B
            return {}

    stepper = Fixed(m, plan, data, B, torch.device("cpu"))

    def plain() -> None:
        m.zero_grad(set_to_none=True)
        m(x, y)[1]["loss"].backward()
        m.pop_moe_stats()

    def private() -> None:
        stepper.step()

    print(
        f"\n## cost: {n_params / 1e6:.2f}M parameters, batch {B} × {T} tokens, "
        f"{torch.get_num_threads()} threads"
    )
    modes = (("plain", plain), ("DP-SGD", private))
    # tokens/s: the modes in turn, round after round (a change of load hits both alike), glibc
    # keeping its heap; the ratio is the median of the per-round ratios
    for _, fn in modes:
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name, _ in modes}
    loads = []
    for _ in range(args.reps):
        for name, fn in modes:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        loads.append(load())
    # peak RSS: glibc now serves every block ≥ 64 KiB by mmap and trims at once, so the RSS
    # follows live tensors (bench_moe_memory.py does the same)
    libc = ctypes.CDLL("libc.so.6")
    lean = all(libc.mallopt(p, v) for p, v in ((-4, 1 << 20), (-3, 64 * 1024), (-1, 0)))
    peaks: dict[str, list[float]] = {name: [] for name, _ in modes}
    for name, fn in modes:
        for _ in range(args.reps):
            libc.malloc_trim(0)  # what the timing phase freed leaves the RSS
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
            before = _rss_kib("VmRSS")
            fn()
            peaks[name].append((_rss_kib("VmHWM") - before) / 1024)
    print(
        f"| step | tokens/s | ratio | peak RSS of a step, MiB{'' if lean else ' (mallopt failed)'} | ratio |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, _ in modes:
        tps = B * T / statistics.median(times[name])
        ratio = statistics.median([a / b for a, b in zip(times["plain"], times[name], strict=True)])
        peak, ref = statistics.median(peaks[name]), statistics.median(peaks["plain"])
        print(f"| {name} | {tps:,.0f} | {ratio:.3f} | {peak:.1f} | {peak / max(ref, 1e-9):.2f} |")
    print(f"1-minute load per timing round: {' → '.join(loads)}")
    print(
        f"per-example gradients: {B} × {n_params:,} × 4 B = {B * n_params * 4 / 2**20:.1f} MiB "
        f"(chunked by train.batch_size)"
    )


def audit(args: argparse.Namespace) -> None:
    import torch

    from tests.moe import dp_audit

    torch.set_num_threads(2)
    root = Path(tempfile.mkdtemp(prefix="bench-dp-audit-"))
    corpus = dp_audit.write_corpus(
        root / "corpus",
        base_bytes=args.base_bytes,
        n_canaries=args.canaries,
        repeats=args.repeats,
        digits=args.digits,
        seed=args.seed,
    )
    model = dp_audit.AUDIT_MODEL
    dp_audit.check_canaries_in_training_split(corpus, root / "check", model["block_size"])
    train = dict(dp_audit.AUDIT_TRAIN, steps=args.steps)
    space = 10**args.digits
    print(
        f"\n## audit: {args.canaries} canaries of {args.digits} digits × {args.repeats} copies "
        f"in {args.base_bytes:,} bytes; {args.steps} steps × {train['batch_size']} × "
        f"{model['block_size']} tokens; candidate space {space:,} (exposure ≤ "
        f"{dp_audit.math.log2(space):.1f} bits; ≈1.44 for an unlearnt canary)"
    )
    print(
        "| run | ε spent | σ | exposure mean | ratio | exposure max | ratio | val bpb | ratio | "
        "seconds | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ref: dict[str, float] = {}
    runs = [("plain", None)] + [(f"DP ε={e}", float(e)) for e in args.epsilons.split(",")]
    for name, eps in runs:
        extra = {"dp": {"epsilon": eps}} if eps is not None else {}
        t0 = time.perf_counter()
        m, summary = dp_audit.train(
            corpus, root / name.replace(" ", "_"), model=model, train_cfg={**train, **extra}
        )
        seconds = time.perf_counter() - t0
        ex = dp_audit.exposures(m, corpus.canaries)
        mean, mx, bpb = statistics.mean(ex), max(ex), summary["val_bpb"]
        ref.setdefault("mean", mean)
        ref.setdefault("max", mx)
        ref.setdefault("bpb", bpb)
        d = summary.get("dp") or {}
        print(
            f"| {name} | {d.get('epsilon', float('inf')):.3g} | "
            f"{d.get('noise_multiplier', 0):.3g} | {mean:.2f} | {mean / ref['mean']:.2f} | "
            f"{mx:.2f} | {mx / ref['max']:.2f} | {bpb:.3f} | {bpb / ref['bpb']:.3f} | "
            f"{seconds:.0f} | {load()} |",
            flush=True,
        )
        print(f"  per canary: {' '.join(f'{e:.1f}' for e in ex)}", flush=True)


def main() -> None:
    reexec_with_tunables()
    warnings.simplefilter("ignore")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--epsilons", default="8,1")
    p.add_argument("--canaries", type=int, default=6)
    p.add_argument("--repeats", type=int, default=25)
    p.add_argument("--digits", type=int, default=4)
    p.add_argument("--base-bytes", type=int, default=40_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--small", action="store_true", help="cost on a small model")
    p.add_argument("--no-cost", action="store_true")
    p.add_argument("--no-audit", action="store_true")
    args = p.parse_args()
    print(f"# DP-SGD cost and canary audit (load {load()})")
    if not args.no_cost:
        cost(args)
    if not args.no_audit:
        audit(args)


if __name__ == "__main__":
    main()
