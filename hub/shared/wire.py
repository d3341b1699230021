"""The compact binary encoding of a metric batch, shared by the server and the SDK (pure
Python + NumPy: the SDK imports it without Django)::

    b"HUBPTS1\\n" | u32 n_keys | n_keys × (u16 len, utf-8 key) | u32 n |
    u32[n] key index | i64[n] step | f64[n] wall time | f64[n] value        (little-endian)

Against JSON columns it is ~3× smaller and decodes without a per-point Python loop.
"""

from __future__ import annotations

import struct

import numpy as np

MAGIC = b"HUBPTS1\n"
CONTENT_TYPE = "application/x-hub-points"


def encode(keys: list[str], key_index, step, wall_time, value) -> bytes:
    parts = [MAGIC, struct.pack("<I", len(keys))]
    for k in keys:
        b = k.encode()
        parts.append(struct.pack("<H", len(b)) + b)
    parts.append(struct.pack("<I", len(step)))
    head = sum(len(p) for p in parts)
    parts.append(b"\0" * (-head % 8))
    parts.append(np.asarray(step, dtype="<i8").tobytes())
    parts.append(np.asarray(wall_time, dtype="<f8").tobytes())
    parts.append(np.asarray(value, dtype="<f8").tobytes())
    parts.append(np.asarray(key_index, dtype="<u4").tobytes())
    return b"".join(parts)


def decode(
    body: bytes, *, max_points: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """→ (keys, key_index, step, wall_time, value). Raises ValueError on a malformed body and
    OverflowError when it holds more than ``max_points`` points."""
    try:
        if not body.startswith(MAGIC):
            raise ValueError("bad magic")
        pos = len(MAGIC)
        (n_keys,) = struct.unpack_from("<I", body, pos)
        pos += 4
        if n_keys > max_points:
            raise ValueError("too many keys")
        keys = []
        for _ in range(n_keys):
            (ln,) = struct.unpack_from("<H", body, pos)
            pos += 2
            keys.append(body[pos : pos + ln].decode("utf-8"))
            pos += ln
        (n,) = struct.unpack_from("<I", body, pos)
        pos += 4
    except (struct.error, UnicodeDecodeError) as e:
        raise ValueError(str(e)) from None
    if n > max_points:
        raise OverflowError(n)
    pos += -pos % 8
    need = pos + n * (8 + 8 + 8 + 4)
    if len(body) != need:
        raise ValueError(f"body is {len(body)} bytes, expected {need}")
    step = np.frombuffer(body, dtype="<i8", count=n, offset=pos)
    pos += 8 * n
    t = np.frombuffer(body, dtype="<f8", count=n, offset=pos)
    pos += 8 * n
    v = np.frombuffer(body, dtype="<f8", count=n, offset=pos)
    pos += 8 * n
    ki = np.frombuffer(body, dtype="<u4", count=n, offset=pos)
    return keys, ki, step, t, v
