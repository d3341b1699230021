"""One writer cannot take search down for everyone: the run document has a fixed mapping
whatever keys a run carries, and every per-run quantity a user controls has a limit, refused
with its own code before anything is written (DB, metrics store, search index)."""

from __future__ import annotations

import numpy as np
import pytest

from hub.shared import wire
from hub.tracking import indexing
from tests.conftest import client_for
from tests.fixtures_services import unique_name

pytestmark = [pytest.mark.integration]

RUNS_URL = "/api/v1/projects/alice/exp/runs"


@pytest.fixture
def tracked(api, settings, elasticsearch_url, chdb_path, monkeypatch):
    """alice's client on a public project ``alice/exp``, indexing inline, a private
    metrics database and index prefix."""
    from hub.stores.metrics import metrics_store_from_url

    store = metrics_store_from_url(f"chdb://{chdb_path}?database={unique_name('t')}")
    store.ensure_schema()
    import hub.tracking.selectors as sel
    import hub.tracking.services as svc

    monkeypatch.setattr(svc, "get_metrics_store", lambda: store)
    monkeypatch.setattr(sel, "get_metrics_store", lambda: store)
    settings.HUB_ELASTICSEARCH_URL = elasticsearch_url
    settings.HUB_ELASTICSEARCH_INDEX_PREFIX = unique_name("hub").replace("_", "-").lower()
    settings.CELERY_TASK_ALWAYS_EAGER = True
    indexing.search_index().ensure_indices()
    client, _ = api
    assert client.post("/api/v1/projects", {"name": "exp"}, format="json").status_code == 201
    yield client
    indexing.search_index().drop_all()
    store.drop_database()


def _binary(keys: list[str], steps_per_key: int = 1) -> bytes:
    n = len(keys) * steps_per_key
    ki = np.repeat(np.arange(len(keys), dtype=np.uint32), steps_per_key)
    step = np.tile(np.arange(steps_per_key, dtype=np.int64), len(keys))
    value = np.arange(n, dtype=np.float64)
    return wire.encode(keys, ki, step, np.full(n, 1.7e9), value)


def _post_points(client, run_id: str, keys: list[str]):
    return client.post(
        f"/api/v1/runs/{run_id}/metrics", data=_binary(keys), content_type=wire.CONTENT_TYPE
    )


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    body = response.json()
    assert body["error"]["code"] == code, body
    return body["error"]


def _mapping_field_count(mapping: dict) -> int:
    """Leaf fields plus object fields, as Elasticsearch counts them for
    ``index.mapping.total_fields.limit`` (sub-fields of ``fields`` count too)."""
    count = 0
    stack = [mapping.get("properties", {})]
    while stack:
        props = stack.pop()
        for spec in props.values():
            count += 1 + len(spec.get("fields", {}))
            if "properties" in spec:
                stack.append(spec["properties"])
    return count


def _runs_mapping() -> dict:
    idx = indexing.search_index()
    [(_, body)] = idx._es.indices.get_mapping(index=idx.runs_index).body.items()
    return body["mappings"]


def _index_state():
    idx = indexing.search_index()
    idx.refresh()
    hits = idx.search_runs(None, page_size=1000).hits
    return {h.id: h.source for h in hits}


def _run(client, **body) -> dict:
    r = client.post(RUNS_URL, {"name": "r", **body}, format="json")
    assert r.status_code == 201, r.content[:500]
    return r.json()


@pytest.mark.django_db(transaction=True)
def test_a_run_with_100000_metric_keys_keeps_the_mapping_bounded_and_search_answering(
    make_user, tracked, settings
):
    settings.HUB_MAX_METRIC_KEYS_PER_RUN = 200_000
    settings.HUB_MAX_PARAMS_PER_RUN = 20_000
    fields_before = _mapping_field_count(_runs_mapping())
    params = {f"p{i}": i for i in range(5_000)}
    run = _run(tracked, params=params)
    keys = [f"k/{i}" for i in range(100_000)]
    assert _post_points(tracked, run["id"], keys).status_code == 200
    other = _run(tracked, params={"lr": 0.5})
    assert _post_points(tracked, other["id"], ["k/7"]).status_code == 200
    indexing.search_index().refresh()

    fields_after = _mapping_field_count(_runs_mapping())
    assert fields_after == fields_before and fields_after < 100

    _, token = make_user("bob")
    bob = client_for(token)
    for q, sort, expected in [
        ("summary.k/99999:>=0", "", [run["id"]]),
        ("params.p4999:4999", "", [run["id"]]),
        ("summary.k/7:*", "-summary.k/7", [run["id"], other["id"]]),
        ("", "summary.k/7.last", [other["id"], run["id"]]),
        ("", "params.lr", [other["id"], run["id"]]),
    ]:
        r = bob.get(RUNS_URL, {"q": q, "sort": sort or "-created_at", "page_size": 10})
        assert r.status_code == 200, (q, r.content[:300])
        assert [x["id"] for x in r.json()["results"]] == expected, q


@pytest.mark.django_db(transaction=True)
def test_too_many_metric_keys_in_a_run_is_refused_and_nothing_is_stored(tracked, settings):
    settings.HUB_MAX_METRIC_KEYS_PER_RUN = 10
    run = _run(tracked)
    assert _post_points(tracked, run["id"], [f"a{i}" for i in range(8)]).status_code == 200
    before = _index_state()
    error = _error(
        _post_points(tracked, run["id"], ["a0", "b1", "b2", "b3"]), 400, "too_many_metric_keys"
    )
    assert error["details"]["limit"] == 10
    keys = {k["key"] for k in tracked.get(f"/api/v1/runs/{run['id']}/metrics").json()["keys"]}
    assert keys == {f"a{i}" for i in range(8)}
    assert set(tracked.get(f"/api/v1/runs/{run['id']}").json()["summary"]) == keys
    assert _index_state() == before
    # keys the run already has are always accepted; the JSON columns count the same way
    assert _post_points(tracked, run["id"], ["a1", "a2"]).status_code == 200
    r = tracked.post(
        f"/api/v1/runs/{run['id']}/metrics",
        {"key": ["c1", "c2", "c3"], "step": [0, 0, 0], "value": [1, 2, 3]},
        format="json",
    )
    _error(r, 400, "too_many_metric_keys")


@pytest.mark.django_db(transaction=True)
def test_too_many_params_is_refused_on_create_and_on_log(tracked, settings):
    settings.HUB_MAX_PARAMS_PER_RUN = 5
    _error(
        tracked.post(RUNS_URL, {"params": {f"p{i}": i for i in range(6)}}, format="json"),
        400,
        "too_many_params",
    )
    assert tracked.get(RUNS_URL).json()["results"] == []
    run = _run(tracked, params={"a": 1, "b": {"c": 2, "d": 3}})
    before = _index_state()
    r = tracked.post(
        f"/api/v1/runs/{run['id']}/params", {"params": {"e": 1, "f": 2, "g": 3}}, format="json"
    )
    _error(r, 400, "too_many_params")
    assert tracked.get(f"/api/v1/runs/{run['id']}").json()["params"] == {"a": 1, "b.c": 2, "b.d": 3}
    assert _index_state() == before
    # a run resumed through its client id counts its logged params too
    r = tracked.post(
        RUNS_URL, {"run_id": "resumed01", "params": {"a": 1, "b": 2, "c": 3}}, format="json"
    )
    assert r.status_code == 201
    r = tracked.post(
        RUNS_URL, {"run_id": "resumed01", "params": {"x": 1, "y": 2, "z": 3}}, format="json"
    )
    _error(r, 400, "too_many_params")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [6_001, 1_000_000, 10_000_000])
def test_large_param_values_are_refused(tracked, size):
    _error(
        tracked.post(RUNS_URL, {"params": {"blob": "x" * size}}, format="json"),
        400,
        "param_value_too_large",
    )
    run = _run(tracked, params={"ok": "x" * 6_000, "nested": [[1, 2], [3]]})
    r = tracked.post(
        f"/api/v1/runs/{run['id']}/params",
        {"params": {"big": ["y" * 100] * (size // 100)}},
        format="json",
    )
    _error(r, 400, "param_value_too_large")
    assert set(tracked.get(f"/api/v1/runs/{run['id']}").json()["params"]) == {"ok", "nested"}


@pytest.mark.django_db(transaction=True)
def test_long_keys_are_refused_for_params_and_metrics(tracked):
    long_key = "k" * 251
    _error(tracked.post(RUNS_URL, {"params": {long_key: 1}}, format="json"), 400, "key_too_long")
    _error(
        tracked.post(RUNS_URL, {"params": {"a" * 200: {"b" * 60: 1}}}, format="json"),
        400,
        "key_too_long",
    )
    run = _run(tracked, params={"k" * 250: 1})
    _error(_post_points(tracked, run["id"], ["ok", long_key]), 400, "key_too_long")
    r = tracked.post(
        f"/api/v1/runs/{run['id']}/metrics",
        {"key": long_key, "step": [0], "value": [1.0]},
        format="json",
    )
    _error(r, 400, "key_too_long")
    assert tracked.get(f"/api/v1/runs/{run['id']}/metrics").json()["keys"] == []


@pytest.mark.django_db(transaction=True)
def test_too_many_tags_is_refused(tracked, settings):
    settings.HUB_MAX_TAGS_PER_RUN = 3
    _error(
        tracked.post(RUNS_URL, {"tags": ["a", "b", "c", "d"]}, format="json"), 400, "too_many_tags"
    )
    run = _run(tracked, tags=["a", "b"])
    r = tracked.patch(f"/api/v1/runs/{run['id']}", {"add_tags": ["c", "d"]}, format="json")
    _error(r, 400, "too_many_tags")
    assert tracked.get(f"/api/v1/runs/{run['id']}").json()["tags"] == ["a", "b"]
    r = tracked.patch(f"/api/v1/runs/{run['id']}", {"add_tags": ["t" * 101]}, format="json")
    _error(r, 400, "tag_too_long")


def _nested(depth: int) -> dict:
    params: dict = {"leaf": 1}
    for i in range(depth - 1):
        params = {f"l{i}": params}
    return params


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("depth", [21, 5_000, 100_000])
def test_params_nested_too_deep_are_refused(tracked, depth):
    _error(
        tracked.post(RUNS_URL, {"params": _nested(depth)}, format="json")
        if depth < 900
        else tracked.post(
            RUNS_URL,
            data='{"params": ' + '{"a": ' * depth + "1" + "}" * depth + "}",
            content_type="application/json",
        ),
        400,
        "params_too_deep",
    )
    assert tracked.get(RUNS_URL).json()["results"] == []


@pytest.mark.django_db(transaction=True)
def test_params_nested_to_the_limit_are_accepted(tracked):
    run = _run(tracked, params=_nested(20))
    assert len(run["params"]) == 1 and list(run["params"].values()) == [1]


@pytest.mark.django_db(transaction=True)
def test_request_bodies_over_the_limit_are_refused(tracked, settings):
    settings.HUB_MAX_REQUEST_BYTES = 10_000
    _error(tracked.post(RUNS_URL, {"notes": "n" * 20_000}, format="json"), 413, "request_too_large")
    assert tracked.get(RUNS_URL).json()["results"] == []
    run = _run(tracked)
    settings.HUB_MAX_METRICS_REQUEST_BYTES = 10_000
    _error(
        _post_points(tracked, run["id"], [f"m{i}" for i in range(1_000)]), 413, "request_too_large"
    )
    assert tracked.get(f"/api/v1/runs/{run['id']}/metrics").json()["keys"] == []


@pytest.mark.django_db(transaction=True)
def test_search_init_moves_an_index_with_the_old_layout_to_the_fixed_mapping(tracked):
    from django.core.management import call_command

    from hub.stores._search_layout import LAYOUT_VERSION

    run = _run(tracked, params={"optimizer": "adamw", "lr": 0.01})
    idx = indexing.search_index()
    idx.drop_all()
    # The layout before version 2: one mapped field per param, no version in _meta.
    old = {
        "dynamic_templates": [
            {
                "p": {
                    "path_match": "params.*",
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword"},
                }
            }
        ],
        "properties": {
            "id": {"type": "keyword"},
            "project": {"type": "keyword"},
            "params": {"type": "object", "subobjects": False},
        },
    }
    for alias in (idx.runs_index, idx.commits_index):
        idx._es.indices.create(index=f"{alias}-1", aliases={alias: {}}, mappings=old)
    idx._es.index(
        index=idx.runs_index,
        id=run["id"],
        document={"id": run["id"], "project": "alice/exp", "params": {"optimizer": "adamw"}},
        refresh=True,
    )
    assert idx.layout_version(idx.runs_index) is None

    call_command("search_init")

    assert (
        idx.layout_version(idx.runs_index)
        == idx.layout_version(idx.commits_index)
        == LAYOUT_VERSION
    )
    assert idx.describe()[idx.runs_index] != [f"{idx.runs_index}-1"]
    assert _runs_mapping()["properties"]["params"]["type"] == "flattened"
    r = tracked.get(RUNS_URL, {"q": "params.optimizer:adam* AND params.lr:<0.1"})
    assert [x["id"] for x in r.json()["results"]] == [run["id"]]
    assert idx.ensure_indices() == []


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/repos"])
def test_every_json_endpoint_bounds_its_body_and_its_depth(api, path, settings):
    """Not only the tracker's views: the default parser of every API view is bounded."""
    client, _ = api
    settings.HUB_MAX_REQUEST_BYTES = 1024
    big = client.post(path, data='{"x": "' + "a" * 4096 + '"}', content_type="application/json")
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    settings.HUB_MAX_REQUEST_BYTES = 16 * 1024 * 1024
    deep = client.post(path, data="[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "json_too_deep"
