"""Job records. A job's state moves only through services.job_transition (compare-and-swap on
the current state), and every move is recorded with its time and reason."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from hub.tracking.models import Project


class Job(models.Model):
    class Kind(models.TextChoices):
        TRAIN = "train"
        EVALUATE = "evaluate"
        PROFILE = "profile"
        FINETUNE = "finetune"
        QUANTIZE = "quantize"
        INSPECT = "inspect"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        LOST = "lost"

    TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.LOST}

    id = models.CharField(max_length=32, primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    config = models.JSONField()
    # Inputs: the base model, pinned to a commit id (never a moving branch name).
    base_repo = models.CharField(max_length=140, blank=True, default="")
    base_ref = models.CharField(max_length=255, blank=True, default="")
    base_commit = models.CharField(max_length=40, blank=True, default="")
    # Outputs: weights become a commit on target_repo@target_branch.
    target_repo = models.CharField(max_length=140, blank=True, default="")
    target_branch = models.CharField(max_length=255, blank=True, default="")
    resources = models.JSONField(default=dict)  # {gpus, cpus, memory_mb, time_limit_s}
    queue = models.CharField(max_length=16, default="cpu")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    status_reason = models.TextField(blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")
    gpus = models.JSONField(default=list)  # indices the worker reserved for it
    attempt = models.PositiveIntegerField(default=0)
    progress = models.JSONField(default=dict)  # {step, total, eta_s}
    run_id = models.CharField(max_length=32, blank=True, default="")
    result_commit = models.CharField(max_length=40, blank=True, default="")
    result_branch = models.CharField(max_length=255, blank=True, default="")
    summary = models.JSONField(default=dict)
    events_received = models.PositiveIntegerField(default=0)
    events_rejected = models.PositiveIntegerField(default=0)
    relaunched_from = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"])]


class JobTransition(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, blank=True, default="")
    to_status = models.CharField(max_length=16)
    at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["at", "pk"]


class JobArtifact(models.Model):
    """A file a job produced (profile outputs, eval results, samples), stored as chunks in the
    blob store like any registry file."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=1024)
    kind = models.CharField(max_length=32)
    file = models.ForeignKey("registry.FileObject", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "path"], name="uniq_job_artifact")]
