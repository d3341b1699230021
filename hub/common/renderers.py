"""A JSON renderer for the endpoints whose answers are mostly numbers (metric series).

The standard library's encoder spends ~0.25 µs per float on ``repr``: a 5,000-point series
(step, time and value per point) is ~4 ms of encoding alone, more than the ClickHouse query
that produced it. orjson writes the same JSON about ten times faster. Types it does not know
fall back to DRF's encoder; NaN and ±Inf (never stored, see the ingest rules) would become
``null`` rather than invalid JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_fallback = JSONEncoder()


class FastJSONRenderer(JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context=None
    ) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(
            data, default=_fallback.default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z
        )
