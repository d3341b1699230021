"""Writes for the Hugging Face API: a ``create_commit`` body (NDJSON) becomes one hub commit
through the registry's own services, so the commit is the same record a ``hub push`` makes.

Upload mode. The preupload answer is ``"regular"`` for every file, so the client sends each
file's bytes inline, base64, in the commit body, and never starts an LFS or Xet transfer
(``hf_xet`` is installed with ``huggingface_hub`` >= 0.32 and would otherwise take over every
LFS-mode file, with no fallback). Here each file is chunked as the SDK chunks it
(:func:`hub.shared.chunking.chunk_bytes`: per tensor for safetensors, FastCDC otherwise), its
missing chunks stored (verified against their hashes) and the commit created with
:func:`hub.registry.services.commit_create`, compare-and-swapped like every commit. A file
larger than ``HUB_HF_MAX_INLINE_FILE_BYTES`` is refused at preupload (413).

Chunks stored before a commit that is then refused (a bad path further down the body, a
moved branch) are referenced by nothing: the next GC removes them after its grace period,
as it does for an interrupted ``hub push``. No commit is ever half-written.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable

from hub.common.errors import InvalidInput, PayloadTooLarge
from hub.common.limits import limit
from hub.common.validation import validate_path
from hub.registry import selectors as registry
from hub.registry import services as registry_services
from hub.registry.models import Commit, Repo
from hub.shared.chunking import chunk_bytes
from hub.shared.tensors import HeaderError


def inline_file_check(*, files: list[dict]) -> None:
    """A preupload's files must fit inline (``HUB_HF_MAX_INLINE_FILE_BYTES``, 413)."""
    cap = limit("HUB_HF_MAX_INLINE_FILE_BYTES")
    big = [f.get("path") for f in files if isinstance(f.get("size"), int) and f["size"] > cap]
    if big:
        raise PayloadTooLarge(
            f"{big[0]}: files above {cap} bytes cannot be uploaded through the Hugging Face "
            "API of this hub (it takes files inline only); push them with `hub push`, or raise "
            "HUB_HF_MAX_INLINE_FILE_BYTES.",
            code="file_too_large",
            details={"paths": big[:100], "limit": cap},
        )


def _store_file(*, path: str, data: bytes) -> dict:
    """Chunk ``data`` as the SDK does, store the chunks the hub lacks; the add operation."""
    try:
        manifest = chunk_bytes(data, name=path)
    except HeaderError as e:
        raise InvalidInput(f"{path}: not a valid safetensors file: {e}", code=e.code) from e
    missing = set(registry_services.chunks_missing(hashes=[c.hash for c in manifest.chunks]))
    for c in manifest.chunks:
        if c.hash in missing:
            registry_services.chunk_upload(
                digest=c.hash, parts=[data[c.offset : c.offset + c.size]]
            )
            missing.discard(c.hash)
    return manifest.as_operation()


def _item(line: bytes, n: int) -> tuple[str, dict]:
    try:
        item = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"Commit body line {n}: not JSON ({e}).", code="invalid_ndjson") from e
    if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
        raise InvalidInput(
            f'Commit body line {n}: expected {{"key": ..., "value": {{...}}}}.',
            code="invalid_ndjson",
        )
    return item.get("key"), item["value"]


def commit_from_ndjson(*, repo: Repo, branch: str, lines: Iterable[bytes], user) -> Commit:
    """Apply a ``create_commit`` body to ``branch``.

    Lines: ``header`` (``summary``, ``description``, optional ``parentCommit``: the commit is
    refused with 409 ``branch_conflict`` if the branch moved from it), ``file`` (base64
    content), ``deletedFile``, ``deletedFolder`` (every file under it at the parent).
    ``lfsFile`` is refused: this hub never asks for LFS."""
    ref = registry.branch_get(repo=repo, name=branch)  # 404 RevisionNotFound: not a branch
    header: dict | None = None
    operations: list[dict] = []
    folders: list[str] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        key, value = _item(line, n)
        if key == "header":
            header = value
        elif key == "file":
            if value.get("encoding", "base64") != "base64":
                raise InvalidInput(
                    f"Commit body line {n}: only base64 content is accepted.",
                    code="invalid_ndjson",
                )
            path = validate_path(value.get("path"))
            try:
                data = base64.b64decode(value.get("content") or "", validate=True)
            except (binascii.Error, TypeError, ValueError) as e:
                raise InvalidInput(
                    f"{path}: content is not valid base64.", code="invalid_ndjson"
                ) from e
            if len(data) > limit("HUB_HF_MAX_INLINE_FILE_BYTES"):
                inline_file_check(files=[{"path": path, "size": len(data)}])
            operations.append(_store_file(path=path, data=data))
        elif key == "deletedFile":
            operations.append({"op": "delete", "path": value.get("path")})
        elif key == "deletedFolder":
            folders.append(str(value.get("path") or "").strip("/"))
        elif key == "lfsFile":
            raise InvalidInput(
                f"{value.get('path')}: LFS uploads are not supported by this hub; it answers "
                "every preupload with uploadMode 'regular', so the client sends files inline.",
                code="lfs_not_supported",
            )
        else:
            raise InvalidInput(
                f"Commit body line {n}: unknown key {str(key)[:40]!r}.", code="invalid_ndjson"
            )
    if header is None:
        raise InvalidInput("The commit body has no header line.", code="invalid_ndjson")
    summary = str(header.get("summary") or "").strip()
    description = str(header.get("description") or "").strip()
    message = summary + (f"\n\n{description}" if description else "")
    expected = header.get("parentCommit") or None
    if folders:
        # Expanded against a known head, which the commit then compare-and-swaps against.
        parent = registry.commit_get(repo=repo, sha=expected) if expected else ref.commit
        expected = parent.sha
        named = {op.get("path") for op in operations}
        for folder in folders:
            below = [p for p in parent.tree.entries if not folder or p.startswith(folder + "/")]
            if not below:
                raise InvalidInput(
                    f"deletedFolder: {folder} does not exist at {parent.sha}.",
                    code="path_not_found",
                )
            operations += [{"op": "delete", "path": p} for p in below if p not in named]
            named.update(below)
    commit, _ = registry_services.commit_create(
        repo=repo,
        branch=ref.name,
        operations=operations,
        message=message,
        user=user,
        expected_head=expected,
    )
    return commit
