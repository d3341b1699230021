"""The tracker through its REST API, on both ClickHouse engines and the search server."""

from __future__ import annotations

import numpy as np
import pytest

from hub.shared import wire
from hub.tracking.models import Run
from tests.conftest import client_for

pytestmark = [pytest.mark.integration]


@pytest.fixture
def tracker(api, settings, metrics_store, monkeypatch):
    """alice's client, with the tracker wired to the parametrized metrics store."""
    import hub.tracking.selectors as sel
    import hub.tracking.services as svc

    monkeypatch.setattr(svc, "get_metrics_store", lambda: metrics_store)
    monkeypatch.setattr(sel, "get_metrics_store", lambda: metrics_store)
    settings.HUB_ELASTICSEARCH_URL = ""
    client, _ = api
    assert client.post("/api/v1/projects", {"name": "exp"}, format="json").status_code == 201
    return client


def new_run(client, **body):
    r = client.post("/api/v1/projects/alice/exp/runs", body, format="json")
    assert r.status_code in (200, 201), r.content
    return r.json()


def ingest(client, run_id, **cols):
    return client.post(f"/api/v1/runs/{run_id}/metrics", cols, format="json")


def test_run_lifecycle_and_params_are_write_once(tracker):
    run = new_run(
        tracker,
        name="baseline",
        params={"moe": {"top_k": 2, "experts": 16}, "lr": 3e-4},
        tags=["base"],
    )
    assert run["params"] == {"moe.top_k": 2, "moe.experts": 16, "lr": 3e-4}
    ok = tracker.post(
        f"/api/v1/runs/{run['id']}/params", {"params": {"lr": 3e-4, "seed": 1}}, format="json"
    )
    assert ok.status_code == 200 and ok.json()["params"]["seed"] == 1
    bad = tracker.post(
        f"/api/v1/runs/{run['id']}/params", {"params": {"moe": {"top_k": 4}}}, format="json"
    )
    assert bad.status_code == 409
    err = bad.json()["error"]
    assert err["code"] == "param_conflict" and err["details"]["moe.top_k"] == {
        "logged": 2,
        "new": 4,
    }
    assert Run.objects.get(pk=run["id"]).params["moe.top_k"] == 2
    done = tracker.patch(
        f"/api/v1/runs/{run['id']}", {"status": "finished", "add_tags": ["good"]}, format="json"
    )
    assert (
        done.json()["status"] == "finished"
        and done.json()["ended_at"]
        and done.json()["tags"] == ["base", "good"]
    )


def test_client_chosen_run_id_makes_creation_idempotent(tracker):
    a = tracker.post(
        "/api/v1/projects/alice/exp/runs",
        {"run_id": "abcdef0123456789", "name": "x"},
        format="json",
    )
    b = tracker.post(
        "/api/v1/projects/alice/exp/runs",
        {"run_id": "abcdef0123456789", "name": "x"},
        format="json",
    )
    assert (a.status_code, b.status_code) == (201, 200) and Run.objects.count() == 1


def test_ingest_read_and_retry_does_not_double_count(tracker, metrics_store):
    run = new_run(tracker)
    steps = list(range(1000))
    values = [float(np.sin(s / 50)) for s in steps]
    body = {"key": "loss", "step": steps, "value": values, "time": [1.7e9 + s for s in steps]}
    assert ingest(tracker, run["id"], **body).json()["accepted"] == 1000
    before = Run.objects.get(pk=run["id"]).summary
    assert ingest(tracker, run["id"], **body).status_code == 200  # a retried batch
    assert Run.objects.get(pk=run["id"]).summary == before
    s = tracker.get(f"/api/v1/metrics/series?runs={run['id']}&keys=loss").json()["series"][0]
    assert s["step"] == steps and s["value"] == pytest.approx(values)
    summary = tracker.get(f"/api/v1/runs/{run['id']}").json()["summary"]["loss"]
    assert summary["last_step"] == 999 and summary["max"] == pytest.approx(max(values))
    keys = tracker.get(f"/api/v1/runs/{run['id']}/metrics").json()["keys"]
    assert keys[0]["key"] == "loss" and keys[0]["count"] == 1000


def test_late_out_of_order_steps_and_binary_encoding(tracker):
    run = new_run(tracker)
    body = wire.encode(
        ["a", "system/cpu"],
        [0, 1, 0, 1],
        [5, 5, 1, 1],
        [1.0, 1.0, 2.0, 2.0],
        [0.5, 10.0, 0.9, 20.0],
    )
    r = tracker.post(f"/api/v1/runs/{run['id']}/metrics", body, content_type=wire.CONTENT_TYPE)
    assert r.status_code == 200, r.content
    r = tracker.post(
        f"/api/v1/runs/{run['id']}/metrics",
        wire.encode(["a"], [0], [3], [3.0], [0.7]),
        content_type=wire.CONTENT_TYPE,
    )
    s = {
        x["key"]: x
        for x in tracker.get(f"/api/v1/metrics/series?runs={run['id']}&keys=a,system/cpu").json()[
            "series"
        ]
    }
    assert s["a"]["step"] == [1, 3, 5] and s["a"]["value"] == [0.9, 0.7, 0.5]
    assert tracker.get(f"/api/v1/runs/{run['id']}").json()["summary"]["a"]["last"] == 0.5


def test_downsampling_keeps_a_spike(tracker):
    run = new_run(tracker)
    n = 100_000
    values = [1.0] * n
    values[54_321] = 1000.0
    assert (
        ingest(tracker, run["id"], key="loss", step=list(range(n)), value=values).status_code == 200
    )
    s = tracker.get(f"/api/v1/metrics/series?runs={run['id']}&keys=loss&buckets=200").json()[
        "series"
    ][0]
    assert s["downsampled"] and len(s["step"]) <= 200 and max(s["max"]) == 1000.0
    zoom = tracker.get(
        f"/api/v1/metrics/series?runs={run['id']}&keys=loss&buckets=200&min=54300&max=54400"
    ).json()
    z = zoom["series"][0]
    assert not z["downsampled"] and len(z["step"]) == 101 and 1000.0 in z["value"]


@pytest.mark.parametrize(
    "cols, code",
    [
        ({"key": "loss", "step": [1], "value": [float("nan")]}, "non_finite_value"),
        ({"key": "loss", "step": [1], "value": [float("inf")]}, "non_finite_value"),
        ({"key": "loss", "step": [-1], "value": [1.0]}, "invalid_step"),
        ({"key": "bad key!", "step": [1], "value": [1.0]}, "invalid_key"),
        ({"key": "x" * 251, "step": [1], "value": [1.0]}, "key_too_long"),
        ({"key": "loss", "step": [1, 2], "value": [1.0]}, "invalid_batch"),
        ({"key": "loss", "step": [1.5], "value": [1.0]}, "invalid_step"),
        ({"key": "loss", "step": [1], "value": ["1"]}, "non_finite_value"),
        ({"key": "loss", "step": [], "value": []}, "empty_batch"),
    ],
)
def test_bad_batches_are_refused_whole(tracker, cols, code):
    run = new_run(tracker)
    if (
        cols["value"]
        and isinstance(cols["value"][0], float)
        and cols["value"][0] != cols["value"][0]
    ):
        r = tracker.post(
            f"/api/v1/runs/{run['id']}/metrics",
            '{"key": "loss", "step": [1], "value": [NaN]}',
            content_type="application/json",
        )
    elif cols["value"] and cols["value"][0] == float("inf"):
        r = tracker.post(
            f"/api/v1/runs/{run['id']}/metrics",
            wire.encode(["loss"], [0], [1], [1.0], [float("inf")]),
            content_type=wire.CONTENT_TYPE,
        )
    else:
        r = ingest(tracker, run["id"], **cols)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.content
    assert tracker.get(f"/api/v1/runs/{run['id']}/metrics").json()["keys"] == []


def test_oversized_batch_is_413(tracker):
    run = new_run(tracker)
    n = 200_001
    r = tracker.post(
        f"/api/v1/runs/{run['id']}/metrics",
        wire.encode(["k"], np.zeros(n), np.arange(n), np.zeros(n), np.zeros(n)),
        content_type=wire.CONTENT_TYPE,
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "batch_too_large"
    assert (
        tracker.post(
            f"/api/v1/runs/{run['id']}/metrics", b"garbage", content_type=wire.CONTENT_TYPE
        ).status_code
        == 400
    )


def test_metrics_store_down_is_503_with_retry_after(tracker, monkeypatch):
    from hub.stores.metrics import MetricsStoreUnavailable

    run = new_run(tracker)

    class Down:
        def insert_columns(self, **kw):
            raise MetricsStoreUnavailable("connection refused", retry_after=7)

    import hub.tracking.services as svc

    monkeypatch.setattr(svc, "get_metrics_store", lambda: Down())
    r = ingest(tracker, run["id"], key="loss", step=[1], value=[1.0])
    assert r.status_code == 503 and r["Retry-After"] == "7"
    assert r.json()["error"]["code"] == "metrics_store_unavailable"
    assert Run.objects.get(pk=run["id"]).summary == {}


def test_export_csv_streams_every_point(tracker):
    run = new_run(tracker)
    ingest(tracker, run["id"], key="a", step=list(range(10)), value=[float(i) for i in range(10)])
    ingest(tracker, run["id"], key="b", step=[0], value=[42.0])
    r = tracker.get(f"/api/v1/runs/{run['id']}/metrics/export")
    lines = b"".join(r.streaming_content).decode().strip().splitlines()
    assert lines[0] == "key,step,wall_time,value" and len(lines) == 12
    assert any(line.startswith("b,0,") and line.endswith(",42.0") for line in lines)


def test_private_project_runs_are_invisible(tracker, make_user):
    tracker.post("/api/v1/projects", {"name": "secret", "private": True}, format="json")
    r = tracker.post("/api/v1/projects/alice/secret/runs", {"name": "hidden"}, format="json")
    _, tok = make_user("eve")
    eve = client_for(tok)
    assert eve.get(f"/api/v1/runs/{r.json()['id']}").status_code == 404
    assert (
        eve.post(
            f"/api/v1/runs/{r.json()['id']}/metrics",
            {"key": "a", "step": [1], "value": [1.0]},
            format="json",
        ).status_code
        == 404
    )
    public = new_run(tracker)
    assert (
        eve.post(
            f"/api/v1/runs/{public['id']}/metrics",
            {"key": "a", "step": [1], "value": [1.0]},
            format="json",
        ).status_code
        == 403
    )


def test_comparison_report(tracker):
    ids = []
    for i, (top_k, lr, loss) in enumerate(
        [(2, 3e-4, 2.0), (4, 1e-3, 1.76), (8, 1e-3, 1.9), (2, 1e-4, 2.3), (4, 3e-4, 1.8)]
    ):
        run = new_run(tracker, name=f"r{i}", params={"moe": {"top_k": top_k}, "lr": lr, "seed": 0})
        ingest(tracker, run["id"], key="val_loss", step=[0, 100], value=[loss + 1, loss])
        ids.append(run["id"])
    rep = tracker.get(f"/api/v1/runs/compare?runs={','.join(ids)}&baseline={ids[0]}").json()
    assert rep["target"] == "val_loss"
    assert {p["key"] for p in rep["params"]} == {"moe.top_k", "lr"} and rep["same_params"] == 1
    [m] = rep["metrics"]
    assert m["best_run"] == ids[1] and m["runs"][ids[1]]["delta_final_pct"] == pytest.approx(-12.0)
    assert "r1 reaches 12.0% lower final val_loss than r0" in rep["summary"][0]
    assert "moe.top_k 2→4" in rep["summary"][0] and "lr 3.000e-04→0.001" in rep["summary"][0]
    assert {c["param"] for c in rep["correlations"]} == {"moe.top_k", "lr"}
    md = tracker.get(f"/api/v1/runs/compare?runs={','.join(ids)}&render=markdown")
    assert (
        md["Content-Type"].startswith("text/markdown")
        and b"| `moe.top_k` |" in md.content
        and "★".encode() in md.content
    )
    html = tracker.get(f"/api/v1/runs/compare?runs={ids[0]},{ids[1]}&render=html").content.decode()
    assert "<table>" in html and "class='best'" in html
    one = tracker.get(f"/api/v1/runs/compare?runs={ids[0]}")
    assert one.status_code == 400


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def store_cannot_be_created(tracker, settings, monkeypatch):
    """The real get_metrics_store, pointed at a ClickHouse that is not there, nothing cached:
    the state of a hub whose first request arrives while ClickHouse is down."""
    import hub.stores.metrics as metrics
    import hub.tracking.selectors as sel
    import hub.tracking.services as svc

    monkeypatch.setattr(metrics, "_default_store", None)
    monkeypatch.setattr(svc, "get_metrics_store", metrics.get_metrics_store)
    monkeypatch.setattr(sel, "get_metrics_store", metrics.get_metrics_store)
    settings.HUB_CLICKHOUSE_URL = f"clickhouse://127.0.0.1:{_closed_port()}/hub?connect_timeout=1"
    return tracker


def _is_503(r):
    assert r.status_code == 503, r.content
    assert r["Retry-After"].isdigit() and r.json()["error"]["code"] == "metrics_store_unavailable"


def test_store_that_cannot_be_created_is_503_for_ingest_and_delete(
    tracker, store_cannot_be_created
):
    run = new_run(tracker)
    _is_503(ingest(tracker, run["id"], key="loss", step=[1], value=[1.0]))
    assert Run.objects.get(pk=run["id"]).summary == {}
    _is_503(tracker.delete(f"/api/v1/runs/{run['id']}"))
    assert Run.objects.filter(pk=run["id"]).exists()


def test_store_that_cannot_be_created_is_503_for_reads_and_export(tracker, store_cannot_be_created):
    run = new_run(tracker)
    _is_503(tracker.get(f"/api/v1/metrics/series?runs={run['id']}&keys=loss"))
    _is_503(tracker.get(f"/api/v1/runs/{run['id']}/metrics"))
    _is_503(tracker.get(f"/api/v1/runs/{run['id']}/metrics/export"))


def test_export_answers_503_when_the_first_query_fails(tracker, monkeypatch):
    """The store object exists but the server went away: the first batch is fetched before
    the 200 goes out, so the client gets a 503 instead of a cut stream."""
    from hub.stores.metrics import MetricsStoreUnavailable

    run = new_run(tracker)

    class Gone:
        def export_rows(self, run_id, keys=None):
            raise MetricsStoreUnavailable("connection refused", retry_after=4)
            yield  # a generator, like the real one: the error comes at the first next()

    import hub.tracking.selectors as sel

    monkeypatch.setattr(sel, "get_metrics_store", lambda: Gone())
    r = tracker.get(f"/api/v1/runs/{run['id']}/metrics/export")
    assert r.status_code == 503 and r["Retry-After"] == "4", r.content


def test_export_of_an_empty_run_is_just_the_header(tracker):
    run = new_run(tracker)
    r = tracker.get(f"/api/v1/runs/{run['id']}/metrics/export")
    assert (
        r.status_code == 200
        and b"".join(r.streaming_content).decode().strip() == "key,step,wall_time,value"
    )


@pytest.mark.parametrize(
    "query, code",
    [
        ("min=nan", "invalid_min"),
        ("max=inf", "invalid_max"),
        ("min=-Infinity", "invalid_min"),
        ("max=1e999", "invalid_max"),
        ("min=abc", "invalid_min"),
        ("min=10&max=5", "invalid_range"),
    ],
)
def test_series_bounds_must_be_finite(tracker, query, code):
    run = new_run(tracker)
    ingest(tracker, run["id"], key="loss", step=[0, 1], value=[1.0, 2.0])
    r = tracker.get(f"/api/v1/metrics/series?runs={run['id']}&keys=loss&{query}")
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.content


def test_series_store_errors_are_400_or_503(tracker, monkeypatch):
    from hub.stores.metrics import MetricsStoreError, MetricsStoreUnavailable

    run = new_run(tracker)
    import hub.tracking.selectors as sel

    class Refuses:
        def series(self, *a, **kw):
            raise MetricsStoreError("expected a finite number")

    class Down:
        def series(self, *a, **kw):
            raise MetricsStoreUnavailable("refused", retry_after=3)

    monkeypatch.setattr(sel, "get_metrics_store", lambda: Refuses())
    r = tracker.get(f"/api/v1/metrics/series?runs={run['id']}&keys=loss")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_series_query"
    monkeypatch.setattr(sel, "get_metrics_store", lambda: Down())
    r = tracker.get(f"/api/v1/metrics/series?runs={run['id']}&keys=loss")
    assert r.status_code == 503 and r["Retry-After"] == "3"


def test_resuming_a_run_id_applies_the_write_once_rule(tracker):
    """The SDK resumes a run by posting the same run_id again: params follow the same rule as
    POST /runs/{id}/params, tags are merged."""
    url = "/api/v1/projects/alice/exp/runs"
    first = {
        "run_id": "resume0123456789",
        "params": {"moe": {"top_k": 2}, "lr": 3e-4},
        "tags": ["a"],
    }
    assert tracker.post(url, first, format="json").status_code == 201
    changed = tracker.post(
        url, {**first, "params": {"moe": {"top_k": 4}, "lr": 3e-4, "seed": 1}}, format="json"
    )
    assert changed.status_code == 409, changed.content
    err = changed.json()["error"]
    assert err["code"] == "param_conflict" and err["details"] == {
        "moe.top_k": {"logged": 2, "new": 4}
    }
    run = Run.objects.get(pk="resume0123456789")
    assert run.params == {"moe.top_k": 2, "lr": 3e-4} and run.tags == ["a"]  # nothing half-applied
    more = tracker.post(
        url, {**first, "params": {"lr": 3e-4, "seed": 1}, "tags": ["b", "a"]}, format="json"
    )
    assert more.status_code == 200, more.content
    assert more.json()["params"] == {"moe.top_k": 2, "lr": 3e-4, "seed": 1} and more.json()[
        "tags"
    ] == ["a", "b"]
    same = tracker.post(url, first, format="json")
    assert (
        same.status_code == 200 and same.json()["params"]["seed"] == 1
    )  # omitting a key removes nothing


def test_report_downloads_are_attachments(tracker):
    ids = []
    for i, loss in enumerate([2.0, 1.8]):
        run = new_run(tracker, name=f"r{i}", params={"lr": 1e-3 * (i + 1)})
        ingest(tracker, run["id"], key="val_loss", step=[0, 100], value=[loss + 1, loss])
        ids.append(run["id"])
    for render, ext in (("markdown", "md"), ("html", "html")):
        r = tracker.get(f"/api/v1/runs/compare?runs={','.join(ids)}&render={render}")
        assert (
            r.status_code == 200
            and r["Content-Disposition"] == f'attachment; filename="comparison.{ext}"'
        )
    page = tracker.get(f"/api/v1/runs/compare?runs={','.join(ids)}&render=html").content.decode()
    assert "(-10.0%)" in page


@pytest.mark.parametrize(
    "query, code",
    [
        ('cursor=["db","x"]', "invalid_cursor"),
        ('cursor=["db",-5]', "invalid_cursor"),
        ('cursor=["db"]', "invalid_cursor"),
        ('cursor=["db",1.5]', "invalid_cursor"),
        ('cursor={"a":1}', "invalid_cursor"),
        ("cursor=NaN", "invalid_cursor"),
        ("cursor=[]", "invalid_cursor"),
        ('cursor=[{"a":1}]&q=x', "invalid_cursor"),
        ("cursor=[NaN]&q=x", "invalid_cursor"),
        ("offset=-1", "invalid_offset"),
        ("offset=x", "invalid_offset"),
        ("offset=10000000000", "invalid_offset"),
    ],
)
def test_bad_paging_input_is_400(tracker, query, code):
    for i in range(3):
        new_run(tracker, name=f"r{i}")
    r = tracker.get(f"/api/v1/projects/alice/exp/runs?page_size=2&{query}")
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.content


def test_the_database_cursor_still_pages(tracker):
    ids = {new_run(tracker, name=f"r{i}")["id"] for i in range(3)}
    first = tracker.get("/api/v1/projects/alice/exp/runs?page_size=2").json()
    import json

    rest = tracker.get(
        f"/api/v1/projects/alice/exp/runs?page_size=2&cursor={json.dumps(first['next'])}"
    ).json()
    assert {r["id"] for r in first["results"] + rest["results"]} == ids and rest["next"] is None


def test_compare_model_commits_through_their_linked_runs(tracker):
    a, b = "a" * 40, "b" * 40
    old = new_run(tracker, name="old-a", commit=f"alice/moe@{a}", params={"lr": 1e-3})
    ingest(tracker, old["id"], key="val_loss", step=[0], value=[9.0])
    ra = new_run(tracker, name="run-a", commit=f"alice/moe@{a}", params={"lr": 1e-3})
    tracker.patch(f"/api/v1/runs/{ra['id']}", {"status": "finished"}, format="json")
    ingest(tracker, ra["id"], key="val_loss", step=[0, 100], value=[3.0, 2.0])
    rb = new_run(tracker, name="run-b", commit=f"alice/moe@{b}", params={"lr": 3e-3})
    ingest(tracker, rb["id"], key="val_loss", step=[0, 100], value=[3.0, 1.8])
    tracker.patch(
        f"/api/v1/runs/{old['id']}", {"status": "failed"}, format="json"
    )  # not the finished one
    r = tracker.get(
        f"/api/v1/runs/compare?commits=alice/moe@{a},alice/moe@{b}&baseline=alice/moe@{a}"
    )
    assert r.status_code == 200, r.content
    rep = r.json()
    assert [x["id"] for x in rep["runs"]] == [ra["id"], rb["id"]] and rep["baseline"] == ra["id"]
    assert rep["commits"] == {f"alice/moe@{a}": ra["id"], f"alice/moe@{b}": rb["id"]}
    assert rep["summary"][0].startswith(
        f"moe@{b[:8]} reaches 10.0% lower final val_loss than moe@{a[:8]}"
    )
    md = tracker.get(f"/api/v1/runs/compare?commits=alice/moe@{a},alice/moe@{b}&render=markdown")
    assert md.status_code == 200 and f"moe@{b[:8]}".encode() in md.content


@pytest.mark.parametrize(
    "query, status, code",
    [
        ("commits=alice/moe@" + "c" * 40 + ",alice/moe@" + "a" * 40, 404, "commit_has_no_runs"),
        ("commits=alice/moe@zzzzzzz,alice/moe@" + "a" * 40, 404, "commit_has_no_runs"),
        ("commits=alice/moe@,alice/moe@" + "a" * 40, 400, "invalid_commits"),
        (
            "kind=nonsense&commits=alice/moe@" + "a" * 40 + ",alice/moe@" + "b" * 40,
            400,
            "invalid_kind",
        ),
        ("commits=moe@" + "a" * 40 + ",alice/moe@" + "a" * 40, 400, "invalid_commits"),
        ("commits=alice/moe@" + "a" * 40, 400, "invalid_commits"),
        ("commits=alice/moe@" + "a" * 40 + ",alice/moe@" + "a" * 40, 400, "invalid_commits"),
        ("runs=x&commits=alice/moe@" + "a" * 40 + ",alice/moe@" + "b" * 40, 400, "invalid_runs"),
    ],
)
def test_compare_commits_errors(tracker, query, status, code):
    new_run(tracker, commit="alice/moe@" + "a" * 40)
    new_run(tracker, commit="alice/moe@" + "b" * 40)
    r = tracker.get(f"/api/v1/runs/compare?{query}")
    assert r.status_code == status and r.json()["error"]["code"] == code, r.content


def test_compare_commits_matches_commit_ids_exactly_not_by_prefix(tracker):
    """A run linked to a longer id is not the run of its prefix: an abbreviation is expanded by
    the registry's resolver first, and with no such commit in the registry nothing matches."""
    a, b = "a" * 40, "b" * 40
    new_run(tracker, commit=f"alice/moe@{a}")
    new_run(tracker, commit=f"alice/moe@{b}")
    r = tracker.get(f"/api/v1/runs/compare?commits=alice/moe@{a},alice/moe@{b[:7]}")
    assert r.status_code == 404 and r.json()["error"]["details"] == {
        "commits": [f"alice/moe@{b[:7]}"]
    }, r.content


def test_compare_commits_expands_an_abbreviation_through_the_registry(tracker):
    from tests.helpers import push

    assert tracker.post("/api/v1/repos", {"name": "moe"}, format="json").status_code == 201
    first = push(tracker, "alice/moe", {"a.txt": b"one"}, message="one").json()["sha"]
    second = push(tracker, "alice/moe", {"a.txt": b"two"}, message="two").json()["sha"]
    ra = new_run(tracker, commit=f"alice/moe@{first}")
    rb = new_run(tracker, commit=f"alice/moe@{second}")
    r = tracker.get(f"/api/v1/runs/compare?commits=alice/moe@{first},alice/moe@{second[:10]}")
    assert r.status_code == 200, r.content
    assert r.json()["commits"] == {
        f"alice/moe@{first}": ra["id"],
        f"alice/moe@{second[:10]}": rb["id"],
    }


def _job_run(client, *, commit, kind, loss=None, status="finished", **metrics):
    """A run as a job's supervisor makes it: tagged with the job's kind."""
    run = new_run(client, name=f"{kind} job", commit=commit, tags=[kind, "job"])
    for key, value in {**({"val/loss": loss} if loss is not None else {}), **metrics}.items():
        ingest(client, run["id"], key=key, step=[0, 10], value=[value + 1, value])
    client.patch(f"/api/v1/runs/{run['id']}", {"status": status}, format="json")
    return run


def test_compare_commits_picks_runs_of_one_kind_for_every_commit(tracker):
    """Each commit has a training run and a newer profile run; one also has an evaluation.
    The report compares training with training (the kind both share), says so, and ranks on a
    metric both runs logged -- never an evaluation against a profile."""
    a, b = "a" * 40, "b" * 40
    ta = _job_run(tracker, commit=f"alice/moe@{a}", kind="train", loss=2.0)
    tb = _job_run(tracker, commit=f"alice/moe@{b}", kind="train", loss=1.5)
    _job_run(tracker, commit=f"alice/moe@{a}", kind="evaluate", **{"eval/loss": 1.0})
    _job_run(tracker, commit=f"alice/moe@{a}", kind="profile", **{"profile/step_ms": 5.0})
    pb = _job_run(tracker, commit=f"alice/moe@{b}", kind="profile", **{"profile/step_ms": 4.0})
    r = tracker.get(f"/api/v1/runs/compare?commits=alice/moe@{a},alice/moe@{b}")
    assert r.status_code == 200, r.content
    rep = r.json()
    assert rep["kind"] == "train"
    assert rep["commits"] == {f"alice/moe@{a}": ta["id"], f"alice/moe@{b}": tb["id"]}
    assert rep["target"] == "val/loss" and rep["summary"][0].startswith(
        f"moe@{b[:8]} reaches 25.0% lower final val/loss than moe@{a[:8]}"
    )
    md = tracker.get(f"/api/v1/runs/compare?commits=alice/moe@{a},alice/moe@{b}&render=markdown")
    assert b"compared train runs" in md.content
    # Asked for profiles: the profile runs, ranked on what they share, in its direction.
    rep = tracker.get(
        f"/api/v1/runs/compare?commits=alice/moe@{a},alice/moe@{b}&kind=profile"
    ).json()
    assert rep["kind"] == "profile" and rep["commits"][f"alice/moe@{b}"] == pb["id"]
    [m] = rep["metrics"]
    assert m["key"] == "profile/step_ms" and m["direction"] == "min" and m["best_run"] == pb["id"]
    # Asked for evaluations, which only one commit has: no comparison, and it says why.
    r = tracker.get(f"/api/v1/runs/compare?commits=alice/moe@{a},alice/moe@{b}&kind=evaluate")
    assert r.status_code == 404 and r.json()["error"]["details"] == {
        "commits": [f"alice/moe@{b}"],
        "kind": "evaluate",
    }


def test_compare_commits_with_no_kind_of_run_in_common_is_refused(tracker):
    a, b = "a" * 40, "b" * 40
    _job_run(tracker, commit=f"alice/moe@{a}", kind="evaluate", **{"eval/loss": 1.0})
    _job_run(tracker, commit=f"alice/moe@{b}", kind="profile", **{"profile/step_ms": 4.0})
    r = tracker.get(f"/api/v1/runs/compare?commits=alice/moe@{a},alice/moe@{b}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_common_run_kind", r.content


def test_compare_commits_by_branch_and_tag(tracker):
    from tests.helpers import push

    assert tracker.post("/api/v1/repos", {"name": "moe"}, format="json").status_code == 201
    first = push(tracker, "alice/moe", {"a.txt": b"one"}, message="one").json()["sha"]
    r = tracker.post(
        "/api/v1/repos/alice/moe/branches", {"name": "top2", "from_ref": first}, format="json"
    )
    assert r.status_code == 201, r.content
    second = push(tracker, "alice/moe", {"a.txt": b"two"}, message="two").json()["sha"]
    r = tracker.post("/api/v1/repos/alice/moe/tags", {"name": "v2", "ref": "main"}, format="json")
    assert r.status_code == 201, r.content
    ra = _job_run(tracker, commit=f"alice/moe@{first}", kind="train", loss=2.0)
    rb = _job_run(tracker, commit=f"alice/moe@{second}", kind="train", loss=1.0)
    r = tracker.get("/api/v1/runs/compare?commits=alice/moe@top2,alice/moe@v2")
    assert r.status_code == 200, r.content
    rep = r.json()
    assert rep["commits"] == {"alice/moe@top2": ra["id"], "alice/moe@v2": rb["id"]}
    assert rep["resolved"] == {"alice/moe@top2": first, "alice/moe@v2": second}
    assert [x["name"] for x in rep["runs"]] == [f"moe@top2 ({first[:8]})", f"moe@v2 ({second[:8]})"]
    r = tracker.get("/api/v1/runs/compare?commits=alice/moe@top2,alice/moe@nosuchbranch")
    assert r.status_code == 404 and r.json()["error"]["details"]["commits"] == [
        "alice/moe@nosuchbranch"
    ]


def test_compare_ranks_by_the_projects_metric_directions(tracker):
    ra = new_run(tracker, name="a")
    rb = new_run(tracker, name="b")
    ingest(tracker, ra["id"], key="eval/score", step=[0, 10], value=[0.2, 0.5])
    ingest(tracker, rb["id"], key="eval/score", step=[0, 10], value=[0.3, 0.7])
    url = f"/api/v1/runs/compare?runs={ra['id']},{rb['id']}"
    [m] = tracker.get(url).json()["metrics"]
    assert m["direction"] == "none" and m["best_run"] is None
    r = tracker.patch(
        "/api/v1/projects/alice/exp", {"metric_directions": {"eval/*": "max"}}, format="json"
    )
    assert r.status_code == 200 and r.json()["metric_directions"] == {"eval/*": "max"}, r.content
    assert tracker.get("/api/v1/projects/alice/exp").json()["metric_directions"] == {
        "eval/*": "max"
    }
    [m] = tracker.get(url).json()["metrics"]
    assert m["direction"] == "max" and m["best_run"] == rb["id"]


@pytest.mark.parametrize(
    "body, code",
    [
        ({"metric_directions": {"loss": "lowest"}}, "invalid_metric_directions"),
        ({"metric_directions": ["loss"]}, "invalid_metric_directions"),
        ({"metric_directions": {"": "min"}}, "invalid_metric_directions"),
        ({"metric_directions": {f"k{i}": "min" for i in range(3)}}, "too_many_metric_directions"),
    ],
)
def test_bad_metric_directions_are_400(tracker, settings, body, code):
    settings.HUB_MAX_METRIC_DIRECTIONS = 2
    r = tracker.patch("/api/v1/projects/alice/exp", body, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.content


def test_only_writers_set_a_projects_metric_directions(tracker, make_user):
    other = client_for(make_user("mallory")[1])
    r = other.patch(
        "/api/v1/projects/alice/exp", {"metric_directions": {"loss": "max"}}, format="json"
    )
    assert r.status_code in (403, 404), r.content


def test_export_parquet_streams_every_point(tracker):
    import io as _io

    import pyarrow.parquet as pq

    run = new_run(tracker)
    ingest(tracker, run["id"], key="a", step=list(range(10)), value=[float(i) for i in range(10)])
    ingest(tracker, run["id"], key="b", step=[0], value=[42.0])
    r = tracker.get(f"/api/v1/runs/{run['id']}/metrics/export?as=parquet")
    assert r.status_code == 200 and r["Content-Type"] == "application/vnd.apache.parquet"
    assert r["Content-Disposition"].endswith('.parquet"')
    table = pq.read_table(_io.BytesIO(b"".join(r.streaming_content)))
    assert table.column_names == ["key", "step", "wall_time", "value"] and table.num_rows == 11
    rows = sorted(
        zip(
            table["key"].to_pylist(),
            table["step"].to_pylist(),
            table["value"].to_pylist(),
            strict=True,
        )
    )
    assert rows[-1] == ("b", 0, 42.0) and rows[:10] == [("a", i, float(i)) for i in range(10)]
    bad = tracker.get(f"/api/v1/runs/{run['id']}/metrics/export?as=xlsx")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_format"


def test_run_page_counts_points_exactly_even_after_a_retried_batch(tracker, monkeypatch):
    run = new_run(tracker)
    batch = {"key": "a", "step": list(range(10)), "value": [float(i) for i in range(10)]}
    assert ingest(tracker, run["id"], **batch).status_code == 200
    assert ingest(tracker, run["id"], **batch).status_code == 200  # a retry: collapses in the store
    ingest(tracker, run["id"], key="b", step=[0], value=[42.0])
    summary = tracker.get(f"/api/v1/runs/{run['id']}").json()["summary"]
    assert (
        summary["a"]["count"] == 10 and summary["b"]["count"] == 1 and summary["a"]["last"] == 9.0
    )

    import hub.tracking.selectors as sel
    from hub.stores.metrics import MetricsStoreUnavailable

    def down():
        raise MetricsStoreUnavailable("down")

    monkeypatch.setattr(sel, "get_metrics_store", down)
    r = tracker.get(f"/api/v1/runs/{run['id']}")  # the run page still opens, without counts
    assert r.status_code == 200 and "count" not in r.json()["summary"]["a"]
