"""Reads of the tracking domain, and who may see which run."""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

from django.db.models import Q

from hub.accounts import selectors as accounts
from hub.accounts.models import Role
from hub.common.errors import InvalidInput, NotFound, ServiceUnavailable
from hub.stores.metrics import MetricsStoreError, MetricsStoreUnavailable, get_metrics_store
from hub.stores.search import SearchError, SearchUnavailable
from hub.tracking import report
from hub.tracking.indexing import search_index
from hub.tracking.models import Project, Run
from hub.tracking.query import QuerySyntaxError, compile_query

log = logging.getLogger(__name__)


def project_for(request, *, namespace: str, name: str, role: str = Role.READ) -> Project:
    project = (
        Project.objects.select_related("namespace")
        .filter(namespace__name=namespace, name=name)
        .first()
    )
    if project is None:
        raise NotFound(f"Project {namespace}/{name} not found.", code="project_not_found")
    _check_access(request, project, role)
    return project


def _check_access(request, project: Project, role: str) -> None:
    """A private project is a 404 to whoever may not read it; writes need ``role``."""
    if project.private:
        try:
            accounts.require_role(request, namespace=project.namespace, role=Role.READ, hide=True)
        except NotFound:
            raise NotFound(
                f"Project {project.full_name} not found.", code="project_not_found"
            ) from None
    if role != Role.READ:
        accounts.require_role(request, namespace=project.namespace, role=role)


def run_for(request, *, run_id: str, role: str = Role.READ) -> Run:
    run = Run.objects.select_related("project__namespace", "user").filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"Run {run_id} not found.", code="run_not_found")
    try:
        _check_access(request, run.project, role)  # the project came with the run: no second query
    except NotFound:
        raise NotFound(f"Run {run_id} not found.", code="run_not_found") from None
    return run


def runs_for(request, *, run_ids: list[str]) -> list[Run]:
    if not run_ids:
        raise InvalidInput("Name at least one run.", code="invalid_runs")
    if len(run_ids) > 200:
        raise InvalidInput("At most 200 runs per call.", code="invalid_runs")
    return [run_for(request, run_id=r) for r in dict.fromkeys(run_ids)]


def _bound(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number.", code=f"invalid_{name}")
    return value


def series(
    *,
    runs: list[Run],
    keys: list[str],
    x: str = "step",
    buckets: int | None = None,
    x_min: float | None = None,
    x_max: float | None = None,
) -> list[dict]:
    """Inputs are checked here, so a store error is either the store being down (503, from
    the one exception handler) or the store refusing a query built from them (400
    ``invalid_series_query``), never a 500."""
    if x not in ("step", "time"):
        raise InvalidInput("x must be 'step' or 'time'.", code="invalid_axis")
    if buckets is not None and not 1 <= buckets <= 100_000:
        raise InvalidInput("buckets must be 1..100000.", code="invalid_buckets")
    if not keys or len(keys) > 500:
        raise InvalidInput("Name 1..500 metric keys.", code="invalid_keys")
    x_min, x_max = _bound(x_min, "min"), _bound(x_max, "max")
    if x_min is not None and x_max is not None and x_min > x_max:
        raise InvalidInput("min must not be greater than max.", code="invalid_range")
    store = get_metrics_store()
    try:
        data = store.series(
            [r.pk for r in runs], keys, x=x, buckets=buckets, x_min=x_min, x_max=x_max
        )
    except MetricsStoreUnavailable:
        raise
    except MetricsStoreError as e:  # a refused query, not an outage: the client's input
        raise InvalidInput(
            f"The metrics store refused the query: {e}", code="invalid_series_query"
        ) from e
    return [s.to_dict() for s in data.values()]


def summary_with_counts(*, run: Run) -> dict:
    """The run's summary with each key's exact point count from the metrics store (the
    summary itself cannot count: a retried batch would count twice). Without the store the
    summary comes back as it is, never an error: counts are a detail of a run's page."""
    summary = {k: dict(v) for k, v in run.summary.items()}
    if not summary:
        return summary
    try:
        for s in get_metrics_store().keys(run.pk):
            if s.key in summary:
                summary[s.key]["count"] = s.count
    except MetricsStoreError:  # down, or cannot even be opened
        log.warning("run %s: point counts left out (metrics store unavailable)", run.pk)
    return summary


def metric_keys(*, run: Run) -> list[dict]:
    return [s._asdict() for s in get_metrics_store().keys(run.pk)]


def export_batches(*, run: Run, keys: list[str] | None = None):
    """The batches of a full-resolution export, the first one already fetched: the HTTP
    status goes out with the first byte, so an unreachable store must show up before the
    response is built (503), not as a stream cut after a 200. A failure between later
    batches can only cut the stream (the client sees an incomplete chunked body)."""
    it = iter(get_metrics_store().export_rows(run.pk, keys or None))
    first = next(it, None)
    return iter(()) if first is None else itertools.chain([first], it)


def run_search(
    *,
    project: Project | None,
    q: str = "",
    sort: list[str] | None = None,
    page_size: int = 50,
    offset: int = 0,
    search_after: list | None = None,
    facets: list[str] | None = None,
) -> dict:
    """Search runs in Elasticsearch with the query syntax of ``hub.tracking.query``.

    The plain listing of a project (no query, no facets, newest or oldest first) is answered
    from the database instead: it is the canonical store, indexed on (project, started_at),
    and the page most users open first should not wait on the search engine."""
    order = list(sort or ["-created_at"])
    plain = (
        project is not None
        and not (q or "").strip()
        and not facets
        and order in (["-created_at"], ["created_at"])
    )
    db_cursor = _check_paging(offset, search_after, plain=plain)
    if plain and (search_after is None or db_cursor is not None):
        return _run_list_db(
            project=project,
            newest_first=order == ["-created_at"],
            page_size=page_size,
            offset=offset if db_cursor is None else db_cursor,
        )
    try:
        dsl = compile_query(q or "")
    except QuerySyntaxError as e:
        raise InvalidInput(
            f"Query syntax error at position {e.position}: {e.message}",
            code="invalid_query",
            details={"position": e.position, "query": q},
        ) from e
    filters = [dsl] if dsl else []
    if project is not None:
        filters.append({"term": {"project": project.full_name}})
    query = {"bool": {"filter": filters}} if filters else None
    idx = search_index()
    if idx is None:
        raise ServiceUnavailable(
            "Search is not configured (HUB_ELASTICSEARCH_URL).", code="search_unavailable"
        )
    try:
        res = idx.search_runs(
            query,
            sort=sort or ["-created_at"],
            page_size=page_size,
            offset=offset,
            search_after=search_after,
            facets=facets or [],
        )
    except SearchUnavailable:
        raise  # an outage: hub.common.errors.store_error answers 503 search_unavailable
    except SearchError as e:  # the engine refused the query: the query is at fault
        raise InvalidInput(str(e), code="invalid_search") from e
    return {
        "results": with_alerts([h.source for h in res.hits]),
        "total": res.total,
        "facets": res.facets,
        "next": res.next_search_after,
        "took_ms": res.took_ms,
        "engine_elapsed_ms": round(res.elapsed_ms, 2),
    }


MAX_OFFSET = 1_000_000


def _check_paging(offset, search_after, *, plain: bool) -> int | None:
    """Paging input is client-supplied: a bad one is a 400 with a code, never a 500. A cursor
    is the ``next`` of a previous page: ``["db", offset]`` for the plain listing (answered
    from the database; its offset is returned), or the search engine's sort values (a list
    of numbers, strings, booleans or nulls)."""
    bad_cursor = InvalidInput(
        "Bad cursor: pass the 'next' of the previous page unchanged.", code="invalid_cursor"
    )
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be an integer in 0..{MAX_OFFSET}.", code="invalid_offset")
    if search_after is None:
        return None
    if (
        not isinstance(search_after, list)
        or not search_after
        or len(search_after) > 32
        or not all(v is None or isinstance(v, str | int | float | bool) for v in search_after)
    ):
        raise bad_cursor
    if any(isinstance(v, float) and not math.isfinite(v) for v in search_after):
        raise bad_cursor
    if plain and search_after[0] == "db":
        pos = search_after[1] if len(search_after) == 2 else None
        if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos <= MAX_OFFSET:
            raise bad_cursor
        return pos
    return None


def _run_list_db(*, project: Project, newest_first: bool, page_size: int, offset: int) -> dict:
    import time

    from hub.tracking.indexing import run_doc

    started = time.perf_counter()
    qs = Run.objects.select_related("project__namespace", "user").filter(project=project)
    qs = qs.order_by("-started_at", "-pk") if newest_first else qs.order_by("started_at", "pk")
    rows = list(qs[offset : offset + page_size + 1])
    more = len(rows) > page_size
    total = Run.objects.filter(project=project).count()
    return {
        "results": with_alerts([run_doc(r) for r in rows[:page_size]]),
        "total": total,
        "facets": {},
        "next": ["db", offset + page_size] if more else None,
        "took_ms": 0,
        "engine_elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        "source": "database",
    }


#: The kinds of run a comparison by commits sorts runs into: a job's kind (its run carries the
#: kind as a tag, set by the supervisor), else "run" (a user's own script).
RUN_KINDS = ("train", "finetune", "evaluate", "profile", "quantize", "inspect")


def run_kind(run: Run) -> str:
    """``train``, ``finetune``, ``evaluate`` or ``profile`` for a job's run (the job's kind, as
    the supervisor tags its run); the first of those tags on another run; else ``run``."""
    return next((t for t in run.tags if t in RUN_KINDS), "run")


@dataclass(frozen=True)
class CommitRuns:
    """The run compared for each named commit ref, all of one ``kind``; ``shas`` holds the
    commit id each ref resolved to."""

    runs: dict[str, Run]
    kind: str
    shas: dict[str, str]


def runs_for_commits(request, *, commits: list[str], kind: str | None = None) -> CommitRuns:
    """For each model commit (``ns/repo@ref``: a commit id, an abbreviation, a branch or a
    tag), its linked run of one kind: ``kind`` if given, else the kind every commit has a run
    of, the most common one among them if several (ties: in :data:`RUN_KINDS` order, then
    ``run``) -- a training run is compared with training runs, an evaluation with evaluations.
    Among a commit's runs of that kind: the latest finished one, else the latest, among the
    runs this request may see. A full id names its commit as it is; any other ref is resolved
    by the registry's one resolver (``hub.registry.selectors.resolve``: a branch, a tag or a
    unique abbreviation; several matches are a 400 ``ambiguous_ref``) in a repo the request
    may read. Runs match commit ids exactly. One query for the runs of every commit."""
    commits = list(dict.fromkeys(commits))
    if not 2 <= len(commits) <= 200:
        raise InvalidInput("Name 2..200 distinct commits as ns/repo@ref.", code="invalid_commits")
    if kind is not None and kind not in (*RUN_KINDS, "run"):
        raise InvalidInput(
            f"kind must be one of {', '.join((*RUN_KINDS, 'run'))}.", code="invalid_kind"
        )
    wanted: dict[str, tuple[str, str] | None] = {}  # ref -> (repo, full sha), None: names no commit
    for spec in commits:
        repo, _, ref = spec.partition("@")
        if repo.count("/") != 1 or not ref or any(c.isspace() or c == "," for c in ref):
            raise InvalidInput(
                f"Bad commit {spec!r}: use ns/repo@ref (a commit id, a branch or a tag).",
                code="invalid_commits",
            )
        full = len(ref) == 40 and all(c in "0123456789abcdef" for c in ref.lower())
        wanted[spec] = (repo, ref.lower()) if full else _resolve_commit(request, repo=repo, ref=ref)
    pairs = {pair for pair in wanted.values() if pair is not None}
    match = Q(pk__in=[])
    for repo, sha in pairs:
        match |= Q(commit_repo=repo, commit_sha=sha)
    by_commit: dict[tuple[str, str], list[Run]] = {}
    for run in (
        Run.objects.select_related("project__namespace", "user")
        .filter(match)
        .order_by("-started_at", "-pk")
    ):
        by_commit.setdefault((run.commit_repo, run.commit_sha), []).append(run)
    visible: dict[int, bool] = {}  # project id -> may this request read it (checked once each)

    def can_see(run: Run) -> bool:
        if run.project_id not in visible:
            try:
                _check_access(request, run.project, Role.READ)
                visible[run.project_id] = True
            except NotFound:
                visible[run.project_id] = False
        return visible[run.project_id]

    seen = {  # ref -> the visible runs of its commit, finished ones first, newest first
        spec: sorted(
            (r for r in by_commit.get(pair, []) if can_see(r)) if pair else [],
            key=lambda r: r.status != Run.Status.FINISHED,
        )
        for spec, pair in wanted.items()
    }
    missing = [spec for spec, runs in seen.items() if not runs]
    if missing:
        raise NotFound(
            f"No run you can see is linked to {', '.join(missing)}.",
            code="commit_has_no_runs",
            details={"commits": missing},
        )
    kinds = {spec: [run_kind(r) for r in runs] for spec, runs in seen.items()}
    if kind is None:
        order = (*RUN_KINDS, "run")
        common = set(order).intersection(*(set(k) for k in kinds.values()))
        if not common:
            listed = "; ".join(f"{s}: {', '.join(sorted(set(k)))}" for s, k in kinds.items())
            raise InvalidInput(
                f"These commits have no kind of run in common to compare ({listed}).",
                code="no_common_run_kind",
                details={"kinds": {s: sorted(set(k)) for s, k in kinds.items()}},
            )
        count = {k: sum(ks.count(k) for ks in kinds.values()) for k in common}
        kind = max(sorted(common, key=order.index), key=lambda k: count[k])
    without = [spec for spec, ks in kinds.items() if kind not in ks]
    if without:
        raise NotFound(
            f"No {kind} run you can see is linked to {', '.join(without)}.",
            code="commit_has_no_runs",
            details={"commits": without, "kind": kind},
        )
    return CommitRuns(
        runs={spec: next(r for r in runs if run_kind(r) == kind) for spec, runs in seen.items()},
        kind=kind,
        shas={spec: pair[1] for spec, pair in wanted.items() if pair},
    )


def _resolve_commit(request, *, repo: str, ref: str) -> tuple[str, str] | None:
    """``(repo, full id)`` of the commit ``ref`` names in a repo the request may read, by the
    registry's one resolver; None when there is no such repo, ref or commit."""
    from hub.registry import selectors as registry

    namespace, _, name = repo.partition("/")
    try:
        found = registry.repo_for(request, namespace=namespace, name=name)
        return repo, registry.resolve(repo=found, ref=ref).sha
    except NotFound:
        return None


def compare(
    *,
    runs: list[Run],
    target: str | None,
    baseline: str | None,
    goal: str | None,
    metrics: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict:
    """The comparison report of ``runs``, each metric ranked by its direction: the projects'
    ``metric_directions`` (the first compared run's project first, then the others' for keys it
    does not set), then the built-in name table of ``hub.tracking.report``."""
    if len(runs) < 2:
        raise InvalidInput("Compare at least two runs.", code="invalid_runs")
    if goal not in (None, *report.DIRECTIONS):
        raise InvalidInput("goal must be min, max or none.", code="invalid_goal")
    data = [
        {
            "id": r.pk,
            "name": (labels or {}).get(r.pk, r.name),
            "status": r.status,
            "params": r.params,
            "summary": r.summary,
        }
        for r in runs
    ]
    if baseline and baseline not in {r.pk for r in runs}:
        raise InvalidInput(
            "The baseline must be one of the compared runs.", code="invalid_baseline"
        )
    directions: dict[str, str] = {}
    for r in runs:
        for key, d in (r.project.metric_directions or {}).items():
            directions.setdefault(key, d)
    rep = report.compare(
        data,
        target=target,
        baseline=baseline,
        goal=goal,
        metrics=metrics,
        directions=directions,
    )
    from hub.inference import inspect as inspect_api
    from hub.inference import routing_cache

    # The routing diffs of the commits the runs produced, when computed (hub inspect routing).
    rep["routing"] = routing_cache.for_runs(runs, rep["baseline"], inspect_api.PROBE_SET_VERSION)
    return rep


def run_alerts(*, run: Run, kind: str | None = None) -> list:
    """A run's MoE health alerts in step order (at most ``HUB_MAX_ALERTS_PER_RUN`` exist)."""
    from hub.tracking.models import RunAlert

    qs = RunAlert.objects.filter(run=run)
    if kind:
        qs = qs.filter(kind=kind)
    return list(qs.order_by("step", "id"))


def alert_counts(run_ids: list[str]) -> dict[str, dict]:
    """{run id: {"count": n, "kinds": {kind: n}}} for the runs among ``run_ids`` that have
    alerts (one query): what a runs table shows beside each run."""
    from django.db.models import Count

    from hub.tracking.models import RunAlert

    out: dict[str, dict] = {}
    rows = (
        RunAlert.objects.filter(run_id__in=run_ids)
        .values("run_id", "kind")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        entry = out.setdefault(row["run_id"], {"count": 0, "kinds": {}})
        entry["count"] += row["n"]
        entry["kinds"][row["kind"]] = row["n"]
    return out


def with_alerts(results: list[dict]) -> list[dict]:
    """Each run of a listing with its ``alerts`` ({count, kinds}; zero when none)."""
    counts = alert_counts([r["id"] for r in results if r.get("id")])
    for r in results:
        r["alerts"] = counts.get(r.get("id"), {"count": 0, "kinds": {}})
    return results
