"""Keeping Elasticsearch in step with the DB (the DB is canonical; the index is derived).

Every change to a run or a commit schedules a re-index *after its transaction commits*
(``transaction.on_commit``): a Celery task with retries reads the current DB state and
writes the whole document, so tasks are idempotent and may run in any order. If the broker
is unreachable the document is indexed inline (best effort), and ``manage.py
search_reindex`` rebuilds everything from the DB at any time.

Runs change in bursts (a sweep creating hundreds, a training loop ingesting a batch a
second), so their ids are collected in a Redis set and drained in bulk:

    writer:  SADD pending id ; SET drain NX PX 800ms  ──(set?)──►  schedule a drain in 1 s
    drain:   SPOP pending 500 → read those runs → one bulk request → repeat until empty

Every id added while the ``drain`` key lives is taken by the drain scheduled when it was
set, which starts only after the key expired (1 s > 800 ms); the next add after that sets
the key again and schedules the next drain. A run costs two Redis commands on the write
path, and about one bulk index write per second in all, whatever the number of runs. A
drain that fails puts its ids back before its task retries.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import transaction

from hub.celery_app import app as celery_app
from hub.stores.redis import get_redis
from hub.stores.search import SearchError, SearchIndex, SearchUnavailable

log = logging.getLogger(__name__)
DEBOUNCE_MS = 800
COUNTDOWN_S = 1.0
# The tasks (hub.tracking.tasks, on the ``hub`` queue) are sent by name: they call this module,
# this module never imports them.
TASK_INDEX_PENDING_RUNS = "hub.tracking.tasks.index_pending_runs"
TASK_INDEX_COMMIT = "hub.tracking.tasks.index_commit"
TASK_DELETE_COMMITS = "hub.tracking.tasks.delete_commits"

_index: SearchIndex | None = None
_index_lock = threading.Lock()


def search_index() -> SearchIndex | None:
    """The configured index, or None when no Elasticsearch URL is set."""
    global _index
    url = settings.HUB_ELASTICSEARCH_URL
    if not url:
        return None
    with _index_lock:
        if (
            _index is None
            or _index.url != url
            or _index.prefix != settings.HUB_ELASTICSEARCH_INDEX_PREFIX
        ):
            _index = SearchIndex(
                url,
                settings.HUB_ELASTICSEARCH_INDEX_PREFIX,
                shards=settings.HUB_ELASTICSEARCH_SHARDS,
                replicas=settings.HUB_ELASTICSEARCH_REPLICAS,
            )
        return _index


# Keys below HUB_REDIS_PREFIX (hub.stores.redis adds it).
PENDING_RUNS = "index:pending:run"
DRAIN_WINDOW = "index:drain:run"


def _enqueue(kind: str, ident: str) -> None:
    if not settings.HUB_ELASTICSEARCH_URL:
        return
    if settings.CELERY_TASK_ALWAYS_EAGER:
        _index_now(kind, ident)
        return
    try:
        if kind == "run":
            if get_redis().pending_add(
                PENDING_RUNS, [ident], window=DRAIN_WINDOW, window_ms=DEBOUNCE_MS
            ):
                celery_app.send_task(TASK_INDEX_PENDING_RUNS, countdown=COUNTDOWN_S, retry=False)
            return
        if get_redis().claim_window(f"index:{kind}:{ident}", window_ms=DEBOUNCE_MS):
            celery_app.send_task(
                TASK_INDEX_COMMIT, args=[ident], countdown=COUNTDOWN_S, retry=False
            )
    except Exception as e:  # broker down: index inline, the reindex command repairs the rest
        log.warning("search index queue unavailable (%s); indexing %s %s inline", e, kind, ident)
        _index_now(kind, ident)


def _index_now(kind: str, ident: str) -> None:
    try:
        if kind == "run":
            index_run_now(ident)
        else:
            index_commit_now(int(ident))
    except Exception as e:  # indexing never fails the write that triggered it
        log.warning("could not index %s %s: %s", kind, ident, e)


def schedule_run(run_id: str) -> None:
    transaction.on_commit(lambda: _enqueue("run", run_id))


def schedule_commit(commit_pk: int) -> None:
    transaction.on_commit(lambda: _enqueue("commit", str(commit_pk)))


def run_doc(run) -> dict:
    """The run as the search adapter takes it (it builds the indexed layout)."""
    return {
        "id": run.pk,
        "project": run.project.full_name,
        "name": run.name,
        "group": run.group,
        "user": run.user.username if run.user_id else None,
        "status": run.status,
        "tags": run.tags,
        "notes": run.notes,
        "commit": f"{run.commit_repo}@{run.commit_sha}" if run.commit_sha else None,
        "job": run.job_id or None,
        "created_at": run.started_at.isoformat(),
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "params": run.params,
        "summary": {
            k: {s: v[s] for s in ("last", "min", "max", "last_step")}
            for k, v in run.summary.items()
        },
    }


def commit_doc(commit) -> dict:
    from hub.registry.cards import search_fields
    from hub.registry.models import FileObject, Ref

    refs = list(
        Ref.objects.filter(repo_id=commit.repo_id, commit_id=commit.pk).values_list("kind", "name")
    )
    config = {}
    oid = commit.tree.entries.get("config.json")
    if oid:
        try:
            import json

            from hub.registry.selectors import file_iter

            f = FileObject.objects.get(oid=oid)
            if f.size <= 1_000_000:
                config = json.loads(b"".join(file_iter(file=f)))
        except Exception:  # a config that is not JSON is simply not indexed
            config = {}
    return {
        "id": f"{commit.repo.full_name}@{commit.sha}",
        "repo": commit.repo.full_name,
        "sha": commit.sha,
        "message": commit.message,
        "author": commit.author_name,
        "created_at": commit.created_at.isoformat(),
        "parents": commit.parents,
        "branches": [n for k, n in refs if k == "branch"],
        "tags": [n for k, n in refs if k == "tag"],
        "run": commit.run_id or None,
        "job": commit.job_id or None,
        "config": config if isinstance(config, dict) else {},
        "eval": commit.metadata.get("eval")
        if isinstance(commit.metadata.get("eval"), dict)
        else {},
        # The model: repo, visibility, card fields and text, producing runs' metrics.
        **search_fields(commit=commit),
    }


def index_run_now(run_id: str) -> None:
    from hub.tracking.models import Run

    idx = search_index()
    if idx is None:
        return
    run = Run.objects.select_related("project__namespace", "user").filter(pk=run_id).first()
    if run is None:
        idx.delete_run(run_id)
    else:
        idx.index_run(run_doc(run))


def index_pending_runs_now(batch: int = 500) -> int:
    """Drain the set of runs waiting to be indexed, ``batch`` at a time, one bulk request
    each; returns how many ids were taken. Runs deleted meanwhile lose their document."""
    from hub.tracking.models import Run

    idx = search_index()
    r = get_redis()
    taken = 0
    while True:
        ids = r.pending_take(PENDING_RUNS, batch)
        if not ids:
            return taken
        try:
            if idx is not None:
                runs = {
                    run.pk: run
                    for run in Run.objects.select_related("project__namespace", "user").filter(
                        pk__in=ids
                    )
                }
                if runs:
                    # refresh: a run is searchable when the drain returns, not at the engine's
                    # next periodic refresh (which noida-db may not do for minutes).
                    idx.bulk_index_runs([run_doc(runs[i]) for i in ids if i in runs], refresh=True)
                for gone in (i for i in ids if i not in runs):
                    idx.delete_run(gone)
        except SearchError as e:
            if isinstance(e, SearchUnavailable):
                r.pending_add(
                    PENDING_RUNS, ids
                )  # not lost: the task's retry (or the next drain) takes them again
                raise
            # The engine refused a document: putting the batch back would fail every later
            # drain on the same document. The periodic sweep and search_reindex retry them.
            log.error(
                "search index refused a batch of %d run(s) (%s); left to the next sweep",
                len(ids),
                e,
            )
        except BaseException:
            r.pending_add(PENDING_RUNS, ids)
            raise
        taken += len(ids)


def index_commit_now(commit_pk: int) -> None:
    from hub.registry.models import Commit

    idx = search_index()
    commit = Commit.objects.select_related("repo__namespace", "tree").filter(pk=commit_pk).first()
    if idx is not None and commit is not None:
        # refresh: a model is searchable (GET /models/search) when the task returns, not at
        # the engine's next periodic refresh (which noida-db may not do for minutes).
        idx.index_commit(commit_doc(commit), refresh=True)


def delete_run(run_id: str) -> None:
    idx = search_index()
    if idx is not None:
        try:
            idx.delete_run(run_id)
        except (SearchError, SearchUnavailable) as e:
            log.warning("could not delete run %s from the index: %s", run_id, e)


#: Commit documents per bulk delete request (and per delete task).
DELETE_BATCH = 1000


def delete_commits_now(doc_ids: list[str], *, batch: int = DELETE_BATCH) -> int:
    """Delete these commit documents, ``batch`` per bulk request; documents already gone are
    fine. Raises :class:`SearchUnavailable` (the task retries); a batch the engine refuses
    otherwise is logged and skipped (``manage.py search_reindex`` repairs)."""
    idx = search_index()
    if idx is None:
        return 0
    deleted = 0
    for i in range(0, len(doc_ids), batch):
        chunk = doc_ids[i : i + batch]
        try:
            deleted += idx.bulk_delete_commits(chunk, chunk_size=batch)
        except SearchUnavailable:
            raise
        except SearchError as e:
            log.error(
                "search index refused to delete %d commit document(s) (%s); left to "
                "`manage.py search_reindex`",
                len(chunk),
                e,
            )
    return deleted


def delete_commits(doc_ids, *, batch: int = DELETE_BATCH) -> None:
    """Remove deleted commits' documents: one Celery task (with retries) per ``batch`` ids;
    inline in bulk when tasks are eager or the broker is unreachable. Best effort: never
    raises, so it cannot fail the write that triggered it. Call it after the transaction
    commits (``transaction.on_commit``)."""
    ids = list(dict.fromkeys(str(i) for i in doc_ids))
    if not ids or not settings.HUB_ELASTICSEARCH_URL:
        return
    start = 0
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        try:
            for start in range(0, len(ids), batch):
                celery_app.send_task(
                    TASK_DELETE_COMMITS, args=[ids[start : start + batch]], retry=False
                )
            return
        except Exception as e:  # broker down: delete the rest inline
            log.warning(
                "search index queue unavailable (%s); deleting %d commit document(s) inline",
                e,
                len(ids) - start,
            )
    try:
        delete_commits_now(ids[start:], batch=batch)
    except Exception as e:  # e.g. unavailable: do not wait out a timeout per batch
        log.warning(
            "could not delete %d commit document(s) from the index (%s); they stay "
            "indexed until `manage.py search_reindex`",
            len(ids) - start,
            e,
        )


#: How far before a rebuild starts its catch-up pass looks for changed rows: a transaction
#: that stamped ``updated_at`` before the rebuild started but committed after the rebuild read
#: that row would otherwise be missed.
CATCH_UP_SLACK_S = 120


def _keyset(qs, batch: int):
    """The rows of ``qs`` in primary-key order, ``batch`` per query (``pk > last``): one batch
    in memory at a time, and no cursor or transaction held open across the whole rebuild."""
    last = None
    while True:
        page = qs.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        rows = list(page[:batch])
        if not rows:
            return
        yield from rows
        last = rows[-1].pk


def reindex_all(*, batch: int = 1000, stdout=None) -> dict:
    """Rebuild both indices from the DB without downtime (``SearchIndex.rebuild``): new
    concrete indices are loaded streaming from the DB, then the aliases move atomically;
    searches keep answering from the old generation until then, and keep it if this fails.

    Writes that land meanwhile go to the old generation, so after the swap the runs updated
    since the rebuild started (``updated_at``, less ``CATCH_UP_SLACK_S``), the commits created
    since (pk above the largest at the start) and those whose refs moved are indexed again.
    A run or commit deleted while the rebuild ran may keep a document until the next reindex.
    """
    from datetime import timedelta

    from django.db.models import Max, Q
    from django.utils import timezone

    from hub.registry.models import Commit, Ref
    from hub.tracking.models import Run

    idx = search_index()
    if idx is None:
        raise SearchError("HUB_ELASTICSEARCH_URL is not set")
    since = timezone.now() - timedelta(seconds=CATCH_UP_SLACK_S)
    last_commit = Commit.objects.aggregate(m=Max("pk"))["m"] or 0
    runs = Run.objects.select_related("project__namespace", "user")
    commits = Commit.objects.select_related("repo__namespace", "tree")
    result = idx.rebuild(
        (run_doc(r) for r in _keyset(runs, batch)),
        (commit_doc(c) for c in _keyset(commits, batch)),
    )
    if stdout is not None:
        stdout.write(f"swapped to {', '.join(result['indices'].values())}\n")
    moved = Ref.objects.filter(updated_at__gte=since).values("commit_id")
    caught_up = idx.bulk_index_runs(
        run_doc(r) for r in _keyset(runs.filter(updated_at__gte=since), batch)
    )
    caught_up += idx.bulk_index_commits(
        commit_doc(c)
        for c in _keyset(commits.filter(Q(pk__gt=last_commit) | Q(pk__in=moved)), batch)
    )
    idx.refresh()
    return {
        "runs": result["runs"],
        "commits": result["commits"],
        "caught_up": caught_up,
        "indices": result["indices"],
    }
