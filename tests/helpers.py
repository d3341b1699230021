"""Test helpers: build safetensors bytes and push them through the real API."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import save

from hub.shared.chunking import chunk_bytes

#: The smallest training config the MoE workload accepts: jobs API tests launch it.
TINY = {
    "model": {
        "n_layer": 2,
        "n_embd": 32,
        "n_head": 2,
        "n_experts": 4,
        "expert_hidden": 32,
        "top_k": 2,
    },
    "train": {
        "steps": 2,
        "batch_size": 2,
        "warmup_steps": 1,
        "checkpoint_every": 2,
        "eval_every": 2,
        "log_every": 1,
    },
}


def st_bytes(tensors: dict[str, np.ndarray], metadata: dict | None = None) -> bytes:
    return save(tensors, metadata=metadata)


def model(seed: int = 0, n: int = 6, shape=(32, 32)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"layers.{i}.w": rng.standard_normal(shape).astype(np.float32) for i in range(n)}


def head(client, repo: str, branch: str = "main") -> str:
    r = client.get(f"/api/v1/repos/{repo}/branches/{branch}")
    assert r.status_code == 200, r.content
    return r.json()["commit"]


def upload(client, repo: str, files: dict[str, bytes]) -> list[dict]:
    """Negotiate and upload the chunks of ``files``; returns the add operations."""
    ops = []
    for path, data in files.items():
        m = chunk_bytes(data, name=path)
        missing = client.post(
            f"/api/v1/repos/{repo}/chunks/missing",
            {"chunks": [c.hash for c in m.chunks]},
            format="json",
        )
        assert missing.status_code == 200, missing.content
        for c in m.chunks:
            if c.hash in missing.json()["missing"]:
                r = client.put(
                    f"/api/v1/repos/{repo}/chunks/{c.hash}",
                    data[c.offset : c.offset + c.size],
                    content_type="application/octet-stream",
                )
                assert r.status_code in (200, 201), r.content
        ops.append(m.as_operation())
    return ops


def push(
    client,
    repo: str,
    files: dict[str, bytes],
    *,
    branch: str = "main",
    message: str = "update",
    expected_head: str | None = None,
    deletes: tuple[str, ...] = (),
):
    ops = upload(client, repo, files) + [{"op": "delete", "path": p} for p in deletes]
    body = {"branch": branch, "message": message, "operations": ops}
    if expected_head:
        body["expected_head"] = expected_head
    return client.post(f"/api/v1/repos/{repo}/commits", body, format="json")


def download(client, repo: str, path: str, ref: str = "main", **headers) -> tuple[int, bytes, dict]:
    r = client.get(f"/api/v1/repos/{repo}/files/{path}?ref={ref}", **headers)
    body = b"".join(r.streaming_content) if hasattr(r, "streaming_content") else r.content
    return r.status_code, body, r


def store_state():
    """A fingerprint of everything the registry stores, to prove a refused write changed nothing."""
    from hub.registry.models import Chunk, Commit, FileObject, Ref, Tree

    return (
        Commit.objects.count(),
        Tree.objects.count(),
        FileObject.objects.count(),
        Chunk.objects.count(),
        sorted(Ref.objects.values_list("repo_id", "kind", "name", "commit_id", "protected")),
    )


#: What the browser tests' live jobs use: a 20-step training of a tiny model, its resources,
#: and the states a job ends in.
LIVE_TRAIN = {
    "model": {
        "n_layer": 2,
        "n_embd": 32,
        "n_head": 2,
        "n_experts": 4,
        "expert_hidden": 32,
        "top_k": 2,
        "n_dense_layers": 0,
        "block_size": 64,
    },
    "data": {"max_bytes": 200_000},
    "train": {
        "steps": 20,
        "batch_size": 4,
        "warmup_steps": 2,
        "checkpoint_every": 20,
        "eval_every": 10,
        "log_every": 5,
        "eval_tokens": 4096,
    },
}
LIVE_RES = {"cpus": 1, "memory_mb": 3072, "time_limit_s": 300}
TERMINAL = ("succeeded", "failed", "cancelled", "lost")
