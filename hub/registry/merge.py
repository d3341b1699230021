"""Merging one ref into a branch: fast-forward when possible, else a three-way merge at file
granularity and, for safetensors files both sides changed, at tensor granularity, with the
ML-aware strategies on top (ours / theirs / weighted average of the two tensors).

    merge()                 the service: up to date, fast-forward, or a merge commit (409 on conflict)
    _merge_base_tree()      the base to merge against; several bases (criss-cross histories) are
                            merged pairwise into a virtual base, like git's recursive strategy
    _merge_entries()        three-way merge of two trees {path: oid} against the base
    _merge_safetensors()    three-way merge of one safetensors file, tensor by tensor

A merge writes through the same helpers as a commit (:mod:`hub.registry.services`): it holds
the GC barrier shared, stores new tensor pieces as chunks, and moves the target branch by
compare-and-swap, so a concurrent writer or GC is never overwritten.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from hub.common.errors import Conflict, Forbidden, HubError, InvalidInput
from hub.common.validation import validate_tree_paths
from hub.registry import selectors
from hub.registry.models import Commit, FileObject, Repo
from hub.registry.services import (
    _file_from_chunks,
    _gc_barrier,
    _move_branch,
    _new_commit,
    _reindex,
    _tree_for,
    chunk_upload,
)
from hub.registry.tensorops import (
    TensorRef,
    averaged_pieces,
    delta_stats,
    tensor_pieces,
    tensors_identical,
)
from hub.shared.chunking import chunk_hash
from hub.shared.tensors import FLOAT_DTYPES, build_header
from hub.stores.blobs import get_blob_store

STRATEGIES = {None, "ours", "theirs", "average"}


@dataclass
class MergeOutcome:
    kind: str  # "up_to_date" | "fast_forward" | "merge"
    commit: Commit
    base: str | None
    merged_tensors: int = 0
    resolved: list[dict] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)  # every merge base (several: criss-cross)
    # Set when the strategy asked for did not shape the result (a fast-forward), saying so.
    note: str | None = None


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


def _merge_safetensors(
    path: str,
    base: FileObject | None,
    ours: FileObject,
    theirs: FileObject,
    strategy: str | None,
    weight: float,
    conflicts: list,
    resolved: list,
    soup: bool = False,
) -> FileObject | None:
    """Three-way merge of one safetensors file at tensor granularity.

    Per tensor name, with b/o/t its base/ours/theirs versions (any may be absent):
    o ≡ t → o; o ≡ b → t; t ≡ b → o; otherwise both changed it: a conflict, unless the
    strategy resolves it (ours, theirs, or average: (1−w)·o + w·t for same-shape floats).
    ``soup`` (an average merge of a source that descends from the target, ``--no-ff``): every
    tensor the two sides hold differently is averaged, not only those both changed."""
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
        averageable = (
            o is not None
            and t is not None
            and o.shape == t.shape
            and o.dtype in FLOAT_DTYPES
            and t.dtype in FLOAT_DTYPES
        )
        if same(o, t):
            choice = o
        elif soup and averageable:
            choice = ("avg", o, t)
            resolved.append({"path": path, "tensor": name, "strategy": "average", "weight": weight})
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
        elif strategy == "average" and averageable:
            choice = ("avg", o, t)
            resolved.append({"path": path, "tensor": name, "strategy": "average", "weight": weight})
        else:
            conflicts.append(
                {
                    "path": path,
                    "tensor": name,
                    "ours": _side_stat(b, o, blobs, cache),
                    "theirs": _side_stat(b, t, blobs, cache),
                }
            )
            continue
        if choice is not None:
            plan.append((name, choice))
    if len(conflicts) > n_conflicts_before:
        return None
    layout = [
        (name, c.dtype, c.shape) if isinstance(c, TensorRef) else (name, c[1].dtype, c[1].shape)
        for name, c in plan
    ]
    header, _ = build_header(layout, ours.header_metadata or None)
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
        store(
            tensor_pieces(c, blobs, cache)
            if isinstance(c, TensorRef)
            else averaged_pieces(c[1], c[2], weight, blobs, cache)
        )
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
        code="multiple_merge_bases",
        details={"bases": bases},
    )


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
    graph.parents, graph.generation, graph.time = (
        dict(graph.parents),
        dict(graph.generation),
        dict(graph.time),
    )
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
                raise _multiple_bases(
                    top,
                    f"merging them needs more than {settings.HUB_MERGE_MAX_VIRTUAL_MERGES} "
                    "virtual merges (HUB_MERGE_MAX_VIRTUAL_MERGES)",
                )
            inner = base_of(acc, nxt)
            merged, _ = _merge_entries(
                inner,
                entries(acc),
                entries(nxt),
                files=files,
                strategy=None,
                weight=0.5,
                conflicts=[],
                resolved=[],
                bases=top,
                virtual=True,
            )
            virtual = f"virtual-{len(trees)}"
            graph.parents[virtual] = [acc, nxt]
            graph.generation[virtual] = 1 + max(graph.generation[acc], graph.generation[nxt])
            graph.time[virtual] = max(str(graph.time[acc]), str(graph.time[nxt]))
            trees[virtual] = merged
            acc = virtual
        return entries(acc)

    return top, base_of(a, b)


def _merge_entries(
    base: dict,
    ours: dict,
    theirs: dict,
    *,
    files: _FileCache,
    strategy: str | None,
    weight: float,
    conflicts: list,
    resolved: list,
    bases: list[str],
    virtual: bool = False,
    soup: bool = False,
) -> tuple[dict, int]:
    """Three-way merge of trees ``{path: oid}`` at file granularity, and at tensor granularity
    for safetensors files both sides changed. Returns (merged tree, files merged by tensor);
    unresolved conflicts are appended to ``conflicts``. ``virtual``: merging two merge bases
    (see :func:`_merge_base_tree`): conflicts become :class:`_VirtualConflict` versions.
    ``soup``: the target is the merge base and the strategy is average: a safetensors file
    the source changed is averaged with the target's, tensor by tensor."""
    files.need(base, ours, theirs)
    result: dict = {}
    merged = 0
    for path in sorted(set(base) | set(ours) | set(theirs)):
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        real = isinstance(o, str) and isinstance(t, str)
        st_both = real and files[o].kind == "safetensors" and files[t].kind == "safetensors"
        if o == t:
            pick = o
        elif o == b and not (soup and st_both):
            pick = t
        elif t == b:
            pick = o
        elif virtual and (o is None or t is None):
            pick = b  # modified on one base, deleted on the other: the pair's base version, as git
        elif st_both and isinstance(b, _VirtualConflict):
            raise _multiple_bases(
                bases,
                f"{path} has tensors the bases changed differently, so there is no "
                "base to merge its tensors against",
            )
        elif st_both:
            before = len(conflicts)
            f = _merge_safetensors(
                path,
                files.get(b) if b else None,
                files[o],
                files[t],
                None if virtual else strategy,
                weight,
                conflicts,
                resolved,
                soup=soup,
            )
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
            conflicts.append(
                {
                    "path": path,
                    "tensor": None,
                    "ours": {"status": "deleted"}
                    if o is None
                    else {"status": "changed", "size": files[o].size},
                    "theirs": {"status": "deleted"}
                    if t is None
                    else {"status": "changed", "size": files[t].size},
                }
            )
            continue
        if pick is not None:
            result[path] = pick
    return result, merged


def merge(
    *,
    repo: Repo,
    source: str,
    target: str,
    user,
    strategy: str | None = None,
    weight: float = 0.5,
    message: str | None = None,
    allow_fast_forward: bool = True,
    allow_protected: bool = False,
) -> MergeOutcome:
    """Merge ref ``source`` into branch ``target``.

    Up to date when source is an ancestor of target (merging a branch into itself included);
    a fast-forward when target is an ancestor of source; otherwise a three-way merge from the
    merge base, at file granularity and, for safetensors files changed on both sides, at
    tensor granularity. Any unresolved conflict is a 409 ``merge_conflict`` listing each
    tensor with both sides' stats, and nothing is written.

    A strategy resolves conflicts, and a fast-forward has none: it is not applied, and the
    outcome's ``note`` says so (``allow_fast_forward=False``, ``--no-ff``, merges with it).
    With fast-forward possible, ``allow_fast_forward=False`` and ``strategy="average"``, the
    merge commit holds ``(1−w)·target + w·source`` for every float tensor the source changed:
    the soup of a model and its fine-tune (WiSE-FT), not a copy of the source."""
    if strategy not in STRATEGIES:
        raise InvalidInput(
            f"Unknown strategy {strategy!r}: use ours, theirs or average.", code="invalid_strategy"
        )
    if not isinstance(weight, int | float) or not 0.0 <= float(weight) <= 1.0:
        raise InvalidInput("'weight' must be between 0 and 1.", code="invalid_weight")
    weight = float(weight)
    with transaction.atomic():
        _gc_barrier(exclusive=False)
        ref = selectors.branch_get(repo=repo, name=target)
        if ref.protected and not allow_protected:
            raise Forbidden(
                f"Branch {target!r} is protected: only admins can merge into it.",
                code="branch_protected",
            )
        ours = ref.commit
        theirs = selectors.resolve(repo=repo, ref=source)
        graph = selectors.commit_graph(repo=repo)
        if theirs.sha == ours.sha or graph.is_ancestor(theirs.sha, ours.sha):
            return MergeOutcome("up_to_date", ours, theirs.sha, bases=[theirs.sha])
        can_ff = graph.is_ancestor(ours.sha, theirs.sha)
        if allow_fast_forward and can_ff:
            _move_branch(ref=ref, expected=ours, new=theirs)
            _reindex(ours, theirs)
            note = (
                f"fast-forwarded; strategy {strategy!r} not applied (use --no-ff to merge with it)"
                if strategy
                else None
            )
            return MergeOutcome("fast_forward", theirs, ours.sha, bases=[ours.sha], note=note)
        bases, base_entries = _merge_base_tree(repo=repo, graph=graph, a=ours.sha, b=theirs.sha)
        base_sha = bases[0] if len(bases) == 1 else None
        files = _FileCache()
        conflicts: list[dict] = []
        resolved: list[dict] = []
        result, merged = _merge_entries(
            base_entries,
            ours.tree.entries,
            theirs.tree.entries,
            files=files,
            strategy=strategy,
            weight=weight,
            conflicts=conflicts,
            resolved=resolved,
            bases=bases,
            soup=can_ff and strategy == "average",
        )
        if conflicts:
            raise _Conflicts(
                f"{len(conflicts)} conflict(s) merging {source!r} into {target!r}. Choose a strategy "
                "(ours, theirs or average) or reconcile the branches.",
                details={
                    "base": base_sha,
                    "bases": bases,
                    "ours": ours.sha,
                    "theirs": theirs.sha,
                    "conflicts": conflicts,
                },
            )
        validate_tree_paths(
            result, new=set(result) - set(ours.tree.entries)
        )  # e.g. 'Model.bin' meets 'model.bin'
        tree = _tree_for(result)
        msg = message or f"Merge {source} into {target}"
        meta = {
            "merge": {
                "source": source,
                "strategy": strategy,
                "weight": weight if strategy == "average" else None,
                "base": base_sha,
                **({"bases": bases} if len(bases) > 1 else {}),
            }
        }
        commit = _new_commit(
            repo=repo,
            tree=tree,
            parents=[ours, theirs],
            user=user,
            message=msg,
            metadata=meta,
            created_at=None,
        )
        _move_branch(ref=ref, expected=ours, new=commit)
        _reindex(ours, commit)
        return MergeOutcome("merge", commit, base_sha, merged, resolved, bases)
