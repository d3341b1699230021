"""Celery tasks that run jobs. Queues: ``cpu`` and ``gpu``; a worker consumes one of them.

Delivery: ``acks_late`` + ``reject_on_worker_lost`` (a job whose worker dies is not silently
dropped by the broker; the hub marks it ``lost`` after ``HUB_JOB_LOST_AFTER_S`` (40 s) without
heartbeat and a user may relaunch it).

Retry policy, explicit (the task's own arguments count, not Celery's ``max_retries``):

- infrastructure failures (hub unreachable, sandbox cannot start, GPU lease lost) go back to
  the queue and are retried after 10, 20, 30 s; after ``HUB_JOB_MAX_INFRA_RETRIES`` retries
  the job fails with the last reason;
- too few free GPUs is not a failure: the supervisor reserves GPUs before it takes the job,
  so the job simply stays ``queued`` (no start, no attempt, no transition; one log line when
  the wait begins says it is waiting for GPUs), tried again every ``HUB_JOB_GPU_RETRY_S``, and
  fails only after ``HUB_JOB_GPU_MAX_WAIT_S`` of waiting;
- a worker whose sandbox probe failed fails each job it receives at once with the probe's
  reason (instead of retrying it into the same broken host);
- failures of the job itself, and bugs, are final.

When the task gives up, it reports ``failed`` with the reason through the hub's API: with the
attempt's credential if the job was started (only it may end a running job), else with the
workers' service credential (which may fail a job that is still queued, nothing more). The
worker reaches the hub only through its API (``hub.client.worker``), never its database: if the
API cannot be reached even for that, the job is left to the hub. A started job stops
heartbeating, and the hub's jobs reaper (``manage.py jobs_reaper``, run by ``hub serve`` and
compose) marks it ``lost`` after ``HUB_JOB_LOST_AFTER_S``; its user can relaunch it. For a job
that was never started the failure itself goes back to the queue (``report_failure``) and is
told again after 30 s, 60 s, ... (at most ``FAILURE_REPORT_MAX_BACKOFF_S`` apart) until the hub
answers: the job never stays ``queued`` because the hub was down when its task gave up.

Settings come from ``workers.settings`` (the workers' one reader of the environment).
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from celery import shared_task
from celery.exceptions import Retry
from celery.signals import worker_ready, worker_shutdown

from hub.client import HubClientError
from hub.client.worker import WorkerClient
from workers.settings import WorkerSettings
from workers.settings import load as load_settings
from workers.supervisor import GpusBusy, InfrastructureError, JobSupervisor

log = logging.getLogger(__name__)
_presence_stop = threading.Event()
_probe_lock = threading.Lock()
_probe_state: dict = {}


def _settings() -> WorkerSettings:
    return load_settings()


def _client() -> WorkerClient:
    """The hub, with the workers' service credential."""
    s = _settings()
    if not s.token:
        raise InfrastructureError(
            "HUB_WORKER_TOKEN is not set: the worker cannot report to the hub"
        )
    return WorkerClient(s.api_url, s.token)


def _gpu_slots(s: WorkerSettings):
    """This host's GPU reservations, over the indices ``HUB_WORKER_GPUS`` lets it hand out."""
    from workers.sandbox import GpuSlots

    return GpuSlots(
        s.redis_url, host_id=socket.gethostname(), devices=s.gpus, key_prefix=f"{s.redis_prefix}gpu"
    )


def _sandbox_problem() -> str | None:
    """Why this worker cannot run jobs (a mandatory sandbox layer is missing), or None.
    Probed once per process."""
    with _probe_lock:
        if "problem" not in _probe_state:
            from workers.sandbox.probe import SandboxUnavailable, require

            try:
                require()
                problem = None
            except SandboxUnavailable as e:
                problem = str(e)
            except Exception as e:
                problem = f"the sandbox probe failed: {type(e).__name__}: {e}"
            _probe_state["problem"] = problem
        return _probe_state["problem"]


def _give_up(
    job_id: str,
    client: WorkerClient | None,
    reason: str,
    *,
    attempt_client: WorkerClient | None = None,
) -> bool:
    """End the job as ``failed`` with ``reason``: a job must never stay queued or running
    because its task stopped trying. Through the API — with the attempt's credential if the job
    was started (only it may end a running job), else with the service credential, which may
    fail a job that is still queued and nothing more. If the API cannot be reached, the job is
    left to the hub (see the module's docstring: a started job becomes ``lost``)."""
    log.error("job %s: failed: %s", job_id, reason)
    for c in (attempt_client, client):
        if c is None:
            continue
        try:
            c.finish(job_id, status="failed", reason=reason)
            return True
        except HubClientError as e:
            if e.code in ("job_state_conflict", "job_not_found"):
                return True  # it already ended (cancelled, lost...) or is gone
            log.warning("job %s: could not report the failure through the API: %s", job_id, e)
        except Exception as e:
            log.warning("job %s: could not report the failure through the API: %s", job_id, e)
    log.error(
        "job %s: the hub could not be told; a started job becomes lost when its heartbeats stop, "
        "one never started is told again later",
        job_id,
    )
    return False


#: The longest wait between two tries to tell the hub that a job it never saw start failed.
FAILURE_REPORT_MAX_BACKOFF_S = 600


def _fail(task, job_id: str, client: WorkerClient | None, reason: str, *, tells: int = 0) -> str:
    """End a job that was never started as ``failed``; if the hub cannot be told now, the
    failure goes back to the queue to be told later (never dropped: the job would stay queued)."""
    if _give_up(job_id, client, reason) or task.request.is_eager:
        return "failed"
    countdown = min(FAILURE_REPORT_MAX_BACKOFF_S, 30 * 2**tells)
    raise task.retry(
        args=[job_id], kwargs={"report_failure": reason, "tells": tells + 1}, countdown=countdown
    )


def _note_gpu_wait(job_id: str, client: WorkerClient, text: str) -> None:
    """One line in the job's log when it starts waiting for GPUs (not one per try), through the
    worker logs endpoint, which takes lines for a queued job. At seq 0, like the first line of
    any attempt: the job's own first line replaces it once it runs. Best effort."""
    try:
        client.logs(job_id, [[0, time.time(), "supervisor", text]])
    except Exception as e:
        log.debug("job %s: could not log the GPU wait: %s", job_id, e)


def _retry(task, job_id: str, exc: Exception, *, client, countdown: float, **kwargs):
    """Back to the queue for another try; a retry that cannot be queued ends the job."""
    try:
        raise task.retry(args=[job_id], kwargs=kwargs, exc=exc, countdown=countdown)
    except Retry:
        raise
    except Exception as e:  # the broker refused it (Reject): nothing would ever run the job
        _give_up(job_id, client, f"{exc}; it could not be queued again ({type(e).__name__}: {e})")
        raise


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_job(
    self,
    job_id: str,
    infra_failures: int = 0,
    gpu_wait_since: float | None = None,
    report_failure: str | None = None,
    tells: int = 0,
) -> str:
    s = client = sup = None
    if report_failure is not None:  # an earlier try gave up while the hub was unreachable
        try:
            client = _client()
        except Exception as e:
            log.warning("job %s: no client to report its failure: %s", job_id, e)
        return _fail(self, job_id, client, report_failure, tells=tells)
    try:
        s = _settings()
        client = _client()
        problem = _sandbox_problem()
        if problem:  # retrying would bring it back to the same broken host
            return _fail(
                self, job_id, client, f"worker {socket.gethostname()} cannot run jobs: {problem}"
            )
        s.jobs_dir.mkdir(parents=True, exist_ok=True)
        sup = JobSupervisor(
            job_id,
            client=client,
            work_root=s.jobs_dir,
            gpu_slots=_gpu_slots(s) if "gpu" in s.queues else None,
            keep_failed_job_dirs=s.keep_job_dirs,
            system_interval_s=s.job_system_interval_s,
        )
        return sup.run()
    except GpusBusy as e:  # raised before the job was taken: it is still queued
        since = gpu_wait_since or time.time()
        waited = time.time() - since
        if waited >= s.gpu_max_wait_s or self.request.is_eager:
            return _fail(
                self,
                job_id,
                client,
                f"no worker had the GPUs this job asks for in {waited:.0f} s of waiting: {e}",
            )
        if gpu_wait_since is None:
            _note_gpu_wait(
                job_id,
                client,
                f"{e}; the job stays queued and is tried again every {s.gpu_retry_s} s",
            )
        log.info("job %s: %s; back in the queue for %d s", job_id, e, s.gpu_retry_s)
        return _retry(
            self,
            job_id,
            e,
            client=client,
            countdown=s.gpu_retry_s,
            infra_failures=infra_failures,
            gpu_wait_since=since,
        )
    except Retry:  # a failure the hub could not be told yet, back in the queue
        raise
    except InfrastructureError as e:
        if infra_failures >= s.max_infra_retries:  # the supervisor handed the attempt back: queued
            return _fail(
                self,
                job_id,
                client,
                f"infrastructure failure, gave up after {infra_failures + 1} attempts: {e}",
            )
        log.warning("job %s: infrastructure failure, retrying: %s", job_id, e)
        return _retry(
            self,
            job_id,
            e,
            client=client,
            countdown=10 * (infra_failures + 1),
            infra_failures=infra_failures + 1,
            gpu_wait_since=gpu_wait_since,
        )
    except Exception as e:  # a bug must not leave the job queued or running forever
        log.exception("job %s: worker error", job_id)
        reason = f"worker error: {type(e).__name__}: {e}"
        if (
            sup is not None and sup.client is not client
        ):  # started: only its attempt's credential ends it
            _give_up(job_id, client, reason, attempt_client=sup.client)
        else:
            _fail(self, job_id, client, reason)  # raises Retry while the hub cannot be told
        raise


_jobs_dir_lock: int | None = None


def _sweep_jobs_dir() -> None:
    """Job folders a worker that died left mounted in this worker's jobs folder. Only the one
    worker that holds the folder's lock sweeps it (two workers sharing a jobs folder would
    otherwise clear each other's running jobs); the lock is held for the worker's lifetime."""
    global _jobs_dir_lock
    from workers.sandbox.jobfs import claim_jobs_dir, sweep_stale

    jobs_dir = _settings().jobs_dir
    if _jobs_dir_lock is None:
        _jobs_dir_lock = claim_jobs_dir(jobs_dir)
    if _jobs_dir_lock is None:
        log.warning(
            "another worker uses the jobs folder %s: leaving its job folders alone", jobs_dir
        )
        return
    cleared = sweep_stale(jobs_dir)
    if cleared:
        log.warning(
            "cleared %d job folder(s) a previous worker left mounted: %s", len(cleared), cleared
        )


@worker_ready.connect
def _announce(sender=None, **kwargs) -> None:
    """Check the sandbox, clean up after a previous crash, then keep a presence key per
    queue alive so the hub knows which workers (GPU ones especially) exist. (The hub's side
    reaps the jobs of dead workers and sweeps its search index: ``manage.py jobs_reaper``.)"""
    from workers.presence import PRESENCE_TTL_S, announce
    from workers.sandbox import probe, reap_stale

    if not _settings().queues:
        return  # serves no job queue (hub serve's search indexer): no sandbox, no presence
    report = probe()
    log.info("sandbox probe: %s", report)
    problem = _sandbox_problem()
    if problem:
        # Not advertised; a job that reaches it anyway fails at once with this reason.
        log.error(
            "the job sandbox is not usable on this host: %s; this worker fails every job it receives",
            problem,
        )
    else:
        stale = reap_stale()
        if stale:
            log.warning(
                "removed leftovers of %d job(s) from a previous worker: %s", len(stale), stale
            )
        _sweep_jobs_dir()

    s = _settings()
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    queues = list(s.queues) if not problem else []

    def loop():
        while not _presence_stop.is_set():
            for q in queues:
                try:
                    announce(
                        redis_url=s.redis_url, prefix=s.redis_prefix, queue=q, hostname=hostname
                    )
                except Exception as e:  # Redis down: the broker is down too, nothing to announce
                    log.debug("presence: %s", e)
            _presence_stop.wait(PRESENCE_TTL_S / 3)

    threading.Thread(target=loop, name="hub-presence", daemon=True).start()


@worker_shutdown.connect
def _stop_presence(**kwargs) -> None:
    _presence_stop.set()
