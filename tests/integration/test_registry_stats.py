"""What dedupe saves, through the REST API: a commit's new and reused bytes, a repo's head,
logical and stored sizes, and the repo list's updated_at, against the real DB and blob store."""

import pytest

from hub.registry.models import Commit
from tests.helpers import head, model, push, st_bytes

pytestmark = [pytest.mark.integration, pytest.mark.pg]

TENSOR = 32 * 32 * 4  # bytes of one float32 (32, 32) tensor of tests.helpers.model
CONFIG = b'{"top_k": 2}'


@pytest.fixture
def repo(api):
    client, _ = api
    assert client.post("/api/v1/repos", {"name": "moe"}, format="json").status_code == 201
    return "alice/moe"


def _stats(client, repo, sha):
    r = client.get(f"/api/v1/repos/{repo}/commits/{sha}")
    assert r.status_code == 200, r.content
    return r.json()["stats"]


def _chunks(client, repo, ref, path="m.safetensors") -> dict[str, int]:
    info = client.get(f"/api/v1/repos/{repo}/info/{path}?ref={ref}").json()
    return {h: s for h, s in info["chunks"]}


def _two_versions(client, repo):
    """v1: a model and a config; v2: one tensor of the model changed, the config not."""
    v1 = model(seed=1)
    v2 = dict(v1, **{"layers.1.w": v1["layers.1.w"] * 2})
    st1, st2 = st_bytes(v1), st_bytes(v2)
    assert len(st1) == len(st2)
    assert push(client, repo, {"m.safetensors": st1, "config.json": CONFIG}).status_code == 201
    c1 = head(client, repo)
    assert push(client, repo, {"m.safetensors": st2}).status_code == 201
    return st1, st2, c1, head(client, repo)


def test_first_commit_is_all_new_bytes(api, repo):
    client, _ = api
    st1, _, c1, _ = _two_versions(client, repo)
    size = len(st1) + len(CONFIG)
    assert _stats(client, repo, c1) == {
        "files": 2,
        "bytes": size,
        "new_bytes": size,
        "reused_bytes": 0,
    }


def test_changing_one_tensor_makes_only_its_bytes_new(api, repo):
    client, _ = api
    _, st2, _, c2 = _two_versions(client, repo)
    assert _stats(client, repo, c2) == {
        "files": 2,
        "bytes": len(st2) + len(CONFIG),
        "new_bytes": TENSOR,
        "reused_bytes": len(st2) - TENSOR + len(CONFIG),
    }


def test_a_merge_reuses_chunks_from_either_parent(api, repo):
    client, _ = api
    base = model(seed=2)
    assert push(client, repo, {"m.safetensors": st_bytes(base)}).status_code == 201
    for b in ("a", "b"):
        client.post(f"/api/v1/repos/{repo}/branches", {"name": b}, format="json")
    a = dict(base, **{"layers.0.w": base["layers.0.w"] + 1})
    b = dict(base, **{"layers.4.w": base["layers.4.w"] - 1})
    assert push(client, repo, {"m.safetensors": st_bytes(a)}, branch="a").status_code == 201
    assert push(client, repo, {"m.safetensors": st_bytes(b)}, branch="b").status_code == 201
    r = client.post(f"/api/v1/repos/{repo}/merge", {"source": "b", "target": "a"}, format="json")
    assert r.status_code == 201 and r.json()["result"] == "merge", r.content
    merged = r.json()["commit"]["sha"]
    mine = _chunks(client, repo, merged)
    parents = _chunks(client, repo, "a") | _chunks(client, repo, "b")
    # Every tensor comes from a parent (layers.4.w only from the second): only a header the
    # merge rewrote, if any, is new.
    new = sum(s for h, s in mine.items() if h not in parents)
    assert new < TENSOR
    assert _stats(client, repo, merged) == {
        "files": 1,
        "bytes": sum(mine.values()),
        "new_bytes": new,
        "reused_bytes": sum(mine.values()) - new,
    }


def test_stats_of_a_commit_stored_without_them_are_computed_on_read(api, repo):
    client, _ = api
    _, _, _, c2 = _two_versions(client, repo)
    stored = _stats(client, repo, c2)
    Commit.objects.filter(sha=c2).update(stats=None)
    assert _stats(client, repo, c2) == stored
    assert Commit.objects.get(sha=c2).stats is None  # a read never writes


def test_the_migration_fills_in_the_stats_of_existing_commits(api, repo):
    import importlib

    from django.apps import apps

    client, _ = api
    _, _, c1, c2 = _two_versions(client, repo)
    expected = {sha: _stats(client, repo, sha) for sha in (c1, c2)}
    Commit.objects.update(stats=None)
    importlib.import_module("hub.registry.migrations.0002_commit_stats").fill(apps, None)
    assert {sha: Commit.objects.get(sha=sha).stats for sha in (c1, c2)} == expected


def test_repo_stats_count_each_version_once_and_each_chunk_once(api, repo):
    client, _ = api
    st1, st2, _, _ = _two_versions(client, repo)
    stats = client.get(f"/api/v1/repos/{repo}/stats").json()
    logical = len(st1) + len(st2) + len(CONFIG)  # the unchanged config counts once
    stored = len(st1) + TENSOR + len(CONFIG)
    assert stats == {
        "head_bytes": len(st2) + len(CONFIG),
        "logical_bytes": logical,
        "stored_bytes": stored,
        "dedupe_ratio": round(logical / stored, 4),
        "commits": 3,  # the initial commit, v1, v2
    }


def test_repo_stats_follow_refs_tags_count_and_deleted_branches_do_not(api, repo):
    client, _ = api
    st1, st2, _, _ = _two_versions(client, repo)
    before = client.get(f"/api/v1/repos/{repo}/stats").json()
    client.post(f"/api/v1/repos/{repo}/branches", {"name": "x"}, format="json")
    extra = b"x" * 1000
    assert push(client, repo, {"extra.bin": extra}, branch="x").status_code == 201
    with_x = client.get(f"/api/v1/repos/{repo}/stats").json()
    assert with_x["commits"] == before["commits"] + 1
    assert with_x["logical_bytes"] == before["logical_bytes"] + len(extra)
    assert with_x["stored_bytes"] == before["stored_bytes"] + len(extra)
    assert with_x["head_bytes"] == before["head_bytes"]  # main did not move
    assert client.post(
        f"/api/v1/repos/{repo}/tags", {"name": "keep", "ref": "x"}, format="json"
    ).status_code in (200, 201)
    assert client.delete(f"/api/v1/repos/{repo}/branches/x").status_code == 204
    assert client.get(f"/api/v1/repos/{repo}/stats").json() == with_x  # the tag keeps it
    assert client.delete(f"/api/v1/repos/{repo}/tags/keep").status_code == 204
    assert client.get(f"/api/v1/repos/{repo}/stats").json() == before


def test_an_empty_repo_has_no_dedupe_ratio(api, repo):
    client, _ = api
    assert client.get(f"/api/v1/repos/{repo}/stats").json() == {
        "head_bytes": 0,
        "logical_bytes": 0,
        "stored_bytes": 0,
        "dedupe_ratio": None,
        "commits": 1,
    }


def test_private_repo_stats_are_invisible_to_others(api, make_user):
    from tests.conftest import client_for

    client, _ = api
    client.post("/api/v1/repos", {"name": "secret", "private": True}, format="json")
    _, token = make_user("bob")
    r = client_for(token).get("/api/v1/repos/alice/secret/stats")
    assert r.status_code == 404 and r.json()["error"]["code"] == "repo_not_found"


def test_repo_list_sorts_by_the_last_branch_move(api):
    client, _ = api
    for n in ("first", "second", "third"):
        assert client.post("/api/v1/repos", {"name": n}, format="json").status_code == 201
    assert push(client, "alice/first", {"w.bin": b"weights"}).status_code == 201

    def order(sort):
        r = client.get(f"/api/v1/repos?sort={sort}")
        assert r.status_code == 200, r.content
        return [x["name"] for x in r.json()["results"]]

    assert order("-updated_at") == ["first", "third", "second"]
    assert order("-created_at") == ["third", "second", "first"]
    assert order("name") == ["first", "second", "third"]
    listed = {x["name"]: x for x in client.get("/api/v1/repos").json()["results"]}
    detail = client.get("/api/v1/repos/alice/first").json()
    assert detail["updated_at"] == listed["first"]["updated_at"]
    assert listed["first"]["updated_at"] > listed["first"]["created_at"]
    assert listed["second"]["updated_at"] >= listed["second"]["created_at"]


def test_protecting_a_branch_does_not_count_as_an_update(api, repo):
    client, _ = api
    before = client.get(f"/api/v1/repos/{repo}").json()
    r = client.patch(f"/api/v1/repos/{repo}/branches/main", {"protected": True}, format="json")
    assert r.status_code == 200 and r.json()["updated_at"] == before["refs"][0]["updated_at"]
    assert client.get(f"/api/v1/repos/{repo}").json()["updated_at"] == before["updated_at"]


def test_unknown_repo_sort_is_a_400(api):
    client, _ = api
    r = client.get("/api/v1/repos?sort=size")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sort"


def test_stats_in_the_openapi_schema(api):
    client, _ = api
    schema = client.get("/api/schema?format=json").content.decode()
    assert "/api/v1/repos/{namespace}/{name}/stats" in schema and "dedupe_ratio" in schema
