"""Every write of the registry. One function per use case, keyword-only, transactional.

The invariant that matters most: a branch head moves only by compare-and-swap against the
head the writer started from (:func:`_move_branch`). Two writers that started from the same
head cannot both win; the loser's transaction rolls back whole (its commit row included),
so nothing is lost and nothing is left orphaned.

Here: repos, chunks, commits, branches and tags, and the helpers every write shares (the
compare-and-swap, the GC barrier, search re-indexing). Merging lives in
:mod:`hub.registry.merge`, garbage collection in :mod:`hub.registry.gc`; both build on
these helpers, and this module imports neither.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime

import blake3
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hub.common.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from hub.common.validation import (
    validate_path,
    validate_ref_name,
    validate_slug,
    validate_tree_paths,
)
from hub.registry import selectors
from hub.registry.models import Chunk, Commit, FileObject, Ref, Repo, Tree
from hub.shared.chunking import MAX_CHUNK, file_oid, is_safetensors
from hub.shared.tensors import HeaderError, parse_header, read_header_len
from hub.stores.blobs import BlobHashMismatch, BlobTooLarge, get_blob_store

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_OPERATIONS = 10_000
MAX_MESSAGE = 64 * 1024


# --- hashing ---------------------------------------------------------------------------------


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def tree_hash(entries: dict[str, str]) -> str:
    return blake3.blake3(b"moehub-tree-v1\n" + _canonical(entries)).hexdigest()


def _time_str(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def commit_sha(
    *,
    tree: str,
    parents: list[str],
    author: str,
    message: str,
    created_at: datetime,
    metadata: dict,
) -> str:
    """40 hex, like git: a commit's id is a hash of everything that defines it."""
    body = _canonical(
        {
            "tree": tree,
            "parents": parents,
            "author": author,
            "message": message,
            "time": _time_str(created_at),
            "metadata": metadata,
        }
    )
    return hashlib.blake2b(b"moehub-commit-v1\n" + body, digest_size=20).hexdigest()


# --- repos -----------------------------------------------------------------------------------


def _empty_tree() -> Tree:
    entries: dict[str, str] = {}
    tree, _ = Tree.objects.get_or_create(hash=tree_hash(entries), defaults={"entries": entries})
    return tree


@transaction.atomic
def repo_create(
    *,
    namespace,
    name: str,
    user,
    private: bool = False,
    description: str = "",
    default_branch: str = "main",
) -> Repo:
    """A repo starts with one empty commit on its default branch, so every branch always has
    a head to compare-and-swap against."""
    validate_slug(name, what="repo name")
    validate_ref_name(default_branch)
    if Repo.objects.filter(namespace=namespace, name__iexact=name).exists():
        raise Conflict(f"Repo {namespace.name}/{name} already exists.", code="repo_exists")
    try:
        with transaction.atomic():
            repo = Repo.objects.create(
                namespace=namespace,
                name=name,
                private=private,
                description=description,
                default_branch=default_branch,
                created_by=user,
            )
    except IntegrityError as e:
        raise Conflict(f"Repo {namespace.name}/{name} already exists.", code="repo_exists") from e
    tree = _empty_tree()
    now = timezone.now()
    author = user.username if user else "hub"
    sha = commit_sha(
        tree=tree.hash,
        parents=[],
        author=author,
        message="Initial commit",
        created_at=now,
        metadata={},
    )
    commit = Commit.objects.create(
        repo=repo,
        sha=sha,
        tree=tree,
        parents=[],
        author=user,
        author_name=author,
        message="Initial commit",
        metadata={},
        created_at=now,
        generation=1,
        stats={"files": 0, "bytes": 0, "new_bytes": 0, "reused_bytes": 0},
    )
    Ref.objects.create(
        repo=repo, name=default_branch, kind=Ref.Kind.BRANCH, commit=commit, created_by=user
    )
    _reindex(commit)
    return repo


@transaction.atomic
def repo_update(*, repo: Repo, private: bool | None = None, description: str | None = None) -> Repo:
    if private is not None:
        repo.private = private
    if description is not None:
        repo.description = description
    repo.save(update_fields=["private", "description"])
    # Model search reads visibility and description from the heads' search documents.
    _reindex(*Commit.objects.filter(pk__in=Ref.objects.filter(repo=repo).values("commit_id")))
    return repo


@transaction.atomic
def repo_delete(*, repo: Repo) -> None:
    """Drops the repo's refs and commits (and their search documents); its chunks become
    garbage for the next GC."""
    _unindex(
        [
            f"{repo.full_name}@{sha}"
            for sha in Commit.objects.filter(repo=repo).values_list("sha", flat=True)
        ]
    )
    Ref.objects.filter(repo=repo).delete()
    Commit.objects.filter(repo=repo).delete()
    repo.delete()


# --- chunks ----------------------------------------------------------------------------------


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise InvalidInput(
            f"Not a chunk id (64 lowercase hex): {str(digest)[:80]!r}", code="invalid_chunk_id"
        )
    return digest


def chunks_missing(*, hashes: list[str]) -> list[str]:
    """Negotiation: which of these chunks must the client still upload? Present ones are
    claimed (their GC grace period restarts) so they survive until the commit lands. The
    claim is made under the GC barrier, so a running GC either sees it or has already
    removed the row (and the chunk is then reported missing)."""
    wanted = list(dict.fromkeys(_check_digest(h) for h in hashes))
    present: set[str] = set()
    with transaction.atomic():
        _gc_barrier(exclusive=False)
        for i in range(0, len(wanted), 900):  # stay under SQLite's bound-parameter limit
            batch = wanted[i : i + 900]
            present |= set(Chunk.objects.filter(hash__in=batch).values_list("hash", flat=True))
        if present:
            now = timezone.now()
            for i in range(0, len(wanted), 900):
                Chunk.objects.filter(
                    hash__in=[h for h in wanted[i : i + 900] if h in present]
                ).update(touched_at=now)
    return [h for h in wanted if h not in present]


def chunk_upload(*, digest: str, parts, max_size: int = MAX_CHUNK) -> tuple[int, bool]:
    """Store one chunk after checking its bytes hash to ``digest``. Returns (size, created).

    The bytes are received and verified with no lock held; making them visible (the rename
    into place and the Chunk row) happens under the GC barrier, as does claiming a chunk that
    is already stored. GC deletes blob files under the same barrier after re-checking that no
    row came back, so an upload racing a GC never ends with a row whose file was deleted."""
    _check_digest(digest)
    blobs = get_blob_store()
    with transaction.atomic():
        _gc_barrier(exclusive=False)
        existing = Chunk.objects.filter(hash=digest).first()
        claimed = bool(
            existing
            and blobs.has(digest)
            and Chunk.objects.filter(hash=digest).update(touched_at=timezone.now())
        )
    if claimed:
        for _ in parts:  # drain the request body
            pass
        return existing.size, False
    try:
        staged = blobs.stage(digest, parts, max_size=max_size)
    except BlobHashMismatch as e:
        raise InvalidInput(
            "The uploaded bytes do not match their claimed hash; nothing was stored.",
            code="chunk_hash_mismatch",
            details={"claimed": e.expected, "actual": e.actual},
        ) from e
    except BlobTooLarge as e:
        raise PayloadTooLarge(
            f"A chunk may be at most {max_size} bytes.", code="chunk_too_large"
        ) from e
    with staged, transaction.atomic():
        _gc_barrier(exclusive=False)
        staged.publish()
        Chunk.objects.update_or_create(
            hash=digest, defaults={"size": staged.size, "touched_at": timezone.now()}
        )
    return staged.size, True


# --- files, trees, commits --------------------------------------------------------------------


def _file_from_chunks(*, path: str, chunks) -> FileObject:
    if not isinstance(chunks, list):
        raise InvalidInput(
            f"{path}: 'chunks' must be a list of [hash, size].", code="invalid_manifest"
        )
    pairs: list[tuple[str, int]] = []
    for c in chunks:
        if not (
            isinstance(c, list | tuple)
            and len(c) == 2
            and isinstance(c[1], int)
            and not isinstance(c[1], bool)
        ):
            raise InvalidInput(f"{path}: each chunk must be [hash, size].", code="invalid_manifest")
        if not 0 < c[1] <= MAX_CHUNK:
            raise InvalidInput(
                f"{path}: chunk size must be 1..{MAX_CHUNK}.", code="invalid_manifest"
            )
        pairs.append((_check_digest(c[0]), c[1]))
    oid = file_oid(pairs)
    existing = FileObject.objects.filter(oid=oid).first()
    if existing:
        return existing
    known: dict[str, int] = {}
    distinct = list({h for h, _ in pairs})
    for i in range(0, len(distinct), 900):
        known.update(
            Chunk.objects.filter(hash__in=distinct[i : i + 900]).values_list("hash", "size")
        )
    missing = sorted({h for h, _ in pairs if h not in known})
    if missing:
        raise InvalidInput(
            f"{path}: {len(missing)} chunk(s) were never uploaded.",
            code="missing_chunks",
            details={"path": path, "missing": missing[:1000]},
        )
    wrong = sorted({h for h, s in pairs if known[h] != s})
    if wrong:
        raise InvalidInput(
            f"{path}: chunk sizes disagree with the stored chunks.",
            code="invalid_manifest",
            details={"path": path, "chunks": wrong[:100]},
        )
    size = sum(s for _, s in pairs)
    tensors = header_metadata = None
    kind = "blob"
    if is_safetensors(path):
        kind = "safetensors"
        header = _parse_stored_header(path, pairs, size)
        tensors = {name: t.as_dict() for name, t in header.tensors.items()}
        header_metadata = header.metadata
    obj = FileObject(
        oid=oid,
        size=size,
        kind=kind,
        chunks=[list(p) for p in pairs],
        tensors=tensors,
        header_metadata=header_metadata,
    )
    FileObject.objects.bulk_create([obj], ignore_conflicts=True)
    return obj


def _parse_stored_header(path: str, pairs: list[tuple[str, int]], size: int):
    blobs = get_blob_store()
    limit = settings.HUB_MAX_SAFETENSORS_HEADER_BYTES
    try:
        head = b""
        i = 0
        while len(head) < 8 and i < len(pairs):
            head += blobs.get(pairs[i][0])
            i += 1
        n = read_header_len(head, max_header=limit)
        while len(head) < 8 + n and i < len(pairs):
            head += blobs.get(pairs[i][0])
            i += 1
        return parse_header(head[: 8 + n], file_size=size, max_header=limit)
    except HeaderError as e:
        raise InvalidInput(f"{path}: not a valid safetensors file: {e}", code=e.code) from e


def _apply_operations(entries: dict[str, str], operations) -> dict[str, str]:
    if not isinstance(operations, list):
        raise InvalidInput("'operations' must be a list.", code="invalid_operations")
    if len(operations) > MAX_OPERATIONS:
        raise PayloadTooLarge(
            f"At most {MAX_OPERATIONS} operations per commit.", code="too_many_operations"
        )
    out = dict(entries)
    seen: set[str] = set()
    for op in operations:
        if not isinstance(op, dict) or op.get("op") not in {"add", "delete", "copy"}:
            raise InvalidInput(
                "Each operation is {op: add|delete|copy, path, ...}.", code="invalid_operations"
            )
        path = op.get("path")
        # Deleting a path the tree already holds needs no rule (it may predate the rule);
        # every path that enters the tree does.
        if not (op["op"] == "delete" and isinstance(path, str) and path in out):
            path = validate_path(path)
        if path in seen:
            raise InvalidInput(
                f"{path}: more than one operation on the same path.", code="invalid_operations"
            )
        seen.add(path)
        if op["op"] == "add":
            out[path] = _file_from_chunks(path=path, chunks=op.get("chunks")).oid
        elif op["op"] == "copy":
            src = validate_path(op.get("from"))
            if src not in entries:
                raise InvalidInput(
                    f"copy: {src} does not exist in the parent commit.", code="path_not_found"
                )
            out[path] = entries[src]
        else:
            if path not in out:
                raise InvalidInput(
                    f"delete: {path} does not exist in the parent commit.", code="path_not_found"
                )
            del out[path]
    # The tree must be checkout-able everywhere: no file where a directory is needed, and no
    # two names that a case-insensitive or normalising file system takes for one.
    validate_tree_paths(out, new={op["path"] for op in operations if op["op"] != "delete"})
    return out


def _tree_for(entries: dict[str, str]) -> Tree:
    h = tree_hash(entries)
    tree = Tree.objects.filter(hash=h).first()
    if tree is None:
        Tree.objects.bulk_create([Tree(hash=h, entries=entries)], ignore_conflicts=True)
        tree = Tree.objects.get(hash=h)
    return tree


def _new_commit(
    *,
    repo: Repo,
    tree: Tree,
    parents: list[Commit],
    user,
    message: str,
    metadata: dict | None,
    created_at: datetime | None,
    job_id: str = "",
    run_id: str = "",
) -> Commit:
    if not isinstance(message, str) or not message.strip():
        raise InvalidInput("A commit needs a message.", code="invalid_message")
    if len(message) > MAX_MESSAGE:
        raise InvalidInput(
            f"A commit message may be at most {MAX_MESSAGE} characters.", code="invalid_message"
        )
    metadata = metadata or {}
    if not isinstance(metadata, dict):
        raise InvalidInput("'metadata' must be an object.", code="invalid_metadata")
    created_at = created_at or timezone.now()
    author = user.username if user else "hub"
    parent_shas = [p.sha for p in parents]
    sha = commit_sha(
        tree=tree.hash,
        parents=parent_shas,
        author=author,
        message=message,
        created_at=created_at,
        metadata=metadata,
    )
    existing = Commit.objects.filter(repo=repo, sha=sha).first()
    if existing:
        return existing
    return Commit.objects.create(
        repo=repo,
        sha=sha,
        tree=tree,
        parents=parent_shas,
        author=user,
        author_name=author,
        message=message,
        metadata=metadata,
        created_at=created_at,
        generation=1 + max((p.generation for p in parents), default=0),
        job_id=job_id or "",
        run_id=run_id or "",
        stats=selectors.commit_stats_compute(
            entries=tree.entries, parent_entries=[p.tree.entries for p in parents]
        ),
    )


def _move_branch(*, ref: Ref, expected: Commit, new: Commit) -> None:
    """Compare-and-swap: move ``ref`` to ``new`` only if it still points at ``expected``.

    One UPDATE ... WHERE commit = expected: on PostgreSQL a concurrent writer blocks on the
    row lock and then re-evaluates the WHERE clause against the committed head; on SQLite
    the IMMEDIATE transaction serialises writers. Either way exactly one writer per expected
    head sees rowcount 1."""
    moved = Ref.objects.filter(pk=ref.pk, commit_id=expected.pk).update(
        commit=new, updated_at=timezone.now()
    )
    if not moved:
        current = Ref.objects.select_related("commit").get(pk=ref.pk).commit
        raise Conflict(
            f"Branch {ref.name!r} moved: its head is {current.sha[:12]}, not {expected.sha[:12]}. "
            "Pull, rebase your change on the new head, and retry.",
            code="branch_conflict",
            details={
                "branch": ref.name,
                "expected_head": expected.sha,
                "current_head": current.sha,
            },
        )


def _reindex(*commits: Commit | None) -> None:
    """Commit documents in the search index carry their branch and tag names: re-index the
    commits whose refs changed, after the transaction commits."""
    from hub.tracking import indexing

    for c in commits:
        if c is not None and c.pk:
            indexing.schedule_commit(c.pk)


def _unindex(doc_ids: list[str]) -> None:
    """Deleted commits leave the search index after the transaction commits: their ids go to
    bulk delete tasks with retries (inline in bulk when the broker is down), so a repo with
    thousands of commits costs a few requests, not one per commit, and never fails the write.
    Best effort like indexing: ``manage.py search_reindex`` rebuilds the index from the DB. A
    re-index scheduled earlier for one of them finds no commit and writes nothing."""
    if not doc_ids or not settings.HUB_ELASTICSEARCH_URL:
        return
    from hub.tracking import indexing

    ids = list(doc_ids)
    transaction.on_commit(lambda: indexing.delete_commits(ids))


def _gc_barrier(*, exclusive: bool) -> None:
    """Writers that may reuse existing trees/files hold this shared; GC
    (:func:`hub.registry.gc.gc`) holds it exclusive, so GC never deletes a file a commit or
    merge in flight is about to reference. PostgreSQL uses a transaction-scoped advisory
    lock; SQLite's IMMEDIATE transactions already serialise."""
    from django.db import connection

    if connection.vendor == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        with connection.cursor() as cur:
            cur.execute(f"SELECT {fn}(%s)", [0x6D6F6568])


def _parse_time(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInput("'created_at' must be an ISO 8601 time.", code="invalid_time") from e
    if t.tzinfo is None:
        raise InvalidInput("'created_at' needs a time zone.", code="invalid_time")
    return t


def commit_create(
    *,
    repo: Repo,
    branch: str,
    operations: list,
    message: str,
    user,
    expected_head: str | None = None,
    metadata: dict | None = None,
    created_at=None,
    job_id: str = "",
    run_id: str = "",
    allow_protected: bool = False,
) -> tuple[Commit, bool]:
    """Create a commit on ``branch`` from ``operations`` (add/delete/copy).

    ``expected_head`` is the head the client built on; if the branch moved since, 409
    ``branch_conflict``. Without it, the commit goes on top of the current head (still
    compare-and-swapped, so a concurrent writer is never overwritten). A retry of a commit
    that already landed (same parent, tree, message, metadata and ``created_at``) returns it
    with created=False instead of a conflict: commit ids make pushes idempotent."""
    created_at = _parse_time(created_at)
    with transaction.atomic():
        _gc_barrier(exclusive=False)
        ref = selectors.branch_get(repo=repo, name=branch)
        if ref.protected and not allow_protected:
            raise Forbidden(
                f"Branch {branch!r} is protected: change it by merging (admins only).",
                code="branch_protected",
            )
        if expected_head:
            parent = selectors.commit_get(repo=repo, sha=expected_head)
        else:
            parent = ref.commit
        entries = _apply_operations(parent.tree.entries, operations)
        tree = _tree_for(entries)
        commit = _new_commit(
            repo=repo,
            tree=tree,
            parents=[parent],
            user=user,
            message=message,
            metadata=metadata,
            created_at=created_at,
            job_id=job_id,
            run_id=run_id,
        )
        if ref.commit_id == commit.pk:
            return commit, False  # the retried commit already landed
        try:
            _move_branch(ref=ref, expected=parent, new=commit)
        except Conflict:
            if commit.pk and Ref.objects.filter(pk=ref.pk, commit_id=commit.pk).exists():
                return commit, False
            raise
        _reindex(parent, commit)
    return commit, True


# --- branches and tags -------------------------------------------------------------------------


def ref_name_check(*, repo: Repo, name: str, kind: str) -> str:
    """May a new branch or tag (``kind``) of ``repo`` be called ``name``? The naming rules
    (hub.common.validation.validate_ref_name: 400) and no ref of the other kind with that
    name (409 ``ref_name_taken``), so that no name can mean two things to the resolver.
    Every path that creates a ref goes through here (API, jobs' target branches)."""
    validate_ref_name(name)
    other = Ref.Kind.TAG if kind == Ref.Kind.BRANCH else Ref.Kind.BRANCH
    if Ref.objects.filter(repo=repo, kind=other, name=name).exists():
        raise Conflict(
            f"{repo.full_name} already has a {other} named {name!r}; a {kind} may not share its name.",
            code="ref_name_taken",
            details={"name": name, "kind": other},
        )
    return name


def _lock_refs(repo: Repo) -> None:
    """Serialise ref creation in one repo (the row lock on PostgreSQL; SQLite's IMMEDIATE
    transactions already do), so a branch and a tag of one name cannot both be created."""
    list(Repo.objects.select_for_update().filter(pk=repo.pk).values_list("pk", flat=True))


def branch_create(*, repo: Repo, name: str, from_ref: str | None, user) -> Ref:
    """O(1): a new pointer to an existing commit."""
    validate_ref_name(name)
    commit = selectors.resolve(repo=repo, ref=from_ref or repo.default_branch)
    try:
        with transaction.atomic():
            _lock_refs(repo)
            ref_name_check(repo=repo, name=name, kind=Ref.Kind.BRANCH)
            ref = Ref.objects.create(
                repo=repo, name=name, kind=Ref.Kind.BRANCH, commit=commit, created_by=user
            )
            _reindex(commit)
            return ref
    except IntegrityError as e:
        raise Conflict(f"Branch {name!r} already exists.", code="ref_exists") from e


@transaction.atomic
def branch_delete(*, repo: Repo, name: str) -> None:
    ref = selectors.branch_get(repo=repo, name=name)
    if name == repo.default_branch:
        raise Conflict("The default branch cannot be deleted.", code="default_branch")
    if ref.protected:
        raise Forbidden(
            f"Branch {name!r} is protected; unprotect it first.", code="branch_protected"
        )
    ref.delete()
    _reindex(ref.commit)  # its document lists the branch


@transaction.atomic
def branch_set_protected(*, repo: Repo, name: str, protected: bool) -> Ref:
    ref = selectors.branch_get(repo=repo, name=name)
    ref.protected = protected
    ref.save(update_fields=["protected"])  # updated_at tells when the head moved, not this
    return ref


def tag_create(*, repo: Repo, name: str, ref: str, user, message: str = "") -> Ref:
    """Tags never move: creating an existing tag is a conflict, even at the same commit."""
    validate_ref_name(name)
    commit = selectors.resolve(repo=repo, ref=ref)
    try:
        with transaction.atomic():
            _lock_refs(repo)
            ref_name_check(repo=repo, name=name, kind=Ref.Kind.TAG)
            tag = Ref.objects.create(
                repo=repo,
                name=name,
                kind=Ref.Kind.TAG,
                commit=commit,
                created_by=user,
                message=message or "",
            )
            _reindex(commit)
            return tag
    except IntegrityError as e:
        raise Conflict(
            f"Tag {name!r} already exists; tags are immutable.", code="ref_exists"
        ) from e


@transaction.atomic
def tag_delete(*, repo: Repo, name: str) -> None:
    tag = Ref.objects.filter(repo=repo, kind=Ref.Kind.TAG, name=name).first()
    if tag is None:
        raise NotFound(f"Tag {name!r} not found.", code="ref_not_found")
    commit = tag.commit
    tag.delete()
    _reindex(commit)  # its document lists the tag
