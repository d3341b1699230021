"""The inference worker's supervisor side: one sandboxed engine, the weights it may read, and
the requests it runs, one at a time.

::

    hub ── Celery task (queue infer) ──► InferenceService.handle(request, emit)
                                            │ pull repo@commit with the request's credential
                                            │   into models/<commit>/ (host, root-owned, LRU)
                                            │ send the request over ctl/engine.sock
                                            ▼
                      sandbox (bwrap, seccomp, Landlock, own uid, no network, cgroup)
                      python -m workers.inference.engine --models /models --control /ctl/...
                                            │ events on the sandbox's event pipe
                                            ▼
                       emit(event) ──► Redis list the hub's request thread streams as SSE

The engine is started on the first request and kept running: it holds the recently used
models in memory (an LRU of ``HUB_INFER_CACHE_BYTES``), so a warm request starts at once. It
is restarted when it dies, when a request overruns its wall time by ``OVERRUN_GRACE_S`` (it
stopped answering), or when its sandbox's own wall clock (``HUB_INFER_ENGINE_LIFETIME_S``)
ends. The weights folder is bounded too: the least recently used commits' folders are
deleted once they hold more than ``HUB_INFER_DISK_BYTES``.

The engine sees: its own scratch folder at /job, the weights folder read-only at /models and
the control folder read-only at /ctl. The socket in /ctl is created after the sandbox
started (``Sandbox.start`` refuses a bound folder holding a socket, so nothing else can be
planted there) and is the supervisor's: the engine can only connect to it. The request's
credential, the hub's URL and every ``HUB_*`` value stay outside.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.settings import ROOT

log = logging.getLogger(__name__)

#: How long past a request's wall time the engine may stay silent before it is restarted.
OVERRUN_GRACE_S = 10.0
#: How long a fresh engine may take to import torch and connect.
ENGINE_START_S = 120.0

Emit = Callable[[dict[str, Any]], None]


@dataclass
class InferenceConfig:
    work_root: Path
    cache_bytes: int = 2 << 30  # models held in the engine's memory
    disk_bytes: int = 8 << 30  # weights folders kept on the host
    memory_bytes: int = 4 << 30  # the engine's cgroup limit
    cpus: float = 1.0
    gpus: int = 0
    engine_lifetime_s: float = 24 * 3600.0


class InferenceError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InferenceService:
    """One engine and its weights folder. ``handle`` runs one request at a time (a lock)."""

    def __init__(
        self,
        config: InferenceConfig,
        *,
        fetch: Callable[[dict, Path], None],
        gpu_slots: Any = None,
        sandbox_factory: Any = None,
    ) -> None:
        self.config = config
        self.fetch = fetch  # (request, dest folder) → the commit's files in dest
        self.gpu_slots = gpu_slots
        self.sandbox_factory = sandbox_factory
        self.lock = threading.Lock()
        self.root = Path(config.work_root)
        self.models = self.root / "models"
        self.ctl = self.root / "ctl"
        self.sandbox: Any = None
        self.conn: socket.socket | None = None
        self.listener: socket.socket | None = None
        self.gpu_lease: contextlib.ExitStack | None = None
        self.pending_lines: list[bytes] = []
        for d in (self.root, self.models, self.ctl):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)

    # --- weights ----------------------------------------------------------------------------

    def ensure_weights(self, request: dict) -> bool:
        """The commit's weights in models/<commit>/; True if they had to be fetched."""
        commit = str(request["commit"])
        if not commit.isalnum() or len(commit) > 128:
            raise InferenceError("bad_request", "commit must be a commit id")
        folder = self.models / commit
        if folder.is_dir():
            os.utime(folder)  # most recently used
            return False
        tmp = self.models / f".fetch-{uuid.uuid4().hex}"
        try:
            self.fetch(request, tmp)
            for dirpath, _dirnames, filenames in os.walk(tmp):
                os.chmod(dirpath, 0o755)
                for f in filenames:
                    os.chmod(os.path.join(dirpath, f), 0o644)
            os.rename(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._trim_disk(keep=commit)
        return True

    def _trim_disk(self, *, keep: str) -> None:
        entries = []
        for p in self.models.iterdir():
            if p.name.startswith(".") or not p.is_dir():
                continue
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            entries.append((p.stat().st_mtime, p, size))
        total = sum(e[2] for e in entries)
        for _, p, size in sorted(entries, key=lambda e: e[0]):
            if total <= self.config.disk_bytes:
                break
            if p.name == keep:
                continue
            shutil.rmtree(p, ignore_errors=True)
            total -= size

    # --- the engine -------------------------------------------------------------------------

    def engine_running(self) -> bool:
        return self.sandbox is not None and self.conn is not None and self.sandbox.running

    def engine_argv(self) -> list[str]:
        from workers.sandbox import PYTHON

        return [
            PYTHON,
            "-m",
            "workers.inference.engine",
            "--models",
            "/models",
            "--control",
            "/ctl/engine.sock",
            "--event-fd",
            "3",
            "--cache-bytes",
            str(self.config.cache_bytes),
            "--threads",
            str(max(1, int(self.config.cpus))),
        ]

    def engine_spec(self, argv: list[str] | None = None, gpus: list[int] | None = None) -> Any:
        """The engine's sandbox: /job its scratch folder, /models and /ctl read-only, the
        configured CPUs, memory and GPUs, no environment of the worker's, no network."""
        from workers.sandbox import SandboxSpec

        engine_dir = self.root / "engine"
        shutil.rmtree(engine_dir, ignore_errors=True)
        engine_dir.mkdir()
        threads = max(1, int(self.config.cpus))
        return SandboxSpec(
            argv=argv or self.engine_argv(),
            job_dir=engine_dir,
            ro_binds={str(self.models): "/models", str(self.ctl): "/ctl"},
            job_id=f"infer-{uuid.uuid4().hex[:8]}",
            log_dir=self.root / "engine.logs",
            env={"OMP_NUM_THREADS": str(threads)},
            cpus=self.config.cpus,
            memory_bytes=self.config.memory_bytes,
            wall_time_s=self.config.engine_lifetime_s,
            gpus=gpus or [],
            tmp_size_bytes=256 << 20,
            # workers/ and the Django-free hub.shared (the watermark scheme): not the hub's
            # settings, server code or data.
            project_paths=[ROOT / "workers", ROOT / "hub" / "__init__.py", ROOT / "hub" / "shared"],
        )

    def start_engine(self) -> None:
        from workers.sandbox import Sandbox

        self.stop_engine()
        sock_path = self.ctl / "engine.sock"
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        gpus: list[int] = []
        if self.config.gpus and self.gpu_slots is not None:
            self.gpu_lease = contextlib.ExitStack()
            gpus = self.gpu_lease.enter_context(
                self.gpu_slots.lease(
                    self.config.gpus, job_id=f"infer-{socket.gethostname()}-{os.getpid()}"
                )
            )
        spec = self.engine_spec(gpus=gpus)
        factory = self.sandbox_factory or Sandbox
        try:
            self.sandbox = factory(spec)
            self.sandbox.start()
        except BaseException:
            self._stop_sandbox()  # the GPU lease too
            raise
        # Only now: start() refuses a bound folder that holds a socket.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(sock_path))
        os.chmod(sock_path, 0o666)  # the engine's uid is not ours; it may only connect
        listener.listen(1)
        listener.settimeout(ENGINE_START_S)
        self.listener = listener
        try:
            conn, _ = listener.accept()
        except OSError as e:
            result = self._stop_sandbox()
            raise InferenceError(
                "engine_unavailable",
                f"the inference engine did not start: {e}; {result}",
            ) from e
        conn.settimeout(None)
        self.conn = conn
        ready = self._next_event(time.monotonic() + ENGINE_START_S)
        if ready is None or ready.get("type") != "ready":
            result = self._stop_sandbox()
            raise InferenceError("engine_unavailable", f"the inference engine failed: {result}")

    def _stop_sandbox(self) -> str:
        sb, self.sandbox = self.sandbox, None
        for s in (self.conn, self.listener):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()
        self.conn = self.listener = None
        self.pending_lines = []
        why = ""
        if sb is not None:
            with contextlib.suppress(Exception):
                sb.cancel()
            with contextlib.suppress(Exception):
                r = sb.wait(timeout=30)
                why = f"{r.reason}: {r.message}" + (
                    f" ({r.stderr_tail[-500:]})" if getattr(r, "stderr_tail", "") else ""
                )
        if self.gpu_lease is not None:
            with contextlib.suppress(Exception):
                self.gpu_lease.close()
            self.gpu_lease = None
        return why

    def stop_engine(self) -> None:
        self._stop_sandbox()

    def _next_event(self, deadline: float) -> dict | None:
        """The engine's next event, or None when the deadline passed or the engine ended."""
        while True:
            if self.pending_lines:
                line = self.pending_lines.pop(0)
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    return ev
                continue
            left = deadline - time.monotonic()
            if left <= 0 or self.sandbox is None:
                return None
            lines = self.sandbox.read_events(min(left, 1.0))
            if not lines and self.sandbox.events_closed:
                return None
            self.pending_lines.extend(lines)

    def _send(self, msg: dict) -> None:
        assert self.conn is not None
        self.conn.sendall(json.dumps(msg).encode() + b"\n")

    # --- one request ------------------------------------------------------------------------

    def handle(
        self, request: dict, emit: Emit, cancelled: Callable[[], bool] = lambda: False
    ) -> dict:
        """Run one request; every event goes to ``emit``. Returns the last event (done or
        error). Infrastructure problems become an ``error`` event too: the hub's stream must
        always end."""
        with self.lock:
            t0 = time.monotonic()
            try:
                cold_fetch = self.ensure_weights(request)
                fetch_s = time.monotonic() - t0
            except InferenceError as e:
                return self._error(emit, e.code, str(e))
            except Exception as e:
                log.warning("inference %s: fetch failed: %s", request.get("id"), e)
                return self._error(emit, "fetch_failed", f"could not fetch the weights: {e}")
            try:
                if not self.engine_running():
                    self.start_engine()
            except InferenceError as e:
                return self._error(emit, e.code, str(e))
            except Exception as e:
                log.exception("inference engine start")
                return self._error(emit, "engine_unavailable", f"the engine did not start: {e}")
            rid = str(request["id"])
            wall = float(request.get("wall_time_s") or 60)
            try:
                op = request.get("op") or "generate"
                if op not in ("generate", "inspect_attention", "routing_probe"):
                    return self._error(emit, "bad_request", f"unknown request op {op!r}")
                self._send(
                    {
                        "op": op,
                        "max_tokens": request.get("max_tokens"),
                        "max_cells": request.get("max_cells"),
                        "probe_version": request.get("probe_version"),
                        "id": rid,
                        "commit": request["commit"],
                        "prompt": request.get("prompt", ""),
                        "params": request.get("params") or {},
                        "watermark": request.get("watermark"),
                        "wall_time_s": wall,
                    }
                )
            except OSError as e:
                self._stop_sandbox()
                return self._error(emit, "engine_unavailable", f"the engine went away: {e}")
            deadline = time.monotonic() + wall + OVERRUN_GRACE_S
            cancel_sent = False
            while True:
                if not cancel_sent and cancelled():
                    with contextlib.suppress(OSError):
                        self._send({"op": "cancel", "id": rid})
                    cancel_sent = True
                ev = self._next_event(min(deadline, time.monotonic() + 0.5))
                if ev is None:
                    if time.monotonic() < deadline and self.engine_running():
                        continue
                    why = self._stop_sandbox()
                    return self._error(
                        emit,
                        "engine_failed",
                        "the inference engine stopped answering and was restarted"
                        + (f" ({why})" if why else ""),
                    )
                if ev.get("rid") != rid:
                    continue  # a late event of an earlier request
                ev = {k: v for k, v in ev.items() if k != "rid"}
                if ev.get("type") == "start":
                    ev["cold"] = bool(ev.get("cold")) or cold_fetch
                    ev["fetch_s"] = round(fetch_s, 4)
                emit(ev)
                if ev.get("type") in ("done", "error"):
                    return ev

    def _error(self, emit: Emit, code: str, message: str) -> dict:
        ev = {"type": "error", "code": code, "message": message}
        emit(ev)
        return ev

    def close(self) -> None:
        with self.lock:
            self._stop_sandbox()
