"""Garbage collection of the registry: commits no ref reaches, then the trees, files, chunks
and blob files nothing references any more.

GC and every writer that may reuse stored trees, files or chunks (commits, merges, uploads,
negotiation) meet at the GC barrier (``services._gc_barrier``): writers hold it shared, GC
exclusive. It lives in :mod:`hub.registry.services`, next to the writers, so this module
depends on the services and never the other way round.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hub.registry import selectors
from hub.registry.models import Chunk, Commit, FileObject, Ref, Repo, Tree
from hub.registry.services import _gc_barrier, _unindex
from hub.stores.blobs import get_blob_store


def gc(*, dry_run: bool = True, grace_seconds: int | None = None) -> dict:
    """Delete commits no ref reaches, then trees, files and chunks nothing references.

    Safe against pushes in flight: a chunk claimed (uploaded, or confirmed present by
    negotiation) within the grace period is kept even when unreferenced, and so is any commit
    younger than it. Mark and sweep run in one transaction for the DB rows; blob files are
    removed after the rows, so a crash leaves at worst unreferenced bytes for the next run."""
    grace = settings.HUB_GC_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    started = time.monotonic()
    with transaction.atomic():
        _gc_barrier(exclusive=True)
        reachable_pks: set[int] = set()
        for repo in Repo.objects.all():
            graph = selectors.commit_graph(repo=repo)
            heads = list(Ref.objects.filter(repo=repo).values_list("commit__sha", flat=True))
            reach = graph.ancestors_of(heads)
            reachable_pks |= {graph.pk[s] for s in reach}
        dead_commits = Commit.objects.exclude(pk__in=reachable_pks).filter(created_at__lt=cutoff)
        n_commits = dead_commits.count()
        live_trees = set(
            Commit.objects.exclude(pk__in=dead_commits.values("pk")).values_list(
                "tree_id", flat=True
            )
        )
        live_files: set[str] = set()
        for entries in Tree.objects.filter(hash__in=live_trees).values_list("entries", flat=True):
            live_files |= set(entries.values())
        from django.apps import apps

        if apps.is_installed("hub.jobs"):  # files that jobs produced (profiles, eval results) stay
            live_files |= set(
                apps.get_model("jobs", "JobArtifact").objects.values_list("file_id", flat=True)
            )
        if apps.is_installed("hub.compat.mlflow"):  # files MLflow clients logged
            for model in ("Artifact", "ModelArtifact"):  # to runs, to logged models
                live_files |= set(
                    apps.get_model("mlflow_compat", model).objects.values_list("file_id", flat=True)
                )
        live_chunks: set[str] = set()
        for chunks in FileObject.objects.filter(oid__in=live_files).values_list(
            "chunks", flat=True
        ):
            live_chunks |= {c[0] for c in chunks}
        dead_trees = [h for h in Tree.objects.values_list("hash", flat=True) if h not in live_trees]
        dead_files = [
            o for o in FileObject.objects.values_list("oid", flat=True) if o not in live_files
        ]
        dead_chunks = [
            (h, s)
            for h, s, t in Chunk.objects.values_list("hash", "size", "touched_at")
            if h not in live_chunks and t < cutoff
        ]
        report = {
            "dry_run": dry_run,
            "grace_seconds": grace,
            "commits": n_commits,
            "trees": len(dead_trees),
            "files": len(dead_files),
            "chunks": len(dead_chunks),
            "reclaimable_bytes": sum(s for _, s in dead_chunks),
        }
        if not dry_run:
            _unindex(
                [
                    f"{ns}/{name}@{sha}"
                    for ns, name, sha in dead_commits.values_list(
                        "repo__namespace__name", "repo__name", "sha"
                    )
                ]
            )
            dead_commits.delete()
            for i in range(0, len(dead_trees), 500):
                Tree.objects.filter(hash__in=dead_trees[i : i + 500]).delete()
            for i in range(0, len(dead_files), 500):
                FileObject.objects.filter(oid__in=dead_files[i : i + 500]).delete()
            for i in range(0, len(dead_chunks), 500):
                Chunk.objects.filter(hash__in=[h for h, _ in dead_chunks[i : i + 500]]).delete()
    if not dry_run:
        blobs = get_blob_store()
        freed = _delete_blobs([h for h, _ in dead_chunks], blobs=blobs, cutoff=cutoff)
        # Orphan blob files (a crash between write and row) older than the grace period. The
        # scan runs unlocked; each candidate is re-checked under the barrier before it goes,
        # and its age is judged there by ``blobs.mtime`` (an object listing's time is only
        # the store's LastModified; the S3 backend's mtime is the hub's own stamp).
        known = set(Chunk.objects.values_list("hash", flat=True))
        candidates = [d for d, _s, _m in blobs.iter_digests() if d not in known]
        orphans = _delete_blobs(candidates, blobs=blobs, cutoff=cutoff)
        report["freed_bytes"] = sum(freed.values()) + sum(orphans.values())
        report["orphan_blobs"] = len(orphans)
        # Staged bytes of uploads that crashed before publishing (never visible as chunks).
        report["staged_swept"] = blobs.sweep_staging(older_than=cutoff.timestamp())
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def _delete_blobs(
    digests: list[str], *, blobs, cutoff: datetime, batch: int = 500
) -> dict[str, int]:
    """Unlink the blob files of chunks that GC found dead, safely against uploads in flight.

    Between GC's sweep transaction and here, an upload of the same digest may have put the
    file back and recreated its row (uploads are not behind the exclusive barrier while they
    stream). So each file is deleted only under the exclusive GC barrier -- which an upload
    needs (shared) to publish a file or claim a row -- and only if, re-checked there, it still
    has no Chunk row and was last written before the grace cutoff. Returns {digest: bytes}."""
    freed: dict[str, int] = {}
    limit = cutoff.timestamp()
    for i in range(0, len(digests), batch):
        part = digests[i : i + batch]
        with transaction.atomic():
            _gc_barrier(exclusive=True)
            revived = set(Chunk.objects.filter(hash__in=part).values_list("hash", flat=True))
            for digest in part:
                mtime = blobs.mtime(digest)
                if digest in revived or mtime is None or mtime >= limit:
                    continue
                n = blobs.delete(digest)
                if n:
                    freed[digest] = n
    return freed
