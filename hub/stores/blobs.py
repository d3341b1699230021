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


class StagedBlob(abc.ABC):
    """Verified bytes waiting to be published under their digest. ``publish`` is quick (a
    rename), so callers can run it inside a lock that GC also takes; leaving the ``with``
    block without publishing discards the bytes."""

    def __init__(self, digest: str, size: int):
        self.digest, self.size = digest, size

    @abc.abstractmethod
    def publish(self) -> None: ...

    @abc.abstractmethod
    def discard(self) -> None: ...

    def __enter__(self) -> StagedBlob:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


class _LocalStaged(StagedBlob):
    def __init__(self, digest: str, size: int, tmp: Path, target: Path):
        super().__init__(digest, size)
        self.tmp, self.target = tmp, target

    def publish(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.target)
        os.utime(self.target)  # a re-upload refreshes the mtime GC's grace period looks at

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


class BlobStore(abc.ABC):
    @abc.abstractmethod
    def has(self, digest: str) -> bool: ...

    @abc.abstractmethod
    def stage(self, digest: str, parts: Iterable[bytes], *, max_size: int) -> StagedBlob:
        """Receive and verify bytes that must hash to ``digest`` without making them visible
        under that name yet (the slow part of an upload: no lock is held)."""

    def put(self, digest: str, parts: Iterable[bytes], *, max_size: int) -> int:
        """Store bytes that must hash to ``digest``; returns the size. Idempotent."""
        with self.stage(digest, parts, max_size=max_size) as staged:
            staged.publish()
            return staged.size

    @abc.abstractmethod
    def get(self, digest: str, *, verify: bool = True) -> bytes: ...

    @abc.abstractmethod
    def read_range(self, digest: str, offset: int, size: int) -> bytes: ...

    @abc.abstractmethod
    def mtime(self, digest: str) -> float | None:
        """When the chunk was last written (epoch seconds), or None if absent."""

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

    def stage(self, digest: str, parts: Iterable[bytes], *, max_size: int) -> StagedBlob:
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
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return _LocalStaged(digest, size, tmp, target)

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

    def mtime(self, digest: str) -> float | None:
        try:
            return self.path(digest).stat().st_mtime
        except FileNotFoundError:
            return None

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
