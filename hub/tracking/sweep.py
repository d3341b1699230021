"""The search index's safety net: re-index the runs that changed recently.

Index tasks (:mod:`hub.tracking.indexing`) make search fresh within a second; this sweep makes
it eventually right even when a task was lost (a broker restart, a worker killed mid-task),
because the DB is canonical. It needs the database, so it runs on the hub's side: the jobs
reaper (``manage.py jobs_reaper``, which ``hub serve`` and compose run) calls it on every pass,
every ``HUB_JOB_REAP_EVERY_S``. Workers have no database access and take no part in it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from hub.tracking.indexing import run_doc, search_index
from hub.tracking.models import Run

log = logging.getLogger(__name__)

#: The first pass looks this far back; later passes from the previous pass's start, less a
#: little slack for transactions that stamped ``updated_at`` before it and committed after.
FIRST_LOOKBACK = timedelta(minutes=10)
SLACK = timedelta(seconds=5)
#: At most this many runs per pass (the oldest changes first).
MAX_RUNS_PER_PASS = 5000


class IndexSweep:
    """Re-indexes, on each :meth:`run`, the runs changed since the previous one."""

    def __init__(self) -> None:
        self.since = None

    def run(self) -> int:
        """One pass: how many runs it re-indexed. Never raises: a failed pass is logged and the
        next one starts from the same point."""
        try:
            idx = search_index()
            if idx is None:
                return 0
            now = timezone.now()
            since = self.since or now - FIRST_LOOKBACK
            runs = (
                Run.objects.select_related("project__namespace", "user")
                .filter(updated_at__gte=since - SLACK)
                .order_by("updated_at")[:MAX_RUNS_PER_PASS]
            )
            docs = [run_doc(r) for r in runs]
            if docs:
                idx.bulk_index_runs(docs, refresh=True)
            self.since = now
            return len(docs)
        except Exception as e:  # the next pass retries from the same point
            log.warning("index sweep failed: %s", e)
            return 0
