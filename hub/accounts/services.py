"""Every write of the accounts domain."""

from __future__ import annotations

import hashlib
import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone

from hub.accounts.models import ApiToken, Membership, Namespace, Role, User
from hub.common.errors import Conflict, InvalidInput, NotFound
from hub.common.validation import validate_slug

TOKEN_PREFIX = "hub_"


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def user_create(*, username: str, password: str | None = None, email: str = "", is_staff: bool = False) -> User:
    """Create a user and their personal namespace (same name)."""
    validate_slug(username, what="username")
    if Namespace.objects.filter(name__iexact=username).exists() or User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"The name {username!r} is taken.", code="name_taken")
    user = User(username=username, email=email, is_staff=is_staff, is_superuser=is_staff)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean()
    user.save()
    ns = Namespace.objects.create(name=username, kind=Namespace.Kind.USER)
    Membership.objects.create(namespace=ns, user=user, role=Role.ADMIN)
    return user


@transaction.atomic
def org_create(*, name: str, creator: User) -> Namespace:
    validate_slug(name, what="namespace")
    if Namespace.objects.filter(name__iexact=name).exists() or User.objects.filter(username__iexact=name).exists():
        raise Conflict(f"The name {name!r} is taken.", code="name_taken")
    try:
        ns = Namespace.objects.create(name=name, kind=Namespace.Kind.ORG)
    except IntegrityError as e:  # lost a race for the name
        raise Conflict(f"The name {name!r} is taken.", code="name_taken") from e
    Membership.objects.create(namespace=ns, user=creator, role=Role.ADMIN)
    return ns


@transaction.atomic
def membership_set(*, namespace: Namespace, user: User, role: str) -> Membership:
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.", code="invalid_role")
    if namespace.kind == Namespace.Kind.USER and namespace.name == user.username and role != Role.ADMIN:
        raise InvalidInput("A user always administers their own namespace.", code="invalid_role")
    membership, _ = Membership.objects.update_or_create(namespace=namespace, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def membership_remove(*, namespace: Namespace, user: User) -> None:
    if namespace.kind == Namespace.Kind.USER and namespace.name == user.username:
        raise InvalidInput("A user cannot leave their own namespace.", code="invalid_role")
    membership = Membership.objects.filter(namespace=namespace, user=user).first()
    if membership is None:
        raise NotFound(f"{user.username} is not a member of {namespace.name}.")
    if membership.role == Role.ADMIN and not Membership.objects.filter(namespace=namespace, role=Role.ADMIN).exclude(pk=membership.pk).exists():
        raise Conflict("An organisation needs at least one admin.", code="last_admin")
    membership.delete()


def token_create(*, user: User, name: str, scope: str = ApiToken.Scope.WRITE) -> tuple[ApiToken, str]:
    """Create a token; returns (record, secret). The secret is never stored nor shown again."""
    if scope not in ApiToken.Scope.values:
        raise InvalidInput(f"Unknown scope {scope!r}; use read or write.", code="invalid_scope")
    name = (name or "token").strip()[:100]
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=secret[:10], digest=token_digest(secret), scope=scope)
    return token, secret


def token_revoke(*, user: User, token_id: int) -> ApiToken:
    token = ApiToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_touch(*, token: ApiToken) -> None:
    """Record use, at most once a minute per token (no write on every request)."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
