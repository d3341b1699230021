"""The blob store's interface: content-addressed chunks named by their 64-hex BLAKE3 hash.

Every backend keeps the same promises, which the registry (uploads, downloads, GC) relies on:

- a chunk becomes visible under its digest only after its bytes hashed to that digest
  (:meth:`BlobStore.stage` verifies, :meth:`StagedBlob.publish` makes visible), so a reader
  never sees a partial or mismatched chunk and a failed upload leaves nothing behind;
- publishing an already stored digest is harmless (same bytes) and refreshes its
  :meth:`BlobStore.mtime`, the time GC's grace period is measured from;
- :meth:`BlobStore.mtime` and :meth:`BlobStore.delete` are what GC re-checks and calls under
  its barrier, one digest at a time.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator


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


class BlobStoreUnavailable(BlobError):
    """The store did not answer (an object store down or refusing us): retry later."""


_HEX = frozenset("0123456789abcdef")


def check_digest(digest: str) -> str:
    """A chunk id is 64 lowercase hex digits; anything else never reaches a path or a key."""
    if len(digest) != 64 or not _HEX.issuperset(digest):
        raise BlobError(f"not a chunk id: {digest!r}")
    return digest


class StagedBlob(abc.ABC):
    """Verified bytes waiting to be published under their digest. ``publish`` is quick (a
    rename, or a server-side copy), so callers can run it inside a lock that GC also takes;
    leaving the ``with`` block without publishing discards the bytes."""

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
        """(digest, size, mtime) of every stored chunk. The mtime here may be coarser than
        :meth:`mtime`'s (an object listing); GC re-checks with :meth:`mtime` before deleting."""

    @abc.abstractmethod
    def sweep_staging(self, *, older_than: float) -> int:
        """Remove staged bytes a crashed upload left behind, written before ``older_than``
        (epoch seconds); returns how many went."""

    def presigned_url(self, digest: str, *, filename: str | None = None) -> str | None:
        """A URL that serves the chunk's bytes without the hub, or None when the backend has
        no such thing (a folder) or it is switched off."""
        return None
