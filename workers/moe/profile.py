"""Profile training steps:  python -m workers.moe.profile --config FILE --out DIR [--weights DIR]

Runs ``profile.warmup`` unprofiled steps (their wall time is the honest step time), then
``profile.steps`` steps under ``torch.profiler`` (CPU activities, plus CUDA when present) with
shapes, memory and FLOPs, and writes into ``DIR/profile/``:

    ops.json / ops.txt   operator table: calls, self / total time, FLOPs, self memory  profile_ops
                         per op ("ops"), and per op and input shapes ("ops_by_shape",
                         each row's "shapes" compact JSON such as [[8,64],[64,128]])
    stacks.folded        collapsed stacks "frame;frame;op self_us" (flamegraph.pl,      profile_stacks
                         speedscope), built from the op tree: record_function scopes
                         (train_step, moe::attention, ...) down to the innermost aten op
    trace.json           Chrome trace: open in Perfetto or chrome://tracing              profile_trace
    memory.json          allocated bytes over time (from the profiler's alloc/free       profile_memory
                         records), CPU and, with CUDA, device
    modules.json         time share by module: attention / router / dispatch /           profile_modules
                         experts / other, forward and backward together

Module attribution: the model labels its parts with ``record_function`` scopes while
profiling (``scopes.set_profile_scopes``); a forward op belongs to its innermost scope, and a
backward op to the scope of the forward op that created its autograd node (matched through
the autograd sequence number). Everything else (embedding, head, loss, optimizer) is "other".

This module is named like the standard library's ``profile``; that is harmless because
``python -m workers.moe.profile`` runs it as a package module and the package itself never
imports the stdlib one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity
from torch.profiler import profile as torch_profile

from workers.moe.checkpoint import atomic_write_text
from workers.moe.cli import main_for
from workers.moe.config import Config
from workers.moe.data import load_corpus
from workers.moe.events import EventWriter
from workers.moe.scopes import PROFILE_SCOPES, set_profile_scopes
from workers.moe.train import autocast, build_model, build_optimizer, resolve_device

CATEGORIES = (*PROFILE_SCOPES, "other")
_SCOPE_PREFIX = "moe::"


def _scope_of(ev: FunctionEvent) -> str | None:
    """The innermost moe:: scope enclosing ev (ev included), if any."""
    node: FunctionEvent | None = ev
    while node is not None:
        if node.name.startswith(_SCOPE_PREFIX):
            return node.name[len(_SCOPE_PREFIX) :]
        node = node.cpu_parent
    return None


def _backward_root(ev: FunctionEvent) -> FunctionEvent | None:
    node: FunctionEvent | None = ev
    while node is not None:
        if node.name.startswith("autograd::engine::evaluate_function"):
            return node
        node = node.cpu_parent
    return None


def module_shares(events: list[FunctionEvent]) -> dict[str, Any]:
    """Self CPU (and device) time per category; every event's self time is counted once."""
    seq_scope: dict[int, str] = {}
    for ev in events:
        if ev.sequence_nr >= 0 and _backward_root(ev) is None:
            scope = _scope_of(ev)
            if scope is not None:
                seq_scope.setdefault(ev.sequence_nr, scope)
    cpu: dict[str, float] = defaultdict(float)
    dev: dict[str, float] = defaultdict(float)
    for ev in events:
        scope = _scope_of(ev)
        if scope is None:
            root = _backward_root(ev)
            if root is not None:
                scope = seq_scope.get(root.sequence_nr)
        cat = scope if scope in PROFILE_SCOPES else "other"
        cpu[cat] += ev.self_cpu_time_total
        dev[cat] += getattr(ev, "self_device_time_total", 0.0) or 0.0
    total_cpu = sum(cpu.values()) or 1.0
    total_dev = sum(dev.values())
    out: dict[str, Any] = {
        "categories": list(CATEGORIES),
        "cpu_us": {c: cpu.get(c, 0.0) for c in CATEGORIES},
        "cpu_share": {c: cpu.get(c, 0.0) / total_cpu for c in CATEGORIES},
    }
    if total_dev > 0:
        out["device_us"] = {c: dev.get(c, 0.0) for c in CATEGORIES}
        out["device_share"] = {c: dev.get(c, 0.0) / total_dev for c in CATEGORIES}
    return out


def _frame(name: str) -> str:
    return name.replace(";", ":").replace("\n", " ").strip() or "?"


def folded_stacks(events: list[FunctionEvent]) -> list[str]:
    """Collapsed stacks: one line per distinct root→event path, weighted by self CPU µs."""
    weights: dict[str, int] = defaultdict(int)
    for ev in events:
        us = int(round(ev.self_cpu_time_total))
        if us <= 0 or ev.name == "[memory]":
            continue
        path = []
        node: FunctionEvent | None = ev
        while node is not None:
            path.append(_frame(node.name))
            node = node.cpu_parent
        weights[";".join(reversed(path))] += us
    return [f"{stack} {us}" for stack, us in sorted(weights.items())]


_OP_SUMS = (
    "calls",
    "self_cpu_us",
    "cpu_total_us",
    "self_device_us",
    "device_total_us",
    "flops",
    "self_cpu_memory_bytes",
    "self_device_memory_bytes",
)
#: The hub keeps at most this many characters of a shapes string, and its rows collapse on
#: (op, shapes): a longer one is cut shorter and given a digest so that two stay distinct.
MAX_SHAPES_CHARS = 2000


def shapes_key(input_shapes: Any) -> str:
    """The input shapes of an op as compact JSON: ``[[8,64],[64,128],[]]`` (``[]`` for a
    non-tensor input)."""
    text = json.dumps(input_shapes or [], separators=(",", ":"))
    if len(text) <= MAX_SHAPES_CHARS:
        return text
    return text[: MAX_SHAPES_CHARS - 20] + "...#" + hashlib.sha256(text.encode()).hexdigest()[:16]


def op_table_by_shape(prof: torch_profile) -> list[dict[str, Any]]:
    """One row per (op, input shapes): the profiler's averages grouped by input shape."""
    rows = []
    for avg in prof.key_averages(group_by_input_shape=True):
        rows.append(
            {
                "name": avg.key,
                "shapes": shapes_key(avg.input_shapes),
                "calls": avg.count,
                "self_cpu_us": avg.self_cpu_time_total,
                "cpu_total_us": avg.cpu_time_total,
                "self_device_us": getattr(avg, "self_device_time_total", 0.0),
                "device_total_us": getattr(avg, "device_time_total", 0.0),
                "flops": avg.flops,
                "self_cpu_memory_bytes": avg.self_cpu_memory_usage,
                "self_device_memory_bytes": getattr(avg, "self_device_memory_usage", 0),
            }
        )
    rows.sort(key=lambda r: (-r["self_cpu_us"], r["name"], r["shapes"]))
    return rows


def op_table(by_shape: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per op (the table ``ops.json`` has always had): the by-shape rows summed."""
    per_op: dict[str, dict[str, Any]] = {}
    for r in by_shape:
        acc = per_op.setdefault(r["name"], {"name": r["name"], **{k: 0 for k in _OP_SUMS}})
        for k in _OP_SUMS:
            acc[k] += r[k] or 0
    rows = list(per_op.values())
    rows.sort(key=lambda r: (-r["self_cpu_us"], r["name"]))
    return rows


def memory_timeline(events: list[FunctionEvent], max_points: int = 2000) -> dict[str, Any]:
    """Net allocated bytes over time, from each op's self allocations minus frees.

    Counts are relative to the start of profiling (memory allocated before it is invisible
    to the profiler). Time in ms from the first event."""
    recs = sorted(
        (
            (
                ev.time_range.start,
                ev.self_cpu_memory_usage,
                getattr(ev, "self_device_memory_usage", 0) or 0,
            )
            for ev in events
            if ev.self_cpu_memory_usage or getattr(ev, "self_device_memory_usage", 0)
        ),
        key=lambda r: r[0],
    )
    t0 = min((ev.time_range.start for ev in events), default=0.0)
    cpu = dev = 0
    points: list[list[float]] = []
    peak_cpu = peak_dev = 0
    for t, c, d in recs:
        cpu += c
        dev += d
        peak_cpu, peak_dev = max(peak_cpu, cpu), max(peak_dev, dev)
        points.append([round((t - t0) / 1000.0, 3), cpu, dev])
    if len(points) > max_points:  # keep the peaks when thinning: max per bucket
        step = len(points) / max_points
        thinned = []
        for i in range(max_points):
            bucket = points[int(i * step) : int((i + 1) * step)] or [points[-1]]
            thinned.append(max(bucket, key=lambda p: p[1]))
        points = thinned
    return {
        "unit": "bytes",
        "time_unit": "ms",
        "columns": ["t_ms", "cpu_bytes", "device_bytes"],
        "peak_cpu_bytes": peak_cpu,
        "peak_device_bytes": peak_dev,
        "points": points,
    }


def run(cfg: Config, out: Path, events: EventWriter, weights: Path | None) -> dict[str, Any]:
    assert cfg.profile is not None and cfg.train is not None
    p = cfg.profile
    device = resolve_device(cfg.runtime)
    model = build_model(cfg, weights, events).to(device)
    data = load_corpus(cfg.data, out, model.cfg.block_size, log=events.log)
    opt = build_optimizer(model, cfg.train, device)
    # The profile measures the step training would run, recomputation included.
    model.set_activation_checkpointing(cfg.train.activation_checkpointing)
    train = p.mode == "train"
    model.train(train)

    def step(i: int) -> None:
        x, y = data.train_batch(p.batch_size, cfg.seed, i)
        x, y = x.to(device), y.to(device)
        with torch.profiler.record_function("train_step" if train else "forward_step"):
            if train:
                with autocast(device, cfg.runtime.dtype):
                    _, losses = model(x, y)
                losses["loss"].backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                model.update_router_bias()
            else:
                with torch.no_grad(), autocast(device, cfg.runtime.dtype):
                    model(x)
            model.pop_moe_stats()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step_times = []
    for i in range(max(p.warmup, 1)):  # at least one: first-call allocations skew the profile
        t0 = time.perf_counter()
        step(i)
        step_times.append(time.perf_counter() - t0)
    events.log(f"warm-up: {len(step_times)} step(s), last {step_times[-1] * 1000:.1f} ms")

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    set_profile_scopes(True)
    t0 = time.perf_counter()
    try:
        with torch_profile(
            activities=activities,
            record_shapes=True,
            profile_memory=True,
            with_flops=True,
            with_stack=p.with_stack,
        ) as prof:
            for i in range(p.steps):
                step(len(step_times) + i)
                events.progress(i + 1, p.steps, None)
    finally:
        set_profile_scopes(False)
    profiled_s = time.perf_counter() - t0
    evs = list(prof.events())

    pdir = out / "profile"
    pdir.mkdir(parents=True, exist_ok=True)
    by_shape = op_table_by_shape(prof)
    table = op_table(by_shape)
    atomic_write_text(
        pdir / "ops.json",
        json.dumps({"steps": p.steps, "ops": table, "ops_by_shape": by_shape}, indent=1),
    )
    sort_key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    atomic_write_text(pdir / "ops.txt", prof.key_averages().table(sort_by=sort_key, row_limit=60))
    atomic_write_text(pdir / "stacks.folded", "\n".join(folded_stacks(evs)) + "\n")
    prof.export_chrome_trace(str(pdir / "trace.json"))
    memory = memory_timeline(evs)
    atomic_write_text(pdir / "memory.json", json.dumps(memory))
    shares = module_shares(evs)
    atomic_write_text(pdir / "modules.json", json.dumps(shares, indent=1))
    for name, kind in (
        ("ops.json", "profile_ops"),
        ("ops.txt", "profile_ops"),
        ("stacks.folded", "profile_stacks"),
        ("trace.json", "profile_trace"),
        ("memory.json", "profile_memory"),
        ("modules.json", "profile_modules"),
    ):
        events.artifact(f"profile/{name}", kind)

    tokens = p.batch_size * model.cfg.block_size
    flops = sum(r["flops"] for r in table)
    values = {f"profile/share/{c}": v for c, v in shares["cpu_share"].items()}
    values["profile/step_ms"] = step_times[-1] * 1000
    values["profile/tokens_per_s"] = tokens / step_times[-1]
    values["profile/flops_per_step"] = flops / p.steps
    events.metric(0, values)
    top = ", ".join(f"{r['name']} {r['self_cpu_us'] / 1000:.1f} ms" for r in table[:5])
    events.log(f"top ops by self CPU time: {top}")
    return {
        "mode": p.mode,
        "steps": p.steps,
        "step_ms_unprofiled": step_times[-1] * 1000,
        "profiled_seconds": profiled_s,
        "tokens_per_step": tokens,
        "flops_per_step": flops / p.steps,
        "module_share": shares["cpu_share"],
        "peak_cpu_bytes": memory["peak_cpu_bytes"],
        "top_ops": [r["name"] for r in table[:10]],
    }


def main() -> None:
    main_for("profile", run)


if __name__ == "__main__":
    main()
