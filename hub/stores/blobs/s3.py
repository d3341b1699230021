"""The S3 backend: chunks as objects of any S3-compatible store (AWS S3, SeaweedFS, MinIO...).

Keys mirror the folder layout under a prefix, ``<prefix>ab/cd/<digest>``, so a blob folder
copied to ``s3://bucket/prefix/`` (``tmp/`` left out) is a valid store as it is.

- **Verify before visible.** :meth:`S3BlobStore.stage` hashes the request body as it spools it
  (memory, then a local temporary file past ``spool_bytes``) and uploads it to a staging key
  ``<prefix>tmp/<digest>.<random>`` only once the bytes hashed to the digest; publishing is a
  server-side copy onto the digest's key (atomic: readers see the old object or the new one),
  then the staging object goes. The upload carries botocore's checksum of the spooled bytes,
  so the store refuses bytes damaged on the way.
- **Idempotent by hash.** The key is the content hash, so publishing a digest that is already
  stored rewrites identical bytes: harmless, and it refreshes the chunk's time.
- **GC's clock.** Publishing stamps the object with ``x-amz-meta-hub-mtime`` (the hub's clock,
  the clock the grace cutoff is computed with, so skew between hub and store does not count);
  :meth:`S3BlobStore.mtime` reads it with a HEAD (an object without it falls back to
  ``LastModified``). GC re-checks that time, and that no Chunk row came back, under its
  barrier before each delete, exactly as with the folder's mtime.
- **Downloads** read whole chunks (each is verified before a byte is sent) or ``Range``s of
  them; :meth:`S3BlobStore.presigned_url` hands out time-limited GET URLs when enabled.

Only this module imports boto3.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator

import blake3
import boto3
import botocore.exceptions
from botocore.config import Config

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

MTIME_META = "hub-mtime"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def _code(e: botocore.exceptions.ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _unavailable(what: str):
    """Every store failure other than "no such key" leaves as BlobStoreUnavailable."""
    try:
        yield
    except botocore.exceptions.ClientError as e:
        raise BlobStoreUnavailable(f"S3 {what}: {_code(e)} {e}") from e
    except botocore.exceptions.BotoCoreError as e:
        raise BlobStoreUnavailable(f"S3 {what}: {e}") from e


class _S3Staged(StagedBlob):
    def __init__(self, store: S3BlobStore, digest: str, size: int, staging_key: str):
        super().__init__(digest, size)
        self.store, self.staging_key = store, staging_key
        self._gone = False

    def publish(self) -> None:
        s = self.store
        with _unavailable(f"publish {self.digest}"):
            s.client.copy_object(
                Bucket=s.bucket,
                Key=s.key(self.digest),
                CopySource={"Bucket": s.bucket, "Key": self.staging_key},
                MetadataDirective="REPLACE",
                Metadata={MTIME_META: f"{time.time():.6f}"},
                ContentType="application/octet-stream",
            )
        self.discard()

    def discard(self) -> None:
        if not self._gone:
            self._gone = True
            with contextlib.suppress(botocore.exceptions.BotoCoreError, BlobStoreUnavailable):
                with _unavailable("discard"):
                    self.store.client.delete_object(Bucket=self.store.bucket, Key=self.staging_key)


class S3BlobStore(BlobStore):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
        addressing_style: str = "path",
        max_connections: int = 32,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        spool_bytes: int = 8 * 1024 * 1024,
        presign_min_bytes: int = 0,
        presign_seconds: int = 300,
        presign_endpoint_url: str | None = None,
    ):
        if not bucket:
            raise ValueError("an S3 blob store needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.spool_bytes = spool_bytes
        self.presign_min_bytes, self.presign_seconds = presign_min_bytes, presign_seconds
        config = Config(
            region_name=region or "us-east-1",
            max_pool_connections=max_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            signature_version="s3v4",  # SigV2 presigned URLs break with response-* params
            s3={"addressing_style": addressing_style},
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
        )
        self.client = session.client("s3", endpoint_url=endpoint_url or None, config=config)
        # Presigned URLs are computed locally; they may name the endpoint as clients see it.
        self._presigner = (
            session.client("s3", endpoint_url=presign_endpoint_url, config=config)
            if presign_endpoint_url
            else self.client
        )

    # --- keys ------------------------------------------------------------------------------

    def key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.prefix}{digest[:2]}/{digest[2:4]}/{digest}"

    @property
    def staging_prefix(self) -> str:
        return f"{self.prefix}tmp/"

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (deployments usually provision it)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as e:
            if _code(e) not in _NOT_FOUND | {"NoSuchBucket"}:
                raise BlobStoreUnavailable(f"S3 bucket {self.bucket}: {_code(e)}") from e
            with _unavailable("create bucket"):
                self.client.create_bucket(Bucket=self.bucket)

    def _head(self, digest: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
        except botocore.exceptions.ClientError as e:
            if _code(e) in _NOT_FOUND:
                return None
            raise BlobStoreUnavailable(f"S3 head {digest}: {_code(e)}") from e
        except botocore.exceptions.BotoCoreError as e:
            raise BlobStoreUnavailable(f"S3 head {digest}: {e}") from e

    # --- the interface ---------------------------------------------------------------------

    def has(self, digest: str) -> bool:
        return self._head(digest) is not None

    def stage(self, digest: str, parts: Iterable[bytes], *, max_size: int) -> StagedBlob:
        check_digest(digest)
        hasher = blake3.blake3()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=self.spool_bytes) as spool:
            for part in parts:
                size += len(part)
                if size > max_size:
                    raise BlobTooLarge(f"chunk exceeds {max_size} bytes")
                hasher.update(part)
                spool.write(part)
            actual = hasher.hexdigest()
            if actual != digest:
                raise BlobHashMismatch(digest, actual)
            spool.seek(0)
            staging_key = f"{self.staging_prefix}{digest}.{uuid.uuid4().hex}"
            with _unavailable(f"stage {digest}"):
                self.client.put_object(
                    Bucket=self.bucket, Key=staging_key, Body=spool, ContentLength=size
                )
        return _S3Staged(self, digest, size, staging_key)

    def get(self, digest: str, *, verify: bool = True) -> bytes:
        data = self._get(digest)
        if verify:
            actual = blake3.blake3(data).hexdigest()
            if actual != digest:
                raise BlobHashMismatch(digest, actual)
        return data

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        return self._get(digest, Range=f"bytes={offset}-{offset + size - 1}")

    def _get(self, digest: str, **kw) -> bytes:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.key(digest), **kw)
            return resp["Body"].read()
        except botocore.exceptions.ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise BlobMissing(digest) from e
            if _code(e) == "InvalidRange":  # a range past the end reads nothing, as a file
                return b""
            raise BlobStoreUnavailable(f"S3 get {digest}: {_code(e)}") from e
        except botocore.exceptions.BotoCoreError as e:
            raise BlobStoreUnavailable(f"S3 get {digest}: {e}") from e

    def mtime(self, digest: str) -> float | None:
        head = self._head(digest)
        if head is None:
            return None
        stamped = (head.get("Metadata") or {}).get(MTIME_META)
        with contextlib.suppress(ValueError, TypeError):
            return float(stamped)
        return head["LastModified"].timestamp()

    def delete(self, digest: str) -> int:
        head = self._head(digest)
        if head is None:
            return 0
        with _unavailable(f"delete {digest}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))
        return int(head["ContentLength"])

    def _list(self, prefix: str) -> Iterator[dict]:
        paginator = self.client.get_paginator("list_objects_v2")
        with _unavailable("list"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Contents", ())

    def iter_digests(self) -> Iterator[tuple[str, int, float]]:
        staging = self.staging_prefix
        for obj in self._list(self.prefix):
            key = obj["Key"]
            if key.startswith(staging):
                continue
            digest = key.rsplit("/", 1)[-1]
            if key != f"{self.prefix}{digest[:2]}/{digest[2:4]}/{digest}":
                continue  # not ours (the prefix is shared with something else)
            try:
                check_digest(digest)
            except BlobError:
                continue
            yield digest, int(obj["Size"]), obj["LastModified"].timestamp()

    def sweep_staging(self, *, older_than: float) -> int:
        old = [
            o["Key"]
            for o in self._list(self.staging_prefix)
            if o["LastModified"].timestamp() < older_than
        ]
        for i in range(0, len(old), 1000):  # DeleteObjects takes at most 1000 keys
            with _unavailable("sweep staging"):
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in old[i : i + 1000]], "Quiet": True},
                )
        return len(old)

    def presigned_url(self, digest: str, *, filename: str | None = None) -> str | None:
        if self.presign_min_bytes <= 0:
            return None
        params = {"Bucket": self.bucket, "Key": self.key(digest)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return self._presigner.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=self.presign_seconds
        )
