"""How run and commit documents are laid out in the search index -- shared by the
Elasticsearch adapter (``hub/stores/search.py``) and the query parser
(``hub/tracking/query.py``), without importing the Elasticsearch client.

The mapping is fixed: whatever keys users send, a run document maps the same few fields.
(One mapped field per param or metric key let one upload of 100,000 metric keys grow the
mapping of the shared index until every search timed out.) User keys live *inside*
``flattened`` fields, which map a whole object as one field and index each leaf as
``key<NUL>value`` terms:

- ``params``: flattened; each param as its canonical keyword text (``4``, ``0.001``,
  ``true``, ``adamw``), keyed by its dotted name (``{"moe": {"top_k": 4}}`` ->
  ``"moe.top_k"``); terms, ``exists``, facets (a terms aggregation on ``params.<name>``).
- ``params_num``: flattened; numeric params as :func:`encode_number` text, a fixed-width
  string whose byte order is the numeric order, because a flattened field knows only
  keywords: numeric equality, ranges and sorting are term, string range and string sort on it.
- ``param_pairs``: keyword, ``"<name><U+001F><text>"`` per param value: wildcard queries, which
  Elasticsearch refuses on a flattened sub-key.
- ``summary``: flattened; ``"<metric key>.<stat>"`` -> :func:`encode_number` text.

A param may be a number in one run and a string in another, and ``lr`` and ``lr.warmup`` may
coexist: in a flattened field they are just different keys. Elasticsearch and noida-db both
support this (probed on noida-db 0.2.3: flattened term/exists/range/sort/terms aggregation
on a sub-key, keyword wildcard); nested documents were the other candidate, but noida-db
ignores a nested sort. Elasticsearch needs both bounds of a range on a flattened sub-key, so
open ranges use the encodings of -inf and +inf.

Commits follow the same pattern: ``config`` / ``config_num`` / ``config_pairs`` like params,
``eval`` (``"<suite>.<metric>"``) like summary. A commit document also carries its model
(layout 3): the repo's name, namespace, visibility and description, ``default_head``, the
model card's fields as ``card_<name>`` keywords and its text, and ``metrics`` --
``"<metric key>.<stat>"`` -> a list of encoded numbers, one per run that produced a commit of
the repo (a range matches when any run's value is in it).

:data:`LAYOUT_VERSION` is stored in each index's mapping ``_meta``; change it whenever the
layout changes, so that ``manage.py search_init`` (run at every ``hub serve`` start) sees
older indices and rebuilds them behind the aliases without downtime.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

Scalar = str | int | float | bool

#: Bump when the document layout or the mappings change (see the module docstring).
LAYOUT_VERSION = 3

PARAMS = "params"
PARAMS_NUM = "params_num"
PARAM_PAIRS = "param_pairs"
SUMMARY = "summary"
#: Separates a key from its value in ``param_pairs``; refused in keys (control character).
PAIR_SEPARATOR = "\x1f"
SUMMARY_STATS = ("last", "min", "max", "last_step")
#: Model card fields a commit document holds as keywords, each as ``card_<name>``
#: (hub/registry/cards.py normalises them from the README's front matter).
CARD_KEYWORD_FIELDS = (
    "license",
    "tags",
    "base_model",
    "datasets",
    "metrics",
    "language",
    "pipeline_tag",
    "library_name",
)

#: Run fields a user may filter on exactly (keyword-mapped).
RUN_KEYWORD_FIELDS = frozenset(
    {"id", "project", "group", "user", "status", "tags", "commit", "job"}
)
#: Analysed text fields (fuzzy search); ``name`` also has a ``name.raw`` keyword.
RUN_TEXT_FIELDS = frozenset({"name", "notes"})
RUN_DATE_FIELDS = frozenset({"created_at", "updated_at", "started_at", "finished_at"})
#: What a bare word searches, fuzzily.
FREE_TEXT_FIELDS = ("name", "notes")


def flatten_params(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """``{"moe": {"top_k": 4}, "tags": ["a"]} -> {"moe.top_k": 4, "tags": ["a"]}``.

    Lists of scalars stay lists (multi-valued fields); anything else that is not a scalar
    (lists of dicts, nested lists) becomes its compact JSON text; ``None`` is dropped.
    """
    flat: dict[str, Any] = {}
    for raw_key, value in nested.items():
        key = f"{prefix}{raw_key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{key}."))
        elif value is None:
            continue
        elif isinstance(value, list | tuple):
            if all(isinstance(v, str | int | float | bool) for v in value):
                flat[key] = list(value)
            else:
                flat[key] = json.dumps(value, sort_keys=True, separators=(",", ":"))
        elif isinstance(value, str | int | float | bool):
            flat[key] = value
        else:
            flat[key] = str(value)
    return flat


def is_number(value: Any) -> bool:
    """Numbers that go to ``params_num`` (booleans are not numbers here; NaN/inf are not
    indexable as doubles)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def keyword_text(value: Scalar) -> str:
    """The canonical keyword form of a scalar: ``True -> "true"``, ``4 -> "4"``,
    ``4.0 -> "4.0"``, ``1e-3 -> "0.001"`` (Python's shortest repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


# Sixteen letters for the sixteen nibbles: no encoded number ever looks like a number to an
# engine that might compare numeric-looking strings as numbers.
_NIBBLES = "abcdefghijklmnop"
_DECODE = {c: i for i, c in enumerate(_NIBBLES)}


def encode_number(value: float) -> str:
    """A double as 16 letters whose lexicographic order is the numeric order (IEEE 754 bits,
    sign bit flipped for positives, all bits flipped for negatives). Exact: decodes back to
    the same double. ``-0.0`` encodes as ``0.0``."""
    x = float(value) + 0.0  # -0.0 -> 0.0
    (bits,) = struct.unpack(">Q", struct.pack(">d", x))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return "".join(_NIBBLES[(bits >> shift) & 0xF] for shift in range(60, -1, -4))


def decode_number(text: str) -> float:
    bits = 0
    for ch in text:
        bits = (bits << 4) | _DECODE[ch]
    bits = bits & ~(1 << 63) if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
    return struct.unpack(">d", struct.pack(">Q", bits))[0]


#: Bounds of every encoded finite number (the open side of a range).
NUMBER_MIN = encode_number(-math.inf)
NUMBER_MAX = encode_number(math.inf)


def numeric_range(
    field: str,
    *,
    gt: float | None = None,
    gte: float | None = None,
    lt: float | None = None,
    lte: float | None = None,
) -> dict[str, Any]:
    """A range query on an encoded numeric sub-key (both bounds always given: Elasticsearch
    refuses a half-open range on a flattened sub-key)."""
    body: dict[str, Any] = {}
    if gt is not None:
        body["gt"] = encode_number(gt)
    elif gte is not None:
        body["gte"] = encode_number(gte)
    else:
        body["gte"] = NUMBER_MIN
    if lt is not None:
        body["lt"] = encode_number(lt)
    elif lte is not None:
        body["lte"] = encode_number(lte)
    else:
        body["lte"] = NUMBER_MAX
    return {"range": {field: body}}


def numeric_term(field: str, value: float) -> dict[str, Any]:
    return {"term": {field: encode_number(value)}}


def pair(key: str, text: str) -> str:
    return f"{key}{PAIR_SEPARATOR}{text}"


def pair_pattern(key: str, pattern: str) -> str:
    """A wildcard pattern on ``param_pairs``: the key matched literally, then ``pattern``."""
    literal = "".join("\\" + c if c in "*?\\" else c for c in key)
    return f"{literal}{PAIR_SEPARATOR}{pattern}"


def split_params(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Flattened params -> (keyword side, encoded numeric side, key/value pairs) as stored
    in a document."""
    keywords: dict[str, Any] = {}
    numbers: dict[str, Any] = {}
    pairs: list[str] = []
    for key, value in flat.items():
        if isinstance(value, list):
            keywords[key] = [keyword_text(v) for v in value]
            nums = [encode_number(v) for v in value if is_number(v)]
            if nums:
                numbers[key] = nums
        else:
            keywords[key] = keyword_text(value)
            if is_number(value):
                numbers[key] = encode_number(value)
        texts = keywords[key]
        pairs.extend(pair(key, t) for t in (texts if isinstance(texts, list) else [texts]))
    return keywords, numbers, pairs


def decode_numbers(encoded: Any) -> Any:
    """An encoded numeric side (one value or a list) back to floats."""
    if isinstance(encoded, list):
        return [decode_number(v) for v in encoded]
    return decode_number(encoded)


def split_summary_path(path: str) -> tuple[str, str]:
    """``"val_loss" -> ("val_loss", "last")``, ``"val_loss.min" -> ("val_loss", "min")``."""
    key, _, last = path.rpartition(".")
    if key and last in SUMMARY_STATS:
        return key, last
    return path, "last"


def summary_field(path: str) -> str:
    key, stat = split_summary_path(path)
    return f"{SUMMARY}.{key}.{stat}"


def flatten_summary(summary: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{"val_loss": {"last": 2.0, "min": 1.9}} -> {"val_loss.last": encode_number(2.0),
    ...}`` (finite numbers only)."""
    flat: dict[str, str] = {}
    for key, stats in summary.items():
        for stat, value in stats.items():
            if stat in SUMMARY_STATS and is_number(value):
                flat[f"{key}.{stat}"] = encode_number(value)
    return flat


def sort_field(logical: str) -> tuple[str, str | None]:
    """A user-facing sort field -> (index field, ``unmapped_type`` for fields that may not be
    mapped yet). Raises ``ValueError`` for fields that cannot be sorted on. Params and
    summaries sort on their encoded text (its order is the numeric order); a key no run has
    is a sub-key of a mapped flattened field, so it sorts as missing everywhere."""
    if logical.startswith(f"{SUMMARY}.") and len(logical) > len(SUMMARY) + 1:
        return summary_field(logical[len(SUMMARY) + 1 :]), None
    if logical.startswith(f"{PARAMS}.") and len(logical) > len(PARAMS) + 1:
        return f"{PARAMS_NUM}.{logical[len(PARAMS) + 1 :]}", None
    if logical == "name":
        return "name.raw", None
    if logical in RUN_DATE_FIELDS:
        return logical, "date"
    if logical in RUN_KEYWORD_FIELDS:
        return logical, "keyword"
    raise ValueError(f"cannot sort on {logical!r}")


def facet_field(logical: str) -> str:
    """A user-facing facet field -> keyword index field."""
    if logical.startswith(f"{PARAMS}.") and len(logical) > len(PARAMS) + 1:
        return logical
    if logical in RUN_KEYWORD_FIELDS:
        return logical
    raise ValueError(f"cannot facet on {logical!r}: use tags, status, user, group, params.<name>")
