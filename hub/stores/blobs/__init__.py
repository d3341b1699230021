"""Blob store: content-addressed chunks, in a folder or in any S3-compatible object store.

One interface (:class:`BlobStore`, in ``base``), two backends behind one setting:

- ``HUB_BLOB_URL`` empty (the default): a folder, ``HUB_BLOB_DIR`` (``folder``).
- ``HUB_BLOB_URL=s3://bucket/prefix``: objects in that bucket under that prefix (``s3``), with
  the endpoint, credentials and region from ``HUB_S3_*`` (defaulting to the usual ``AWS_*``
  variables; see ``hub/settings.py``).

The names below are the package's public interface: import them from ``hub.stores.blobs``.
A store failure propagates as a :class:`BlobError` to the API's one exception handler.
"""

from __future__ import annotations

import threading
from urllib.parse import urlparse

from hub.stores.blobs.base import (
    BlobError,
    BlobHashMismatch,
    BlobMissing,
    BlobStore,
    BlobStoreUnavailable,
    BlobTooLarge,
    StagedBlob,
    check_digest,
)
from hub.stores.blobs.folder import LocalBlobStore

__all__ = [
    "BlobError",
    "BlobHashMismatch",
    "BlobMissing",
    "BlobStore",
    "BlobStoreUnavailable",
    "BlobTooLarge",
    "LocalBlobStore",
    "StagedBlob",
    "check_digest",
    "get_blob_store",
    "store_from_settings",
]

_lock = threading.Lock()
_store: BlobStore | None = None
_store_key: tuple | None = None


def _settings_key(s) -> tuple:
    names = (
        "HUB_BLOB_URL",
        "HUB_BLOB_DIR",
        "HUB_BLOB_FSYNC",
        "HUB_S3_ENDPOINT_URL",
        "HUB_S3_ACCESS_KEY_ID",
        "HUB_S3_SECRET_ACCESS_KEY",
        "HUB_S3_REGION",
        "HUB_S3_ADDRESSING_STYLE",
        "HUB_S3_MAX_CONNECTIONS",
        "HUB_S3_PRESIGN_MIN_BYTES",
        "HUB_S3_PRESIGN_SECONDS",
        "HUB_S3_PRESIGN_ENDPOINT_URL",
    )
    return tuple(str(getattr(s, n, "")) for n in names)


def store_from_settings(s) -> BlobStore:
    """A new store for the given settings object (``django.conf.settings``)."""
    url = s.HUB_BLOB_URL
    if not url or url.startswith("file://"):
        root = urlparse(url).path if url else s.HUB_BLOB_DIR
        return LocalBlobStore(root, fsync=s.HUB_BLOB_FSYNC)
    parsed = urlparse(url)
    if parsed.scheme != "s3":
        raise ValueError(f"HUB_BLOB_URL must be empty, file:///path or s3://bucket/prefix: {url}")
    from hub.stores.blobs.s3 import S3BlobStore  # boto3 only where S3 is configured

    return S3BlobStore(
        parsed.netloc,
        parsed.path,
        endpoint_url=s.HUB_S3_ENDPOINT_URL,
        access_key_id=s.HUB_S3_ACCESS_KEY_ID,
        secret_access_key=s.HUB_S3_SECRET_ACCESS_KEY,
        region=s.HUB_S3_REGION,
        addressing_style=s.HUB_S3_ADDRESSING_STYLE,
        max_connections=s.HUB_S3_MAX_CONNECTIONS,
        presign_min_bytes=s.HUB_S3_PRESIGN_MIN_BYTES,
        presign_seconds=s.HUB_S3_PRESIGN_SECONDS,
        presign_endpoint_url=s.HUB_S3_PRESIGN_ENDPOINT_URL,
    )


def get_blob_store() -> BlobStore:
    """The configured blob store (one per process; rebuilt when the settings change, as
    tests do)."""
    global _store, _store_key
    from django.conf import settings

    key = _settings_key(settings)
    with _lock:
        if _store is None or _store_key != key:
            _store, _store_key = store_from_settings(settings), key
        return _store
