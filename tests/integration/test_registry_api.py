"""The registry through its REST API, against the real DB and blob store."""

import io
import json
import struct
import tarfile

import numpy as np
import pytest
from safetensors.numpy import load

from hub.registry.models import Chunk, Commit
from hub.shared.chunking import chunk_bytes, chunk_hash
from tests.conftest import client_for
from tests.helpers import download, head, model, push, st_bytes, store_state, upload

pytestmark = [pytest.mark.integration, pytest.mark.pg]


@pytest.fixture
def repo(api):
    client, _ = api
    r = client.post("/api/v1/repos", {"name": "moe"}, format="json")
    assert r.status_code == 201, r.content
    return "alice/moe"


def test_new_repo_has_an_initial_commit_on_main(api, repo):
    client, _ = api
    info = client.get(f"/api/v1/repos/{repo}").json()
    assert info["default_branch"] == "main"
    assert [r["name"] for r in info["refs"]] == ["main"]
    log = client.get(f"/api/v1/repos/{repo}/commits").json()["results"]
    assert len(log) == 1 and log[0]["parents"] == [] and len(log[0]["sha"]) == 40


def test_push_then_download_round_trips(api, repo):
    client, _ = api
    data = st_bytes(model())
    r = push(
        client, repo, {"model.safetensors": data, "config.json": b'{"top_k": 2}'}, message="first"
    )
    assert r.status_code == 201, r.content
    status, body, resp = download(client, repo, "model.safetensors")
    assert status == 200 and body == data
    assert resp["ETag"] == f'"{chunk_bytes(data, name="model.safetensors").oid}"'
    assert download(client, repo, "config.json")[1] == b'{"top_k": 2}'


def test_tree_is_paginated_and_later_pages_pin_the_commit(api, repo):
    client, _ = api
    files = {f"shard-{i:02d}.bin": f"weights {i}".encode() for i in range(5)}
    assert push(client, repo, files).status_code == 201
    first = client.get(f"/api/v1/repos/{repo}/tree?page_size=2").json()
    assert [f["path"] for f in first["files"]] == ["shard-00.bin", "shard-01.bin"]
    assert first["count"] == 5 and first["next"] and first["previous"] is None
    # The branch moves on; a later page asked for by commit id still lists the first commit.
    assert push(client, repo, {"zz-new.bin": b"new"}).status_code == 201
    last = client.get(f"/api/v1/repos/{repo}/tree?ref={first['commit']}&page_size=2&page=3").json()
    assert [f["path"] for f in last["files"]] == ["shard-04.bin"] and last["next"] is None
    assert client.get(f"/api/v1/repos/{repo}/tree").json()["count"] == 6  # one page by default
    r = client.get(f"/api/v1/repos/{repo}/tree?page=9")
    assert r.status_code == 404 and r.json()["error"]["code"]


def test_negotiation_reports_only_missing_chunks(api, repo):
    client, _ = api
    base = model(seed=1, n=8)
    push(client, repo, {"m.safetensors": st_bytes(base)})
    changed = dict(base)
    changed["layers.5.w"] = changed["layers.5.w"] * 2
    m = chunk_bytes(st_bytes(changed), name="m.safetensors")
    missing = client.post(
        f"/api/v1/repos/{repo}/chunks/missing",
        {"chunks": [c.hash for c in m.chunks]},
        format="json",
    ).json()["missing"]
    assert len(missing) == 1  # only that tensor (the header is unchanged: same shapes)
    assert missing[0] == next(
        c.hash
        for c in m.chunks
        if c.size == changed["layers.5.w"].nbytes
        and c.hash not in {x.hash for x in chunk_bytes(st_bytes(base), name="m.safetensors").chunks}
    )


def test_lying_hash_is_rejected_and_nothing_is_stored(api, repo):
    client, _ = api
    before = store_state()
    r = client.put(
        f"/api/v1/repos/{repo}/chunks/{chunk_hash(b'truth')}",
        b"lies",
        content_type="application/octet-stream",
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "chunk_hash_mismatch"
    assert store_state() == before
    assert not Chunk.objects.filter(hash=chunk_hash(b"truth")).exists()


def test_commit_referencing_unknown_chunks_is_refused(api, repo):
    client, _ = api
    before = store_state()
    r = client.post(
        f"/api/v1/repos/{repo}/commits",
        {
            "branch": "main",
            "message": "x",
            "operations": [
                {"op": "add", "path": "a.bin", "chunks": [[chunk_hash(b"never sent"), 10]]}
            ],
        },
        format="json",
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_chunks"
    assert store_state() == before


@pytest.mark.parametrize(
    "header",
    [
        b"\x08\x00\x00\x00\x00\x00\x00\x00not json",
        struct.pack("<Q", 200 * 1024 * 1024) + b"{}",
        struct.pack("<Q", 2) + b"[]",
    ],
)
def test_malformed_or_oversized_safetensors_is_refused(api, repo, header):
    client, _ = api
    before = store_state()
    ops = upload(client, repo, {"bad.bin": header})
    ops[0]["path"] = "bad.safetensors"
    after_upload = store_state()
    r = client.post(
        f"/api/v1/repos/{repo}/commits",
        {"branch": "main", "message": "x", "operations": ops},
        format="json",
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_safetensors"
    assert store_state() == after_upload  # no commit, no file, no tree
    assert store_state()[0] == before[0]


@pytest.mark.parametrize(
    "path", ["../escape", "/etc/passwd", "a/../../b", "a\x00b", "a//b", "x" * 2000]
)
def test_path_traversal_names_are_refused(api, repo, path):
    client, _ = api
    before = store_state()
    ops = upload(client, repo, {"ok.bin": b"data"})
    ops[0]["path"] = path
    r = client.post(
        f"/api/v1/repos/{repo}/commits",
        {"branch": "main", "message": "x", "operations": ops},
        format="json",
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_path"
    assert store_state()[0] == before[0]


def test_stale_parent_gets_branch_conflict_with_current_head(api, repo):
    client, _ = api
    start = head(client, repo)
    assert push(client, repo, {"a.txt": b"1"}, expected_head=start).status_code == 201
    current = head(client, repo)
    before = store_state()
    r = push(client, repo, {"a.txt": b"2"}, expected_head=start)
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "branch_conflict" and err["details"]["current_head"] == current
    assert store_state()[0] == before[0] and head(client, repo) == current


def test_retried_commit_is_idempotent(api, repo):
    client, _ = api
    ops = upload(client, repo, {"a.txt": b"hello"})
    body = {
        "branch": "main",
        "message": "m",
        "operations": ops,
        "expected_head": head(client, repo),
        "created_at": "2026-01-01T00:00:00.123456+00:00",
    }
    first = client.post(f"/api/v1/repos/{repo}/commits", body, format="json")
    again = client.post(f"/api/v1/repos/{repo}/commits", body, format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["sha"] == again.json()["sha"]
    assert Commit.objects.filter(repo__name="moe").count() == 2


def test_branches_tags_and_protection(api, repo, make_user):
    client, _ = api
    push(client, repo, {"a.txt": b"1"})
    assert (
        client.post(
            f"/api/v1/repos/{repo}/branches", {"name": "exp/one"}, format="json"
        ).status_code
        == 201
    )
    dup = client.post(f"/api/v1/repos/{repo}/branches", {"name": "exp/one"}, format="json")
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "ref_exists"
    bad = client.post(f"/api/v1/repos/{repo}/branches", {"name": "bad..name"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_ref_name"
    assert (
        client.post(
            f"/api/v1/repos/{repo}/tags", {"name": "v1", "ref": "main"}, format="json"
        ).status_code
        == 201
    )
    again = client.post(
        f"/api/v1/repos/{repo}/tags", {"name": "v1", "ref": "exp/one"}, format="json"
    )
    assert again.status_code == 409
    # protect main: a direct push is refused and changes nothing
    assert (
        client.patch(
            f"/api/v1/repos/{repo}/branches/main", {"protected": True}, format="json"
        ).status_code
        == 200
    )
    before = store_state()
    r = push(client, repo, {"a.txt": b"2"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "branch_protected"
    assert store_state()[0] == before[0]
    # a writer who is not admin cannot merge into it; the admin can
    _, bob_token = make_user("bob")
    client.put("/api/v1/namespaces/alice/members/bob", {"role": "write"}, format="json")
    bob = client_for(bob_token)
    push(bob, repo, {"b.txt": b"b"}, branch="exp/one")
    r = bob.post(
        f"/api/v1/repos/{repo}/merge", {"source": "exp/one", "target": "main"}, format="json"
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "branch_protected"
    r = client.post(
        f"/api/v1/repos/{repo}/merge", {"source": "exp/one", "target": "main"}, format="json"
    )
    assert r.status_code == 200 and r.json()["result"] == "fast_forward"
    assert client.delete(f"/api/v1/repos/{repo}/branches/main").json()["error"]["code"] in {
        "default_branch",
        "branch_protected",
    }


def test_log_first_parent_and_pagination(api, repo):
    client, _ = api
    for i in range(5):
        push(client, repo, {"a.txt": str(i).encode()}, message=f"c{i}")
    page1 = client.get(f"/api/v1/repos/{repo}/commits?page_size=2").json()
    page2 = client.get(f"/api/v1/repos/{repo}/commits?page_size=2&page=2").json()
    assert [c["message"] for c in page1["results"]] == ["c4", "c3"] and page1["has_more"]
    assert [c["message"] for c in page2["results"]] == ["c2", "c1"]


def test_download_range_etag_and_archive(api, repo):
    client, _ = api
    data = st_bytes(model(seed=2))
    push(client, repo, {"w/model.safetensors": data, "README.md": b"# hi\n"})
    status, body, resp = download(client, repo, "w/model.safetensors", HTTP_RANGE="bytes=100-299")
    assert (
        status == 206
        and body == data[100:300]
        and resp["Content-Range"] == f"bytes 100-299/{len(data)}"
    )
    status, body, _ = download(client, repo, "w/model.safetensors", HTTP_RANGE="bytes=-10")
    assert status == 206 and body == data[-10:]
    etag = resp["ETag"]
    assert (
        client.get(
            f"/api/v1/repos/{repo}/files/w/model.safetensors?ref=main", HTTP_IF_NONE_MATCH=etag
        ).status_code
        == 304
    )
    assert download(client, repo, "w/model.safetensors", HTTP_RANGE=f"bytes={len(data)}-")[0] == 416
    r = client.get(f"/api/v1/repos/{repo}/archive?ref=main")
    tar = tarfile.open(fileobj=io.BytesIO(b"".join(r.streaming_content)))
    assert tar.extractfile("moe/w/model.safetensors").read() == data
    assert tar.extractfile("moe/README.md").read() == b"# hi\n"


def test_download_of_corrupted_chunk_fails_instead_of_serving_bad_bytes(api, repo, blob_backend):
    client, _ = api
    push(client, repo, {"a.bin": b"x" * 5000})
    digest = chunk_hash(b"x" * 5000)
    blob_backend.corrupt(digest)
    r = client.get(f"/api/v1/repos/{repo}/files/a.bin?ref=main")
    # the only chunk is the first one: a clean error before any byte, in the one error shape
    assert r.status_code == 503 and not r.streaming
    err = r.json()["error"]
    assert err["code"] == "corrupt_chunk" and err["details"]["chunk"] == digest
    assert err["details"]["reason"] == "hash_mismatch" and err["details"]["path"] == "a.bin"
    assert int(r["Retry-After"]) > 0
    r = client.get(f"/api/v1/repos/{repo}/archive?ref=main")
    assert r.status_code == 503 and r.json()["error"]["code"] == "corrupt_chunk"


def test_download_with_a_missing_first_chunk_is_a_clean_error(api, repo, blob_backend):
    client, _ = api
    push(client, repo, {"a.bin": b"m" * 5000})
    digest = chunk_hash(b"m" * 5000)
    blob_backend.remove(digest)
    r = client.get(f"/api/v1/repos/{repo}/files/a.bin?ref=main")
    assert r.status_code == 503 and r.json()["error"]["details"]["reason"] == "missing"


def test_corruption_after_the_first_chunk_aborts_the_stream(api, repo, blob_backend):
    client, _ = api
    data = st_bytes(model(seed=9))  # a header chunk, then one chunk per tensor
    push(client, repo, {"m.safetensors": data})
    chunks = chunk_bytes(data, name="m.safetensors").chunks
    bad = chunks[3]
    blob_backend.corrupt(bad.hash)
    r = client.get(f"/api/v1/repos/{repo}/files/m.safetensors?ref=main")
    assert r.status_code == 200 and r["Content-Length"] == str(
        len(data)
    )  # the first chunk was fine
    got = bytearray()
    with pytest.raises(Exception, match="hash"):
        for part in r.streaming_content:
            got += part
    assert bytes(got) == data[: bad.offset]  # every byte sent is good; the body stops short
    # a range that starts at the bad chunk is refused up front
    _, _, r = download(client, repo, "m.safetensors", HTTP_RANGE=f"bytes={bad.offset}-")
    assert r.status_code == 503 and r.json()["error"]["code"] == "corrupt_chunk"
    # and one that starts after it is served
    status, body, _ = download(
        client, repo, "m.safetensors", HTTP_RANGE=f"bytes={chunks[4].offset}-"
    )
    assert status == 206 and body == data[chunks[4].offset :]


def test_diff_reports_tensor_stats(api, repo):
    client, _ = api
    base = model(seed=4)
    push(client, repo, {"m.safetensors": st_bytes(base)})
    client.post(f"/api/v1/repos/{repo}/branches", {"name": "ft"}, format="json")
    ft = dict(base)
    ft["layers.1.w"] = base["layers.1.w"] * 1.5
    ft["new"] = np.ones(3, np.float32)
    del ft["layers.2.w"]
    ft["layers.3.w"] = base["layers.3.w"].reshape(16, 64)
    push(client, repo, {"m.safetensors": st_bytes(ft)}, branch="ft")
    d = client.get(f"/api/v1/repos/{repo}/diff?a=main&b=ft").json()
    [f] = d["files"]
    rows = {t["name"]: t for t in f["tensors"]}
    assert rows["new"]["status"] == "added" and rows["layers.2.w"]["status"] == "removed"
    assert rows["layers.3.w"]["shape_changed"] and "l2_delta" not in rows["layers.3.w"]
    c = rows["layers.1.w"]
    a = base["layers.1.w"].astype(np.float64)
    assert c["l2_delta"] == pytest.approx(np.linalg.norm(a * 0.5), rel=1e-5)
    assert c["rel_change"] == pytest.approx(0.5, rel=1e-5)
    assert c["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert f["unchanged_tensors"] == 3
    only = client.get(f"/api/v1/repos/{repo}/diff?a=main&b=ft&filter=layers.1").json()
    assert [t["name"] for t in only["files"][0]["tensors"]] == ["layers.1.w"]


def _branches(client, repo, base):
    push(client, repo, {"m.safetensors": st_bytes(base), "config.json": b"{}"})
    for b in ("a", "b"):
        assert (
            client.post(f"/api/v1/repos/{repo}/branches", {"name": b}, format="json").status_code
            == 201
        )


def test_fast_forward_then_three_way_merge_at_tensor_level(api, repo):
    client, _ = api
    base = model(seed=5)
    _branches(client, repo, base)
    a, b = dict(base), dict(base)
    a["layers.0.w"] = base["layers.0.w"] + 1
    b["layers.4.w"] = base["layers.4.w"] - 1
    push(client, repo, {"m.safetensors": st_bytes(a)}, branch="a")
    push(client, repo, {"m.safetensors": st_bytes(b)}, branch="b")
    r = client.post(f"/api/v1/repos/{repo}/merge", {"source": "a", "target": "main"}, format="json")
    assert r.json()["result"] == "fast_forward"
    before_chunks = set(Chunk.objects.values_list("hash", flat=True))
    r = client.post(f"/api/v1/repos/{repo}/merge", {"source": "b", "target": "main"}, format="json")
    assert r.status_code == 201 and r.json()["result"] == "merge"
    merged_commit = r.json()["commit"]
    assert len(merged_commit["parents"]) == 2
    new = Chunk.objects.exclude(hash__in=before_chunks)
    assert sum(c.size for c in new) < 1024  # at most a new header: every tensor's chunks are reused
    out = load(download(client, repo, "m.safetensors")[1])
    assert np.array_equal(out["layers.0.w"], a["layers.0.w"]) and np.array_equal(
        out["layers.4.w"], b["layers.4.w"]
    )
    assert np.array_equal(out["layers.2.w"], base["layers.2.w"])
    again = client.post(
        f"/api/v1/repos/{repo}/merge", {"source": "b", "target": "main"}, format="json"
    )
    assert again.json()["result"] == "up_to_date"
    itself = client.post(
        f"/api/v1/repos/{repo}/merge", {"source": "main", "target": "main"}, format="json"
    )
    assert itself.json()["result"] == "up_to_date"


def test_conflict_reports_both_sides_and_strategies_resolve_it(api, repo):
    client, _ = api
    base = model(seed=6)
    _branches(client, repo, base)
    a, b = dict(base), dict(base)
    a["layers.1.w"] = base["layers.1.w"] * 2
    b["layers.1.w"] = base["layers.1.w"] * 4
    push(client, repo, {"m.safetensors": st_bytes(a)}, branch="a")
    push(client, repo, {"m.safetensors": st_bytes(b)}, branch="b")
    before = store_state()
    r = client.post(f"/api/v1/repos/{repo}/merge", {"source": "b", "target": "a"}, format="json")
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "merge_conflict"
    [c] = err["details"]["conflicts"]
    assert c["tensor"] == "layers.1.w"
    assert c["ours"]["rel_change"] == pytest.approx(1.0, rel=1e-5)
    assert c["theirs"]["rel_change"] == pytest.approx(3.0, rel=1e-5)
    assert store_state()[0] == before[0] and store_state()[4] == before[4]

    def merged(strategy, **kw):
        client.post(
            f"/api/v1/repos/{repo}/branches",
            {"name": f"t-{strategy}", "from_ref": "a"},
            format="json",
        )
        r = client.post(
            f"/api/v1/repos/{repo}/merge",
            {"source": "b", "target": f"t-{strategy}", "strategy": strategy, **kw},
            format="json",
        )
        assert r.status_code == 201, r.content
        return load(download(client, repo, "m.safetensors", ref=f"t-{strategy}")[1])["layers.1.w"]

    assert np.array_equal(merged("ours"), a["layers.1.w"])
    assert np.array_equal(merged("theirs"), b["layers.1.w"])
    avg = merged("average", weight=0.25)
    assert np.allclose(avg, 0.75 * a["layers.1.w"] + 0.25 * b["layers.1.w"], rtol=1e-6)


def test_unauthenticated_and_read_only_writes_are_refused(api, repo, make_user):
    client, _ = api
    before = store_state()
    anon = client_for(None)
    r = anon.post(f"/api/v1/repos/{repo}/branches", {"name": "x"}, format="json")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    _, ro = make_user("reader", scope="read")
    client.put("/api/v1/namespaces/alice/members/reader", {"role": "write"}, format="json")
    r = client_for(ro).post(f"/api/v1/repos/{repo}/branches", {"name": "x"}, format="json")
    assert r.status_code == 403 and r.json()["error"]["code"] == "token_read_only"
    r = client_for("hub_bogus").get(f"/api/v1/repos/{repo}")
    assert r.status_code == 401 and r.json()["error"]["code"] == "authentication_failed"
    assert store_state()[0] == before[0] and store_state()[4] == before[4]


def test_cross_namespace_write_is_forbidden_and_private_repos_are_invisible(api, make_user):
    client, _ = api
    client.post("/api/v1/repos", {"name": "secret", "private": True}, format="json")
    client.post("/api/v1/repos", {"name": "open"}, format="json")
    _, mallory_token = make_user("mallory")
    m = client_for(mallory_token)
    before = store_state()
    assert m.get("/api/v1/repos/alice/secret").status_code == 404
    assert client_for(None).get("/api/v1/repos/alice/secret").status_code == 404
    assert m.get("/api/v1/repos/alice/secret/commits").status_code == 404
    assert m.get("/api/v1/repos/alice/open").status_code == 200
    assert client_for(None).get("/api/v1/repos/alice/open").status_code == 200
    r = m.post("/api/v1/repos/alice/open/branches", {"name": "evil"}, format="json")
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    assert (
        m.post(
            "/api/v1/repos", {"namespace": "alice", "name": "planted"}, format="json"
        ).status_code
        == 403
    )
    assert [x["id"] for x in m.get("/api/v1/repos").json()["results"]] == ["alice/open"]
    assert store_state() == before


def test_gc_frees_the_bytes_of_a_deleted_branch(api, repo):
    client, _ = api
    push(client, repo, {"m.safetensors": st_bytes(model(seed=7))})
    client.post(f"/api/v1/repos/{repo}/branches", {"name": "scratch"}, format="json")
    big = model(seed=8, n=2, shape=(256, 256))
    push(client, repo, {"scratch.safetensors": st_bytes(big)}, branch="scratch")
    dry = client.post("/api/v1/admin/gc", {"dry_run": True, "grace_seconds": 0}, format="json")
    assert dry.status_code == 403  # alice is not a site admin
    from hub.registry import gc

    assert gc.gc(dry_run=True, grace_seconds=0)["reclaimable_bytes"] == 0
    client.delete(f"/api/v1/repos/{repo}/branches/scratch")
    report = gc.gc(dry_run=True, grace_seconds=0)
    tensor_bytes = sum(t.nbytes for t in big.values())
    assert report["commits"] == 1 and report["reclaimable_bytes"] >= tensor_bytes
    assert gc.gc(dry_run=True, grace_seconds=3600)["chunks"] == 0  # inside the grace period
    done = gc.gc(dry_run=False, grace_seconds=0)
    assert done["freed_bytes"] >= tensor_bytes
    assert download(client, repo, "m.safetensors")[0] == 200  # main is intact
    assert gc.gc(dry_run=True, grace_seconds=0)["reclaimable_bytes"] == 0


def test_gc_keeps_chunks_uploaded_for_a_push_in_flight(api, repo):
    client, _ = api
    ops = upload(client, repo, {"pending.bin": b"p" * 1000})
    from hub.registry import gc

    assert gc.gc(dry_run=False)["chunks"] == 0  # default grace period protects them
    r = client.post(
        f"/api/v1/repos/{repo}/commits",
        {"branch": "main", "message": "late", "operations": ops},
        format="json",
    )
    assert r.status_code == 201


def test_errors_have_one_shape(api, repo):
    client, _ = api
    for r in (
        client.get("/api/v1/no-such-endpoint"),
        client.post(f"/api/v1/repos/{repo}/commits", "{not json", content_type="application/json"),
        client.post(f"/api/v1/repos/{repo}/commits", {"branch": "main"}, format="json"),
        client.get(f"/api/v1/repos/{repo}/diff?a=main&b=nope"),
        client.post(
            f"/api/v1/repos/{repo}/merge",
            {"source": "main", "target": "main", "strategy": "blend"},
            format="json",
        ),
        client.put(
            f"/api/v1/repos/{repo}/chunks/not-a-hash", b"x", content_type="application/octet-stream"
        ),
    ):
        assert 400 <= r.status_code < 500, r.content
        body = json.loads(r.content)
        assert set(body["error"]) == {"code", "message", "details"} and body["error"]["code"]


def test_openapi_schema_and_docs(api):
    client, _ = api
    r = client.get("/api/schema?format=json")
    assert r.status_code == 200
    schema = json.loads(r.content)
    assert "/api/v1/repos/{namespace}/{name}/merge" in schema["paths"]
    assert client.get("/api/docs").status_code == 200


def test_fast_forward_with_a_strategy_says_the_strategy_was_not_applied(api, repo):
    client, _ = api
    base = model(seed=7)
    _branches(client, repo, base)
    a = dict(base)
    a["layers.2.w"] = base["layers.2.w"] * 3
    push(client, repo, {"m.safetensors": st_bytes(a)}, branch="a")
    r = client.post(
        f"/api/v1/repos/{repo}/merge",
        {"source": "a", "target": "main", "strategy": "average", "weight": 0.5},
        format="json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["result"] == "fast_forward"
    assert body["note"] == (
        "fast-forwarded; strategy 'average' not applied (use --no-ff to merge with it)"
    )
    assert body["commit"]["sha"] == head(client, repo, "a")
    plain = client.post(
        f"/api/v1/repos/{repo}/merge", {"source": "main", "target": "b"}, format="json"
    )
    assert plain.json()["result"] == "fast_forward" and plain.json()["note"] is None


def test_no_ff_average_of_a_descendant_is_the_weighted_soup_of_target_and_source(api, repo):
    client, _ = api
    base = model(seed=8)
    _branches(client, repo, base)
    a = dict(base)
    a["layers.0.w"] = base["layers.0.w"] * 3
    a["layers.5.w"] = base["layers.5.w"] - 2
    a["extra.w"] = np.ones((4, 4), dtype=np.float32)
    del a["layers.3.w"]
    push(client, repo, {"m.safetensors": st_bytes(a), "config.json": b'{"v": 2}'}, branch="a")
    target_before = head(client, repo, "main")
    r = client.post(
        f"/api/v1/repos/{repo}/merge",
        {"source": "a", "target": "main", "strategy": "average", "weight": 0.25, "no_ff": True},
        format="json",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["result"] == "merge" and body["note"] is None
    assert body["commit"]["parents"] == [target_before, head(client, repo, "a")]
    out = load(download(client, repo, "m.safetensors")[1])
    for name in ("layers.0.w", "layers.5.w"):
        assert np.allclose(out[name], 0.75 * base[name] + 0.25 * a[name], rtol=1e-6)
    assert np.array_equal(out["layers.1.w"], base["layers.1.w"])  # unchanged by the source
    assert np.array_equal(out["extra.w"], a["extra.w"])  # added by the source
    assert "layers.3.w" not in out  # deleted by the source
    assert download(client, repo, "config.json")[1] == b'{"v": 2}'
    assert {t["tensor"] for t in body["resolved"]} == {"layers.0.w", "layers.5.w"}
