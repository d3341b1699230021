"""Redis, for the little the hub keeps there besides Celery's queues: which workers are alive
(presence keys with a time to live) and sets of ids waiting for a bulk job (the runs to
re-index). The only hub code that knows the ``redis`` client library.

Every key starts with the hub's prefix (``HUB_REDIS_PREFIX``), so several hubs can share one
Redis. Presence keys are ``{prefix}workers:{queue}:{hostname}`` holding the worker's pid or a
short info string; workers write them, the hub reads them: that format is shared with the
workers' side and must not change on one side only.

Every operation raises :class:`RedisUnavailable` when Redis cannot be reached within
``HUB_REDIS_TIMEOUT_MS`` (connect and each command); the API's one exception handler
(``hub.common.errors``) answers 503 ``redis_unavailable`` for it. This module does not
import Django; :func:`get_redis` reads the settings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["PRESENCE_KEY", "RedisStore", "RedisUnavailable", "get_redis"]

#: ``{prefix}workers:{queue}:{hostname}`` -- shared with the workers that write it.
PRESENCE_KEY = "{prefix}workers:{queue}:{hostname}"


class RedisUnavailable(Exception):
    """Redis cannot be reached now (refused, timed out, or it answered with an error)."""

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RedisStore:
    """One connection pool per store; a store is safe to share between threads."""

    def __init__(self, url: str, *, prefix: str = "", timeout_s: float = 0.5) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )

    def _call(self, fn) -> Any:
        import redis

        try:
            return fn(self._client)
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis is unreachable: {exc}") from exc

    # -- presence: which workers are alive, per queue --

    def presence_announce(self, *, queue: str, hostname: str, info: str, ttl_s: int) -> None:
        key = PRESENCE_KEY.format(prefix=self.prefix, queue=queue, hostname=hostname)
        self._call(lambda r: r.set(key, info, ex=ttl_s))

    def presence_hosts(self, queue: str) -> list[str]:
        """The hostnames whose presence key for ``queue`` has not expired, sorted."""
        pattern = PRESENCE_KEY.format(prefix=self.prefix, queue=queue, hostname="*")
        keys = self._call(lambda r: list(r.scan_iter(match=pattern, count=100)))
        return sorted(k.decode().rsplit(":", 1)[-1] for k in keys)

    # -- debouncing and pending sets (``name`` is a key below the prefix) --

    def claim_window(self, name: str, *, window_ms: int) -> bool:
        """True for the first caller in a window of ``window_ms`` (``SET NX PX``)."""
        return bool(self._call(lambda r: r.set(self.prefix + name, 1, nx=True, px=window_ms)))

    def window_hit(self, name: str, *, window_s: int) -> tuple[int, int]:
        """Count one hit in the fixed window ``name`` (a key below the prefix) that starts at
        its first hit and lasts ``window_s``: (hits so far, seconds until the window ends)."""

        def hit(r):
            with r.pipeline() as p:
                p.incr(self.prefix + name)
                p.expire(self.prefix + name, window_s, nx=True)
                p.ttl(self.prefix + name)
                return p.execute()

        count, _, ttl = self._call(hit)
        return int(count), max(1, int(ttl))

    def pending_add(
        self, name: str, ids: Iterable[str], *, window: str | None = None, window_ms: int = 0
    ) -> bool:
        """Add ``ids`` to the pending set ``name``; with ``window``, in the same transaction
        claim that window (see :meth:`claim_window`) and return whether this call claimed it
        (the caller then schedules the drain). Without ``window``, returns False."""
        ids = list(ids)
        if not ids:
            return False

        def add(r):
            with r.pipeline() as p:
                p.sadd(self.prefix + name, *ids)
                if window:
                    p.set(self.prefix + window, 1, nx=True, px=window_ms)
                return p.execute()

        result = self._call(add)
        return bool(window) and bool(result[1])

    def pending_take(self, name: str, n: int) -> list[str]:
        """Remove and return up to ``n`` ids of the pending set ``name`` (sorted)."""
        taken = self._call(lambda r: r.spop(self.prefix + name, n)) or []
        return sorted(i.decode() if isinstance(i, bytes) else i for i in taken)

    def close(self) -> None:
        self._client.close()


_stores: dict[tuple[str, str, float], RedisStore] = {}
_stores_lock = threading.Lock()


def get_redis() -> RedisStore:
    """The process's store for ``HUB_REDIS_URL`` / ``HUB_REDIS_PREFIX``: one connection pool
    per URL, prefix and timeout, so a write path never opens a TCP connection per request.
    (redis-py's pool notices a fork and reconnects in the child.)"""
    from django.conf import settings

    key = (settings.HUB_REDIS_URL, settings.HUB_REDIS_PREFIX, settings.HUB_REDIS_TIMEOUT_MS / 1000)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = RedisStore(key[0], prefix=key[1], timeout_s=key[2])
        return store
