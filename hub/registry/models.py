"""Registry records. Commits, trees and file objects are immutable once written; only refs
move, and only by compare-and-swap (see services.branch_move)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from hub.accounts.models import Namespace


class Repo(models.Model):
    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="repos")
    name = models.CharField(max_length=64)
    private = models.BooleanField(default=False)
    description = models.TextField(blank=True, default="")
    default_branch = models.CharField(max_length=255, default="main")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "name"], name="uniq_repo_name")]

    @property
    def full_name(self) -> str:
        return f"{self.namespace.name}/{self.name}"


class Chunk(models.Model):
    """A stored chunk (bytes live in the blob store). Shared by every repo: dedupe is global."""

    hash = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    # Last upload or negotiation that claimed this chunk. GC spares chunks claimed within the
    # grace period, so a push between "which chunks do you lack?" and its commit is safe.
    touched_at = models.DateTimeField(db_index=True)


class FileObject(models.Model):
    """A file's content: its ordered chunk list, and for safetensors its tensor index."""

    oid = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    kind = models.CharField(max_length=16)  # "safetensors" | "blob"
    chunks = models.JSONField()  # [[hash, size], ...]
    tensors = models.JSONField(null=True)  # {name: {dtype, shape, begin, end}} in data order
    header_metadata = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)


class Tree(models.Model):
    """Content-addressed snapshot: ``{path: oid}``. Unchanged trees are shared."""

    hash = models.CharField(max_length=64, primary_key=True)
    entries = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)


class Commit(models.Model):
    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="commits")
    sha = models.CharField(max_length=40)
    tree = models.ForeignKey(Tree, on_delete=models.PROTECT, related_name="+")
    parents = models.JSONField(default=list)  # ordered shas; first parent = the branch's line
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150)
    message = models.TextField()
    metadata = models.JSONField(default=dict)
    created_at = models.DateTimeField()  # part of the hash: set once, never auto-updated
    generation = models.PositiveIntegerField()  # 1 + max(parent generations): prunes ancestry walks
    # Lineage: the job and run that produced this commit (apps that own them link back).
    job_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    run_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    # {files, bytes, new_bytes, reused_bytes} (hub.registry.dedupe): immutable like the commit,
    # so computed once when it is created. Not part of the hash.
    stats = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repo", "sha"], name="uniq_commit_sha")]
        indexes = [models.Index(fields=["repo", "-generation"])]


class Ref(models.Model):
    class Kind(models.TextChoices):
        BRANCH = "branch"
        TAG = "tag"

    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="refs")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    commit = models.ForeignKey(Commit, on_delete=models.PROTECT, related_name="+")
    protected = models.BooleanField(default=False)
    message = models.TextField(blank=True, default="")  # annotated tags
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repo", "kind", "name"], name="uniq_ref")]
