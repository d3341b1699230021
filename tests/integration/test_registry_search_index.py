"""Commit documents in the search index follow ref deletion, repo deletion and GC (against
the real Elasticsearch-compatible server the other search tests use)."""

from __future__ import annotations

import pytest

from hub.registry import services
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
    return {h.source["sha"]: h.source for h in idx.search_commits({"term": {"repo": repo}}, page_size=1000).hits}


@pytest.mark.django_db(transaction=True)
def test_deleting_a_branch_or_tag_reindexes_its_commit(indexed):
    client = indexed
    push(client, "alice/m", {"a.bin": b"a" * 100}, message="base")
    sha = head(client, "alice/m")
    assert client.post("/api/v1/repos/alice/m/branches", {"name": "exp"}, format="json").status_code == 201
    assert client.post("/api/v1/repos/alice/m/tags", {"name": "v1", "ref": "main"}, format="json").status_code == 201
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
    push(client, "alice/m", {"s.safetensors": st_bytes(model(seed=3, n=1))}, branch="scratch", message="scratch work")
    dropped = head(client, "alice/m", "scratch")
    assert {kept, dropped} <= set(_docs())
    client.delete("/api/v1/repos/alice/m/branches/scratch")
    assert _docs()[dropped]["branches"] == []  # unreferenced, still a commit until GC

    services.gc(dry_run=True, grace_seconds=0)
    assert dropped in _docs()  # a dry run changes nothing
    report = services.gc(dry_run=False, grace_seconds=0)
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
