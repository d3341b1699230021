"""Which workers are alive, per queue: each worker refreshes a short-lived Redis key. The
hub reads them to refuse a GPU job that no worker could ever take (no silent waiting).

This is the reading side; the workers write the keys (``workers.presence.announce``, every
``PRESENCE_TTL_S / 3``, with that time to live). The keys live in Redis through
:mod:`hub.stores.redis` (their format is fixed there, shared with the workers)."""

from __future__ import annotations

import logging

from hub.stores.redis import RedisUnavailable, get_redis

log = logging.getLogger(__name__)


def workers_online(queue: str) -> list[str]:
    """The hostnames of the workers serving ``queue`` now; none when Redis is unreachable
    (a GPU job is then refused as having no worker, which is what it would find)."""
    try:
        return get_redis().presence_hosts(queue)
    except RedisUnavailable as e:
        log.warning("worker presence unknown: %s", e)
        return []
