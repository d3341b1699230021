"""Reading tensors out of chunked files, and the tensor math of diff and merge.

Everything streams in blocks of at most ``BLOCK_ELEMS`` elements, so diffing or averaging
two multi-GB checkpoints needs a few tens of MB of memory, never a whole model.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hub.shared.chunking import TENSOR_PIECE, chunk_hash
from hub.shared.tensors import ITEMSIZE, decode, encode
from hub.stores.blobs import BlobStore

BLOCK_ELEMS = 4 * 1024 * 1024


@dataclass(frozen=True)
class TensorRef:
    """One tensor inside one stored file."""

    file: object  # models.FileObject (kept loose: this module has no Django import)
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @classmethod
    def of(cls, file, name: str) -> TensorRef:
        t = file.tensors[name]
        return cls(file, name, t["dtype"], tuple(t["shape"]), t["begin"], t["end"])

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        return self.nbytes // ITEMSIZE[self.dtype]

    def stat(self) -> dict:
        return {"dtype": self.dtype, "shape": list(self.shape), "bytes": self.nbytes}


class FileReader:
    """Random access to a chunked file through the blob store."""

    def __init__(self, file, blobs: BlobStore):
        self.file = file
        self.blobs = blobs
        self.starts: list[int] = []
        pos = 0
        for _, size in file.chunks:
            self.starts.append(pos)
            pos += size
        self.size = pos

    def chunk_span(self, begin: int, end: int) -> tuple[str, ...] | None:
        """Chunk hashes that cover exactly [begin, end), or None if not chunk-aligned."""
        if begin == end:
            return ()
        i = bisect.bisect_left(self.starts, begin)
        if i >= len(self.starts) or self.starts[i] != begin:
            return None
        out = []
        pos = begin
        while pos < end and i < len(self.starts):
            digest, size = self.file.chunks[i]
            out.append(digest)
            pos += size
            i += 1
        return tuple(out) if pos == end else None

    def read(self, begin: int, end: int) -> bytes:
        if begin < 0 or end > self.size or begin > end:
            raise ValueError("range outside the file")
        parts = []
        i = max(0, bisect.bisect_right(self.starts, begin) - 1)
        pos = begin
        while pos < end:
            digest, size = self.file.chunks[i]
            start = self.starts[i]
            lo, hi = pos - start, min(end, start + size) - start
            if lo == 0 and hi == size:
                parts.append(self.blobs.get(digest))
            else:
                parts.append(self.blobs.read_range(digest, lo, hi - lo))
            pos = start + hi
            i += 1
        return b"".join(parts)

    def iter_range(self, begin: int, end: int, step: int) -> Iterator[bytes]:
        for lo in range(begin, end, step):
            yield self.read(lo, min(end, lo + step))


def _reader(cache: dict, ref: TensorRef, blobs: BlobStore) -> FileReader:
    key = ref.file.oid
    if key not in cache:
        cache[key] = FileReader(ref.file, blobs)
    return cache[key]


def tensors_identical(
    a: TensorRef, b: TensorRef, blobs: BlobStore, cache: dict | None = None
) -> bool:
    """Same dtype, shape and bytes. Chunk-aligned tensors compare by hash, without I/O."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    cache = {} if cache is None else cache
    ra, rb = _reader(cache, a, blobs), _reader(cache, b, blobs)
    sa, sb = ra.chunk_span(a.begin, a.end), rb.chunk_span(b.begin, b.end)
    if sa is not None and sb is not None and sa == sb:
        return True
    step = BLOCK_ELEMS * ITEMSIZE[a.dtype]
    return all(
        x == y
        for x, y in zip(
            ra.iter_range(a.begin, a.end, step), rb.iter_range(b.begin, b.end, step), strict=True
        )
    )


def delta_stats(a: TensorRef, b: TensorRef, blobs: BlobStore, cache: dict | None = None) -> dict:
    """How ``b`` differs from ``a`` (same shape): ‖b−a‖₂, ‖b−a‖₂/‖a‖₂, cos(a, b).

    Accumulated in float64 over blocks: Σ(b−a)², Σa², Σb², Σab."""
    cache = {} if cache is None else cache
    ra, rb = _reader(cache, a, blobs), _reader(cache, b, blobs)
    ia, ib = ITEMSIZE[a.dtype], ITEMSIZE[b.dtype]
    d2 = aa = bb = ab = 0.0
    max_abs = 0.0
    for lo in range(0, a.numel, BLOCK_ELEMS):
        hi = min(a.numel, lo + BLOCK_ELEMS)
        x = decode(ra.read(a.begin + lo * ia, a.begin + hi * ia), a.dtype)
        y = decode(rb.read(b.begin + lo * ib, b.begin + hi * ib), b.dtype)
        d = y - x
        d2 += float(np.dot(d, d))
        aa += float(np.dot(x, x))
        bb += float(np.dot(y, y))
        ab += float(np.dot(x, y))
        if d.size:
            max_abs = max(max_abs, float(np.max(np.abs(d))))
    l2 = math.sqrt(d2)
    na, nb = math.sqrt(aa), math.sqrt(bb)
    return {
        "l2_delta": l2,
        "max_abs_delta": max_abs,
        "rel_change": (l2 / na) if na > 0 else (0.0 if l2 == 0 else math.inf),
        "cosine": max(-1.0, min(1.0, ab / (na * nb)))
        if na > 0 and nb > 0
        else (1.0 if na == nb else 0.0),
        "norm_a": na,
        "norm_b": nb,
    }


def comparable(a: TensorRef, b: TensorRef) -> bool:
    """Numeric delta stats make sense: same shape (dtypes may differ, e.g. F32 vs BF16)."""
    return a.shape == b.shape


def tensor_pieces(
    ref: TensorRef, blobs: BlobStore, cache: dict
) -> Iterator[tuple[str, int, bytes | None]]:
    """The chunks that hold ``ref`` in a new file: reused (hash, size, None) when the tensor
    is chunk-aligned in its source, else fresh (hash, size, bytes) cut every TENSOR_PIECE.

    A generator: fresh pieces are read one at a time, so a caller that stores each piece
    before asking for the next holds at most one piece in memory."""
    reader = _reader(cache, ref, blobs)
    span = reader.chunk_span(ref.begin, ref.end)
    if span is not None:
        sizes = dict(ref.file.chunks)
        pieces = [(h, int(sizes[h]), None) for h in span]
        if all(s <= TENSOR_PIECE for _, s, _ in pieces):
            yield from pieces
            return
    for data in reader.iter_range(ref.begin, ref.end, TENSOR_PIECE):
        yield chunk_hash(data), len(data), data
        del data


def averaged_pieces(
    a: TensorRef, b: TensorRef, weight_b: float, blobs: BlobStore, cache: dict
) -> Iterator[tuple[str, int, bytes]]:
    """(1−w)·a + w·b, computed in float64 per block, stored in a's dtype.

    A generator of (hash, size, bytes), one TENSOR_PIECE at a time: the caller stores each
    piece before the next is computed, so averaging a multi-GB tensor needs memory for one
    piece (and its float64 inputs), not for the whole result."""
    ra, rb = _reader(cache, a, blobs), _reader(cache, b, blobs)
    ia, ib = ITEMSIZE[a.dtype], ITEMSIZE[b.dtype]
    per_piece = TENSOR_PIECE // ia
    for lo in range(0, a.numel, per_piece):
        hi = min(a.numel, lo + per_piece)
        x = decode(ra.read(a.begin + lo * ia, a.begin + hi * ia), a.dtype)
        y = decode(rb.read(b.begin + lo * ib, b.begin + hi * ib), b.dtype)
        data = encode((1.0 - weight_b) * x + weight_b * y, a.dtype)
        del x, y
        yield chunk_hash(data), len(data), data
        del data
