"""safetensors headers and tensor bytes, without torch (pure Python + NumPy).

File layout (https://github.com/huggingface/safetensors)::

    [8 bytes: N, little-endian u64][N bytes: JSON header, space-padded][data buffer]

The header maps tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets relative to the data buffer) plus an optional ``"__metadata__"`` of str→str.
:func:`parse_header` validates everything the rest of the registry relies on: offsets are
sorted, contiguous, non-overlapping, start at 0, cover the buffer exactly and agree with
dtype × shape. A file that passes can be sliced per tensor safely.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit

ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
FLOAT_DTYPES = {"F8_E4M3", "F8_E5M2", "F16", "BF16", "F32", "F64"}
_NUMPY = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "I16": np.int16,
    "U16": np.uint16,
    "I32": np.int32,
    "U32": np.uint32,
    "I64": np.int64,
    "U64": np.uint64,
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
}


class HeaderError(ValueError):
    """The bytes are not a valid safetensors file (message says why; ``code`` is the
    error code the hub answers with)."""

    def __init__(self, message: str, *, code: str = "invalid_safetensors"):
        super().__init__(message)
        self.code = code


class _Pairs(list):
    """A JSON object as its (key, value) pairs in order, duplicates kept (``object_pairs_hook``)."""


def _unique(pairs: _Pairs, what: str) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise HeaderError(
                f"{what} {key!r} appears more than once (a reader would see only one of them)",
                code="duplicate_tensor_name" if what == "tensor name" else "invalid_safetensors",
            )
        out[key] = value
    return out


def _header_object(raw: bytes) -> dict:
    """The header's JSON object, refusing any key named twice in it, in one tensor's entry
    or in ``__metadata__`` (``json`` alone keeps the last one silently)."""
    try:
        pairs = json.loads(raw.decode("utf-8"), object_pairs_hook=_Pairs)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HeaderError(f"header is not valid UTF-8 JSON: {e}") from None
    except RecursionError:
        raise HeaderError("header JSON is nested too deeply") from None
    if not isinstance(pairs, _Pairs):
        raise HeaderError("header is not a JSON object")
    obj = _unique(pairs, "tensor name")
    for name, spec in obj.items():
        if isinstance(spec, _Pairs):
            obj[name] = _unique(
                spec, "__metadata__ key" if name == "__metadata__" else f"tensor {name!r}: field"
            )
    return obj


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute byte offset in the file
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def as_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "begin": self.begin,
            "end": self.end,
        }


@dataclass(frozen=True)
class Header:
    header_len: int  # N: bytes of JSON after the 8-byte prefix
    tensors: dict[str, TensorInfo]  # in data order
    metadata: dict[str, str]

    @property
    def data_start(self) -> int:
        return 8 + self.header_len

    @property
    def file_size(self) -> int:
        return self.data_start + (
            max((t.end for t in self.tensors.values()), default=self.data_start) - self.data_start
        )


def read_header_len(prefix: bytes, *, max_header: int = DEFAULT_MAX_HEADER) -> int:
    if len(prefix) < 8:
        raise HeaderError("file is shorter than the 8-byte safetensors header length")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n == 0:
        raise HeaderError("header length is 0")
    if n > max_header:
        raise HeaderError(f"header of {n} bytes exceeds the limit of {max_header} bytes")
    return n


def parse_header(
    head: bytes, *, file_size: int | None = None, max_header: int = DEFAULT_MAX_HEADER
) -> Header:
    """Parse and validate ``head`` = the first ``8 + N`` bytes of a safetensors file."""
    n = read_header_len(head, max_header=max_header)
    if len(head) < 8 + n:
        raise HeaderError(f"header claims {n} bytes but only {len(head) - 8} are present")
    raw = head[8 : 8 + n]
    if not raw.lstrip()[:1] == b"{":
        raise HeaderError("header is not a JSON object")
    obj = _header_object(raw)
    metadata = obj.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise HeaderError("__metadata__ must map strings to strings")
    data_start = 8 + n
    entries = []
    for name, spec in obj.items():
        if not isinstance(spec, dict):
            raise HeaderError(f"tensor {name!r}: entry is not an object")
        dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in ITEMSIZE:
            raise HeaderError(f"tensor {name!r}: unknown dtype {dtype!r}")
        if type(shape) is not list or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise HeaderError(f"tensor {name!r}: shape must be a list of non-negative integers")
        if (
            type(offsets) is not list
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
            or offsets[1] < offsets[0]
        ):
            raise HeaderError(
                f"tensor {name!r}: data_offsets must be [begin, end] with 0 <= begin <= end"
            )
        numel = 1
        for d in shape:
            numel *= d
        if numel * ITEMSIZE[dtype] != offsets[1] - offsets[0]:
            raise HeaderError(
                f"tensor {name!r}: {offsets[1] - offsets[0]} bytes do not match dtype {dtype} × shape {shape}"
            )
        entries.append((offsets[0], offsets[1], name, dtype, tuple(shape)))
    entries.sort()
    expected = 0
    tensors: dict[str, TensorInfo] = {}
    for begin, end, name, dtype, shape in entries:
        if begin != expected:
            raise HeaderError(
                f"tensor {name!r}: data is not contiguous (starts at {begin}, expected {expected})"
            )
        expected = end
        tensors[name] = TensorInfo(name, dtype, shape, data_start + begin, data_start + end)
    if file_size is not None and data_start + expected != file_size:
        raise HeaderError(
            f"data buffer is {file_size - data_start} bytes but tensors cover {expected}"
        )
    return Header(n, tensors, metadata)


def build_header(
    tensors: list[tuple[str, str, tuple[int, ...]]], metadata: dict[str, str] | None = None
) -> tuple[bytes, list[tuple[int, int]]]:
    """Header bytes (prefix included) for tensors laid out in the given order, and each
    tensor's absolute [begin, end) in the resulting file."""
    obj: dict[str, Any] = {}
    if metadata:
        obj["__metadata__"] = metadata
    offset = 0
    rel = []
    for name, dtype, shape in tensors:
        numel = 1
        for d in shape:
            numel *= d
        nbytes = numel * ITEMSIZE[dtype]
        obj[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        rel.append((offset, offset + nbytes))
        offset += nbytes
    raw = json.dumps(obj, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data buffer starts 8-byte aligned
    start = 8 + len(raw)
    return struct.pack("<Q", len(raw)) + raw, [(start + b, start + e) for b, e in rel]


# --- decoding to float for diff and averaging ----------------------------------------------


def _fp8_table(exp_bits: int, man_bits: int, bias: int, *, e4m3fn: bool) -> np.ndarray:
    """All 256 values of an 8-bit float format, as float32."""
    codes = np.arange(256, dtype=np.uint32)
    sign = np.where(codes >> 7, -1.0, 1.0)
    exp = (codes >> man_bits) & ((1 << exp_bits) - 1)
    man = codes & ((1 << man_bits) - 1)
    sub = exp == 0
    val = np.where(
        sub,
        man / (1 << man_bits) * 2.0 ** (1 - bias),
        (1 + man / (1 << man_bits)) * 2.0 ** (exp.astype(np.float64) - bias),
    )
    if e4m3fn:  # E4M3FN: no infinities, S.1111.111 is NaN
        val = np.where((exp == 15) & (man == 7), np.nan, val)
    else:  # E5M2 follows IEEE: exponent all ones is inf/NaN
        val = np.where(exp == 31, np.where(man == 0, np.inf, np.nan), val)
    return (sign * val).astype(np.float32)


_FP8 = {"F8_E4M3": _fp8_table(4, 3, 7, e4m3fn=True), "F8_E5M2": _fp8_table(5, 2, 15, e4m3fn=False)}


def decode(buf: bytes | memoryview, dtype: str) -> np.ndarray:
    """Bytes of one tensor (or an element-aligned slice of it) → float64 array."""
    if dtype == "BF16":
        u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    if dtype in _FP8:
        return _FP8[dtype][np.frombuffer(buf, dtype=np.uint8)].astype(np.float64)
    return np.frombuffer(buf, dtype=np.dtype(_NUMPY[dtype]).newbyteorder("<")).astype(np.float64)


def encode(values: np.ndarray, dtype: str) -> bytes:
    """float64 array → bytes in ``dtype`` (round to nearest even for BF16/FP8)."""
    if dtype == "BF16":
        f = values.astype(np.float32)
        u = f.view(np.uint32).astype(np.uint64)
        rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        rounded = np.where(np.isnan(f), np.uint16(0x7FC0), rounded)
        return rounded.astype("<u2").tobytes()
    if dtype in _FP8:
        table = _FP8[dtype]
        finite = np.where(np.isfinite(table), table, np.inf)
        order = np.argsort(finite, kind="stable")
        sorted_vals = finite[order]
        idx = np.clip(np.searchsorted(sorted_vals, values), 1, 255)
        lo, hi = sorted_vals[idx - 1], sorted_vals[idx]
        pick = np.where(np.abs(values - lo) <= np.abs(hi - values), idx - 1, idx)
        return order[pick].astype(np.uint8).tobytes()
    if dtype in FLOAT_DTYPES:
        return values.astype(np.dtype(_NUMPY[dtype]).newbyteorder("<")).tobytes()
    raise ValueError(f"cannot encode non-float dtype {dtype}")
