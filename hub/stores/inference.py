"""Redis for the inference playground: the per-user rate-limit windows and the event lists
the inference worker fills (``hub.shared.inference`` has the key format both sides use).

A separate client from ``hub.stores.redis``'s: reading a request's events blocks (BLPOP, up
to a second at a time), which that store's short socket timeout would cut. Every failure
raises :class:`hub.stores.redis.RedisUnavailable` (503 ``redis_unavailable``)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from hub.shared.inference import KEY_TTL_S, cancel_key, events_key
from hub.stores.redis import RedisUnavailable

_lock = threading.Lock()
_stores: dict[tuple[str, str], InferenceChannel] = {}


class InferenceChannel:
    def __init__(self, url: str, *, prefix: str, timeout_s: float = 0.5) -> None:
        import redis

        self.prefix = prefix
        self.timeout_s = timeout_s
        # BLPOP waits up to POLL_S on the server: the socket must wait longer than that.
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s + self.POLL_S + 1
        )

    POLL_S = 1

    def _call(self, fn) -> Any:
        import redis

        try:
            return fn(self._client)
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis is unreachable: {exc}") from exc

    def rate_hit(self, who: str, *, limit: int, window_s: int) -> int:
        """Count one request of ``who`` in the current fixed window of ``window_s`` seconds:
        0 if it is within ``limit``, else the seconds until the window ends (Retry-After)."""
        now = time.time()
        window = int(now // window_s)
        key = f"{self.prefix}infer:rate:{who}:{window}"

        def hit(r):
            with r.pipeline() as p:
                p.incr(key)
                p.expire(key, window_s + 1)
                return p.execute()[0]

        count = int(self._call(hit))
        if count <= limit:
            return 0
        return max(1, int((window + 1) * window_s - now + 0.999))

    def active_enter(self, who: str, *, limit: int, ttl_s: int) -> bool:
        """Count one running generation of ``who``; False (and nothing counted) when ``who``
        already runs ``limit``. The counter expires ``ttl_s`` after the last start, so a web
        process that died mid-stream cannot hold a user's slots for ever."""
        key = f"{self.prefix}infer:active:{who}"

        def enter(r):
            with r.pipeline() as p:
                p.incr(key)
                p.expire(key, ttl_s)
                n = p.execute()[0]
            if n > limit:
                r.decr(key)
                return False
            return True

        return bool(self._call(enter))

    def active_leave(self, who: str) -> None:
        self._call(lambda r: r.decr(f"{self.prefix}infer:active:{who}"))

    def next_event(self, request_id: str, timeout_s: float) -> dict | None:
        """The worker's next event for the request, waiting up to ``timeout_s`` (None)."""
        key = events_key(self.prefix, request_id)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            wait = max(1, min(self.POLL_S, int(left + 0.999)))
            got = self._call(lambda r, w=wait: r.blpop([key], timeout=w))
            if got is not None:
                try:
                    ev = json.loads(got[1])
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    return ev

    def cancel(self, request_id: str) -> None:
        self._call(lambda r: r.set(cancel_key(self.prefix, request_id), 1, ex=KEY_TTL_S))

    def forget(self, request_id: str) -> None:
        self._call(lambda r: r.delete(events_key(self.prefix, request_id)))


def get_channel() -> InferenceChannel:
    from django.conf import settings

    key = (settings.HUB_REDIS_URL, settings.HUB_REDIS_PREFIX)
    with _lock:
        ch = _stores.get(key)
        if ch is None:
            ch = _stores[key] = InferenceChannel(
                key[0], prefix=key[1], timeout_s=settings.HUB_REDIS_TIMEOUT_MS / 1000
            )
        return ch
