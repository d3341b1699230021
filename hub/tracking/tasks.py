"""Celery tasks of the tracking domain: search indexing with retries (queue ``hub``).

The dependency goes one way: these tasks call :mod:`hub.tracking.indexing`, which sends them
by name (``celery_app.send_task``) and never imports this module."""

from celery import shared_task

from hub.stores.search import SearchUnavailable
from hub.tracking import indexing

#: Every indexing task: retried with backoff (2 s doubling to 5 min, 20 tries) while the search
#: engine is unavailable, acknowledged only once done. Each task writes whole documents, so a
#: retry or a duplicate is harmless.
index_task = shared_task(
    bind=True,
    autoretry_for=(SearchUnavailable,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=20,
    acks_late=True,
)


@index_task
def index_run(self, run_id: str) -> None:
    indexing.index_run_now(run_id)


@index_task
def index_pending_runs(self) -> int:
    """Bulk-index every run waiting in the pending set (see hub.tracking.indexing)."""
    return indexing.index_pending_runs_now()


@index_task
def index_commit(self, commit_pk: str) -> None:
    indexing.index_commit_now(int(commit_pk))


@index_task
def delete_commits(self, doc_ids: list[str]) -> int:
    """Delete deleted commits' search documents in bulk (already-missing ones are fine)."""
    return indexing.delete_commits_now(list(doc_ids))
