"""What chunk-level dedupe saves, as arithmetic over file manifests (no database here: the
selectors load the manifests, and the migration that back-filled commit stats reuses this).

A manifest is ``(size, chunks)`` with ``chunks = [[hash, size], ...]`` (FileObject). A tree is
``{path: oid}``. The definitions (also in the API docs):

* commit ``bytes``: the sum of its files' sizes, path by path (what a checkout writes).
* commit ``new_bytes``: the bytes of the distinct chunks its files reference that no parent's
  tree references -- what this commit added to the repo's history. ``reused_bytes``: the bytes
  of its distinct chunks that some parent's tree (any parent, for a merge) already references.
  ``new_bytes + reused_bytes`` is the commit's distinct chunk bytes, at most ``bytes`` (a
  chunk repeated inside one commit counts once). "New" is relative to the parents only: a
  chunk that another branch, an older ancestor or another repo already stored is new here,
  though the blob store keeps one copy of it.
* repo ``head_bytes``: the default branch head's ``bytes``.
* repo ``logical_bytes`` ("logical size of all versions"): the sum of file sizes over every
  distinct (path, content) pair of every reachable commit -- each version of each file counted
  once, as a store that keeps whole files would hold them.
* repo ``stored_bytes``: the bytes of the distinct chunks those files reference -- what the
  blob store holds for this repo (chunks shared with other repos included once).
* ``dedupe_ratio`` = logical_bytes / stored_bytes (None when nothing is stored); dedupe saves
  ``1 - stored_bytes / logical_bytes`` of the logical size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Manifest = tuple[int, list]


def distinct_chunks(oids: Iterable[str], manifests: Mapping[str, Manifest]) -> dict[str, int]:
    """``{chunk hash: size}`` over the files ``oids``, each chunk once."""
    out: dict[str, int] = {}
    for oid in set(oids):
        for digest, size in manifests[oid][1]:
            out[digest] = size
    return out


def commit_stats(
    *,
    entries: Mapping[str, str],
    parent_entries: Iterable[Mapping[str, str]],
    manifests: Mapping[str, Manifest],
) -> dict:
    """``{files, bytes, new_bytes, reused_bytes}`` of a commit whose tree is ``entries``, its
    parents' trees being ``parent_entries`` (module docstring for the definitions)."""
    mine = distinct_chunks(entries.values(), manifests)
    before: set[str] = set()
    for parent in parent_entries:
        before.update(distinct_chunks(parent.values(), manifests))
    new = sum(size for digest, size in mine.items() if digest not in before)
    return {
        "files": len(entries),
        "bytes": sum(manifests[oid][0] for oid in entries.values()),
        "new_bytes": new,
        "reused_bytes": sum(mine.values()) - new,
    }


def repo_stats(
    *,
    trees: Iterable[Mapping[str, str]],
    head: Mapping[str, str] | None,
    manifests: Mapping[str, Manifest],
    commits: int,
) -> dict:
    """``{head_bytes, logical_bytes, stored_bytes, dedupe_ratio, commits}`` of a repo whose
    reachable commits have ``trees`` (``commits`` of them) and whose default head is ``head``."""
    pairs: set[tuple[str, str]] = set()
    for tree in trees:
        pairs.update(tree.items())
    logical = sum(manifests[oid][0] for _, oid in pairs)
    stored = sum(distinct_chunks((oid for _, oid in pairs), manifests).values())
    return {
        "head_bytes": sum(manifests[oid][0] for oid in (head or {}).values()),
        "logical_bytes": logical,
        "stored_bytes": stored,
        "dedupe_ratio": round(logical / stored, 4) if stored else None,
        "commits": commits,
    }
