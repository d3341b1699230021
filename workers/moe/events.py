"""The event stream: the only channel out of the sandbox.

Every entry point writes JSON lines to a file descriptor (``--event-fd``, default 1). Each
line is one object with ``type``, ``seq`` (0, 1, 2, ... per process) and ``time`` (unix seconds)
plus the fields of its type:

    metric    {"step": int, "values": {name: float | null}}
    log       {"level": "debug"|"info"|"warning"|"error", "message": str}
    progress  {"step": int, "total": int, "eta_s": float | null}
    artifact  {"path": str (relative to --out), "kind": one of ARTIFACT_KINDS}
    config    {"params": {...}}  the job's full resolved config (defaults applied, the model
              from the base weights' config.json when there are weights), sent once, before
              the work starts; the supervisor records it as the run's params
    done      {"summary": {...}}
    alert     {"kind": one of ALERT_KINDS, "step": int, "key": str, "message": str,
              "details": {...}, "action": "none"|"stop"|"checkpoint_stop"}  a MoE health
              alert (hub/shared/moe_health.py); with an action other than none the job stops
    error     {"message": str, "details": any}

Lines stay under ``MAX_LINE_BYTES`` (64 KiB): a metric event with many values (per-expert
loads of a large model) is split into several metric events for the same step, and long log
messages or error details are truncated. Non-finite metric values are sent as null. See
workers/moe/README.md for the metric names.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from typing import Any

from hub.shared.moe_health import ACTIONS as ALERT_ACTIONS
from hub.shared.moe_health import ALERT_KINDS

EVENT_TYPES = ("metric", "log", "progress", "artifact", "config", "done", "error", "alert")
ARTIFACT_KINDS = (
    "weights",
    "config",
    "checkpoint",
    "adapter",
    "profile_ops",
    "profile_stacks",
    "profile_trace",
    "profile_memory",
    "profile_modules",
    "profile_lifetimes",
    "profile_memory_snapshot",
    "eval",
    "samples",
    "inspect_graph",
    "inspect_onnx",
)
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_LINE_BYTES = 64 * 1024
_TRUNCATED = "…[truncated]"


def _finite(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


#: fd -> the seq the next EventWriter on it starts from (see EventWriter.hand_over).
_HANDED_OVER: dict[int, int] = {}


class EventWriter:
    """Writes one JSON object per line to ``fd`` and flushes it (a raw ``os.write``: no
    Python buffering can hold an event back). Thread-safe; ``seq`` increases by one per line."""

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        # The launcher (workers/launch.py) may have written the first lines on this fd in
        # this process: carry on from its seq so that the stream has no repeat and no gap.
        self._seq = _HANDED_OVER.pop(fd, 0)
        self._lock = threading.Lock()

    def hand_over(self) -> None:
        """Let the next EventWriter created on this fd in this process continue this one's
        ``seq`` (stop writing with this one)."""
        with self._lock:
            _HANDED_OVER[self.fd] = self._seq

    # ---- the seven event types ----

    def metric(self, step: int, values: dict[str, float]) -> None:
        clean = {str(k): _finite(v) for k, v in values.items()}
        # Split greedily into lines that fit; every line carries the same step.
        chunk: dict[str, float | None] = {}
        size = 0
        budget = MAX_LINE_BYTES - 256  # envelope: type, seq, time, step
        for k, v in clean.items():
            item = len(json.dumps({k: v})) + 2
            if chunk and size + item > budget:
                self._emit("metric", {"step": int(step), "values": chunk})
                chunk, size = {}, 0
            chunk[k] = v
            size += item
        if chunk or not clean:
            self._emit("metric", {"step": int(step), "values": chunk})

    def log(self, message: str, level: str = "info") -> None:
        if level not in LOG_LEVELS:
            level = "info"
        self._emit("log", {"level": level, "message": _clip(str(message), MAX_LINE_BYTES // 2)})

    def progress(self, step: int, total: int, eta_s: float | None) -> None:
        eta = None if eta_s is None else _finite(round(eta_s, 3))
        self._emit("progress", {"step": int(step), "total": int(total), "eta_s": eta})

    def artifact(self, path: str, kind: str) -> None:
        if kind not in ARTIFACT_KINDS:
            raise ValueError(f"unknown artifact kind {kind!r}")
        if os.path.isabs(path) or ".." in path.split("/"):
            raise ValueError(f"artifact path must be relative to --out: {path!r}")
        self._emit("artifact", {"path": path, "kind": kind})

    def config(self, params: dict[str, Any]) -> None:
        self._emit("config", {"params": params})

    def done(self, summary: dict[str, Any]) -> None:
        self._emit("done", {"summary": summary})

    def error(self, message: str, details: Any = None) -> None:
        self._emit("error", {"message": _clip(str(message), 8192), "details": details})

    def alert(
        self, kind: str, step: int, key: str, message: str, details: dict, action: str = "none"
    ) -> None:
        if kind not in ALERT_KINDS or action not in ALERT_ACTIONS:
            raise ValueError(f"unknown alert kind {kind!r} or action {action!r}")
        self._emit(
            "alert",
            {
                "kind": kind,
                "step": int(step),
                "key": _clip(str(key), 200),
                "message": _clip(str(message), 2000),
                "details": details,
                "action": action,
            },
        )

    # ---- plumbing ----

    def _emit(self, type_: str, payload: dict[str, Any]) -> None:
        with self._lock:
            obj = {"type": type_, "seq": self._seq, "time": round(time.time(), 6), **payload}
            line = json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str)
            if len(line.encode()) >= MAX_LINE_BYTES:
                line = _shrink(obj)
            data = (line + "\n").encode()
            view = memoryview(data)
            while view:  # a pipe may take a long line in pieces
                view = view[os.write(self.fd, view) :]
            self._seq += 1


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _shrink(obj: dict[str, Any]) -> str:
    """Last resort for an oversized line: replace the bulky fields by truncated text."""
    for key in ("details", "summary", "message"):
        if key in obj:
            text = _clip(json.dumps(obj[key], default=str), MAX_LINE_BYTES // 4)
            obj[key] = {"truncated": text} if key == "summary" else text
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str)


def validate_event(obj: Any) -> list[str]:
    """Problems with one parsed event line (empty when it follows the schema). The supervisor
    uses this to drop malformed lines from a sandboxed job instead of trusting them."""
    if not isinstance(obj, dict):
        return ["event must be a JSON object"]
    problems = []
    t = obj.get("type")
    if t not in EVENT_TYPES:
        return [f"type must be one of {', '.join(EVENT_TYPES)}"]
    if not isinstance(obj.get("seq"), int) or obj["seq"] < 0:
        problems.append("seq must be a non-negative integer")
    if not isinstance(obj.get("time"), int | float):
        problems.append("time must be a number")

    def need(key: str, check: Any, what: str) -> None:
        if key not in obj or not check(obj[key]):
            problems.append(f"{t}.{key} must be {what}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if t == "metric":
        need("step", is_int, "an integer")
        need(
            "values",
            lambda v: (
                isinstance(v, dict)
                and all(
                    isinstance(k, str)
                    and (x is None or (isinstance(x, int | float) and not isinstance(x, bool)))
                    for k, x in v.items()
                )
            ),
            "an object of numbers",
        )
    elif t == "log":
        need("level", lambda v: v in LOG_LEVELS, f"one of {', '.join(LOG_LEVELS)}")
        need("message", lambda v: isinstance(v, str), "a string")
    elif t == "progress":
        need("step", is_int, "an integer")
        need("total", is_int, "an integer")
        need("eta_s", lambda v: v is None or isinstance(v, int | float), "a number or null")
    elif t == "artifact":
        need(
            "path",
            lambda v: (
                isinstance(v, str) and v and not os.path.isabs(v) and ".." not in v.split("/")
            ),
            "a relative path inside --out",
        )
        need("kind", lambda v: v in ARTIFACT_KINDS, f"one of {', '.join(ARTIFACT_KINDS)}")
    elif t == "config":
        need("params", lambda v: isinstance(v, dict), "an object")
    elif t == "done":
        need("summary", lambda v: isinstance(v, dict), "an object")
    elif t == "error":
        need("message", lambda v: isinstance(v, str), "a string")
    elif t == "alert":
        need("kind", lambda v: v in ALERT_KINDS, f"one of {', '.join(ALERT_KINDS)}")
        need("step", is_int, "an integer")
        need("key", lambda v: isinstance(v, str) and len(v) <= 200, "a string of ≤ 200 chars")
        need("message", lambda v: isinstance(v, str), "a string")
        need("details", lambda v: isinstance(v, dict), "an object")
        need("action", lambda v: v in ALERT_ACTIONS, f"one of {', '.join(ALERT_ACTIONS)}")
    return problems
