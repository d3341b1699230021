"""Commit documents in the search index follow ref deletion, repo deletion and GC (against
the real Elasticsearch-compatible server the other search tests use)."""

from __future__ import annotations

import pytest

from hub.registry import gc
from hub.tracking import indexing
from tests.fixtures_services import unique_name
from tests.helpers import head, model, push, st_bytes

pytestmark = [pytest.mark.integration]


@pytest.fixture
def indexed(api, settings, elasticsearch_url):
    settings.HUB_ELASTICSEARCH_URL = elasticsearch_url
    settings.HUB_ELASTICSEARCH_INDEX_PREFIX = unique_name("hub").replace("_", "-").lower()
    settings.CELERY_TASK_ALWAYS_EAGER = True
    indexing.search_index().ensure_indices()
    client, _ = api
    assert client.post("/api/v1/repos", {"name": "m"}, format="json").status_code == 201
    yield client
    indexing.search_index().drop_all()


def _docs(repo: str = "alice/m") -> dict[str, dict]:
    idx = indexing.search_index()
    idx.refresh()
    return {
        h.source["sha"]: h.source
        for h in idx.search_commits({"term": {"repo": repo}}, page_size=1000).hits
    }


@pytest.mark.django_db(transaction=True)
def test_deleting_a_branch_or_tag_reindexes_its_commit(indexed):
    client = indexed
    push(client, "alice/m", {"a.bin": b"a" * 100}, message="base")
    sha = head(client, "alice/m")
    assert (
        client.post("/api/v1/repos/alice/m/branches", {"name": "exp"}, format="json").status_code
        == 201
    )
    assert (
        client.post(
            "/api/v1/repos/alice/m/tags", {"name": "v1", "ref": "main"}, format="json"
        ).status_code
        == 201
    )
    doc = _docs()[sha]
    assert sorted(doc["branches"]) == ["exp", "main"] and doc["tags"] == ["v1"]

    assert client.delete("/api/v1/repos/alice/m/branches/exp").status_code == 204
    assert _docs()[sha]["branches"] == ["main"]
    assert client.delete("/api/v1/repos/alice/m/tags/v1").status_code == 204
    assert _docs()[sha]["tags"] == []


@pytest.mark.django_db(transaction=True)
def test_gc_removes_the_documents_of_the_commits_it_deletes(indexed):
    client = indexed
    push(client, "alice/m", {"a.bin": b"a" * 100}, message="kept")
    kept = head(client, "alice/m")
    client.post("/api/v1/repos/alice/m/branches", {"name": "scratch"}, format="json")
    push(
        client,
        "alice/m",
        {"s.safetensors": st_bytes(model(seed=3, n=1))},
        branch="scratch",
        message="scratch work",
    )
    dropped = head(client, "alice/m", "scratch")
    assert {kept, dropped} <= set(_docs())
    client.delete("/api/v1/repos/alice/m/branches/scratch")
    assert _docs()[dropped]["branches"] == []  # unreferenced, still a commit until GC

    gc.gc(dry_run=True, grace_seconds=0)
    assert dropped in _docs()  # a dry run changes nothing
    report = gc.gc(dry_run=False, grace_seconds=0)
    assert report["commits"] == 1
    docs = _docs()
    assert dropped not in docs and kept in docs and docs[kept]["branches"] == ["main"]


@pytest.mark.django_db(transaction=True)
def test_deleting_a_repo_removes_its_commit_documents(indexed):
    client = indexed
    assert client.post("/api/v1/repos", {"name": "other"}, format="json").status_code == 201
    push(client, "alice/m", {"a.bin": b"a" * 100}, message="one")
    push(client, "alice/m", {"b.bin": b"b" * 100}, message="two")
    assert len(_docs()) == 3  # the initial commit and two pushes
    assert len(_docs("alice/other")) == 1
    assert client.delete("/api/v1/repos/alice/m").status_code == 204
    assert _docs() == {}
    assert len(_docs("alice/other")) == 1  # other repos are untouched


@pytest.fixture
def bulk_calls(monkeypatch):
    """Every bulk request the Elasticsearch client sends (helpers.bulk uses a copy of the
    client, so the class method is wrapped), as the list of its operations."""
    from elasticsearch import Elasticsearch

    calls: list[list] = []
    real = Elasticsearch.bulk

    def counting(self, *args, **kwargs):
        calls.append(list(kwargs.get("operations") or []))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Elasticsearch, "bulk", counting)
    return calls


def _deletes(calls: list[list]) -> list[list[str]]:
    """The ids of each bulk request that deleted documents (the helper sends its operations
    already serialised)."""
    import json

    out = []
    for ops in calls:
        parsed = [json.loads(op) if isinstance(op, bytes | str) else op for op in ops]
        ids = [op["delete"]["_id"] for op in parsed if "delete" in op]
        if ids:
            out.append(ids)
    return out


@pytest.mark.django_db(transaction=True)
def test_deleting_a_repo_deletes_all_its_documents_in_one_bulk_request(
    indexed, bulk_calls, monkeypatch
):
    client = indexed
    for n in range(4):
        push(client, "alice/m", {f"{n}.bin": bytes([n]) * 100}, message=f"push {n}")
    shas = set(_docs())
    assert len(shas) == 5
    idx = indexing.search_index()
    monkeypatch.setattr(
        idx, "delete_commit", lambda *a, **kw: pytest.fail("one request per commit")
    )
    bulk_calls.clear()
    assert client.delete("/api/v1/repos/alice/m").status_code == 204
    deletes = _deletes(bulk_calls)
    assert len(deletes) == 1 and sorted(deletes[0]) == sorted(f"alice/m@{s}" for s in shas)
    assert _docs() == {}


@pytest.mark.django_db(transaction=True)
def test_gc_deletes_the_documents_in_one_bulk_request(indexed, bulk_calls):
    client = indexed
    client.post("/api/v1/repos/alice/m/branches", {"name": "scratch"}, format="json")
    for n in range(3):
        push(
            client,
            "alice/m",
            {f"{n}.bin": bytes([n]) * 100},
            branch="scratch",
            message=f"scratch {n}",
        )
    dropped = set(_docs()) - {head(client, "alice/m")}
    assert len(dropped) == 3
    client.delete("/api/v1/repos/alice/m/branches/scratch")
    bulk_calls.clear()
    assert gc.gc(dry_run=False, grace_seconds=0)["commits"] == 3
    deletes = _deletes(bulk_calls)
    assert len(deletes) == 1 and sorted(deletes[0]) == sorted(f"alice/m@{s}" for s in dropped)
    assert set(_docs()) == {head(client, "alice/m")}


@pytest.mark.django_db(transaction=True)
def test_deletes_go_to_tasks_in_batches_and_inline_when_the_broker_is_down(
    indexed, settings, monkeypatch
):
    from hub.celery_app import app as celery_app
    from hub.tracking import tasks

    client = indexed
    for n in range(2):
        push(client, "alice/m", {f"{n}.bin": bytes([n]) * 100}, message=f"push {n}")
    ids = sorted(f"alice/m@{s}" for s in _docs())
    settings.CELERY_TASK_ALWAYS_EAGER = False
    queued: list[list[str]] = []

    def send_task(name, args, **kw):
        assert name == "hub.tracking.tasks.delete_commits"
        queued.append(args[0])

    monkeypatch.setattr(celery_app, "send_task", send_task)
    indexing.delete_commits(ids, batch=2)
    assert queued == [ids[:2], ids[2:]]
    assert len(_docs()) == 3  # nothing deleted until the tasks run
    assert tasks.delete_commits(queued[1]) == 1  # the task deletes its batch
    assert set(_docs()) == {i.split("@")[1] for i in ids[:2]}

    def broker_down(name, args, **kw):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(celery_app, "send_task", broker_down)
    indexing.delete_commits(ids, batch=2)  # inline, in bulk; the missing one is fine
    assert _docs() == {}


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_index_never_fails_the_repo_delete(indexed, monkeypatch):
    from hub.stores.search import SearchUnavailable

    client = indexed
    push(client, "alice/m", {"a.bin": b"a" * 100}, message="one")
    idx = indexing.search_index()

    def down(*a, **kw):
        raise SearchUnavailable("down")

    monkeypatch.setattr(idx, "bulk_delete_commits", down)
    assert client.delete("/api/v1/repos/alice/m").status_code == 204
    assert client.get("/api/v1/repos/alice/m").status_code == 404
