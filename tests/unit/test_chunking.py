import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.shared import chunking
from hub.shared.chunking import chunk_bytes, chunk_file
from tests.helpers import model, st_bytes

pytestmark = pytest.mark.unit


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=3 * 1024 * 1024))
def test_cdc_chunks_reassemble_to_the_file(data):
    m = chunk_bytes(data, name="blob.bin")
    assert b"".join(data[c.offset : c.offset + c.size] for c in m.chunks) == data
    assert all(chunking.chunk_hash(data[c.offset : c.offset + c.size]) == c.hash for c in m.chunks)
    assert all(c.size <= chunking.CDC_MAX for c in m.chunks)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(1, 40)), min_size=1, max_size=8),
    st.integers(0, 2**32 - 1),
)
def test_safetensors_chunks_reassemble_and_follow_tensors(shapes, seed):
    rng = np.random.default_rng(seed)
    tensors = {
        f"t{i}": rng.standard_normal((a, b)).astype(np.float32) for i, (a, b) in enumerate(shapes)
    }
    data = st_bytes(tensors)
    m = chunk_bytes(data, name="model.safetensors")
    assert b"".join(data[c.offset : c.offset + c.size] for c in m.chunks) == data
    nonempty = sum(1 for t in tensors.values() if t.size)
    assert len(m.chunks) == 1 + nonempty  # header + one chunk per non-empty tensor


def test_changing_one_tensor_changes_only_its_chunk():
    a = model(seed=1, n=8)
    b = dict(a)
    b["layers.3.w"] = b["layers.3.w"] + 1
    ca = {c.hash for c in chunk_bytes(st_bytes(a), name="m.safetensors").chunks}
    cb = {c.hash for c in chunk_bytes(st_bytes(b), name="m.safetensors").chunks}
    assert len(cb - ca) == 1


def test_large_tensor_is_split_into_pieces(monkeypatch):
    monkeypatch.setattr(chunking, "TENSOR_PIECE", 1000)
    data = st_bytes({"big": np.zeros(1000, np.float32)})
    m = chunk_bytes(data, name="m.safetensors")
    assert [c.size for c in m.chunks][1:] == [1000, 1000, 1000, 1000]


def test_chunk_file_and_chunk_bytes_agree(tmp_path):
    data = st_bytes(model(seed=3))
    p = tmp_path / "model.safetensors"
    p.write_bytes(data)
    assert (
        chunk_file(p, name="model.safetensors").oid
        == chunk_bytes(data, name="model.safetensors").oid
    )
    q = tmp_path / "x.bin"
    q.write_bytes(data * 5)
    assert chunk_file(q, name="x.bin").oid == chunk_bytes(data * 5, name="x.bin").oid


def test_cdc_insertion_keeps_most_chunks():
    rng = np.random.default_rng(0)
    data = rng.bytes(8 * 1024 * 1024)
    edited = data[:4_000_000] + b"inserted" + data[4_000_000:]
    a = {c.hash for c in chunk_bytes(data, name="f.bin").chunks}
    b = {c.hash for c in chunk_bytes(edited, name="f.bin").chunks}
    assert len(a & b) >= len(a) - 3
