"""Bearer-token authentication (``Authorization: Bearer hub_...``).

Two kinds of secret share the header: a user's API token (``hub_``), and the job-running
machinery's worker credentials (``hubw_`` the workers' service credential, ``hubj_`` one job
attempt's credential; see :class:`hub.accounts.models.WorkerCredential`)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from hub.accounts.models import ApiToken, WorkerCredential
from hub.accounts.services import (
    JOB_ATTEMPT_PREFIX,
    WORKER_SERVICE_PREFIX,
    token_digest,
    token_touch,
)
from hub.common.errors import Forbidden, NotAuthenticated

# The service credential claims jobs: it reads the job list and a job's
# record (to reserve its GPUs), and reaches the worker endpoints, which decide the rest.
_SERVICE_RULES = [
    (("GET",), "/api/v1/jobs", False),
    (("GET",), "/api/v1/jobs/*", False),
    (("POST",), "/api/v1/jobs/*/worker/start", False),
    (("POST",), "/api/v1/jobs/*/worker/finish", False),
    (("POST",), "/api/v1/jobs/*/worker/logs", False),
]


def _path_matches(pattern: str, path: str, prefix: bool) -> bool:
    """``*`` stands for one path segment; ``prefix`` also matches everything below."""
    want, have = pattern.rstrip("/").split("/"), path.rstrip("/").split("/")
    if len(have) < len(want) or (not prefix and len(have) != len(want)):
        return False
    return all(w == "*" or w == h for w, h in zip(want, have, strict=False))


def credential_allows(rules, method: str, path: str) -> bool:
    return any(method in methods and _path_matches(p, path, prefix) for methods, p, prefix in rules)


class TokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Bearer <token>'."
            )
        try:
            secret = header[1].decode()
        except UnicodeError as e:
            raise exceptions.AuthenticationFailed("Malformed token.") from e
        if secret.startswith((WORKER_SERVICE_PREFIX, JOB_ATTEMPT_PREFIX)):
            return self._worker(request, secret)
        token = ApiToken.objects.select_related("user").filter(digest=token_digest(secret)).first()
        if token is None or not token.is_active or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        token_touch(token=token)
        return token.user, token

    def _worker(self, request, secret: str):
        # Errors are HubErrors (not DRF's), so their codes reach the client: a supervisor
        # tells "my attempt ended" (job_credential_revoked) from a bad credential.
        cred = (
            WorkerCredential.objects.select_related("acts_as")
            .filter(digest=token_digest(secret))
            .first()
        )
        if cred is None:
            raise exceptions.AuthenticationFailed("Invalid worker credential.")
        if cred.revoked_at is not None:
            raise NotAuthenticated(
                f"This credential of job {cred.job_id} was revoked: its attempt ended.",
                code="job_credential_revoked",
            )
        if cred.expires_at is not None and cred.expires_at <= timezone.now():
            raise NotAuthenticated(
                f"This credential of job {cred.job_id} expired.", code="job_credential_revoked"
            )
        method, path = request.method.upper(), request.path
        if cred.kind == WorkerCredential.Kind.SERVICE:
            if not credential_allows(_SERVICE_RULES, method, path):
                raise Forbidden(
                    "The workers' service credential only claims jobs.", code="not_a_worker"
                )
            return AnonymousUser(), cred
        rules = [(tuple(m), p, bool(prefix)) for m, p, prefix in cred.rules]
        if not credential_allows(rules, method, path):
            raise Forbidden(
                f"A credential of job {cred.job_id} reaches only that job's worker endpoints, "
                "repos and run.",
                code="job_credential_scope",
            )
        user = (
            cred.acts_as if cred.acts_as is not None and cred.acts_as.is_active else AnonymousUser()
        )
        return user, cred

    def authenticate_header(self, request):
        return 'Bearer realm="hub"'
