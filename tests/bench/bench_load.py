"""Load held: SDK writers, dashboard readers, pushers and pullers at once against a hub on this
machine (loopback only), on one web process and then on two.

For each configuration a fresh hub is started from the production pieces: gunicorn's gthread
web command (``--workers 1 --threads 16`` per process) over PostgreSQL (``make services``; a
fresh database each time), a ClickHouse server (the tests' 18.x one, a fresh database), Redis
and one blob folder shared by the web processes. With two, clients take turns between them as a
load balancer would. Then, for ``--duration`` seconds:

- ``--writers`` (M) metric writers: each has its own run and posts batches of ``--batch`` points
  (``POST /runs/{id}/metrics``, consecutive steps); a failed batch is sent again, as the SDK does;
- ``--readers`` (K) dashboard readers: a chart (``GET /metrics/series``, 300 buckets, four runs),
  a run page (``GET /runs/{id}``) and its keys (``GET /runs/{id}/metrics``), the repo list;
- ``--pushers`` (P) pushers, each committing a new 256 KiB file to its own repo with the SDK, and
  as many pullers downloading the newest file of a pusher's repo with the SDK.

Afterwards it counts what the stores hold: every run's points (after ClickHouse collapsed
duplicates) against the points the writers had acknowledged, the runs in PostgreSQL against the
runs created, and each repo's head generation against 1 + its acknowledged pushes. It prints
throughput, p50/p99 per endpoint, errors, and ``lost``/``doubled`` for points, runs and commits.
No figure is asserted. Run::

    .venv/bin/python tests/bench/bench_load.py                 # 60 s per configuration
    .venv/bin/python tests/bench/bench_load.py --duration 10   # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from hub.client import Client  # noqa: E402
from hub.serve import free_port, port_open, wait_http  # noqa: E402
from tests.fixtures_services import start_clickhouse_server, unique_name  # noqa: E402

PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)

    def timed(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except Exception:
            with self.lock:
                self.errors[name] += 1
            raise
        with self.lock:
            self.latency[name].append(time.perf_counter() - t0)
        return result


def _manage(env: dict, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "manage.py", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if r.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)}: {r.stderr}")
    return r.stdout.strip()


def _pg(sql: str, database: str = "postgres") -> list:
    import psycopg

    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


class Hub:
    """One hub: ``n_web`` gunicorn processes over fresh databases."""

    def __init__(self, base: Path, n_web: int, clickhouse_url: str) -> None:
        self.base = base
        self.db = unique_name("hub_load")
        _pg(f'CREATE DATABASE "{self.db}"')
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        self.env.update(
            DJANGO_SETTINGS_MODULE="hub.settings",
            HUB_SECRET_KEY=secrets.token_urlsafe(50),
            HUB_DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{self.db}",
            HUB_CLICKHOUSE_URL=f"{clickhouse_url}/{unique_name()}",
            HUB_REDIS_URL=REDIS_URL,
            HUB_REDIS_PREFIX=f"{unique_name('load')}:",
            HUB_BLOB_DIR=str(base / "blobs"),  # one folder: every process is on this machine
            HUB_BLOB_FSYNC="0",
            HUB_DATA_DIR=str(base / "setup"),
        )
        _manage(self.env, "migrate", "--noinput", "-v", "0")
        _manage(self.env, "hub_admin", "create-user", "--user", "load")
        self.token = _manage(
            self.env, "hub_admin", "create-token", "--user", "load", "--scope", "write"
        )
        self.procs: list[subprocess.Popen] = []
        self.urls: list[str] = []
        for i in range(n_web):
            port = free_port()
            env = dict(self.env, HUB_DATA_DIR=str(base / f"web-{i}"))
            log = open(base / f"web-{i}.log", "wb")  # noqa: SIM115
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "hub.wsgi:application",
                        "--bind",
                        f"127.0.0.1:{port}",
                        "--workers",
                        "1",
                        "--worker-class",
                        "gthread",
                        "--threads",
                        "16",
                        "--timeout",
                        "300",
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            self.urls.append(f"http://127.0.0.1:{port}")
        for url in self.urls:
            if not wait_http(f"{url}/api/v1/health", 90):
                raise RuntimeError(f"{url} did not start; see {base}")
        self._next = itertools.cycle(self.urls)
        self._lock = threading.Lock()

    def url(self) -> str:
        """The next web process, round robin (the load balancer)."""
        with self._lock:
            return next(self._next)

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            _pg(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def run_load(hub: Hub, *, duration: float, writers: int, readers: int, pushers: int, batch: int):
    stats = Stats()
    stop = threading.Event()
    auth = {"Authorization": f"Bearer {hub.token}"}
    clients = threading.local()

    def http() -> httpx.Client:
        if not hasattr(clients, "c"):
            clients.c = httpx.Client(headers=auth, timeout=60)
        return clients.c

    def call(name: str, method: str, path: str, **kw):
        def go():
            r = http().request(method, hub.url() + "/api/v1" + path, **kw)
            r.raise_for_status()
            return r

        return stats.timed(name, go)

    call("POST /projects", "POST", "/projects", json={"namespace": "load", "name": "exp"})
    run_ids = [
        call(
            "POST /projects/{p}/runs",
            "POST",
            "/projects/load/exp/runs",
            json={"name": f"load-{i}"},
        ).json()["id"]
        for i in range(writers)
    ]
    acked = dict.fromkeys(run_ids, 0)
    repos = [f"load/model-{i}" for i in range(pushers)]
    pushes = dict.fromkeys(repos, 0)
    for repo in repos:
        Client(url=hub.url(), token=hub.token).create_repo(repo)

    def writer(run_id: str) -> None:
        step = 0
        while not stop.is_set():
            body = {
                "key": "loss",
                "step": list(range(step, step + batch)),
                "value": [1.0 / (s + 1) for s in range(step, step + batch)],
            }
            for _attempt in range(5):  # a failed batch goes again (the SDK's retry)
                try:
                    call("POST /runs/{id}/metrics", "POST", f"/runs/{run_id}/metrics", json=body)
                    break
                except Exception:
                    time.sleep(0.2)
            else:
                continue  # given up: these points are not acknowledged
            step += batch
            acked[run_id] = step

    def reader(i: int) -> None:
        while not stop.is_set():
            some = ",".join(run_ids[(i + j) % len(run_ids)] for j in range(min(4, len(run_ids))))
            for name, path, params in (
                (
                    "GET /metrics/series",
                    "/metrics/series",
                    {"runs": some, "keys": "loss", "buckets": 300},
                ),
                ("GET /runs/{id}", f"/runs/{run_ids[i % len(run_ids)]}", None),
                ("GET /runs/{id}/metrics", f"/runs/{run_ids[i % len(run_ids)]}/metrics", None),
                ("GET /repos", "/repos", None),
            ):
                with contextlib.suppress(Exception):
                    call(name, "GET", path, params=params)

    def pusher(repo: str, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        n = 0
        while not stop.is_set():
            f = work / "weights.bin"
            f.write_bytes(os.urandom(256 * 1024))
            c = Client(url=hub.url(), token=hub.token, retries=0)
            try:
                stats.timed("push (SDK)", c.push, f, repo=repo, message=f"push {n}")
            except Exception:
                continue
            finally:
                c.close()
            n += 1
            pushes[repo] = n

    def puller(repo: str, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        while not stop.is_set():
            if not pushes[repo]:
                time.sleep(0.2)
                continue
            c = Client(url=hub.url(), token=hub.token, retries=0)
            with contextlib.suppress(Exception):
                stats.timed(
                    "pull (SDK)", c.download_file, repo, "weights.bin", work / "weights.bin"
                )
            (work / "weights.bin").unlink(missing_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="hub-load-"))
    threads = [threading.Thread(target=writer, args=(r,)) for r in run_ids]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    threads += [
        threading.Thread(target=pusher, args=(r, tmp / f"push-{i}")) for i, r in enumerate(repos)
    ]
    threads += [
        threading.Thread(target=puller, args=(r, tmp / f"pull-{i}")) for i, r in enumerate(repos)
    ]
    with stats.lock:  # the figures are the load phase's only (not setup, not the counting)
        stats.latency.clear()
        stats.errors.clear()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    try:
        time.sleep(duration)
    finally:  # Ctrl-C too: every thread stops, then main() stops what it started
        stop.set()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - t0
    measured = Stats()
    measured.latency = {k: list(v) for k, v in stats.latency.items()}
    measured.errors = dict(stats.errors)

    # --- counted afterwards, in the stores ---
    points_lost = points_doubled = 0
    for run_id, sent in acked.items():
        keys = call("GET /runs/{id}/metrics", "GET", f"/runs/{run_id}/metrics").json()["keys"]
        stored = keys[0]["count"] if keys else 0
        points_lost += max(0, sent - stored)
        points_doubled += max(0, stored - sent)
    (runs_stored,) = _pg("SELECT count(*) FROM tracking_run WHERE name LIKE 'load-%%'", hub.db)[0]
    commits_lost = commits_doubled = 0
    for repo in repos:
        head = Client(url=hub.url(), token=hub.token).branch_info(repo, "main")["commit"]
        info = call("GET commit", "GET", f"/repos/{repo}/commits/{head}").json()
        expected = 1 + pushes[repo]  # the repo's first commit, then one per acknowledged push
        commits_lost += max(0, expected - info["generation"])
        commits_doubled += max(0, info["generation"] - expected)
    return {
        "elapsed": elapsed,
        "stats": measured,
        "points": sum(acked.values()),
        "points_lost": points_lost,
        "points_doubled": points_doubled,
        "runs": (writers, runs_stored),
        "commits": sum(pushes.values()),
        "commits_lost": commits_lost,
        "commits_doubled": commits_doubled,
    }


def report(title: str, r: dict) -> list[str]:
    s: Stats = r["stats"]
    total = sum(len(v) for v in s.latency.values())
    lines = [
        f"### {title}",
        "",
        f"{total} requests in {r['elapsed']:.0f} s = {total / r['elapsed']:.0f} req/s; "
        f"{r['points'] / r['elapsed']:,.0f} points/s acknowledged; "
        f"errors: {sum(s.errors.values())}" + (f" {dict(s.errors)}" if s.errors else ""),
        "",
        "| endpoint | count | per s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in sorted(s.latency):
        xs = sorted(s.latency[name])
        p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
        lines.append(
            f"| {name} | {len(xs)} | {len(xs) / r['elapsed']:.1f} | "
            f"{statistics.median(xs) * 1000:.0f} | {p99 * 1000:.0f} |"
        )
    made, stored = r["runs"]
    lines += [
        "",
        f"counted afterwards: points {r['points']:,} acknowledged, lost {r['points_lost']}, "
        f"doubled {r['points_doubled']}; runs {made} created, {stored} stored; commits "
        f"{r['commits']} acknowledged, lost {r['commits_lost']}, doubled {r['commits_doubled']}",
        "",
    ]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--pushers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--web", default="1,2", help="web process counts to compare")
    args = ap.parse_args()
    if not port_open("127.0.0.1", 5432) or not port_open("127.0.0.1", 6379):
        print("PostgreSQL and Redis must run on 127.0.0.1 (make services)")
        return 2
    clickhouse = start_clickhouse_server()
    out = [
        f"M={args.writers} writers (batches of {args.batch} points), K={args.readers} readers, "
        f"P={args.pushers} pushers + {args.pushers} pullers, {args.duration:.0f} s each, "
        f"{os.cpu_count()} cores shared by the hub, its stores and the load generator",
        "",
    ]
    try:
        for n in (int(x) for x in args.web.split(",")):
            base = Path(tempfile.mkdtemp(prefix=f"hub-load-{n}web-"))
            hub = Hub(base, n, clickhouse.url)
            try:
                result = run_load(
                    hub,
                    duration=args.duration,
                    writers=args.writers,
                    readers=args.readers,
                    pushers=args.pushers,
                    batch=args.batch,
                )
            finally:
                hub.stop()
            out += report(f"{n} web process{'es' if n > 1 else ''}", result)
            print("\n".join(out[-(len(result["stats"].latency) + 9) :]), flush=True)
    finally:
        clickhouse.stop()
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
