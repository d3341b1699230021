"""Which workers are alive, per queue: each worker refreshes a short-lived Redis key. The
hub reads them to refuse a GPU job that no worker could ever take (no silent waiting).

The keys live in Redis through :mod:`hub.stores.redis` (their format is fixed there, shared
with the workers that write them)."""

from __future__ import annotations

import logging
import os

from hub.stores.redis import RedisStore, RedisUnavailable, get_redis

log = logging.getLogger(__name__)

PRESENCE_TTL_S = 30


def announce(*, redis_url: str, prefix: str, queue: str, hostname: str, info: str = "") -> None:
    """A worker says it serves ``queue`` for the next ``PRESENCE_TTL_S`` seconds."""
    store = RedisStore(redis_url, prefix=prefix, timeout_s=1)
    try:
        store.presence_announce(queue=queue, hostname=hostname, info=info or str(os.getpid()), ttl_s=PRESENCE_TTL_S)
    finally:
        store.close()


def workers_online(queue: str) -> list[str]:
    """The hostnames of the workers serving ``queue`` now; none when Redis is unreachable
    (a GPU job is then refused as having no worker, which is what it would find)."""
    try:
        return get_redis().presence_hosts(queue)
    except RedisUnavailable as e:
        log.warning("worker presence unknown: %s", e)
        return []
