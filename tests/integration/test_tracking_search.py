"""Run and commit metadata reach Elasticsearch after their transaction commits; the search
API speaks the user query language; the index can be rebuilt from the DB."""

from __future__ import annotations

import pytest

from hub.tracking import indexing
from tests.fixtures_services import unique_name
from tests.helpers import model, push, st_bytes

pytestmark = [pytest.mark.integration]


@pytest.fixture
def searchable(api, settings, elasticsearch_url, chdb_path, monkeypatch):
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
    client.post("/api/v1/projects", {"name": "exp"}, format="json")
    yield client
    indexing.search_index().drop_all()
    store.drop_database()


def _runs(client):
    made = []
    for i, (top_k, opt, loss, tags, status) in enumerate(
        [
            (2, "adamw", 2.4, ["baseline"], "finished"),
            (4, "adamw", 2.0, ["baseline", "moe"], "finished"),
            (8, "sgd", 1.9, ["moe"], "failed"),
            (4, "sgd", 2.2, [], "running"),
        ]
    ):
        r = client.post(
            "/api/v1/projects/alice/exp/runs",
            {
                "name": f"top{top_k}-{opt}-{i}",
                "params": {"moe": {"top_k": top_k}, "optimizer": opt},
                "tags": tags,
                "notes": "router warmup experiment" if i == 1 else "",
            },
            format="json",
        ).json()
        client.post(
            f"/api/v1/runs/{r['id']}/metrics",
            {"key": "val_loss", "step": [0, 10], "value": [5.0, loss]},
            format="json",
        )
        if status != "running":
            client.patch(f"/api/v1/runs/{r['id']}", {"status": status}, format="json")
        made.append(r["id"])
    indexing.search_index().refresh()
    return made


def search(client, **params):
    r = client.get("/api/v1/projects/alice/exp/runs", params)
    assert r.status_code == 200, r.content
    return r.json()


@pytest.mark.django_db(transaction=True)
def test_query_language_filters_sorts_and_facets(searchable):
    ids = _runs(searchable)
    res = search(
        searchable,
        q="params.moe.top_k:4 AND summary.val_loss:<2.1 AND tags:baseline AND status:finished",
    )
    assert [r["id"] for r in res["results"]] == [ids[1]]
    res = search(searchable, q="params.moe.top_k:>=4", sort="summary.val_loss")
    assert [r["id"] for r in res["results"]] == [ids[2], ids[1], ids[3]]
    res = search(
        searchable, q="", sort="-summary.val_loss.last", facets="tags,status,params.optimizer"
    )
    assert res["total"] == 4 and res["results"][0]["id"] == ids[0]
    assert {b["value"]: b["count"] for b in res["facets"]["params.optimizer"]} == {
        "adamw": 2,
        "sgd": 2,
    }
    assert {b["value"]: b["count"] for b in res["facets"]["status"]} == {
        "finished": 2,
        "failed": 1,
        "running": 1,
    }
    assert "took_ms" in res and "engine_elapsed_ms" in res
    fuzzy = search(searchable, q="ruoter")  # a typo still finds the notes
    assert [r["id"] for r in fuzzy["results"]] == [ids[1]]
    page1 = search(searchable, sort="summary.val_loss", page_size=2)
    import json

    page2 = search(
        searchable, sort="summary.val_loss", page_size=2, cursor=json.dumps(page1["next"])
    )
    assert [r["id"] for r in page1["results"] + page2["results"]] == [
        ids[2],
        ids[1],
        ids[3],
        ids[0],
    ]


@pytest.mark.django_db(transaction=True)
def test_bad_query_is_400_with_position(searchable):
    r = searchable.get("/api/v1/projects/alice/exp/runs", {"q": "params.lr:>0.1 AND (tags:x"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_query" and isinstance(err["details"]["position"], int)


def test_a_search_engine_outage_is_a_503_with_retry_after(searchable, settings):
    from tests.fixtures_services import free_port

    engine = settings.HUB_ELASTICSEARCH_URL
    settings.HUB_ELASTICSEARCH_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    try:
        r = searchable.get("/api/v1/projects/alice/exp/runs", {"q": "params.lr:>0.1"})
    finally:
        settings.HUB_ELASTICSEARCH_URL = engine
    assert r.status_code == 503 and r.json()["error"]["code"] == "search_unavailable"
    assert int(r["Retry-After"]) > 0


@pytest.mark.django_db(transaction=True)
def test_reindex_from_db_reproduces_the_index(searchable):
    ids = _runs(searchable)
    before = search(searchable, sort="summary.val_loss", q="params.optimizer:sgd OR tags:baseline")
    counts = indexing.reindex_all()
    assert counts["runs"] == 4
    after = search(searchable, sort="summary.val_loss", q="params.optimizer:sgd OR tags:baseline")
    assert (
        after["results"] == before["results"]
        and len(after["results"]) == 4
        and set(ids) == {r["id"] for r in after["results"]}
    )


@pytest.mark.django_db(transaction=True)
def test_reindex_answers_searches_throughout_and_keeps_writes_made_meanwhile(
    searchable, monkeypatch
):
    ids = _runs(searchable)
    q = {"q": "params.optimizer:sgd OR tags:baseline"}
    before = search(searchable, **q)
    real_run_doc = indexing.run_doc
    during = []

    def run_doc_then_search(run):
        # between bulk steps of the rebuild: the API still answers from the old generation
        during.append(search(searchable, **q)["total"])
        if len(during) == 2:  # a live write while the new generation loads (to the old one)
            r = searchable.patch(f"/api/v1/runs/{ids[0]}", {"add_tags": ["late"]}, format="json")
            assert r.status_code == 200, r.content
        return real_run_doc(run)

    monkeypatch.setattr(indexing, "run_doc", run_doc_then_search)
    counts = indexing.reindex_all(batch=2)
    assert counts["runs"] == 4 and during[:4] == [before["total"]] * 4
    indexing.search_index().refresh()
    # the catch-up pass after the swap re-sent the run changed during the rebuild
    assert [r["id"] for r in search(searchable, q="tags:late")["results"]] == [ids[0]]


@pytest.mark.django_db(transaction=True)
def test_a_failing_reindex_leaves_the_old_index_serving(searchable, blob_dir, monkeypatch):
    from hub.stores.search import SearchError

    _runs(searchable)
    before = search(searchable, q="tags:moe")
    idx = indexing.search_index()
    layout = idx.describe()
    real_bulk = idx._bulk

    def bulk_fails_on_commits(index, bodies, refresh):
        if index.startswith(f"{idx.commits_index}-"):
            raise SearchError("1 document(s) failed to index; injected")
        return real_bulk(index, bodies, refresh)

    monkeypatch.setattr(idx, "_bulk", bulk_fails_on_commits)
    with pytest.raises(SearchError, match="injected"):
        indexing.reindex_all()
    assert idx.describe() == layout
    after = search(searchable, q="tags:moe")
    assert after["results"] == before["results"] and after["total"] == before["total"] == 2
    assert idx._generations(idx.runs_index) == layout[idx.runs_index]  # half-built one deleted


@pytest.mark.django_db(transaction=True)
def test_search_reindex_command_reproduces_runs_and_commits(searchable, blob_dir):
    from io import StringIO

    from django.core.management import call_command

    from hub.registry.models import Commit

    _runs(searchable)
    searchable.post("/api/v1/repos", {"name": "m"}, format="json")
    push(searchable, "alice/m", {"config.json": b'{"moe": {"top_k": 4}}'}, message="top-4 baseline")
    idx = indexing.search_index()
    idx.refresh()
    runs_before = idx.search_runs(None).total
    commits_before = idx.search_commits(None).total
    n_commits = Commit.objects.count()
    assert (runs_before, commits_before) == (4, n_commits) and n_commits >= 1
    out = StringIO()
    call_command("search_reindex", "--batch", "3", stdout=out)
    assert f"reindexed 4 run(s) and {n_commits} commit(s)" in out.getvalue()
    assert (idx.search_runs(None).total, idx.search_commits(None).total) == (
        runs_before,
        commits_before,
    )
    [hit] = idx.search_commits({"match": {"message": "baseline"}}).hits
    assert hit.source["branches"] == ["main"] and hit.source["config_num"]["moe.top_k"] == 4.0
    assert all(len(v) == 1 and not v[0].endswith("-1") for v in idx.describe().values())


@pytest.mark.django_db(transaction=True)
def test_commits_are_indexed_with_their_branches(searchable, blob_dir):
    client = searchable
    client.post("/api/v1/repos", {"name": "m"}, format="json")
    push(
        client,
        "alice/m",
        {"model.safetensors": st_bytes(model()), "config.json": b'{"moe": {"top_k": 4}}'},
        message="top-4 baseline",
    )
    idx = indexing.search_index()
    idx.refresh()
    res = idx.search_commits({"match": {"message": "baseline"}})
    [hit] = res.hits
    assert hit.source["repo"] == "alice/m" and hit.source["branches"] == ["main"]
    assert hit.source["config_num"]["moe.top_k"] == 4.0


@pytest.mark.django_db(transaction=True)
def test_plain_listing_comes_from_the_database_in_pages(searchable):
    ids = _runs(searchable)
    page1 = search(searchable, page_size=3)
    assert page1["source"] == "database" and page1["total"] == 4
    assert [r["id"] for r in page1["results"]] == ids[::-1][:3]
    import json

    page2 = search(searchable, page_size=3, cursor=json.dumps(page1["next"]))
    assert [r["id"] for r in page2["results"]] == [ids[0]] and page2["next"] is None
    assert (
        page1["results"][0]["params"]["moe.top_k"] == 4
        and "val_loss" in page1["results"][0]["summary"]
    )
    assert search(searchable, q="tags:moe").get("source") != "database"


def test_run_changes_are_drained_in_bulk_by_one_task(
    searchable, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Through the queue (not eager): a burst of run changes schedules one drain task; the
    drain indexes them all in bulk; a drain that fails gives its ids back."""
    from hub.celery_app import app as celery_app
    from hub.stores.search import SearchUnavailable

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.HUB_REDIS_PREFIX = f"{unique_name('t')}:"
    scheduled = []
    monkeypatch.setattr(
        celery_app, "send_task", lambda name, **kw: scheduled.append({"task": name, **kw})
    )
    with django_capture_on_commit_callbacks(execute=True):
        ids = [
            searchable.post(
                "/api/v1/projects/alice/exp/runs", {"name": f"burst-{i}"}, format="json"
            ).json()["id"]
            for i in range(5)
        ]
    assert [s["task"] for s in scheduled] == ["hub.tracking.tasks.index_pending_runs"]
    assert scheduled[0]["countdown"] > indexing.DEBOUNCE_MS / 1000
    import redis

    r = redis.Redis.from_url(settings.HUB_REDIS_URL)  # looking from outside the hub's adapter
    pending = settings.HUB_REDIS_PREFIX + indexing.PENDING_RUNS
    assert {i.decode() for i in r.smembers(pending)} == set(ids)

    idx = indexing.search_index()
    calls = []
    real_bulk = idx.bulk_index_runs

    def down(docs, **kw):
        calls.append(len(list(docs)))
        raise SearchUnavailable("down for the test")

    monkeypatch.setattr(idx, "bulk_index_runs", down)
    with pytest.raises(SearchUnavailable):
        indexing.index_pending_runs_now()
    assert calls == [5] and r.scard(pending) == 5  # nothing lost

    # A document the engine refuses must not poison every later drain: that batch is left
    # to the periodic sweep, the others go through.
    from hub.stores.search import SearchError

    def refuse(docs, **kw):
        raise SearchError("1 document(s) failed to index")

    r.sadd(pending, "doesnotexist0000")
    monkeypatch.setattr(idx, "bulk_index_runs", refuse)
    monkeypatch.setattr(idx, "delete_run", lambda *a, **kw: False)
    assert indexing.index_pending_runs_now(batch=100) == 6
    assert r.scard(pending) == 0
    monkeypatch.undo()
    r.sadd(pending, *ids)

    monkeypatch.setattr(idx, "bulk_index_runs", real_bulk)
    assert indexing.index_pending_runs_now(batch=2) == 5
    assert r.scard(pending) == 0
    idx.refresh()
    found = search(searchable, q="burst")
    assert {x["id"] for x in found["results"]} == set(ids)


def test_a_run_whose_index_task_was_lost_is_indexed_by_the_jobs_reapers_sweep(
    searchable, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """The search index's safety net runs on the hub's side, in the jobs reaper's pass (the
    workers have no database): a run whose index task never ran is indexed by the next pass."""
    from io import StringIO

    from django.core.management import call_command

    from hub.celery_app import app as celery_app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.HUB_REDIS_PREFIX = f"{unique_name('t')}:"
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: None)  # queued, then lost
    with django_capture_on_commit_callbacks(execute=True):
        run_id = searchable.post(
            "/api/v1/projects/alice/exp/runs", {"name": "orphan"}, format="json"
        ).json()["id"]
    idx = indexing.search_index()

    def indexed() -> list[str]:
        idx.refresh()
        return [h.source["id"] for h in idx.search_runs({"term": {"id": run_id}}).hits]

    assert indexed() == []
    call_command("jobs_reaper", "--once", stdout=StringIO())
    assert indexed() == [run_id]
