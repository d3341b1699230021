"""Metric points, system metrics, job log lines and profiler operator tables in ClickHouse.

One interface (:class:`MetricsStore`, in ``base``), two engines behind one URL
(``HUB_CLICKHOUSE_URL``), both running the same SQL (``sql``):

- ``chdb:///abs/path[?database=hub]`` -- ClickHouse embedded in this process (``chdb``).
- ``clickhouse://user:password@host:9000/db[?connect_timeout=2&send_receive_timeout=30]`` -- a
  ClickHouse server over the native protocol (``server``).

The names below are the package's public interface: import them from ``hub.stores.metrics``.
The domain reaches the store through its selectors and services only; a failure propagates
as :class:`MetricsStoreUnavailable` / :class:`MetricsStoreError` to the API's one exception
handler (``hub.common.errors``).
"""

from __future__ import annotations

import os
import threading
from urllib.parse import parse_qs, unquote, urlparse

from hub.stores.metrics.base import (
    DEFAULT_DATABASE,
    KeyStats,
    LogLine,
    MetricsStore,
    MetricsStoreError,
    MetricsStoreUnavailable,
    Series,
)
from hub.stores.metrics.chdb import ChdbMetricsStore
from hub.stores.metrics.server import ClickHouseServerMetricsStore
from hub.stores.metrics.sql import MIGRATIONS, Migration

__all__ = [
    "MIGRATIONS",
    "ChdbMetricsStore",
    "ClickHouseServerMetricsStore",
    "KeyStats",
    "LogLine",
    "MetricsStore",
    "MetricsStoreError",
    "MetricsStoreUnavailable",
    "Migration",
    "Series",
    "get_metrics_store",
    "metrics_store_from_url",
]


def metrics_store_from_url(url: str, *, cluster: str = "") -> MetricsStore:
    """Pick the engine by scheme: ``chdb:///abs/path[?database=x]``, ``chdb://:memory:``
    (a throw-away temporary path) or ``clickhouse://...``. ``cluster`` (a server only): the
    replicated schema on that cluster (``HUB_CLICKHOUSE_CLUSTER``)."""
    parsed = urlparse(url)
    if parsed.scheme == "clickhouse":
        return ClickHouseServerMetricsStore(url, cluster=cluster)
    if cluster:
        raise MetricsStoreError(
            "HUB_CLICKHOUSE_CLUSTER needs a ClickHouse server (clickhouse://...): the embedded "
            "chdb engine is one process on one machine"
        )
    if parsed.scheme == "chdb":
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        database = options.get("database", DEFAULT_DATABASE)
        if parsed.netloc == ":memory:":
            import tempfile

            # A private temporary directory rather than chdb's ":memory:" so that the same
            # MergeTree tables and migrations apply unchanged.
            return ChdbMetricsStore(tempfile.mkdtemp(prefix="hub-chdb-"), database=database)
        path = unquote(parsed.path)
        if parsed.netloc or not path.startswith("/"):
            raise MetricsStoreError(f"chdb URL needs an absolute path (chdb:///abs/path): {url!r}")
        return ChdbMetricsStore(path, database=database)
    raise MetricsStoreError(f"HUB_CLICKHOUSE_URL: unsupported scheme {parsed.scheme!r}")


_default_store: MetricsStore | None = None
_default_pid = 0
_default_lock = threading.Lock()


def get_metrics_store() -> MetricsStore:
    """The process-wide store for ``settings.HUB_CLICKHOUSE_URL`` (created on first use; the
    schema is ensured then). Django is imported here only, so this module stays importable
    without it. A forked child (gunicorn, Celery prefork) builds its own: sockets and the chdb
    session must not be shared across a fork."""
    global _default_store, _default_pid
    with _default_lock:
        if _default_store is None or _default_pid != os.getpid():
            from django.conf import settings

            store = metrics_store_from_url(
                settings.HUB_CLICKHOUSE_URL, cluster=settings.HUB_CLICKHOUSE_CLUSTER
            )
            try:
                store.ensure_schema()
            except BaseException:
                store.close()  # not cached: the next request retries
                raise
            _default_store, _default_pid = store, os.getpid()
        return _default_store
