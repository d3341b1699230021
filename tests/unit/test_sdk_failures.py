"""Whatever a metrics POST fails with, the SDK keeps the batch unless the hub said it will
never take it; the HTTP client reports every transport failure as the hub being unreachable."""

from __future__ import annotations

import httpx
import pytest

from hub.client import Client
from hub.client.errors import HubClientError, HubUnreachable
from hub.client.run import Run
from hub.shared import wire

pytestmark = pytest.mark.unit


class Failing:
    def __init__(self, exc):
        self.exc = exc

    def request(self, *a, **kw):
        raise self.exc

    def _json(self, *a, **kw):
        raise HubUnreachable("no network")


def spooled_points(tmp_path, run_id):
    return sum(
        len(wire.decode(f.read_bytes(), max_points=10**6)[2])
        for f in (tmp_path / run_id).glob("*.bin")
    )


@pytest.mark.parametrize(
    "exc",
    [
        httpx.WriteTimeout("write timed out"),
        httpx.PoolTimeout("no free connection"),
        RuntimeError("a bug in a transport adapter"),
        HubClientError(401, "invalid_token", "token expired"),
        HubClientError(403, "token_read_only", "read-only token"),
        HubClientError(429, "throttled", "slow down"),
        HubClientError(503, "metrics_store_unavailable", "down"),
    ],
    ids=lambda e: type(e).__name__ + str(getattr(e, "status", "")),
)
def test_a_batch_that_could_not_be_sent_is_spooled(tmp_path, exc):
    run = Run(
        Failing(exc),
        {"id": "feedc0ffee000001"},
        spool_dir=tmp_path,
        flush_interval=3600,
        system_metrics=False,
    )
    for step in range(100):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.flush(timeout=1)
    assert spooled_points(tmp_path, run.id) == 100
    run.finish(timeout=0.5)


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_batch_the_hub_refuses_for_good_is_not_kept(tmp_path, status):
    run = Run(
        Failing(HubClientError(status, "invalid_batch", "no")),
        {"id": "feedc0ffee000002"},
        spool_dir=tmp_path,
        flush_interval=3600,
        system_metrics=False,
    )
    run.log({"loss": 1.0}, step=0)
    run.flush(timeout=1)
    assert spooled_points(tmp_path, run.id) == 0
    run.finish(timeout=0.5)


@pytest.mark.parametrize(
    "exc", [httpx.WriteTimeout("w"), httpx.PoolTimeout("p"), httpx.ReadTimeout("r")]
)
def test_every_transport_failure_is_hub_unreachable(exc):
    def fail(request):
        raise exc

    c = Client(url="http://hub.test", token="t", retries=1, backoff=0.001)
    c._http = httpx.Client(base_url="http://hub.test/api/v1", transport=httpx.MockTransport(fail))
    with pytest.raises(HubUnreachable):
        c.request("POST", "/runs/x/metrics", content=b"x", idempotent=True)
