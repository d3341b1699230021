from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person or a robot account. Each user owns a namespace of the same name."""


class Namespace(models.Model):
    """Owner of repos and projects: a user's personal namespace or an organisation."""

    class Kind(models.TextChoices):
        USER = "user"
        ORG = "org"

    name = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


ROLE_RANK = {Role.READ: 1, Role.WRITE: 2, Role.ADMIN: 3}


class Membership(models.Model):
    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["namespace", "user"], name="uniq_membership")
        ]


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is stored: the secret is shown once at creation.

    Tokens are 256-bit random strings, so a fast hash is enough (no password stretching is
    needed against brute force of a random 43-character secret)."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="first characters, to recognise a token")
    digest = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.WRITE)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class WorkerCredential(models.Model):
    """A credential of the job-running machinery, never of a person. Only its SHA-256 is stored.

    ``service``: the workers' long-lived credential (``HUB_WORKER_TOKEN``). It acts as nobody:
    it may read a job's record to reserve its GPUs, claim a queued job (``/worker/start``), and,
    for a job it could not start, note one log line or fail it — nothing else.

    ``attempt``: one job attempt's credential, handed out by ``/worker/start``. It acts as the
    job's launcher, but only on ``rules`` (``[methods, path, prefix?]``: the job's worker
    endpoints, its base and target repos, its project's runs), only while that attempt is the
    job's current one, and until ``expires_at`` or the end of the attempt (``revoked_at``)."""

    class Kind(models.TextChoices):
        SERVICE = "service"
        ATTEMPT = "attempt"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(
        max_length=16, help_text="first characters, to recognise a credential"
    )
    digest = models.CharField(max_length=64, unique=True)
    job_id = models.CharField(max_length=32, blank=True, default="", db_index=True)
    attempt = models.PositiveIntegerField(default=0)
    acts_as = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    rules = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)


class SignInFailures(models.Model):
    """Failed sign-ins in the current window, per key (``user:<name>`` or ``addr:<ip>``). In the
    database, so every web replica counts the same failures."""

    key = models.CharField(max_length=200, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()
