"""Reads of the tracking domain, and who may see which run."""

from __future__ import annotations

import itertools
import logging
import math

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
        "results": [h.source for h in res.hits],
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
        "results": [run_doc(r) for r in rows[:page_size]],
        "total": total,
        "facets": {},
        "next": ["db", offset + page_size] if more else None,
        "took_ms": 0,
        "engine_elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        "source": "database",
    }


def runs_for_commits(request, *, commits: list[str]) -> dict[str, Run]:
    """The run linked to each model commit (``ns/repo@sha``): the latest finished one, else
    the latest, among the runs this request may see. Runs match a commit id exactly; an
    abbreviation (7-39 hex) is first expanded by the registry's one rule
    (``hub.registry.selectors.commit_get``: unique or a 400 ``ambiguous_ref``) in a repo the
    request may read. One query for the runs of every commit."""
    commits = list(dict.fromkeys(commits))
    if not 2 <= len(commits) <= 200:
        raise InvalidInput("Name 2..200 distinct commits as ns/repo@sha.", code="invalid_commits")
    wanted: dict[str, tuple[str, str] | None] = {}  # ref -> (repo, full sha), None: names no commit
    for ref in commits:
        repo, _, sha = ref.partition("@")
        sha = sha.lower()
        if (
            repo.count("/") != 1
            or not 7 <= len(sha) <= 40
            or not all(c in "0123456789abcdef" for c in sha)
        ):
            raise InvalidInput(
                f"Bad commit {ref!r}: use ns/repo@sha (at least 7 hex digits).",
                code="invalid_commits",
            )
        wanted[ref] = (repo, sha) if len(sha) == 40 else _expand_commit(request, repo=repo, sha=sha)
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

    out: dict[str, Run] = {}
    missing = []
    for ref, pair in wanted.items():
        candidates = sorted(
            by_commit.get(pair, []) if pair else [], key=lambda r: r.status != Run.Status.FINISHED
        )
        chosen = next((r for r in candidates if can_see(r)), None)
        if chosen is None:
            missing.append(ref)
        else:
            out[ref] = chosen
    if missing:
        raise NotFound(
            f"No run you can see is linked to {', '.join(missing)}.",
            code="commit_has_no_runs",
            details={"commits": missing},
        )
    return out


def _expand_commit(request, *, repo: str, sha: str) -> tuple[str, str] | None:
    """``(repo, full id)`` of the commit an abbreviation names in a repo the request may read;
    None when there is no such repo or commit."""
    from hub.registry import selectors as registry

    namespace, _, name = repo.partition("/")
    try:
        found = registry.repo_for(request, namespace=namespace, name=name)
        return repo, registry.commit_get(repo=found, sha=sha).sha
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
    if len(runs) < 2:
        raise InvalidInput("Compare at least two runs.", code="invalid_runs")
    if goal not in (None, "min", "max"):
        raise InvalidInput("goal must be min or max.", code="invalid_goal")
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
    return report.compare(data, target=target, baseline=baseline, goal=goal, metrics=metrics)
