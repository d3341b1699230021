"""Limits on what one request or one run may hold, in one place.

Each limit is a ``HUB_*`` setting (``hub/settings.py`` reads it from the environment) and is
read at request time, so a deployment (or a test) changes it without code. A request over a
limit is refused whole, with its own error code, before anything is written to the
database, the metrics store or the search index.

=============================  ===========  ==========================  =====================
setting                        default      what                        error (status)
=============================  ===========  ==========================  =====================
HUB_MAX_METRIC_KEYS_PER_RUN    10,000       distinct metric keys a run  too_many_metric_keys
                                            holds (all batches)         (400)
HUB_MAX_PARAMS_PER_RUN         5,000        params a run holds, after   too_many_params (400)
                                            flattening to dotted keys
HUB_MAX_PARAM_VALUE_CHARS      6,000        one param value (a list:    param_value_too_large
                                            its JSON text)              (400)
HUB_MAX_KEY_CHARS              250          a param key (dotted) or a   key_too_long (400)
                                            metric key
HUB_MAX_TAGS_PER_RUN           100          tags on a run               too_many_tags (400)
HUB_MAX_TAG_CHARS              100          one tag                     tag_too_long (400)
HUB_MAX_PARAMS_DEPTH           20           nesting of params (objects  params_too_deep (400)
                                            and lists)
HUB_MAX_METRIC_DIRECTIONS      200          entries in a project's      too_many_metric_directions
                                            metric_directions           (400)
HUB_MAX_ALERTS_PER_RUN         1,000        MoE health alerts a run     too_many_alerts (400)
                                            holds (100 per post)
HUB_MAX_REQUEST_BYTES          16 MiB       a JSON request body of the  request_too_large
                                            tracking API                (413)
HUB_MAX_METRICS_REQUEST_BYTES  64 MiB       a metrics ingest body       request_too_large
                                            (JSON or binary)            (413)
HUB_DRAIN_UNREAD_BODY_BYTES    64 MiB       a body a view answered      (none: a larger one ends
                                            without reading, read and   the keep-alive
                                            discarded so keep-alive     connection)
                                            survives it
HUB_HF_MAX_INLINE_FILE_BYTES   64 MiB       one file uploaded through   file_too_large (413)
                                            the Hugging Face API
                                            (inline, base64)
HUB_HF_MAX_COMMIT_BYTES        1 GiB        a Hugging Face commit body  request_too_large
                                            (NDJSON); also the bytes a  (413)
                                            preupload reads to spot
                                            unchanged files
=============================  ===========  ==========================  =====================

The inference playground (``POST /api/v1/repos/{ns}/{name}/generate``, ``hub/inference``):

=============================  ===========  ==========================  =====================
HUB_INFER_MAX_NEW_TOKENS       512          tokens one request may ask  too_many_tokens (400)
                                            for (max_new_tokens)
HUB_INFER_MAX_PROMPT_BYTES     8,192        the prompt, UTF-8 bytes     prompt_too_large (413)
HUB_INFER_MAX_WALL_S           60           a generation's wall time;   finish_reason time
                                            it ends with what it has    (200)
HUB_INFER_RATE_LIMIT           30           requests per user (or       throttled (429,
                                            anonymous address) and      Retry-After)
                                            window
HUB_INFER_RATE_WINDOW_S        60           that window, seconds
HUB_INFER_MAX_STREAMS          4            generations streaming at    inference_busy (503)
                                            once per web process (each
                                            holds a gunicorn thread)
HUB_INFER_MAX_PER_USER         2            generations one user (or    throttled (429,
                                            address) runs at once       Retry-After)
HUB_INFER_START_TIMEOUT_S      120          waiting for a worker to     inference_timeout
                                            pick a request up and load  (503)
HUB_INSPECT_MAX_PROMPT_BYTES   256          an attention-map prompt     prompt_too_large (413)
                                            (bytes = tokens; the answer
                                            grows with its square)
HUB_INSPECT_MAX_ATTN_CELLS     4,000,000    attention weights in one    invalid_params (400)
                                            answer (layers × heads ×
                                            T(T+1)/2)
HUB_INSPECT_MAX_GRAPH_BYTES    32 MiB       a computation graph an      graph_too_large (413)
                                            inspect job stores
                                            (graph.json; refused when
                                            registered)
=============================  ===========  ==========================  =====================

Model cards (``hub/registry/cards.py``) are never refused: what is over a limit is cut or
left out, with a note on the card (``truncated``, ``metadata_error``):

=============================  ===========  ==========================  =====================
HUB_MAX_CARD_BYTES             512 KiB      a README.md read and        truncated: true (200)
                                            rendered
HUB_MAX_CARD_METADATA_BYTES    64 KiB       its YAML front matter       metadata_error (200)
                                            (then 10,000 values once
                                            aliases are expanded)
=============================  ===========  ==========================  =====================

The watermark verify API (``POST /api/v1/watermark/verify``, ``hub/provenance``):

=============================  ===========  ==========================  =====================
HUB_WATERMARK_MAX_TEXT_BYTES   16,384       the text, UTF-8 bytes       text_too_large (413)
HUB_WATERMARK_MAX_KEYS         100          keys one request tests      repo_required (400)
                                            (without a repo: every key
                                            the caller may read)
HUB_WATERMARK_RATE_LIMIT       30           requests per user (or       throttled (429,
                                            anonymous address) and      Retry-After)
                                            window
HUB_WATERMARK_RATE_WINDOW_S    60           that window, seconds
HUB_WATERMARK_Z_THRESHOLD      4.0          detected when the           (not a refusal)
                                            Bonferroni-corrected p is
                                            at most P(Z >= 4) = 3.2e-5
=============================  ===========  ==========================  =====================

Profiles (``GET /api/v1/jobs/{id}/profile/memory``, ``/api/v1/jobs/profile-diff``,
``hub/jobs``) are never refused for size: what is over a limit is left out, and the answer
says how many there were (``tensor_count``, ``truncated``):

=============================  ===========  ==========================  =====================
HUB_PROFILE_MEMORY_MAX_TENSORS 300          tensors served per list     (200, the rest left
                                            (longest-living, largest,   out)
                                            live at the peak)
HUB_PROFILE_MEMORY_MAX_POINTS  1,500        memory timeline points      (200, thinned keeping
                                                                        the peak)
HUB_PROFILE_DIFF_MAX_FRAMES    5,000        frames of a differential    truncated: true (200)
                                            flame graph (largest kept)
HUB_PROFILE_ARTIFACT_MAX_BYTES 64 MiB       a profile artifact the hub  profile_too_large
                                            reads to serve it           (413)
=============================  ===========  ==========================  =====================

Not settings: at most 200,000 points per ingest request (``batch_too_large``, 413) and a
search document's mapping, which is fixed whatever the input (``hub/stores/_search_layout.py``).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from hub.common.errors import InvalidInput, PayloadTooLarge


def limit(name: str) -> int:
    """The current value of the ``HUB_*`` limit ``name``."""
    return int(getattr(settings, name))


def nesting_depth(value: Any) -> int:
    """How deeply objects and lists nest in ``value`` (a scalar is 0, ``{"a": 1}`` is 1,
    ``{"a": [1]}`` is 2). Iterative: no input can exhaust the stack."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def request_too_large(limit_bytes: int, size: int | None = None) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request bodies here are limited to {limit_bytes} bytes (HUB setting).",
        code="request_too_large",
        details={"limit": limit_bytes, **({"size": size} if size is not None else {})},
    )


def read_body(stream, parser_context: dict | None, limit_bytes: int) -> bytes:
    """The request body, refused with ``request_too_large`` above ``limit_bytes`` -- by its
    declared length before reading, or after reading one byte more than allowed."""
    request = (parser_context or {}).get("request")
    meta = getattr(request, "META", {}) if request is not None else {}
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit_bytes:
        raise request_too_large(limit_bytes, declared)
    body = stream.read(limit_bytes + 1) if stream is not None else b""
    if len(body) > limit_bytes:
        raise request_too_large(limit_bytes)
    return body


class BoundedJSONParser(JSONParser):
    """JSON bodies up to ``HUB_MAX_REQUEST_BYTES``. A body nested deeper than Python's
    parser can follow is a 400 ``too_deep_code``, not a RecursionError (500); views whose
    only nested input is params say ``params_too_deep``."""

    max_bytes_setting = "HUB_MAX_REQUEST_BYTES"
    too_deep_code = "json_too_deep"

    def parse(self, stream, media_type=None, parser_context=None):
        body = read_body(stream, parser_context, limit(self.max_bytes_setting))
        return loads(body, too_deep_code=self.too_deep_code)


def loads(body: bytes, *, too_deep_code: str) -> Any:
    from rest_framework.exceptions import ParseError

    try:
        return json.loads(body.decode("utf-8")) if body else {}
    except RecursionError:
        raise InvalidInput("The JSON body is nested too deeply.", code=too_deep_code) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ParseError(f"JSON parse error - {e}") from e
