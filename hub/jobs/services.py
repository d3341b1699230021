"""Every write of the jobs domain: launch, cancel, relaunch, and what workers report."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hub.common.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceUnavailable
from hub.jobs.models import Job, JobArtifact, JobTransition
from hub.shared.resources import ResourcesRefused, check_resources

if TYPE_CHECKING:
    from workers.moe.config import Config

log = logging.getLogger(__name__)
#: The workers' task that runs a job (``workers.tasks.run_job``), named, not imported.
RUN_JOB_TASK = "workers.tasks.run_job"

ALLOWED = {
    Job.Status.QUEUED: {Job.Status.RUNNING, Job.Status.CANCELLED, Job.Status.FAILED},
    Job.Status.RUNNING: {
        Job.Status.SUCCEEDED,
        Job.Status.FAILED,
        Job.Status.CANCELLED,
        Job.Status.LOST,
        Job.Status.QUEUED,
    },
}


def validate_job_config(kind: str, config) -> Config:
    """The workload's own schema decides: every problem is listed, nothing is queued.

    The one validation of a job config on the hub: returns the parsed config
    (``workers.moe.config.Config``, defaults resolved), which the launch passes on to the
    checks that read it; the job's entry point validates again in the sandbox, as its own
    defence."""
    from workers.moe.config import validate_config

    if kind not in Job.Kind.values:
        raise InvalidInput(
            f"Unknown job kind {kind!r}; use {', '.join(Job.Kind.values)}.", code="invalid_kind"
        )
    if not isinstance(config, dict):
        raise InvalidInput(
            "'config' must be a JSON object.",
            code="invalid_config",
            details={"errors": [{"path": "", "message": "must be an object"}]},
        )
    cfg, errors = validate_config(kind, config)
    if errors:
        raise InvalidInput(
            f"The {kind} config has {len(errors)} problem(s).",
            code="invalid_config",
            details={"errors": errors},
        )
    return cfg


def _resources(raw) -> dict:
    """The launcher's resource requests by the shared rule (:mod:`hub.shared.resources`, which
    the supervisor reads them by), with this deployment's disk quota default and maximum."""
    try:
        return check_resources(
            raw, disk_mb=settings.HUB_JOB_DISK_MB, max_disk_mb=settings.HUB_JOB_MAX_DISK_MB
        )
    except ResourcesRefused as e:
        raise InvalidInput(e.message, code=e.code, details=e.details) from None


def _check_device(cfg: Config, res: dict) -> None:
    """A job with no GPUs runs on a CPU worker: a config that needs CUDA would only fail there.
    ``cfg`` is the config :func:`validate_job_config` parsed."""
    from workers.moe.config import fp16_needs_cuda

    if res["gpus"] > 0:
        return
    rt = cfg.runtime
    problems = []
    if rt.device == "cuda":
        problems.append(
            {
                "path": "runtime.device",
                "message": "cuda needs a GPU: launch with resources.gpus ≥ 1, or use device=auto or cpu",
            }
        )
    fp16 = fp16_needs_cuda(rt, no_cuda="the job asks for no GPU (resources.gpus = 0)")
    if fp16:
        problems.append({"path": "runtime.dtype", "message": fp16})
    if problems:
        raise InvalidInput(
            f"The {cfg.kind} config needs CUDA but the job asks for no GPU.",
            code="invalid_config",
            details={"errors": problems},
        )


def _record(job: Job, from_status: str, to_status: str, reason: str) -> None:
    JobTransition.objects.create(
        job=job, from_status=from_status, to_status=to_status, reason=reason
    )


def _refuse_adapter_over_a_model(*, repo, branch: str) -> None:
    """A fine-tune that keeps only its adapter commits a tree of the adapter alone (plus the base
    commit's id): on a branch that holds a model it would replace the model's files. Refused
    at launch rather than discovered after the run."""
    from hub.registry import selectors as registry

    try:
        head = registry.resolve(repo=repo, ref=f"refs/heads/{branch}")
    except NotFound:
        return  # a new branch: created at the base commit, then holds the adapter
    weights = sorted(
        p for p in head.tree.entries if p.endswith(".safetensors") and "adapter" not in p
    )
    if weights:
        raise Conflict(
            f"This fine-tune commits its adapter alone, which would replace {', '.join(weights[:3])} "
            f"on {repo.namespace.name}/{repo.name}@{branch}. Target a branch of its own "
            f"(e.g. --target {repo.namespace.name}/{repo.name}@adapters/<name>), or set "
            "lora.save_merged to commit the merged weights.",
            code="adapter_would_replace_model",
            details={"branch": branch, "files": weights},
        )


def job_launch(
    *,
    project,
    user,
    kind: str,
    config: dict,
    base: str = "",
    target: str = "",
    resources=None,
    relaunched_from: str = "",
) -> Job:
    """Validate everything, pin the base model to a commit id, queue the job.

    ``base`` and ``target`` are ``namespace/repo@ref`` and ``namespace/repo@branch``."""
    from hub.accounts import selectors as accounts
    from hub.registry import selectors as registry

    cfg = validate_job_config(kind, config)
    res = _resources(resources)
    _check_device(cfg, res)
    base_repo = base_ref = base_commit = ""
    if base:
        base_repo, _, base_ref = base.partition("@")
        ns, _, name = base_repo.partition("/")
        repo = registry.repo_get(namespace=ns, name=name)
        if repo.private and accounts.role_in(user=user, namespace=repo.namespace) is None:
            raise NotFound(f"Repo {base_repo} not found.", code="repo_not_found")
        base_commit = registry.resolve(repo=repo, ref=base_ref or repo.default_branch).sha
    elif kind in (
        Job.Kind.EVALUATE,
        Job.Kind.PROFILE,
        Job.Kind.FINETUNE,
        Job.Kind.QUANTIZE,
        Job.Kind.INSPECT,
    ):
        raise InvalidInput(
            f"A {kind} job needs a base model: base='namespace/repo@ref'.", code="base_required"
        )
    if kind == Job.Kind.QUANTIZE:
        # The quantized model is a version of the base: a branch of the same repo (default
        # quantized/<method>), created at the base commit by the worker.
        target = target or f"{base_repo}@quantized/{cfg.quantize.method}"
        if target.partition("@")[0] != base_repo:
            raise InvalidInput(
                f"A quantize job commits to a branch of its base's repo ({base_repo}).",
                code="quantize_target_repo",
                details={"base": base_repo, "target": target.partition("@")[0]},
            )
    target_repo, _, target_branch = (target or "").partition("@")
    if target_repo:
        from hub.accounts.models import Role
        from hub.common.validation import validate_ref_name
        from hub.registry.models import Ref

        ns, _, name = target_repo.partition("/")
        repo = registry.repo_get(namespace=ns, name=name)
        role = accounts.role_in(user=user, namespace=repo.namespace)
        if (
            repo.private and role is None
        ):  # exactly as if it did not exist: its existence is private too
            raise NotFound(f"Repo {ns}/{name} not found.", code="repo_not_found")
        if (role or "") not in (Role.WRITE, Role.ADMIN):
            raise Forbidden(f"You cannot write to {target_repo}.", code="target_forbidden")
        target_branch = target_branch or repo.default_branch
        try:
            target_branch = registry.branch_get(repo=repo, name=target_branch).name
        except NotFound:
            if base_repo and base_repo == target_repo:
                # The worker creates it at the base commit: the name must be one a branch may take.
                from hub.registry.services import ref_name_check

                ref_name_check(repo=repo, name=target_branch, kind=Ref.Kind.BRANCH)
            else:
                validate_ref_name(target_branch)
                # Found now, not after an hour of training when the result cannot be committed.
                raise InvalidInput(
                    f"Branch {target_branch!r} does not exist in {target_repo}. Create it first "
                    f"(hub branch create {target_repo} {target_branch}), or launch from a base in {target_repo}: "
                    "the branch is then created at the base commit.",
                    code="target_branch_not_found",
                    details={"repo": target_repo, "branch": target_branch},
                ) from None
    if kind == Job.Kind.FINETUNE and target_repo and not (cfg.lora and cfg.lora.save_merged):
        _refuse_adapter_over_a_model(repo=repo, branch=target_branch)
    queue = "gpu" if res["gpus"] > 0 else "cpu"
    if queue == "gpu":
        from hub.jobs.presence import workers_online

        if not workers_online("gpu"):
            raise ServiceUnavailable(
                f"This job asks for {res['gpus']} GPU(s) but no GPU worker is online; it would wait forever. "
                "Start a GPU worker (celery -A workers.celery_app worker -Q gpu) or launch with gpus=0.",
                code="no_gpu_worker",
                retry_after=30,
            )
    with transaction.atomic():
        job = Job.objects.create(
            id=secrets.token_hex(6),
            project=project,
            kind=kind,
            config=config,
            base_repo=base_repo,
            base_ref=base_ref,
            base_commit=base_commit,
            target_repo=target_repo,
            target_branch=target_branch,
            resources=res,
            queue=queue,
            created_by=user,
            relaunched_from=relaunched_from,
        )
        _record(
            job,
            "",
            Job.Status.QUEUED,
            "launched" + (f" again from {relaunched_from}" if relaunched_from else ""),
        )
        transaction.on_commit(lambda: _enqueue(job))
    return job


def _enqueue(job: Job) -> None:
    """Queue the job's task by name: the hub never imports the workers' code (they meet only
    through the broker and the hub's API). Always through the broker, eager or not."""
    try:
        from hub.celery_app import app

        app.send_task(RUN_JOB_TASK, args=[job.pk], queue=job.queue, retry=False)
    except Exception as e:  # the broker is down: the job cannot run, say so
        log.exception("could not queue job %s", job.pk)
        job_transition(
            job_id=job.pk, to=Job.Status.FAILED, reason=f"could not reach the job queue: {e}"
        )


def job_transition(
    *, job_id: str, to: str, reason: str = "", expect: str | None = None, **fields
) -> Job:
    """Move a job to ``to`` if that move is allowed from its current state (and, with
    ``expect``, only from that state) — a compare-and-swap on the status column."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise NotFound(f"Job {job_id} not found.", code="job_not_found")
        current = job.status
        if expect is not None and current != expect:
            raise Conflict(
                f"Job {job_id} is {current}, not {expect}.",
                code="job_state_conflict",
                details={"status": current},
            )
        if to not in ALLOWED.get(current, set()):
            raise Conflict(
                f"Job {job_id} cannot go from {current} to {to}.",
                code="job_state_conflict",
                details={"status": current},
            )
        now = timezone.now()
        job.status = to
        job.status_reason = reason
        if to == Job.Status.RUNNING:
            job.started_at = job.started_at or now
            job.heartbeat_at = now
            job.attempt += 1
        if to in Job.TERMINAL:
            job.ended_at = now
        for k, v in fields.items():
            setattr(job, k, v)
        job.save()
        _record(job, current, to, reason)
        if (
            current == Job.Status.RUNNING
        ):  # the attempt ended (finish, requeue, lost, cancel): so does its credential
            from hub.accounts.services import job_credentials_revoke

            job_credentials_revoke(job_id=job.pk)
    return job


def _attempt_rules(job: Job) -> list:
    """What one attempt's credential reaches, as ``[methods, path, prefix?]`` (``*``: one path
    segment): the job's record and worker endpoints, reading its base repo, committing to its
    target repo, and its own run in its project. Nothing else, whatever its launcher may do."""
    j = f"/api/v1/jobs/{job.pk}"
    rules = [[["GET"], j, False], [["POST", "PUT"], f"{j}/worker", True]]
    if job.base_repo:
        rules.append([["GET", "HEAD"], f"/api/v1/repos/{job.base_repo}", True])
    if job.target_repo:
        t = f"/api/v1/repos/{job.target_repo}"
        rules += [
            [["GET", "HEAD"], t, True],
            [["POST"], f"{t}/branches", False],
            [["POST"], f"{t}/chunks/missing", False],
            [["PUT"], f"{t}/chunks/*", False],
            [["POST"], f"{t}/commits", False],
        ]
    project = job.project
    rules.append(
        [["GET", "POST"], f"/api/v1/projects/{project.namespace.name}/{project.name}/runs", False]
    )
    rules.append([["GET", "POST", "PATCH"], f"/api/v1/runs/job{job.pk}a{job.attempt}", True])
    return rules


def job_start(*, job_id: str, worker: str, gpus: list[int]) -> tuple[Job, str]:
    """A worker takes a queued job (queued → running) and gets this attempt's own credential:
    the secret is returned once, only its hash is kept, and it dies with the attempt or after
    the job's time limit plus ``HUB_JOB_CREDENTIAL_MARGIN_S`` (pulling, uploading, committing)."""
    from hub.accounts.services import job_credential_issue

    with transaction.atomic():
        job = job_transition(
            job_id=job_id,
            to=Job.Status.RUNNING,
            expect=Job.Status.QUEUED,
            reason=f"started on {worker or '?'}",
            worker=worker,
            gpus=gpus,
        )
        job = Job.objects.select_related("project__namespace", "created_by").get(pk=job.pk)
        ttl = (
            float((job.resources or {}).get("time_limit_s", 3600))
            + settings.HUB_JOB_CREDENTIAL_MARGIN_S
        )
        secret = job_credential_issue(
            job_id=job.pk,
            attempt=job.attempt,
            acts_as=job.created_by,
            rules=_attempt_rules(job),
            ttl_s=ttl,
        )
    return job, secret


def job_cancel(*, job: Job, reason: str = "cancelled by the user") -> Job:
    """A queued job is cancelled at once; a running one is flagged, and its worker kills the
    sandbox within a heartbeat (the heartbeat's response carries ``cancel_requested``; every
    ``HEARTBEAT_S``, 2 s) and reports ``cancelled``."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status in Job.TERMINAL:
            raise Conflict(f"Job {job.pk} already ended ({job.status}).", code="job_finished")
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
        if job.status == Job.Status.QUEUED:
            return job_transition(job_id=job.pk, to=Job.Status.CANCELLED, reason=reason)
    return job


def job_heartbeat(*, job: Job, progress: dict | None = None, counters: dict | None = None) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status != Job.Status.RUNNING:
            return job
        job.heartbeat_at = timezone.now()
        fields = ["heartbeat_at"]
        if progress:
            job.progress = {k: progress.get(k) for k in ("step", "total", "eta_s") if k in progress}
            fields.append("progress")
        if counters:
            job.events_received = int(counters.get("received", job.events_received))
            job.events_rejected = int(counters.get("rejected", job.events_rejected))
            fields += ["events_received", "events_rejected"]
        job.save(update_fields=fields)
    return job


def jobs_reap_lost(*, older_than_s: int | None = None) -> list[str]:
    """Running jobs whose worker stopped heartbeating are ``lost`` (their process is gone or
    unreachable); a job never stays ``running`` without a live worker. Called every
    ``HUB_JOB_REAP_EVERY_S`` by ``manage.py jobs_reaper`` (which ``hub serve`` runs), and
    only there: a read of jobs never writes."""
    older_than_s = settings.HUB_JOB_LOST_AFTER_S if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    lost = []
    for job_id in Job.objects.filter(
        status=Job.Status.RUNNING, heartbeat_at__lt=cutoff
    ).values_list("pk", flat=True):
        try:
            job_transition(
                job_id=job_id,
                to=Job.Status.LOST,
                expect=Job.Status.RUNNING,
                reason=f"no heartbeat from its worker for over {older_than_s} s (worker died or lost)",
            )
            lost.append(job_id)
        except Conflict:
            pass
    return lost


def job_relaunch(*, job: Job, user) -> Job:
    if job.status not in Job.TERMINAL:
        raise Conflict(f"Job {job.pk} is still {job.status}.", code="job_not_finished")
    base = f"{job.base_repo}@{job.base_commit}" if job.base_repo else ""
    target = f"{job.target_repo}@{job.target_branch}" if job.target_repo else ""
    return job_launch(
        project=job.project,
        user=user,
        kind=job.kind,
        config=job.config,
        base=base,
        target=target,
        resources=job.resources,
        relaunched_from=job.pk,
    )


def job_logs_ingest(*, job: Job, lines: list) -> int:
    """Log lines from the worker: ``[seq, time, stream, line]``; retries collapse on seq."""
    from hub.stores.metrics import get_metrics_store

    rows = []
    for item in lines:
        if not (
            isinstance(item, list)
            and len(item) == 4
            and isinstance(item[0], int)
            and isinstance(item[2], str)
            and isinstance(item[3], str)
            and isinstance(item[1], int | float)
        ):
            raise InvalidInput(
                "Each log line is [seq, time, stream, text].", code="invalid_log_line"
            )
        rows.append((job.pk, item[0], float(item[1]), item[2][:32], item[3][:16384]))
    return get_metrics_store().insert_log_lines(rows)


def job_artifact_add(*, job: Job, path: str, kind: str, chunks: list) -> JobArtifact:
    from hub.common.validation import validate_path
    from hub.registry.services import _file_from_chunks

    validate_path(path)
    if kind == "inspect_graph":
        from hub.graphs.selectors import check_graph_size

        check_graph_size(chunks)
    f = _file_from_chunks(path=path, chunks=chunks)
    art, _ = JobArtifact.objects.update_or_create(
        job=job, path=path, defaults={"kind": kind, "file": f}
    )
    return art


def job_profile_ops(*, job: Job, rows: list) -> int:
    from hub.stores.metrics import MetricsStoreError, MetricsStoreUnavailable, get_metrics_store

    if not isinstance(rows, list) or len(rows) > 100_000:
        raise InvalidInput("'ops' must be a list of at most 100000 rows.", code="invalid_ops")
    store = get_metrics_store()
    try:
        return store.insert_profile_ops(job.pk, rows)
    except MetricsStoreUnavailable:
        raise
    except MetricsStoreError as e:  # the store refused a row: the worker's input, not an outage
        raise InvalidInput(str(e), code="invalid_ops") from e


def job_finish(
    *,
    job: Job,
    status: str,
    reason: str,
    summary: dict | None = None,
    result_commit: str = "",
    result_branch: str = "",
    run_id: str = "",
) -> Job:
    if status not in Job.TERMINAL:
        raise InvalidInput(f"A job ends as one of {sorted(Job.TERMINAL)}.", code="invalid_status")
    fields = {}
    if summary is not None:
        fields["summary"] = summary
    if result_commit:
        fields["result_commit"] = result_commit
        fields["result_branch"] = result_branch
    if run_id:
        fields["run_id"] = run_id
    events = (summary or {}).get("events")
    if isinstance(events, dict):  # the final counts (heartbeats carry them only while running)
        for name, key in (("events_received", "received"), ("events_rejected", "rejected")):
            if isinstance(events.get(key), int) and not isinstance(events.get(key), bool):
                fields[name] = events[key]
    # From running normally; from queued when a worker fails before it could start the job.
    return job_transition(job_id=job.pk, to=status, reason=reason, **fields)
