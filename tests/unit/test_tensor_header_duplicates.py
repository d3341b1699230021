"""A safetensors header names each tensor once: a duplicate would let the hub and a loader
(or two loaders) disagree on what a file holds, so one parser refuses it everywhere."""

import struct

import pytest

from hub.shared.chunking import chunk_bytes, chunk_file
from hub.shared.tensors import HeaderError, parse_header

pytestmark = pytest.mark.unit

W = b'{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'


def _file(raw: bytes, data: bytes = struct.pack("<f", 1.0)) -> bytes:
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def test_duplicate_tensor_names_are_refused():
    data = _file(b'{"w":' + W + b',"w":' + W + b"}")
    with pytest.raises(HeaderError) as e:
        parse_header(data, file_size=len(data))
    assert e.value.code == "duplicate_tensor_name" and "'w'" in str(e.value)


def test_a_field_named_twice_in_one_entry_is_refused():
    raw = b'{"w":{"dtype":"F64","dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    data = _file(raw)
    with pytest.raises(HeaderError) as e:
        parse_header(data, file_size=len(data))
    assert e.value.code == "invalid_safetensors" and "'dtype'" in str(e.value)


def test_metadata_twice_or_a_metadata_key_twice_is_refused():
    for raw in (
        b'{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"},"w":' + W + b"}",
        b'{"__metadata__":{"a":"1","a":"2"},"w":' + W + b"}",
    ):
        data = _file(raw)
        with pytest.raises(HeaderError):
            parse_header(data, file_size=len(data))


def test_the_sdk_chunker_refuses_the_same_file(tmp_path):
    data = _file(b'{"w":' + W + b',"w":' + W + b"}")
    p = tmp_path / "m.safetensors"
    p.write_bytes(data)
    with pytest.raises(HeaderError):
        chunk_file(p, name="m.safetensors")
    with pytest.raises(HeaderError):
        chunk_bytes(data, name="m.safetensors")


def test_a_deeply_nested_header_is_a_header_error():
    raw = b'{"w":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    data = _file(raw, b"")
    with pytest.raises(HeaderError):
        parse_header(data, file_size=len(data))


@pytest.mark.parametrize("dtype", [b"{}", b'{"a":1}', b"[]", b"[1]"])
def test_a_dtype_that_is_not_a_string_is_a_header_error(dtype):
    data = _file(b'{"w":{"dtype":' + dtype + b',"shape":[1],"data_offsets":[0,4]}}')
    with pytest.raises(HeaderError):
        parse_header(data, file_size=len(data))


def test_a_shape_that_is_an_object_is_a_header_error():
    data = _file(b'{"w":{"dtype":"F32","shape":{},"data_offsets":[0,4]}}')
    with pytest.raises(HeaderError):
        parse_header(data, file_size=len(data))
