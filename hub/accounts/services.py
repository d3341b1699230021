"""Every write of the accounts domain."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hub.accounts.models import (
    ApiToken,
    Membership,
    Namespace,
    Role,
    SignInFailures,
    User,
    WorkerCredential,
)
from hub.common.errors import Conflict, InvalidInput, NotFound
from hub.common.validation import validate_slug

TOKEN_PREFIX = "hub_"
# Worker credentials look different from user tokens, so a leaked one is recognisable.
WORKER_SERVICE_PREFIX = "hubw_"
JOB_ATTEMPT_PREFIX = "hubj_"


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def user_create(
    *, username: str, password: str | None = None, email: str = "", is_staff: bool = False
) -> User:
    """Create a user and their personal namespace (same name)."""
    validate_slug(username, what="username")
    if (
        Namespace.objects.filter(name__iexact=username).exists()
        or User.objects.filter(username__iexact=username).exists()
    ):
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
    if (
        Namespace.objects.filter(name__iexact=name).exists()
        or User.objects.filter(username__iexact=name).exists()
    ):
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
        raise InvalidInput(
            f"Unknown role {role!r}; use one of {', '.join(Role.values)}.", code="invalid_role"
        )
    if (
        namespace.kind == Namespace.Kind.USER
        and namespace.name == user.username
        and role != Role.ADMIN
    ):
        raise InvalidInput("A user always administers their own namespace.", code="invalid_role")
    membership, _ = Membership.objects.update_or_create(
        namespace=namespace, user=user, defaults={"role": role}
    )
    return membership


@transaction.atomic
def membership_remove(*, namespace: Namespace, user: User) -> None:
    if namespace.kind == Namespace.Kind.USER and namespace.name == user.username:
        raise InvalidInput("A user cannot leave their own namespace.", code="invalid_role")
    membership = Membership.objects.filter(namespace=namespace, user=user).first()
    if membership is None:
        raise NotFound(f"{user.username} is not a member of {namespace.name}.")
    if (
        membership.role == Role.ADMIN
        and not Membership.objects.filter(namespace=namespace, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .exists()
    ):
        raise Conflict("An organisation needs at least one admin.", code="last_admin")
    membership.delete()


def token_create(
    *, user: User, name: str, scope: str = ApiToken.Scope.WRITE
) -> tuple[ApiToken, str]:
    """Create a token; returns (record, secret). The secret is never stored nor shown again."""
    if scope not in ApiToken.Scope.values:
        raise InvalidInput(f"Unknown scope {scope!r}; use read or write.", code="invalid_scope")
    name = (name or "token").strip()[:100]
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=secret[:10], digest=token_digest(secret), scope=scope
    )
    return token, secret


def token_revoke(*, user: User, token_id: int) -> ApiToken:
    token = ApiToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


@transaction.atomic
def user_deactivate(*, user: User) -> int:
    """Retire an account: every API token revoked, no sign-in (inactive, unusable password).
    Its records (runs, commits, jobs) stay. Returns how many tokens were revoked."""
    revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    user.is_active = False
    user.set_unusable_password()
    user.save(update_fields=["is_active", "password"])
    return revoked


def token_touch(*, token: ApiToken) -> None:
    """Record use, at most once a minute per token (no write on every request)."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)


# --- worker credentials --------------------------------------------------------------------------


def worker_service_credential_create(*, name: str = "worker") -> tuple[WorkerCredential, str]:
    """The workers' service credential (``HUB_WORKER_TOKEN``); returns (record, secret). It
    belongs to no user: it may only claim jobs (see :class:`WorkerCredential`)."""
    secret = WORKER_SERVICE_PREFIX + secrets.token_urlsafe(32)
    cred = WorkerCredential.objects.create(
        kind=WorkerCredential.Kind.SERVICE,
        name=(name or "worker")[:100],
        prefix=secret[:10],
        digest=token_digest(secret),
    )
    return cred, secret


def job_credential_issue(*, job_id: str, attempt: int, acts_as, rules: list, ttl_s: float) -> str:
    """A fresh credential for one job attempt; every earlier one of the job is revoked. Returns
    the secret, which is never stored."""
    now = timezone.now()
    job_credentials_revoke(job_id=job_id)
    secret = JOB_ATTEMPT_PREFIX + secrets.token_urlsafe(32)
    WorkerCredential.objects.create(
        kind=WorkerCredential.Kind.ATTEMPT,
        name=f"job {job_id} attempt {attempt}",
        prefix=secret[:10],
        digest=token_digest(secret),
        job_id=job_id,
        attempt=attempt,
        acts_as=acts_as,
        rules=rules,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    return secret


def job_credentials_revoke(*, job_id: str) -> int:
    """End every live credential of the job (its attempt ended: finish, requeue, lost, cancel)."""
    return WorkerCredential.objects.filter(
        kind=WorkerCredential.Kind.ATTEMPT, job_id=job_id, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())


# --- sign-in throttling ----------------------------------------------------------------------------


def _signin_limits(key: str) -> tuple[int, int]:
    if key.startswith("user:"):
        return settings.HUB_SIGNIN_MAX_FAILURES_PER_ACCOUNT, settings.HUB_SIGNIN_WINDOW_S
    return settings.HUB_SIGNIN_MAX_FAILURES_PER_ADDRESS, settings.HUB_SIGNIN_WINDOW_S


def signin_retry_after(*, keys: list[str]) -> int:
    """Seconds until a sign-in may be tried for these keys again (0: now). A key is locked once
    it has its limit of failures in the current window, until the window ends."""
    now = timezone.now()
    wait = 0
    for row in SignInFailures.objects.filter(key__in=keys):
        limit, window = _signin_limits(row.key)
        ends = row.window_started_at + timedelta(seconds=window)
        if row.failures >= limit and ends > now:
            wait = max(wait, int((ends - now).total_seconds()) + 1)
    return wait


@transaction.atomic
def signin_failed(*, keys: list[str]) -> None:
    now = timezone.now()
    for key in keys:
        _, window = _signin_limits(key)
        row, _ = SignInFailures.objects.select_for_update().get_or_create(
            key=key, defaults={"window_started_at": now}
        )
        if row.window_started_at + timedelta(seconds=window) <= now:
            row.failures, row.window_started_at = 0, now
        row.failures += 1
        row.save(update_fields=["failures", "window_started_at"])


def signin_succeeded(*, account_key: str) -> None:
    """A successful sign-in clears the account's count (not the address's: one good password
    must not reset an address that is guessing at many accounts)."""
    SignInFailures.objects.filter(key=account_key).delete()
