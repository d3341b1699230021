"""Reads of the jobs domain. Reads never change a job: lost jobs are marked by the reaper
(``manage.py jobs_reaper``), not by whoever looks. A metrics-store failure propagates to the
API's one exception handler (503)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from hub.accounts.models import Role
from hub.common.errors import Conflict, Forbidden, NotAuthenticated, NotFound
from hub.jobs.models import Job
from hub.tracking import selectors as tracking


def job_for(request, *, job_id: str, role: str = Role.READ) -> Job:
    job = Job.objects.select_related("project__namespace", "created_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} not found.", code="job_not_found")
    cred = _worker_credential(request)
    if cred is not None and cred.kind == cred.Kind.SERVICE and role == Role.READ:
        return (
            job  # a worker reads what it is about to claim (its resources: which GPUs to reserve)
        )
    try:
        tracking.project_for(
            request, namespace=job.project.namespace.name, name=job.project.name, role=role
        )
    except NotFound:
        raise NotFound(f"Job {job_id} not found.", code="job_not_found") from None
    return job


def require_base_readable(request, job: Job) -> None:
    """404 ``job_not_found`` (as if the job did not exist) when the job's base model is in a
    private repo the caller may not read."""
    if not job.base_repo or _worker_credential(request) is not None:
        return
    from hub.registry.selectors import repo_for

    ns, _, name = job.base_repo.partition("/")
    try:
        repo_for(request, namespace=ns, name=name)
    except NotFound:
        raise NotFound(f"Job {job.pk} not found.", code="job_not_found") from None


def _worker_credential(request):
    from hub.accounts.models import WorkerCredential

    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, WorkerCredential) else None


def job_for_worker(request, *, job_id: str, action: str = "report") -> Job:
    """Worker endpoints take worker credentials only, never a user's token (a site admin's
    included):

    - a job attempt's credential (from ``/worker/start``), for its own job while that attempt
      is the job's current one and the job runs: every ``report`` endpoint;
    - the workers' service credential, to ``claim`` a queued job, and for ``unstarted`` calls on
      a job that is still queued (the task notes a GPU wait in its log, or fails a job it could
      not start). A job that runs belongs to its attempt's credential alone."""
    from hub.accounts.models import WorkerCredential

    cred = _worker_credential(request)
    if cred is None:
        if not request.user.is_authenticated:
            raise NotAuthenticated("A worker credential is required.")
        raise Forbidden(
            "Only a job's worker may call its worker endpoints; user tokens do not work here.",
            code="not_a_worker",
        )
    job = Job.objects.select_related("project__namespace").filter(pk=job_id).first()
    if cred.kind == WorkerCredential.Kind.SERVICE:
        if action not in ("claim", "unstarted"):
            raise Forbidden(
                "The workers' service credential only claims jobs: use the credential "
                "/worker/start returned.",
                code="not_a_worker",
            )
        if job is None:
            raise NotFound(f"Job {job_id} not found.", code="job_not_found")
        if action == "unstarted" and job.status == Job.Status.RUNNING:
            raise Forbidden(
                f"Job {job_id} runs: only its attempt's credential reports for it.",
                code="not_a_worker",
            )
        if action == "unstarted" and job.status != Job.Status.QUEUED:
            raise Conflict(
                f"Job {job_id} is {job.status}, not queued.",
                code="job_state_conflict",
                details={"status": job.status},
            )
        return job
    if cred.job_id != job_id or action == "claim":
        raise Forbidden(f"This credential belongs to job {cred.job_id}.", code="not_a_worker")
    if job is None:
        raise NotFound(f"Job {job_id} not found.", code="job_not_found")
    if job.attempt != cred.attempt or job.status != Job.Status.RUNNING:
        raise NotAuthenticated(
            f"This credential's attempt of job {job_id} ended.", code="job_credential_revoked"
        )
    return job


def jobs_list(*, project=None, user=None, status: str | None = None, kind: str | None = None):
    qs = Job.objects.select_related("project__namespace", "created_by").order_by("-created_at")
    if project is not None:
        qs = qs.filter(project=project)
    if status:
        qs = qs.filter(status__in=status.split(","))
    if kind:
        qs = qs.filter(kind=kind)
    return qs


def job_logs(
    *,
    job: Job,
    after_seq: int | None = None,
    limit: int = 1000,
    tail: int | None = None,
    streams: Sequence[str] | None = None,
    time_min: float | None = None,
    time_max: float | None = None,
) -> list[dict]:
    """A job's log lines in ``seq`` order: after ``after_seq`` (at most ``limit``), or the last
    ``tail``; only the given ``streams`` and times in ``[time_min, time_max]`` when set."""
    from hub.stores.metrics import get_metrics_store

    filtered = streams is not None or time_min is not None or time_max is not None
    store = get_metrics_store()
    if tail and not filtered:
        lines = store.log_tail(job.pk, tail)
    elif tail:
        # The store's tail has no filters: page through the matching lines, keeping the last.
        kept: deque = deque(maxlen=tail)
        cursor = None
        while True:
            page = store.log_lines(
                job.pk,
                after_seq=cursor,
                limit=10_000,
                streams=streams,
                time_min=time_min,
                time_max=time_max,
            )
            kept.extend(page)
            if len(page) < 10_000:
                break
            cursor = page[-1].seq
        lines = list(kept)
    else:
        lines = store.log_lines(
            job.pk,
            after_seq=after_seq,
            limit=limit,
            streams=streams,
            time_min=time_min,
            time_max=time_max,
        )
    return [line._asdict() for line in lines]


def profile_ops(*, job: Job) -> dict:
    """A profile job's operator table: its top operators by self time."""
    from hub.stores.metrics import get_metrics_store

    return {
        "job": job.pk,
        "commit": job.base_commit,
        "ops": get_metrics_store().profile_ops([job.pk])[job.pk],
    }


def profile_compare(*, a: Job, b: Job, limit: int = 100) -> dict:
    """Operator tables of two profiles side by side: self time, calls, FLOPs and the ratio."""
    from hub.stores.metrics import get_metrics_store

    ops = get_metrics_store().profile_ops([a.pk, b.pk], limit=1000)
    ta = {r["op"]: r for r in ops[a.pk]}
    tb = {r["op"]: r for r in ops[b.pk]}
    rows = []
    for op in set(ta) | set(tb):
        ra, rb = ta.get(op), tb.get(op)
        rows.append(
            {
                "op": op,
                "a": ra,
                "b": rb,
                "self_us_ratio": (rb["self_us"] / ra["self_us"])
                if ra and rb and ra["self_us"]
                else None,
            }
        )
    rows.sort(
        key=lambda r: -max((r["a"] or {}).get("self_us", 0), (r["b"] or {}).get("self_us", 0))
    )
    total_a = sum(r["self_us"] for r in ops[a.pk])
    total_b = sum(r["self_us"] for r in ops[b.pk])
    return {
        "a": {"job": a.pk, "commit": a.base_commit, "total_self_us": total_a},
        "b": {"job": b.pk, "commit": b.base_commit, "total_self_us": total_b},
        "ops": rows[:limit],
    }
