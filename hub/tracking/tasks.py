"""Celery tasks of the tracking domain: search indexing with retries."""

from celery import shared_task

from hub.stores.search import SearchUnavailable


@shared_task(bind=True, autoretry_for=(SearchUnavailable,), retry_backoff=2, retry_backoff_max=300,
             retry_jitter=True, max_retries=20, acks_late=True)
def index_run(self, run_id: str) -> None:
    from hub.tracking.indexing import index_run_now

    index_run_now(run_id)


@shared_task(bind=True, autoretry_for=(SearchUnavailable,), retry_backoff=2, retry_backoff_max=300,
             retry_jitter=True, max_retries=20, acks_late=True)
def index_pending_runs(self) -> int:
    """Bulk-index every run waiting in the pending set (see hub.tracking.indexing)."""
    from hub.tracking.indexing import index_pending_runs_now

    return index_pending_runs_now()


@shared_task(bind=True, autoretry_for=(SearchUnavailable,), retry_backoff=2, retry_backoff_max=300,
             retry_jitter=True, max_retries=20, acks_late=True)
def index_commit(self, commit_pk: str) -> None:
    from hub.tracking.indexing import index_commit_now

    index_commit_now(int(commit_pk))


@shared_task(bind=True, autoretry_for=(SearchUnavailable,), retry_backoff=2, retry_backoff_max=300,
             retry_jitter=True, max_retries=20, acks_late=True)
def delete_commits(self, doc_ids: list[str]) -> int:
    """Delete deleted commits' search documents in bulk (already-missing ones are fine)."""
    from hub.tracking.indexing import delete_commits_now

    return delete_commits_now(list(doc_ids))
