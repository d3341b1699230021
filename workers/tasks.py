"""Celery tasks that run jobs. Queues: ``cpu`` and ``gpu``; a worker consumes one of them.

Delivery: ``acks_late`` + ``reject_on_worker_lost`` (a job whose worker dies is not silently
dropped by the broker; the hub marks it ``lost`` after 60 s without heartbeat and a user may
relaunch it). Retries: infrastructure failures (hub unreachable, sandbox cannot start) are
retried with backoff; failures of the job itself are final.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

from workers.supervisor import InfrastructureError, JobSupervisor

log = logging.getLogger(__name__)
_presence_stop = threading.Event()


def _settings():
    from django.conf import settings

    return settings


def _client():
    from hub.client import Client

    url = os.environ.get("HUB_WORKER_API_URL") or os.environ.get("HUB_URL") or "http://127.0.0.1:8000"
    token = os.environ.get("HUB_WORKER_TOKEN")
    if not token:
        raise InfrastructureError("HUB_WORKER_TOKEN is not set: the worker cannot report to the hub")
    return Client(url=url, token=token, retries=3)


def _gpu_slots():
    from workers.sandbox import GpuSlots

    s = _settings()
    return GpuSlots(s.HUB_REDIS_URL, host_id=socket.gethostname(), key_prefix=f"{s.HUB_REDIS_PREFIX}gpu")


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3)
def run_job(self, job_id: str) -> str:
    work_root = Path(os.environ.get("HUB_JOBS_DIR") or Path(_settings().HUB_DATA_DIR) / "jobs")
    work_root.mkdir(parents=True, exist_ok=True)
    queues = os.environ.get("HUB_WORKER_QUEUES", "cpu")
    sup = JobSupervisor(job_id, client=_client(), work_root=work_root,
                        gpu_slots=_gpu_slots() if "gpu" in queues else None)
    try:
        return sup.run()
    except InfrastructureError as e:
        log.warning("job %s: infrastructure failure, retrying: %s", job_id, e)
        raise self.retry(exc=e, countdown=10 * (self.request.retries + 1)) from e
    except Exception as e:  # a bug must not leave the job queued or running forever
        log.exception("job %s: worker error", job_id)
        try:
            sup.client._json("POST", f"/jobs/{job_id}/worker/finish",
                             json={"status": "failed", "reason": f"worker error: {type(e).__name__}: {e}"})
        except Exception:
            log.exception("job %s: could not report the failure", job_id)
        raise


@worker_ready.connect
def _announce(sender=None, **kwargs) -> None:
    """Check the sandbox, clean up after a previous crash, then keep a presence key per
    queue alive so the hub knows which workers (GPU ones especially) exist."""
    from hub.jobs.presence import PRESENCE_TTL_S, announce
    from workers.sandbox import probe, reap_stale

    report = probe()
    log.info("sandbox probe: %s", report)
    if not report.get("ok"):
        # Jobs would fail at start with the same reason; do not advertise this worker.
        log.error("the job sandbox is not usable on this host (missing: %s); this worker takes no jobs",
                  report.get("missing"))
        return
    stale = reap_stale()
    if stale:
        log.warning("removed leftovers of %d job(s) from a previous worker: %s", len(stale), stale)

    s = _settings()
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    queues = [q for q in os.environ.get("HUB_WORKER_QUEUES", "cpu").split(",") if q]

    sweep_state: dict = {}

    def loop():
        while not _presence_stop.is_set():
            _sweep_index(sweep_state)
            for q in queues:
                try:
                    announce(redis_url=s.HUB_REDIS_URL, prefix=s.HUB_REDIS_PREFIX, queue=q, hostname=hostname)
                except Exception as e:  # Redis down: the broker is down too, nothing to announce
                    log.debug("presence: %s", e)
            _reap()
            _presence_stop.wait(PRESENCE_TTL_S / 3)

    threading.Thread(target=loop, name="hub-presence", daemon=True).start()


def _sweep_index(state: dict) -> None:
    """Re-index runs changed since the last sweep. Index tasks make search fresh within a
    second; this sweep makes it eventually right even if a task was lost (the DB is
    canonical)."""
    from datetime import timedelta

    from django.db import close_old_connections
    from django.utils import timezone

    try:
        from hub.tracking.indexing import run_doc, search_index
        from hub.tracking.models import Run

        idx = search_index()
        if idx is None:
            return
        now = timezone.now()
        since = state.get("since") or now - timedelta(minutes=10)
        runs = Run.objects.select_related("project__namespace", "user").filter(
            updated_at__gte=since - timedelta(seconds=5)).order_by("updated_at")[:5000]
        docs = [run_doc(r) for r in runs]
        if docs:
            idx.bulk_index_runs(docs)
        state["since"] = now
    except Exception as e:  # the next sweep retries from the same point
        log.warning("index sweep failed: %s", e)
    finally:
        close_old_connections()


def _reap() -> None:
    """Ask the hub to mark jobs of dead workers lost (the hub also does it on every read)."""
    try:
        _client()._json("GET", "/jobs", params={"status": "running", "page_size": 1})
    except Exception:
        pass


@worker_shutdown.connect
def _stop_presence(**kwargs) -> None:
    _presence_stop.set()
