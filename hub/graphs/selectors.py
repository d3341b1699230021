"""The Inspector's computation graphs: the ``graph.json`` an inspect job stored (a job
artifact, ``workers/moe/inspect.py`` writes it), read under the caller's rights.

Who may read a graph: whoever may read the job's project *and* the commit's repo (a private
repo's graph is a 404 to everyone else, exactly as if it did not exist). A commit's graph is
its newest succeeded inspect (``what: graph``) job that the caller may read.
"""

from __future__ import annotations

import json
from typing import Any

from hub.common.errors import InvalidInput, NotFound, PayloadTooLarge
from hub.common.limits import limit
from hub.jobs.models import Job

GRAPH_PATH = "inspect/graph.json"
ONNX_PATH = "inspect/model.onnx"


def check_graph_size(chunks: Any) -> None:
    """Refuse a graph.json over ``HUB_INSPECT_MAX_GRAPH_BYTES`` before anything is stored."""
    size = 0
    if isinstance(chunks, list):
        for c in chunks:
            if isinstance(c, list | tuple) and len(c) == 2 and isinstance(c[1], int):
                size += max(0, c[1])
    cap = limit("HUB_INSPECT_MAX_GRAPH_BYTES")
    if size > cap:
        raise PayloadTooLarge(
            f"The graph is {size} bytes; graphs are limited to {cap} bytes "
            "(HUB_INSPECT_MAX_GRAPH_BYTES).",
            code="graph_too_large",
            details={"limit": cap, "size": size},
        )


def _repo_readable(request, repo_spec: str):
    from hub.registry.selectors import repo_for

    ns, _, name = repo_spec.partition("/")
    return repo_for(request, namespace=ns, name=name)


def _read_graph(job: Job) -> dict[str, Any]:
    from hub.registry.selectors import file_iter

    art = job.artifacts.select_related("file").filter(path=GRAPH_PATH).first()
    if art is None:
        raise NotFound(f"Job {job.pk} has no computation graph.", code="graph_not_found")
    cap = limit("HUB_INSPECT_MAX_GRAPH_BYTES")
    if art.file.size > cap:  # stored before the limit was lowered
        raise PayloadTooLarge(
            f"The graph is {art.file.size} bytes; graphs are limited to {cap} bytes.",
            code="graph_too_large",
            details={"limit": cap, "size": art.file.size},
        )
    return json.loads(b"".join(file_iter(file=art.file)))


def _payload(job: Job) -> dict[str, Any]:
    has_onnx = job.artifacts.filter(path=ONNX_PATH).exists()
    return {
        "job": job.pk,
        "repo": job.base_repo,
        "commit": job.base_commit,
        "created_at": job.created_at,
        "onnx_url": f"/api/v1/jobs/{job.pk}/artifacts/{ONNX_PATH}" if has_onnx else None,
        "graph": _read_graph(job),
    }


def job_graph(request, *, job_id: str) -> dict[str, Any]:
    """An inspect job's graph; 404 ``job_not_found`` when the caller may not read the job or
    its base repo, ``graph_not_found`` when the job made none (yet)."""
    from hub.jobs.selectors import job_for, require_base_readable

    job = job_for(request, job_id=job_id)
    require_base_readable(request, job)
    if job.kind != Job.Kind.INSPECT:
        raise NotFound(
            f"Job {job_id} is a {job.kind} job, not an inspect job.", code="graph_not_found"
        )
    return _payload(job)


def commit_graph(request, *, namespace: str, name: str, ref: str) -> dict[str, Any]:
    """The newest graph of ``namespace/name@ref`` (a ref or commit id) the caller may read."""
    from hub.registry.selectors import resolve
    from hub.tracking.selectors import project_for

    repo = _repo_readable(request, f"{namespace}/{name}")
    commit = resolve(repo=repo, ref=ref)
    jobs = (
        Job.objects.select_related("project__namespace")
        .filter(
            kind=Job.Kind.INSPECT,
            base_repo=f"{namespace}/{name}",
            base_commit=commit.sha,
            status=Job.Status.SUCCEEDED,
            artifacts__path=GRAPH_PATH,
        )
        .order_by("-created_at")[:50]
    )
    for job in jobs:
        what = ((job.config or {}).get("inspect") or {}).get("what", "graph")
        if what != "graph":
            continue
        try:
            project_for(request, namespace=job.project.namespace.name, name=job.project.name)
        except NotFound:
            continue
        return _payload(job)
    raise NotFound(
        f"No computation graph of {namespace}/{name}@{commit.sha[:12]} yet: launch one with "
        f"`hub inspect graph {namespace}/{name}@{commit.sha[:12]} --project NS/PROJECT`.",
        code="graph_not_found",
        details={"repo": f"{namespace}/{name}", "commit": commit.sha},
    )


def parse_spec(spec: str, field: str) -> tuple[str, str, str]:
    """``ns/name@ref`` → (ns, name, ref); a 400 naming ``field`` otherwise."""
    repo, at, ref = (spec or "").partition("@")
    ns, slash, name = repo.partition("/")
    if not (ns and slash and name and at and ref) or "/" in name:
        raise InvalidInput(
            f"{field} must be namespace/repo@ref, got {spec!r}.",
            code="invalid_spec",
            details={"field": field},
        )
    return ns, name, ref


def graph_diff(request, *, a: str, b: str) -> dict[str, Any]:
    """Diff of the graphs of two commits (``ns/name@ref`` each), B against A."""
    from hub.shared.graph_diff import diff_graphs

    sides = []
    for field, spec in (("a", a), ("b", b)):
        ns, name, ref = parse_spec(spec, field)
        sides.append(commit_graph(request, namespace=ns, name=name, ref=ref))
    ga, gb = sides[0].pop("graph"), sides[1].pop("graph")
    return {"a": sides[0], "b": sides[1], "diff": diff_graphs(ga, gb)}
