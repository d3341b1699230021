"""Reads of the provenance domain: settings, keys, and which keys a caller may verify against."""

from __future__ import annotations

from django.db.models import Q

from hub.accounts import selectors as accounts
from hub.common.errors import NotFound
from hub.provenance.models import WatermarkKey, WatermarkSetting
from hub.registry.models import Repo
from hub.shared import watermark as wm


def require_read(*, repo: Repo, user) -> None:
    """A private repo is invisible (404) to anyone outside its namespace."""
    if repo.private and accounts.role_in(user=user, namespace=repo.namespace) is None:
        raise NotFound(f"Repo {repo.namespace.name}/{repo.name} not found.", code="repo_not_found")


def setting_get(*, repo: Repo) -> WatermarkSetting:
    """The repo's setting, or the default (off, strength 0.3) unsaved."""
    setting = WatermarkSetting.objects.filter(repo=repo).first()
    return setting or WatermarkSetting(repo=repo, enabled=False, strength=wm.DEFAULT_STRENGTH)


def current_key(*, repo: Repo) -> WatermarkKey | None:
    return (
        WatermarkKey.objects.filter(repo=repo, active=True).order_by("-created_at", "-pk").first()
    )


def keys_for_verify(*, user, repo: Repo | None):
    """The keys a verification tests: the repo's (the caller may read it), or without a repo
    those of every repo the caller may read (public repos for anonymous callers)."""
    qs = WatermarkKey.objects.select_related("repo", "repo__namespace").order_by("pk")
    if repo is not None:
        return qs.filter(repo=repo)
    if user is not None and user.is_authenticated:
        if user.is_superuser:
            return qs
        return qs.filter(
            Q(repo__private=False) | Q(repo__namespace__memberships__user=user)
        ).distinct()
    return qs.filter(repo__private=False)


def verify(*, text: str, user, repo: Repo | None, z_threshold: float, max_keys: int) -> dict:
    """Test ``text`` (its UTF-8 bytes) against the keys the caller may use (see
    :func:`keys_for_verify`) and report the best key's test. With m keys tested, the p-value
    that decides is Bonferroni's ``min(1, m * p)`` (the family-wise error of trying every key
    stays at the threshold's p); with one key it is the plain one-sided p-value. Never the key.
    """
    from hub.common.errors import InvalidInput
    from hub.provenance import crypto

    keys = list(keys_for_verify(user=user, repo=repo)[: max_keys + 1])
    if len(keys) > max_keys:
        raise InvalidInput(
            f"More than {max_keys} watermark keys could have marked this text: name the repo.",
            code="repo_required",
            details={"max_keys": max_keys},
        )
    ids = list(text.encode("utf-8"))
    best: tuple[wm.Detection, WatermarkKey] | None = None
    for key in keys:
        secret = crypto.unseal(key.sealed_secret, key_id=key.key_id)
        d = wm.detect(ids, key=secret, gamma=key.gamma, context_width=key.context_width)
        if best is None or d.p_value < best[0].p_value:
            best = (d, key)
    p_threshold = wm.p_value(z_threshold)
    if best is None:
        return {
            "detected": False,
            "keys_tested": 0,
            "tokens_scored": 0,
            "green_tokens": 0,
            "gamma": None,
            "z_score": None,
            "p_value": None,
            "p_value_corrected": None,
            "z_threshold": z_threshold,
            "p_threshold": p_threshold,
            "match": None,
            "scheme": wm.SCHEME,
        }
    d, key = best
    p_corr = wm.bonferroni(d.p_value, len(keys))
    detected = d.tokens_scored >= wm.MIN_TOKENS_FOR_DETECTION and p_corr <= p_threshold
    return {
        "detected": detected,
        "keys_tested": len(keys),
        "tokens_scored": d.tokens_scored,
        "green_tokens": d.green,
        "gamma": d.gamma,
        "z_score": d.z,
        "p_value": d.p_value,
        "p_value_corrected": p_corr,
        "z_threshold": z_threshold,
        "p_threshold": p_threshold,
        "match": (
            {"repo": key.repo.full_name, "repo_id": key.repo_id, "key_id": key.key_id}
            if detected
            else None
        ),
        "scheme": wm.SCHEME,
    }
