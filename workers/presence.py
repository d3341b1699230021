"""A worker's presence: while it is up it keeps a short-lived key per queue it serves in Redis
(the broker it needs anyway), so the hub can refuse a GPU job that no worker could take.

The key's format (``{prefix}workers:{queue}:{hostname}``, holding the worker's pid) is fixed
in one place, :mod:`hub.stores.redis`, a Django-free module this side writes through and the
hub's side (``hub.jobs.presence.workers_online``) reads through.
"""

from __future__ import annotations

import os

#: A worker refreshes its keys every third of this; a dead worker's keys expire after it.
PRESENCE_TTL_S = 30


def announce(*, redis_url: str, prefix: str, queue: str, hostname: str, info: str = "") -> None:
    """Say that ``hostname`` serves ``queue`` for the next ``PRESENCE_TTL_S`` seconds. Raises
    ``hub.stores.redis.RedisUnavailable`` when Redis cannot be reached."""
    from hub.stores.redis import RedisStore

    store = RedisStore(redis_url, prefix=prefix, timeout_s=1)
    try:
        store.presence_announce(
            queue=queue, hostname=hostname, info=info or str(os.getpid()), ttl_s=PRESENCE_TTL_S
        )
    finally:
        store.close()
