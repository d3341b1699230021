"""Every path that enters a tree follows the one path rule (hub.shared.paths): a commit or a
merge that would store a bad or colliding path is a 4xx and stores nothing."""

import json
import struct
import unicodedata

import pytest

from hub.registry import services
from hub.registry.models import Ref, Repo
from tests.helpers import head, push, store_state, upload

pytestmark = [pytest.mark.integration, pytest.mark.pg]

NFD_CAFE = unicodedata.normalize("NFD", "café")


@pytest.fixture
def repo(api):
    client, _ = api
    r = client.post("/api/v1/repos", {"name": "moe"}, format="json")
    assert r.status_code == 201, r.content
    return "alice/moe"


def commit(client, repo, ops, *, branch="main"):
    return client.post(
        f"/api/v1/repos/{repo}/commits",
        {"branch": branch, "message": "x", "operations": ops},
        format="json",
    )


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".GIT/config",
        "sub/.Git/hooks/post-checkout",
        ".git./config",
        ".git /config",
        "GIT~1/config",
        ".g\u200cit/config",
        "a\u202egnp.exe",
        "a\u2066b",
        "a\x85b",
        "a\x1bb",
        "a\x7fb",
        " ",
        "dir/ /f",
        "name.",
        "dir./f",
        "name ",
        f"{NFD_CAFE}.txt",
    ],
)
def test_a_commit_with_a_bad_path_is_refused_and_stores_nothing(api, repo, path):
    client, _ = api
    ops = upload(client, repo, {"ok.bin": b"data"})
    ops[0]["path"] = path
    before = store_state()
    r = commit(client, repo, ops)
    assert r.status_code == 400, r.content
    err = r.json()["error"]
    assert err["code"] == "invalid_path" and "Invalid path" in err["message"]
    assert store_state() == before


def test_a_copy_to_a_git_path_is_refused(api, repo):
    client, _ = api
    assert push(client, repo, {"hook.sh": b"#!/bin/sh\n"}).status_code == 201
    before = store_state()
    r = commit(
        client, repo, [{"op": "copy", "path": ".git/hooks/post-checkout", "from": "hook.sh"}]
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_path"
    assert store_state() == before


@pytest.mark.parametrize(
    "paths", [["README.md", "readme.md"], ["a/b", "A/b/c"], ["Models/x.bin", "models/y.bin"]]
)
def test_two_paths_of_one_commit_that_collide_are_refused(api, repo, paths):
    client, _ = api
    ops = upload(client, repo, {p: p.encode() for p in paths})
    before = store_state()
    r = commit(client, repo, ops)
    assert r.status_code == 400, r.content
    err = r.json()["error"]
    assert err["code"] == "path_collision" and sorted(err["details"]["paths"]) == sorted(paths)
    assert store_state() == before


@pytest.mark.parametrize(
    "existing, new",
    [
        ("README.md", "ReadMe.MD"),
        ("a/b", "A/b/c"),
        ("a/b/c", "A/B"),
        ("straße.txt", "STRASSE.txt"),
    ],
)
def test_a_new_path_colliding_with_one_in_the_parent_tree_is_refused(api, repo, existing, new):
    client, _ = api
    assert push(client, repo, {existing: b"old"}).status_code == 201
    ops = upload(client, repo, {new: b"new"})
    before = store_state()
    r = commit(client, repo, ops)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "path_collision"
    assert store_state() == before


def test_renaming_a_file_to_another_case_in_one_commit_is_allowed(api, repo):
    client, _ = api
    assert push(client, repo, {"README.md": b"doc"}).status_code == 201
    r = push(client, repo, {"readme.md": b"doc"}, deletes=("README.md",))
    assert r.status_code == 201, r.content
    files = client.get(f"/api/v1/repos/{repo}/tree").json()["files"]
    assert [f["path"] for f in files] == ["readme.md"]


def _legacy_commit(repo_name: str, user, extra: dict[str, str]) -> str:
    """A commit made before the rule existed: its tree holds ``extra`` as they are."""
    repo = Repo.objects.get(namespace__name="alice", name=repo_name)
    ref = Ref.objects.get(repo=repo, kind="branch", name="main")
    parent = ref.commit
    tree = services._tree_for({**parent.tree.entries, **extra})
    c = services._new_commit(
        repo=repo,
        tree=tree,
        parents=[parent],
        user=user,
        message="legacy",
        metadata=None,
        created_at=None,
    )
    Ref.objects.filter(pk=ref.pk).update(commit=c)
    return c.sha


def test_a_legacy_bad_path_can_be_deleted(api, repo):
    client, user = api
    assert push(client, repo, {"config": b"[core]\n"}).status_code == 201
    oid = client.get(f"/api/v1/repos/{repo}/tree").json()["files"][0]["oid"]
    _legacy_commit("moe", user, {".git/config": oid, "A.txt": oid, "a.txt": oid})
    # an unrelated change still lands: old collisions do not block it
    assert push(client, repo, {"new.bin": b"n"}).status_code == 201
    r = commit(
        client, repo, [{"op": "delete", "path": ".git/config"}, {"op": "delete", "path": "A.txt"}]
    )
    assert r.status_code == 201, r.content
    paths = [f["path"] for f in client.get(f"/api/v1/repos/{repo}/tree").json()["files"]]
    assert paths == ["a.txt", "config", "new.bin"]


def test_a_merge_that_would_make_two_paths_collide_is_refused(api, repo):
    client, _ = api
    assert push(client, repo, {"base.txt": b"base"}).status_code == 201
    assert (
        client.post(f"/api/v1/repos/{repo}/branches", {"name": "exp"}, format="json").status_code
        == 201
    )
    assert push(client, repo, {"Model.bin": b"theirs"}, branch="exp").status_code == 201
    assert push(client, repo, {"model.bin": b"ours"}).status_code == 201
    main = head(client, repo)
    before = store_state()
    r = client.post(
        f"/api/v1/repos/{repo}/merge", {"source": "exp", "target": "main"}, format="json"
    )
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "path_collision"
    assert head(client, repo) == main and store_state() == before


def _dup_safetensors() -> bytes:
    """Two entries named 'w': a parser where the last one wins sees one 4-byte tensor."""
    raw = (
        b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        b'"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    )
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<f", 1.0)


def test_a_safetensors_file_with_duplicate_tensor_names_is_refused(api, repo):
    client, _ = api
    data = _dup_safetensors()
    n = struct.unpack("<Q", data[:8])[0]
    assert len(json.loads(data[8 : 8 + n])) == 1  # json's last-wins view hides the duplicate
    ops = upload(client, repo, {"m.bin": data})
    ops[0]["path"] = "m.safetensors"
    before = store_state()
    r = commit(client, repo, ops)
    assert r.status_code == 400, r.content
    err = r.json()["error"]
    assert err["code"] == "duplicate_tensor_name" and "'w'" in err["message"]
    assert store_state() == before
