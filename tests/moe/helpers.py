"""Shared helpers for the MoE tests: tiny configs, a small corpus, running entry points
in-process with their event stream captured."""

from __future__ import annotations

import json
import os
import sysconfig
from pathlib import Path
from typing import Any

from workers.moe.cli import RunFn, run_cli
from workers.moe.events import validate_event

TINY_MODEL = {
    "block_size": 64,
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 64,
    "n_dense_layers": 1,
    "dense_hidden": 128,
    "n_experts": 8,
    "expert_hidden": 32,
    "shared_hidden": 32,
    "top_k": 2,
}


# Ordinary library code with many mid-sized modules, so a 5% validation split by document is
# representative (a few huge generated files dominate a small random slice of the stdlib).
STDLIB = Path(sysconfig.get_paths()["stdlib"])
SMALL_CORPUS = [str(STDLIB / d) for d in ("email", "json", "http", "logging", "concurrent")]


def tiny_data(cache_dir: Path | str) -> dict[str, Any]:
    return {"paths": SMALL_CORPUS, "max_bytes": 400_000, "cache_dir": str(cache_dir)}


def tiny_config(cache_dir: Path | str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A train-kind config small enough for a unit test, on ~400 kB of stdlib packages."""
    cfg: dict[str, Any] = {
        "seed": 0,
        "model": dict(TINY_MODEL),
        "data": tiny_data(cache_dir),
        "train": {
            "steps": 10,
            "batch_size": 8,
            "warmup_steps": 2,
            "eval_every": 0,
            "eval_tokens": 4096,
            "log_every": 5,
            "checkpoint_every": 5,
        },
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def run_entry(
    kind: str,
    run: RunFn,
    tmp: Path,
    config: dict[str, Any] | None,
    out: Path,
    extra: list[str] | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """Run an entry point in-process; returns (exit code, parsed events), checking every
    event line against the schema on the way."""
    args = ["--out", str(out)]
    if config is not None:
        cfg_path = tmp / f"{kind}-{len(list(tmp.glob('*.json')))}.json"
        cfg_path.write_text(json.dumps(config))
        args += ["--config", str(cfg_path)]
    events_path = tmp / f"events-{os.getpid()}-{len(list(tmp.glob('events-*')))}.jsonl"
    fd = os.open(events_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        code = run_cli(kind, run, args + ["--event-fd", str(fd)] + (extra or []))
    finally:
        os.close(fd)
    events = parse_events(events_path.read_text())
    return code, events


def parse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for i, line in enumerate(text.splitlines()):
        assert len(line.encode()) < 64 * 1024, f"event line {i} is over 64 KiB"
        obj = json.loads(line)
        assert validate_event(obj) == [], (validate_event(obj), obj)
        events.append(obj)
    assert [e["seq"] for e in events] == list(range(len(events)))
    return events


def by_type(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


def losses_by_step(events: list[dict[str, Any]]) -> dict[int, float]:
    return {
        e["step"]: e["values"]["loss"] for e in by_type(events, "metric") if "loss" in e["values"]
    }
