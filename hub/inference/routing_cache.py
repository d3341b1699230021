"""The routing diffs the hub has computed, remembered for the comparison reports.

A routing diff costs two engine requests, so a comparison report never starts one: each
``POST .../routing-diff`` stores its summary in Redis under
``<prefix>routing-diff:v<probe>:<commit A>:<commit B>`` (``TTL_S``), and the report of the
runs that produced A and B shows it (``hub.tracking.report``, "Routing" section), or says
which command computes it when none is stored. Redis away: no line, never an error.
"""

from __future__ import annotations

import json
from typing import Any

TTL_S = 30 * 24 * 3600


def _key(prefix: str, version: int, a: str, b: str) -> str:
    return f"{prefix}routing-diff:v{version}:{a}:{b}"


def remember(diff: dict[str, Any]) -> None:
    """Keep the summary of a routing diff (the API's answer)."""
    from hub.stores.redis import get_redis

    value = {
        "a": diff["a"],
        "b": diff["b"],
        "probe_version": diff["probe_version"],
        "top_k_a": diff.get("top_k_a"),
        "top_k_b": diff.get("top_k_b"),
        **diff["summary"],
    }
    try:
        store = get_redis()
        key = _key(store.prefix, diff["probe_version"], diff["a"]["commit"], diff["b"]["commit"])
        store._call(lambda r: r.set(key, json.dumps(value), ex=TTL_S))
    except Exception:  # a cache: its absence only hides a report line
        pass


def recall(version: int, a: str, b: str) -> dict[str, Any] | None:
    from hub.stores.redis import get_redis

    try:
        store = get_redis()
        raw = store._call(lambda r: r.get(_key(store.prefix, version, a, b)))
    except Exception:
        return None
    return json.loads(raw) if raw else None


def for_runs(runs: list, baseline: str, version: int) -> list[dict[str, Any]]:
    """One entry per compared run other than the baseline, when both produced a commit:
    {"a_run", "b_run", "a": "repo@sha", "b": "repo@sha", "diff": summary | None}."""
    base = next((r for r in runs if r.pk == baseline), None)
    if base is None or not base.commit_sha:
        return []
    out = []
    for r in runs:
        if r.pk == base.pk or not r.commit_sha or r.commit_sha == base.commit_sha:
            continue
        out.append(
            {
                "a_run": base.pk,
                "b_run": r.pk,
                "a": f"{base.commit_repo}@{base.commit_sha}",
                "b": f"{r.commit_repo}@{r.commit_sha}",
                "diff": recall(version, base.commit_sha, r.commit_sha),
            }
        )
    return out
