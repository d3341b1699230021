"""The Redis adapter (hub.stores.redis) against the real Redis the hub uses (a unique key
prefix per test): the presence key format the workers share, the pending-run set, and
RedisUnavailable, which the one exception handler answers as 503 ``redis_unavailable``."""

from __future__ import annotations

import socket
import uuid

import pytest

from hub.stores.redis import RedisStore, RedisUnavailable

pytestmark = pytest.mark.integration


@pytest.fixture
def store(settings):
    import redis

    raw = redis.Redis.from_url(settings.HUB_REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    s = RedisStore(settings.HUB_REDIS_URL, prefix=prefix, timeout_s=1)
    yield s, raw
    for key in raw.scan_iter(f"{prefix}*"):
        raw.delete(key)
    s.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_presence_keys_keep_the_format_workers_write(store):
    s, raw = store
    s.presence_announce(queue="gpu", hostname="node-1", info="4242", ttl_s=30)
    key = f"{s.prefix}workers:gpu:node-1"
    assert raw.get(key) == b"4242" and 0 < raw.ttl(key) <= 30
    raw.set(f"{s.prefix}workers:gpu:node-0", "1", ex=30)  # as a worker-side writer does it
    assert s.presence_hosts("gpu") == ["node-0", "node-1"] and s.presence_hosts("cpu") == []


def test_pending_ids_are_taken_once_and_the_window_is_claimed_once(store):
    s, raw = store
    assert (
        s.pending_add("index:pending:run", ["b", "a"], window="index:drain:run", window_ms=60_000)
        is True
    )
    assert (
        s.pending_add("index:pending:run", ["c"], window="index:drain:run", window_ms=60_000)
        is False
    )
    assert raw.scard(f"{s.prefix}index:pending:run") == 3
    first = s.pending_take("index:pending:run", 2)
    assert len(first) == 2 and sorted(first + s.pending_take("index:pending:run", 2)) == [
        "a",
        "b",
        "c",
    ]
    assert s.pending_take("index:pending:run", 2) == []
    assert s.claim_window("index:commit:1", window_ms=60_000) and not s.claim_window(
        "index:commit:1", window_ms=60_000
    )


def test_a_redis_that_is_not_there_is_redis_unavailable():
    s = RedisStore(f"redis://127.0.0.1:{_closed_port()}/0", prefix="x:", timeout_s=0.5)
    with pytest.raises(RedisUnavailable):
        s.presence_hosts("gpu")
    with pytest.raises(RedisUnavailable):
        s.pending_add("p", ["a"])


def test_a_workers_announcement_is_what_the_hub_reads(settings):
    """The worker's side (workers.presence, no Django) and the hub's (hub.jobs.presence) meet
    on the one key format."""
    import redis

    from hub.jobs.presence import workers_online
    from workers.presence import PRESENCE_TTL_S, announce

    settings.HUB_REDIS_PREFIX = f"test:{uuid.uuid4().hex}:"
    key = f"{settings.HUB_REDIS_PREFIX}workers:gpu:gpu-host-1"
    announce(
        redis_url=settings.HUB_REDIS_URL,
        prefix=settings.HUB_REDIS_PREFIX,
        queue="gpu",
        hostname="gpu-host-1",
    )
    try:
        assert workers_online("gpu") == ["gpu-host-1"] and workers_online("cpu") == []
        assert 0 < redis.Redis.from_url(settings.HUB_REDIS_URL).ttl(key) <= PRESENCE_TTL_S
    finally:
        redis.Redis.from_url(settings.HUB_REDIS_URL).delete(key)


def test_without_redis_no_worker_is_online(settings):
    from hub.jobs.presence import workers_online

    settings.HUB_REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    assert workers_online("gpu") == []


def test_redis_unavailable_is_one_503_with_retry_after():
    from hub.common.errors import exception_handler

    r = exception_handler(RedisUnavailable("refused", retry_after=3), {})
    assert r.status_code == 503 and r["Retry-After"] == "3"
    assert r.data["error"]["code"] == "redis_unavailable"
