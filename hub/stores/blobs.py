"""Blob store: content-addressed chunks on a filesystem.

Layout: ``<root>/ab/cd/<64-hex blake3>``; writes go to ``<root>/tmp`` and are renamed into
place only after the bytes hashed to the claimed id, so a reader never sees a partial or
mismatched chunk, and a failed upload leaves nothing behind. The interface is small so an
S3-compatible backend can implement it later.
"""

from __future__ import annotations

import abc
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import blake3


class BlobError(Exception):
    pass


class BlobHashMismatch(BlobError):
    def __init__(self, expected: str, actual: str):
        super().__init__(f"bytes hash to {actual}, not the claimed {expected}")
        self.expected, self.actual = expected, actual


class BlobTooLarge(BlobError):
    pass


class BlobMissing(BlobError):
    pass


class BlobStore(abc.ABC):
    @abc.abstractmethod
    def has(self, digest: str) -> bool: ...

    @abc.abstractmethod
    def put(self, digest: str, parts: Iterable[bytes], *, max_size: int) -> int:
        """Store bytes that must hash to ``digest``; returns the size. Idempotent."""

    @abc.abstractmethod
    def get(self, digest: str, *, verify: bool = True) -> bytes: ...

    @abc.abstractmethod
    def read_range(self, digest: str, offset: int, size: int) -> bytes: ...

    @abc.abstractmethod
    def delete(self, digest: str) -> int:
        """Remove a chunk; returns bytes freed (0 if absent)."""

    @abc.abstractmethod
    def iter_digests(self) -> Iterator[tuple[str, int, float]]:
        """(digest, size, mtime) of every stored chunk."""


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | os.PathLike, *, fsync: bool = True):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise BlobError(f"not a chunk id: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def put(self, digest: str, parts: Iterable[bytes], *, max_size: int) -> int:
        target = self.path(digest)
        hasher = blake3.blake3()
        size = 0
        tmp = self.tmp / f"{digest}.{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb", buffering=0) as f:
                for part in parts:
                    size += len(part)
                    if size > max_size:
                        raise BlobTooLarge(f"chunk exceeds {max_size} bytes")
                    hasher.update(part)
                    f.write(part)
                if self.fsync:
                    os.fsync(f.fileno())
            actual = hasher.hexdigest()
            if actual != digest:
                raise BlobHashMismatch(digest, actual)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
            os.utime(target)  # a re-upload refreshes the mtime GC's grace period looks at
            return size
        finally:
            if tmp.exists():
                tmp.unlink()

    def get(self, digest: str, *, verify: bool = True) -> bytes:
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError as e:
            raise BlobMissing(digest) from e
        if verify:
            actual = blake3.blake3(data).hexdigest()
            if actual != digest:
                raise BlobHashMismatch(digest, actual)
        return data

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                f.seek(offset)
                return f.read(size)
        except FileNotFoundError as e:
            raise BlobMissing(digest) from e

    def delete(self, digest: str) -> int:
        p = self.path(digest)
        try:
            size = p.stat().st_size
            p.unlink()
            return size
        except FileNotFoundError:
            return 0

    def iter_digests(self) -> Iterator[tuple[str, int, float]]:
        for d1 in self.root.iterdir():
            if len(d1.name) != 2 or not d1.is_dir():
                continue
            for d2 in d1.iterdir():
                for f in d2.iterdir():
                    st = f.stat()
                    yield f.name, st.st_size, st.st_mtime


_store: BlobStore | None = None


def get_blob_store() -> BlobStore:
    """The configured blob store (one per process)."""
    global _store
    from django.conf import settings

    if _store is None or getattr(_store, "root", None) != Path(settings.HUB_BLOB_DIR):
        _store = LocalBlobStore(settings.HUB_BLOB_DIR, fsync=settings.HUB_BLOB_FSYNC)
    return _store
