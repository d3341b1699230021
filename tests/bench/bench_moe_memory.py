"""Activation checkpointing: memory and training throughput of each mode at two sequence
lengths (``train.activation_checkpointing``: none, blocks, moe, full).

The model is the default small config on random token batches of --batch sequences; a
training step is forward, backward, clipping, AdamW and the balance-bias update. Three figures
per row, each the median of --reps repetitions:

* saved activations (a fresh process per mode and length): the bytes of the distinct tensor storages autograd keeps for the
  backward pass after one forward (``torch.autograd.graph.saved_tensors_hooks``; parameters
  and buffers left out). A checkpointed region's own activations never reach this hook, only
  its inputs, so this is exactly what a mode stores. Deterministic.
* peak memory of a training step above the memory before it (same process). On CUDA
  ``torch.cuda.max_memory_allocated`` (after ``reset_peak_memory_stats``); on CPU the process's
  peak RSS (VmHWM in /proc/self/status, reset through /proc/self/clear_refs), with glibc told to
  serve every block of 64 KiB or more by mmap (``mallopt``), so freed tensors leave the RSS at
  once and the peak follows live tensor memory (CPU: it also includes the recomputation's
  transient buffers, gradients and AdamW's temporaries, which saved bytes do not).
* tokens/s over --steps steps, in one process per sequence length that times the modes in
  turn, round after round (after a warm-up step of each), so a change in the machine's load
  hits every mode alike; glibc keeps its heap (``GLIBC_TUNABLES`` as in bench_moe_train.py).
  Its ratio to ``none`` is the median of the per-round ratios.

Every figure is followed by its ratio to ``none`` (the reference); each row prints the
1-minute load average when its memory was measured, and the header the load around the
timing rounds (the machine is shared: read tokens/s with them).

Run: .venv/bin/python tests/bench/bench_moe_memory.py [--seq 256 1024] [--batch 8] [--reps 3]
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODES = ("none", "blocks", "moe", "full")
TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4  # glibc mallopt parameters


def saved_activation_bytes(model: Any, idx: Any, targets: Any) -> int:
    """Bytes of the distinct storages autograd saves for the backward of model(idx, targets)
    (parameters and buffers excluded); runs the backward afterwards to free them."""
    import torch

    own = {
        t.untyped_storage().data_ptr() for t in itertools.chain(model.parameters(), model.buffers())
    }
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(idx, targets)[1]["loss"]
    loss.backward()
    model.zero_grad(set_to_none=True)
    model.pop_moe_stats()
    return sum(storages.values())


def _rss_peak_reset() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": reset the peak RSS (VmHWM)
        f.write("5")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _mallopt(param: int, value: int) -> bool:
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(param, value))
    except (OSError, AttributeError):
        return False


def _setup(seq: int, batch: int, device_name: str) -> tuple[Any, Any, Any]:
    """(model, device, step function) for the default small config at this length."""
    import torch

    from workers.moe.config import ModelConfig, TrainConfig
    from workers.moe.model import MoETransformer
    from workers.moe.train import build_optimizer

    device = torch.device(
        device_name if device_name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    torch.manual_seed(0)
    model = MoETransformer(ModelConfig(block_size=seq)).to(device)
    model.train()
    opt = build_optimizer(model, TrainConfig(), device)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (batch, seq), generator=gen).to(device)
    y = torch.randint(0, 256, (batch, seq), generator=gen).to(device)

    def step() -> None:
        loss = model(x, y)[1]["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        model.update_router_bias()
        model.pop_moe_stats()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step.batch = (x, y)  # type: ignore[attr-defined]
    return model, device, step


def memory_child(mode: str, seq: int, batch: int, reps: int, device_name: str) -> dict[str, Any]:
    """Saved activation bytes and the peak memory of a step, for one mode and length."""
    import torch

    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    # RSS follows live tensors only when freed blocks go back to the system at once.
    lean = cuda or (_mallopt(M_MMAP_THRESHOLD, 64 * 1024) and _mallopt(M_TRIM_THRESHOLD, 0))
    model, device, step = _setup(seq, batch, device_name)
    model.set_activation_checkpointing(mode)
    saved = saved_activation_bytes(model, *step.batch)
    step()  # warm-up: AdamW's state, kernel selection
    peaks = []
    for _ in range(reps):
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            step()
            peaks.append(torch.cuda.max_memory_allocated(device) - before)
        else:
            before = _status_kib("VmRSS") * 1024
            _rss_peak_reset()
            step()
            peaks.append(_status_kib("VmHWM") * 1024 - before)
    return {
        "device": device.type,
        "lean_malloc": lean,
        "saved": saved,
        "peak": statistics.median(peaks),
        "peaks": peaks,
        "params": model.num_params(),
        "threads": torch.get_num_threads(),
    }


def speed_child(
    modes: list[str], seq: int, batch: int, reps: int, steps: int, device_name: str
) -> dict[str, Any]:
    """tokens/s of every mode at one length, timed round-robin (see the module docstring)."""
    model, _, step = _setup(seq, batch, device_name)
    for mode in modes:
        model.set_activation_checkpointing(mode)
        step()  # warm-up
    rounds: list[dict[str, float]] = []
    load = [os.getloadavg()[0]]
    for _ in range(reps):
        speeds = {}
        for mode in modes:
            model.set_activation_checkpointing(mode)
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            speeds[mode] = steps * batch * seq / (time.perf_counter() - t0)
        rounds.append(speeds)
        load.append(os.getloadavg()[0])
    ref = modes[0]
    return {
        "tokens_per_s": {m: statistics.median(r[m] for r in rounds) for m in modes},
        "ratio": {m: statistics.median(r[m] / r[ref] for r in rounds) for m in modes},
        "rounds": rounds,
        "load": load,
    }


def _ratio(value: float, ref: float) -> str:
    return f"{value / ref:.2f}×" if ref else "–"


def _run_child(args: argparse.Namespace, extra: list[str], env: dict[str, str]) -> Any:
    cmd = [sys.executable, __file__, *extra, "--batch", str(args.batch)]
    cmd += ["--reps", str(args.reps), "--steps", str(args.steps), "--device", args.device]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"{' '.join(extra)}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _loads() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seq", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=3, help="repetitions per figure (median)")
    p.add_argument("--steps", type=int, default=2, help="training steps per tokens/s figure")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--memory-child", nargs=2, metavar=("MODE", "SEQ"), help=argparse.SUPPRESS)
    p.add_argument("--speed-child", type=int, metavar="SEQ", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        mode, seq = args.memory_child[0], int(args.memory_child[1])
        print(json.dumps(memory_child(mode, seq, args.batch, args.reps, args.device)))
        return
    if args.speed_child:
        r = speed_child(
            args.modes, args.speed_child, args.batch, args.reps, args.steps, args.device
        )
        print(json.dumps(r))
        return
    if args.reps < 3:
        p.error("--reps must be at least 3 (figures are medians)")
    modes = ["none", *[m for m in args.modes if m != "none"]]  # none first: the reference

    t_start = time.perf_counter()
    print(
        f"Activation checkpointing, default small config, batch {args.batch}, median of "
        f"{args.reps} repetitions, load average at start {_loads()}"
    )
    plain = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    tuned = {**plain, "GLIBC_TUNABLES": TUNABLES}
    memory: dict[tuple[int, str], tuple[dict[str, Any], float]] = {}
    speed: dict[int, dict[str, Any]] = {}
    for seq in args.seq:
        for mode in modes:
            r = _run_child(args, ["--memory-child", mode, str(seq)], plain)
            memory[seq, mode] = r, os.getloadavg()[0]
        speed[seq] = _run_child(args, ["--speed-child", str(seq), "--modes", *modes], tuned)
    r0 = memory[args.seq[0], "none"][0]
    peak_name = (
        "peak CUDA allocated"
        if r0["device"] == "cuda"
        else "peak RSS" + ("" if r0["lean_malloc"] else " (glibc mallopt unavailable)")
    )
    print(f"device {r0['device']}, {r0['threads']} threads, {r0['params'] / 1e6:.2f}M parameters")
    for seq in args.seq:
        rounds = " → ".join(f"{v:.2f}" for v in speed[seq]["load"])
        print(f"timing rounds at {seq}: 1-minute load {rounds}")
    print()
    print(
        f"| seq | mode | saved activations MiB | {peak_name} of a step, MiB | tokens/s | load (memory run) |"
    )
    print("|---|---|---|---|---|---|")
    mib = 1 << 20
    for seq in args.seq:
        ref = memory[seq, "none"][0]
        for mode in modes:
            r, load = memory[seq, mode]
            tps, ratio = speed[seq]["tokens_per_s"][mode], speed[seq]["ratio"][mode]
            print(
                f"| {seq} | {mode} | {r['saved'] / mib:.1f} ({_ratio(r['saved'], ref['saved'])}) "
                f"| {r['peak'] / mib:.1f} ({_ratio(r['peak'], ref['peak'])}) "
                f"| {tps:,.0f} ({ratio:.2f}×) | {load:.2f} |"
            )
    print()
    print(f"took {time.perf_counter() - t_start:.0f} s; load average at end {_loads()}")


if __name__ == "__main__":
    main()
