"""Two web replicas on different data dirs, one set of shared stores, and a worker that knows only
the hub's URL, its credential and the broker.

The replicas share PostgreSQL (``make services``; a fresh database per run), the S3 blob store
(SeaweedFS), a ClickHouse server, Redis and the search server, and nothing else: each has its own
``HUB_DATA_DIR``, as if on another host. What one replica writes the other serves: a push through
A pulls through B, metrics logged through A read through B, a dashboard session signed in on A
works on B, and a job launched through A, run by a worker that reaches A only, streams its logs
through B.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hub.client import Client
from hub.serve import free_port, port_open, wait_http
from tests.fixtures_services import S3_TEST_BUCKET, _missing, unique_name
from tests.helpers import TINY

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _manage(env: dict, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if r.returncode:
        raise AssertionError(f"manage.py {' '.join(args)}: {r.stdout}\n{r.stderr}")
    return r.stdout.strip()


def web_command(port: int, *, workers: int = 2, threads: int = 8) -> list[str]:
    """The production web command (compose's ``web`` service), bound to loopback."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "hub.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--timeout",
        "300",
        "--graceful-timeout",
        "10",
    ]


@dataclass
class Cluster:
    env: dict
    urls: list[str]
    base: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = open(self.base / f"{name}.log", "wb")  # noqa: SIM115 - owned by Popen
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def log(self, name: str) -> str:
        path = self.base / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _postgres_database(name: str) -> str:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        _missing(f"PostgreSQL is not running on 127.0.0.1:5432 (`make services`): {e}")
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def _drop_postgres_database(name: str) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error):
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory, clickhouse_server_url, elasticsearch_url, seaweedfs
) -> Iterator[Cluster]:
    if not port_open("127.0.0.1", 6379):
        _missing("Redis is not running on 127.0.0.1:6379 (`make services`)")
    base = tmp_path_factory.mktemp("two-replicas")
    db_name = unique_name("hub_replicas")
    shared = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "AWS_"))}
    shared.update(
        DJANGO_SETTINGS_MODULE="hub.settings",
        PYTHONUNBUFFERED="1",
        HUB_SECRET_KEY=secrets.token_urlsafe(50),  # from configuration, the same everywhere
        HUB_DATABASE_URL=_postgres_database(db_name),
        HUB_CLICKHOUSE_URL=f"{clickhouse_server_url}/{unique_name()}",
        HUB_ELASTICSEARCH_URL=elasticsearch_url,
        HUB_ELASTICSEARCH_INDEX_PREFIX=unique_name("r").lower(),
        HUB_REDIS_URL=REDIS_URL,
        HUB_REDIS_PREFIX=f"{unique_name('replicas')}:",
        HUB_BLOB_URL=f"s3://{S3_TEST_BUCKET}/{unique_name('replicas')}",
        HUB_S3_ENDPOINT_URL=seaweedfs.endpoint_url,
        HUB_S3_ACCESS_KEY_ID=seaweedfs.ACCESS_KEY,
        HUB_S3_SECRET_ACCESS_KEY=seaweedfs.SECRET_KEY,
        HUB_JOB_LOST_AFTER_S="60",
    )
    c = Cluster(env=shared, urls=[], base=base)
    try:
        setup_env = dict(shared, HUB_DATA_DIR=str(base / "setup"))
        _manage(setup_env, "migrate", "--noinput", "-v", "0")
        _manage(setup_env, "search_init")
        for name in ("a", "b"):
            port = free_port()
            env = dict(shared, HUB_DATA_DIR=str(base / f"data-{name}"))
            c.start(f"web-{name}", web_command(port), env)
            c.urls.append(f"http://127.0.0.1:{port}")
        for i, url in enumerate(c.urls):
            if not wait_http(f"{url}/api/v1/health", 90):
                raise AssertionError(f"web-{'ab'[i]} did not start:\n{c.log('web-' + 'ab'[i])}")
        yield c
    finally:
        c.stop()
        _drop_postgres_database(db_name)
        with contextlib.suppress(Exception):
            import redis

            r = redis.Redis.from_url(REDIS_URL)
            keys = list(r.scan_iter(match=shared["HUB_REDIS_PREFIX"] + "*"))
            if keys:
                r.delete(*keys)


@pytest.fixture(scope="module")
def token(cluster) -> str:
    env = dict(cluster.env, HUB_DATA_DIR=str(cluster.base / "setup"))
    _manage(env, "hub_admin", "create-user", "--user", "jane")
    return _manage(env, "hub_admin", "create-token", "--user", "jane", "--scope", "write")


def test_a_push_through_one_replica_pulls_through_the_other(cluster, token, tmp_path):
    a, b = (Client(url=u, token=token) for u in cluster.urls)
    a.create_repo("jane/shared")
    payload = os.urandom(3 * 1024 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(payload)
    (src / "README.md").write_text("pushed through A")
    pushed = a.push(src, repo="jane/shared", message="through A")
    b.pull("jane/shared", tmp_path / "out")
    assert (tmp_path / "out" / "weights.bin").read_bytes() == payload
    assert (tmp_path / "out" / "README.md").read_text() == "pushed through A"
    assert b.branch_info("jane/shared", "main")["commit"] == pushed.commit["sha"]
    for data_dir in ("data-a", "data-b"):  # the chunks went to S3, not to either replica
        assert not list((cluster.base / data_dir).glob("blobs/**/*.*"))


def test_metrics_logged_through_one_replica_read_through_the_other(cluster, token):
    a, b = (Client(url=u, token=token) for u in cluster.urls)
    a._json("POST", "/projects", json={"namespace": "jane", "name": "exp"})
    run = a._json("POST", "/projects/jane/exp/runs", json={"name": "replicated"})
    steps = list(range(100))
    a._json(
        "POST",
        f"/runs/{run['id']}/metrics",
        json={"key": "loss", "step": steps, "value": [1.0 / (s + 1) for s in steps]},
    )
    keys = b._json("GET", f"/runs/{run['id']}/metrics")["keys"]
    assert [(k["key"], k["count"]) for k in keys] == [("loss", 100)]


def test_a_session_signed_in_on_one_replica_is_valid_on_the_other(cluster, token):
    env = dict(cluster.env, HUB_DATA_DIR=str(cluster.base / "setup"))
    _manage(env, "hub_admin", "set-password", "--user", "jane", "--password", "s3cret-pass-9")
    with httpx.Client(base_url=cluster.urls[0]) as on_a:
        csrf = on_a.get("/api/v1/auth/csrf").cookies.get("csrftoken")
        r = on_a.post(
            "/api/v1/auth/login",
            json={"username": "jane", "password": "s3cret-pass-9"},
            headers={"X-CSRFToken": csrf, "Referer": cluster.urls[0]},
        )
        assert r.status_code == 200, r.text
        cookies = dict(on_a.cookies)
    with httpx.Client(base_url=cluster.urls[1], cookies=cookies) as on_b:
        me = on_b.get("/api/v1/whoami")
        assert me.status_code == 200 and me.json()["username"] == "jane", me.text


def _worker_env(cluster: Cluster, credential: str) -> dict:
    """Only what a worker host has: the hub's URL, the worker credential, the broker."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        PYTHONUNBUFFERED="1",
        HUB_WORKER_API_URL=cluster.urls[0],
        HUB_WORKER_TOKEN=credential,
        HUB_REDIS_URL=REDIS_URL,
        HUB_REDIS_PREFIX=cluster.env["HUB_REDIS_PREFIX"],
        HUB_JOBS_DIR=str(cluster.base / "worker-host" / "jobs"),
        HUB_WORKER_QUEUES="cpu",
    )
    return env


def test_a_worker_without_database_settings_runs_a_job_whose_logs_stream_from_the_other_replica(
    cluster, token
):
    env = dict(cluster.env, HUB_DATA_DIR=str(cluster.base / "setup"))
    credential = _manage(env, "hub_admin", "create-worker-credential", "--name", "replicas")
    wenv = _worker_env(cluster, credential)
    assert not any(k in wenv for k in ("HUB_DATABASE_URL", "HUB_SECRET_KEY", "HUB_DATA_DIR"))
    worker = cluster.start(
        "worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "-Q",
            "cpu",
            "--pool",
            "threads",
            "--concurrency",
            "1",
            "--hostname",
            f"replicas-{uuid.uuid4().hex[:6]}@%h",
        ],
        wenv,
    )
    a, b = (Client(url=u, token=token) for u in cluster.urls)
    a.create_repo("jane/trained")
    deadline = time.monotonic() + 60
    job = None
    while job is None:  # the hub refuses a job no worker could take until the worker is up
        try:
            job = a._json(
                "POST",
                "/jobs",
                json={
                    "project": "jane/exp",
                    "kind": "train",
                    "config": TINY,
                    "target": "jane/trained@main",
                    "resources": {"cpus": 1, "memory_mb": 3072, "time_limit_s": 300},
                },
            )
        except Exception:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise AssertionError(cluster.log("worker")) from None
            time.sleep(1)
    events = []
    with httpx.Client(base_url=cluster.urls[1], timeout=httpx.Timeout(30, read=300)) as http:
        with http.stream(
            "GET",
            f"/api/v1/jobs/{job['id']}/logs/stream",
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        ) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("event: "):
                    events.append(line[len("event: ") :])
                if line.startswith("data: ") and events and events[-1] == "end":
                    end = line
                    break
    done = b._json("GET", f"/jobs/{job['id']}")
    assert done["status"] == "succeeded", (done["reason"], cluster.log("worker"))
    assert '"succeeded"' in end and events.count("line") >= 3
    assert b.branch_info("jane/trained", "main")["commit"] == done["result"]["commit"]
