"""Registry benchmarks against a live `hub serve` (real HTTP, real disk).

1. Dedupe: push a ~500 MB safetensors model of 64 tensors, then a version with one tensor
   changed; report bytes newly stored ÷ that tensor's bytes (goal ≤ 1.05).
2. Throughput: push and pull of that model vs `cp` of the same file on the same disk, as
   ratios of throughput (goals: push ≥ 0.5, pull ≥ 0.7).
3. Latency: branch creation and a small commit, p50/p95, in a repo with 10,000 commits.
4. The ceiling: the same bytes PUT and GET through the same web server set-up with a no-op
   app, so the figures say how much of push/pull time is HTTP itself and how much the hub.

Run: .venv/bin/python tests/bench/bench_registry.py [--mb 500] [--commits 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def drop_page_cache_hint(path: Path) -> None:
    """Best effort: evict a file from the page cache so reads are comparable."""
    try:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    except OSError:
        pass


def make_model(path: Path, mb: int, tensors: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    per = mb * 1024 * 1024 // tensors // 4
    cols = 1024
    rows = max(1, per // cols)
    t = {
        f"layers.{i // 8}.experts.{i % 8}.w": rng.standard_normal((rows, cols), dtype=np.float32)
        for i in range(tensors)
    }
    save_file(t, str(path))
    return t


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def seed_commits(data_dir: Path, n: int) -> float:
    """Create a repo with n commits directly through the services (faster than HTTP)."""
    env = dict(os.environ, HUB_DATA_DIR=str(data_dir), HUB_BLOB_FSYNC="0")
    code = f"""
import os, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from hub.accounts import services as acc
from hub.accounts.models import User
from hub.registry import services
from hub.shared.chunking import chunk_hash
u = User.objects.filter(username="bench").first() or acc.user_create(username="bench", is_staff=True)
ns = u.memberships.get().namespace
repo = services.repo_create(namespace=ns, name="history", user=u)
t = time.perf_counter()
for i in range({n} - 1):
    data = f"step {{i}}".encode()
    services.chunk_upload(digest=chunk_hash(data), parts=[data])
    services.commit_create(repo=repo, branch="main", user=u, message=f"commit {{i}}",
                           operations=[{{"op": "add", "path": "log.txt", "chunks": [[chunk_hash(data), len(data)]]}}])
print(time.perf_counter() - t)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


_SINK_APP = """
def app(environ, start):
    body = environ["wsgi.input"]
    while body.read(4 << 20):
        pass
    if environ["REQUEST_METHOD"] == "GET":
        n = int(environ["QUERY_STRING"] or 0)
        start("200 OK", [("Content-Length", str(n))])
        return (bytes(min(4 << 20, n - o)) for o in range(0, n, 4 << 20))
    start("204 No Content", [])
    return []
"""


def transport_ceiling(size: int, chunk: int = 8 << 20, workers: int = 4) -> tuple[float, float]:
    """Seconds to PUT and to GET ``size`` bytes in ``chunk``-byte bodies through the same web
    server set-up as ``hub serve`` (gunicorn, 1 process, gthread) with an app that does
    nothing, from the same HTTP client with the same parallelism as ``Client.push``: what
    HTTP alone costs on this machine, before any hashing, storing or verifying."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from hub.serve import free_port, wait_http

    d = Path(tempfile.mkdtemp(prefix="hub-bench-sink-"))
    (d / "sink.py").write_text(_SINK_APP)
    port = free_port()
    srv = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(d),
            "sink:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "16",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        assert wait_http(url + "?0", 30), "the no-op web server did not start"
        data = bytes(chunk)
        n = max(1, size // chunk)
        with httpx.Client(timeout=60) as c, ThreadPoolExecutor(workers) as pool:
            t = time.perf_counter()
            list(pool.map(lambda _: c.put(url, content=data).raise_for_status(), range(n)))
            put_s = time.perf_counter() - t

            def get(_):
                with c.stream("GET", f"{url}?{chunk}") as r:
                    for _b in r.iter_bytes():
                        pass

            t = time.perf_counter()
            list(pool.map(get, range(n)))
            get_s = time.perf_counter() - t
        return put_s * size / (n * chunk), get_s * size / (n * chunk)
    finally:
        srv.terminate()
        srv.wait(30)
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()

    from hub.client import Client
    from hub.serve import free_port, wait_http

    work = Path(tempfile.mkdtemp(prefix="hub-bench-", dir=os.environ.get("BENCH_DIR")))
    data_dir = work / "data"
    print(f"setting up: {args.commits} commits of history ...", flush=True)
    seed_s = seed_commits(data_dir, args.commits)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(data_dir), HUB_CONFIG_DIR=str(work / "cfg"))
    server = subprocess.Popen(
        [sys.executable, "-m", "hub.client.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=open(work / "serve.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_http(url + "/api/v1/health", 120), (work / "serve.log").read_text()
        token = subprocess.run(
            [sys.executable, "manage.py", "hub_admin", "create-token", "--user", "bench"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        c = Client(url=url, token=token, workers=4)
        c.create_repo("bench/model")
        src = work / "src"
        src.mkdir()
        model_path = src / "model.safetensors"
        tensors = make_model(model_path, args.mb)
        size = model_path.stat().st_size
        blobs = data_dir / "blobs"

        # cp reference: the same file, same disk. Each measurement starts after a sync, so
        # none pays for another's write-back (on this VM's disk, sustained writes run at a
        # fraction of what the page cache absorbs at first).
        os.sync()
        t = time.perf_counter()
        subprocess.run(["cp", str(model_path), str(work / "copy.safetensors")], check=True)
        cp_s = time.perf_counter() - t
        os.sync()
        cp_sync_s = time.perf_counter() - t
        os.unlink(work / "copy.safetensors")
        os.sync()

        before = du(blobs)
        t = time.perf_counter()
        r1 = c.push(src, repo="bench/model", message="v1")
        push_s = time.perf_counter() - t
        os.sync()
        push_sync_s = time.perf_counter() - t
        stored_v1 = du(blobs) - before

        # one tensor changed
        name = "layers.3.experts.5.w"
        tensors[name] = tensors[name] + 1.0
        from safetensors.numpy import save_file

        save_file(tensors, str(model_path))
        before = du(blobs)
        t = time.perf_counter()
        r2 = c.push(src, repo="bench/model", message="v2: one tensor")
        push2_s = time.perf_counter() - t
        stored_v2 = du(blobs) - before
        tensor_bytes = tensors[name].nbytes

        out = work / "pulled"
        os.sync()
        t = time.perf_counter()
        c.pull("bench/model@main", out)
        pull_s = time.perf_counter() - t
        os.sync()
        pull_sync_s = time.perf_counter() - t
        assert (out / "model.safetensors").read_bytes() == model_path.read_bytes()

        # latency in a repo with N commits
        branch_ms, commit_ms = [], []
        for i in range(args.samples):
            t = time.perf_counter()
            c.create_branch("bench/history", f"b{i}", "main")
            branch_ms.append((time.perf_counter() - t) * 1000)
        small = work / "small"
        small.mkdir()
        for i in range(args.samples):
            (small / "notes.txt").write_text(f"note {i}")
            t = time.perf_counter()
            c.push(small / "notes.txt", repo="bench/history", message=f"small {i}")
            commit_ms.append((time.perf_counter() - t) * 1000)
        n_commits = c.repo_info("bench/history")["commits"]

        put_raw_s, get_raw_s = transport_ceiling(size)

        mbps = lambda s: size / s / 1e6  # noqa: E731
        print()
        print(
            f"Registry benchmark — model {size / 1e6:.0f} MB, 64 tensors; blob fsync on (the default)"
        )
        print(f"{'measure':<44}{'hub':>14}{'reference':>16}{'ratio':>9}  goal")
        print(
            f"{'dedupe: bytes stored for 1 changed tensor':<44}{stored_v2 / 1e6:>11.2f} MB{tensor_bytes / 1e6:>13.2f} MB"
            f"{stored_v2 / tensor_bytes:>9.3f}  ≤ 1.05"
        )
        print(
            f"{'  (first push stored)':<44}{stored_v1 / 1e6:>11.1f} MB{size / 1e6:>13.1f} MB{stored_v1 / size:>9.3f}"
        )
        print(
            f"{'push throughput vs cp':<44}{mbps(push_s):>9.0f} MB/s{mbps(cp_s):>11.0f} MB/s{cp_s / push_s:>9.2f}  ≥ 0.5"
        )
        print(
            f"{'push vs cp, both until synced to disk':<44}{mbps(push_sync_s):>9.0f} MB/s{mbps(cp_sync_s):>11.0f} MB/s"
            f"{cp_sync_s / push_sync_s:>9.2f}"
        )
        print(
            f"{'pull throughput vs cp':<44}{mbps(pull_s):>9.0f} MB/s{mbps(cp_s):>11.0f} MB/s{cp_s / pull_s:>9.2f}  ≥ 0.7"
        )
        print(
            f"{'pull vs cp, both until synced to disk':<44}{mbps(pull_sync_s):>9.0f} MB/s{mbps(cp_sync_s):>11.0f} MB/s"
            f"{cp_sync_s / pull_sync_s:>9.2f}"
        )
        print(
            f"{'HTTP alone (no-op app): PUT / GET':<44}{mbps(put_raw_s):>9.0f} MB/s{mbps(get_raw_s):>11.0f} MB/s"
            "   the ceiling for push / pull through HTTP here"
        )
        print(
            f"{'push / pull vs HTTP alone':<44}{put_raw_s / push_s:>12.2f}  {get_raw_s / pull_s:>12.2f}"
        )
        print(
            f"{'second push (1 tensor changed), seconds':<44}{push2_s:>12.2f} s   uploaded {r2.uploaded_chunks} of {r2.chunks} chunks"
        )
        print(
            f"{'branch create p50 / p95 (' + str(n_commits) + ' commits)':<44}{pct(branch_ms, 50):>9.1f} ms{pct(branch_ms, 95):>13.1f} ms"
        )
        print(
            f"{'small commit (push) p50 / p95':<44}{pct(commit_ms, 50):>9.1f} ms{pct(commit_ms, 95):>13.1f} ms"
        )
        print(
            f"(seeded {args.commits} commits in {seed_s:.1f} s through the services; first push uploaded "
            f"{r1.uploaded_chunks} chunks; mean small commit {statistics.mean(commit_ms):.1f} ms)"
        )
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
