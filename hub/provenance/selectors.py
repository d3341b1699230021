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
