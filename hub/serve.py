"""``hub serve``: the hub and the local services it needs, supervised in the foreground.

Started in order: an Elasticsearch-compatible server (unless ``HUB_ELASTICSEARCH_URL`` is
set), Redis (the one on ``HUB_REDIS_URL`` if it answers, else a private ``redis-server``),
database migrations, then the web process: gunicorn with one worker process and many
threads, because the embedded chdb engine may be opened by one process only.

A child that dies is restarted with backoff; one that keeps dying (5 times in a minute)
stops everything with a non-zero exit. Ctrl-C or SIGTERM stops every child (SIGTERM to its
process group, then SIGKILL to whatever of the group is left after HUB_SERVE_STOP_GRACE_S,
10 s) and exits 0. Children get their own sessions, so a terminal's Ctrl-C
reaches the supervisor only and shutdown happens in order.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_http(url: str, timeout: float, cancelled=lambda: False) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cancelled():
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return True
        except Exception:
            time.sleep(0.2)
    return False


def log(msg: str) -> None:
    print(f"[hub serve] {msg}", flush=True)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict
    ready_url: str | None = None
    proc: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)
    logfile: Path | None = None
    about: str = ""  # what it serves, for the start-up line

    def start(self) -> None:
        out = open(self.logfile, "ab") if self.logfile else None  # noqa: SIM115 (kept open for the child)
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
            stdout=out or None,
            stderr=subprocess.STDOUT if out else None,
        )

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM to the child's whole process group, then SIGKILL to whatever of the group is
        left after ``grace`` seconds (``HUB_SERVE_STOP_GRACE_S``, 10). The group, not just the
        child: noida-db's launcher is a Python script that dies on SIGTERM at once while the
        server it runs, busy, ignores it; waiting for the launcher alone left the server running."""
        if not self.proc:
            return
        grace = stop_grace_s() if grace is None else grace
        pgid = self.proc.pid  # start_new_session: the child leads its own group
        self.proc.poll()
        if not group_alive(pgid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the leader: a zombie must not count as alive
            if not group_alive(pgid):
                return
            time.sleep(0.05)
        log(f"{self.name} did not stop within {grace:g} s of SIGTERM; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()


def stop_grace_s() -> float:
    return float(os.environ.get("HUB_SERVE_STOP_GRACE_S") or 10)


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies do not: they have exited)."""
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: any member, zombies included
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class ShutdownRequested(Exception):
    """A signal asked for shutdown while the hub was still starting."""


class Supervisor:
    def __init__(self):
        self.children: list[Child] = []
        self.stopping = False

    def add(self, child: Child, *, wait: float = 60.0) -> None:
        if self.stopping:  # never start a child after stop_all(): nothing would stop it
            raise ShutdownRequested
        self.children.append(child)  # before start: a signal from here on stops it too
        child.start()
        ready = not child.ready_url or wait_http(
            child.ready_url, wait, cancelled=lambda: self.stopping
        )
        if self.stopping:
            raise ShutdownRequested
        where = f", {child.about}" if child.about else ""
        if not ready:
            raise RuntimeError(
                f"{child.name} did not become ready at {child.ready_url}"
                + (f" (see {child.logfile})" if child.logfile else "")
            )
        log(f"{child.name} running (pid {child.proc.pid}{where})")

    def stop_all(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            log(f"stopping {child.name}")
            child.stop()

    def watch(self) -> int:
        while not self.stopping:
            for child in self.children:
                code = child.proc.poll()
                if code is None or self.stopping:
                    continue
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                if len(child.restarts) > 5:
                    log(f"{child.name} keeps dying (exit {code}); stopping everything")
                    self.stop_all()
                    return 1
                log(f"{child.name} exited with {code}; restarting")
                time.sleep(min(2 ** len(child.restarts) * 0.25, 8))
                if (
                    self.stopping
                ):  # a signal came during the backoff: start nothing after stop_all()
                    break
                child.start()
            time.sleep(0.5)
        return 0


def _ensure_redis(env: dict, sup: Supervisor, data_dir: Path) -> None:
    url = env.get("HUB_REDIS_URL") or "redis://127.0.0.1:6379/0"
    u = urlparse(url)
    if port_open(u.hostname or "127.0.0.1", u.port or 6379):
        env["HUB_REDIS_URL"] = url
        log(f"using Redis at {url}")
        return
    binary = shutil.which("redis-server")
    if not binary:
        log(
            f"warning: no Redis at {url} and no redis-server to start; background jobs will not run"
        )
        env.pop("HUB_REDIS_URL", None)
        return
    port = free_port()
    sup.add(
        Child(
            "redis",
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data_dir),
            ],
            dict(env),
            logfile=data_dir / "logs" / "redis.log",
        )
    )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.1)
    env["HUB_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"


def _ensure_elasticsearch(env: dict, sup: Supervisor, data_dir: Path) -> None:
    if env.get("HUB_ELASTICSEARCH_URL"):
        log(f"using Elasticsearch at {env['HUB_ELASTICSEARCH_URL']}")
        return
    binary = shutil.which(
        "noida-db", path=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    )
    if not binary:
        raise RuntimeError(
            "noida-db is not installed (pip install 'moe-hub[dev]') and HUB_ELASTICSEARCH_URL is not set"
        )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sup.add(
        Child(
            "elasticsearch (noida-db)",
            [
                binary,
                "start",
                "--only",
                "elasticsearch",
                "--elasticsearch-port",
                str(port),
                "--data-dir",
                str(data_dir / "noida-db"),
            ],
            dict(env),
            ready_url=url,
            logfile=data_dir / "logs" / "elasticsearch.log",
        )
    )
    env["HUB_ELASTICSEARCH_URL"] = url


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    data_dir: str | None = None,
    demo: bool = False,
    threads: int = 16,
) -> int:
    env = dict(os.environ)
    if data_dir:
        env["HUB_DATA_DIR"] = str(Path(data_dir).resolve())
    data = Path(env.get("HUB_DATA_DIR") or ROOT / ".hub-data").resolve()
    env["HUB_DATA_DIR"] = str(data)
    # Hubs sharing one Redis must not consume each other's Celery tasks.
    env.setdefault(
        "HUB_REDIS_PREFIX", "hub-" + hashlib.sha1(str(data).encode()).hexdigest()[:10] + ":"
    )
    (data / "logs").mkdir(parents=True, exist_ok=True)
    if not env.get("HUB_SECRET_KEY"):
        secret_key_for(data)  # settings read it from the data dir, in every process of this hub
    env.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    if port_open(host, port):
        log(f"error: {host}:{port} is already in use (pass --port)")
        return 2

    sup = Supervisor()

    def on_signal(signum, frame):
        if not sup.stopping:
            log(f"received {signal.Signals(signum).name}; shutting down")
            sup.stop_all()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        _ensure_elasticsearch(env, sup, data)
        _ensure_redis(env, sup, data)
        log("migrating the database")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            env=env,
            cwd=ROOT,
            check=True,
        )
        for extra in _post_migrate_commands(env):
            subprocess.run([sys.executable, "manage.py", *extra], env=env, cwd=ROOT, check=True)
        base = f"http://{host}:{port}"
        sup.add(
            Child(
                "web",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "hub.wsgi:application",
                    "--bind",
                    f"{host}:{port}",
                    "--workers",
                    "1",
                    "--worker-class",
                    "gthread",
                    "--threads",
                    str(threads),
                    "--timeout",
                    "600",
                    "--graceful-timeout",
                    "10",
                    "--access-logfile",
                    "-",
                ],
                env,
                ready_url=f"{base}/api/v1/health",
                logfile=data / "logs" / "web.log",
            )
        )
        sup.add(_reaper_child(env, data))
        for child in _worker_children(env, data, base):
            sup.add(child)
        if demo:
            from hub.demo import seed

            seed(url=base, env=env)
        log(f"MoE Hub is up at {base}  (dashboard: {base}/, API docs: {base}/api/docs)")
        log(f"data in {data}; each process logs to {data / 'logs'}/<name>.log")
        log(f"try: hub repo list  (or set HUB_URL={base} when the CLI runs elsewhere)")
        log("Ctrl-C (or SIGTERM) stops the hub and everything it started")
    except ShutdownRequested:
        sup.stop_all()  # again: a child may have started while the first pass ran
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as e:
        if sup.stopping:  # a step cut short by the shutdown itself is not an error
            sup.stop_all()
            return 0
        log(f"error: {e}")
        sup.stop_all()
        return 1
    except BaseException:
        sup.stop_all()
        raise
    return sup.watch()


def secret_key_for(data: Path) -> str:
    """The data dir's own session-signing key: random, made on the first start and kept in
    ``<data>/secret-key`` (which settings read; ``HUB_SECRET_KEY`` overrides it). The file is
    created with mode 0600 by open() itself and never exists with looser permissions; O_EXCL
    makes two first starts agree on one key."""
    import secrets

    path = Path(data) / "secret-key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another first start may be writing it right now
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.1)
        raise RuntimeError(
            f"{path} is empty: delete it (signed-in sessions end) or set HUB_SECRET_KEY"
        ) from None
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def _post_migrate_commands(env: dict) -> list[list[str]]:
    """Management commands run after migrations: the search indices and their mappings."""
    return [["search_init"]] if env.get("HUB_ELASTICSEARCH_URL") else []


def _worker_token(env: dict, data: Path) -> str:
    """The workers' service credential (not a user's token: it only claims jobs, and each job
    attempt then gets its own credential), kept in the data dir (mode 600 from creation; the
    sandbox never sees the data dir) and reused across restarts. A ``worker-token`` file of
    older versions held a site admin's token: it is not used any more."""
    _retire_legacy_worker_account(env, data)
    path = data / "worker-credential"
    if path.exists():
        return path.read_text().strip()
    token = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "hub_admin",
            "create-worker-credential",
            "--name",
            "hub serve",
        ],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


def _retire_legacy_worker_account(env: dict, data: Path) -> None:
    """Data dirs of older versions hold ``worker-token``: a site admin's API token (user
    ``hub-worker``) that workers used before they had credentials of their own. Nothing needs it
    any more and anyone who read it would be a site admin, so revoke it (the account is
    deactivated, every token of it revoked) and remove the file, once."""
    legacy = data / "worker-token"
    if not legacy.exists():
        return
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "hub_admin",
            "deactivate-user",
            "--user",
            "hub-worker",
            "--missing-ok",
        ],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    legacy.unlink()
    log("retired the old worker account hub-worker (its site-admin token was revoked)")


def _reaper_child(env: dict, data: Path) -> Child:
    """Marks jobs of dead workers ``lost`` on a timer, even when nobody reads jobs."""
    return Child(
        "jobs reaper",
        [sys.executable, "manage.py", "jobs_reaper"],
        dict(env),
        logfile=data / "logs" / "jobs-reaper.log",
    )


def _celery(app: str, queue: str, concurrency: int, hostname: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        queue,
        "--concurrency",
        str(concurrency),
        "--pool",
        "threads",
        "--loglevel",
        "INFO",
        "--hostname",
        f"{hostname}@{socket.gethostname()}",
    ]


def _worker_children(env: dict, data: Path, base_url: str) -> list[Child]:
    """Three Celery workers: the search indexer (queue ``hub``, 2 threads), the job worker
    (queue ``cpu``, 3 threads) and the inference worker (queue ``infer``, 1 thread).
    Separate, so a run created while every job slot is busy still reaches search at once and
    a prompt never waits behind a job. None opens the embedded chdb database (only the web process
    does): the job worker reports through the API; the indexer needs the database and the
    search server only, no sandbox and no worker credential."""
    if "HUB_REDIS_URL" not in env:
        return []
    tag = hashlib.sha1(str(data).encode()).hexdigest()[:6]
    wenv = dict(
        env,
        HUB_WORKER_TOKEN=_worker_token(env, data),
        HUB_WORKER_API_URL=base_url,
        HUB_WORKER_QUEUES="cpu",
    )
    return [
        Child(
            "search indexer",
            _celery("hub.celery_app", "hub", 2, f"hub-{tag}"),
            dict(env, HUB_WORKER_QUEUES=""),
            logfile=data / "logs" / "indexer.log",
            about="Celery queue hub: keeps search up to date",
        ),
        Child(
            "job worker",
            # The Django-free app a job worker on any other host runs: it reaches the hub only
            # through its API and the broker, here as there.
            _celery("workers.celery_app", "cpu", 3, f"cpu-{tag}"),
            wenv,
            logfile=data / "logs" / "worker.log",
            about="Celery queue cpu: runs up to 3 jobs in the sandbox",
        ),
        Child(
            "inference worker",
            # One request at a time into one long-lived sandboxed engine that keeps recently
            # used commits loaded (workers/inference); its own queue, so jobs never delay it.
            _celery("workers.celery_app", "infer", 1, f"infer-{tag}"),
            # Its own jobs folder: a worker sweeps (clears) the jobs folder it claims at start,
            # and a restarted inference worker must never sweep the job worker's running jobs.
            dict(wenv, HUB_WORKER_QUEUES="infer", HUB_JOBS_DIR=str(data / "inference" / "jobs")),
            logfile=data / "logs" / "inference.log",
            about="Celery queue infer: the playground's sandboxed generations",
        ),
    ]
