"""A ClickHouse server that goes away mid-life: every endpoint that reads or writes metrics,
job logs or profiles answers 503 ``metrics_store_unavailable`` with ``Retry-After`` (from the
one exception handler), never a 500; the run page still opens, without point counts."""

from __future__ import annotations

import pytest

from tests.fixtures_services import unique_name
from tests.helpers import TINY

pytestmark = [pytest.mark.integration]


@pytest.fixture
def hub_on_a_server(api, settings, clickhouse_server_restartable, monkeypatch):
    """alice's client and the ClickHouse server the hub's real (cached) store talks to."""
    import hub.stores.metrics as metrics
    import hub.tracking.selectors as sel
    import hub.tracking.services as svc

    server = clickhouse_server_restartable
    settings.HUB_CLICKHOUSE_URL = f"{server.url_for(unique_name())}?connect_timeout=1"
    settings.HUB_ELASTICSEARCH_URL = ""
    monkeypatch.setattr(metrics, "_default_store", None)
    monkeypatch.setattr(svc, "get_metrics_store", metrics.get_metrics_store)
    monkeypatch.setattr(sel, "get_metrics_store", metrics.get_metrics_store)
    client, _ = api
    assert client.post("/api/v1/projects", {"name": "exp"}, format="json").status_code == 201
    yield client, server
    store = metrics._default_store
    if store is not None:
        store.close()


def _is_503(r):
    assert r.status_code == 503, r.content
    assert r["Retry-After"].isdigit()
    assert r.json()["error"]["code"] == "metrics_store_unavailable", r.content


def test_every_metrics_endpoint_is_503_while_clickhouse_is_down(hub_on_a_server):
    client, server = hub_on_a_server
    run = client.post("/api/v1/projects/alice/exp/runs", {"name": "r"}, format="json").json()["id"]
    job = client.post(
        "/api/v1/jobs", {"project": "alice/exp", "kind": "train", "config": TINY}, format="json"
    ).json()["id"]
    other = client.post(
        "/api/v1/jobs", {"project": "alice/exp", "kind": "train", "config": TINY}, format="json"
    ).json()["id"]
    assert (
        client.post(
            f"/api/v1/runs/{run}/metrics",
            {"key": "loss", "step": [0, 1], "value": [2.0, 1.0]},
            format="json",
        ).status_code
        == 200
    )
    reads = [
        f"/api/v1/metrics/series?runs={run}&keys=loss",
        f"/api/v1/runs/{run}/metrics",
        f"/api/v1/runs/{run}/metrics/export",
        f"/api/v1/jobs/{job}/logs",
        f"/api/v1/jobs/{job}/logs?tail=5",
        f"/api/v1/jobs/{job}/logs/stream",
        f"/api/v1/jobs/{job}/profile",
        f"/api/v1/jobs/profile-compare?a={job}&b={other}",
    ]
    for url in reads:  # all answer while the server is up
        assert client.get(url).status_code == 200, url

    server.stop()
    for url in reads:
        _is_503(client.get(url))
    _is_503(
        client.post(
            f"/api/v1/runs/{run}/metrics",
            {"key": "loss", "step": [2], "value": [0.5]},
            format="json",
        )
    )
    _is_503(client.delete(f"/api/v1/runs/{run}"))
    page = client.get(f"/api/v1/runs/{run}")
    assert page.status_code == 200 and "count" not in page.json()["summary"]["loss"]
