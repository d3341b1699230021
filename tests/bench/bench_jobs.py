"""Job benchmarks through the real queue and sandbox of a live `hub serve`.

1. Launch latency: API call (POST /jobs) → first event read from inside the sandbox (the
   supervisor timestamps it), p50/p95 over N jobs on an idle worker. Goal: p50 < 1.5 s.
2. Sandbox overhead: training throughput (tokens/s reported by the workload) of the default
   model config for a few steps, as a job vs the same command unsandboxed. Goal: ≥ 0.95.

Run: .venv/bin/python -m tests.bench.bench_jobs [--launches 10] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--launches", type=int, default=10)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()

    from hub.client import Client
    from hub.serve import free_port, wait_http

    work = Path(tempfile.mkdtemp(prefix="hub-bench-jobs-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(work / "data"), HUB_CONFIG_DIR=str(work / "cfg"))
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
        manage = [sys.executable, "manage.py", "hub_admin"]
        subprocess.run(
            [*manage, "create-user", "--user", "bench"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        token = subprocess.run(
            [*manage, "create-token", "--user", "bench"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        c = Client(url=url, token=token)

        def run_job(body: dict) -> dict:
            t0 = time.time()
            job = c._json("POST", "/jobs", json={"project": "bench/jobs", **body})
            while True:
                j = c._json("GET", f"/jobs/{job['id']}")
                if j["status"] not in ("queued", "running"):
                    break
                time.sleep(0.2)
            assert j["status"] == "succeeded", j["reason"]
            j["_t0"] = t0
            return j

        tiny = {
            "model": {
                "n_layer": 1,
                "n_embd": 32,
                "n_head": 2,
                "n_experts": 4,
                "expert_hidden": 32,
                "top_k": 2,
                "n_dense_layers": 0,
                "block_size": 32,
            },
            "train": {
                "steps": 1,
                "batch_size": 1,
                "warmup_steps": 0,
                "checkpoint_every": 1,
                "eval_every": 1,
                "eval_tokens": 64,
                "log_every": 1,
            },
            "data": {"max_bytes": 20_000},
        }
        res = {"cpus": 1, "memory_mb": 2048, "time_limit_s": 300}
        run_job({"kind": "train", "config": tiny, "resources": res})  # warm the worker
        latencies = []
        for _ in range(args.launches):
            j = run_job({"kind": "train", "config": tiny, "resources": res})
            created = datetime.fromisoformat(j["created_at"].replace("Z", "+00:00")).timestamp()
            latencies.append(j["summary"]["events"]["first_event_at"] - created)

        from workers.moe.config import default_config

        cfg = default_config("train")
        cfg["train"].update(
            steps=args.steps,
            warmup_steps=min(5, args.steps),
            checkpoint_every=args.steps,
            eval_every=args.steps,
            log_every=5,
            eval_tokens=4096,
        )
        cfg["data"]["max_bytes"] = 3_000_000
        cfg["runtime"]["threads"] = 1
        boxed = run_job(
            {
                "kind": "train",
                "config": cfg,
                "resources": {"cpus": 1, "memory_mb": 4096, "time_limit_s": 1800},
            }
        )
        tps_boxed = boxed["summary"]["tokens_per_s"]
        plain_dir = work / "plain"
        plain_dir.mkdir()
        (plain_dir / "config.json").write_text(json.dumps(cfg))
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "workers.moe.train",
                "--config",
                str(plain_dir / "config.json"),
                "--out",
                str(plain_dir / "out"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**env, "OMP_NUM_THREADS": "1"},
            check=True,
        )
        done = [
            json.loads(line)
            for line in out.stdout.splitlines()
            if '"type": "done"' in line or '"type":"done"' in line
        ]
        tps_plain = done[-1]["summary"]["tokens_per_s"]
        print()
        print(f"Jobs benchmark (machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        print(f"{'measure':<58}{'value':>12}{'reference':>14}{'ratio':>8}  goal")
        print(
            f"{'launch → first event in sandbox, p50 (' + str(args.launches) + ' jobs)':<58}{pct(latencies, 50):>10.2f} s"
            f"{'':>14}{'':>8}  p50 < 1.5 s"
        )
        print(f"{'launch → first event in sandbox, p95':<58}{pct(latencies, 95):>10.2f} s")
        print(
            f"{'training tokens/s, default model, sandboxed vs plain':<58}{tps_boxed:>12.0f}{tps_plain:>14.0f}"
            f"{tps_boxed / tps_plain:>8.3f}  ≥ 0.95"
        )
        print(
            f"(latencies: {', '.join(f'{x:.2f}' for x in latencies)}; mean {statistics.mean(latencies):.2f} s)"
        )
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
