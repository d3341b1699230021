"""Profile memory and profile diff: reading a profile job's artifacts, and pairing two
profiles of the same settings (finding or launching them) for ``hub profile diff A B``.

A side of a diff is a profile job id, or ``namespace/repo@ref`` (a branch, tag or commit id).
For a ref the hub pins the commit, then reuses the newest succeeded-or-running profile job of
that commit whose config equals the settings (same seed, batch, sequence length, data,
steps: the whole config, compared canonically), or launches one with those settings. The
settings come from the request's ``config``, else from a side that is a job, else from the
newest profile job of either commit; without any, the request is refused
(``profile_config_required``)."""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings

from hub.common.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from hub.jobs import selectors, services
from hub.jobs.models import Job
from hub.shared import profile_diff

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _limit(name: str) -> int:
    return int(getattr(settings, name))


def read_artifact(job: Job, path: str) -> bytes | None:
    """An artifact's bytes (None if the job has none of that path); over
    HUB_PROFILE_ARTIFACT_MAX_BYTES it is a 413 rather than a huge read."""
    from hub.registry.selectors import file_iter

    art = job.artifacts.select_related("file").filter(path=path).first()
    if art is None:
        return None
    cap = _limit("HUB_PROFILE_ARTIFACT_MAX_BYTES")
    if art.file.size > cap:
        raise PayloadTooLarge(
            f"{path} of job {job.pk} is {art.file.size} bytes, over the {cap} the hub reads "
            "(HUB_PROFILE_ARTIFACT_MAX_BYTES); download it instead.",
            code="profile_too_large",
        )
    return b"".join(file_iter(file=art.file))


def _require_profile(job: Job) -> None:
    if job.kind != Job.Kind.PROFILE:
        raise InvalidInput(
            f"Job {job.pk} is a {job.kind} job, not a profile.", code="not_a_profile"
        )


def memory(*, job: Job) -> dict[str, Any]:
    """lifetimes.json, capped to the limits: tensors of each list, timeline points."""
    _require_profile(job)
    raw = read_artifact(job, "profile/lifetimes.json")
    if raw is None:
        raise NotFound(
            f"Job {job.pk} has no tensor lifetimes (a profile from before they were recorded, "
            "one with profile.lifetimes off, or one that has not finished).",
            code="profile_memory_missing",
        )
    try:
        return _memory_out(job, json.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        raise Conflict(
            f"profile/lifetimes.json of job {job.pk} is not a memory profile the hub can read.",
            code="profile_memory_unreadable",
        ) from None


def _memory_out(job: Job, data: dict) -> dict[str, Any]:
    n = _limit("HUB_PROFILE_MEMORY_MAX_TENSORS")
    max_points = _limit("HUB_PROFILE_MEMORY_MAX_POINTS")
    longest, largest = data.get("longest", [])[:n], data.get("largest", [])[:n]
    peak = dict(data["peak"])
    peak["live"] = peak.get("live", [])[:n]
    keep = set(longest) | set(largest) | set(peak["live"])
    points = data["points"]
    if len(points) > max_points:
        step = len(points) / max_points
        points = [
            max(
                points[int(i * step) : int((i + 1) * step)] or [points[-1]],
                key=lambda p: sum(p[1:]),
            )
            for i in range(max_points)
        ]
    return {
        "job": job.pk,
        "commit": job.base_commit,
        "device": data.get("device", "cpu"),
        "categories": data["categories"],
        "columns": data["columns"],
        "points": points,
        "duration_ms": data.get("duration_ms", 0.0),
        "peak": peak,
        "tensor_count": data.get("tensor_count", 0),
        "tensors": [t for t in data["tensors"] if t["id"] in keep],
        "longest": longest,
        "largest": largest,
        "snapshot": job.artifacts.filter(path="profile/memory_snapshot.pickle").exists(),
    }


# --- diff -------------------------------------------------------------------------------------


def _canonical(config: dict) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def _parse_ref(spec: str) -> tuple[str, str, str] | None:
    """``ns/repo@ref`` → (ns, repo, ref); None for anything else (a job id)."""
    repo, at, ref = spec.partition("@")
    ns, slash, name = repo.partition("/")
    if not (at and slash and ns and name and ref):
        return None
    return ns, name, ref


def _side(request, spec: str) -> dict[str, Any]:
    """A job (read access) or a pinned commit; unknown either way is a clear 404."""
    from hub.registry import selectors as registry

    spec = (spec or "").strip()
    if not spec:
        raise InvalidInput("Both sides of a diff are needed: a and b.", code="profile_side_missing")
    ref = _parse_ref(spec)
    if ref is None:
        if not _JOB_ID.match(spec):
            raise InvalidInput(
                f"{spec!r} is neither a job id nor namespace/repo@ref.", code="profile_side_invalid"
            )
        job = selectors.job_for(request, job_id=spec)
        _require_profile(job)
        return {"spec": spec, "job": job, "repo": job.base_repo, "commit": job.base_commit}
    ns, name, r = ref
    repo = registry.repo_for(request, namespace=ns, name=name)
    try:
        commit = registry.resolve(repo=repo, ref=r).sha
    except NotFound:
        raise NotFound(
            f"{ns}/{name} has no branch, tag or commit {r!r}.", code="ref_not_found"
        ) from None
    return {"spec": spec, "job": None, "repo": f"{ns}/{name}", "commit": commit}


_REUSABLE = (Job.Status.SUCCEEDED, Job.Status.RUNNING, Job.Status.QUEUED)


def _find(repo: str, commit: str, config: dict) -> Job | None:
    want = _canonical(config)
    qs = Job.objects.filter(
        kind=Job.Kind.PROFILE, base_repo=repo, base_commit=commit, status__in=_REUSABLE
    ).order_by("-created_at")[:200]
    for job in qs:
        if _canonical(job.config) == want:
            return job
    return None


def prepare(request, *, a: str, b: str, config=None, project: str = "", resources=None) -> dict:
    """Both sides as profile jobs of identical settings: found, or launched (needs write
    access to ``project``, by default the project of a side that is a job)."""
    from hub.accounts import selectors as accounts
    from hub.accounts.models import Role
    from hub.tracking.services import project_get_or_create

    sides = [_side(request, a), _side(request, b)]
    jobs = [s["job"] for s in sides if s["job"] is not None]
    if config is None:
        if jobs:
            config = jobs[0].config
        else:
            for s in sides:
                found = (
                    Job.objects.filter(
                        kind=Job.Kind.PROFILE, base_repo=s["repo"], base_commit=s["commit"]
                    )
                    .order_by("-created_at")
                    .first()
                )
                if found is not None:
                    config = found.config
                    break
    if config is None:
        raise InvalidInput(
            "Neither side has a profile to take the settings from: pass config (the profile "
            'job\'s config, e.g. {"profile": {"steps": 3}}).',
            code="profile_config_required",
        )
    if not isinstance(config, dict):
        raise InvalidInput("config must be an object.", code="invalid_config")
    services.validate_job_config(Job.Kind.PROFILE, config)
    for job in jobs:
        if _canonical(job.config) != _canonical(config):
            raise Conflict(
                f"Job {job.pk} was profiled with other settings than the ones given; a diff "
                "compares profiles of identical settings.",
                code="profile_settings_differ",
            )
    if len(jobs) == 2 and _canonical(jobs[0].config) != _canonical(jobs[1].config):
        raise Conflict(
            f"Jobs {jobs[0].pk} and {jobs[1].pk} were profiled with different settings; a diff "
            "compares profiles of identical settings.",
            code="profile_settings_differ",
        )
    out = []
    for s in sides:
        launched = False
        job = s["job"] or _find(s["repo"], s["commit"], config)
        if job is None:
            if not request.user.is_authenticated:
                from hub.common.errors import NotAuthenticated

                raise NotAuthenticated("Launching a profile needs a signed-in user.")
            proj = project or (
                jobs[0].project.namespace.name + "/" + jobs[0].project.name if jobs else ""
            )
            if not proj:
                raise InvalidInput(
                    f"No profile of {s['spec']} with these settings exists; name a project to "
                    "launch one in.",
                    code="project_required",
                )
            ns, _, name = proj.partition("/")
            namespace = accounts.namespace_get(name=ns)
            accounts.require_role(request, namespace=namespace, role=Role.WRITE)
            job = services.job_launch(
                project=project_get_or_create(namespace=namespace, name=name),
                user=request.user,
                kind=Job.Kind.PROFILE,
                config=config,
                base=f"{s['repo']}@{s['commit']}",
                resources=resources,
            )
            launched = True
        out.append(
            {
                "spec": s["spec"],
                "job": job.pk,
                "commit": job.base_commit,
                "repo": job.base_repo,
                "status": job.status,
                "launched": launched,
            }
        )
    return {
        "a": out[0],
        "b": out[1],
        "ready": all(o["status"] == Job.Status.SUCCEEDED for o in out),
    }


def diff(*, a: Job, b: Job) -> dict[str, Any]:
    """Per-operator ratios and the differential flame graph of two finished profiles."""
    from hub.stores.metrics import get_metrics_store

    for job in (a, b):
        _require_profile(job)
        if job.status != Job.Status.SUCCEEDED:
            raise Conflict(
                f"Profile job {job.pk} is {job.status}; a diff needs two finished profiles.",
                code="profile_not_ready",
                details={"job": job.pk, "status": job.status},
            )
    steps = []
    for job in (a, b):
        s = (job.summary or {}).get("steps") or ((job.config or {}).get("profile") or {}).get(
            "steps"
        )
        steps.append(int(s or 3))
    ops = get_metrics_store().profile_ops([a.pk, b.pk], limit=1000)
    rows = profile_diff.op_ratios(ops[a.pk], ops[b.pk], steps_a=steps[0], steps_b=steps[1])
    folded = [
        profile_diff.parse_folded((read_artifact(j, "profile/stacks.folded") or b"").decode())
        for j in (a, b)
    ]
    tree = profile_diff.diff_tree(
        folded[0],
        folded[1],
        steps_a=steps[0],
        steps_b=steps[1],
        max_frames=_limit("HUB_PROFILE_DIFF_MAX_FRAMES"),
    )
    return {
        "a": {"job": a.pk, "commit": a.base_commit, "repo": a.base_repo, "steps": steps[0]},
        "b": {"job": b.pk, "commit": b.base_commit, "repo": b.base_repo, "steps": steps[1]},
        "same_settings": _canonical(a.config) == _canonical(b.config),
        "summary": profile_diff.summary(rows, tree),
        "ops": rows,
        "flame": tree,
    }
