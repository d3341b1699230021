"""Every write of the tracking domain."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from hub.common.errors import Conflict, InvalidInput
from hub.common.limits import limit, nesting_depth
from hub.common.validation import validate_slug
from hub.stores._search_layout import flatten_params, keyword_text
from hub.stores.metrics import get_metrics_store
from hub.tracking import indexing
from hub.tracking.ingest import Batch, merge_summary, summarize
from hub.tracking.models import Project, Run
from hub.tracking.report import DIRECTIONS

RUN_ID = re.compile(r"^[a-z0-9]{8,32}$")
# Control characters in a key: never meant, and U+001F separates key and value in the index.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@transaction.atomic
def project_get_or_create(
    *, namespace, name: str, private: bool = False, description: str = ""
) -> Project:
    validate_slug(name, what="project name")
    project = Project.objects.filter(namespace=namespace, name=name).first()
    if project:
        return project
    try:
        with transaction.atomic():
            return Project.objects.create(
                namespace=namespace, name=name, private=private, description=description
            )
    except IntegrityError:
        return Project.objects.get(namespace=namespace, name=name)


@transaction.atomic
def project_update(
    *,
    project: Project,
    description: str | None = None,
    metric_directions: dict | None = None,
) -> Project:
    """Change a project's description and/or its ``metric_directions`` (``{metric key or
    glob: "min" | "max" | "none"}``, replacing the old ones whole; ``{}`` clears them). At most
    ``HUB_MAX_METRIC_DIRECTIONS`` entries, each key at most ``HUB_MAX_KEY_CHARS``."""
    fields = []
    if description is not None:
        project.description = description
        fields.append("description")
    if metric_directions is not None:
        project.metric_directions = _clean_metric_directions(metric_directions)
        fields.append("metric_directions")
    if fields:
        project.full_clean()
        project.save(update_fields=fields)
    return project


def _clean_metric_directions(value) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidInput(
            'metric_directions must be an object: {"metric key or glob": "min" | "max" | "none"}.',
            code="invalid_metric_directions",
        )
    most = limit("HUB_MAX_METRIC_DIRECTIONS")
    if len(value) > most:
        raise InvalidInput(
            f"A project has at most {most} metric directions; these are {len(value)}.",
            code="too_many_metric_directions",
            details={"limit": most},
        )
    max_key = limit("HUB_MAX_KEY_CHARS")
    bad = {
        str(k)[:max_key]: v
        for k, v in value.items()
        if not k or len(k) > max_key or _CONTROL.search(k) or v not in DIRECTIONS
    }
    if bad:
        raise InvalidInput(
            f"Each metric direction maps a non-empty key or glob (at most {max_key} characters) "
            f"to one of {', '.join(DIRECTIONS)}.",
            code="invalid_metric_directions",
            details={"invalid": bad},
        )
    return dict(value)


def _clean_tags(tags) -> list[str]:
    """Tags as stored: deduplicated, in order. Limits: ``HUB_MAX_TAGS_PER_RUN`` tags of at
    most ``HUB_MAX_TAG_CHARS`` characters each (``hub/common/limits.py``)."""
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise InvalidInput("Tags must be a list of non-empty strings.", code="invalid_tags")
    max_chars, max_tags = limit("HUB_MAX_TAG_CHARS"), limit("HUB_MAX_TAGS_PER_RUN")
    long = [t[:60] for t in tags if len(t) > max_chars]
    if long:
        raise InvalidInput(
            f"Tags are at most {max_chars} characters.",
            code="tag_too_long",
            details={"limit": max_chars, "tags": long[:20]},
        )
    tags = list(dict.fromkeys(tags))
    if len(tags) > max_tags:
        raise InvalidInput(
            f"A run has at most {max_tags} tags; this would make {len(tags)}.",
            code="too_many_tags",
            details={"limit": max_tags, "tags": len(tags)},
        )
    return tags


def _param_value_chars(value) -> int:
    if isinstance(value, list):
        return sum(len(keyword_text(v)) + 1 for v in value)
    return (
        len(keyword_text(value)) if isinstance(value, str | int | float | bool) else len(str(value))
    )


def _flat_params(params) -> dict:
    """Params flattened to dotted keys, checked against the limits of ``hub/common/limits.py``
    (depth before flattening, which recurses; then keys, values and count) -- all before
    anything is written."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidInput(
            "Params must be a JSON object (nested objects are flattened with dots).",
            code="invalid_params",
        )
    max_depth = limit("HUB_MAX_PARAMS_DEPTH")
    depth = nesting_depth(params)
    if depth > max_depth:
        raise InvalidInput(
            f"Params nest at most {max_depth} levels deep; these nest {depth}.",
            code="params_too_deep",
            details={"limit": max_depth, "depth": depth},
        )
    flat = flatten_params(params)
    max_key, max_value = limit("HUB_MAX_KEY_CHARS"), limit("HUB_MAX_PARAM_VALUE_CHARS")
    for k, v in flat.items():
        if not k or _CONTROL.search(k):
            raise InvalidInput(
                f"Param keys must be non-empty, without control characters: {k[:60]!r}",
                code="invalid_params",
            )
        if len(k) > max_key:
            raise InvalidInput(
                f"Keys are at most {max_key} characters (dotted, after flattening): {k[:60]!r}...",
                code="key_too_long",
                details={"limit": max_key, "length": len(k)},
            )
        if _param_value_chars(v) > max_value:
            raise InvalidInput(
                f"Param values are at most {max_value} characters; {k[:60]!r} is larger "
                "(log large values as artifacts).",
                code="param_value_too_large",
                details={"limit": max_value, "key": k[:250]},
            )
    _check_param_count(len(flat))
    return flat


def _check_param_count(count: int) -> None:
    max_params = limit("HUB_MAX_PARAMS_PER_RUN")
    if count > max_params:
        raise InvalidInput(
            f"A run has at most {max_params} params; this would make {count}.",
            code="too_many_params",
            details={"limit": max_params, "params": count},
        )


def _param_conflicts(logged: dict, new: dict) -> dict:
    return {
        k: {"logged": logged[k], "new": v} for k, v in new.items() if k in logged and logged[k] != v
    }


def _raise_param_conflicts(conflicts: dict) -> None:
    if conflicts:
        raise Conflict(
            f"{len(conflicts)} param(s) already logged with another value; params are write-once.",
            code="param_conflict",
            details=conflicts,
        )


def run_create(
    *,
    project: Project,
    user,
    name: str | None = None,
    group: str = "",
    params: dict | None = None,
    tags: list | None = None,
    notes: str = "",
    run_id: str | None = None,
    commit_repo: str = "",
    commit_sha: str = "",
    job_id: str = "",
    started_at: datetime | None = None,
) -> tuple[Run, bool]:
    """Create a run. A client-chosen ``run_id`` makes creation idempotent: a retry (or a
    resumed process) gets the existing run back, with created=False. Resuming follows the
    same rules as logging params: a param logged with another value is 409
    ``param_conflict`` (nothing changes), new param keys are added, new tags are merged."""
    if run_id is not None and not RUN_ID.match(run_id):
        raise InvalidInput(
            "run_id must be 8-32 lowercase letters or digits.", code="invalid_run_id"
        )
    flat = _flat_params(params)
    tags = _clean_tags(tags)
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise InvalidInput("Run names are at most 200 characters.", code="invalid_name")
    run_id = run_id or secrets.token_hex(8)
    for _ in range(2):  # a concurrent create of the same run_id: the loser resumes it
        existing = Run.objects.filter(pk=run_id).first()
        if existing:
            return _run_resume(existing, project=project, params=flat, tags=tags), False
        try:
            with transaction.atomic():
                run = Run.objects.create(
                    id=run_id,
                    project=project,
                    user=user,
                    name=name or run_id,
                    group=group or "",
                    params=flat,
                    tags=tags,
                    notes=notes or "",
                    commit_repo=commit_repo or "",
                    commit_sha=commit_sha or "",
                    job_id=job_id or "",
                    started_at=started_at or timezone.now(),
                )
                indexing.schedule_run(run.pk)
            return run, True
        except IntegrityError:
            continue
    raise Conflict(f"Run {run_id} could not be created.", code="run_exists")


def _run_resume(run: Run, *, project: Project, params: dict, tags: list[str]) -> Run:
    if run.project_id != project.pk:
        raise Conflict(f"Run {run.pk} belongs to another project.", code="run_exists")
    with transaction.atomic():
        run = (
            Run.objects.select_for_update()
            .select_related("project__namespace", "user")
            .get(pk=run.pk)
        )
        _raise_param_conflicts(_param_conflicts(run.params, params))
        fields = ["updated_at"]
        _check_param_count(len(run.params.keys() | params.keys()))
        if any(k not in run.params for k in params):
            run.params = {**run.params, **params}
            fields.append("params")
        if any(t not in run.tags for t in tags):
            run.tags = _clean_tags(run.tags + [t for t in tags if t not in run.tags])
            fields.append("tags")
        if len(fields) > 1:
            run.save(update_fields=fields)
            indexing.schedule_run(run.pk)
    return run


def run_log_params(*, run: Run, params: dict) -> Run:
    """Params are write-once per key (as in MLflow): the same value again is fine, a different
    value is 409 ``param_conflict`` with both values, and nothing is written."""
    flat = _flat_params(params)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        _raise_param_conflicts(_param_conflicts(run.params, flat))
        _check_param_count(len(run.params.keys() | flat.keys()))
        if any(k not in run.params for k in flat):
            run.params = {**run.params, **flat}
            run.save(update_fields=["params", "updated_at"])
            indexing.schedule_run(run.pk)
    return run


def run_update(
    *,
    run: Run,
    status: str | None = None,
    name: str | None = None,
    group: str | None = None,
    notes: str | None = None,
    add_tags: list | None = None,
    remove_tags: list | None = None,
    commit_repo: str | None = None,
    commit_sha: str | None = None,
    job_id: str | None = None,
) -> Run:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        fields = ["updated_at"]
        if status is not None:
            if status not in Run.Status.values:
                raise InvalidInput(
                    f"Unknown status {status!r}; use {', '.join(Run.Status.values)}.",
                    code="invalid_status",
                )
            run.status = status
            fields.append("status")
            if status != Run.Status.RUNNING and run.ended_at is None:
                run.ended_at = timezone.now()
                fields.append("ended_at")
        for attr, value, limit in (
            ("name", name, 200),
            ("group", group, 200),
            ("notes", notes, 100_000),
        ):
            if value is not None:
                if not isinstance(value, str) or len(value) > limit:
                    raise InvalidInput(
                        f"{attr} must be a string of at most {limit} characters.",
                        code=f"invalid_{attr}",
                    )
                setattr(run, attr, value)
                fields.append(attr)
        if add_tags or remove_tags:
            tags = [t for t in run.tags if t not in set(_clean_tags(remove_tags or []))]
            run.tags = _clean_tags(tags + [t for t in _clean_tags(add_tags or []) if t not in tags])
            fields.append("tags")
        for attr, value in (
            ("commit_repo", commit_repo),
            ("commit_sha", commit_sha),
            ("job_id", job_id),
        ):
            if value is not None:
                setattr(run, attr, value)
                fields.append(attr)
        run.save(update_fields=fields)
        indexing.schedule_run(run.pk)
    return run


def _check_metric_keys(summary: dict, keys: list[str]) -> None:
    max_keys = limit("HUB_MAX_METRIC_KEYS_PER_RUN")
    new = [k for k in keys if k not in summary]
    if new and len(summary) + len(new) > max_keys:
        raise InvalidInput(
            f"A run has at most {max_keys} distinct metric keys; it has {len(summary)} and this batch "
            f"adds {len(new)}.",
            code="too_many_metric_keys",
            details={"limit": max_keys, "keys_in_run": len(summary), "new_keys": len(new)},
        )


def metrics_ingest(*, run: Run, batch: Batch) -> dict:
    """Write a validated batch: the points go to ClickHouse first (idempotent: a retry
    collapses), then the run's summaries move in one DB transaction. If ClickHouse is down
    (including when the store cannot even be created, e.g. at the first request after a
    start) the store error propagates (the API answers 503 with ``Retry-After`` either way: a
    refused write says nothing about the batch, which was validated before; the client
    retries it) and nothing changed; if the DB write fails after the insert,
    the client's retry re-inserts the same rows, which collapse.

    A batch that would take the run over ``HUB_MAX_METRIC_KEYS_PER_RUN`` distinct keys is
    refused before the insert (``too_many_metric_keys``, nothing written). The check reads
    the run's keys without a lock, so concurrent batches of one run may overshoot the limit
    by at most their own new keys."""
    _check_metric_keys(Run.objects.only("summary").get(pk=run.pk).summary, batch.keys)
    get_metrics_store().insert_columns(
        run_id=run.pk,
        key=batch.key_column(),
        step=batch.step,
        wall_time=batch.time,
        value=batch.value,
    )
    batch_summary = summarize(batch)
    with transaction.atomic():
        locked = Run.objects.select_for_update().only("summary").get(pk=run.pk)
        locked.summary = merge_summary(locked.summary, batch_summary)
        locked.save(update_fields=["summary", "updated_at"])
        indexing.schedule_run(run.pk)
    return {"accepted": len(batch), "keys": len(batch.keys)}


def run_delete(*, run: Run) -> None:
    """Metrics first: if the store is down the run stays (503) and the delete can be retried;
    the reverse order would leave orphaned points nobody can reach."""
    get_metrics_store().delete_run(run.pk)
    run_id = run.pk
    with transaction.atomic():
        run.delete()
        transaction.on_commit(lambda: indexing.delete_run(run_id))


def run_alerts_add(*, run: Run, alerts: list[dict]) -> dict:
    """Record MoE health alerts (validated by the API: kind, key, step, message, details,
    action, time). Idempotent per (key, step): a retried post adds nothing. A post that would
    take the run over ``HUB_MAX_ALERTS_PER_RUN`` is refused whole (``too_many_alerts``)."""
    from hub.tracking.models import RunAlert

    cap = limit("HUB_MAX_ALERTS_PER_RUN")
    with transaction.atomic():
        Run.objects.select_for_update().only("pk").get(pk=run.pk)  # one writer per run
        existing = set(RunAlert.objects.filter(run=run).values_list("key", "step"))
        new = []
        for a in alerts:
            if (a["key"], a["step"]) in existing:
                continue
            existing.add((a["key"], a["step"]))
            new.append(
                RunAlert(
                    run=run,
                    kind=a["kind"],
                    key=a["key"],
                    step=a["step"],
                    time=a.get("time") or timezone.now(),
                    message=a["message"],
                    details=a.get("details") or {},
                    action=a.get("action") or "none",
                )
            )
        count = len(existing) - len(new)
        if new and count + len(new) > cap:
            raise InvalidInput(
                f"A run holds at most {cap} alerts; it has {count} and this post adds {len(new)}.",
                code="too_many_alerts",
                details={"limit": cap, "alerts_in_run": count, "new_alerts": len(new)},
            )
        RunAlert.objects.bulk_create(new)
    return {"accepted": len(new), "duplicates": len(alerts) - len(new)}
