"""The real ``huggingface_hub`` client (pinned in the [test] extra) against a live hub.

A model is pushed with the hub's own SDK (safetensors + config.json + README.md) on two
branches and a tag; the Hugging Face client then reads it with ``endpoint=<hub>`` and a hub
token, into a temporary cache, and writes to it with ``upload_folder`` / ``create_commit``.
Requests the client sends are counted on its own HTTP session (``set_client_factory``), so
"the second call hits the cache" is a count of the requests that really left the client.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import huggingface_hub as hf  # the [test] extra pins it: a missing install fails, never skips
import numpy as np
import pytest
from huggingface_hub import errors as hf_errors
from huggingface_hub.utils import _http as hf_http

from hub.client.api import Client
from tests.helpers import st_bytes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPO = "alice/moe"
README = b"---\nlicense: apache-2.0\ntags: [moe]\n---\n# moe\n\nA tiny MoE.\n"


def _weights(seed: int, n: int = 4) -> bytes:
    rng = np.random.default_rng(seed)
    return st_bytes(
        {f"layers.{i}.w": rng.standard_normal((64, 64)).astype(np.float32) for i in range(n)}
    )


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return folder


@pytest.fixture
def hub(live_server, make_user, blob_dir, tmp_path, monkeypatch):
    """alice's public repo (main, dev and tag v1) and private repo, bob's token, and a fresh
    Hugging Face cache; the client is told nothing but the endpoint and a token."""
    for var in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    _, alice = make_user("alice")
    _, bob = make_user("bob")
    main = {
        "model.safetensors": _weights(0),
        "config.json": b'{"n_experts": 4}',
        "README.md": README,
    }
    dev = {**main, "model.safetensors": _weights(1), "sub/notes.txt": b"dev notes\n"}
    with Client(url=live_server.url, token=alice, retries=0) as sdk:
        sdk.create_repo(REPO)
        sdk.push(_write(tmp_path / "v1", main), repo=REPO, message="first weights\n\nfrom seed 0")
        sdk.create_branch(REPO, "dev", from_ref="main")
        sdk.push(_write(tmp_path / "v2", dev), repo=REPO, branch="dev", message="dev weights")
        sdk.create_tag(REPO, "v1", ref="main")
        sdk.create_repo("alice/secret", private=True)
        sdk.push(_write(tmp_path / "s", {"w.bin": b"secret"}), repo="alice/secret", message="s")
        shas = {b: sdk.branch_info(REPO, b)["commit"] for b in ("main", "dev")}
    return {
        "url": live_server.url,
        "alice": alice,
        "bob": bob,
        "files": {"main": main, "dev": dev},
        "sha": shas,
        "cache": tmp_path / "hf-cache",
        "api": hf.HfApi(endpoint=live_server.url, token=alice),
    }


@pytest.fixture
def sent(monkeypatch):
    """Every request the Hugging Face client sends: (method, path, Range, host:port, auth)."""
    seen: list[tuple[str, str, str | None, str, str | None]] = []

    def record(req):
        seen.append(
            (
                req.method,
                req.url.path,
                req.headers.get("range"),
                f"{req.url.host}:{req.url.port}",
                req.headers.get("authorization"),
            )
        )

    def factory():
        client = hf_http.default_client_factory()  # the client's own session, plus a recorder
        client.event_hooks["request"].append(record)
        return client

    hf.set_client_factory(factory)
    yield seen
    hf.set_client_factory(hf_http.default_client_factory)


def _download(hub, filename, revision, **kw):
    return hf.hf_hub_download(
        REPO,
        filename,
        revision=revision,
        endpoint=hub["url"],
        token=hub["alice"],
        cache_dir=hub["cache"],
        **kw,
    )


# --- downloads -----------------------------------------------------------------------------


def test_hf_hub_download_reads_a_branch_a_tag_and_a_commit(hub):
    cases = {
        "main": ("main", hub["files"]["main"]),
        "dev": ("dev", hub["files"]["dev"]),
        "v1": ("main", hub["files"]["main"]),
        hub["sha"]["dev"]: ("dev", hub["files"]["dev"]),
    }
    for rev, (branch, files) in cases.items():
        for name in ("model.safetensors", "config.json", "README.md"):
            path = Path(_download(hub, name, rev))
            assert path.read_bytes() == files[name], (rev, name)
            assert path.parent.name == hub["sha"][branch]  # snapshots/<commit>/<name>
    local = hf.hf_hub_download(
        REPO,
        "model.safetensors",
        revision="dev",
        endpoint=hub["url"],
        token=hub["alice"],
        local_dir=hub["cache"].parent / "local",
    )
    assert Path(local).read_bytes() == hub["files"]["dev"]["model.safetensors"]


def test_snapshot_download_by_branch_tag_and_commit_with_allow_patterns(hub):
    dev = hf.snapshot_download(
        REPO,
        revision="dev",
        allow_patterns=["*.json", "sub/*"],
        endpoint=hub["url"],
        token=hub["alice"],
        cache_dir=hub["cache"],
    )
    got = {p.relative_to(dev).as_posix() for p in Path(dev).rglob("*") if p.is_file()}
    assert got == {"config.json", "sub/notes.txt"}
    assert (Path(dev) / "sub/notes.txt").read_bytes() == b"dev notes\n"
    assert Path(dev).name == hub["sha"]["dev"]
    for rev in ("v1", hub["sha"]["main"]):
        snap = hf.snapshot_download(
            REPO, revision=rev, endpoint=hub["url"], token=hub["alice"], cache_dir=hub["cache"]
        )
        files = {
            p.relative_to(snap).as_posix(): p.read_bytes()
            for p in Path(snap).rglob("*")
            if p.is_file()
        }
        assert files == hub["files"]["main"]


def test_a_second_download_is_served_from_the_cache(hub, sent):
    _download(hub, "model.safetensors", "main")
    file_gets = [s for s in sent if s[0] == "GET" and "/resolve/" in s[1]]
    assert len(file_gets) == 1
    sent.clear()
    again = _download(hub, "model.safetensors", "main")
    # a branch is re-checked with one HEAD (it may have moved); the bytes are not fetched again
    assert [s[0] for s in sent] == ["HEAD"]
    assert Path(again).read_bytes() == hub["files"]["main"]["model.safetensors"]
    sent.clear()
    by_commit = _download(hub, "model.safetensors", hub["sha"]["main"])
    assert sent == [] and by_commit == again  # a commit id never changes: no request at all
    snap = hf.snapshot_download(
        REPO, revision="main", endpoint=hub["url"], token=hub["alice"], cache_dir=hub["cache"]
    )
    sent.clear()
    hf.snapshot_download(
        REPO, revision="main", endpoint=hub["url"], token=hub["alice"], cache_dir=hub["cache"]
    )
    assert not [s for s in sent if s[0] == "GET" and "/resolve/" in s[1]]
    assert Path(snap).name == hub["sha"]["main"]


def test_a_file_the_store_presigns_is_fetched_from_it_without_the_token(
    live_server, make_user, s3_blob_store, settings, sent, tmp_path
):
    _, alice = make_user("alice")
    data = os.urandom(300_000)  # one chunk: one object the store can presign
    with Client(url=live_server.url, token=alice, retries=0) as sdk:
        sdk.create_repo(REPO)
        sdk.push(_write(tmp_path / "w", {"w.bin": data}), repo=REPO, message="w")
        assert len(sdk.file_info(REPO, "w.bin")["chunks"]) == 1
    settings.HUB_S3_PRESIGN_MIN_BYTES = 100_000
    path = hf.hf_hub_download(
        REPO, "w.bin", endpoint=live_server.url, token=alice, cache_dir=tmp_path / "c"
    )
    assert Path(path).read_bytes() == data
    hub_host = f"{httpx.URL(live_server.url).host}:{httpx.URL(live_server.url).port}"
    store = httpx.URL(settings.HUB_S3_ENDPOINT_URL)
    assert [(s[0], s[3] == hub_host, s[4]) for s in sent] == [
        ("HEAD", True, f"Bearer {alice}"),  # 302 to the store, with the cache headers
        ("GET", False, None),  # straight from the store, no hub token sent along
    ]
    assert sent[1][3] == f"{store.host}:{store.port}"


class _CuttingProxy(ThreadingHTTPServer):
    """Forwards to the hub; the first whole-file GET of ``target`` is cut after ``cut``
    bytes, as a dropped connection would cut it. Records what it forwarded."""

    daemon_threads = True

    def __init__(self, upstream: str, target: str, cut: int):
        self.upstream, self.target, self.cut, self.done = upstream, target, cut, False
        self.log: list[tuple[str, str, str | None, int]] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        srv: _CuttingProxy = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "connection"}}
        with httpx.Client(timeout=60) as up:
            r = up.request(self.command, srv.upstream + self.path, headers=headers, content=body)
        rng = self.headers.get("Range")
        srv.log.append((self.command, self.path, rng, r.status_code))
        self.send_response(r.status_code)
        for k, v in r.headers.multi_items():
            if k.lower() not in {"connection", "transfer-encoding", "content-encoding"}:
                self.send_header(k, v)
        self.end_headers()
        cut = self.command == "GET" and self.path.endswith(srv.target) and not rng and not srv.done
        if self.command == "HEAD":
            return
        if cut:
            srv.done = True
            self.wfile.write(r.content[: srv.cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(r.content)

    do_GET = do_HEAD = do_POST = _forward


def test_an_interrupted_download_resumes_with_a_range_request(hub, monkeypatch):
    big = os.urandom(1_000_000)
    with Client(url=hub["url"], token=hub["alice"], retries=0) as sdk:
        sdk.push(_write(hub["cache"].parent / "big", {"big.bin": big}), repo=REPO, message="big")
    # The client keeps what it received in pieces of this size: small pieces, so the bytes
    # before the cut are kept and resumed from (its default is 10 MB).
    monkeypatch.setattr(hf.constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    proxy = _CuttingProxy(hub["url"], "/big.bin", cut=300_000)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        path = hf.hf_hub_download(
            REPO,
            "big.bin",
            endpoint=f"http://127.0.0.1:{proxy.server_address[1]}",
            token=hub["alice"],
            cache_dir=hub["cache"],
        )
    finally:
        proxy.shutdown()
    assert Path(path).read_bytes() == big
    gets = [(rng, status) for method, p, rng, status in proxy.log if method == "GET"]
    assert gets[0] == (None, 200)  # the cut one
    resumed_from = 4 * 64 * 1024  # the whole pieces received before the cut
    assert gets[1] == (f"bytes={resumed_from}-", 206)
    assert len(gets) == 2


def test_ranges_are_served_as_206_and_unsatisfiable_ones_as_416(hub):
    url = f"{hub['url']}/{REPO}/resolve/main/config.json"
    auth = {"Authorization": f"Bearer {hub['alice']}"}
    config = hub["files"]["main"]["config.json"]
    r = httpx.get(url, headers={**auth, "Range": "bytes=1-5"})
    assert r.status_code == 206 and r.content == config[1:6]
    assert r.headers["Content-Range"] == f"bytes 1-5/{len(config)}"
    assert r.headers["X-Repo-Commit"] == hub["sha"]["main"]
    r = httpx.get(url, headers={**auth, "Range": "bytes=999-"})
    assert r.status_code == 416


# --- errors --------------------------------------------------------------------------------


def test_missing_repo_revision_and_file_raise_the_clients_own_exceptions(hub):
    with pytest.raises(hf_errors.RepositoryNotFoundError):
        hf.hf_hub_download(
            "alice/nope",
            "config.json",
            endpoint=hub["url"],
            token=hub["alice"],
            cache_dir=hub["cache"],
        )
    with pytest.raises(hf_errors.RepositoryNotFoundError):
        hub["api"].model_info("alice/nope")
    with pytest.raises(hf_errors.RevisionNotFoundError):
        _download(hub, "config.json", "no-such-branch")
    with pytest.raises(hf_errors.RevisionNotFoundError):
        hub["api"].list_repo_commits(REPO, revision="no-such-branch")
    with pytest.raises(hf_errors.RevisionNotFoundError):
        hf.snapshot_download(
            REPO,
            revision="no-such-branch",
            endpoint=hub["url"],
            token=hub["alice"],
            cache_dir=hub["cache"],
        )
    with pytest.raises(hf_errors.EntryNotFoundError):
        _download(hub, "no-such-file.json", "main")
    with pytest.raises(hf_errors.RepositoryNotFoundError):
        hub["api"].dataset_info(REPO)  # model repos only
    # the miss is cached under the commit the branch resolved to
    assert (
        hub["cache"] / "models--alice--moe/.no_exist" / hub["sha"]["main"] / "no-such-file.json"
    ).exists()


def test_a_private_repo_is_not_found_for_other_users_and_anonymous_callers(hub):
    for token in (hub["bob"], False):
        with pytest.raises(hf_errors.RepositoryNotFoundError):
            hf.hf_hub_download(
                "alice/secret", "w.bin", endpoint=hub["url"], token=token, cache_dir=hub["cache"]
            )
        with pytest.raises(hf_errors.RepositoryNotFoundError):
            hf.HfApi(endpoint=hub["url"], token=token).list_repo_refs("alice/secret")
        with pytest.raises(hf_errors.RepositoryNotFoundError):
            hf.HfApi(endpoint=hub["url"], token=token).upload_file(
                path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/secret"
            )
    path = hf.hf_hub_download(
        "alice/secret", "w.bin", endpoint=hub["url"], token=hub["alice"], cache_dir=hub["cache"]
    )
    assert Path(path).read_bytes() == b"secret"


def test_an_invalid_token_is_refused_as_a_bad_credential_not_a_missing_repo(hub):
    api = hf.HfApi(endpoint=hub["url"], token="hub_not-a-real-token")
    with pytest.raises(hf_errors.HfHubHTTPError) as e:
        api.model_info(REPO)
    assert e.value.response.status_code == 401
    assert not isinstance(e.value, hf_errors.RepositoryNotFoundError)


# --- repo info, refs, history --------------------------------------------------------------


def test_model_info_files_refs_and_commits_equal_the_hubs(hub, monkeypatch):
    from hub.compat.hf import api as hf_views

    # small pages, so the client follows the Link headers of trees and histories
    monkeypatch.setattr(hf_views, "TREE_PAGE", 2)
    monkeypatch.setattr(hf_views, "COMMITS_PAGE", 1)
    api = hub["api"]
    with Client(url=hub["url"], token=hub["alice"], retries=0) as sdk:
        branches = {b["name"]: b["commit"] for b in sdk.list_branches(REPO)}
        tags = {t["name"]: t["commit"] for t in sdk.list_tags(REPO)}
        dev_files = sdk.list_files(REPO, "dev")["files"]
        dev_log = sdk.log(REPO, "dev", limit=100)
    info = api.model_info(REPO, revision="dev", files_metadata=True)
    assert info.id == REPO and info.sha == hub["sha"]["dev"] and info.private is False
    assert {(s.rfilename, s.size, s.blob_id) for s in info.siblings} == {
        (f["path"], f["size"], f["oid"]) for f in dev_files
    }
    main = api.model_info(REPO)
    assert main.sha == hub["sha"]["main"]
    assert main.card_data.license == "apache-2.0" and main.tags == ["moe"]  # README front matter
    assert api.file_exists(REPO, "sub/notes.txt", revision="dev")
    assert not api.file_exists(REPO, "sub/notes.txt", revision="main")
    assert api.repo_exists(REPO) and not api.repo_exists("alice/nope")
    assert api.revision_exists(REPO, "v1") and not api.revision_exists(REPO, "v9")
    assert sorted(api.list_repo_files(REPO, revision="dev")) == sorted(f["path"] for f in dev_files)
    assert sorted(api.list_repo_files(REPO, revision="v1")) == sorted(hub["files"]["main"])
    refs = api.list_repo_refs(REPO)
    assert {r.name: r.target_commit for r in refs.branches} == branches
    assert {r.ref for r in refs.branches} == {f"refs/heads/{b}" for b in branches}
    assert {r.name: r.target_commit for r in refs.tags} == tags == {"v1": hub["sha"]["main"]}
    commits = api.list_repo_commits(REPO, revision="dev")
    assert [c.commit_id for c in commits] == [c["sha"] for c in dev_log]
    assert [c.title for c in commits] == [c["message"].split("\n")[0] for c in dev_log]
    assert commits[1].message == "from seed 0" and commits[0].authors == ["alice"]
    top = api.list_repo_tree(REPO, revision="dev")
    assert {(type(e).__name__, e.path) for e in top} == {
        ("RepoFolder", "sub"),
        ("RepoFile", "model.safetensors"),
        ("RepoFile", "config.json"),
        ("RepoFile", "README.md"),
    }


def test_a_slash_in_a_revision_reaches_the_right_ref(hub, client):
    with Client(url=hub["url"], token=hub["alice"], retries=0) as sdk:
        sdk.create_branch(REPO, "feat/x", from_ref="dev")
    # the live server decodes the path whole: the longest existing ref wins
    path = _download(hub, "sub/notes.txt", "feat/x")
    assert Path(path).read_bytes() == b"dev notes\n"
    assert [c.commit_id for c in hub["api"].list_repo_commits(REPO, revision="feat/x")][0] == hub[
        "sha"
    ]["dev"]
    # a server that passes the raw URI (gunicorn's RAW_URI): the quoted segment is the revision
    r = client.head(
        f"/{REPO}/resolve/feat/x/sub/notes.txt",
        HTTP_AUTHORIZATION=f"Bearer {hub['alice']}",
        REQUEST_URI=f"/{REPO}/resolve/feat%2Fx/sub/notes.txt",
    )
    assert r.status_code == 200 and r["X-Repo-Commit"] == hub["sha"]["dev"]


# --- uploads -------------------------------------------------------------------------------


def test_upload_folder_and_create_commit_make_hub_commits(hub, tmp_path):
    api = hub["api"]
    new_weights = _weights(7)
    folder = _write(
        tmp_path / "up",
        {
            "model.safetensors": new_weights,
            "config.json": b'{"n_experts": 8}',
            "README.md": README,
            "extra/a.txt": b"a",
        },
    )
    info = api.upload_folder(folder_path=folder, repo_id=REPO, commit_message="from hf")
    with Client(url=hub["url"], token=hub["alice"], retries=0) as sdk:
        head = sdk.branch_info(REPO, "main")["commit"]
        assert info.oid == head
        assert sdk.commit_info(REPO, head)["message"] == "from hf"
        pulled = sdk.pull(REPO, tmp_path / "pulled", ref="main")
        assert pulled["commit"] == head
        assert (tmp_path / "pulled/model.safetensors").read_bytes() == new_weights
        assert (tmp_path / "pulled/extra/a.txt").read_bytes() == b"a"
        # tensor-aware chunking, as if pushed by the SDK: the safetensors file has its tensors
        assert set(sdk.file_info(REPO, "model.safetensors")["tensors"]) == {
            f"layers.{i}.w" for i in range(4)
        }
    # unchanged files are dropped client-side (the preupload returns their git ids)
    same = api.upload_folder(folder_path=folder, repo_id=REPO, commit_message="again")
    assert same.oid == head
    ops = [
        hf.CommitOperationDelete(path_in_repo="extra/"),
        hf.CommitOperationAdd(path_in_repo="notes/b.txt", path_or_fileobj=b"b"),
    ]
    c = api.create_commit(REPO, ops, commit_message="tidy", parent_commit=head)
    assert sorted(api.list_repo_files(REPO, revision=c.oid)) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "notes/b.txt",
    ]
    assert Path(_download(hub, "notes/b.txt", c.oid)).read_bytes() == b"b"
    # a stale parent is a conflict, and nothing moves
    with pytest.raises(hf_errors.HfHubHTTPError) as e:
        api.create_commit(
            REPO,
            [hf.CommitOperationAdd(path_in_repo="c.txt", path_or_fileobj=b"c")],
            commit_message="late",
            parent_commit=head,
        )
    assert e.value.response.status_code == 409
    assert api.model_info(REPO).sha == c.oid
    empty = api.upload_file(path_or_fileobj=b"", path_in_repo="empty.txt", repo_id=REPO)
    assert Path(_download(hub, "empty.txt", empty.oid)).read_bytes() == b""
    # to another branch
    d = api.upload_file(
        path_or_fileobj=b"on dev", path_in_repo="d.txt", repo_id=REPO, revision="dev"
    )
    assert Path(_download(hub, "d.txt", "dev")).read_bytes() == b"on dev" and d.oid != empty.oid


def test_writes_need_the_write_role_a_write_token_a_branch_and_a_valid_path(hub):
    bob = hf.HfApi(endpoint=hub["url"], token=hub["bob"])
    with pytest.raises(hf_errors.HfHubHTTPError) as e:
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO)
    assert e.value.response.status_code == 403
    from hub.accounts import selectors, services

    alice = selectors.user_get(username="alice")
    _, read_only = services.token_create(user=alice, name="ro", scope="read")
    ro = hf.HfApi(endpoint=hub["url"], token=read_only)
    assert ro.model_info(REPO).sha == hub["sha"]["main"]  # reads work
    with pytest.raises(hf_errors.HfHubHTTPError) as e:
        ro.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO)
    assert e.value.response.status_code == 403
    with pytest.raises(hf_errors.RevisionNotFoundError):
        hub["api"].upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO, revision="v1"
        )
    # the hub's path rule (NFC names): the client lets it through, the hub refuses it whole
    with pytest.raises(hf_errors.BadRequestError) as e:
        hub["api"].upload_folder(
            folder_path=_write(
                hub["cache"].parent / "bad", {"ok.txt": b"ok", "cafe\u0301.txt": b"x"}
            ),
            repo_id=REPO,
        )
    assert "NFC" in str(e.value)
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):  # validate-yaml
        hub["api"].upload_file(
            path_or_fileobj=b"---\nlicense: [unclosed\n---\n# x\n",
            path_in_repo="README.md",
            repo_id=REPO,
        )
    assert hub["api"].model_info(REPO).sha == hub["sha"]["main"]


def test_create_repo_branch_and_tag_and_whoami_through_the_client(hub, tmp_path):
    api = hub["api"]
    me = api.whoami()
    assert me["name"] == "alice" and me["auth"]["accessToken"]["role"] == "write"
    url = api.create_repo("alice/fresh", private=True)
    assert url.repo_id == "alice/fresh"
    api.create_repo("alice/fresh", exist_ok=True)  # 409, accepted
    with pytest.raises(hf_errors.HfHubHTTPError) as e:
        api.create_repo("alice/fresh")
    assert e.value.response.status_code == 409
    with Client(url=hub["url"], token=hub["alice"], retries=0) as sdk:
        info = sdk.repo_info("alice/fresh")
        assert info["private"] is True
    with pytest.raises(hf_errors.HfHubHTTPError) as e:  # bob may not create in alice's namespace
        hf.HfApi(endpoint=hub["url"], token=hub["bob"]).create_repo("alice/bobs")
    assert e.value.response.status_code == 403
    api.create_branch(REPO, branch="exp", revision="dev")
    api.create_branch(REPO, branch="exp", exist_ok=True)
    api.create_tag(REPO, tag="v2", revision="dev", tag_message="second")
    refs = api.list_repo_refs(REPO)
    assert {r.name: r.target_commit for r in refs.branches}["exp"] == hub["sha"]["dev"]
    assert {r.name: r.target_commit for r in refs.tags}["v2"] == hub["sha"]["dev"]
    with pytest.raises(hf_errors.HfHubHTTPError) as e:  # tags never move
        api.create_tag(REPO, tag="v2", revision="main")
    assert e.value.response.status_code == 409
    api.delete_branch(REPO, branch="exp")
    api.delete_tag(REPO, tag="v2")
    refs = api.list_repo_refs(REPO)
    assert "exp" not in {r.name for r in refs.branches} and "v2" not in {r.name for r in refs.tags}


def _commit_raw(hub, lines: list[dict] | bytes, branch: str = "main") -> httpx.Response:
    body = (
        lines
        if isinstance(lines, bytes)
        else b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    )
    return httpx.post(
        f"{hub['url']}/api/models/{REPO}/commit/{branch}",
        content=body,
        headers={"Authorization": f"Bearer {hub['alice']}", "Content-Type": "application/x-ndjson"},
    )


def test_the_upload_limits_and_malformed_commit_bodies_are_refused_whole(hub, settings):
    settings.HUB_HF_MAX_INLINE_FILE_BYTES = 1000
    with pytest.raises(hf_errors.HfHubHTTPError) as e:
        hub["api"].upload_file(path_or_fileobj=b"x" * 1001, path_in_repo="big.txt", repo_id=REPO)
    assert e.value.response.status_code == 413 and "hub push" in str(e.value)
    header = {"key": "header", "value": {"summary": "raw"}}
    ok = {"key": "file", "value": {"path": "ok.txt", "content": "b2s=", "encoding": "base64"}}
    big = {"key": "file", "value": {"path": "b.txt", "content": "eHh4" * 400, "encoding": "base64"}}
    r = _commit_raw(hub, [header, ok, big])  # past the preupload check: the line is too long
    assert r.status_code == 413 and r.headers["X-Error-Message"]
    for lines, code in (
        (b'{"key": "header", "value": {"summary": "x"}}\nnot json\n', 400),
        (
            [header, {"key": "lfsFile", "value": {"path": "w", "algo": "sha256", "oid": "0" * 64}}],
            400,
        ),
        ([ok], 400),  # no header
        ([header, {"key": "file", "value": {"path": "x.txt", "content": "%%%"}}], 400),
    ):
        r = _commit_raw(hub, lines)
        assert r.status_code == code, r.text
        assert r.json()["error"]
    assert (
        "LFS"
        in _commit_raw(hub, [header, {"key": "lfsFile", "value": {"path": "w"}}]).json()["error"]
    )
    settings.HUB_HF_MAX_COMMIT_BYTES = 100
    assert _commit_raw(hub, [header, ok, ok]).status_code == 413
    assert hub["api"].model_info(REPO).sha == hub["sha"]["main"]  # nothing landed
    settings.HUB_HF_MAX_COMMIT_BYTES = 10_000
    r = _commit_raw(hub, [header, ok])
    assert r.status_code == 200 and r.json()["commitOid"] == hub["api"].model_info(REPO).sha


# --- routes, schema, environment -----------------------------------------------------------


def test_dashboard_pages_still_served_beside_resolve(hub):
    page = httpx.get(f"{hub['url']}/{REPO}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{hub['url']}/models/{REPO}").headers["content-type"].startswith("text/html")
    f = httpx.get(f"{hub['url']}/{REPO}/resolve/main/config.json")
    assert f.status_code == 200 and f.content == b'{"n_experts": 4}'
    assert f.headers["X-Repo-Commit"] == hub["sha"]["main"]


def test_the_hf_routes_are_not_in_the_openapi_schema(hub):
    schema = httpx.get(f"{hub['url']}/api/schema", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    paths = json.loads(schema.text)["paths"] if schema.text.lstrip().startswith("{") else None
    text = schema.text
    assert "/api/v1/repos" in text
    assert "/api/models" not in text and "/resolve/" not in text and "validate-yaml" not in text
    if paths is not None:
        assert all(p.startswith("/api/v1/") for p in paths)


def test_hf_endpoint_hf_token_and_hf_home_from_the_environment(hub, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub["url"], HF_TOKEN=hub["alice"], HF_HOME=str(tmp_path / "home"))
    script = (
        "from huggingface_hub import hf_hub_download, snapshot_download\n"
        "print(hf_hub_download('alice/moe', 'config.json'))\n"
        "print(snapshot_download('alice/secret'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    config, secret = out.stdout.split()
    assert Path(config).read_bytes() == b'{"n_experts": 4}'
    assert Path(config).is_relative_to(tmp_path / "home")
    assert (Path(secret) / "w.bin").read_bytes() == b"secret"
