"""Reads of the jobs domain."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from hub.accounts.models import Role
from hub.common.errors import Forbidden, NotAuthenticated, NotFound, ServiceUnavailable
from hub.jobs.models import Job
from hub.tracking import selectors as tracking


def job_for(request, *, job_id: str, role: str = Role.READ) -> Job:
    job = Job.objects.select_related("project__namespace", "created_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} not found.", code="job_not_found")
    try:
        tracking.project_for(request, namespace=job.project.namespace.name, name=job.project.name, role=role)
    except NotFound:
        raise NotFound(f"Job {job_id} not found.", code="job_not_found") from None
    return job


def job_for_worker(request, *, job_id: str) -> Job:
    """Worker endpoints: only the hub's worker service accounts (site admins) may call them."""
    if not request.user.is_authenticated:
        raise NotAuthenticated("Worker token required.")
    if not request.user.is_superuser:
        raise Forbidden("Only worker service accounts may report job progress.", code="not_a_worker")
    job = Job.objects.select_related("project__namespace").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} not found.", code="job_not_found")
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


def job_logs(*, job: Job, after_seq: int | None = None, limit: int = 1000, tail: int | None = None,
             streams: Sequence[str] | None = None, time_min: float | None = None,
             time_max: float | None = None) -> list[dict]:
    """A job's log lines in ``seq`` order: after ``after_seq`` (at most ``limit``), or the last
    ``tail``; only the given ``streams`` and times in ``[time_min, time_max]`` when set."""
    from hub.stores.metrics import MetricsStoreError, MetricsStoreUnavailable, get_metrics_store

    filtered = streams is not None or time_min is not None or time_max is not None
    try:
        store = get_metrics_store()
        if tail and not filtered:
            lines = store.log_tail(job.pk, tail)
        elif tail:
            # The store's tail has no filters: page through the matching lines, keeping the last.
            kept: deque = deque(maxlen=tail)
            cursor = None
            while True:
                page = store.log_lines(job.pk, after_seq=cursor, limit=10_000, streams=streams,
                                       time_min=time_min, time_max=time_max)
                kept.extend(page)
                if len(page) < 10_000:
                    break
                cursor = page[-1].seq
            lines = list(kept)
        else:
            lines = store.log_lines(job.pk, after_seq=after_seq, limit=limit, streams=streams,
                                    time_min=time_min, time_max=time_max)
    except MetricsStoreUnavailable as e:
        raise ServiceUnavailable("The log store is unreachable.", code="metrics_store_unavailable") from e
    except MetricsStoreError as e:
        raise ServiceUnavailable(f"The log store failed: {e}", code="metrics_store_error") from e
    return [line._asdict() for line in lines]


def profile_compare(*, a: Job, b: Job, limit: int = 100) -> dict:
    """Operator tables of two profiles side by side: self time, calls, FLOPs and the ratio."""
    from hub.stores.metrics import get_metrics_store

    ops = get_metrics_store().profile_ops([a.pk, b.pk], limit=1000)
    ta = {r["op"]: r for r in ops[a.pk]}
    tb = {r["op"]: r for r in ops[b.pk]}
    rows = []
    for op in set(ta) | set(tb):
        ra, rb = ta.get(op), tb.get(op)
        rows.append({"op": op, "a": ra, "b": rb,
                     "self_us_ratio": (rb["self_us"] / ra["self_us"]) if ra and rb and ra["self_us"] else None})
    rows.sort(key=lambda r: -max((r["a"] or {}).get("self_us", 0), (r["b"] or {}).get("self_us", 0)))
    total_a = sum(r["self_us"] for r in ops[a.pk])
    total_b = sum(r["self_us"] for r in ops[b.pk])
    return {"a": {"job": a.pk, "commit": a.base_commit, "total_self_us": total_a},
            "b": {"job": b.pk, "commit": b.base_commit, "total_self_us": total_b},
            "ops": rows[:limit]}
