"""Shared fixtures.

Service fixtures (ClickHouse server, the Elasticsearch-compatible server) live in
tests/fixtures_services.py and start real processes on free loopback ports. The hub's data
dir for the whole session is a fresh temporary folder, set before Django reads settings
(``tests/pytest_env.py``, loaded with ``-p``).
"""

from __future__ import annotations

import os
import time

import pytest

pytest_plugins = ["tests.fixtures_services"]


# ``HUB_TEST_BLOB_BACKEND=s3`` runs the tests that use ``blob_dir`` on SeaweedFS's S3 API
# instead of a folder (``make test`` runs the registry suite a second time so).
BLOB_BACKEND = os.environ.get("HUB_TEST_BLOB_BACKEND", "folder")


@pytest.fixture
def blob_dir(settings, tmp_path, request):
    """Each test gets its own blob store: a folder, or a fresh prefix on SeaweedFS."""
    settings.HUB_BLOB_DIR = tmp_path / "blobs"
    settings.HUB_BLOB_URL = ""
    if BLOB_BACKEND == "s3":
        request.getfixturevalue("s3_blob_store")
    elif BLOB_BACKEND != "folder":
        raise ValueError(f"HUB_TEST_BLOB_BACKEND must be folder or s3, not {BLOB_BACKEND!r}")
    return settings.HUB_BLOB_DIR


class BlobBackend:
    """Reach behind the blob interface, as a disk fault or a crash would: the same four moves
    on a folder and on an S3 store."""

    def __init__(self, store):
        self.store = store

    @property
    def is_s3(self) -> bool:
        return hasattr(self.store, "bucket")

    def corrupt(self, digest: str) -> None:
        """Overwrite the chunk's bytes in place (same size)."""
        size = len(self.store.get(digest, verify=False))
        if self.is_s3:
            s = self.store
            s.client.put_object(Bucket=s.bucket, Key=s.key(digest), Body=b"y" * size)
        else:
            self.store.path(digest).write_bytes(b"y" * size)

    def remove(self, digest: str) -> None:
        if self.is_s3:
            self.store.client.delete_object(Bucket=self.store.bucket, Key=self.store.key(digest))
        else:
            self.store.path(digest).unlink()

    def age(self, digest: str, seconds: float = 3600) -> None:
        """Make the chunk look last written ``seconds`` ago."""
        old = time.time() - seconds
        if self.is_s3:
            from hub.stores.blobs.s3 import MTIME_META

            s = self.store
            s.client.copy_object(
                Bucket=s.bucket,
                Key=s.key(digest),
                CopySource={"Bucket": s.bucket, "Key": s.key(digest)},
                MetadataDirective="REPLACE",
                Metadata={MTIME_META: f"{old:.6f}"},
            )
        else:
            os.utime(self.store.path(digest), (old, old))

    def staged(self) -> list[str]:
        """Staged (not yet published) uploads."""
        if self.is_s3:
            return [o["Key"] for o in self.store._list(self.store.staging_prefix)]
        return [p.name for p in self.store.tmp.iterdir()]


@pytest.fixture
def blob_backend(blob_dir) -> BlobBackend:
    from hub.stores.blobs import get_blob_store

    return BlobBackend(get_blob_store())


@pytest.fixture
def make_user(db):
    from hub.accounts import services

    def make(username: str, *, admin: bool = False, scope: str = "write"):
        user = services.user_create(username=username, is_staff=admin)
        _, token = services.token_create(user=user, name="test", scope=scope)
        return user, token

    return make


@pytest.fixture
def api(make_user, blob_dir):
    """(client for alice, alice) — alice is a plain user with a write token."""
    from rest_framework.test import APIClient

    user, token = make_user("alice")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client, user


def client_for(token: str | None):
    from rest_framework.test import APIClient

    c = APIClient()
    if token:
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return c
