"""What MLflow's model has beyond a hub project and a hub run, kept beside them.

A hub project or run without a row here is an ordinary MLflow experiment or run (its name,
no key/value tags, active): rows appear only when an MLflow client writes something the
hub's own records cannot hold."""

from __future__ import annotations

from django.db import models

from hub.accounts.models import Namespace
from hub.registry.models import FileObject
from hub.tracking.models import Project, Run


class Experiment(models.Model):
    """The MLflow side of a project: the experiment's name as the client wrote it (MLflow
    names are free text, project names are slugs), its lifecycle and its tags."""

    project = models.OneToOneField(
        Project, primary_key=True, on_delete=models.CASCADE, related_name="mlflow"
    )
    # Copied from the project, so a name is unique per namespace by a constraint.
    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=500)
    deleted = models.BooleanField(default=False)
    tags = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name"], name="uniq_mlflow_experiment")
        ]


class RunState(models.Model):
    """The MLflow side of a run: its key/value tags (``mlflow.user``, ``mlflow.source.name``,
    the user's own) and whether MLflow deleted it (a soft delete: ``restore_run`` undoes it)."""

    run = models.OneToOneField(
        Run, primary_key=True, on_delete=models.CASCADE, related_name="mlflow"
    )
    tags = models.JSONField(default=dict)
    deleted = models.BooleanField(default=False, db_index=True)
    # {metric key: points dropped}: NaN/Inf values the hub's metrics store does not keep.
    dropped_non_finite = models.JSONField(default=dict)
    # [{model_id, step}]: the logged models this run produced (MLflow's run outputs).
    outputs = models.JSONField(default=list)


class Artifact(models.Model):
    """A file an MLflow client logged to a run, stored as a registry file (chunks in the
    blob store, deduplicated with everything else the hub stores)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="mlflow_artifacts")
    path = models.CharField(max_length=1024)
    file = models.ForeignKey(FileObject, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "path"], name="uniq_mlflow_artifact")]


class LoggedModel(models.Model):
    """An MLflow 3 logged model (``mlflow.<flavor>.log_model``): a named set of files in an
    experiment, usually produced by a run, with its own params, tags and status."""

    model_id = models.CharField(max_length=40, primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="mlflow_models")
    name = models.CharField(max_length=500)
    source_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="mlflow_models"
    )
    model_type = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=40, default="LOGGED_MODEL_PENDING")
    params = models.JSONField(default=dict)
    tags = models.JSONField(default=dict)
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class ModelArtifact(models.Model):
    """A file of a logged model, stored like a run's artifact (a registry file)."""

    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=1024)
    file = models.ForeignKey(FileObject, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "path"], name="uniq_mlflow_model_artifact")
        ]
