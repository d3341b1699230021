"""Every write of the registry. One function per use case, keyword-only, transactional.

The invariant that matters most: a branch head moves only by compare-and-swap against the
head the writer started from (:func:`_move_branch`). Two writers that started from the same
head cannot both win; the loser's transaction rolls back whole (its commit row included),
so nothing is lost and nothing is left orphaned.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import blake3
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hub.common.errors import Conflict, Forbidden, HubError, InvalidInput, NotFound, PayloadTooLarge
from hub.common.validation import (
    validate_path,
    validate_ref_name,
    validate_slug,
    validate_tree_paths,
)
from hub.registry import selectors
from hub.registry.chunking import MAX_CHUNK, file_oid, is_safetensors
from hub.registry.models import Chunk, Commit, FileObject, Ref, Repo, Tree
from hub.registry.tensorops import (
    TensorRef,
    averaged_pieces,
    delta_stats,
    tensor_pieces,
    tensors_identical,
)
from hub.registry.tensors import (
    FLOAT_DTYPES,
    HeaderError,
    build_header,
    parse_header,
    read_header_len,
)
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


def commit_sha(*, tree: str, parents: list[str], author: str, message: str, created_at: datetime, metadata: dict) -> str:
    """40 hex, like git: a commit's id is a hash of everything that defines it."""
    body = _canonical(
        {"tree": tree, "parents": parents, "author": author, "message": message,
         "time": _time_str(created_at), "metadata": metadata}
    )
    return hashlib.blake2b(b"moehub-commit-v1\n" + body, digest_size=20).hexdigest()


# --- repos -----------------------------------------------------------------------------------

def _empty_tree() -> Tree:
    entries: dict[str, str] = {}
    tree, _ = Tree.objects.get_or_create(hash=tree_hash(entries), defaults={"entries": entries})
    return tree


@transaction.atomic
def repo_create(*, namespace, name: str, user, private: bool = False, description: str = "", default_branch: str = "main") -> Repo:
    """A repo starts with one empty commit on its default branch, so every branch always has
    a head to compare-and-swap against."""
    validate_slug(name, what="repo name")
    validate_ref_name(default_branch)
    if Repo.objects.filter(namespace=namespace, name__iexact=name).exists():
        raise Conflict(f"Repo {namespace.name}/{name} already exists.", code="repo_exists")
    try:
        with transaction.atomic():
            repo = Repo.objects.create(namespace=namespace, name=name, private=private,
                                       description=description, default_branch=default_branch, created_by=user)
    except IntegrityError as e:
        raise Conflict(f"Repo {namespace.name}/{name} already exists.", code="repo_exists") from e
    tree = _empty_tree()
    now = timezone.now()
    author = user.username if user else "hub"
    sha = commit_sha(tree=tree.hash, parents=[], author=author, message="Initial commit", created_at=now, metadata={})
    commit = Commit.objects.create(repo=repo, sha=sha, tree=tree, parents=[], author=user, author_name=author,
                                   message="Initial commit", metadata={}, created_at=now, generation=1)
    Ref.objects.create(repo=repo, name=default_branch, kind=Ref.Kind.BRANCH, commit=commit, created_by=user)
    _reindex(commit)
    return repo


@transaction.atomic
def repo_update(*, repo: Repo, private: bool | None = None, description: str | None = None) -> Repo:
    if private is not None:
        repo.private = private
    if description is not None:
        repo.description = description
    repo.save(update_fields=["private", "description"])
    return repo


@transaction.atomic
def repo_delete(*, repo: Repo) -> None:
    """Drops the repo's refs and commits (and their search documents); its chunks become
    garbage for the next GC."""
    _unindex([f"{repo.full_name}@{sha}" for sha in Commit.objects.filter(repo=repo).values_list("sha", flat=True)])
    Ref.objects.filter(repo=repo).delete()
    Commit.objects.filter(repo=repo).delete()
    repo.delete()


# --- chunks ----------------------------------------------------------------------------------

def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise InvalidInput(f"Not a chunk id (64 lowercase hex): {str(digest)[:80]!r}", code="invalid_chunk_id")
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
                Chunk.objects.filter(hash__in=[h for h in wanted[i : i + 900] if h in present]).update(touched_at=now)
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
        claimed = bool(existing and blobs.has(digest)
                       and Chunk.objects.filter(hash=digest).update(touched_at=timezone.now()))
    if claimed:
        for _ in parts:  # drain the request body
            pass
        return existing.size, False
    try:
        staged = blobs.stage(digest, parts, max_size=max_size)
    except BlobHashMismatch as e:
        raise InvalidInput("The uploaded bytes do not match their claimed hash; nothing was stored.",
                           code="chunk_hash_mismatch", details={"claimed": e.expected, "actual": e.actual}) from e
    except BlobTooLarge as e:
        raise PayloadTooLarge(f"A chunk may be at most {max_size} bytes.", code="chunk_too_large") from e
    with staged, transaction.atomic():
        _gc_barrier(exclusive=False)
        staged.publish()
        Chunk.objects.update_or_create(hash=digest, defaults={"size": staged.size, "touched_at": timezone.now()})
    return staged.size, True


# --- files, trees, commits --------------------------------------------------------------------

def _file_from_chunks(*, path: str, chunks) -> FileObject:
    if not isinstance(chunks, list):
        raise InvalidInput(f"{path}: 'chunks' must be a list of [hash, size].", code="invalid_manifest")
    pairs: list[tuple[str, int]] = []
    for c in chunks:
        if not (isinstance(c, list | tuple) and len(c) == 2 and isinstance(c[1], int) and not isinstance(c[1], bool)):
            raise InvalidInput(f"{path}: each chunk must be [hash, size].", code="invalid_manifest")
        if not 0 < c[1] <= MAX_CHUNK:
            raise InvalidInput(f"{path}: chunk size must be 1..{MAX_CHUNK}.", code="invalid_manifest")
        pairs.append((_check_digest(c[0]), c[1]))
    oid = file_oid(pairs)
    existing = FileObject.objects.filter(oid=oid).first()
    if existing:
        return existing
    known: dict[str, int] = {}
    distinct = list({h for h, _ in pairs})
    for i in range(0, len(distinct), 900):
        known.update(Chunk.objects.filter(hash__in=distinct[i : i + 900]).values_list("hash", "size"))
    missing = sorted({h for h, _ in pairs if h not in known})
    if missing:
        raise InvalidInput(f"{path}: {len(missing)} chunk(s) were never uploaded.", code="missing_chunks",
                           details={"path": path, "missing": missing[:1000]})
    wrong = sorted({h for h, s in pairs if known[h] != s})
    if wrong:
        raise InvalidInput(f"{path}: chunk sizes disagree with the stored chunks.", code="invalid_manifest",
                           details={"path": path, "chunks": wrong[:100]})
    size = sum(s for _, s in pairs)
    tensors = header_metadata = None
    kind = "blob"
    if is_safetensors(path):
        kind = "safetensors"
        header = _parse_stored_header(path, pairs, size)
        tensors = {name: t.as_dict() for name, t in header.tensors.items()}
        header_metadata = header.metadata
    obj = FileObject(oid=oid, size=size, kind=kind, chunks=[list(p) for p in pairs], tensors=tensors,
                     header_metadata=header_metadata)
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
        raise PayloadTooLarge(f"At most {MAX_OPERATIONS} operations per commit.", code="too_many_operations")
    out = dict(entries)
    seen: set[str] = set()
    for op in operations:
        if not isinstance(op, dict) or op.get("op") not in {"add", "delete", "copy"}:
            raise InvalidInput("Each operation is {op: add|delete|copy, path, ...}.", code="invalid_operations")
        path = op.get("path")
        # Deleting a path the tree already holds needs no rule (it may predate the rule);
        # every path that enters the tree does.
        if not (op["op"] == "delete" and isinstance(path, str) and path in out):
            path = validate_path(path)
        if path in seen:
            raise InvalidInput(f"{path}: more than one operation on the same path.", code="invalid_operations")
        seen.add(path)
        if op["op"] == "add":
            out[path] = _file_from_chunks(path=path, chunks=op.get("chunks")).oid
        elif op["op"] == "copy":
            src = validate_path(op.get("from"))
            if src not in entries:
                raise InvalidInput(f"copy: {src} does not exist in the parent commit.", code="path_not_found")
            out[path] = entries[src]
        else:
            if path not in out:
                raise InvalidInput(f"delete: {path} does not exist in the parent commit.", code="path_not_found")
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


def _new_commit(*, repo: Repo, tree: Tree, parents: list[Commit], user, message: str, metadata: dict | None,
                created_at: datetime | None, job_id: str = "", run_id: str = "") -> Commit:
    if not isinstance(message, str) or not message.strip():
        raise InvalidInput("A commit needs a message.", code="invalid_message")
    if len(message) > MAX_MESSAGE:
        raise InvalidInput(f"A commit message may be at most {MAX_MESSAGE} characters.", code="invalid_message")
    metadata = metadata or {}
    if not isinstance(metadata, dict):
        raise InvalidInput("'metadata' must be an object.", code="invalid_metadata")
    created_at = created_at or timezone.now()
    author = user.username if user else "hub"
    parent_shas = [p.sha for p in parents]
    sha = commit_sha(tree=tree.hash, parents=parent_shas, author=author, message=message,
                     created_at=created_at, metadata=metadata)
    existing = Commit.objects.filter(repo=repo, sha=sha).first()
    if existing:
        return existing
    return Commit.objects.create(
        repo=repo, sha=sha, tree=tree, parents=parent_shas, author=user, author_name=author, message=message,
        metadata=metadata, created_at=created_at, generation=1 + max((p.generation for p in parents), default=0),
        job_id=job_id or "", run_id=run_id or "",
    )


def _move_branch(*, ref: Ref, expected: Commit, new: Commit) -> None:
    """Compare-and-swap: move ``ref`` to ``new`` only if it still points at ``expected``.

    One UPDATE ... WHERE commit = expected: on PostgreSQL a concurrent writer blocks on the
    row lock and then re-evaluates the WHERE clause against the committed head; on SQLite
    the IMMEDIATE transaction serialises writers. Either way exactly one writer per expected
    head sees rowcount 1."""
    moved = Ref.objects.filter(pk=ref.pk, commit_id=expected.pk).update(commit=new, updated_at=timezone.now())
    if not moved:
        current = Ref.objects.select_related("commit").get(pk=ref.pk).commit
        raise Conflict(
            f"Branch {ref.name!r} moved: its head is {current.sha[:12]}, not {expected.sha[:12]}. "
            "Pull, rebase your change on the new head, and retry.",
            code="branch_conflict",
            details={"branch": ref.name, "expected_head": expected.sha, "current_head": current.sha},
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
    """Writers that may reuse existing trees/files hold this shared; GC holds it exclusive,
    so GC never deletes a file a commit in flight is about to reference. PostgreSQL uses a
    transaction-scoped advisory lock; SQLite's IMMEDIATE transactions already serialise."""
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


def commit_create(*, repo: Repo, branch: str, operations: list, message: str, user, expected_head: str | None = None,
                  metadata: dict | None = None, created_at=None, job_id: str = "", run_id: str = "",
                  allow_protected: bool = False) -> tuple[Commit, bool]:
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
            raise Forbidden(f"Branch {branch!r} is protected: change it by merging (admins only).",
                            code="branch_protected")
        if expected_head:
            parent = selectors.commit_get(repo=repo, sha=expected_head)
        else:
            parent = ref.commit
        entries = _apply_operations(parent.tree.entries, operations)
        tree = _tree_for(entries)
        commit = _new_commit(repo=repo, tree=tree, parents=[parent], user=user, message=message, metadata=metadata,
                             created_at=created_at, job_id=job_id, run_id=run_id)
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
        raise Conflict(f"{repo.full_name} already has a {other} named {name!r}; a {kind} may not share its name.",
                       code="ref_name_taken", details={"name": name, "kind": other})
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
            ref = Ref.objects.create(repo=repo, name=name, kind=Ref.Kind.BRANCH, commit=commit, created_by=user)
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
        raise Forbidden(f"Branch {name!r} is protected; unprotect it first.", code="branch_protected")
    ref.delete()
    _reindex(ref.commit)  # its document lists the branch


@transaction.atomic
def branch_set_protected(*, repo: Repo, name: str, protected: bool) -> Ref:
    ref = selectors.branch_get(repo=repo, name=name)
    ref.protected = protected
    ref.save(update_fields=["protected", "updated_at"])
    return ref


def tag_create(*, repo: Repo, name: str, ref: str, user, message: str = "") -> Ref:
    """Tags never move: creating an existing tag is a conflict, even at the same commit."""
    validate_ref_name(name)
    commit = selectors.resolve(repo=repo, ref=ref)
    try:
        with transaction.atomic():
            _lock_refs(repo)
            ref_name_check(repo=repo, name=name, kind=Ref.Kind.TAG)
            tag = Ref.objects.create(repo=repo, name=name, kind=Ref.Kind.TAG, commit=commit, created_by=user,
                                     message=message or "")
            _reindex(commit)
            return tag
    except IntegrityError as e:
        raise Conflict(f"Tag {name!r} already exists; tags are immutable.", code="ref_exists") from e


@transaction.atomic
def tag_delete(*, repo: Repo, name: str) -> None:
    tag = Ref.objects.filter(repo=repo, kind=Ref.Kind.TAG, name=name).first()
    if tag is None:
        raise NotFound(f"Tag {name!r} not found.", code="ref_not_found")
    commit = tag.commit
    tag.delete()
    _reindex(commit)  # its document lists the tag


# --- merge -----------------------------------------------------------------------------------

STRATEGIES = {None, "ours", "theirs", "average"}


@dataclass
class MergeOutcome:
    kind: str  # "up_to_date" | "fast_forward" | "merge"
    commit: Commit
    base: str | None
    merged_tensors: int = 0
    resolved: list[dict] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)  # every merge base (several: criss-cross)


class _Conflicts(HubError):
    status = 409
    code = "merge_conflict"


def _side_stat(base: TensorRef | None, side: TensorRef | None, blobs, cache) -> dict:
    if side is None:
        return {"status": "deleted"}
    out = {"status": "added" if base is None else "changed", **side.stat()}
    if base is not None and base.shape == side.shape:
        s = delta_stats(base, side, blobs, cache)
        out.update(l2_delta=s["l2_delta"], rel_change=s["rel_change"], cosine=s["cosine"])
    return out


def _merge_safetensors(path: str, base: FileObject | None, ours: FileObject, theirs: FileObject,
                       strategy: str | None, weight: float, conflicts: list, resolved: list) -> FileObject | None:
    """Three-way merge of one safetensors file at tensor granularity.

    Per tensor name, with b/o/t its base/ours/theirs versions (any may be absent):
    o ≡ t → o; o ≡ b → t; t ≡ b → o; otherwise both changed it: a conflict, unless the
    strategy resolves it (ours, theirs, or average: (1−w)·o + w·t for same-shape floats)."""
    blobs = get_blob_store()
    cache: dict = {}

    def ref(f, name):
        return TensorRef.of(f, name) if f is not None and f.tensors and name in f.tensors else None

    def same(x, y):
        if x is None or y is None:
            return x is None and y is None
        return tensors_identical(x, y, blobs, cache)

    names = list(ours.tensors) + [n for n in theirs.tensors if n not in ours.tensors]
    if base is not None:
        names += [n for n in base.tensors if n not in ours.tensors and n not in theirs.tensors]
    plan: list[tuple[str, object]] = []  # (name, TensorRef | ("avg", o, t))
    n_conflicts_before = len(conflicts)
    for name in names:
        b, o, t = ref(base, name), ref(ours, name), ref(theirs, name)
        if same(o, t):
            choice = o
        elif same(o, b):
            choice = t
        elif same(t, b):
            choice = o
        elif strategy == "ours":
            choice = o
            resolved.append({"path": path, "tensor": name, "strategy": "ours"})
        elif strategy == "theirs":
            choice = t
            resolved.append({"path": path, "tensor": name, "strategy": "theirs"})
        elif (strategy == "average" and o is not None and t is not None and o.shape == t.shape
              and o.dtype in FLOAT_DTYPES and t.dtype in FLOAT_DTYPES):
            choice = ("avg", o, t)
            resolved.append({"path": path, "tensor": name, "strategy": "average", "weight": weight})
        else:
            conflicts.append({"path": path, "tensor": name, "ours": _side_stat(b, o, blobs, cache),
                              "theirs": _side_stat(b, t, blobs, cache)})
            continue
        if choice is not None:
            plan.append((name, choice))
    if len(conflicts) > n_conflicts_before:
        return None
    layout = [(name, c.dtype, c.shape) if isinstance(c, TensorRef) else (name, c[1].dtype, c[1].shape) for name, c in plan]
    header, _ = build_header(layout, ours.header_metadata or None)
    from hub.registry.chunking import chunk_hash

    # Each new piece is stored as soon as it is produced and only (hash, size) is kept, so
    # memory stays bounded by one piece however large the averaged tensors are.
    chunks: list[list] = []

    def store(pieces) -> None:
        for digest, size, data in pieces:
            if data is not None:
                chunk_upload(digest=digest, parts=[data])
            chunks.append([digest, size])
            del data  # let the piece go before the generator computes the next one

    store([(chunk_hash(header), len(header), header)])
    for _, c in plan:
        store(tensor_pieces(c, blobs, cache) if isinstance(c, TensorRef)
              else averaged_pieces(c[1], c[2], weight, blobs, cache))
    return _file_from_chunks(path=path, chunks=chunks)


class _VirtualConflict:
    """A file both sides of a *virtual* merge (of two merge bases) changed differently: like
    the conflict-marked content git leaves in its virtual base, it equals no real version,
    so the real merge treats it as a base both sides differ from."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path

    def __repr__(self) -> str:
        return f"<conflicted in the virtual merge base: {self.path}>"


class _FileCache(dict):
    """FileObjects by oid, loaded on first use (virtual merges bring in more trees)."""

    def need(self, *entries: dict) -> None:
        missing = {o for e in entries for o in e.values() if isinstance(o, str) and o not in self}
        for i in range(0, len(missing), 900):
            part = list(missing)[i : i + 900]
            self.update({f.oid: f for f in FileObject.objects.filter(oid__in=part)})


def _multiple_bases(bases: list[str], why: str) -> Conflict:
    return Conflict(
        f"These branches have {len(bases)} merge bases ({', '.join(b[:12] for b in bases)}) and {why}; "
        "nothing was written. Merge one of the bases into the target first, or reconcile the branches.",
        code="multiple_merge_bases", details={"bases": bases})


def _merge_base_tree(*, repo: Repo, graph, a: str, b: str) -> tuple[list[str], dict]:
    """(the merge bases of ``a`` and ``b``, the tree to merge against).

    One base: its tree. None: the empty tree. Several (criss-cross histories): like git's
    recursive strategy, the bases (oldest first) are merged pairwise into a virtual base,
    each pairwise merge against the merge base(s) of that pair, recursively. A virtual merge
    never uses a strategy: a file both bases changed differently becomes a conflicted
    version (:class:`_VirtualConflict`, as git's conflict markers); modified on one base and
    deleted on the other, it keeps its version from the pair's base (as git). Past
    HUB_MERGE_MAX_VIRTUAL_MERGES virtual merges: 409 ``multiple_merge_bases``."""
    graph = copy.copy(graph)
    graph.parents, graph.generation, graph.time = dict(graph.parents), dict(graph.generation), dict(graph.time)
    trees: dict[str, dict] = {}
    budget = [settings.HUB_MERGE_MAX_VIRTUAL_MERGES]
    files = _FileCache()
    top = graph.merge_bases(a, b)

    def entries(sha: str) -> dict:
        if sha not in trees:
            trees[sha] = Commit.objects.select_related("tree").get(repo=repo, sha=sha).tree.entries
        return trees[sha]

    def base_of(x: str, y: str) -> dict:
        bases = graph.merge_bases(x, y)
        if not bases:
            return {}
        acc = bases[0]
        for nxt in bases[1:]:
            budget[0] -= 1
            if budget[0] < 0:
                raise _multiple_bases(top, f"merging them needs more than {settings.HUB_MERGE_MAX_VIRTUAL_MERGES} "
                                           "virtual merges (HUB_MERGE_MAX_VIRTUAL_MERGES)")
            inner = base_of(acc, nxt)
            merged, _ = _merge_entries(inner, entries(acc), entries(nxt), files=files, strategy=None, weight=0.5,
                                       conflicts=[], resolved=[], bases=top, virtual=True)
            virtual = f"virtual-{len(trees)}"
            graph.parents[virtual] = [acc, nxt]
            graph.generation[virtual] = 1 + max(graph.generation[acc], graph.generation[nxt])
            graph.time[virtual] = max(str(graph.time[acc]), str(graph.time[nxt]))
            trees[virtual] = merged
            acc = virtual
        return entries(acc)

    return top, base_of(a, b)


def _merge_entries(base: dict, ours: dict, theirs: dict, *, files: _FileCache, strategy: str | None, weight: float,
                   conflicts: list, resolved: list, bases: list[str], virtual: bool = False) -> tuple[dict, int]:
    """Three-way merge of trees ``{path: oid}`` at file granularity, and at tensor granularity
    for safetensors files both sides changed. Returns (merged tree, files merged by tensor);
    unresolved conflicts are appended to ``conflicts``. ``virtual``: merging two merge bases
    (see :func:`_merge_base_tree`): conflicts become :class:`_VirtualConflict` versions."""
    files.need(base, ours, theirs)
    result: dict = {}
    merged = 0
    for path in sorted(set(base) | set(ours) | set(theirs)):
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        real = isinstance(o, str) and isinstance(t, str)
        st_both = real and files[o].kind == "safetensors" and files[t].kind == "safetensors"
        if o == t:
            pick = o
        elif o == b:
            pick = t
        elif t == b:
            pick = o
        elif virtual and (o is None or t is None):
            pick = b  # modified on one base, deleted on the other: the pair's base version, as git
        elif st_both and isinstance(b, _VirtualConflict):
            raise _multiple_bases(bases, f"{path} has tensors the bases changed differently, so there is no "
                                         "base to merge its tensors against")
        elif st_both:
            before = len(conflicts)
            f = _merge_safetensors(path, files.get(b) if b else None, files[o], files[t],
                                   None if virtual else strategy, weight, conflicts, resolved)
            if virtual and len(conflicts) > before:
                del conflicts[before:]
                pick = _VirtualConflict(path)
            else:
                pick = f.oid if f else None
                merged += 1 if f else 0
                if f is not None:
                    files[f.oid] = f
        elif virtual:
            pick = _VirtualConflict(path)
        elif strategy in {"ours", "theirs"}:
            pick = o if strategy == "ours" else t
            resolved.append({"path": path, "strategy": strategy})
        else:
            conflicts.append({"path": path, "tensor": None,
                              "ours": {"status": "deleted"} if o is None else {"status": "changed", "size": files[o].size},
                              "theirs": {"status": "deleted"} if t is None else {"status": "changed", "size": files[t].size}})
            continue
        if pick is not None:
            result[path] = pick
    return result, merged


def merge(*, repo: Repo, source: str, target: str, user, strategy: str | None = None, weight: float = 0.5,
          message: str | None = None, allow_fast_forward: bool = True, allow_protected: bool = False) -> MergeOutcome:
    """Merge ref ``source`` into branch ``target``.

    Up to date when source is an ancestor of target (merging a branch into itself included);
    a fast-forward when target is an ancestor of source; otherwise a three-way merge from the
    merge base, at file granularity and, for safetensors files changed on both sides, at
    tensor granularity. Any unresolved conflict is a 409 ``merge_conflict`` listing each
    tensor with both sides' stats, and nothing is written."""
    if strategy not in STRATEGIES:
        raise InvalidInput(f"Unknown strategy {strategy!r}: use ours, theirs or average.", code="invalid_strategy")
    if not isinstance(weight, int | float) or not 0.0 <= float(weight) <= 1.0:
        raise InvalidInput("'weight' must be between 0 and 1.", code="invalid_weight")
    weight = float(weight)
    with transaction.atomic():
        _gc_barrier(exclusive=False)
        ref = selectors.branch_get(repo=repo, name=target)
        if ref.protected and not allow_protected:
            raise Forbidden(f"Branch {target!r} is protected: only admins can merge into it.", code="branch_protected")
        ours = ref.commit
        theirs = selectors.resolve(repo=repo, ref=source)
        graph = selectors.commit_graph(repo=repo)
        if theirs.sha == ours.sha or graph.is_ancestor(theirs.sha, ours.sha):
            return MergeOutcome("up_to_date", ours, theirs.sha, bases=[theirs.sha])
        if allow_fast_forward and graph.is_ancestor(ours.sha, theirs.sha):
            _move_branch(ref=ref, expected=ours, new=theirs)
            _reindex(ours, theirs)
            return MergeOutcome("fast_forward", theirs, ours.sha, bases=[ours.sha])
        bases, base_entries = _merge_base_tree(repo=repo, graph=graph, a=ours.sha, b=theirs.sha)
        base_sha = bases[0] if len(bases) == 1 else None
        files = _FileCache()
        conflicts: list[dict] = []
        resolved: list[dict] = []
        result, merged = _merge_entries(base_entries, ours.tree.entries, theirs.tree.entries, files=files,
                                        strategy=strategy, weight=weight, conflicts=conflicts, resolved=resolved,
                                        bases=bases)
        if conflicts:
            raise _Conflicts(
                f"{len(conflicts)} conflict(s) merging {source!r} into {target!r}. Choose a strategy "
                "(ours, theirs or average) or reconcile the branches.",
                details={"base": base_sha, "bases": bases, "ours": ours.sha, "theirs": theirs.sha,
                         "conflicts": conflicts},
            )
        validate_tree_paths(result, new=set(result) - set(ours.tree.entries))  # e.g. 'Model.bin' meets 'model.bin'
        tree = _tree_for(result)
        msg = message or f"Merge {source} into {target}"
        meta = {"merge": {"source": source, "strategy": strategy, "weight": weight if strategy == "average" else None,
                          "base": base_sha, **({"bases": bases} if len(bases) > 1 else {})}}
        commit = _new_commit(repo=repo, tree=tree, parents=[ours, theirs], user=user, message=msg, metadata=meta,
                             created_at=None)
        _move_branch(ref=ref, expected=ours, new=commit)
        _reindex(ours, commit)
        return MergeOutcome("merge", commit, base_sha, merged, resolved, bases)


# --- garbage collection --------------------------------------------------------------------------

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
        live_trees = set(Commit.objects.exclude(pk__in=dead_commits.values("pk")).values_list("tree_id", flat=True))
        live_files: set[str] = set()
        for entries in Tree.objects.filter(hash__in=live_trees).values_list("entries", flat=True):
            live_files |= set(entries.values())
        from django.apps import apps

        if apps.is_installed("hub.jobs"):  # files that jobs produced (profiles, eval results) stay
            live_files |= set(apps.get_model("jobs", "JobArtifact").objects.values_list("file_id", flat=True))
        live_chunks: set[str] = set()
        for chunks in FileObject.objects.filter(oid__in=live_files).values_list("chunks", flat=True):
            live_chunks |= {c[0] for c in chunks}
        dead_trees = [h for h in Tree.objects.values_list("hash", flat=True) if h not in live_trees]
        dead_files = [o for o in FileObject.objects.values_list("oid", flat=True) if o not in live_files]
        dead_chunks = [(h, s) for h, s, t in Chunk.objects.values_list("hash", "size", "touched_at")
                       if h not in live_chunks and t < cutoff]
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
            _unindex([f"{ns}/{name}@{sha}" for ns, name, sha in
                      dead_commits.values_list("repo__namespace__name", "repo__name", "sha")])
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
        # scan runs unlocked; each candidate is re-checked under the barrier before it goes.
        known = set(Chunk.objects.values_list("hash", flat=True))
        candidates = [d for d, _s, m in blobs.iter_digests() if d not in known and m < cutoff.timestamp()]
        orphans = _delete_blobs(candidates, blobs=blobs, cutoff=cutoff)
        report["freed_bytes"] = sum(freed.values()) + sum(orphans.values())
        report["orphan_blobs"] = len(orphans)
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def _delete_blobs(digests: list[str], *, blobs, cutoff: datetime, batch: int = 500) -> dict[str, int]:
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
