"""The inference worker's Celery task: ``celery -A workers.celery_app worker -Q infer
--pool threads --concurrency 1`` (``hub serve`` starts one).

One task per generation request (``hub.shared.inference`` has the wire format). The task
fetches the commit's weights with the request's own credential (read-only on that repo,
alive for the request), hands the request to the process's one ``InferenceService`` (a
sandboxed engine that keeps recent commits loaded) and pushes every event onto the request's
Redis list, which the hub's request thread streams to its client. No acks_late: a request is
worth nothing after its client stopped waiting, so a lost one is not redelivered (the hub
answers ``inference_timeout``).
"""

from __future__ import annotations

import atexit
import json
import logging
import socket
import threading
import time
from pathlib import Path

from celery import shared_task

from hub.shared.inference import KEY_TTL_S, QUEUE, TASK, cancel_key, events_key
from workers.inference.service import InferenceConfig, InferenceService
from workers.settings import load as load_settings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict = {}

#: The files of a commit the engine reads; nothing else of the commit is downloaded.
WEIGHT_FILES = ("model.safetensors", "config.json", "quantization.json")


def fetch_with_credential(api_url: str):
    def fetch(request: dict, dest: Path) -> None:
        from hub.client import Client

        client = Client(url=api_url, token=request["credential"], timeout=120)
        try:
            client.pull(f"{request['repo']}@{request['commit']}", dest, include=WEIGHT_FILES)
        finally:
            client.close()

    return fetch


def _claim_work_root(base: Path) -> Path:
    """This worker's own folder (weights, control socket, engine scratch): ``base``, or
    ``base-1``, ``base-2``, ... when another live worker on this host holds it (an exclusive
    lock kept for the process's lifetime), so two workers never share a socket."""
    import fcntl
    import os

    for i in range(64):
        root = base if i == 0 else base.with_name(f"{base.name}-{i}")
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / ".worker.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _state["lock_fd"] = fd
        return root
    raise RuntimeError(f"64 inference workers already use {base.parent}")


def service() -> InferenceService:
    with _lock:
        if "service" not in _state:
            s = load_settings()
            slots = None
            if s.infer_gpus:
                from workers.tasks import _gpu_slots

                slots = _gpu_slots(s)
            assert s.infer_dir is not None
            _state["service"] = InferenceService(
                InferenceConfig(
                    work_root=_claim_work_root(s.infer_dir / socket.gethostname()),
                    cache_bytes=s.infer_cache_bytes,
                    disk_bytes=s.infer_disk_bytes,
                    memory_bytes=s.infer_memory_bytes,
                    cpus=s.infer_cpus,
                    gpus=s.infer_gpus,
                ),
                fetch=fetch_with_credential(s.api_url),
                gpu_slots=slots,
            )
            atexit.register(_state["service"].close)
        return _state["service"]


def _redis():
    with _lock:
        if "redis" not in _state:
            import redis

            s = load_settings()
            _state["redis"] = (redis.Redis.from_url(s.redis_url), s.redis_prefix)
        return _state["redis"]


@shared_task(name=TASK, queue=QUEUE, ignore_result=True, acks_late=False)
def generate(request: dict) -> str:
    r, prefix = _redis()
    key = events_key(prefix, str(request.get("id")))
    ckey = cancel_key(prefix, str(request.get("id")))
    if float(request.get("expires_at") or 0) < time.time():
        log.info("inference %s: expired before it was picked up", request.get("id"))
        return "expired"
    queued_at = float(request.get("queued_at") or time.time())
    host = socket.gethostname()

    def emit(ev: dict) -> None:
        if ev.get("type") == "start":
            ev = {**ev, "worker": host, "queue_s": round(max(0.0, time.time() - queued_at), 4)}
        with r.pipeline() as p:
            p.rpush(key, json.dumps(ev, separators=(",", ":")))
            p.expire(key, KEY_TTL_S)
            p.execute()

    last_check = [0.0, False]

    def cancelled() -> bool:
        now = time.monotonic()
        if now - last_check[0] > 0.2:
            last_check[0] = now
            try:
                last_check[1] = bool(r.exists(ckey))
            except Exception:
                pass
        return last_check[1]

    end = service().handle(request, emit, cancelled)
    # What the worker's log shows for the task: length, stop, eos, time, cancelled, or the
    # error's code.
    return str(end.get("finish_reason") or end.get("code") or end.get("type"))
