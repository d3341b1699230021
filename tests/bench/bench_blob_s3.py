"""Push and pull throughput of the blob store: a local folder beside S3 (SeaweedFS here).

Same files on both backends, through the blob interface the registry uses: a push chunks
the files (tensor-aware for safetensors, content-defined otherwise), then stages, verifies
and publishes every chunk; a pull reads every chunk back in file order and verifies its hash.
Each figure is the median of REPEATS runs, each run into a fresh folder / prefix, so every
chunk is really written. Run: ``python -m tests.bench.bench_blob_s3``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hub.shared.chunking import MAX_CHUNK, chunk_bytes
from hub.stores.blobs import LocalBlobStore
from hub.stores.blobs.s3 import S3BlobStore
from tests.fixtures_services import S3_TEST_BUCKET, start_seaweedfs, unique_name
from tests.helpers import st_bytes

REPEATS = 3
MIB = 1024 * 1024


def files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    tensors = {
        f"layer{i}.w": rng.standard_normal((1024, 1024), dtype=np.float32) for i in range(16)
    }
    return {"model.safetensors": st_bytes(tensors), "data.bin": os.urandom(32 * MIB)}


def push(store, manifests) -> None:
    for data, chunks in manifests:
        for c in chunks:
            store.put(c.hash, [data[c.offset : c.offset + c.size]], max_size=MAX_CHUNK)


def pull(store, manifests) -> int:
    n = 0
    for _data, chunks in manifests:
        for c in chunks:
            n += len(store.get(c.hash, verify=True))
    return n


def measure(make_store, manifests, total: int) -> tuple[float, float]:
    push_s, pull_s = [], []
    for _ in range(REPEATS):
        store = make_store()
        t = time.perf_counter()
        push(store, manifests)
        push_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        assert pull(store, manifests) == total
        pull_s.append(time.perf_counter() - t)
    return total / MIB / statistics.median(push_s), total / MIB / statistics.median(pull_s)


def main() -> None:
    fs = files()
    manifests = [(data, chunk_bytes(data, name=name).chunks) for name, data in fs.items()]
    total = sum(len(d) for d in fs.values())
    n_chunks = sum(len(c) for _, c in manifests)
    work = Path(tempfile.mkdtemp(prefix="hub-bench-blobs-"))
    server = start_seaweedfs(work / "seaweedfs")
    try:
        server.client().create_bucket(Bucket=S3_TEST_BUCKET)

        def folder():
            return LocalBlobStore(work / unique_name("folder"), fsync=False)

        def s3():
            return S3BlobStore(
                S3_TEST_BUCKET,
                unique_name("bench"),
                endpoint_url=server.endpoint_url,
                access_key_id=server.ACCESS_KEY,
                secret_access_key=server.SECRET_KEY,
            )

        print(f"{total / MIB:.0f} MiB in {n_chunks} chunks, median of {REPEATS} runs")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        results = {"folder": measure(folder, manifests, total), "s3": measure(s3, manifests, total)}
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'backend':<10}{'push MiB/s':>12}{'pull MiB/s':>12}")
        for name, (up, down) in results.items():
            print(f"{name:<10}{up:>12.1f}{down:>12.1f}")
        (fu, fd), (su, sd) = results["folder"], results["s3"]
        print(f"s3/folder: push {su / fu:.2f}x, pull {sd / fd:.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
