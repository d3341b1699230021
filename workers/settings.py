"""The workers' settings: the one place under ``workers/`` that reads the environment (the
hub's is ``hub/settings.py``). A worker is not a Django process as far as its own code goes:
it reaches the hub through its API (``hub.client.worker``) and Redis for GPU leases and
presence, nothing else.

Every value is a ``HUB_*`` variable with the same safe local default as the hub's::

    HUB_WORKER_API_URL         the hub's API as the worker reaches it (else HUB_URL, else
                               http://127.0.0.1:8000)
    HUB_WORKER_TOKEN           the workers' service credential (``hub admin
                               create-worker-credential``); it only claims jobs
    HUB_WORKER_QUEUES          the queues this worker serves, comma-separated (default cpu)
    HUB_WORKER_GPUS            the GPU indices this worker may hand to jobs: ``all`` (default:
                               every GPU device found) or a list such as ``0,1``
    HUB_JOBS_DIR               where job folders live (default $HUB_DATA_DIR/jobs)
    HUB_KEEP_JOB_DIRS          1: leave a failed job's files for a person to look at
    HUB_REDIS_URL, HUB_REDIS_PREFIX
                               Redis (GPU leases, presence), as the hub's settings read them
    HUB_CELERY_BROKER_URL      the broker, when it is not HUB_REDIS_URL (as the hub reads it)
    HUB_JOB_MAX_INFRA_RETRIES  retries of an infrastructure failure before the job fails (3)
    HUB_JOB_GPU_RETRY_S        how often a job waiting for GPUs is tried again (30 s)
    HUB_JOB_GPU_MAX_WAIT_S     how long it may wait before it fails (24 h)
    HUB_JOB_SYSTEM_INTERVAL_S  how often a job's own CPU, memory, I/O and GPU use is sampled
                               onto its run (5 s; 0 turns it off)
    HUB_INFER_CACHE_BYTES      the inference engine's loaded models, least recently used
                               dropped first (2 GiB); HUB_INFER_DISK_BYTES their weights on
                               disk (8 GiB); HUB_INFER_MEMORY_BYTES the engine's memory limit
                               (4 GiB); HUB_INFER_CPUS its CPUs and torch threads (1: small
                               models decode fastest on one thread); HUB_INFER_GPUS GPUs it
                               reserves (0); HUB_INFER_DIR its folder ($HUB_DATA_DIR/inference)

The sandbox's scrub of a job's environment (``workers.sandbox``) is not a setting: it looks at
the environment only to keep every ``HUB_*`` value and the hub's folders out of the job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_API_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class WorkerSettings:
    api_url: str
    token: str
    queues: tuple[str, ...]
    #: None: every GPU device the host has (``HUB_WORKER_GPUS=all``).
    gpus: tuple[int, ...] | None
    jobs_dir: Path
    keep_job_dirs: bool
    redis_url: str
    redis_prefix: str
    broker_url: str
    max_infra_retries: int
    gpu_retry_s: int
    gpu_max_wait_s: int
    infer_dir: Path | None = None
    infer_cache_bytes: int = 2 << 30
    infer_disk_bytes: int = 8 << 30
    infer_memory_bytes: int = 4 << 30
    infer_cpus: float = 1.0
    infer_gpus: int = 0
    job_system_interval_s: float = 5.0


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 <= value < 10**6:  # NaN and infinity included
        raise ValueError(f"{name} must be between 0 and 10^6 seconds, got {raw!r}")
    return value


def parse_gpus(raw: str | None) -> tuple[int, ...] | None:
    """``HUB_WORKER_GPUS``: unset, empty or ``all`` → None (every GPU found); ``0,1`` → (0, 1)."""
    raw = (raw or "").strip()
    if raw.lower() in ("", "all"):
        return None
    try:
        gpus = tuple(sorted({int(part) for part in raw.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(
            f"HUB_WORKER_GPUS must be 'all' or GPU indices such as '0,1', got {raw!r}"
        ) from None
    if any(g < 0 for g in gpus):
        raise ValueError(f"HUB_WORKER_GPUS: GPU indices are not negative, got {raw!r}")
    return gpus


def load(env: Mapping[str, str] | None = None) -> WorkerSettings:
    """The settings from ``env`` (default: this process's environment), read now: a task reads
    them when it starts, so a worker picks up what its process was started with."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("HUB_DATA_DIR") or ROOT / ".hub-data").resolve()
    return WorkerSettings(
        api_url=env.get("HUB_WORKER_API_URL") or env.get("HUB_URL") or DEFAULT_API_URL,
        token=env.get("HUB_WORKER_TOKEN", ""),
        queues=tuple(
            q.strip() for q in env.get("HUB_WORKER_QUEUES", "cpu").split(",") if q.strip()
        ),
        gpus=parse_gpus(env.get("HUB_WORKER_GPUS")),
        jobs_dir=Path(env.get("HUB_JOBS_DIR") or data_dir / "jobs"),
        keep_job_dirs=env.get("HUB_KEEP_JOB_DIRS") == "1",
        redis_url=env.get("HUB_REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_prefix=env.get("HUB_REDIS_PREFIX", "hub:"),
        broker_url=env.get("HUB_CELERY_BROKER_URL")
        or env.get("HUB_REDIS_URL", "redis://127.0.0.1:6379/0"),
        max_infra_retries=_int(env, "HUB_JOB_MAX_INFRA_RETRIES", 3),
        gpu_retry_s=_int(env, "HUB_JOB_GPU_RETRY_S", 30),
        gpu_max_wait_s=_int(env, "HUB_JOB_GPU_MAX_WAIT_S", 24 * 3600),
        infer_dir=Path(env.get("HUB_INFER_DIR") or data_dir / "inference"),
        infer_cache_bytes=_int(env, "HUB_INFER_CACHE_BYTES", 2 << 30),
        infer_disk_bytes=_int(env, "HUB_INFER_DISK_BYTES", 8 << 30),
        infer_memory_bytes=_int(env, "HUB_INFER_MEMORY_BYTES", 4 << 30),
        infer_cpus=float(env.get("HUB_INFER_CPUS") or 1),
        infer_gpus=_int(env, "HUB_INFER_GPUS", 0),
        job_system_interval_s=_float(env, "HUB_JOB_SYSTEM_INTERVAL_S", 5.0),
    )
