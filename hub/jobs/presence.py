"""Which workers are alive, per queue: each worker refreshes a short-lived Redis key. The
hub reads them to refuse a GPU job that no worker could ever take (no silent waiting)."""

from __future__ import annotations

import os

PRESENCE_TTL_S = 30


def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def announce(*, redis_url: str, prefix: str, queue: str, hostname: str, info: str = "") -> None:
    _redis(redis_url).set(f"{prefix}workers:{queue}:{hostname}", info or str(os.getpid()), ex=PRESENCE_TTL_S)


def workers_online(queue: str) -> list[str]:
    from django.conf import settings

    try:
        r = _redis(settings.HUB_REDIS_URL)
        pattern = f"{settings.HUB_REDIS_PREFIX}workers:{queue}:*"
        return sorted(k.decode().rsplit(":", 1)[-1] for k in r.scan_iter(match=pattern, count=100))
    except Exception:
        return []
