"""The same MLflow-client ingest against the hub's MLflow API and against a real MLflow server.

One workload script, run by one interpreter (MLflow's own virtualenv, ``mlflow==3.17.2``, the
version the tests pin as ``mlflow-skinny``) with MLflow's own client, twice: once with
``MLFLOW_TRACKING_URI`` at ``mlflow server`` (SQLite store, loopback) and once at ``hub serve``
(SQLite, chdb, loopback) with a hub token. The MLflow server is stopped before the hub starts,
so the two never compete for this machine's cores. Each phase is repeated (median of
``--reps``, at least 3), with the machine's load printed beside it.

Workloads (per repetition, in a fresh experiment):

1. ``log_batch``: R runs, each created with ``create_run``, then P params and K metric keys x
   S steps sent by ``MlflowClient.log_batch`` in batches of 1,000 metrics (MLflow's limit),
   then ``set_terminated`` -- points/s.
2. the fluent API: F runs, each ``start_run`` / ``log_params`` / ``log_metric`` per key and
   step (one request per point, as a naive training loop sends them) / ``end_run`` --
   requests/s.

No figure is asserted: this prints what it measured. Run:

    .venv/bin/python tests/bench/bench_mlflow_compat.py           # a few minutes
    .venv/bin/python tests/bench/bench_mlflow_compat.py --quick   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _mlflow_env as mlf  # noqa: E402
from bench_tracking import Hub  # noqa: E402

WORKLOAD = r"""
import json, sys, time
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

cfg = json.loads(sys.argv[1])
c = MlflowClient()
out = {"version": mlflow.__version__, "batch_s": [], "fluent_s": []}
keys = [f"key_{i}" for i in range(cfg["keys"])]
exp0 = c.create_experiment("warmup-" + cfg["tag"])
warm = c.create_run(exp0).info.run_id  # first-call costs (connections, the metrics store) untimed
c.log_batch(warm, metrics=[Metric("k", 1.0, 0, 0)], params=[Param("p", "1")])
for rep in range(cfg["reps"]):
    exp = c.create_experiment(f"batch-{cfg['tag']}-{rep}")
    t = time.perf_counter()
    points = 0
    for r in range(cfg["runs"]):
        rid = c.create_run(exp, run_name=f"run-{r}").info.run_id
        c.log_batch(rid, params=[Param(f"param_{i}", str(i * 0.1)) for i in range(cfg["params"])])
        per = max(1, 1000 // len(keys))
        for s0 in range(0, cfg["steps"], per):
            ts = int(time.time() * 1000)
            batch = [Metric(k, (s * 7 + i) % 101 / 100, ts, s)
                     for s in range(s0, min(cfg["steps"], s0 + per)) for i, k in enumerate(keys)]
            c.log_batch(rid, metrics=batch)
            points += len(batch)
        c.set_terminated(rid)
    out["batch_s"].append(time.perf_counter() - t)
    out["batch_points"] = points
    mlflow.set_experiment(f"fluent-{cfg['tag']}-{rep}")
    t = time.perf_counter()
    requests = 0
    for r in range(cfg["fluent_runs"]):
        with mlflow.start_run(run_name=f"fluent-{r}"):
            mlflow.log_params({f"param_{i}": i for i in range(cfg["params"])})
            requests += 3  # create, log_params (one batch), end_run
            for s in range(cfg["fluent_steps"]):
                for k in keys[: cfg["fluent_keys"]]:
                    mlflow.log_metric(k, s / 10, step=s)
                    requests += 1
    out["fluent_s"].append(time.perf_counter() - t)
    out["fluent_requests"] = requests
print("RESULT " + json.dumps(out), flush=True)
"""


def say(msg: str) -> None:
    print(msg, flush=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(py: Path, url: str, work: Path, cfg: dict, token: str | None) -> dict:
    """The workload with only MLflow's variables (and the token) in its environment."""
    import subprocess

    script = work / "workload.py"
    script.write_text(WORKLOAD)
    env = {"MLFLOW_TRACKING_URI": url, "PYTHONUNBUFFERED": "1", "HOME": str(work)}
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    say(f"  load before: {load()}")
    r = subprocess.run(
        [str(py), str(script), json.dumps(cfg)], env=env, cwd=work, capture_output=True, text=True
    )
    say(f"  load after:  {load()}")
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if r.returncode != 0 or line is None:
        raise RuntimeError(f"workload failed (exit {r.returncode}):\n{r.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=5, help="log_batch: runs per repetition")
    ap.add_argument("--params", type=int, default=20, help="params per run (both workloads)")
    ap.add_argument("--keys", type=int, default=10, help="log_batch: metric keys per step")
    ap.add_argument("--steps", type=int, default=1000, help="log_batch: steps per run")
    ap.add_argument("--fluent-runs", type=int, default=3)
    ap.add_argument("--fluent-keys", type=int, default=2)
    ap.add_argument("--fluent-steps", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mlflow-workers", type=int, default=2)
    ap.add_argument("--mlflow-venv", default="/tmp/mlflow-compat-venv")
    ap.add_argument("--mlflow-spec", default="mlflow==3.17.2")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.steps, args.fluent_runs, args.fluent_steps = 2, 200, 1, 20
    args.reps = max(3, args.reps)
    cfg = {
        "runs": args.runs,
        "params": args.params,
        "keys": args.keys,
        "steps": args.steps,
        "fluent_runs": args.fluent_runs,
        "fluent_keys": args.fluent_keys,
        "fluent_steps": args.fluent_steps,
        "reps": args.reps,
        "tag": str(int(time.time())),
    }
    from hub.serve import free_port

    py, version = mlf.ensure_venv(Path(args.mlflow_venv), args.mlflow_spec, log=say)
    say(f"client: MLflow {version} ({py}); cpus {os.cpu_count()}; load {load()}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-compat-") as tmp:
        work = Path(tmp)
        # --- MLflow server ---
        mwork = work / "mlflow"
        port = free_port()
        server = mlf.start_server(py, mwork, port, args.mlflow_workers)
        try:
            if not mlf.wait_ready(f"http://127.0.0.1:{port}", 180):
                raise RuntimeError((mwork / "server.log").read_text()[-3000:])
            say(f"mlflow server {version} ({args.mlflow_workers} workers, SQLite)")
            results["mlflow"] = run(py, f"http://127.0.0.1:{port}", mwork, cfg, None)
        finally:
            mlf.stop_tree(server)
        # --- the hub ---
        hub = Hub(work / "hub", shared_redis=False)
        hub.work.mkdir(parents=True)
        hub.start()
        try:
            hub.admin("create-user", "--user", "bench")
            token = hub.admin("create-token", "--user", "bench").splitlines()[-1]
            say(f"hub serve at {hub.url}")
            results["hub"] = run(py, hub.url, hub.work, cfg, token)
        finally:
            hub.stop()

    m, h = results["mlflow"], results["hub"]
    points, requests = h["batch_points"], h["fluent_requests"]
    rows = [
        (
            f"log_batch ingest ({args.runs} runs x {args.keys} keys x {args.steps} steps, "
            f"{args.params} params), points/s",
            points / statistics.median(h["batch_s"]),
            points / statistics.median(m["batch_s"]),
            [round(points / x) for x in h["batch_s"]],
            [round(points / x) for x in m["batch_s"]],
        ),
        (
            f"fluent API ({args.fluent_runs} runs, log_metric per point), requests/s",
            requests / statistics.median(h["fluent_s"]),
            requests / statistics.median(m["fluent_s"]),
            [round(requests / x, 1) for x in h["fluent_s"]],
            [round(requests / x, 1) for x in m["fluent_s"]],
        ),
    ]
    say(f"\nMLflow client {version}, median of {args.reps}; load now {load()}")
    say(f"{'workload':<78} {'hub':>10} {'mlflow':>10} {'hub/mlflow':>11}")
    for name, hv, mv, hall, mall in rows:
        say(f"{name:<78} {hv:>10.0f} {mv:>10.0f} {hv / mv:>10.2f}x")
        say(f"{'  (each repetition: hub ' + str(hall) + ', mlflow ' + str(mall) + ')':<78}")


if __name__ == "__main__":
    main()
