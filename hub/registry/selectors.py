"""Reads of the registry: refs, commits, history, trees, files, diffs, and who may see what."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce

from hub.accounts import selectors as accounts
from hub.accounts.models import Role
from hub.common.errors import InvalidInput, NotFound, ServiceUnavailable
from hub.registry import dedupe
from hub.registry.models import Commit, FileObject, Ref, Repo, Tree
from hub.registry.tensorops import FileReader, TensorRef, comparable, delta_stats, tensors_identical
from hub.stores.blobs import (
    BlobError,
    BlobHashMismatch,
    BlobStoreUnavailable,
    get_blob_store,
)

log = logging.getLogger(__name__)

# --- repos and permissions ---------------------------------------------------------------------


def repo_get(*, namespace: str, name: str) -> Repo:
    repo = (
        _with_updated_at(Repo.objects.select_related("namespace"))
        .filter(namespace__name=namespace, name=name)
        .first()
    )
    if repo is None:
        raise NotFound(f"Repo {namespace}/{name} not found.", code="repo_not_found")
    return repo


def repo_for(request, *, namespace: str, name: str, role: str = Role.READ) -> Repo:
    """The repo if the caller may act on it with ``role``. A private repo is invisible
    (404, not 403) to anyone who is not a member of its namespace."""
    repo = repo_get(namespace=namespace, name=name)
    if repo.private:
        try:
            accounts.require_role(request, namespace=repo.namespace, role=Role.READ, hide=True)
        except NotFound:
            raise NotFound(f"Repo {namespace}/{name} not found.", code="repo_not_found") from None
    if role != Role.READ:
        accounts.require_role(request, namespace=repo.namespace, role=role)
    return repo


def _with_updated_at(qs):
    """Annotates ``updated_at``: the last time a branch head of the repo moved (a commit, a
    merge, a fast-forward, a new branch), read from the branches' ``updated_at``, which only the
    head's compare-and-swap and branch creation set; the repo's creation time when it has no
    branch left. A deleted branch leaves no trace."""
    last_move = (
        Ref.objects.filter(repo=OuterRef("pk"), kind=Ref.Kind.BRANCH)
        .order_by("-updated_at")
        .values("updated_at")[:1]
    )
    return qs.annotate(updated_at=Coalesce(Subquery(last_move), F("created_at")))


# ``?sort=`` of the repo list: the field, then name as the tie-break.
REPO_SORTS = {
    "name": ("namespace__name", "name"),
    "-name": ("-namespace__name", "-name"),
    "created_at": ("created_at", "namespace__name", "name"),
    "-created_at": ("-created_at", "namespace__name", "name"),
    "updated_at": ("updated_at", "namespace__name", "name"),
    "-updated_at": ("-updated_at", "namespace__name", "name"),
}


def repo_list(
    *, user, namespace: str | None = None, search: str | None = None, sort: str | None = None
):
    if (sort or "name") not in REPO_SORTS:
        raise InvalidInput(
            f"sort must be one of {', '.join(REPO_SORTS)}.",
            code="invalid_sort",
            details={"sort": sort, "allowed": list(REPO_SORTS)},
        )
    qs = _with_updated_at(Repo.objects.select_related("namespace")).order_by(
        *REPO_SORTS[sort or "name"]
    )
    if namespace:
        qs = qs.filter(namespace__name=namespace)
    if search:
        qs = qs.filter(name__icontains=search)
    if user is not None and user.is_authenticated:
        if not user.is_superuser:
            from django.db.models import Q

            qs = qs.filter(Q(private=False) | Q(namespace__memberships__user=user)).distinct()
    else:
        qs = qs.filter(private=False)
    return qs


# --- refs and commits ----------------------------------------------------------------------------

_HEX = frozenset("0123456789abcdef")
HEADS, TAGS = "refs/heads/", "refs/tags/"


def branch_get(*, repo: Repo, name: str) -> Ref:
    """The branch ``name`` (also accepted in its explicit form ``refs/heads/<name>``)."""
    name = name[len(HEADS) :] if name.startswith(HEADS) else name
    ref = (
        Ref.objects.select_related("commit", "commit__tree")
        .filter(repo=repo, kind=Ref.Kind.BRANCH, name=name)
        .first()
    )
    if ref is None:
        raise NotFound(f"Branch {name!r} not found in {repo.full_name}.", code="branch_not_found")
    return ref


def _commit_by_id(*, repo: Repo, sha: str) -> Commit | None:
    """The commit a full id (40 hex) or a unique abbreviation (7-39 hex) names; None when
    ``sha`` is not hex of that length or names nothing. An abbreviation that several commits
    share is a 400 ``ambiguous_ref`` listing them (up to HUB_AMBIGUOUS_REF_CANDIDATES)."""
    sha = (sha or "").lower()
    if not 7 <= len(sha) <= 40 or not set(sha) <= _HEX:
        return None
    if len(sha) == 40:
        return Commit.objects.select_related("tree").filter(repo=repo, sha=sha).first()
    limit = max(2, settings.HUB_AMBIGUOUS_REF_CANDIDATES)
    matches = list(
        Commit.objects.select_related("tree")
        .filter(repo=repo, sha__startswith=sha)
        .order_by("sha")[: limit + 1]
    )
    if len(matches) > 1:
        shown = matches[:limit]
        raise InvalidInput(
            f"{sha!r} abbreviates {'more than ' if len(matches) > limit else ''}{len(shown)} commits in "
            f"{repo.full_name}: give more digits.",
            code="ambiguous_ref",
            details={
                "ref": sha,
                "candidates": [c.sha for c in shown],
                "truncated": len(matches) > limit,
            },
        )
    return matches[0] if matches else None


def commit_get(*, repo: Repo, sha: str) -> Commit:
    """A commit by id or unique abbreviation only (never a branch or tag name): for callers
    that need an id, such as a push's ``expected_head``."""
    c = _commit_by_id(repo=repo, sha=sha)
    if c is None:
        raise NotFound(f"Commit {sha!r} not found in {repo.full_name}.", code="commit_not_found")
    return c


def resolve(*, repo: Repo, ref: str) -> Commit:
    """The commit a ref names: the one rule for the API, the SDK and CLI (which send refs
    here), jobs (which pin their base with it) and the dashboard.

    In order, the first that applies wins:

    1. ``refs/heads/<b>`` or ``refs/tags/<t>``: that branch or tag, nothing else;
    2. ``HEAD``: the head of the repo's default branch;
    3. a full commit id (40 hex, any case): that commit, or 404 -- never a ref, even one
       named so (such names are refused at creation; only data older than the rule has them);
    4. a branch of that name;
    5. a tag of that name;
    6. a unique abbreviation (7-39 hex) of a commit id; several matches are a 400
       ``ambiguous_ref`` listing the candidates.

    New branch and tag names cannot look like a commit id, contain ``@``, be ``HEAD``, start
    with ``refs/`` or equal a ref of the other kind (hub.common.validation.validate_ref_name,
    services.ref_name_check), so steps 3-6 can only disagree on legacy data; there the branch
    wins over the tag and both win over an abbreviation, as in git, and a full id always
    wins, so a pinned commit cannot be swapped."""
    if not ref or not isinstance(ref, str):
        raise InvalidInput("Empty ref.", code="invalid_ref")
    for prefix, kind in ((HEADS, Ref.Kind.BRANCH), (TAGS, Ref.Kind.TAG)):
        if ref.startswith(prefix):
            found = (
                Ref.objects.select_related("commit", "commit__tree")
                .filter(repo=repo, kind=kind, name=ref[len(prefix) :])
                .first()
            )
            if found is None:
                raise NotFound(
                    f"No {kind} {ref[len(prefix) :]!r} in {repo.full_name}.", code="ref_not_found"
                )
            return found.commit
    if ref == "HEAD":
        return resolve(repo=repo, ref=HEADS + repo.default_branch)
    if len(ref) == 40 and set(ref.lower()) <= _HEX:
        return commit_get(repo=repo, sha=ref)
    refs = {
        r.kind: r
        for r in Ref.objects.select_related("commit", "commit__tree").filter(repo=repo, name=ref)
    }
    if Ref.Kind.BRANCH in refs:
        return refs[Ref.Kind.BRANCH].commit
    if Ref.Kind.TAG in refs:
        return refs[Ref.Kind.TAG].commit
    commit = _commit_by_id(repo=repo, sha=ref)
    if commit is None:
        raise NotFound(
            f"No branch, tag or commit {ref!r} in {repo.full_name}.", code="ref_not_found"
        )
    return commit


def refs_list(*, repo: Repo, kind: str | None = None):
    qs = Ref.objects.select_related("commit").filter(repo=repo).order_by("kind", "name")
    return qs.filter(kind=kind) if kind else qs


@dataclass
class CommitGraph:
    """The whole commit DAG of one repo, loaded in one query (≈10k commits in tens of ms).

    ``generation`` (1 + max over parents) orders the walks: a commit's ancestors all have a
    lower generation, so history comes out newest first and walks stop early."""

    parents: dict[str, list[str]]
    generation: dict[str, int]
    pk: dict[str, int]
    time: dict[str, object]

    def ancestors_of(self, heads) -> set[str]:
        seen: set[str] = set()
        stack = [h for h in heads if h in self.parents]
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            stack.extend(self.parents.get(s, ()))
        return seen

    def is_ancestor(self, a: str, b: str) -> bool:
        """Is ``a`` reachable from ``b`` (``a`` == ``b`` included)?"""
        ga = self.generation[a]
        stack, seen = [b], set()
        while stack:
            s = stack.pop()
            if s == a:
                return True
            if s in seen or self.generation[s] <= ga:
                continue
            seen.add(s)
            stack.extend(self.parents[s])
        return False

    def merge_bases(self, a: str, b: str) -> list[str]:
        """Every best common ancestor of ``a`` and ``b`` (a common ancestor that is not an
        ancestor of another common one), oldest first (generation, time, id), as git orders
        them for its recursive merge. Several come out of criss-cross histories; none when
        the histories are unrelated."""
        common = self.ancestors_of([a]) & self.ancestors_of([b])
        if not common:
            return []
        covered = self.ancestors_of([p for c in common for p in self.parents[c]])
        return sorted(
            (c for c in common if c not in covered),
            key=lambda s: (self.generation[s], str(self.time[s]), s),
        )

    def walk(self, head: str, *, first_parent: bool = False) -> Iterator[str]:
        """History newest first: by generation (then time), or the first-parent chain."""
        if first_parent:
            s: str | None = head
            while s is not None:
                yield s
                ps = self.parents.get(s) or []
                s = ps[0] if ps else None
            return
        heap = [(-self.generation[head], head)]
        seen = {head}
        while heap:
            _, s = heapq.heappop(heap)
            yield s
            for p in self.parents[s]:
                if p not in seen:
                    seen.add(p)
                    heapq.heappush(heap, (-self.generation[p], p))


def commit_graph(*, repo: Repo) -> CommitGraph:
    parents, gen, pk, tm = {}, {}, {}, {}
    for row_pk, sha, ps, g, t in Commit.objects.filter(repo=repo).values_list(
        "pk", "sha", "parents", "generation", "created_at"
    ):
        parents[sha], gen[sha], pk[sha], tm[sha] = ps, g, row_pk, t
    return CommitGraph(parents, gen, pk, tm)


def commit_log(
    *,
    repo: Repo,
    ref: str,
    first_parent: bool = False,
    offset: int = 0,
    limit: int = 50,
    path: str | None = None,
) -> tuple[list[Commit], bool]:
    """A page of history from ``ref``; returns (commits, has_more)."""
    head = resolve(repo=repo, ref=ref)
    graph = commit_graph(repo=repo)
    shas = []
    for i, s in enumerate(graph.walk(head.sha, first_parent=first_parent)):
        if i < offset:
            continue
        shas.append(s)
        if len(shas) > limit:
            break
    has_more = len(shas) > limit
    shas = shas[:limit]
    by_sha = {c.sha: c for c in Commit.objects.filter(repo=repo, sha__in=shas)}
    return [by_sha[s] for s in shas], has_more


def commit_children_count(*, repo: Repo) -> int:
    return Commit.objects.filter(repo=repo).count()


# --- trees and files -----------------------------------------------------------------------------


def tree_files(*, commit: Commit, prefix: str = "") -> list[dict]:
    entries = commit.tree.entries
    paths = sorted(p for p in entries if p.startswith(prefix))
    files = {
        f.oid: f
        for f in FileObject.objects.filter(oid__in={entries[p] for p in paths}).only(
            "oid", "size", "kind"
        )
    }
    return [
        {
            "path": p,
            "oid": entries[p],
            "size": files[entries[p]].size,
            "kind": files[entries[p]].kind,
        }
        for p in paths
    ]


def file_get(*, commit: Commit, path: str) -> FileObject:
    oid = commit.tree.entries.get(path)
    if oid is None:
        raise NotFound(f"{path} does not exist at {commit.sha[:12]}.", code="path_not_found")
    return FileObject.objects.get(oid=oid)


def file_iter(*, file: FileObject, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The bytes of ``file`` in [start, end), chunk by chunk; every whole chunk is verified
    against its hash before it is sent, so corruption on disk never reaches a client."""
    blobs = get_blob_store()
    end = file.size if end is None else end
    pos = 0
    for digest, size in file.chunks:
        lo, hi = max(start, pos), min(end, pos + size)
        if lo < hi:
            data = blobs.get(digest, verify=True)
            yield data[lo - pos : hi - pos] if (lo - pos, hi - pos) != (0, size) else data
        pos += size
        if pos >= end:
            break


def file_presigned_url(*, file: FileObject, filename: str | None = None) -> str | None:
    """Where a client may fetch ``file`` straight from the blob store, or None (the hub
    streams it). Only a file stored as one chunk is one object; the store decides whether it
    presigns at all (``HUB_S3_PRESIGN_MIN_BYTES``) and from which size."""
    blobs = get_blob_store()
    threshold = getattr(blobs, "presign_min_bytes", 0)
    if threshold <= 0 or file.size < threshold or len(file.chunks) != 1:
        return None
    return blobs.presigned_url(file.chunks[0][0], filename=filename)


def file_stream(
    *, file: FileObject, start: int = 0, end: int | None = None, path: str = ""
) -> Iterator[bytes]:
    """:func:`file_iter` for a response: the first chunk is read and verified *now*, so a
    corrupt or missing first chunk is a clean ``503 corrupt_chunk`` error instead of a 200
    whose body breaks. A later bad chunk still raises mid-stream: the server then drops the
    connection and the client sees a body shorter than its Content-Length (the SDK, which
    verifies every chunk, resumes once and then gets this error)."""
    it = file_iter(file=file, start=start, end=end)
    try:
        first = next(it)
    except StopIteration:
        return iter(())
    except BlobStoreUnavailable:
        raise  # an outage, not a bad chunk: 503 blob_store_unavailable
    except BlobError as e:
        digest = e.expected if isinstance(e, BlobHashMismatch) else str(e)
        log.error("corrupt or missing chunk %s of file %s (%s): %s", digest, file.oid, path, e)
        raise ServiceUnavailable(
            f"{path or 'This file'}: a stored chunk failed verification, so it cannot be served. "
            "An administrator must restore the blob store.",
            code="corrupt_chunk",
            retry_after=60,
            details={
                "path": path or None,
                "oid": file.oid,
                "chunk": digest,
                "reason": "hash_mismatch" if isinstance(e, BlobHashMismatch) else "missing",
            },
        ) from e
    return itertools.chain([first], it)


# --- what dedupe saves (definitions in hub.registry.dedupe) ---------------------------------------

_IN_BATCH = 500  # values per SQL IN (...): SQLite caps the parameters of one statement


def _manifests(oids) -> dict[str, dedupe.Manifest]:
    """``{oid: (size, chunks)}`` of the files ``oids``."""
    oids = list(set(oids))
    out: dict[str, dedupe.Manifest] = {}
    for i in range(0, len(oids), _IN_BATCH):
        for oid, size, chunks in FileObject.objects.filter(
            oid__in=oids[i : i + _IN_BATCH]
        ).values_list("oid", "size", "chunks"):
            out[oid] = (size, chunks)
    return out


def commit_stats_compute(*, entries: dict[str, str], parent_entries: list[dict[str, str]]) -> dict:
    """``{files, bytes, new_bytes, reused_bytes}`` of a tree against its parents' trees: two
    queries' worth of manifests, no blob read. services._new_commit stores it on the commit."""
    oids = set(entries.values()).union(*(p.values() for p in parent_entries))
    return dedupe.commit_stats(
        entries=entries, parent_entries=parent_entries, manifests=_manifests(oids)
    )


def commit_stats(*, commit: Commit) -> dict:
    """The commit's stored stats; computed here (not stored: reads never write) only for a
    commit written without them."""
    if commit.stats is not None:
        return commit.stats
    parents = Commit.objects.select_related("tree").filter(
        repo_id=commit.repo_id, sha__in=commit.parents
    )
    return commit_stats_compute(
        entries=commit.tree.entries, parent_entries=[p.tree.entries for p in parents]
    )


def repo_stats(*, repo: Repo) -> dict:
    """``{head_bytes, logical_bytes, stored_bytes, dedupe_ratio, commits}`` over the commits
    reachable from the repo's branches and tags (dangling commits of deleted branches, which GC
    will free, are not counted). It reads every reachable tree and manifest once, so the answer
    is cached under the set of ref heads: commits and manifests never change, so a cached value
    is right until a ref moves, which changes the key (HUB_REPO_STATS_CACHE_SECONDS bounds how
    long an unused one is kept)."""
    refs = list(Ref.objects.filter(repo=repo).values_list("kind", "name", "commit__sha"))
    heads = sorted({sha for _, _, sha in refs})
    default = next(
        (sha for kind, n, sha in refs if kind == Ref.Kind.BRANCH and n == repo.default_branch), ""
    )
    key = "registry:repo-stats:{}:{}".format(
        repo.pk, hashlib.sha256(f"{default}|{','.join(heads)}".encode()).hexdigest()
    )
    cached = cache.get(key)
    if cached is not None:
        return cached
    parents, tree_of = {}, {}
    for sha, ps, tree in Commit.objects.filter(repo=repo).values_list("sha", "parents", "tree_id"):
        parents[sha], tree_of[sha] = ps, tree
    reachable = CommitGraph(parents, {}, {}, {}).ancestors_of(heads)
    tree_ids = list({tree_of[s] for s in reachable})
    trees: dict[str, dict] = {}
    for i in range(0, len(tree_ids), _IN_BATCH):
        trees.update(
            Tree.objects.filter(hash__in=tree_ids[i : i + _IN_BATCH]).values_list("hash", "entries")
        )
    stats = dedupe.repo_stats(
        trees=trees.values(),
        head=trees.get(tree_of.get(default, "")),
        manifests=_manifests(oid for t in trees.values() for oid in t.values()),
        commits=len(reachable),
    )
    cache.set(key, stats, settings.HUB_REPO_STATS_CACHE_SECONDS)
    return stats


# --- diff ----------------------------------------------------------------------------------------


def diff(
    *, repo: Repo, a: str, b: str, tensors: bool = True, tensor_filter: str | None = None
) -> dict:
    """What changed from ref ``a`` to ref ``b``: files added/removed/changed; for safetensors
    files changed on both, per tensor: added/removed, shape/dtype changes, and for same-shape
    tensors ‖Δ‖₂, relative change ‖Δ‖₂/‖a‖₂ and cosine similarity (streamed, never a whole
    model in memory; tensors whose chunks are identical are skipped without reading)."""
    ca, cb = resolve(repo=repo, ref=a), resolve(repo=repo, ref=b)
    ea, eb = ca.tree.entries, cb.tree.entries
    files = {
        f.oid: f for f in FileObject.objects.filter(oid__in=set(ea.values()) | set(eb.values()))
    }
    out_files = []
    blobs = get_blob_store()
    for path in sorted(set(ea) | set(eb)):
        oa, ob = ea.get(path), eb.get(path)
        if oa == ob:
            continue
        if oa is None:
            out_files.append(
                {"path": path, "status": "added", "size_b": files[ob].size, "oid_b": ob}
            )
            continue
        if ob is None:
            out_files.append(
                {"path": path, "status": "removed", "size_a": files[oa].size, "oid_a": oa}
            )
            continue
        fa, fb = files[oa], files[ob]
        entry = {
            "path": path,
            "status": "changed",
            "size_a": fa.size,
            "size_b": fb.size,
            "oid_a": oa,
            "oid_b": ob,
        }
        if tensors and fa.kind == fb.kind == "safetensors":
            entry["tensors"], entry["unchanged_tensors"] = _tensor_diff(
                fa, fb, blobs, tensor_filter
            )
        out_files.append(entry)
    return {
        "a": {"ref": a, "commit": ca.sha},
        "b": {"ref": b, "commit": cb.sha},
        "files": out_files,
    }


def _tensor_diff(
    fa: FileObject, fb: FileObject, blobs, tensor_filter: str | None
) -> tuple[list[dict], int]:
    cache: dict = {}
    rows = []
    unchanged = 0
    names = list(fa.tensors) + [n for n in fb.tensors if n not in fa.tensors]
    for name in names:
        if tensor_filter and tensor_filter not in name:
            continue
        ta = TensorRef.of(fa, name) if name in fa.tensors else None
        tb = TensorRef.of(fb, name) if name in fb.tensors else None
        if ta is None:
            rows.append({"name": name, "status": "added", "b": tb.stat()})
        elif tb is None:
            rows.append({"name": name, "status": "removed", "a": ta.stat()})
        elif tensors_identical(ta, tb, blobs, cache):
            unchanged += 1
        else:
            row = {
                "name": name,
                "status": "changed",
                "a": ta.stat(),
                "b": tb.stat(),
                "shape_changed": ta.shape != tb.shape,
                "dtype_changed": ta.dtype != tb.dtype,
            }
            if comparable(ta, tb):
                row.update(delta_stats(ta, tb, blobs, cache))
            rows.append(row)
    return rows, unchanged


def file_reader(*, file: FileObject) -> FileReader:
    return FileReader(file, get_blob_store())
