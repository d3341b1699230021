"""Experiment tracking records. Metric points live in ClickHouse; a run here holds its
identity, params, tags, notes, status and per-key summaries (kept current on ingest)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from hub.accounts.models import Namespace


class Project(models.Model):
    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=64)
    private = models.BooleanField(default=False)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # {metric key or glob: "min" | "max" | "none"}: how comparisons rank this project's
    # metrics, before the built-in name table (hub.tracking.report.DIRECTION_RULES).
    metric_directions = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name"], name="uniq_project_name")
        ]

    @property
    def full_name(self) -> str:
        return f"{self.namespace.name}/{self.name}"


class Run(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"
        KILLED = "killed"

    id = models.CharField(max_length=32, primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=200)
    group = models.CharField(max_length=200, blank=True, default="", db_index=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Params flattened to dotted keys; each key is write-once.
    params = models.JSONField(default=dict)
    tags = models.JSONField(default=list)
    notes = models.TextField(blank=True, default="")
    # {key: {last, last_step, min, min_step, max, max_step}}; maintained on ingest (idempotent).
    summary = models.JSONField(default=dict)
    # Lineage: the model commit the run produced or used, and the job that ran it.
    commit_repo = models.CharField(max_length=140, blank=True, default="")
    commit_sha = models.CharField(max_length=40, blank=True, default="", db_index=True)
    job_id = models.CharField(max_length=64, blank=True, default="", db_index=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-started_at"])]


class RunAlert(models.Model):
    """A MoE health alert raised on a run (hub/shared/moe_health.py: the rules); recorded by
    the job's supervisor from the job's ``alert`` events. One row per (run, key, step): a
    retried post collapses."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32, db_index=True)
    key = models.CharField(max_length=200)
    step = models.BigIntegerField()
    time = models.DateTimeField()
    message = models.TextField()
    details = models.JSONField(default=dict)
    # What the job did about it: none, stop, checkpoint_stop (hub.shared.moe_health.ACTIONS).
    action = models.CharField(max_length=16, default="none")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key", "step"], name="uniq_run_alert")
        ]
        indexes = [models.Index(fields=["run", "step"])]
