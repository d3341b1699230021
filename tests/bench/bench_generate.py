"""Generation benchmarks (workers/moe/generate.py, workers/inference):

1. Decode speed with and without the KV cache, in process, on the default small config
   (~3.0M parameters, block 256, random weights: speed does not depend on training): tokens/s
   of greedy generation for a short and a long prompt; the uncached path is what
   ``MoETransformer.generate`` does (the whole prefix each step). Figure: cached tokens/s,
   reference: uncached tokens/s in the same run, ratio cached/uncached.
2. Time to first token through the real sandboxed engine (``InferenceService``, the path a
   playground request takes once the worker has it, without the broker and HTTP): cold (a
   fresh engine: sandbox start, torch import, weights load) and warm (the commit is loaded),
   with the in-process first token as the floor.
3. With ``--live``: the whole path through a ``hub serve`` started for the run (HTTP, the
   broker, the inference worker, the sandbox, SSE), measured by the client: the hub's first
   request (engine start), a new commit (download + load; the engine runs) and a warm one.

Median of --reps repetitions (default 3), interleaved; the machine's load average is printed
before and after. Needs root and bubblewrap for part 2 (skipped with the reason otherwise).
Run: .venv/bin/python tests/bench/bench_generate.py [--reps 3] [--new-tokens 128] [--threads 1] [--live]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from workers.moe.checkpoint import save_weights  # noqa: E402
from workers.moe.config import ModelConfig  # noqa: E402
from workers.moe.generate import SamplingParams, generate_ids  # noqa: E402
from workers.moe.model import MoETransformer  # noqa: E402


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f} on {os.cpu_count()} CPUs"


def decode_rate(model, prompt: list[int], n: int, use_cache: bool) -> tuple[float, float]:
    """(tokens/s over the whole generation, time to first token s)."""
    params = SamplingParams(max_new_tokens=n, temperature=0.0)
    t0 = time.perf_counter()
    ids, _, done = generate_ids(model, prompt, params, use_cache=use_cache)
    dt = time.perf_counter() - t0
    assert len(ids) == n
    return n / dt, done["time_to_first_token_s"]


def bench_cache(model, reps: int, n: int) -> None:
    print(f"\n1. decode, greedy, {n} new tokens, torch threads {torch.get_num_threads()}")
    for plen in (16, 128):
        prompt = list((b"def generate(self, prompt):\n    " * 8)[:plen])
        decode_rate(model, prompt, 8, True)  # warm-up
        c, u = [], []
        for _ in range(reps):
            c.append(decode_rate(model, prompt, n, True)[0])
            u.append(decode_rate(model, prompt, n, False)[0])
        mc, mu = statistics.median(c), statistics.median(u)
        print(
            f"   prompt {plen:>3} + {n} new: KV cache {mc:7.1f} tok/s | no cache (reference) "
            f"{mu:7.1f} tok/s | ratio {mc / mu:5.2f}x   (runs: {[round(x) for x in c]} vs "
            f"{[round(x) for x in u]})"
        )


def bench_ttft(model, folder: Path, reps: int, cpus: int) -> None:
    from tests.sandbox.conftest import sandbox_skip_reason
    from workers.inference.service import InferenceConfig, InferenceService

    print("\n2. time to first token through the sandboxed engine (8 new tokens)")
    why = sandbox_skip_reason()
    if why:
        print(f"   skipped: {why}")
        return
    req = {
        "commit": "c" * 40,
        "prompt": "def main():\n",
        "params": {"max_new_tokens": 8, "temperature": 0.0},
        "wall_time_s": 60,
    }

    def fetch(request, dest):
        shutil.copytree(folder, dest)

    def first_token(svc, rid) -> float:
        t0 = time.perf_counter()
        seen: list[float] = []

        def emit(ev):
            if ev["type"] == "token" and not seen:
                seen.append(time.perf_counter() - t0)

        end = svc.handle({**req, "id": rid}, emit)
        assert end["type"] == "done", end
        return seen[0]

    cold, warm = [], []
    floor = []
    for i in range(reps):
        work = Path(tempfile.mkdtemp(prefix="bench-gen-"))
        svc = InferenceService(InferenceConfig(work_root=work, cpus=cpus), fetch=fetch)
        try:
            cold.append(first_token(svc, f"cold{i}"))
            for j in range(3):
                warm.append(first_token(svc, f"warm{i}-{j}"))
        finally:
            svc.close()
            shutil.rmtree(work, ignore_errors=True)
        floor.append(decode_rate(model, list(b"def main():\n"), 1, True)[1])
    mc, mw, mf = statistics.median(cold), statistics.median(warm), statistics.median(floor)
    print(
        f"   cold (fresh sandbox + torch import + load): {mc * 1000:8.1f} ms   "
        f"(runs {[round(x * 1000) for x in cold]})"
    )
    print(
        f"   warm (commit loaded):                       {mw * 1000:8.1f} ms   "
        f"ratio cold/warm {mc / mw:6.1f}x"
    )
    print(
        f"   in-process first token (reference):         {mf * 1000:8.1f} ms   "
        f"warm/in-process {mw / mf:6.1f}x (the sandbox round trip: socket, event pipe)"
    )


def bench_live(model, reps: int) -> None:
    import subprocess
    import tempfile

    from hub.client import Client, HubClientError
    from hub.serve import free_port, wait_http

    print("\n3. time to first token through hub serve (HTTP, broker, worker, sandbox, SSE)")
    data = Path(tempfile.mkdtemp(prefix="bench-gen-hub-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(data / "data"), HUB_CONFIG_DIR=str(data / "cfg"))
    env.update(HUB_URL=f"http://127.0.0.1:{port}", HUB_INFER_RATE_LIMIT="1000")
    hub = [sys.executable, "-m", "hub.client.cli"]
    proc = subprocess.Popen(
        [*hub, "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=open(data / "serve.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/api/v1/health", 120), "hub serve did not start"

        def run(*a: str):
            return subprocess.run([*hub, *a], env=env, cwd=ROOT, capture_output=True, text=True)

        run("admin", "create-user", "--user", "bench")
        token = run("admin", "create-token", "--user", "bench", "--scope", "write").stdout.strip()
        c = Client(url=f"http://127.0.0.1:{port}", token=token)
        repos = []
        for i in range(reps + 1):
            torch.manual_seed(100 + i)
            d = Path(tempfile.mkdtemp())
            save_weights(MoETransformer(model.cfg), d)
            c.create_repo(f"bench/m{i}")
            c.push(d, repo=f"bench/m{i}", message="bench")
            repos.append(f"bench/m{i}")

        def ttft(repo: str) -> float:
            t0 = time.perf_counter()
            for ev in c.generate(repo, "def main():\n", max_new_tokens=8, temperature=0):
                if ev["type"] == "token":
                    return time.perf_counter() - t0
            raise AssertionError("no token")

        deadline = time.monotonic() + 120
        while True:
            try:
                first = ttft(repos[0])
                break
            except HubClientError as e:
                if e.code != "no_inference_worker" or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        cold = [ttft(r) for r in repos[1:]]
        warm = [ttft(repos[1]) for _ in range(reps * 2)]
        mc, mw = statistics.median(cold), statistics.median(warm)
        print(f"   the hub's first request (engine start, download, load): {first * 1000:8.1f} ms")
        print(
            f"   a new commit (download + load, engine running):        {mc * 1000:8.1f} ms   "
            f"(runs {[round(x * 1000) for x in cold]})"
        )
        print(
            f"   warm (commit loaded):                                  {mw * 1000:8.1f} ms   "
            f"ratio new-commit/warm {mc / mw:5.1f}x, first/warm {first / mw:5.1f}x"
        )
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (and engine CPUs)")
    ap.add_argument("--live", action="store_true", help="also through a hub serve (part 3)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bench_generate: {load()}; torch {torch.__version__}")
    torch.manual_seed(0)
    cfg = ModelConfig()
    model = MoETransformer(cfg).eval()
    print(
        f"model: default small config, {model.num_params() / 1e6:.2f}M parameters "
        f"({model.num_params(active=True) / 1e6:.2f}M active), block {cfg.block_size}, "
        f"{cfg.n_experts} experts top-{cfg.top_k}"
    )
    bench_cache(model, args.reps, args.new_tokens)
    with tempfile.TemporaryDirectory() as d:
        save_weights(model, Path(d))
        bench_ttft(model, Path(d), args.reps, args.threads)
    if args.live:
        bench_live(model, args.reps)
    print(f"\nafter: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
