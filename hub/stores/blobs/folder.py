"""The folder backend: chunks under ``<root>/ab/cd/<digest>``.

Writes go to ``<root>/tmp`` (fsynced when asked) and are renamed into place only after the
bytes hashed to the claimed id; the rename is atomic, and ``os.utime`` on publish refreshes
the mtime GC's grace period looks at.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import blake3

from hub.stores.blobs.base import (
    BlobHashMismatch,
    BlobMissing,
    BlobStore,
    BlobTooLarge,
    StagedBlob,
    check_digest,
)


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


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | os.PathLike, *, fsync: bool = True):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def path(self, digest: str) -> Path:
        check_digest(digest)
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

    def sweep_staging(self, *, older_than: float) -> int:
        n = 0
        for f in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if f.stat().st_mtime < older_than:
                    f.unlink()
                    n += 1
        return n
