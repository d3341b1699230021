"""GC against uploads in flight: an upload of a digest GC is collecting must never end with a
Chunk row whose blob file GC then deletes.

The interleavings are made deterministic by running the "concurrent" upload at the exact
point where it used to lose its bytes: right after GC's sweep transaction commits (through
``transaction.on_commit`` of the Chunk row deletion), and in the middle of the orphan scan.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models.signals import post_delete
from django.utils import timezone

from hub.registry import gc, services
from hub.registry.models import Chunk
from hub.shared.chunking import chunk_hash
from hub.stores.blobs import get_blob_store

pytestmark = [pytest.mark.integration, pytest.mark.pg]


def _aged_chunk(data: bytes, blob_backend) -> str:
    """An unreferenced chunk whose row and file are both older than any grace period."""
    digest = chunk_hash(data)
    services.chunk_upload(digest=digest, parts=[data])
    Chunk.objects.filter(hash=digest).update(touched_at=timezone.now() - timedelta(hours=1))
    blob_backend.age(digest, 3600)
    return digest


@pytest.mark.django_db(transaction=True)
def test_upload_landing_after_gc_sweep_commits_keeps_its_bytes(blob_backend):
    data = b"re-uploaded while GC runs" * 100
    digest = _aged_chunk(data, blob_backend)
    fired = []

    def upload_again_after_commit(sender, instance, **kwargs):
        if instance.hash == digest and not fired:
            fired.append(True)
            # The same chunk arrives again the moment GC's row deletion is committed.
            transaction.on_commit(lambda: services.chunk_upload(digest=digest, parts=[data]))

    post_delete.connect(upload_again_after_commit, sender=Chunk)
    try:
        report = gc.gc(dry_run=False, grace_seconds=60)
    finally:
        post_delete.disconnect(upload_again_after_commit, sender=Chunk)
    assert fired, "the interleaving did not happen"
    assert report["chunks"] == 1  # GC did collect the row...
    assert report["freed_bytes"] == 0  # ...but left the file the new upload owns
    assert Chunk.objects.filter(hash=digest).exists()
    assert get_blob_store().get(digest) == data
    # a commit can reference it and it reads back
    assert services.chunks_missing(hashes=[digest]) == []


@pytest.mark.django_db(transaction=True)
def test_upload_of_an_orphan_during_the_scan_keeps_its_bytes(blob_backend, monkeypatch):
    """A blob file without a row (a crashed upload) is an orphan; if that digest is uploaded
    while GC scans the blob folder, GC must not delete it afterwards."""
    data = b"orphan revived" * 100
    digest = chunk_hash(data)
    blobs = get_blob_store()
    blobs.put(digest, [data], max_size=1 << 20)  # file but no row: a crash between the two
    blob_backend.age(digest, 3600)
    original = type(blobs).iter_digests

    def scan_then_upload(self):
        yield from original(self)
        services.chunk_upload(digest=digest, parts=[data])  # lands after the scan saw the orphan

    monkeypatch.setattr(type(blobs), "iter_digests", scan_then_upload)
    report = gc.gc(dry_run=False, grace_seconds=60)
    assert report["orphan_blobs"] == 0 and report["freed_bytes"] == 0
    assert Chunk.objects.filter(hash=digest).exists()
    assert blobs.get(digest) == data


@pytest.mark.django_db(transaction=True)
def test_gc_still_frees_dead_chunks_and_orphans(blob_backend):
    digest = _aged_chunk(b"dead" * 1000, blob_backend)
    blobs = get_blob_store()
    orphan = b"orphan" * 100
    odigest = chunk_hash(orphan)
    blobs.put(odigest, [orphan], max_size=1 << 20)
    blob_backend.age(odigest, 3600)
    report = gc.gc(dry_run=False, grace_seconds=60)
    assert report["chunks"] == 1 and report["orphan_blobs"] == 1
    assert report["freed_bytes"] == 4000 + len(orphan)
    assert not blobs.has(digest) and not blobs.has(odigest)
    assert not Chunk.objects.filter(hash=digest).exists()


@pytest.mark.django_db(transaction=True)
def test_failed_upload_leaves_no_staged_bytes(blob_backend):
    data = b"x" * 100
    with pytest.raises(Exception) as e:
        services.chunk_upload(digest=chunk_hash(b"y" * 100), parts=[data])
    assert getattr(e.value, "code", None) == "chunk_hash_mismatch"
    assert blob_backend.staged() == []
    assert not Chunk.objects.exists()
