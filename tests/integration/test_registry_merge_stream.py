"""A three-way merge stores each new piece as it is produced: however large the averaged (or
re-cut) tensors are, it never holds more than one new piece in memory."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load

from hub.registry import merge, tensorops
from tests.helpers import download, model, push, st_bytes

pytestmark = [pytest.mark.integration]


@pytest.fixture
def repo(api):
    client, _ = api
    assert client.post("/api/v1/repos", {"name": "soup"}, format="json").status_code == 201
    return "alice/soup"


def test_average_merge_stores_each_piece_before_computing_the_next(api, repo, monkeypatch):
    client, _ = api
    base = model(seed=11, n=3, shape=(64, 64))  # 16 KiB per tensor
    push(client, repo, {"m.safetensors": st_bytes(base)})
    for b in ("a", "b"):
        assert (
            client.post(f"/api/v1/repos/{repo}/branches", {"name": b}, format="json").status_code
            == 201
        )
    a, b = dict(base), dict(base)
    a["layers.1.w"] = base["layers.1.w"] * 2
    b["layers.1.w"] = base["layers.1.w"] * 4
    a["layers.2.w"] = base["layers.2.w"] + 1
    b["layers.2.w"] = base["layers.2.w"] - 1
    push(client, repo, {"m.safetensors": st_bytes(a)}, branch="a")
    push(client, repo, {"m.safetensors": st_bytes(b)}, branch="b")

    # Small pieces: each 16 KiB tensor becomes 16 pieces in the merged file.
    monkeypatch.setattr(tensorops, "TENSOR_PIECE", 1024)
    outstanding = {"now": 0, "max": 0}
    real_hash, real_upload = tensorops.chunk_hash, merge.chunk_upload

    def made(data):
        outstanding["now"] += 1
        outstanding["max"] = max(outstanding["max"], outstanding["now"])
        return real_hash(data)

    def stored(*, digest, parts, **kw):
        if outstanding["now"]:
            outstanding["now"] -= 1
        return real_upload(digest=digest, parts=parts, **kw)

    monkeypatch.setattr(tensorops, "chunk_hash", made)
    monkeypatch.setattr(merge, "chunk_upload", stored)  # the name the merge stores pieces by
    r = client.post(
        f"/api/v1/repos/{repo}/merge",
        {"source": "b", "target": "a", "strategy": "average", "weight": 0.25},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert outstanding["max"] == 1, (
        outstanding
    )  # one piece in memory at a time, never a tensor's worth

    monkeypatch.undo()
    out = load(download(client, repo, "m.safetensors", ref="a")[1])
    for name in ("layers.1.w", "layers.2.w"):
        want = (0.75 * a[name].astype(np.float64) + 0.25 * b[name].astype(np.float64)).astype(
            np.float32
        )
        assert np.array_equal(out[name], want), name  # float64 math per block, stored as float32
    assert np.array_equal(out["layers.0.w"], base["layers.0.w"])
