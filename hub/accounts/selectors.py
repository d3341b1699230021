"""Reads of the accounts domain, and the permission questions every other domain asks."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from hub.accounts.models import ROLE_RANK, ApiToken, Membership, Namespace, Role, User
from hub.common.errors import Forbidden, NotAuthenticated, NotFound


def namespace_get(*, name: str) -> Namespace:
    ns = Namespace.objects.filter(name=name).first()
    if ns is None:
        raise NotFound(f"Namespace {name!r} not found.", code="namespace_not_found")
    return ns


def user_get(*, username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"User {username!r} not found.", code="user_not_found")
    return user


def role_in(*, user, namespace: Namespace) -> str | None:
    if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    m = Membership.objects.filter(namespace=namespace, user=user).only("role").first()
    return m.role if m else None


def token_scope(request) -> str | None:
    """Scope of the token that authenticated this request (None for session auth)."""
    auth = getattr(request, "auth", None)
    return auth.scope if isinstance(auth, ApiToken) else None


def require_role(request, *, namespace: Namespace, role: str, hide: bool = False) -> str:
    """Ensure the request's user holds ``role`` (or higher) in ``namespace``.

    Writes also need a write-scoped token. ``hide`` answers 404 instead of 403 for
    callers who may not even learn the thing exists (private repos)."""
    user = request.user
    if not user or not user.is_authenticated:
        if hide:
            raise NotFound("Not found.")
        raise NotAuthenticated("Authentication required: pass 'Authorization: Bearer <token>'.")
    have = role_in(user=user, namespace=namespace)
    if have is None and hide:
        raise NotFound("Not found.")
    if have is None or ROLE_RANK[have] < ROLE_RANK[role]:
        raise Forbidden(
            f"You need the {role} role in namespace {namespace.name!r}.", code="insufficient_role"
        )
    if role != Role.READ and token_scope(request) == ApiToken.Scope.READ:
        raise Forbidden("This token is read-only.", code="token_read_only")
    return have


def token_list(*, user: User):
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def namespaces_for(*, user: User):
    return Namespace.objects.filter(memberships__user=user).order_by("name")
