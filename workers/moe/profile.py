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
    lifetimes.json       memory by category over time (parameter, gradient, optimizer    profile_lifetimes
                         state, activation, temporary, input, other), the peak with
                         the tensors live at it, and the longest-living / largest
                         tensors: allocated / freed (ms), bytes, operator and module
                         (``memory_lifetimes``)
    memory_snapshot.pickle  CUDA only: ``torch.cuda.memory._snapshot()`` of the         profile_memory_snapshot
                         profiled steps, for https://pytorch.org/memory_viz

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
from torch.autograd.profiler_util import EventList, FunctionEvent
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


def _parent(ev: FunctionEvent) -> FunctionEvent | None:
    """ev's enclosing op or scope, leaving out the Python frames ``with_stack`` adds."""
    node = ev.cpu_parent
    while node is not None and getattr(node, "is_python_function", False):
        node = node.cpu_parent
    return node


def _ops_only(events: list[FunctionEvent]) -> list[FunctionEvent]:
    return [ev for ev in events if not getattr(ev, "is_python_function", False)]


def _scope_of(ev: FunctionEvent) -> str | None:
    """The innermost moe:: scope enclosing ev (ev included), if any."""
    node: FunctionEvent | None = ev
    while node is not None:
        if node.name.startswith(_SCOPE_PREFIX):
            return node.name[len(_SCOPE_PREFIX) :]
        node = _parent(node)
    return None


def _backward_root(ev: FunctionEvent) -> FunctionEvent | None:
    node: FunctionEvent | None = ev
    while node is not None:
        if node.name.startswith("autograd::engine::evaluate_function"):
            return node
        node = _parent(node)
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
            node = _parent(node)
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


def _event_list(prof: torch_profile, events: list[FunctionEvent]) -> EventList:
    """``events`` (a subset of ``prof.events()``, whose parent links the profiler has already
    built) as an EventList to average and tabulate."""
    out = EventList(events, use_device=getattr(prof, "use_device", None))
    out._tree_built = True
    return out


def op_table_by_shape(prof: torch_profile) -> list[dict[str, Any]]:
    """One row per (op, input shapes): the profiler's averages grouped by input shape."""
    rows = []
    # Python frames (``with_stack``, which the memory profile needs) are not operators.
    ops = _event_list(prof, _ops_only(list(prof.events())))
    for avg in ops.key_averages(group_by_input_shapes=True):
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


#: Memory categories of ``lifetimes.json``, in stacking order (the profiler's own names, lower
#: case; "other" holds autograd internals and tensors it could not classify).
MEMORY_CATEGORIES = (
    "parameter",
    "gradient",
    "optimizer_state",
    "activation",
    "temporary",
    "input",
    "other",
)
#: ``lifetimes.json`` keeps at most this many tensors of each list (longest-living, largest,
#: live at the peak) and this many timeline points; the hub caps again when it serves them
#: (HUB_PROFILE_MEMORY_MAX_TENSORS / _POINTS in hub/common/limits.py).
MAX_LIFETIME_TENSORS = 300
MAX_TIMELINE_POINTS = 1500


def _category_name(cat: Any) -> str:
    name = getattr(cat, "name", None)
    name = name.lower() if isinstance(name, str) else ""
    return name if name in MEMORY_CATEGORIES else "other"


def _thin_max(points: list[list[Any]], total: Any, max_points: int) -> list[list[Any]]:
    """At most ``max_points`` points: per bucket the one with the largest ``total`` (so the
    peak always survives the thinning)."""
    if len(points) <= max_points:
        return points
    step = len(points) / max_points
    out = []
    for i in range(max_points):
        bucket = points[int(i * step) : int((i + 1) * step)] or [points[-1]]
        out.append(max(bucket, key=total))
    return out


def memory_lifetimes(
    prof: torch_profile,
    model: torch.nn.Module | None = None,
    max_tensors: int = MAX_LIFETIME_TENSORS,
    max_points: int = MAX_TIMELINE_POINTS,
) -> dict[str, Any]:
    """Tensor lifetimes and memory by category from the profiler's memory profile.

    ``prof._memory_profile()`` (torch.profiler._memory_profiler) replays the profiler's
    allocation records and the autograd graph: each storage (a ``TensorKey``) gets its
    create / destroy time and, per version, a category (parameter, gradient, optimizer state,
    activation, temporary, input). Tensors that existed before profiling started are
    "preexisting": their allocation time is ``None`` (the parameters, the optimizer's state);
    those still alive at the end have ``free_ms`` ``None``. The allocating operator is the
    innermost aten op above the allocation record, the module the innermost ``nn.Module``
    call (``with_modules``; its dotted path in ``model``) or, failing that, the innermost
    ``moe::`` ``record_function`` scope. Times are ms from the first memory event; sizes are
    bytes as the allocator saw them. Needs ``profile_memory``, ``record_shapes`` and
    ``with_stack`` (or ``with_modules``)."""
    from torch._C._profiler import _EventType
    from torch.profiler._memory_profiler import Action, TensorKey

    mp = prof._memory_profile()
    paths = {id(m): name or "model" for name, m in model.named_modules()} if model else {}

    origin: dict[Any, tuple[str | None, str | None]] = {}
    for node in mp._op_tree.sorted_nodes:
        if node.typed[0] != _EventType.Allocation or node.typed[1].alloc_size <= 0:
            continue
        key = TensorKey.from_allocation(node.typed[1])
        if key is None or key in origin:
            continue
        op = mod = scope = None
        parent = node.parent
        while parent is not None and (op is None or mod is None):
            kind = parent.typed[0]
            if kind == _EventType.TorchOp:
                if parent.name.startswith(_SCOPE_PREFIX):
                    scope = scope or parent.name[len(_SCOPE_PREFIX) :]
                elif op is None and parent.name.startswith("aten::"):
                    op = parent.name
            elif kind == _EventType.PyCall and mod is None:
                info = parent.typed[1].module
                if info is not None:
                    mod = paths.get(info.self_ptr) or info.cls_name
            parent = parent.parent
        origin[key] = (op, mod or scope)

    timeline = mp.timeline
    times = [t for t, *_ in timeline if t >= 0]
    t0 = min(times, default=0)
    device = "cpu"
    if any(k.device.type == "cuda" for _, _, (k, _), _ in timeline):
        device = "cuda"

    def ms(t: int) -> float:
        return round((t - t0) / 1e6, 4)

    live: dict[Any, dict[str, Any]] = {}
    done: list[dict[str, Any]] = []
    by_cat = dict.fromkeys(MEMORY_CATEGORIES, 0)
    points: list[list[Any]] = []
    peak_total, peak_t = -1, 0.0
    counter = 0
    for t, action, (key, version), size in timeline:
        if key.device.type != device:
            continue
        cat = _category_name(mp._categories.get(key, version))
        now = ms(max(t, t0))
        if action in (Action.PREEXISTING, Action.CREATE):
            if key in live:  # a storage seen again: close the old record first
                done.append(live.pop(key))
            op, mod = origin.get(key, (None, None))
            counter += 1
            live[key] = {
                "id": counter,
                "category": cat,
                "bytes": int(size),
                "alloc_ms": None if action == Action.PREEXISTING else now,
                "free_ms": None,
                "op": op,
                "module": mod,
            }
            by_cat[cat] += int(size)
        elif action == Action.INCREMENT_VERSION and key in live:
            rec = live[key]
            if cat != rec["category"] and cat != "other":
                by_cat[rec["category"]] -= rec["bytes"]
                by_cat[cat] += rec["bytes"]
                rec["category"] = cat
        elif action == Action.DESTROY and key in live:
            rec = live.pop(key)
            rec["free_ms"] = now
            by_cat[rec["category"]] -= rec["bytes"]
            done.append(rec)
        else:
            continue
        total = sum(by_cat.values())
        row = [now, *(by_cat[c] for c in MEMORY_CATEGORIES)]
        if points and points[-1][0] == now:
            points[-1] = row
        else:
            points.append(row)
        if total > peak_total:
            peak_total, peak_t = total, now
    tensors = done + list(live.values())
    end_ms = max((p[0] for p in points), default=0.0)

    def life(r: dict[str, Any]) -> float:
        start = 0.0 if r["alloc_ms"] is None else r["alloc_ms"]
        return (end_ms if r["free_ms"] is None else r["free_ms"]) - start

    def live_at(r: dict[str, Any], t: float) -> bool:
        return (r["alloc_ms"] is None or r["alloc_ms"] <= t) and (
            r["free_ms"] is None or r["free_ms"] > t
        )

    at_peak = sorted((r for r in tensors if live_at(r, peak_t)), key=lambda r: -r["bytes"])
    peak_row = next((p for p in points if p[0] == peak_t), None) or [peak_t] + [0] * len(
        MEMORY_CATEGORIES
    )
    longest = sorted(tensors, key=lambda r: (-life(r), -r["bytes"]))[:max_tensors]
    largest = sorted(tensors, key=lambda r: (-r["bytes"], -life(r)))[:max_tensors]
    kept = {r["id"]: r for r in longest + largest + at_peak[:max_tensors]}
    return {
        "device": device,
        "time_unit": "ms",
        "unit": "bytes",
        "categories": list(MEMORY_CATEGORIES),
        "columns": ["t_ms", *MEMORY_CATEGORIES],
        "points": _thin_max(points, lambda p: sum(p[1:]), max_points),
        "duration_ms": end_ms,
        "peak": {
            "t_ms": peak_t,
            "bytes": max(peak_total, 0),
            "by_category": dict(zip(MEMORY_CATEGORIES, peak_row[1:], strict=True)),
            "live_count": len(at_peak),
            "live": [r["id"] for r in at_peak[:max_tensors]],
        },
        "tensor_count": len(tensors),
        "tensors": sorted(kept.values(), key=lambda r: r["id"]),
        "longest": [r["id"] for r in longest],
        "largest": [r["id"] for r in largest],
    }


def cuda_memory_history(on: bool) -> bool:
    """Start (or stop) the CUDA caching allocator's history: every alloc / free with its stack,
    the data of ``torch.cuda.memory._snapshot()``. False where there is no CUDA device (the
    CPU profile relies on the profiler's records alone) or the API is missing."""
    if not torch.cuda.is_available():
        return False
    record = getattr(torch.cuda.memory, "_record_memory_history", None)
    if record is None:
        return False
    record(enabled="all" if on else None, max_entries=100_000)
    return True


def cuda_memory_snapshot() -> dict[str, Any] | None:
    """The CUDA allocator snapshot (for https://pytorch.org/memory_viz), or None without CUDA."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.memory._snapshot()


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
    cuda_history = device.type == "cuda" and cuda_memory_history(True)
    t0 = time.perf_counter()
    try:
        with torch_profile(
            activities=activities,
            record_shapes=True,
            profile_memory=True,
            with_flops=True,
            with_stack=p.with_stack or p.lifetimes,
            with_modules=True,  # the module that allocated each tensor (lifetimes.json)
        ) as prof:
            for i in range(p.steps):
                step(len(step_times) + i)
                events.progress(i + 1, p.steps, None)
        snapshot = cuda_memory_snapshot() if cuda_history else None
    finally:
        set_profile_scopes(False)
        if cuda_history:
            cuda_memory_history(False)
    profiled_s = time.perf_counter() - t0
    evs = _ops_only(list(prof.events()))

    pdir = out / "profile"
    pdir.mkdir(parents=True, exist_ok=True)
    by_shape = op_table_by_shape(prof)
    table = op_table(by_shape)
    atomic_write_text(
        pdir / "ops.json",
        json.dumps({"steps": p.steps, "ops": table, "ops_by_shape": by_shape}, indent=1),
    )
    sort_key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    atomic_write_text(
        pdir / "ops.txt",
        _event_list(prof, evs).key_averages().table(sort_by=sort_key, row_limit=60),
    )
    atomic_write_text(pdir / "stacks.folded", "\n".join(folded_stacks(evs)) + "\n")
    prof.export_chrome_trace(str(pdir / "trace.json"))
    memory = memory_timeline(evs)
    atomic_write_text(pdir / "memory.json", json.dumps(memory))
    shares = module_shares(evs)
    atomic_write_text(pdir / "modules.json", json.dumps(shares, indent=1))
    produced = []
    try:
        lifetimes = memory_lifetimes(prof, model) if p.lifetimes else None
    except Exception as e:  # a private torch API: the rest of the profile stands without it
        events.log(f"no tensor lifetimes: the profiler's memory profile failed: {e!r}")
        lifetimes = None
    if lifetimes is not None:
        atomic_write_text(pdir / "lifetimes.json", json.dumps(lifetimes))
        produced.append(("lifetimes.json", "profile_lifetimes"))
        peak_mib = lifetimes["peak"]["bytes"] / 2**20
        events.log(
            f"memory: {lifetimes['tensor_count']} tensors, peak {peak_mib:.1f} MiB at "
            f"{lifetimes['peak']['t_ms']:.1f} ms"
        )
    if snapshot is not None:
        import pickle

        (pdir / "memory_snapshot.pickle").write_bytes(pickle.dumps(snapshot))
        produced.append(("memory_snapshot.pickle", "profile_memory_snapshot"))
    for name, kind in (
        ("ops.json", "profile_ops"),
        ("ops.txt", "profile_ops"),
        ("stacks.folded", "profile_stacks"),
        ("trace.json", "profile_trace"),
        ("memory.json", "profile_memory"),
        ("modules.json", "profile_modules"),
        *produced,
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
