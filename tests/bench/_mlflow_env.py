"""MLflow side of ``bench_tracking.py``: its own virtualenv, its own server, its own client.

The hub's interpreter never imports mlflow: MLflow is installed into a separate virtualenv
(reused across runs through a stamp file), ``mlflow server`` runs there with a SQLite store
on loopback, and the workload runs there too, as a small script (:data:`WORKLOAD`) that
prints its figures as one JSON line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

STAMP = ".mlflow-bench-stamp"


def default_venv() -> Path:
    base = os.environ.get("BENCH_DIR") or "/tmp"
    return Path(base) / "mlflow-bench-venv"


def ensure_venv(venv: Path, spec: str = "mlflow", log=print) -> tuple[Path, str]:
    """(python of the venv, mlflow version); installs ``spec`` once, then reuses the venv."""
    py = venv / "bin" / "python"
    stamp = venv / STAMP
    if py.exists() and stamp.exists():
        version = _version(py)
        if version:
            return py, version
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
        raise RuntimeError(f"{venv} exists and is not a virtualenv; pass another --mlflow-venv")
    log(f"creating the MLflow virtualenv in {venv} (pip install {spec}; about a minute) ...")
    # The base interpreter behind this one (not the hub's venv): MLflow shares nothing with
    # the hub. --clear: a venv without a stamp is a half-made one from an interrupted run.
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec]
    r = subprocess.run(pip, capture_output=True, text=True)
    if r.returncode != 0:
        # The machine's pip config carries a constraints file (a torch cap); MLflow does not
        # need torch, but if the resolver trips over it, retry without the config.
        log(
            "pip install failed with the machine's pip config; retrying --isolated without constraints"
        )
        env = dict(os.environ, PIP_CONSTRAINT="")
        r = subprocess.run(
            [*pip[:3], "install", "--isolated", *pip[4:]], capture_output=True, text=True, env=env
        )
        if r.returncode != 0:
            raise RuntimeError(
                f"pip install {spec} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            )
    version = _version(py)
    if not version:
        raise RuntimeError("mlflow was installed but cannot be imported")
    stamp.write_text(version + "\n")
    return py, version


def _version(py: Path) -> str | None:
    r = subprocess.run(
        [str(py), "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True
    )
    return r.stdout.strip() if r.returncode == 0 else None


def start_server(py: Path, work: Path, port: int, workers: int) -> subprocess.Popen:
    """``mlflow server`` on 127.0.0.1 with a SQLite store, in its own process group."""
    work.mkdir(parents=True, exist_ok=True)
    mlflow_bin = py.parent / "mlflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HUB_"))}
    # Job execution (GenAI jobs) starts ~7 huey consumer processes that compete for this
    # machine's 2 cores and have nothing to do with tracking; switching it off favours MLflow.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    argv = [
        str(mlflow_bin),
        "server",
        "--backend-store-uri",
        f"sqlite:///{work / 'mlflow.db'}",
        "--default-artifact-root",
        str(work / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return subprocess.Popen(
        argv,
        env=env,
        cwd=work,
        start_new_session=True,
        stdout=open(work / "server.log", "wb"),
        stderr=subprocess.STDOUT,
    )  # noqa: SIM115


def wait_ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.3)
    return False


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (read from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out: list[int] = []
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def stop_tree(proc: subprocess.Popen, grace: float = 15.0, *, group: bool = True) -> None:
    """SIGTERM ``proc`` (its process group when it leads one), then SIGKILL whatever of the
    processes it started is still alive -- by pid, never by name."""
    if proc is None:
        return
    tree = descendants(proc.pid)
    if proc.poll() is None:
        try:
            if group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    tree += [p for p in descendants(proc.pid) if p not in tree]
    for pid in [proc.pid, *tree]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def run_workload(py: Path, url: str, work: Path, cfg: dict, log=print) -> dict:
    script = work / "mlflow_workload.py"
    script.write_text(WORKLOAD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HUB_"))}
    env["MLFLOW_TRACKING_URI"] = url
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [str(py), str(script), json.dumps(cfg)],
        env=env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    result = None
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
        elif line:
            log(f"  [mlflow] {line}")
    err = proc.stderr.read()
    proc.wait()
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"MLflow workload failed (exit {proc.returncode}):\n{err[-4000:]}")
    return result


# The MLflow workload, run by the MLflow virtualenv's interpreter with MLflow's own client.
WORKLOAD = r"""
import json, statistics, sys, time
import numpy as np
import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

cfg = json.loads(sys.argv[1])
c = MlflowClient()
out = {"version": mlflow.__version__}
p50 = statistics.median


def say(msg):
    print(msg, flush=True)


# --- run creation: sequential create_run from one client ------------------------------------
exp = c.create_experiment("create")
c.create_run(exp, run_name="warmup", tags={"bench": "warmup"})  # first-call costs out of the timing
n = cfg["create_runs"]
t = time.perf_counter()
for i in range(n):
    c.create_run(exp, run_name=f"run-{i}", tags={"bench": "create", "phase": "create"})
out["create_s"] = time.perf_counter() - t
out["create_runs"] = n
# the same with params (what the hub's one request carries: params + tags)
t = time.perf_counter()
for i in range(n):
    r = c.create_run(exp, run_name=f"run-p-{i}", tags={"bench": "create"})
    c.log_batch(r.info.run_id, params=[Param("lr", "0.001"), Param("moe.top_k", "2"), Param("optimizer", "adamw")])
out["create_params_s"] = time.perf_counter() - t
say(f"create_run: {n / out['create_s']:.1f} runs/s; create_run + log_batch(params): {n / out['create_params_s']:.1f} runs/s")

# --- ingest: runs x keys x steps, log_batch of 1,000 metrics, one client -----------------------
keys = cfg["keys"]
steps = cfg["steps"]
per_batch = cfg["batch"]
exp = c.create_experiment("train")
run_ids = [c.create_run(exp, run_name=f"train-{i}").info.run_id for i in range(cfg["ingest_runs"])]
warm = c.create_run(exp, run_name="warmup").info.run_id  # first-call costs out of the timing
c.log_batch(warm, metrics=[Metric(k, 1.0, int(time.time() * 1000), 0) for k in keys])
rng = np.random.default_rng(0)
vals = rng.random((len(keys), steps)).tolist()
steps_per_batch = max(1, per_batch // len(keys))
points = 0
t = time.perf_counter()
for rid in run_ids:
    for s0 in range(0, steps, steps_per_batch):
        ts = int(time.time() * 1000)
        batch = [Metric(k, vals[ki][s], ts, s) for s in range(s0, min(steps, s0 + steps_per_batch))
                 for ki, k in enumerate(keys)]
        c.log_batch(rid, metrics=batch)
        points += len(batch)
out["ingest_s"] = time.perf_counter() - t
out["ingest_points"] = points
say(f"ingest: {points} points in {out['ingest_s']:.1f} s = {points / out['ingest_s']:.0f} points/s")

# --- one series at full resolution ------------------------------------------------------------
hist = c.get_metric_history(run_ids[0], keys[0])  # warm-up, and a check
out["series_points"] = len(hist)
times = []
for _ in range(cfg["reps"]):
    t = time.perf_counter()
    c.get_metric_history(run_ids[0], keys[0])
    times.append(time.perf_counter() - t)
out["series_ms"] = p50(times) * 1000
out["series_all_ms"] = [round(x * 1000, 1) for x in times]
say(f"get_metric_history ({len(hist)} points): p50 {out['series_ms']:.0f} ms")

# --- filter + sort over N runs ------------------------------------------------------------------
# Seeded straight into the SQL store (setup, not timed: create_run over HTTP is too slow
# to seed 1,000 runs within the time budget); the same params and losses as the hub's runs.
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

store = SqlAlchemyStore(cfg["db_uri"], cfg["artifacts"])
exp = c.create_experiment("search")
spec = cfg["search_spec"]
t = time.perf_counter()
for i in range(cfg["search_runs"]):
    r = store.create_run(exp, user_id="bench", start_time=int(time.time() * 1000),
                         tags=[RunTag("bench", "search")], run_name=f"s-{i}")
    lr = spec["lr"][i]
    store.log_batch(r.info.run_id, metrics=[Metric("loss", spec["loss"][i], int(time.time() * 1000), 0)],
                    params=[Param("lr", lr), Param("moe.top_k", str(spec["top_k"][i])),
                            Param("optimizer", spec["optimizer"][i])], tags=[])
say(f"seeded {cfg['search_runs']} runs (direct store) in {time.perf_counter() - t:.0f} s")
flt = f"params.lr = '{spec['lr_query']}' and metrics.loss < {spec['loss_below']}"
results = {}
for max_results in (cfg["page_size"], 1000):
    res = c.search_runs([exp], filter_string=flt, order_by=["metrics.loss ASC"], max_results=max_results)
    times = []
    for _ in range(cfg["reps"]):
        t = time.perf_counter()
        res = c.search_runs([exp], filter_string=flt, order_by=["metrics.loss ASC"], max_results=max_results)
        times.append(time.perf_counter() - t)
    losses = [r.data.metrics["loss"] for r in res]
    results[str(max_results)] = {"ms": p50(times) * 1000, "all_ms": [round(x * 1000, 1) for x in times],
                                 "returned": len(res), "sorted": losses == sorted(losses)}
    say(f"search_runs over {cfg['search_runs']} runs, max_results={max_results}: {len(res)} runs, "
        f"p50 {p50(times) * 1000:.0f} ms")
out["search"] = results
out["search_filter"] = flt
print("RESULT " + json.dumps(out), flush=True)
"""


if __name__ == "__main__":  # pragma: no cover - a manual helper
    print(ensure_venv(Path(sys.argv[1]) if len(sys.argv) > 1 else default_venv()))
