import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load, save

from hub.shared.tensors import HeaderError, build_header, decode, encode, parse_header

pytestmark = pytest.mark.unit


def _head(obj, pad=0) -> bytes:
    raw = json.dumps(obj).encode() + b" " * pad
    return struct.pack("<Q", len(raw)) + raw


def test_parse_real_safetensors_header():
    data = save({"a": np.zeros((2, 3), np.float32), "b": np.ones(4, np.int64)}, metadata={"k": "v"})
    n = struct.unpack("<Q", data[:8])[0]
    h = parse_header(data[: 8 + n], file_size=len(data))
    assert set(h.tensors) == {"a", "b"}
    assert h.metadata == {"k": "v"}
    a = h.tensors["a"]
    assert np.array_equal(
        np.frombuffer(data[a.begin : a.end], np.float32).reshape(2, 3), np.zeros((2, 3))
    )


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"t": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, "unknown dtype"),
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, "do not match"),
        ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "non-negative"),
        ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, "data_offsets"),
        ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, "not contiguous"),
        (
            {
                "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            },
            "not contiguous",
        ),
        ({"__metadata__": {"k": 1}}, "__metadata__"),
        ({"t": "nope"}, "not an object"),
    ],
)
def test_malformed_headers_are_rejected_with_a_reason(obj, message):
    with pytest.raises(HeaderError, match=message):
        parse_header(_head(obj))


def test_header_that_is_not_json_is_rejected():
    raw = b"{not json"
    with pytest.raises(HeaderError, match="JSON"):
        parse_header(struct.pack("<Q", len(raw)) + raw)


def test_oversized_header_is_rejected_before_reading_it():
    with pytest.raises(HeaderError, match="exceeds the limit"):
        parse_header(struct.pack("<Q", 10**12) + b"{}", max_header=1024)


def test_data_buffer_must_match_the_file_size():
    head = _head({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    with pytest.raises(HeaderError, match="data buffer"):
        parse_header(head, file_size=len(head) + 8)


def test_build_header_round_trips_through_safetensors():
    arrays = {
        "x": np.arange(6, dtype=np.float32).reshape(2, 3),
        "y": np.arange(3, dtype=np.float64),
    }
    header, spans = build_header(
        [(k, "F32" if v.dtype == np.float32 else "F64", v.shape) for k, v in arrays.items()],
        {"m": "1"},
    )
    data = header + b"".join(v.tobytes() for v in arrays.values())
    loaded = load(data)
    assert all(np.array_equal(loaded[k], v) for k, v in arrays.items())
    assert len(header) % 8 == 0
    assert spans[0][0] == len(header)


def test_bf16_encode_decode_round_trip_and_rounding():
    values = np.array([1.0, -2.5, 3.140625, 1e-3, 65504.0])
    out = decode(encode(values, "BF16"), "BF16")
    assert np.allclose(out, values, rtol=2**-8)
    assert out[0] == 1.0 and out[1] == -2.5


@pytest.mark.parametrize("dtype, maxval", [("F8_E4M3", 448.0), ("F8_E5M2", 57344.0)])
def test_fp8_tables_cover_the_format(dtype, maxval):
    all_codes = bytes(range(256))
    vals = decode(all_codes, dtype)
    assert np.nanmax(vals[np.isfinite(vals)]) == maxval
    finite = np.isfinite(vals)
    again = decode(encode(vals[finite], dtype), dtype)
    assert np.array_equal(again, vals[finite])
