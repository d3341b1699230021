"""How run and commit documents are laid out in the search index -- shared by the
Elasticsearch adapter (``hub/stores/search.py``) and the query parser
(``hub/tracking/query.py``), without importing the Elasticsearch client.

Params are flattened to dotted keys (``{"moe": {"top_k": 4}}`` -> ``"moe.top_k"``) and stored
twice, so that one parameter may be a number in one run and a string in another without a
mapping conflict:

- ``params.<dotted>``: every value as a keyword (canonical text: ``4``, ``0.001``, ``true``);
  terms, prefixes, wildcards, facets.
- ``params_num.<dotted>``: numeric values only, as ``double``; ranges, numeric equality, sort.

Both objects are mapped with ``subobjects: false`` so a dotted key stays one field: a run with
``lr = 0.1`` and another with ``lr.warmup = 100`` do not fight over ``params.lr`` being an
object. Summaries of metric series are ``summary.<key>.<stat>`` doubles in a ``subobjects:
false`` object too (metric keys contain dots and slashes: ``val/loss``, ``moe.aux_loss``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

Scalar = str | int | float | bool

PARAMS = "params"
PARAMS_NUM = "params_num"
SUMMARY = "summary"
SUMMARY_STATS = ("last", "min", "max", "last_step")

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


def split_params(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flattened params -> (keyword side, numeric side) as stored in a document."""
    keywords: dict[str, Any] = {}
    numbers: dict[str, Any] = {}
    for key, value in flat.items():
        if isinstance(value, list):
            keywords[key] = [keyword_text(v) for v in value]
            nums = [float(v) for v in value if is_number(v)]
            if nums:
                numbers[key] = nums
        else:
            keywords[key] = keyword_text(value)
            if is_number(value):
                numbers[key] = float(value)
    return keywords, numbers


def split_summary_path(path: str) -> tuple[str, str]:
    """``"val_loss" -> ("val_loss", "last")``, ``"val_loss.min" -> ("val_loss", "min")``."""
    key, _, last = path.rpartition(".")
    if key and last in SUMMARY_STATS:
        return key, last
    return path, "last"


def summary_field(path: str) -> str:
    key, stat = split_summary_path(path)
    return f"{SUMMARY}.{key}.{stat}"


def flatten_summary(summary: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``{"val_loss": {"last": 2.0, "min": 1.9}} -> {"val_loss.last": 2.0, ...}`` (finite
    numbers only)."""
    flat: dict[str, float] = {}
    for key, stats in summary.items():
        for stat, value in stats.items():
            if stat in SUMMARY_STATS and is_number(value):
                flat[f"{key}.{stat}"] = float(value)
    return flat


def sort_field(logical: str) -> tuple[str, str | None]:
    """A user-facing sort field -> (index field, ``unmapped_type`` for fields that may not be
    mapped yet). Raises ``ValueError`` for fields that cannot be sorted on."""
    if logical.startswith(f"{SUMMARY}."):
        return summary_field(logical[len(SUMMARY) + 1 :]), "double"
    if logical.startswith(f"{PARAMS}."):
        return f"{PARAMS_NUM}.{logical[len(PARAMS) + 1 :]}", "double"
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
