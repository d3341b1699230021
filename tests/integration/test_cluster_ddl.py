"""Cluster-ready stores: ClickHouse's replicated schema, Elasticsearch's shards, replicas and hosts.

The ClickHouse cluster schema is validated for real in single-replica form: the 18.x server the
tests start, given a ZooKeeper (Debian's ``zookeeper`` package, started here on a free loopback
port), the ``{shard}``/``{replica}`` macros and a one-shard, one-replica cluster pointing at
itself. Every statement then runs ``ON CLUSTER`` through ZooKeeper's distributed DDL queue,
creates ``ReplicatedReplacingMergeTree`` tables under ``Distributed`` ones, and the store's own
reads, writes and deletes run against them. Several replicas and shards are the same statements
on more nodes (compose's ``cluster`` profile); this machine runs one server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.stores.metrics import (
    ChdbMetricsStore,
    ClickHouseServerMetricsStore,
    MetricsStoreError,
    metrics_store_from_url,
)
from hub.stores.metrics.sql import MIGRATIONS, Table, table_ddl
from tests.fixtures_services import (
    ClickHouseServer,
    _missing,
    _started,
    find_clickhouse_server,
    free_port,
    unique_name,
)

pytestmark = pytest.mark.integration

ZOOKEEPER = "/usr/share/zookeeper/bin/zkServer.sh"
CLUSTER = "hub_test_cluster"

_CLUSTER_XML = """<?xml version="1.0"?>
<yandex>
  <zookeeper>
    <node><host>127.0.0.1</host><port>{zk_port}</port></node>
    <session_timeout_ms>30000</session_timeout_ms>
  </zookeeper>
  <macros><shard>01</shard><replica>r1</replica></macros>
  <remote_servers>
    <{cluster}>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>{tcp_port}</port></replica>
      </shard>
    </{cluster}>
  </remote_servers>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>{interserver_port}</interserver_http_port>
</yandex>
"""


class ZooKeeper:
    """Debian's ZooKeeper in the foreground, standalone, on a free loopback port."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        (base / "data").mkdir(parents=True, exist_ok=True)
        (base / "zoo.cfg").write_text(
            f"tickTime=2000\ndataDir={base / 'data'}\nclientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\nadmin.enableServer=false\nmaxClientCnxns=0\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> ZooKeeper:
        log = open(self.base / "zk.log", "ab")  # noqa: SIM115 - owned by Popen
        env = {"ZOOCFGDIR": str(self.base), "ZOO_LOG_DIR": str(self.base), "PATH": "/usr/bin:/bin"}
        try:
            self.proc = subprocess.Popen(
                [ZOOKEEPER, "start-foreground", str(self.base / "zoo.cfg")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.base / "zk.log").read_text()[-2000:])
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"srvr")
                    if b"Mode:" in s.recv(1000):
                        return self
            time.sleep(0.2)
        raise TimeoutError(f"ZooKeeper did not answer on {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(10)
                    return


def _wait_for_zookeeper_session(server: ClickHouseServer, timeout: float = 60) -> None:
    """The 18.x server answers its ping before its ZooKeeper session is up, and an ``ON
    CLUSTER`` statement in that window crashes it (a null session in ``createImpl``): wait until
    it can read ZooKeeper itself."""
    from clickhouse_driver import Client

    client = Client(host="127.0.0.1", port=server.tcp_port, connect_timeout=2)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            try:
                client.execute("SELECT count() FROM system.zookeeper WHERE path = '/'")
                return
            except Exception as e:  # not connected to ZooKeeper yet
                last = e
                time.sleep(0.5)
    finally:
        client.disconnect()
    raise TimeoutError(f"clickhouse-server never reached ZooKeeper: {last}")


@pytest.fixture(scope="module")
def cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """The tests' 18.x clickhouse-server as a one-shard, one-replica cluster with ZooKeeper."""
    if find_clickhouse_server() is None:
        _missing("clickhouse-server is not installed; `make test` installs it")
    if not (Path(ZOOKEEPER).exists() and shutil.which("java")):
        _missing("ZooKeeper is not installed; `make test` installs it (Debian package zookeeper)")
    base = tmp_path_factory.mktemp("ch-cluster")
    zk = ZooKeeper(base / "zk")
    _started.append(zk)
    zk.start()
    server = ClickHouseServer(base / "ch")
    (server.base_dir / "config.d").mkdir()
    (server.base_dir / "config.d" / "cluster.xml").write_text(
        _CLUSTER_XML.format(
            zk_port=zk.port,
            cluster=CLUSTER,
            tcp_port=server.tcp_port,
            interserver_port=free_port(),
        )
    )
    _started.append(server)
    server.start()
    _wait_for_zookeeper_session(server)
    try:
        yield server
    finally:
        server.stop()
        zk.stop()


@pytest.fixture
def cluster_store(cluster_server: ClickHouseServer) -> Iterator[ClickHouseServerMetricsStore]:
    store = ClickHouseServerMetricsStore(
        cluster_server.url_for(unique_name()), cluster=CLUSTER, pool_size=2
    )
    store.ensure_schema()
    try:
        yield store
    finally:
        with contextlib.suppress(Exception):
            store.drop_database()
        store.close()


def _engines(store, database: str) -> dict[str, str]:
    names, engines = store._engine.query_columns(
        f"SELECT name, engine FROM system.tables WHERE database = '{database}'", 2
    )
    return dict(zip(names, engines, strict=True))


def test_cluster_schema_is_replicated_tables_under_distributed_ones(cluster_store):
    engines = _engines(cluster_store, cluster_store.database)
    for table in ("metric_points", "job_log_lines", "profile_ops"):
        assert engines[f"{table}_local"] == "ReplicatedReplacingMergeTree"
        assert engines[table] == "Distributed"
    assert engines["schema_migrations"] == "ReplicatedReplacingMergeTree"


def test_cluster_store_collapses_a_retried_batch_and_the_latest_write_wins(cluster_store):
    batch = [("run1", "loss", step, 1000.0 + step, 1.0 / (step + 1)) for step in range(50)]
    cluster_store.insert_points(batch)
    cluster_store.insert_points(batch)  # the SDK's retry after an outage
    cluster_store.insert_points([("run1", "loss", 7, 2000.0, 42.0)])
    series = cluster_store.series(["run1"], ["loss"])[("run1", "loss")]
    assert series.step == list(range(50))
    assert series.value[7] == 42.0
    assert [k.key for k in cluster_store.keys("run1")] == ["loss"]


def test_cluster_store_keeps_job_logs_and_profiles_and_deletes_a_run(cluster_store):
    rows = [("job1", seq, 1.0 + seq, "stdout", f"line {seq}") for seq in range(10)]
    cluster_store.insert_log_lines(rows)
    cluster_store.insert_log_lines(rows)
    assert [x.seq for x in cluster_store.log_lines("job1")] == list(range(10))
    op = {"op": "aten::mm", "shapes": "[[2, 2]]", "calls": 3, "self_us": 1.0, "total_us": 2.0}
    cluster_store.insert_profile_ops("p1", [op])
    assert cluster_store.profile_ops(["p1"])["p1"][0]["calls"] == 3
    cluster_store.insert_points([("gone", "loss", 0, 1.0, 1.0), ("kept", "loss", 0, 1.0, 1.0)])
    cluster_store.delete_run("gone")
    assert cluster_store.keys("gone") == [] and len(cluster_store.keys("kept")) == 1


def test_cluster_schema_applies_once_for_every_process(cluster_server, cluster_store):
    again = ClickHouseServerMetricsStore(
        cluster_server.url_for(cluster_store.database), cluster=CLUSTER, pool_size=1
    )
    try:
        again.ensure_schema()  # a second web replica starting: nothing to do, nothing fails
        (ids,) = again._engine.query_columns(
            f"SELECT id FROM {again.database}.schema_migrations FINAL ORDER BY id", 1
        )
        assert ids == [m.id for m in MIGRATIONS]
    finally:
        again.close()


def test_single_node_schema_stays_the_default(metrics_store):
    engines = _engines(metrics_store, metrics_store.database)
    assert engines["metric_points"] == "ReplacingMergeTree"
    assert not any(name.endswith("_local") for name in engines)


def test_cluster_ddl_text_names_its_cluster_keeper_path_and_shard_key():
    table = Table("t", ("run_id String", "v UInt64"), ("run_id",), version="v", shard_by="run_id")
    local, dist = table_ddl(table, "hub", "prod")
    assert "hub.t_local ON CLUSTER prod" in local
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/hub/t_local', '{replica}', v)"
        in local
    )
    assert "hub.t ON CLUSTER prod" in dist
    assert "Distributed(prod, hub, t_local, cityHash64(run_id))" in dist
    with pytest.raises(MetricsStoreError):
        table_ddl(table, "hub", "prod; DROP TABLE x")


def test_a_cluster_needs_a_clickhouse_server_not_chdb(tmp_path):
    with pytest.raises(MetricsStoreError, match="ClickHouse server"):
        metrics_store_from_url(f"chdb:///{tmp_path}", cluster="prod")
    assert isinstance(metrics_store_from_url(f"chdb:///{tmp_path}"), ChdbMetricsStore)


# --- Elasticsearch ------------------------------------------------------------------------------


def test_search_indices_take_shards_and_replicas_from_settings(elasticsearch_url):
    from hub.stores.search import SearchIndex

    index = SearchIndex(elasticsearch_url, prefix=unique_name("t").lower(), shards=2, replicas=1)
    try:
        index.ensure_indices()
        concrete = index.describe()[index.runs_index][0]
        got = index._es.indices.get_settings(index=concrete)[concrete]["settings"]["index"]
        assert (str(got["number_of_shards"]), str(got["number_of_replicas"])) == ("2", "1")
    finally:
        index.drop_all()
        index.close()


def test_search_spreads_over_several_hosts_and_skips_a_dead_one(elasticsearch_url):
    from hub.stores.search import SearchIndex

    dead = f"http://127.0.0.1:{free_port()}"
    index = SearchIndex(f"{dead},{elasticsearch_url}", prefix=unique_name("t").lower())
    try:
        assert index.hosts == [dead, elasticsearch_url]
        index.ensure_indices()
        for i in range(6):  # whichever node the client tries first
            index.index_run({"id": f"r{i}", "name": f"run {i}", "project": "p"}, refresh=True)
        assert index.search_runs(page_size=10).total == 6
    finally:
        index.drop_all()
        index.close()
