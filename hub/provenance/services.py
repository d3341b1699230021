"""Writes of the provenance domain: the owner's watermark setting, repo keys, and the
watermark parameters one generation request receives."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction

from hub.common.errors import InvalidInput
from hub.provenance import crypto, selectors
from hub.provenance.models import WatermarkKey, WatermarkSetting
from hub.registry.models import Repo
from hub.shared import watermark as wm


def watermark_key_create(*, repo: Repo) -> WatermarkKey:
    """A fresh key for ``repo`` (``secrets.token_bytes``), sealed, with the hub's default gamma
    and context width. Older keys stay active for verification."""
    secret = secrets.token_bytes(wm.KEY_BYTES)
    for _ in range(5):
        key_id = "wmk_" + secrets.token_hex(8)
        try:
            with transaction.atomic():
                key = WatermarkKey(
                    repo=repo,
                    key_id=key_id,
                    sealed_secret=crypto.seal(secret, key_id=key_id),
                    scheme=wm.SCHEME,
                    gamma=wm.DEFAULT_GAMMA,
                    context_width=wm.DEFAULT_CONTEXT_WIDTH,
                )
                key.full_clean(exclude=["sealed_secret"])
                key.save()
                return key
        except IntegrityError:  # key id collision: draw again
            continue
    raise RuntimeError("could not draw a unique watermark key id")


def _current_key(*, repo: Repo) -> WatermarkKey:
    """The repo's newest active key, created on first use (row-locked on the repo so two
    concurrent first uses create one key)."""
    with transaction.atomic():
        Repo.objects.select_for_update().filter(pk=repo.pk).first()
        key = selectors.current_key(repo=repo)
        return key if key is not None else watermark_key_create(repo=repo)


def watermark_setting_update(
    *, repo: Repo, user, enabled: bool | None = None, strength: float | None = None
) -> WatermarkSetting:
    """The owner's switch (the caller checked the admin role). Enabling creates the repo's key
    if it has none, so the first watermarked generation does not race to create it."""
    if strength is not None and not 0.0 < strength <= 1.0:
        raise InvalidInput(
            "strength must be in (0, 1].", code="invalid_strength", details={"strength": strength}
        )
    with transaction.atomic():
        setting, _ = WatermarkSetting.objects.select_for_update().get_or_create(repo=repo)
        if enabled is not None:
            setting.enabled = enabled
        if strength is not None:
            setting.strength = strength
        setting.updated_by = user if getattr(user, "is_authenticated", False) else None
        setting.save()
    if setting.enabled:
        _current_key(repo=repo)
    return setting


def generation_watermark(*, repo: Repo, requested: bool | None, user) -> dict | None:
    """What the sandbox needs to watermark one generation from ``repo``, or None.

    ``requested`` is the request's switch: None follows the owner's setting (on for repos whose
    owner enabled it), True/False overrides it. Any reader may turn it off: whoever can read a
    repo can download its weights and generate without the hub, so the watermark marks the
    hub's own generations, it cannot be enforced on readers. ``user`` must be able to read the
    repo (a private repo answers 404 repo_not_found to others, as a read does).

    Returns ``{"key_id", "repo_id", "strength", "params": {"scheme", "key_hex", "gamma",
    "delta", "context_width"}}``: ``params`` is what ``workers.moe.watermark`` builds its logits
    processor from. ``key_hex`` is a secret: pass it to the sandbox for this request only, never
    log it, store it in a job's spec or commit metadata, or return it to a client.
    """
    selectors.require_read(repo=repo, user=user)
    setting = selectors.setting_get(repo=repo)
    on = setting.enabled if requested is None else bool(requested)
    if not on:
        return None
    key = _current_key(repo=repo)
    params = wm.WatermarkParams(
        key=crypto.unseal(key.sealed_secret, key_id=key.key_id),
        gamma=key.gamma,
        delta=wm.strength_to_delta(setting.strength),
        context_width=key.context_width,
    )
    return {
        "key_id": key.key_id,
        "repo_id": repo.pk,
        "strength": setting.strength,
        "params": params.to_dict(),
    }


class VerifyRateLimited(Exception):
    def __init__(self, retry_after: int, limit: int, window_s: int) -> None:
        super().__init__(
            f"At most {limit} watermark verifications per {window_s} s; retry in {retry_after} s."
        )
        self.retry_after = retry_after


def verify_rate_hit(*, who: str) -> None:
    """Count one verification for ``who`` (``user:<id>`` or ``addr:<ip>``) in a fixed window of
    ``HUB_WATERMARK_RATE_WINDOW_S``; past ``HUB_WATERMARK_RATE_LIMIT`` raise
    :class:`VerifyRateLimited` with the seconds left in the window."""
    from hub.common.limits import limit
    from hub.stores.redis import get_redis

    rate, window = limit("HUB_WATERMARK_RATE_LIMIT"), limit("HUB_WATERMARK_RATE_WINDOW_S")
    count, ttl = get_redis().window_hit(f"ratelimit:watermark-verify:{who}", window_s=window)
    if count > rate:
        raise VerifyRateLimited(ttl, rate, window)


def job_watermark(*, job) -> dict | None:
    """What an evaluate job's sandbox needs to watermark its samples (see
    :func:`generation_watermark`), or None: the switch is the job config's
    ``eval.watermark`` (null: the base repo owner's setting), the repo is the job's base, the
    user its launcher. Handed to the worker in the start answer only -- never stored in the
    job, its config, its run's params or a commit."""
    from hub.common.errors import NotFound

    if job.kind != "evaluate" or not job.base_repo:
        return None
    ns, _, name = job.base_repo.partition("/")
    repo = Repo.objects.select_related("namespace").filter(namespace__name=ns, name=name).first()
    if repo is None:
        return None
    requested = ((job.config or {}).get("eval") or {}).get("watermark")
    try:
        return generation_watermark(repo=repo, requested=requested, user=job.created_by)
    except NotFound:  # the launcher lost read access meanwhile
        return None
