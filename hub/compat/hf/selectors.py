"""Reads for the Hugging Face API, in the shapes the ``huggingface_hub`` client parses. Every
ref goes through the registry's one resolver and every byte through its verified file
stream; this module only reshapes what :mod:`hub.registry.selectors` returns.

Ids. A commit's id is the hub's (40 hex, as the client requires). A file's ``oid``/``blobId``
and ETag is the hub's content id (64 hex BLAKE3 of its chunk list), not git's blob SHA-1: the
client names its cache blobs by it and never recomputes it (``verify_repo_checksums``, which
would, is not supported). A folder's ``oid`` is a SHA-1 of its listing, not git's tree id.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache

from hub.common.validation import validate_path
from hub.compat.hf.protocol import EntryNotFound, hf_date
from hub.registry import cards
from hub.registry import selectors as registry
from hub.registry.models import Commit, FileObject, Repo

HEADS, TAGS = registry.HEADS, registry.TAGS


def split_revision(
    *, repo: Repo, segments: list[str], raw: bool, need_path: bool
) -> tuple[str, str]:
    """``(revision, path)`` from the path segments after ``resolve/`` or ``tree/``.

    With the raw URI (``raw``), the first segment is the whole revision (the client quotes a
    ``/`` in it as ``%2F``). Without it the segments were decoded together, so the longest
    leading run of segments that names a branch or tag is the revision (``refs/heads/…`` and
    ``refs/tags/…`` included); otherwise the first segment is (a commit id, ``HEAD``, or a
    revision the resolver will refuse)."""
    if not segments or not segments[0]:
        return "", "/".join(segments[1:])
    if not raw and len(segments) > 1:
        names = {r.name for r in registry.refs_list(repo=repo)}
        top = len(segments) - 1 if need_path else len(segments)
        for i in range(top, 0, -1):
            cand = "/".join(segments[:i])
            bare = cand
            for prefix in (HEADS, TAGS):
                if cand.startswith(prefix):
                    bare = cand[len(prefix) :]
            if bare in names:
                return cand, "/".join(segments[i:])
    return segments[0], "/".join(segments[1:])


def file_at(*, commit: Commit, path: str) -> FileObject:
    """The file at ``path`` in ``commit``; :class:`EntryNotFound` (with the commit, which the
    client caches the miss under) when the commit has none. The path follows the hub's path
    rule (400 ``invalid_path`` otherwise)."""
    validate_path(path)
    if path not in commit.tree.entries:
        raise EntryNotFound(f"{path} does not exist at {commit.sha}.", commit=commit.sha)
    return registry.file_get(commit=commit, path=path)


def model_info(*, repo: Repo, commit: Commit, blobs: bool) -> dict:
    """``GET /api/models/{repo}[/revision/{rev}]``: ``id`` and ``sha`` are what the client
    requires; ``cardData``, ``tags``, ``pipeline_tag`` and ``library_name`` come from the
    README.md front matter at that commit (:mod:`hub.registry.cards`); counters the hub does
    not keep (downloads, likes) are 0."""
    siblings = []
    for f in registry.tree_files(commit=commit):
        s = {"rfilename": f["path"]}
        if blobs:
            s.update(size=f["size"], blobId=f["oid"])
        siblings.append(s)
    card = cards.read_card(commit=commit)  # README.md front matter, as the hub parses it
    fields = card.fields if card is not None else {}
    return {
        "_id": repo.full_name,
        "id": repo.full_name,
        "modelId": repo.full_name,
        "author": repo.namespace.name,
        "sha": commit.sha,
        "lastModified": hf_date(commit.created_at),
        "createdAt": hf_date(repo.created_at),
        "private": repo.private,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": list(fields.get("tags") or []),
        "pipeline_tag": fields.get("pipeline_tag"),
        "library_name": fields.get("library_name"),
        "cardData": card.metadata if card is not None and card.metadata else None,
        "siblings": siblings,
    }


def tree(*, commit: Commit, path: str, recursive: bool) -> list[dict]:
    """``GET /api/models/{repo}/tree/{rev}[/{path}]``: the entries under folder ``path``
    (its direct children, or everything below with ``recursive``), folders first, then
    files, each by path. A ``path`` that is a file lists that file, as the Hub does; one
    that is neither is :class:`EntryNotFound`."""
    prefix = path.strip("/")
    files = registry.tree_files(commit=commit)
    if prefix and any(f["path"] == prefix for f in files):
        return [_file_entry(f) for f in files if f["path"] == prefix]
    under = [f for f in files if not prefix or f["path"].startswith(prefix + "/")]
    if prefix and not under:
        raise EntryNotFound(f"{prefix} does not exist at {commit.sha}.", commit=commit.sha)
    base = len(prefix) + 1 if prefix else 0
    folders: dict[str, list[str]] = {}
    out_files = []
    for f in under:
        rel = f["path"][base:].split("/")
        for depth in range(1, len(rel)):
            if depth > 1 and not recursive:
                break
            folder = f["path"][:base] + "/".join(rel[:depth])
            folders.setdefault(folder, []).append(f"{f['path']} {f['oid']}")
        if recursive or len(rel) == 1:
            out_files.append(_file_entry(f))
    out_dirs = [
        {
            "type": "directory",
            "oid": hashlib.sha1("\n".join(sorted(listing)).encode()).hexdigest(),
            "path": folder,
        }
        for folder, listing in sorted(folders.items())
    ]
    return out_dirs + out_files


def _file_entry(f: dict) -> dict:
    return {"type": "file", "oid": f["oid"], "size": f["size"], "path": f["path"]}


def refs(*, repo: Repo, include_prs: bool) -> dict:
    """``GET /api/models/{repo}/refs``: every branch and tag with its commit."""
    out: dict = {"branches": [], "converts": [], "tags": []}
    for r in registry.refs_list(repo=repo):
        key, prefix = ("branches", HEADS) if r.kind == "branch" else ("tags", TAGS)
        out[key].append({"name": r.name, "ref": prefix + r.name, "targetCommit": r.commit.sha})
    if include_prs:
        out["pullRequests"] = []  # the hub has no pull requests
    return out


def commits(*, repo: Repo, rev: str, page: int, page_size: int) -> tuple[list[dict], bool]:
    """One page of ``GET /api/models/{repo}/commits/{rev}``: the history from ``rev`` newest
    first (the hub's own order, :func:`hub.registry.selectors.commit_log`)."""
    page_commits, more = registry.commit_log(
        repo=repo, ref=rev, offset=page * page_size, limit=page_size
    )
    out = []
    for c in page_commits:
        title, _, body = c.message.partition("\n")
        out.append(
            {
                "id": c.sha,
                "title": title,
                "message": body.strip("\n"),
                "date": hf_date(c.created_at),
                "authors": [{"user": c.author_name}],
            }
        )
    return out, more


def git_blob_sha1(*, file: FileObject) -> str:
    """Git's id of ``file``'s bytes (``sha1("blob <size>\\0" + bytes)``), read through the
    verified stream: what the client compares a local file against before uploading it.
    Content never changes under an oid, so the answer is cached by oid."""
    key = f"hf:git-sha1:{file.oid}"
    cached = cache.get(key)
    if cached:
        return cached
    h = hashlib.sha1(f"blob {file.size}\0".encode())
    for part in registry.file_iter(file=file):
        h.update(part)
    cache.set(key, h.hexdigest(), None)
    return h.hexdigest()


def remote_oids(*, commit: Commit, files: list[dict], budget: int) -> dict[str, str | None]:
    """For a preupload: the git SHA-1 of each path's current content at ``commit`` when the
    client could skip it (same size); None otherwise. A file of another size has changed
    whatever its bytes, so only equal sizes are read, and at most ``budget`` bytes in all
    (past it the client simply sends the file again, and the commit keeps its content)."""
    entries = commit.tree.entries
    out: dict[str, str | None] = {}
    for f in files:
        path, size = f.get("path"), f.get("size")
        obj = registry.file_get(commit=commit, path=path) if path in entries else None
        if obj is None or obj.size != size or obj.size > budget:
            out[path] = None
            continue
        budget -= obj.size
        out[path] = git_blob_sha1(file=obj)
    return out
