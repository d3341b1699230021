"""The inference playground's one use case: generate text from a commit of a model repo.

    generation_start(request, repo, ref, prompt, params, watermark)
        limits (prompt bytes, max new tokens, wall time)      → 400 / 413
        per-user rate limit (Redis, fixed window)              → 429 + Retry-After
        per-user running generations (HUB_INFER_MAX_PER_USER)  → 429 + Retry-After
        an inference worker is online (presence key)           → else 503 no_inference_worker
        a free stream slot in this web process                 → else 503 inference_busy
        ref → commit; the watermark parameters (hub.provenance)
        a read-only credential for this repo and request; the task on queue ``infer``
    Generation.events()   the worker's events, in order, until done/error (or a timeout)
    Generation.close()    cancel the worker's generation if it still runs, revoke the
                          credential, free the stream slot (always called: the view's finally)

Authorisation is the caller's (the view's ``repo_for``: a read; private repos are 404 to
others). The worker reaches the weights only through the API with the credential made here:
GET/HEAD below ``/api/v1/repos/<ns>/<name>``, acting as the caller (anonymous on a public
repo), dead after the request's wall time plus a margin and revoked when the request ends.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hub.common.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from hub.common.limits import limit
from hub.registry import selectors as registry
from hub.registry.models import Repo
from hub.shared.inference import QUEUE, TASK

#: The credential outlives the wall time by this much (the fetch of a cold commit).
CREDENTIAL_MARGIN_S = 300
#: A stream sends a comment when the worker was silent this long (proxies keep it open).
KEEPALIVE_S = 10

_streams_lock = threading.Lock()
_streams = [0]


class RateLimited(Exception):
    def __init__(
        self, retry_after: int, limit: int, window_s: int, *, message: str | None = None
    ) -> None:
        super().__init__(
            message
            or f"At most {limit} generation requests per {window_s} s; retry in {retry_after} s."
        )
        self.retry_after = retry_after


def _channel():
    from hub.stores.inference import get_channel

    return get_channel()


def check_params(prompt: str, params: dict[str, Any]) -> dict[str, Any]:
    """The request's sampling parameters with the hub's bounds applied (400/413 otherwise)."""
    max_prompt = limit("HUB_INFER_MAX_PROMPT_BYTES")
    size = len(prompt.encode("utf-8"))
    if size > max_prompt:
        raise PayloadTooLarge(
            f"The prompt is {size} bytes; at most {max_prompt} (HUB_INFER_MAX_PROMPT_BYTES).",
            code="prompt_too_large",
            details={"limit": max_prompt, "size": size},
        )
    max_new = limit("HUB_INFER_MAX_NEW_TOKENS")
    n = params.get("max_new_tokens", 64)
    if n > max_new:
        raise InvalidInput(
            f"max_new_tokens is {n}; at most {max_new} (HUB_INFER_MAX_NEW_TOKENS).",
            code="too_many_tokens",
            details={"limit": max_new},
        )
    return {k: v for k, v in params.items() if v is not None or k == "seed"}


def _who(user, address: str) -> str:
    return f"user:{user.pk}" if getattr(user, "is_authenticated", False) else f"addr:{address}"


@dataclass
class Generation:
    id: str
    repo: str
    commit: str
    ref: str
    wall_time_s: float
    watermark: dict | None  # what the client may know: key id and strength, never the key
    credential_job: str
    who: str = ""
    first: list[dict] = field(default_factory=list)
    finished: bool = False
    closed: bool = False

    def _next(self, timeout_s: float) -> dict | None:
        if self.first:
            return self.first.pop(0)
        return _channel().next_event(self.id, timeout_s)

    def wait_start(self) -> dict:
        """The worker's first event (``start`` or ``error``), waiting for a worker to pick the
        request up and load the commit (``HUB_INFER_START_TIMEOUT_S``)."""
        ev = _channel().next_event(self.id, limit("HUB_INFER_START_TIMEOUT_S"))
        if ev is None:
            ev = {
                "type": "error",
                "code": "inference_timeout",
                "message": "no inference worker answered in time; retry later",
            }
        if ev.get("type") in ("done", "error"):
            self.finished = True
        self.first.append(ev)
        return ev

    def events(self, *, keepalive: bool = False) -> Iterator[dict]:
        """Events until done/error; with ``keepalive``, ``{"type": "keepalive"}`` when the
        worker was silent for KEEPALIVE_S. A worker silent past the wall time ends it with an
        ``inference_timeout`` error."""
        deadline = time.monotonic() + self.wall_time_s + 30
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.finished = True
                yield {
                    "type": "error",
                    "code": "inference_timeout",
                    "message": f"the worker stopped answering within {self.wall_time_s:g} s",
                }
                return
            ev = self._next(min(left, KEEPALIVE_S))
            if ev is None:
                if keepalive:
                    yield {"type": "keepalive"}
                continue
            if ev.get("type") in ("done", "error"):
                self.finished = True
                if ev.get("type") == "done":
                    ev = {**ev, "watermark": self.watermark}
                yield ev
                return
            yield ev

    def close(self) -> None:
        """Always called once the response ends (or the client went away)."""
        if self.closed:
            return
        self.closed = True
        from hub.accounts.services import job_credentials_revoke

        try:
            if not self.finished:
                _channel().cancel(self.id)
            _channel().forget(self.id)
        except Exception:  # Redis away: the keys expire by themselves
            pass
        job_credentials_revoke(job_id=self.credential_job)
        with _streams_lock:
            _streams[0] -= 1
        if self.who:
            try:
                _channel().active_leave(self.who)
            except Exception:  # Redis away: the counter expires by itself
                pass


def generation_start(
    *,
    user,
    address: str,
    repo: Repo,
    ref: str,
    prompt: str,
    params: dict[str, Any],
    watermark: bool | None,
    op: str = "generate",
    extra: dict[str, Any] | None = None,
) -> Generation:
    """``op``/``extra``: the engine request type and its fields (``hub.inference.inspect``:
    inspect_attention, routing_probe go through the same limits, queue and credential)."""
    from hub.accounts.services import job_credential_issue
    from hub.stores.redis import get_redis

    params = check_params(prompt, params)
    window = limit("HUB_INFER_RATE_WINDOW_S")
    rate = limit("HUB_INFER_RATE_LIMIT")
    who = _who(user, address)
    wait = _channel().rate_hit(who, limit=rate, window_s=window)
    if wait:
        raise RateLimited(wait, rate, window)
    if not get_redis().presence_hosts(QUEUE):
        raise ServiceUnavailable(
            "No inference worker is running (queue infer): start one with "
            "`celery -A workers.celery_app worker -Q infer` (hub serve starts one).",
            code="no_inference_worker",
            retry_after=30,
        )
    commit = registry.resolve(repo=repo, ref=ref)
    wm_public = None
    wm_params = None
    wm = _watermark_for(repo=repo, requested=watermark, user=user)
    if wm is not None:
        wm_params = wm["params"]
        wm_public = {"key_id": wm["key_id"], "strength": wm["strength"]}
    per_user = limit("HUB_INFER_MAX_PER_USER")
    ttl = limit("HUB_INFER_START_TIMEOUT_S") + limit("HUB_INFER_MAX_WALL_S") + 60
    if not _channel().active_enter(who, limit=per_user, ttl_s=ttl):
        raise RateLimited(
            5,
            per_user,
            0,
            message=f"You already run {per_user} generation(s) (HUB_INFER_MAX_PER_USER); "
            "retry when one ends.",
        )
    max_streams = limit("HUB_INFER_MAX_STREAMS")
    with _streams_lock:
        if _streams[0] >= max_streams:
            _channel().active_leave(who)
            raise ServiceUnavailable(
                f"{max_streams} generations are streaming from this server already "
                "(HUB_INFER_MAX_STREAMS); retry shortly.",
                code="inference_busy",
                retry_after=5,
            )
        _streams[0] += 1
    try:
        rid = uuid.uuid4().hex
        wall = float(limit("HUB_INFER_MAX_WALL_S"))
        cred_job = f"inf-{rid[:24]}"
        secret = job_credential_issue(
            job_id=cred_job,
            attempt=0,
            acts_as=user if getattr(user, "is_authenticated", False) else None,
            rules=[[["GET", "HEAD"], f"/api/v1/repos/{repo.full_name}", True]],
            ttl_s=wall + CREDENTIAL_MARGIN_S,
        )
        gen = Generation(
            id=rid,
            repo=repo.full_name,
            commit=commit.sha,
            ref=ref,
            wall_time_s=wall,
            watermark=wm_public,
            credential_job=cred_job,
            who=who,
        )
        now = time.time()
        request = {
            **(extra or {}),
            "op": op,
            "id": rid,
            "repo": repo.full_name,
            "commit": commit.sha,
            "prompt": prompt,
            "params": params,
            "watermark": wm_params,
            "wall_time_s": wall,
            "queued_at": now,
            "expires_at": now + limit("HUB_INFER_START_TIMEOUT_S"),
            "credential": secret,
        }
        from hub.celery_app import app

        try:
            app.send_task(TASK, args=[request], queue=QUEUE, retry=False)
        except Exception as e:
            raise ServiceUnavailable(
                f"The inference queue is unreachable: {e}", code="inference_queue_unavailable"
            ) from e
    except BaseException:
        from hub.accounts.services import job_credentials_revoke

        with _streams_lock:
            _streams[0] -= 1
        _channel().active_leave(who)
        if "cred_job" in locals():
            job_credentials_revoke(job_id=cred_job)
        raise
    return gen


def _watermark_for(*, repo: Repo, requested: bool | None, user) -> dict | None:
    """``hub.provenance.services.generation_watermark``: None, or the parameters the worker
    needs ({"key_id", "repo_id", "strength", "params"})."""
    from hub.provenance.services import generation_watermark

    return generation_watermark(repo=repo, requested=requested, user=user)
