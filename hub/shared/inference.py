"""The inference playground's wire format, shared by the hub (``hub.inference``) and the
inference worker (``workers.inference``); no Django, no torch.

The hub sends one Celery task per request, by name, on its own queue::

    send_task(TASK, args=[request], queue=QUEUE)

``request`` = {"id": 32 hex, "repo": "ns/name", "commit": 64 hex, "prompt": str,
"params": {max_new_tokens, temperature, top_k, top_p, seed, stop}, "watermark": None or
{"scheme", "key_hex", "gamma", "delta", "context_width"}, "wall_time_s": float,
"expires_at": unix seconds (a request the hub stopped waiting for is dropped),
"credential": a read-only credential for that repo, alive for this request only}.

The worker answers on a Redis list, ``events_key(prefix, id)``, one JSON object per item
(RPUSH; the hub BLPOPs), in this order::

    {"type": "start", "worker": host, "cold": bool, "load_s": float, "queue_s": float}
    {"type": "token", "index", "id", "text", "routing": [{"layer", "experts", "weights"}]}*
    {"type": "text", "text"}?              text held back until the end (a partial character)
    {"type": "done", "finish_reason", "text", "prompt_tokens", "tokens",
     "time_to_first_token_s", "tokens_per_s", "elapsed_s", "kv_cache"}
 or {"type": "error", "code", "message"}  (instead of done, at any point)

The hub sets ``cancel_key(prefix, id)`` when its client went away; the worker stops the
generation at the next token. Both keys expire after ``KEY_TTL_S``.
"""

from __future__ import annotations

TASK = "workers.inference.tasks.generate"
QUEUE = "infer"
KEY_TTL_S = 300
EVENT_TYPES = ("start", "token", "text", "done", "error")


def events_key(prefix: str, request_id: str) -> str:
    return f"{prefix}infer:{request_id}:events"


def cancel_key(prefix: str, request_id: str) -> str:
    return f"{prefix}infer:{request_id}:cancel"
