"""The inference engine: the long-lived process inside the sandbox.

    python -m workers.inference.engine --models /models --control /ctl/engine.sock \\
           --event-fd 3 --cache-bytes N [--device cpu|cuda]

It reads requests, one JSON object per line, from the Unix socket its supervisor listens on
(``--control``: the supervisor's, in a read-only folder; the engine can only connect to it),
and writes events, one JSON object per line, to the event descriptor (the sandbox's event
pipe, read by the supervisor with the usual line limits). It never touches the network (the
sandbox has none), never sees a credential, and reads weights from ``--models/<commit>/``,
a read-only folder the supervisor fills.

Requests (from the supervisor)::

    {"op": "generate", "id", "commit", "prompt", "params", "watermark": dict | None,
     "wall_time_s"}
    {"op": "cancel", "id"}            stops that generation at its next token
    {"op": "inspect_attention" | "routing_probe", "id", "commit", ...}   see ``Engine.inspect``

Events (to the supervisor), each with the request's id as ``rid`` (``id`` is a token's)::

    {"type": "ready"}                                  once, when the engine is listening
    {"rid", "type": "start", "cold": bool, "load_s"}   the model is loaded (cold: just now)
    {"rid", "type": "token" | "text" | "done", ...}    see ``workers.moe.generate.stream``
    {"rid", "type": "error", "code", "message"}

Loaded models are kept in an LRU bounded by ``--cache-bytes`` (parameters and buffers): a
warm commit starts at once, the least recently used one is dropped when a new one does not
fit. A model larger than the whole budget is refused (``model_too_large``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from workers.moe.generate import SamplingParams, stream
from workers.moe.model import MoETransformer

#: A line from the supervisor longer than this is refused (a prompt is bounded far below it).
MAX_REQUEST_BYTES = 1 << 20
#: An inspection result is sent in parts of this many characters (see ``Engine.inspect``).
PART_CHARS = 24_000


class EngineError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def model_bytes(model: torch.nn.Module) -> int:
    n = sum(p.numel() * p.element_size() for p in model.parameters())
    return n + sum(b.numel() * b.element_size() for b in model.buffers())


class ModelCache:
    """commit → loaded model, least recently used first out, within ``budget`` bytes."""

    def __init__(self, root: Path, budget: int, device: str) -> None:
        self.root, self.budget, self.device = root, budget, device
        self.models: OrderedDict[str, tuple[MoETransformer, int]] = OrderedDict()

    def used(self) -> int:
        return sum(n for _, n in self.models.values())

    def get(self, commit: str) -> tuple[MoETransformer, bool, float]:
        """(model, cold, load seconds)."""
        if commit in self.models:
            self.models.move_to_end(commit)
            return self.models[commit][0], False, 0.0
        from workers.moe.checkpoint import InputError
        from workers.moe.quantize import load_any

        folder = self.root / commit
        if not folder.is_dir():
            raise EngineError("commit_not_fetched", f"the weights of {commit[:12]} are not here")
        t0 = time.monotonic()
        try:
            model, _ = load_any(folder)
        except InputError as e:
            raise EngineError("not_a_model", f"this commit holds no usable model: {e}") from None
        model.to(self.device).eval()
        size = model_bytes(model)
        if size > self.budget:
            raise EngineError(
                "model_too_large",
                f"the model needs {size} bytes, more than the inference cache's {self.budget}",
            )
        while self.models and self.used() + size > self.budget:
            self.models.popitem(last=False)
        self.models[commit] = (model, size)
        return model, True, time.monotonic() - t0


def watermark_processors(params: dict | None) -> list:
    """The logits processors a request's watermark parameters ask for (none: []):
    ``workers.moe.watermark`` builds the green-list processor from the dict the hub sent
    ({"scheme", "key_hex", "gamma", "delta", "context_width"}; the key stays in memory)."""
    if not params:
        return []
    from workers.moe.watermark import processor_from_dict

    proc = processor_from_dict(params)
    return [proc] if proc is not None else []


class Engine:
    def __init__(self, control: socket.socket, events_fd: int, cache: ModelCache) -> None:
        self.control = control
        self.events = os.fdopen(events_fd, "w", buffering=1, encoding="utf-8")
        self.cache = cache
        self.buf = b""
        self.cancelled: set[str] = set()
        self.pending: list[dict] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.write(json.dumps(event, separators=(",", ":")) + "\n")

    def _read_lines(self, timeout: float | None) -> list[dict]:
        """Messages available within ``timeout`` (None: block until one); [] on timeout.
        Raises EOFError when the supervisor closed the socket."""
        r, _, _ = select.select([self.control], [], [], timeout)
        if not r:
            return []
        data = self.control.recv(65536)
        if not data:
            raise EOFError
        self.buf += data
        if len(self.buf) > MAX_REQUEST_BYTES and b"\n" not in self.buf:
            raise EOFError  # a supervisor never sends this: stop
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                out.append(msg)
        return out

    def _poll_cancel(self, rid: str) -> bool:
        for msg in self._read_lines(0):
            if msg.get("op") == "cancel":
                self.cancelled.add(str(msg.get("id")))
            else:
                self.pending.append(msg)
        return rid in self.cancelled

    def serve(self) -> None:
        self.emit({"type": "ready"})
        while True:
            if not self.pending:
                self.pending.extend(self._read_lines(None))
                continue
            msg = self.pending.pop(0)
            if msg.get("op") == "cancel":
                self.cancelled.add(str(msg.get("id")))
            elif msg.get("op") == "generate":
                self.generate(msg)
            elif msg.get("op") in ("inspect_attention", "routing_probe"):
                self.inspect(msg)

    def inspect(self, req: dict) -> None:
        """One ``inspect_attention`` ({"prompt", "max_tokens"}) or ``routing_probe`` request
        ({"probe_version"}): ``start``, ``part`` events (the result as JSON text, in order), ``done``
        (``workers.moe.introspect``), or ``error``."""
        rid = str(req.get("id", ""))
        try:
            from workers.moe import introspect, probe_set

            model, cold, load_s = self.cache.get(str(req.get("commit", "")))
            self.emit({"rid": rid, "type": "start", "cold": cold, "load_s": round(load_s, 4)})
            t0 = time.monotonic()
            if req.get("op") == "inspect_attention":
                result = introspect.attention_maps(
                    model,
                    str(req.get("prompt", "")),
                    max_tokens=int(req.get("max_tokens") or 0),
                    max_cells=int(req.get("max_cells") or 0),
                )
            else:
                version = int(req.get("probe_version") or probe_set.PROBE_SET_VERSION)
                if version != probe_set.PROBE_SET_VERSION:
                    raise ValueError(f"this engine has probe set v{probe_set.PROBE_SET_VERSION}")
                result = introspect.routing_probe(model, list(probe_set.PROBE_WINDOWS))
                result["probe_version"] = version
            elapsed = round(time.monotonic() - t0, 4)
            # The event pipe drops lines over 64 KiB: the result goes as ASCII JSON text in
            # parts of PART_CHARS (at most doubled by escaping), joined by the hub.
            text = json.dumps(result, separators=(",", ":"))
            parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
            for n, part in enumerate(parts):
                self.emit({"rid": rid, "type": "part", "n": n, "data": part})
            self.emit({"rid": rid, "type": "done", "parts": len(parts), "elapsed_s": elapsed})
        except EngineError as e:
            self.emit({"rid": rid, "type": "error", "code": e.code, "message": str(e)})
        except ValueError as e:
            self.emit({"rid": rid, "type": "error", "code": "invalid_params", "message": str(e)})
        except Exception as e:  # a bug must answer the request, not kill the engine
            msg = f"{type(e).__name__}: {e}"[:2000]
            self.emit({"rid": rid, "type": "error", "code": "engine_error", "message": msg})

    def generate(self, req: dict) -> None:
        rid = str(req.get("id", ""))
        try:
            params = SamplingParams.from_dict(dict(req.get("params") or {}))
            model, cold, load_s = self.cache.get(str(req.get("commit", "")))
            processors = watermark_processors(req.get("watermark"))
            self.emit({"rid": rid, "type": "start", "cold": cold, "load_s": round(load_s, 4)})
            deadline = time.monotonic() + float(req.get("wall_time_s") or 60)
            for ev in stream(
                model,
                str(req.get("prompt", "")),
                params,
                logits_processors=processors,
                deadline=deadline,
                cancelled=lambda: self._poll_cancel(rid),
            ):
                self.emit({"rid": rid, **ev})
        except EngineError as e:
            self.emit({"rid": rid, "type": "error", "code": e.code, "message": str(e)})
        except ValueError as e:
            self.emit({"rid": rid, "type": "error", "code": "invalid_params", "message": str(e)})
        except Exception as e:  # a bug must answer the request, not kill the engine
            self.emit(
                {
                    "rid": rid,
                    "type": "error",
                    "code": "engine_error",
                    "message": f"{type(e).__name__}: {e}"[:2000],
                }
            )
        finally:
            self.cancelled.discard(rid)


def connect(path: str, wait_s: float = 30.0) -> socket.socket:
    """The supervisor creates its socket right after the sandbox started: wait for it."""
    deadline = time.monotonic() + wait_s
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workers.inference.engine")
    ap.add_argument("--models", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--event-fd", type=int, default=3)
    ap.add_argument("--cache-bytes", type=int, default=2 << 30)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cache = ModelCache(Path(args.models), args.cache_bytes, device)
    try:
        sock = connect(args.control)
    except OSError as e:
        print(f"cannot reach the supervisor at {args.control}: {e}", file=sys.stderr)
        return 1
    try:
        Engine(sock, args.event_fd, cache).serve()
    except EOFError:
        return 0  # the supervisor closed the socket: it wants the engine gone
    return 0


if __name__ == "__main__":
    sys.exit(main())
