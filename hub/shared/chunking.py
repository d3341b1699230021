"""Content-addressed chunking, shared by the server and the SDK (pure Python, no Django).

* A ``.safetensors`` file is cut along its own structure: one chunk for the 8-byte prefix
  plus the JSON header, then each tensor's bytes (split every ``TENSOR_PIECE`` bytes when a
  tensor is larger). A new version that changes one tensor therefore shares every other
  chunk with the old one, whatever happened to the tensors' offsets.
* Every other file is cut by content-defined chunking (FastCDC, ~1 MiB average), so an
  insertion shifts only the chunks around it.

A chunk's id is the BLAKE3 hash of its bytes (64 hex). A file's id (``oid``) is the BLAKE3
hash of its chunk list, so two files with equal bytes have equal ids, and the server can
derive it without rereading the bytes: every chunk was verified when it was uploaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import blake3
from pyfastcdc import FastCDC

from hub.shared.tensors import DEFAULT_MAX_HEADER, HeaderError, parse_header, read_header_len

TENSOR_PIECE = 16 * 1024 * 1024
CDC_MIN, CDC_AVG, CDC_MAX = 256 * 1024, 1024 * 1024, 4 * 1024 * 1024
MAX_CHUNK = max(TENSOR_PIECE, CDC_MAX)
_READ = 8 * 1024 * 1024


def chunk_hash(data: bytes | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


def file_oid(chunks: list[tuple[str, int]]) -> str:
    h = blake3.blake3(b"moehub-file-v1\n")
    for digest, size in chunks:
        h.update(f"{digest} {size}\n".encode())
    return h.hexdigest()


def is_safetensors(path: str) -> bool:
    return path.lower().endswith(".safetensors")


@dataclass(frozen=True)
class ChunkSpec:
    hash: str
    offset: int
    size: int


@dataclass(frozen=True)
class FileManifest:
    path: str
    size: int
    chunks: list[ChunkSpec]

    @property
    def oid(self) -> str:
        return file_oid([(c.hash, c.size) for c in self.chunks])

    def as_operation(self) -> dict:
        return {"op": "add", "path": self.path, "chunks": [[c.hash, c.size] for c in self.chunks]}


def _hash_range(f, offset: int, size: int) -> Iterator[ChunkSpec]:
    """Cut [offset, offset+size) into TENSOR_PIECE pieces and hash each."""
    end = offset + size
    while offset < end:
        n = min(TENSOR_PIECE, end - offset)
        f.seek(offset)
        data = f.read(n)
        if len(data) != n:
            raise HeaderError("file is shorter than its header says")
        yield ChunkSpec(chunk_hash(data), offset, n)
        offset += n


def safetensors_ranges(
    path: str | os.PathLike, *, max_header: int = DEFAULT_MAX_HEADER
) -> list[tuple[int, int]]:
    """Byte ranges [(offset, size)] that make the chunks of a safetensors file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        n = read_header_len(f.read(8), max_header=max_header)
        f.seek(0)
        header = parse_header(f.read(8 + n), file_size=size, max_header=max_header)
    ranges = [(0, header.data_start)]
    ranges += [(t.begin, t.nbytes) for t in header.tensors.values() if t.nbytes]
    return ranges


def chunk_file(path: str | os.PathLike, *, name: str | None = None) -> FileManifest:
    """Chunk one local file. ``name`` is its path inside the repo (decides the chunker)."""
    name = name or os.fspath(path)
    size = os.path.getsize(path)
    chunks: list[ChunkSpec] = []
    if is_safetensors(name):
        with open(path, "rb") as f:
            for offset, n in safetensors_ranges(path):
                chunks.extend(_hash_range(f, offset, n))
    elif size:
        cdc = FastCDC(avg_size=CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)
        for c in cdc.cut_file(os.fspath(path)):
            chunks.append(ChunkSpec(chunk_hash(c.data), c.offset, c.length))
    return FileManifest(name, size, chunks)


def chunk_bytes(data: bytes, *, name: str) -> FileManifest:
    """Chunk an in-memory file (same cuts as :func:`chunk_file`)."""
    chunks: list[ChunkSpec] = []
    if is_safetensors(name):
        n = read_header_len(data[:8])
        header = parse_header(data[: 8 + n], file_size=len(data))
        ranges = [(0, header.data_start)] + [
            (t.begin, t.nbytes) for t in header.tensors.values() if t.nbytes
        ]
        for offset, size in ranges:
            for o in range(offset, offset + size, TENSOR_PIECE):
                piece = data[o : min(o + TENSOR_PIECE, offset + size)]
                chunks.append(ChunkSpec(chunk_hash(piece), o, len(piece)))
    elif data:
        cdc = FastCDC(avg_size=CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)
        for c in cdc.cut_buf(data):
            chunks.append(ChunkSpec(chunk_hash(c.data), c.offset, c.length))
    return FileManifest(name, len(data), chunks)
