"""Model search against the real Elasticsearch-compatible server the other search tests use:
by name, card fields, card text and producing runs' metrics; only what the caller may read."""

from __future__ import annotations

import json

import pytest

from hub.tracking import indexing
from tests.conftest import client_for
from tests.fixtures_services import unique_name
from tests.helpers import push, upload

pytestmark = [pytest.mark.integration]


def _card(**fields) -> bytes:
    lines = ["---"] + [f"{k}: {json.dumps(v)}" for k, v in fields.items()] + ["---", ""]
    return "\n".join(lines).encode()


@pytest.fixture
def models(api, settings, elasticsearch_url, chdb_path, monkeypatch, make_user):
    """Four repos: two of alice's public models with cards, one public without a card whose
    commit a run produced, one private model; the index refreshed."""
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
    for name, private in (("moe-small", False), ("dense-base", False), ("tuned", False)):
        r = client.post("/api/v1/repos", {"name": name, "private": private}, format="json")
        assert r.status_code == 201, r.content
    client.post(
        "/api/v1/repos",
        {"name": "secret-moe", "private": True, "description": "internal"},
        format="json",
    )
    push(
        client,
        "alice/moe-small",
        {
            "README.md": _card(
                license="apache-2.0", tags=["moe", "text-generation"], base_model="alice/dense-base"
            )
            + b"# MoE small\n\nEight experts routed by a learned top-2 gate.\n"
        },
    )
    push(
        client,
        "alice/dense-base",
        {"README.md": _card(license="mit", tags=["dense"]) + b"A dense baseline.\n"},
    )
    push(
        client,
        "alice/secret-moe",
        {"README.md": _card(license="apache-2.0", tags=["moe"]) + b"Confidential router.\n"},
    )
    # tuned: no card; its head was produced by a run that logged val_loss
    assert client.post("/api/v1/projects", {"name": "exp"}, format="json").status_code == 201
    run = client.post("/api/v1/projects/alice/exp/runs", {"name": "ft"}, format="json").json()
    r = client.post(
        f"/api/v1/runs/{run['id']}/metrics",
        {"key": "val_loss", "step": [0, 50], "value": [3.0, 1.8]},
        format="json",
    )
    assert r.status_code in (200, 201, 202), r.content
    ops = upload(client, "alice/tuned", {"weights.bin": b"t" * 128})
    r = client.post(
        "/api/v1/repos/alice/tuned/commits",
        {"branch": "main", "message": "fine-tuned", "operations": ops, "run_id": run["id"]},
        format="json",
    )
    assert r.status_code == 201, r.content
    indexing.search_index().refresh()
    _, bob = make_user("bob")
    yield client, client_for(bob)
    indexing.search_index().drop_all()
    store.drop_database()


def search(client, **params) -> dict:
    r = client.get("/api/v1/models/search", params)
    assert r.status_code == 200, r.content
    return r.json()


def ids(page: dict) -> list[str]:
    return sorted(m["id"] for m in page["results"])


@pytest.mark.django_db(transaction=True)
def test_finds_models_by_name_tag_license_base_model_and_card_text(models):
    alice, _ = models
    assert ids(search(alice, q="moe-small")) == ["alice/moe-small"]
    assert ids(search(alice, q="tag:moe")) == ["alice/moe-small", "alice/secret-moe"]
    assert ids(search(alice, tag="dense")) == ["alice/dense-base"]
    assert ids(search(alice, license="mit")) == ["alice/dense-base"]
    assert ids(search(alice, q="license:apache-2.0 tag:text-generation")) == ["alice/moe-small"]
    assert ids(search(alice, base_model="alice/dense-base")) == ["alice/moe-small"]
    assert ids(search(alice, q="experts routed")) == ["alice/moe-small"]
    assert ids(search(alice, q='"learned top-2 gate"')) == ["alice/moe-small"]
    hit = search(alice, q="moe-small")["results"][0]
    assert hit["license"] == "apache-2.0" and hit["tags"] == ["moe", "text-generation"]
    assert hit["card"] == "readme" and hit["base_model"] == ["alice/dense-base"]


@pytest.mark.django_db(transaction=True)
def test_finds_models_by_the_metrics_of_the_runs_that_produced_them(models):
    alice, _ = models
    assert ids(search(alice, q="metric:val_loss<2.0")) == ["alice/tuned"]
    assert ids(search(alice, metric="val_loss<1.5")) == []
    assert ids(search(alice, metric="val_loss.max>=3")) == ["alice/tuned"]
    assert ids(search(alice, metric="val_loss")) == ["alice/tuned"]
    hit = search(alice, metric="val_loss<2.0")["results"][0]
    assert hit["metrics"]["val_loss"]["last"] == [1.8] and hit["card"] == "generated"


@pytest.mark.django_db(transaction=True)
def test_facets_count_tags_licenses_and_base_models(models):
    alice, bob = models
    facets = search(alice)["facets"]
    assert {f["value"]: f["count"] for f in facets["tags"]} == {
        "moe": 2,
        "text-generation": 1,
        "dense": 1,
    }
    assert {f["value"]: f["count"] for f in facets["license"]} == {"apache-2.0": 2, "mit": 1}
    # bob's counts leave the private model out
    assert {f["value"]: f["count"] for f in search(bob)["facets"]["tags"]}["moe"] == 1


@pytest.mark.django_db(transaction=True)
def test_private_models_never_appear_to_others(models):
    alice, bob = models
    anon = client_for(None)
    assert "alice/secret-moe" in ids(search(alice, q="confidential"))
    for other in (bob, anon):
        assert ids(search(other, q="confidential")) == []
        assert "alice/secret-moe" not in ids(search(other, tag="moe"))
        assert "alice/secret-moe" not in ids(search(other))
    # made private later: gone for others at once
    assert (
        alice.patch("/api/v1/repos/alice/moe-small", {"private": True}, format="json").status_code
        == 200
    )
    indexing.search_index().refresh()
    assert ids(search(bob, q="moe-small")) == []
    assert ids(search(alice, q="moe-small")) == ["alice/moe-small"]


@pytest.mark.django_db(transaction=True)
def test_a_stale_document_is_checked_against_the_database(models, monkeypatch):
    """Even if the index missed the change, a repo that is private now is not returned."""
    alice, bob = models
    from hub.registry.models import Repo

    Repo.objects.filter(name="dense-base").update(private=True)  # no re-index
    assert "alice/dense-base" not in ids(search(bob, license="mit"))


@pytest.mark.django_db(transaction=True)
def test_only_the_default_branch_head_stands_for_a_model(models):
    alice, _ = models
    push(alice, "alice/dense-base", {"README.md": _card(license="bsd-3-clause") + b"v2\n"})
    indexing.search_index().refresh()
    assert ids(search(alice, license="mit")) == []
    assert ids(search(alice, license="bsd-3-clause")) == ["alice/dense-base"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "params",
    [
        {"q": "color:blue"},
        {"q": "metric:val_loss<abc"},
        {"metric": "val_loss<inf"},
        {"q": "card:maybe"},
        {"page_size": "0"},
        {"offset": "-1"},
        {"q": "x" * 1001},
    ],
)
def test_bad_queries_are_400_with_a_code(models, params):
    alice, _ = models
    r = alice.get("/api/v1/models/search", params)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] in {"invalid_query", "invalid_input", "validation_error"}


@pytest.mark.django_db(transaction=True)
def test_search_works_after_a_rebuild_from_the_database(models):
    alice, _ = models
    indexing.reindex_all()
    assert ids(search(alice, q="metric:val_loss<2.0")) == ["alice/tuned"]
    assert ids(search(alice, tag="moe")) == ["alice/moe-small", "alice/secret-moe"]


@pytest.mark.django_db(transaction=True)
def test_a_fine_tune_without_card_is_found_by_the_base_model_of_its_job(models):
    from hub.jobs.models import Job
    from hub.registry.models import Commit
    from hub.tracking.models import Project

    alice, bob = models
    alice.post("/api/v1/repos", {"name": "ft"}, format="json")
    job = Job.objects.create(
        id="0a1b2c3d4e5f",
        project=Project.objects.get(namespace__name="alice", name="exp"),
        kind=Job.Kind.FINETUNE,
        config={"train": {"steps": 5}},
        base_repo="alice/dense-base",
        base_ref="main",
        target_repo="alice/ft",
        target_branch="main",
        status=Job.Status.SUCCEEDED,
    )
    ops = upload(alice, "alice/ft", {"adapter.bin": b"a" * 64})
    r = alice.post(
        "/api/v1/repos/alice/ft/commits",
        {"branch": "main", "message": "fine-tune", "operations": ops, "job_id": job.pk},
        format="json",
    )
    assert r.status_code == 201, r.content
    indexing.search_index().refresh()
    assert ids(search(alice, base_model="alice/dense-base")) == ["alice/ft", "alice/moe-small"]
    # a job of a private project does not tell others what a public model was tuned from
    Project.objects.filter(pk=job.project_id).update(private=True)
    sha = r.json()["sha"]
    indexing.index_commit_now(Commit.objects.get(repo__name="ft", sha=sha).pk)
    indexing.search_index().refresh()
    assert ids(search(bob, base_model="alice/dense-base")) == ["alice/moe-small"]


@pytest.mark.django_db(transaction=True)
def test_metrics_of_a_private_projects_run_are_not_searchable_through_a_public_model(models):
    from hub.registry.models import Commit, Ref
    from hub.tracking.models import Project

    alice, bob = models
    Project.objects.filter(namespace__name="alice", name="exp").update(private=True)
    head = Ref.objects.get(repo__name="tuned", name="main").commit_id
    indexing.index_commit_now(Commit.objects.get(pk=head).pk)
    indexing.search_index().refresh()
    for who in (alice, bob):
        assert ids(search(who, metric="val_loss<2.0")) == []
