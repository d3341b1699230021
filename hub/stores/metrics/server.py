"""``clickhouse://user:password@host:9000/db[?connect_timeout=2&send_receive_timeout=30]``: a
ClickHouse server over the native protocol (clickhouse-driver), through a small pool of
connections because a driver ``Client`` is not thread-safe. The only module that imports
``clickhouse_driver``."""

from __future__ import annotations

import queue
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from hub.stores.metrics.base import DEFAULT_DATABASE, MetricsStoreError, MetricsStoreUnavailable
from hub.stores.metrics.sql import _Engine, _SqlMetricsStore


class _ServerEngine(_Engine):
    """clickhouse-driver over the native protocol, with a small pool of clients."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        connect_timeout: float,
        send_receive_timeout: float,
        pool_size: int = 8,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self._kwargs: dict[str, Any] = {
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            # "default" always exists; our tables are always database-qualified, so the
            # connection works before ensure_schema() has created the hub database.
            "database": "default",
            "connect_timeout": connect_timeout,
            "send_receive_timeout": send_receive_timeout,
            "sync_request_timeout": connect_timeout,
            "settings": dict(settings or {}),
        }
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue(maxsize=pool_size)
        self.address = f"{host}:{port}"

    def _client(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            from clickhouse_driver import Client

            return Client(**self._kwargs)

    def _release(self, client: Any, *, broken: bool) -> None:
        if broken:
            client.disconnect()
            return
        try:
            self._pool.put_nowait(client)
        except queue.Full:
            client.disconnect()

    def _call(self, fn: Any) -> Any:
        from clickhouse_driver import errors as ch_errors

        client = self._client()
        broken = False
        try:
            return fn(client)
        except (
            ch_errors.NetworkError,
            ch_errors.SocketTimeoutError,
            ch_errors.UnexpectedPacketFromServerError,
            EOFError,
            OSError,
        ) as exc:
            broken = True
            raise MetricsStoreUnavailable(
                f"ClickHouse at {self.address} is unreachable: {exc}"
            ) from exc
        except ch_errors.Error as exc:
            # 202 too many simultaneous queries, 159 timeout, 209/210 socket trouble reported
            # by the server itself: transient, worth a retry by the caller.
            if getattr(exc, "code", None) in {159, 202, 209, 210}:
                broken = True
                raise MetricsStoreUnavailable(f"ClickHouse is overloaded: {exc}") from exc
            raise MetricsStoreError(f"ClickHouse query failed: {exc}") from exc
        finally:
            self._release(client, broken=broken)

    def execute(self, sql: str) -> None:
        self._call(lambda c: c.execute(sql))

    def query_columns(self, sql: str, ncols: int) -> list[list[Any]]:
        result = self._call(lambda c: c.execute(sql, columnar=True))
        if not result:
            return [[] for _ in range(ncols)]
        return [list(column) for column in result]

    def insert(self, table: str, columns: dict[str, Any], nrows: int) -> None:
        names = ", ".join(columns)
        data = [c.tolist() if hasattr(c, "tolist") else list(c) for c in columns.values()]
        self._call(
            lambda c: c.execute(f"INSERT INTO {table} ({names}) VALUES", data, columnar=True)
        )

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().disconnect()
            except queue.Empty:
                return


class ClickHouseServerMetricsStore(_SqlMetricsStore):
    """A ClickHouse server: ``clickhouse://user:password@host:port/db?connect_timeout=2``.

    ``cluster``: the name of a cluster in the servers' ``remote_servers`` (with ZooKeeper or
    ClickHouse Keeper, and the ``{shard}``/``{replica}`` macros): the schema is created on every
    node as replicated tables under ``Distributed`` ones (see ``sql``), and an insert returns
    once every shard has its rows (``insert_distributed_sync``)."""

    def __init__(
        self, url: str, *, database: str | None = None, pool_size: int = 8, cluster: str = ""
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "clickhouse":
            raise MetricsStoreError(f"not a clickhouse:// URL: {url!r}")
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        engine = _ServerEngine(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 9000,
            user=unquote(parsed.username or "default"),
            password=unquote(parsed.password or ""),
            connect_timeout=float(options.get("connect_timeout", 2)),
            send_receive_timeout=float(options.get("send_receive_timeout", 60)),
            pool_size=pool_size,
            settings={"insert_distributed_sync": 1} if cluster else None,
        )
        db = database or unquote(parsed.path.strip("/")) or DEFAULT_DATABASE
        super().__init__(engine, db, cluster=cluster)
