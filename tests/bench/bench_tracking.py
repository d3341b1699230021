"""Experiment-tracker benchmark: the hub side by side with MLflow, in the same run.

Both run on this machine, on loopback, each with its own Python client: the hub through its
public SDK/REST API (``hub serve`` in a temp dir: noida-db for search, chdb for metrics,
SQLite, a Celery worker for indexing), MLflow (latest from PyPI, in its own virtualenv,
never imported here) as ``mlflow server`` with a SQLite store, driven by a script run with
MLflow's interpreter. The MLflow phase runs first and its server is stopped before the hub
starts, so neither competes with the other for this machine's cores.

Workloads (issue goals in brackets):

1. ingest: 20 runs x 10 keys x 5,000 steps = 1,000,000 points from one client, timed from the
   first ``run.log()`` to every ``run.finish()`` returning with nothing pending [>= 100x MLflow].
   MLflow: ``log_batch`` of 1,000 metrics, scaled down (2 runs = 100,000 points) -- its rate
   does not depend on the total, and 1M points would take ~4 minutes.
2. one 5,000-point series at full resolution, p50 [>= 20x faster than MLflow's
   ``get_metric_history``].
3. one 1,000,000-point series downsampled to 2,000 buckets, p50 [< 100 ms; no MLflow figure].
4. param + metric filter, sorted by the metric, over 10,000 runs [>= 10x faster than MLflow
   over 1,000]. The hub's figure is split into the engine's own ``took``, the hub->engine round
   trip, and the hub's overhead (client-observed total minus the round trip); with noida-db
   the goal applies to the overhead.
5. run creation, sequential from one client [>= 200 runs/s].

No figure is asserted: this prints what it measured. Run:

    .venv/bin/python tests/bench/bench_tracking.py            # full size, ~10 minutes here
    .venv/bin/python tests/bench/bench_tracking.py --quick    # a smaller smoke run
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _mlflow_env as mlf  # noqa: E402

KEYS = [
    "loss",
    "val_loss",
    "lr",
    "grad_norm",
    "tokens_per_s",
    "aux_loss",
    "router_z",
    "expert_balance",
    "acc",
    "ppl",
]
LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
LR_QUERY = "0.001"
LOSS_BELOW = 0.5


def say(msg: str) -> None:
    print(msg, flush=True)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def search_spec(n: int, seed: int = 0) -> dict:
    """The params and final losses of the runs searched over (the same on both sides)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lr = [LRS[i] for i in rng.integers(0, len(LRS), n)]
    top_k = [int(x) for x in rng.choice([1, 2, 4, 8], n)]
    opt = [str(x) for x in rng.choice(["adamw", "sgd", "lion"], n)]
    loss = [round(float(x), 6) for x in rng.random(n)]
    return {"lr": lr, "top_k": top_k, "optimizer": opt, "loss": loss}


def expected_matches(spec: dict, n: int) -> int:
    return sum(
        1 for i in range(n) if repr(spec["lr"][i]) == LR_QUERY and spec["loss"][i] < LOSS_BELOW
    )


# --- MLflow ------------------------------------------------------------------------------------


def mlflow_phase(args, work: Path, spec: dict) -> dict:
    from hub.serve import free_port

    py, version = mlf.ensure_venv(Path(args.mlflow_venv), args.mlflow_spec, log=say)
    say(f"MLflow {version} ({py})")
    mwork = work / "mlflow"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = mlf.start_server(py, mwork, port, args.mlflow_workers)
    try:
        t = time.perf_counter()
        if not mlf.wait_ready(url, 180):
            raise RuntimeError(
                "mlflow server did not start:\n" + (mwork / "server.log").read_text()[-3000:]
            )
        say(
            f"mlflow server up in {time.perf_counter() - t:.0f} s ({args.mlflow_workers} workers, SQLite store)"
        )
        n = args.mlflow_search_runs
        cfg = {
            "create_runs": args.mlflow_create_runs,
            "keys": KEYS[: args.keys],
            "steps": args.steps,
            "batch": 1000,
            "ingest_runs": args.mlflow_ingest_runs,
            "reps": args.reps,
            "page_size": args.page_size,
            "search_runs": n,
            "db_uri": f"sqlite:///{mwork / 'mlflow.db'}",
            "artifacts": str(mwork / "artifacts"),
            "search_spec": {
                "lr": [repr(x) for x in spec["lr"][:n]],
                "top_k": spec["top_k"][:n],
                "optimizer": spec["optimizer"][:n],
                "loss": spec["loss"][:n],
                "lr_query": LR_QUERY,
                "loss_below": LOSS_BELOW,
            },
        }
        res = mlf.run_workload(py, url, mwork, cfg, log=say)
        res["version"] = version
        res["expected_matches"] = expected_matches(spec, n)
        return res
    finally:
        mlf.stop_tree(server)


# --- the hub -----------------------------------------------------------------------------------


class Hub:
    def __init__(self, work: Path, shared_redis: bool):
        from hub.serve import free_port

        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(
            HUB_DATA_DIR=str(work / "data"), HUB_CONFIG_DIR=str(work / "cfg"), HUB_BLOB_FSYNC="0"
        )
        if not shared_redis:
            # Point at a closed port: `hub serve` then starts a private redis-server. On the
            # machine's Redis every hub on this machine shares db 0 and the Celery "cpu" queue,
            # so another hub's worker could take this hub's indexing tasks (and, not finding the
            # run in its own DB, delete it from its own index): this hub's runs would then never
            # reach the index, and the other hub's load would leak into these figures.
            env["HUB_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        from hub.serve import wait_http

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.client.cli", "serve", "--port", str(self.port)],
            env=self.env,
            cwd=ROOT,
            stdout=open(self.work / "serve.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        if not wait_http(self.url + "/api/v1/health", 180):
            raise RuntimeError(
                "hub did not start:\n" + (self.work / "serve.log").read_text()[-3000:]
            )

    def admin(self, *argv: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", "hub_admin", *argv],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def stop(self) -> None:
        if self.proc is not None:
            # SIGTERM to the supervisor stops its children in order; then anything it
            # started that is still alive is killed by pid.
            mlf.stop_tree(self.proc, grace=60, group=False)


def hub_phase(args, work: Path, spec: dict) -> dict:
    from hub.client import Client
    from hub.client.run import new_run_id

    out: dict = {}
    hub = Hub(work / "hub", args.shared_redis)
    hub.work.mkdir(parents=True)
    t = time.perf_counter()
    hub.start()
    try:
        say(
            f"hub up in {time.perf_counter() - t:.0f} s at {hub.url} "
            f"({'machine Redis' if args.shared_redis else 'private Redis'})"
        )
        hub.admin("create-user", "--user", "bench", "--admin")
        token = hub.admin("create-token", "--user", "bench").splitlines()[-1]
        c = Client(url=hub.url, token=token)
        spool = work / "spool"
        keys = KEYS[: args.keys]

        # 1. ingest: runs x keys x steps, one client, first log() -> every finish() with 0 pending.
        import numpy as np

        vals = np.random.default_rng(0).random((len(keys), args.steps)).tolist()
        # Warm-up, untimed (MLflow's side gets one too): the hub opens its metrics store on the
        # first metrics request of the process (chdb import + session + schema check), a
        # one-time cost that would otherwise land inside the ingest window. Reported apart.
        warm = c.init_run("bench/warmup", name="warmup", spool_dir=spool)
        t = time.perf_counter()
        c._json(
            "POST", f"/runs/{warm.id}/metrics", json={"key": "loss", "step": [0], "value": [1.0]}
        )
        out["cold_metrics_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        c._json(
            "POST", f"/runs/{warm.id}/metrics", json={"key": "loss", "step": [1], "value": [1.0]}
        )
        out["warm_metrics_ms"] = (time.perf_counter() - t) * 1000
        warm.finish()
        say(
            f"first metrics request after start: {out['cold_metrics_ms']:.0f} ms (the next: "
            f"{out['warm_metrics_ms']:.0f} ms)"
        )
        runs = [
            c.init_run(
                "bench/train",
                name=f"train-{i}",
                params={"lr": 1e-3, "moe": {"top_k": 2}},
                tags=["bench"],
                spool_dir=spool,
            )
            for i in range(args.runs)
        ]
        t0 = time.perf_counter()
        for s in range(args.steps):
            rec = {k: vals[ki][s] for ki, k in enumerate(keys)}
            for run in runs:
                run.log(rec, step=s)
        t_logged = time.perf_counter() - t0
        reports = [run.finish(timeout=900) for run in runs]
        out["ingest_s"] = time.perf_counter() - t0
        out["ingest_points"] = args.runs * len(keys) * args.steps
        out["ingest_log_s"] = t_logged
        out["ingest_pending"] = sum(r["pending"] for r in reports)
        say(
            f"ingest: {out['ingest_points']} points in {out['ingest_s']:.2f} s = "
            f"{out['ingest_points'] / out['ingest_s']:,.0f} points/s (log() loop {t_logged:.2f} s; "
            f"pending after finish: {out['ingest_pending']})"
        )
        info = c._json("GET", f"/runs/{runs[-1].id}/metrics")["keys"]
        out["ingest_check"] = {k["key"]: k["count"] for k in info}

        # 2. one 5,000-point series at full resolution.
        rid = runs[0].id
        [s] = c.series([rid], [keys[0]])  # warm-up, and a check
        out["series_points"] = len(s["step"])
        out["series_ok"] = s["step"] == list(range(args.steps)) and all(
            abs(a - b) < 1e-9 for a, b in zip(s["value"], vals[0], strict=False)
        )
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            c.series([rid], [keys[0]])
            times.append(time.perf_counter() - t)
        out["series_ms"] = p50(times) * 1000
        out["series_all_ms"] = [round(x * 1000, 1) for x in times]
        say(
            f"series ({out['series_points']} points, full resolution): p50 {out['series_ms']:.1f} ms"
        )

        # 3. a 1,000,000-point series, downsampled to 2,000 buckets.
        big = c.init_run("bench/train", name="long", params={"lr": 1e-3}, spool_dir=spool)
        t = time.perf_counter()
        for step in range(args.big_points):
            big.log({"loss": 1.0 / (1.0 + step * 1e-4) + (step % 97) * 1e-4}, step=step)
        rep = big.finish(timeout=900)
        out["big_ingest_s"] = time.perf_counter() - t
        out["big_pending"] = rep["pending"]
        say(
            f"{args.big_points}-point series logged in {out['big_ingest_s']:.1f} s "
            f"({args.big_points / out['big_ingest_s']:,.0f} points/s, one key; pending {rep['pending']})"
        )
        [s] = c.series([big.id], ["loss"], buckets=args.buckets)  # warm-up, and a check
        out["big_buckets"] = len(s["step"])
        out["big_count"] = int(sum(s.get("count") or [0]))
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            c.series([big.id], ["loss"], buckets=args.buckets)
            times.append(time.perf_counter() - t)
        out["big_ms"] = p50(times) * 1000
        out["big_all_ms"] = [round(x * 1000, 1) for x in times]
        say(
            f"{args.big_points}-point series -> {args.buckets} buckets: {out['big_buckets']} buckets covering "
            f"{out['big_count']} points, p50 {out['big_ms']:.1f} ms"
        )

        # 4. run creation, sequential: the request init_run() makes (params + tags in one call).
        proj = "/projects/bench/search/runs"
        c._json("POST", "/projects", json={"namespace": "bench", "name": "search"})

        def body(i: int) -> dict:
            return {
                "name": f"s-{i}",
                "group": "",
                "params": {
                    "lr": spec["lr"][i],
                    "moe": {"top_k": spec["top_k"][i]},
                    "optimizer": spec["optimizer"][i],
                },
                "tags": ["bench", "search"],
                "notes": "",
                "run_id": new_run_id(),
                "commit": "",
                "job_id": "",
            }

        n_create = min(args.create_runs, args.search_runs)
        ids: list[str | None] = [None] * args.search_runs
        t = time.perf_counter()
        for i in range(n_create):
            ids[i] = c._json("POST", proj, json=body(i), idempotent=True)["id"]
        out["create_s"] = time.perf_counter() - t
        out["create_runs"] = n_create
        say(
            f"run creation: {n_create} runs in {out['create_s']:.2f} s = {n_create / out['create_s']:.0f} runs/s"
        )

        # 5. the rest of the runs to search over (setup: a few client threads), one loss each.
        def make(i: int) -> None:
            if ids[i] is None:
                ids[i] = c._json("POST", proj, json=body(i), idempotent=True)["id"]
            c._json(
                "POST",
                f"/runs/{ids[i]}/metrics",
                json={"key": "loss", "step": [0], "value": [spec["loss"][i]]},
                idempotent=True,
            )

        t = time.perf_counter()
        with ThreadPoolExecutor(args.seed_threads) as pool:
            list(pool.map(make, range(args.search_runs)))
        out["seed_s"] = time.perf_counter() - t
        say(
            f"seeded {args.search_runs} runs with a loss each in {out['seed_s']:.0f} s "
            f"({args.seed_threads} client threads)"
        )
        t = time.perf_counter()
        total = -1
        deadline = time.monotonic() + args.index_timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            r = c.search_runs("bench/search", "summary.loss:*", page_size=1)
            total = r["total"]
            if total >= args.search_runs:
                break
            if time.monotonic() - last > 15:
                say(f"  waiting for the index: {total}/{args.search_runs} runs with a loss indexed")
                last = time.monotonic()
            time.sleep(0.5)
        out["index_wait_s"] = time.perf_counter() - t
        out["indexed"] = total
        say(
            f"index caught up to {total}/{args.search_runs} runs {out['index_wait_s']:.0f} s after seeding ended"
        )

        q = f"params.lr:{LR_QUERY} AND summary.loss:<{LOSS_BELOW}"
        r = c.search_runs(
            "bench/search", q, sort="summary.loss", page_size=args.page_size
        )  # warm-up
        out["search_total"] = r["total"]
        out["search_expected"] = expected_matches(spec, args.search_runs)
        losses = [x.get("summary", {}).get("loss", {}).get("last") for x in r["results"]]
        out["search_sorted"] = None not in losses and losses == sorted(losses)
        out["search_returned"] = len(r["results"])
        tot, took, rt, over = [], [], [], []
        for _ in range(args.reps):
            t = time.perf_counter()
            r = c.search_runs("bench/search", q, sort="summary.loss", page_size=args.page_size)
            dt = (time.perf_counter() - t) * 1000
            tot.append(dt)
            took.append(float(r["took_ms"]))
            rt.append(float(r["engine_elapsed_ms"]))
            over.append(dt - float(r["engine_elapsed_ms"]))
        out.update(
            search_q=q,
            search_total_ms=p50(tot),
            search_took_ms=p50(took),
            search_rt_ms=p50(rt),
            search_overhead_ms=p50(over),
            search_all_ms=[round(x, 1) for x in tot],
        )
        say(
            f"search {q!r} sort summary.loss over {args.search_runs} runs: {r['total']} matches "
            f"(expected {out['search_expected']}), p50 total {out['search_total_ms']:.1f} ms = engine took "
            f"{out['search_took_ms']:.1f} ms, hub->engine round trip {out['search_rt_ms']:.1f} ms, hub overhead "
            f"{out['search_overhead_ms']:.1f} ms"
        )
        c.close()
        return out
    except BaseException:
        log = hub.work / "serve.log"
        if log.exists():
            say("--- hub serve.log (tail) ---\n" + log.read_text(errors="replace")[-3000:])
        raise
    finally:
        hub.stop()


# --- the table ---------------------------------------------------------------------------------


def table(h: dict, m: dict | None, args) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []

    def fmt(x: float | None, unit: str = "") -> str:
        if x is None:
            return "n/a"
        return (f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}") + unit

    def met(ok: bool | None) -> str:
        return "n/a" if ok is None else ("yes" if ok else "NO")

    hub_rate = h["ingest_points"] / h["ingest_s"]
    ml_rate = m["ingest_points"] / m["ingest_s"] if m else None
    r = hub_rate / ml_rate if ml_rate else None
    rows.append(
        (
            f"ingest, points/s (hub {args.runs}x{args.keys}x{args.steps}; MLflow "
            f"{args.mlflow_ingest_runs}x{args.keys}x{args.steps}, log_batch 1,000)",
            fmt(hub_rate),
            fmt(ml_rate),
            f"{r:.0f}x" if r else "n/a",
            ">= 100x",
            met(r >= 100 if r else None),
        )
    )
    r = m["series_ms"] / h["series_ms"] if m else None
    rows.append(
        (
            f"one {args.steps:,}-point series, full resolution, p50 ms",
            fmt(h["series_ms"]),
            fmt(m["series_ms"]) if m else "n/a",
            f"{r:.1f}x" if r else "n/a",
            ">= 20x faster",
            met(r >= 20 if r else None),
        )
    )
    rows.append(
        (
            f"one {args.big_points:,}-point series -> {args.buckets:,} buckets, p50 ms",
            fmt(h["big_ms"]),
            "n/a",
            "n/a",
            "< 100 ms",
            met(h["big_ms"] < 100),
        )
    )
    ms = m["search"][str(args.page_size)]["ms"] if m else None
    r = ms / h["search_overhead_ms"] if m else None
    rows.append(
        (
            f"filter+sort, hub overhead over {args.search_runs:,} runs (total - hub->engine) vs MLflow over "
            f"{args.mlflow_search_runs:,}, p50 ms",
            fmt(h["search_overhead_ms"]),
            fmt(ms),
            f"{r:.1f}x" if r else "n/a",
            ">= 10x faster",
            met(r >= 10 if r else None),
        )
    )
    r = ms / h["search_total_ms"] if m else None
    rows.append(
        (
            "  filter+sort, hub total client-observed, p50 ms",
            fmt(h["search_total_ms"]),
            fmt(ms),
            f"{r:.1f}x" if r else "n/a",
            ">= 10x (real engine only)",
            "n/a (noida-db)" + (f"; would be {met(r >= 10)}" if r else ""),
        )
    )
    rows.append(
        (
            "    of which engine's own took, p50 ms"
            + (" (noida-db always reports 0)" if h["search_took_ms"] == 0 else ""),
            fmt(h["search_took_ms"]),
            "",
            "",
            "",
            "",
        )
    )
    rows.append(
        ("    of which hub->engine round trip, p50 ms", fmt(h["search_rt_ms"]), "", "", "", "")
    )
    hub_cr = h["create_runs"] / h["create_s"]
    ml_cr = m["create_runs"] / m["create_s"] if m else None
    r = hub_cr / ml_cr if ml_cr else None
    rows.append(
        (
            "run creation, sequential, one client, runs/s",
            fmt(hub_cr),
            fmt(ml_cr),
            f"{r:.0f}x" if r else "n/a",
            ">= 200/s",
            met(hub_cr >= 200),
        )
    )
    head = ("measure", "hub", "MLflow", "ratio", "goal", "met?")
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(6)]

    def line(row) -> str:
        return " | ".join(
            str(v).ljust(w) if i == 0 else str(v).rjust(w) if i < 4 else str(v).ljust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(head), sep, *(line(row) for row in rows)])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a small smoke run (a minute or two)")
    ap.add_argument("--runs", type=int, default=20, help="hub ingest: runs")
    ap.add_argument(
        "--keys", type=int, default=10, help="ingest: keys per step (both sides; at most 10)"
    )
    ap.add_argument(
        "--steps",
        type=int,
        default=5000,
        help="ingest: steps per run (both sides); also the series read",
    )
    ap.add_argument("--big-points", type=int, default=1_000_000, help="points of the long series")
    ap.add_argument("--buckets", type=int, default=2000)
    ap.add_argument("--search-runs", type=int, default=10_000, help="hub: runs searched over")
    ap.add_argument(
        "--create-runs", type=int, default=1000, help="hub: runs created sequentially and timed"
    )
    ap.add_argument(
        "--seed-threads", type=int, default=4, help="hub: client threads seeding the other runs"
    )
    ap.add_argument(
        "--index-timeout", type=float, default=600, help="hub: seconds to wait for search indexing"
    )
    ap.add_argument(
        "--page-size", type=int, default=50, help="search: results per page (both sides)"
    )
    ap.add_argument(
        "--reps", type=int, default=10, help="timed repetitions of each read (p50 reported)"
    )
    ap.add_argument(
        "--mlflow-ingest-runs", type=int, default=2, help="MLflow ingest: runs (scaled down)"
    )
    ap.add_argument("--mlflow-search-runs", type=int, default=1000)
    ap.add_argument("--mlflow-create-runs", type=int, default=50)
    ap.add_argument("--mlflow-workers", type=int, default=2)
    ap.add_argument("--mlflow-venv", default=str(mlf.default_venv()))
    ap.add_argument(
        "--mlflow-spec", default="mlflow", help="pip requirement for MLflow (default: latest)"
    )
    ap.add_argument("--no-mlflow", action="store_true", help="measure the hub only")
    ap.add_argument(
        "--shared-redis",
        action="store_true",
        help="use the machine's Redis (default: a private redis-server, so other hubs' Celery "
        "workers on this machine cannot take this hub's indexing tasks)",
    )
    ap.add_argument("--json", default=None, help="also write every figure to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.steps, args.big_points, args.search_runs = 2, 5000, 100_000, 1000
        (
            args.create_runs,
            args.mlflow_ingest_runs,
            args.mlflow_search_runs,
            args.mlflow_create_runs,
        ) = 200, 1, 200, 10
        args.reps = 5
    args.keys = max(1, min(args.keys, len(KEYS)))

    work = Path(tempfile.mkdtemp(prefix="hub-bench-tracking-", dir=os.environ.get("BENCH_DIR")))
    t_start = time.perf_counter()
    load_before = loadavg()
    say(f"bench_tracking: {os.cpu_count()} CPUs, load average {load_before}; work dir {work}")
    spec = search_spec(max(args.search_runs, args.mlflow_search_runs))
    m = None
    try:
        if not args.no_mlflow:
            say("== MLflow ==")
            m = mlflow_phase(args, work, spec)
            say(f"load average {loadavg()}")
        say("== hub ==")
        h = hub_phase(args, work, spec)
        load_after = loadavg()
        say("")
        say(table(h, m, args))
        say("")
        notes = [
            f"machine: {os.cpu_count()} CPUs shared with other work; load average {load_before} before, "
            f"{load_after} after (1/5/15 min) -- figures are noisy",
            f"MLflow {m['version']}: `mlflow server` ({args.mlflow_workers} workers, SQLite store, job execution "
            f"off), MlflowClient in its own venv"
            if m
            else "MLflow: not run (--no-mlflow)",
            f"hub cold start: the first metrics request after `hub serve` took {h['cold_metrics_ms']:.0f} ms "
            f"(the next {h['warm_metrics_ms']:.0f} ms); warmed up before timing, on both sides",
            f"hub ingest: {h['ingest_points']:,} points; log() loop {h['ingest_log_s']:.2f} s of "
            f"{h['ingest_s']:.2f} s; pending after finish {h['ingest_pending']}; counts of the last run's keys "
            f"{sorted(set(h['ingest_check'].values()))}",
            f"hub series read returned {h['series_points']} points (exact: {h['series_ok']}); "
            f"all ms {h['series_all_ms']}",
            f"hub long series: logged in {h['big_ingest_s']:.1f} s ({args.big_points / h['big_ingest_s']:,.0f} "
            f"points/s, one key, pending {h['big_pending']}); {h['big_buckets']} buckets covering "
            f"{h['big_count']:,} points; all ms {h['big_all_ms']}",
            f"hub search {h['search_q']!r} sort summary.loss page_size {args.page_size}: total {h['search_total']} "
            f"(expected {h['search_expected']}), {h['search_returned']} returned, sorted: {h['search_sorted']}; "
            f"all ms {h['search_all_ms']}; index caught up to {h['indexed']} runs {h['index_wait_s']:.0f} s "
            f"after seeding ({h['seed_s']:.0f} s for {args.search_runs} runs + 1 point each)",
            "hub run creation = the POST init_run() sends (params + tags + client run id), sequential; "
            f"{h['create_runs']} runs",
        ]
        if m:
            s50, s1k = m["search"][str(args.page_size)], m["search"]["1000"]
            notes += [
                f"MLflow ingest scaled down to {m['ingest_points']:,} points ({m['ingest_s']:.1f} s); the rate "
                "is compared, not the total time",
                f"MLflow get_metric_history returned {m['series_points']} points; all ms {m['series_all_ms']}",
                f"MLflow search {m['search_filter']!r} order_by metrics.loss ASC over {args.mlflow_search_runs} "
                f"runs (seeded through its SQL store, untimed): max_results={args.page_size}: {s50['returned']} "
                f"runs, p50 {s50['ms']:.0f} ms (in the table); max_results=1000: {s1k['returned']} runs "
                f"(expected {m['expected_matches']}), p50 {s1k['ms']:.0f} ms; sorted: {s50['sorted']}",
                f"MLflow run creation: create_run {m['create_runs'] / m['create_s']:.1f}/s (in the table); "
                f"create_run + log_batch(params) {m['create_runs'] / m['create_params_s']:.1f}/s; "
                f"{m['create_runs']} runs each",
            ]
        say("notes:\n" + "\n".join(f"- {n}" for n in notes))
        say(f"wall time {time.perf_counter() - t_start:.0f} s")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "hub": h,
                        "mlflow": m,
                        "args": vars(args),
                        "load_before": load_before,
                        "load_after": load_after,
                    },
                    indent=1,
                )
            )
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
