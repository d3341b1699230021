"""Metric points, system metrics and job log lines in ClickHouse.

One interface (:class:`MetricsStore`), two engines behind one URL (``HUB_CLICKHOUSE_URL``):

- ``chdb:///abs/path[?database=hub]`` -- ClickHouse embedded in this process (the default for
  ``make run``). chdb opens ONE database path per process, and a second process cannot open the
  same path, so every store object of a process shares one lazily opened session, guarded by a
  lock (see :class:`_ChdbEngine`).
- ``clickhouse://user:password@host:9000/db[?connect_timeout=2&send_receive_timeout=30]`` -- a
  ClickHouse server over the native protocol (clickhouse-driver), through a small pool of
  connections because a driver ``Client`` is not thread-safe.

The same SQL runs on both: the recent engine inside chdb and the old 18.16 server that the
tests start (no ``DateTime64``, no ``Map``, no server-side query parameters, no tuple
comparisons, no ``mutations_sync``). Values are therefore inlined as escaped literals by
:func:`_quote` / :func:`_num`, never by string formatting of user input.

Table design
============

``metric_points`` -- one row per point::

    run_id String, key String, step Int64, wall_time Float64, value Float64, version UInt64
    ENGINE = ReplacingMergeTree(version) ORDER BY (run_id, key, step)

- The sorting key ``(run_id, key, step)`` is the identity of a point, so a retried batch (the
  SDK resends after an outage) collapses to one row per step: rows with the same key are merged
  in the background, and every read uses ``FINAL`` so duplicates never show, even before that
  merge. Late or out-of-order steps need nothing special: the sort happens inside ClickHouse.
- ``version`` decides which row survives when one ``(run, key, step)`` is written twice with
  different values: **the latest write wins**. The adapter stamps each insert with a block of
  increasing versions taken from a nanosecond clock that never goes backwards in this process
  (row ``i`` of a batch gets ``base + i``), so a later row in the same batch beats an earlier
  one and a later batch beats an earlier batch. Across processes writing to one server the
  order is that of their clocks. A retried batch carries identical values, so which copy
  survives does not matter.
- ``wall_time`` is Float64 Unix seconds: 18.x has no ``DateTime64`` and ``DateTime`` has only
  whole seconds, too coarse for per-step timing; Float64 keeps microseconds for centuries and
  needs no conversion on either engine.
- System metrics (GPU utilisation, memory...) are ordinary series whose key starts ``system/``.

``job_log_lines`` -- ``(job_id, seq, time, stream, line)``, ``ReplacingMergeTree ORDER BY
(job_id, seq)``: the supervisor numbers lines per job, so a retried batch collapses the same
way and a tail is a range scan of the sorting key.

Schema changes are a list of :class:`Migration` applied in order by :meth:`ensure_schema` and
recorded in ``schema_migrations``; every statement is itself idempotent (``IF NOT EXISTS``), so
two processes racing through ``ensure_schema`` do no harm. Adding the profiler's operator table
later is one more entry in :data:`MIGRATIONS`.

Reads and downsampling protocol
===============================

:meth:`MetricsStore.series` answers many runs x keys in at most two queries, whatever their
number:

1. a cheap statistics query (no ``FINAL``: it reads only the sorting-key columns) gives each
   series' point count and x range inside the requested window;
2. series with at most ``buckets`` points come back at full resolution; the others are
   downsampled in the same single query: each series gets its own bucket width (looked up per
   row with ``transform`` over constant arrays), and each bucket returns the x, step and wall
   time of its last point, its last value, min, max and point count. A spike therefore survives
   in ``max``/``min`` whatever the zoom. A zoomed window (``x_min``/``x_max``) re-runs the same
   protocol on the window, so it comes back at full resolution once few enough points are in it.

Everything raises :class:`MetricsStoreUnavailable` when the engine cannot be reached (the API
answers 503 with ``Retry-After``) and :class:`MetricsStoreError` for everything else.
"""

from __future__ import annotations

import abc
import math
import os
import queue
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs, unquote, urlparse

__all__ = [
    "MIGRATIONS",
    "ChdbMetricsStore",
    "ClickHouseServerMetricsStore",
    "KeyStats",
    "LogLine",
    "MetricsStore",
    "MetricsStoreError",
    "MetricsStoreUnavailable",
    "Migration",
    "Series",
    "get_metrics_store",
    "metrics_store_from_url",
]

XAxis = Literal["step", "time"]
#: ``(run_id, key, step, wall_time, value)``
Point = tuple[str, str, int, float, float]
#: ``(job_id, seq, time, stream, line)``
LogRow = tuple[str, int, float, str, str]

DEFAULT_DATABASE = "hub"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --- errors ---------------------------------------------------------------------------------


class MetricsStoreError(Exception):
    """A query failed for a reason other than reachability (bad input, server-side error)."""


class MetricsStoreUnavailable(MetricsStoreError):
    """The engine cannot be reached now (refused, timed out, database held by another process).

    The API maps it to 503 with ``Retry-After: retry_after``; nothing was written by the failed
    call unless it was larger than one insert block, and a retry of it collapses anyway.
    """

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- values returned ------------------------------------------------------------------------


@dataclass
class Series:
    """One ``(run_id, key)`` series, columnar.

    At full resolution (``downsampled`` false) each index is one point and ``value`` is its
    value; ``min``/``max``/``count`` are ``None``. Downsampled, each index is one bucket:
    ``step``/``wall_time``/``value`` describe the bucket's last point (largest x) and
    ``min``/``max``/``count`` summarise the bucket. ``points`` is the number of points in the
    requested window (after de-duplication when full resolution, an upper bound otherwise).
    """

    run_id: str
    key: str
    x_axis: XAxis
    downsampled: bool = False
    points: int = 0
    step: list[int] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    min: list[float] | None = None
    max: list[float] | None = None
    count: list[int] | None = None

    @property
    def x(self) -> list[int] | list[float]:
        return self.step if self.x_axis == "step" else self.wall_time

    def __len__(self) -> int:
        return len(self.step)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "key": self.key,
            "x_axis": self.x_axis,
            "downsampled": self.downsampled,
            "points": self.points,
            "step": self.step,
            "wall_time": self.wall_time,
            "value": self.value,
        }
        if self.downsampled:
            out.update(min=self.min, max=self.max, count=self.count)
        return out


class KeyStats(NamedTuple):
    """What a run logged under one key (feeds the run page and the search summaries)."""

    key: str
    count: int
    first_step: int
    last_step: int
    last_value: float
    min_value: float
    max_value: float
    last_wall_time: float


class LogLine(NamedTuple):
    seq: int
    time: float
    stream: str
    line: str


@dataclass(frozen=True)
class Migration:
    """One schema step. ``statements`` are formatted with ``db`` and must be idempotent."""

    id: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "metric_points",
        (
            """CREATE TABLE IF NOT EXISTS {db}.metric_points (
                run_id String,
                key String,
                step Int64,
                wall_time Float64,
                value Float64,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (run_id, key, step)""",
        ),
    ),
    Migration(
        2,
        "job_log_lines",
        (
            """CREATE TABLE IF NOT EXISTS {db}.job_log_lines (
                job_id String,
                seq UInt64,
                time Float64,
                stream String,
                line String
            ) ENGINE = ReplacingMergeTree
            ORDER BY (job_id, seq)""",
        ),
    ),
    Migration(
        3,
        "profile_ops",
        (
            # One row per operator of a profile (a profiling job's operator table). Keyed by
            # (profile_id, op, shapes) so a re-sent table collapses; profiles of two commits
            # are compared by joining on op.
            """CREATE TABLE IF NOT EXISTS {db}.profile_ops (
                profile_id String,
                op String,
                shapes String,
                calls UInt64,
                self_us Float64,
                total_us Float64,
                flops Float64,
                self_memory_bytes Int64
            ) ENGINE = ReplacingMergeTree
            ORDER BY (profile_id, op, shapes)""",
        ),
    ),
)

_POINT_COLUMNS = ("run_id", "key", "step", "wall_time", "value", "version")
_LOG_COLUMNS = ("job_id", "seq", "time", "stream", "line")
_OP_COLUMNS = ("profile_id", "op", "shapes", "calls", "self_us", "total_us", "flops", "self_memory_bytes")


# --- SQL literals ---------------------------------------------------------------------------


def _quote(text: str) -> str:
    """A ClickHouse string literal: backslash and quote escaped, the only two that matter."""
    if not isinstance(text, str):
        raise MetricsStoreError(f"expected a string, got {type(text).__name__}")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _num(value: float | int) -> str:
    """A finite numeric literal (ranges and bucket widths); NaN/inf are not valid bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetricsStoreError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return str(int(value))
    if not math.isfinite(value):
        raise MetricsStoreError(f"expected a finite number, got {value!r}")
    return repr(float(value))


def _str_list(values: Iterable[str]) -> str:
    return ", ".join(_quote(v) for v in values)


def _check_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise MetricsStoreError(f"invalid database name {name!r}")
    return name


class _VersionClock:
    """Hands out blocks of strictly increasing insert versions (nanoseconds, never backwards)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0

    def block(self, n: int) -> int:
        with self._lock:
            base = max(time.time_ns(), self._next)
            self._next = base + max(n, 1)
            return base


_VERSIONS = _VersionClock()


# --- the interface --------------------------------------------------------------------------


class MetricsStore(abc.ABC):
    """What the tracking and jobs services need from the time-series store."""

    @abc.abstractmethod
    def ensure_schema(self) -> None:
        """Create the database and apply pending :data:`MIGRATIONS` (idempotent)."""

    @abc.abstractmethod
    def ping(self) -> bool:
        """True when the engine answers a trivial query."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections (the chdb session closes when its last store closes)."""

    @abc.abstractmethod
    def insert_points(self, rows: Sequence[Point]) -> int:
        """Insert ``(run_id, key, step, wall_time, value)`` rows in ONE insert; returns count.

        All-or-nothing up to ClickHouse's insert block (1,048,576 rows); a larger call that
        fails midway may leave some blocks written, which the caller's retry collapses."""

    @abc.abstractmethod
    def insert_columns(
        self,
        *,
        run_id: str | Sequence[str],
        key: str | Sequence[str],
        step: Sequence[int],
        wall_time: Sequence[float],
        value: Sequence[float],
    ) -> int:
        """Columnar insert (the fast path: no per-row tuples). A ``str`` run_id/key applies to
        every row. Lists or numpy arrays are accepted."""

    @abc.abstractmethod
    def series(
        self,
        run_ids: Sequence[str],
        keys: Sequence[str],
        *,
        x: XAxis = "step",
        buckets: int | None = None,
        x_min: float | None = None,
        x_max: float | None = None,
    ) -> dict[tuple[str, str], Series]:
        """Every requested ``(run_id, key)`` (empty when nothing was logged), see module doc."""

    @abc.abstractmethod
    def keys(self, run_id: str) -> list[KeyStats]:
        """Keys a run logged, with counts and last/min/max values, sorted by key."""

    @abc.abstractmethod
    def key_stats(self, run_ids: Sequence[str]) -> dict[str, list[KeyStats]]:
        """:meth:`keys` for many runs in one query (search-index summaries, comparisons)."""

    @abc.abstractmethod
    def export_rows(
        self, run_id: str, keys: Sequence[str] | None = None, *, batch_size: int = 50_000
    ) -> Iterator[list[tuple[str, int, float, float]]]:
        """Stream a run at full resolution as batches of ``(key, step, wall_time, value)``."""

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> None:
        """Delete every point of a run (waits until the deletion is visible)."""

    @abc.abstractmethod
    def insert_log_lines(self, rows: Sequence[LogRow]) -> int:
        """Insert ``(job_id, seq, time, stream, line)`` rows; retries collapse on ``seq``."""

    @abc.abstractmethod
    def log_lines(
        self,
        job_id: str,
        *,
        after_seq: int | None = None,
        limit: int = 1000,
        streams: Sequence[str] | None = None,
        time_min: float | None = None,
        time_max: float | None = None,
    ) -> list[LogLine]:
        """Lines of a job in ``seq`` order, after ``after_seq`` (follow mode), at most ``limit``."""

    @abc.abstractmethod
    def log_tail(self, job_id: str, n: int = 100) -> list[LogLine]:
        """The last ``n`` lines of a job, oldest first."""

    @abc.abstractmethod
    def delete_job_logs(self, job_id: str) -> None:
        """Delete a job's log lines (waits until the deletion is visible)."""

    @abc.abstractmethod
    def insert_profile_ops(self, profile_id: str, rows: Sequence[dict[str, Any]]) -> int:
        """Store a profile's operator table (``op``, ``shapes``, ``calls``, ``self_us``,
        ``total_us``, ``flops``, ``self_memory_bytes`` per row); a re-send collapses."""

    @abc.abstractmethod
    def profile_ops(self, profile_ids: Sequence[str], *, limit: int = 200) -> dict[str, list[dict[str, Any]]]:
        """The top ``limit`` operators by self time of each profile, aggregated over shapes."""

    @abc.abstractmethod
    def drop_database(self) -> None:
        """Drop this store's database (tests, and a full reset)."""


# --- engines: the only code that knows a client library --------------------------------------


class _Engine(abc.ABC):
    """Run SQL and columnar inserts on one engine; translate its errors into ours."""

    @abc.abstractmethod
    def execute(self, sql: str) -> None: ...

    @abc.abstractmethod
    def query_columns(self, sql: str, ncols: int) -> list[list[Any]]: ...

    @abc.abstractmethod
    def insert(self, table: str, columns: dict[str, Any], nrows: int) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class _ChdbEngine(_Engine):
    """The process-wide chdb session.

    chdb can hold one database path per process (opening a second path fails with "already
    initialized with path ...") and another process cannot open the same path, so all stores
    in a process share one session per path: opened lazily on first use, reference counted,
    closed when the last store closes. A lock serialises statements because the embedded
    server keeps per-session query state.
    """

    _lock = threading.RLock()
    _session: Any = None
    _path: str | None = None
    _refs = 0

    def __init__(self, path: str) -> None:
        self.path = path
        self._acquired = False

    # The session is shared class state, so these are classmethod-like on purpose.
    @classmethod
    def open_path(cls) -> str | None:
        """The chdb path this process has open, if any (tests reuse it: one per process)."""
        with cls._lock:
            return cls._path if cls._session is not None else None

    def _session_or_open(self) -> Any:
        cls = type(self)
        with cls._lock:
            if not self._acquired:
                if cls._session is None:
                    try:
                        from chdb import session as chdb_session
                    except ImportError as exc:  # pragma: no cover - chdb is a dependency
                        raise MetricsStoreError("chdb is not installed") from exc
                    os.makedirs(self.path, exist_ok=True)
                    try:
                        cls._session = chdb_session.Session(self.path)
                    except Exception as exc:
                        # Most likely another process (a second `hub serve`, a CLI) holds it.
                        raise MetricsStoreUnavailable(
                            f"cannot open chdb database at {self.path}: {exc}"
                        ) from exc
                    cls._path = self.path
                elif cls._path != self.path:
                    raise MetricsStoreError(
                        f"this process already has chdb open at {cls._path}; chdb allows one "
                        f"database path per process (asked for {self.path})"
                    )
                cls._refs += 1
                self._acquired = True
            return cls._session

    def _run(self, sql: str, fmt: str) -> Any:
        with type(self)._lock:
            session = self._session_or_open()
            try:
                return session.query(sql, fmt)
            except Exception as exc:
                raise MetricsStoreError(f"chdb query failed: {exc}") from exc

    def execute(self, sql: str) -> None:
        self._run(sql, "CSV")

    def query_columns(self, sql: str, ncols: int) -> list[list[Any]]:
        table = self._run(sql, "ArrowTable")
        if table.num_rows == 0:
            return [[] for _ in range(ncols)]
        return [column.to_pylist() for column in table.columns]

    def insert(self, table: str, columns: dict[str, Any], nrows: int) -> None:
        import pyarrow as pa  # chdb depends on pyarrow

        arrow_table = pa.table(columns)  # noqa: F841 - read by name by chdb's Python() below
        names = ", ".join(columns)
        # chdb reads the local variable `arrow_table` straight from this frame: no
        # serialisation at all, measured ~2x faster than feeding ArrowStream/TSV bytes.
        self._run(f"INSERT INTO {table} ({names}) SELECT {names} FROM Python(arrow_table)", "CSV")

    def close(self) -> None:
        cls = type(self)
        with cls._lock:
            if not self._acquired:
                return
            self._acquired = False
            cls._refs -= 1
            if cls._refs <= 0 and cls._session is not None:
                try:
                    cls._session.close()
                finally:
                    cls._session, cls._path, cls._refs = None, None, 0


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


# --- the shared SQL implementation --------------------------------------------------------------


def _broadcast(value: str | Sequence[str], n: int, name: str) -> Any:
    if isinstance(value, str):
        return [value] * n
    if len(value) != n:
        raise MetricsStoreError(f"column {name} has {len(value)} values, expected {n}")
    return value


class _SqlMetricsStore(MetricsStore):
    """:class:`MetricsStore` in SQL both engines accept; subclasses only build the engine."""

    def __init__(self, engine: _Engine, database: str) -> None:
        self._engine = engine
        self.database = _check_identifier(database)
        self._points = f"{self.database}.metric_points"
        self._logs = f"{self.database}.job_log_lines"
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    # -- lifecycle --

    def ensure_schema(self) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            db = self.database
            self._engine.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
            self._engine.execute(
                f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
                "(id UInt32, name String, applied_at DateTime DEFAULT now()) "
                "ENGINE = ReplacingMergeTree ORDER BY id"
            )
            (applied,) = self._engine.query_columns(
                f"SELECT DISTINCT id FROM {db}.schema_migrations", 1
            )
            done = set(applied)
            for migration in MIGRATIONS:
                if migration.id in done:
                    continue
                for statement in migration.statements:
                    self._engine.execute(statement.format(db=db))
                # Through the columnar insert path: clickhouse-driver waits forever on an
                # INSERT with inline VALUES against 18.x servers.
                self._engine.insert(
                    f"{db}.schema_migrations", {"id": [migration.id], "name": [migration.name]}, 1
                )
            self._schema_ready = True

    def ping(self) -> bool:
        try:
            self._engine.query_columns("SELECT 1", 1)
        except MetricsStoreError:
            return False
        return True

    def close(self) -> None:
        self._engine.close()

    def drop_database(self) -> None:
        self._engine.execute(f"DROP DATABASE IF EXISTS {self.database}")
        self._schema_ready = False

    # -- writes --

    def insert_points(self, rows: Sequence[Point]) -> int:
        if not rows:
            return 0
        try:
            run_id, key, step, wall_time, value = zip(*rows, strict=True)
        except ValueError as exc:
            raise MetricsStoreError(
                f"points must be (run_id, key, step, wall_time, value): {exc}"
            ) from exc
        return self.insert_columns(
            run_id=run_id, key=key, step=step, wall_time=wall_time, value=value
        )

    def insert_columns(
        self,
        *,
        run_id: str | Sequence[str],
        key: str | Sequence[str],
        step: Sequence[int],
        wall_time: Sequence[float],
        value: Sequence[float],
    ) -> int:
        import numpy as np

        n = len(step)
        if n == 0:
            return 0
        if len(wall_time) != n or len(value) != n:
            raise MetricsStoreError("step, wall_time and value must have the same length")
        try:
            columns = {
                "run_id": _broadcast(run_id, n, "run_id"),
                "key": _broadcast(key, n, "key"),
                "step": np.asarray(step, dtype=np.int64),
                "wall_time": np.asarray(wall_time, dtype=np.float64),
                "value": np.asarray(value, dtype=np.float64),
                "version": np.arange(n, dtype=np.uint64) + np.uint64(_VERSIONS.block(n)),
            }
        except (TypeError, ValueError, OverflowError) as exc:
            raise MetricsStoreError(f"invalid metric points: {exc}") from exc
        self._engine.insert(self._points, columns, n)
        return n

    def insert_log_lines(self, rows: Sequence[LogRow]) -> int:
        if not rows:
            return 0
        try:
            job_id, seq, t, stream, line = zip(*rows, strict=True)
            columns = {
                "job_id": [str(v) for v in job_id],
                "seq": [int(v) for v in seq],
                "time": [float(v) for v in t],
                "stream": [str(v) for v in stream],
                "line": [str(v) for v in line],
            }
        except (TypeError, ValueError) as exc:
            raise MetricsStoreError(
                f"log lines must be (job_id, seq, time, stream, line): {exc}"
            ) from exc
        self._engine.insert(self._logs, columns, len(rows))
        return len(rows)

    def insert_profile_ops(self, profile_id: str, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        try:
            columns = {
                "profile_id": [str(profile_id)] * len(rows),
                "op": [str(r["op"])[:1000] for r in rows],
                "shapes": [str(r.get("shapes", ""))[:2000] for r in rows],
                "calls": [max(0, int(r.get("calls", 0))) for r in rows],
                "self_us": [float(r.get("self_us", 0.0)) for r in rows],
                "total_us": [float(r.get("total_us", 0.0)) for r in rows],
                "flops": [float(r.get("flops") or 0.0) for r in rows],
                "self_memory_bytes": [int(r.get("self_memory_bytes") or 0) for r in rows],
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise MetricsStoreError(f"bad operator row: {exc}") from exc
        self._engine.insert(f"{self.database}.profile_ops", columns, len(rows))
        return len(rows)

    def profile_ops(self, profile_ids: Sequence[str], *, limit: int = 200) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for pid in profile_ids:
            cols = self._engine.query_columns(
                f"SELECT op, sum(calls), sum(self_us), sum(total_us), sum(flops), sum(self_memory_bytes) "
                f"FROM {self.database}.profile_ops FINAL WHERE profile_id = {_quote(pid)} "
                f"GROUP BY op ORDER BY sum(self_us) DESC LIMIT {max(1, int(limit))}",
                6,
            )
            out[pid] = [
                {"op": op, "calls": int(c), "self_us": float(su), "total_us": float(tu), "flops": float(fl),
                 "self_memory_bytes": int(mem)}
                for op, c, su, tu, fl, mem in zip(*cols, strict=True)
            ]
        return out

    def _delete_where(self, table: str, condition: str, timeout: float = 60.0) -> None:
        self._engine.execute(f"ALTER TABLE {self.database}.{table} DELETE WHERE {condition}")
        # 18.x has no mutations_sync: wait for the mutation like the newer setting would.
        deadline = time.monotonic() + timeout
        while True:
            (pending,) = self._engine.query_columns(
                "SELECT count() FROM system.mutations WHERE database = "
                f"{_quote(self.database)} AND table = {_quote(table)} AND is_done = 0",
                1,
            )
            if not pending or pending[0] == 0:
                return
            if time.monotonic() > deadline:
                raise MetricsStoreError(f"deletion from {table} still running after {timeout}s")
            time.sleep(0.05)

    def delete_run(self, run_id: str) -> None:
        self._delete_where("metric_points", f"run_id = {_quote(run_id)}")

    def delete_job_logs(self, job_id: str) -> None:
        self._delete_where("job_log_lines", f"job_id = {_quote(job_id)}")

    # -- reads --

    def series(
        self,
        run_ids: Sequence[str],
        keys: Sequence[str],
        *,
        x: XAxis = "step",
        buckets: int | None = None,
        x_min: float | None = None,
        x_max: float | None = None,
    ) -> dict[tuple[str, str], Series]:
        if x not in ("step", "time"):
            raise MetricsStoreError(f"x must be 'step' or 'time', not {x!r}")
        if buckets is not None and buckets < 1:
            raise MetricsStoreError("buckets must be a positive integer")
        runs = list(dict.fromkeys(run_ids))
        names = list(dict.fromkeys(keys))
        out = {(r, k): Series(run_id=r, key=k, x_axis=x) for r in runs for k in names}
        if not out:
            return out
        x_col = "step" if x == "step" else "wall_time"
        where = f"run_id IN ({_str_list(runs)}) AND key IN ({_str_list(names)})"
        if x_min is not None:
            where += f" AND {x_col} >= {_num(x_min)}"
        if x_max is not None:
            where += f" AND {x_col} <= {_num(x_max)}"

        if buckets is None:
            self._read_full(out, where, x_col)
            return out

        stats = self._engine.query_columns(
            f"SELECT run_id, key, count(), min({x_col}), max({x_col}) "
            f"FROM {self._points} WHERE {where} GROUP BY run_id, key",
            5,
        )
        widths: dict[tuple[str, str], tuple[float, float]] = {}
        for run_id, key, n, lo, hi in zip(*stats, strict=True):
            out[(run_id, key)].points = int(n)
            if n > buckets and hi > lo:
                if x == "step":
                    widths[(run_id, key)] = (lo, math.ceil((hi - lo + 1) / buckets))
                else:
                    widths[(run_id, key)] = (lo, (hi - lo) / buckets)
        if not widths:
            self._read_full(out, where, x_col)
            return out
        self._read_buckets(out, where, x_col, runs, names, widths, buckets)
        return out

    def _read_full(self, out: dict[tuple[str, str], Series], where: str, x_col: str) -> None:
        cols = self._engine.query_columns(
            f"SELECT run_id, key, step, wall_time, value FROM {self._points} FINAL "
            f"WHERE {where} ORDER BY run_id, key, {x_col}, step",
            5,
        )
        for (run_id, key), lo, hi in _runs_of(cols[0], cols[1]):
            s = out[(run_id, key)]
            s.downsampled = False
            s.step = cols[2][lo:hi]
            s.wall_time = cols[3][lo:hi]
            s.value = cols[4][lo:hi]
            s.points = hi - lo
            s.min = s.max = s.count = None

    def _read_buckets(
        self,
        out: dict[tuple[str, str], Series],
        where: str,
        x_col: str,
        runs: list[str],
        names: list[str],
        widths: dict[tuple[str, str], tuple[float, float]],
        buckets: int,
    ) -> None:
        # Per-series (lo, width); width 0 means "full resolution": the bucket is the step.
        is_step = x_col == "step"
        cast = "toInt64" if is_step else "toFloat64"
        params = [widths.get((r, k), (0, 0)) for r in runs for k in names]
        if len(set(params)) == 1:
            lo_expr, w_expr = (f"{cast}({_num(v)})" for v in params[0])
        else:
            # Row -> series index through two hash lookups on constant arrays (cheap per row),
            # then the series' lo/width by index: one query for any number of series.
            run_idx = (
                f"transform(run_id, [{_str_list(runs)}], "
                f"[{', '.join(str(i) for i in range(len(runs)))}], 0)"
            )
            key_idx = (
                f"transform(key, [{_str_list(names)}], "
                f"[{', '.join(str(i) for i in range(len(names)))}], 0)"
            )
            sid = f"({run_idx} * {len(names)} + {key_idx} + 1)"
            lo_expr = f"{cast}(arrayElement([{', '.join(_num(p[0]) for p in params)}], {sid}))"
            w_expr = f"{cast}(arrayElement([{', '.join(_num(p[1]) for p in params)}], {sid}))"
        # `if` evaluates both branches on whole columns, so the width is never 0 in the
        # division even for full-resolution series (where the result is discarded).
        if is_step:
            bucket = "if(_w = 0, step, intDiv(step - _lo, if(_w = 0, 1, _w)))"
        else:
            # The last point (x == hi) would open bucket number `buckets`: clamp it.
            bucket = (
                "if(_w = 0, step, least(toInt64(floor((wall_time - _lo) / if(_w = 0, 1., _w))), "
                f"{buckets - 1}))"
            )
        # The bucket's last point is the one with the largest x. Scalar argMax only: a tuple
        # second argument (to break wall-time ties by step) measured ~8x slower.
        if is_step:
            last_step, last_time = "_x", "argMax(wall_time, step)"
        else:
            last_step, last_time = "argMax(step, wall_time)", "_x"
        cols = self._engine.query_columns(
            f"WITH {lo_expr} AS _lo, {w_expr} AS _w "
            f"SELECT run_id, key, {bucket} AS _b, max({x_col}) AS _x, "
            f"{last_step}, {last_time}, argMax(value, {x_col}), min(value), max(value), count() "
            f"FROM {self._points} FINAL WHERE {where} "
            "GROUP BY run_id, key, _b ORDER BY run_id, key, _x, _b",
            10,
        )
        for (run_id, key), lo, hi in _runs_of(cols[0], cols[1]):
            s = out[(run_id, key)]
            s.step = cols[4][lo:hi]
            s.wall_time = cols[5][lo:hi]
            s.value = cols[6][lo:hi]
            if (run_id, key) in widths:
                s.downsampled = True
                s.min = cols[7][lo:hi]
                s.max = cols[8][lo:hi]
                s.count = cols[9][lo:hi]
                s.points = sum(s.count)  # exact: counted after FINAL collapsed duplicates
            else:
                s.points = hi - lo

    def keys(self, run_id: str) -> list[KeyStats]:
        return self.key_stats([run_id]).get(run_id, [])

    def key_stats(self, run_ids: Sequence[str]) -> dict[str, list[KeyStats]]:
        runs = list(dict.fromkeys(run_ids))
        result: dict[str, list[KeyStats]] = {r: [] for r in runs}
        if not runs:
            return result
        cols = self._engine.query_columns(
            "SELECT run_id, key, count(), min(step), max(step), argMax(value, step), "
            "min(value), max(value), max(wall_time) "
            f"FROM {self._points} FINAL WHERE run_id IN ({_str_list(runs)}) "
            "GROUP BY run_id, key ORDER BY run_id, key",
            9,
        )
        for row in zip(*cols, strict=True):
            result[row[0]].append(
                KeyStats(row[1], int(row[2]), int(row[3]), int(row[4]), *map(float, row[5:]))
            )
        return result

    def export_rows(
        self, run_id: str, keys: Sequence[str] | None = None, *, batch_size: int = 50_000
    ) -> Iterator[list[tuple[str, int, float, float]]]:
        # Keyset pagination on the sorting key: each batch is its own short query, so a slow
        # HTTP consumer never holds a server connection or the chdb lock between batches.
        base = f"run_id = {_quote(run_id)}"
        if keys is not None:
            if not keys:
                return
            base += f" AND key IN ({_str_list(keys)})"
        after: tuple[str, int] | None = None
        while True:
            where = base
            if after is not None:
                k, s = after
                # No tuple comparison in 18.x: spell (key, step) > (k, s) out.
                where += f" AND (key > {_quote(k)} OR (key = {_quote(k)} AND step > {_num(s)}))"
            cols = self._engine.query_columns(
                f"SELECT key, step, wall_time, value FROM {self._points} FINAL "
                f"WHERE {where} ORDER BY key, step LIMIT {int(batch_size)}",
                4,
            )
            batch = list(zip(*cols, strict=True))
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            after = (batch[-1][0], batch[-1][1])

    def log_lines(
        self,
        job_id: str,
        *,
        after_seq: int | None = None,
        limit: int = 1000,
        streams: Sequence[str] | None = None,
        time_min: float | None = None,
        time_max: float | None = None,
    ) -> list[LogLine]:
        where = f"job_id = {_quote(job_id)}"
        if after_seq is not None:
            where += f" AND seq > {_num(int(after_seq))}"
        if streams is not None:
            if not streams:
                return []
            where += f" AND stream IN ({_str_list(streams)})"
        if time_min is not None:
            where += f" AND time >= {_num(time_min)}"
        if time_max is not None:
            where += f" AND time <= {_num(time_max)}"
        cols = self._engine.query_columns(
            f"SELECT seq, time, stream, line FROM {self._logs} FINAL WHERE {where} "
            f"ORDER BY seq LIMIT {max(0, int(limit))}",
            4,
        )
        return [LogLine(*row) for row in zip(*cols, strict=True)]

    def log_tail(self, job_id: str, n: int = 100) -> list[LogLine]:
        cols = self._engine.query_columns(
            f"SELECT seq, time, stream, line FROM {self._logs} FINAL "
            f"WHERE job_id = {_quote(job_id)} ORDER BY seq DESC LIMIT {max(0, int(n))}",
            4,
        )
        return [LogLine(*row) for row in reversed(list(zip(*cols, strict=True)))]


def _runs_of(run_col: list[str], key_col: list[str]) -> Iterator[tuple[tuple[str, str], int, int]]:
    """``((run_id, key), start, end)`` for each run of equal pairs in result columns sorted by
    (run_id, key)."""
    n = len(run_col)
    start = 0
    while start < n:
        pair = (run_col[start], key_col[start])
        end = start + 1
        while end < n and run_col[end] == pair[0] and key_col[end] == pair[1]:
            end += 1
        yield pair, start, end
        start = end


# --- the two configurations ----------------------------------------------------------------


class ChdbMetricsStore(_SqlMetricsStore):
    """Embedded ClickHouse at ``path`` (one path per process; see :class:`_ChdbEngine`)."""

    def __init__(self, path: str, *, database: str = DEFAULT_DATABASE) -> None:
        self.path = os.path.abspath(path)
        super().__init__(_ChdbEngine(self.path), database)

    @staticmethod
    def open_path() -> str | None:
        """The chdb path already open in this process, if any."""
        return _ChdbEngine.open_path()


class ClickHouseServerMetricsStore(_SqlMetricsStore):
    """A ClickHouse server: ``clickhouse://user:password@host:port/db?connect_timeout=2``."""

    def __init__(self, url: str, *, database: str | None = None, pool_size: int = 8) -> None:
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
        )
        db = database or unquote(parsed.path.strip("/")) or DEFAULT_DATABASE
        super().__init__(engine, db)


def metrics_store_from_url(url: str) -> MetricsStore:
    """Pick the engine by scheme: ``chdb:///abs/path[?database=x]``, ``chdb://:memory:``
    (a throw-away temporary path) or ``clickhouse://...``."""
    parsed = urlparse(url)
    if parsed.scheme == "clickhouse":
        return ClickHouseServerMetricsStore(url)
    if parsed.scheme == "chdb":
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        database = options.get("database", DEFAULT_DATABASE)
        if parsed.netloc == ":memory:":
            import tempfile

            # A private temporary directory rather than chdb's ":memory:" so that the same
            # MergeTree tables and migrations apply unchanged.
            return ChdbMetricsStore(tempfile.mkdtemp(prefix="hub-chdb-"), database=database)
        path = unquote(parsed.path)
        if parsed.netloc or not path.startswith("/"):
            raise MetricsStoreError(f"chdb URL needs an absolute path (chdb:///abs/path): {url!r}")
        return ChdbMetricsStore(path, database=database)
    raise MetricsStoreError(f"HUB_CLICKHOUSE_URL: unsupported scheme {parsed.scheme!r}")


_default_store: MetricsStore | None = None
_default_pid = 0
_default_lock = threading.Lock()


def get_metrics_store() -> MetricsStore:
    """The process-wide store for ``settings.HUB_CLICKHOUSE_URL`` (created on first use; the
    schema is ensured then). Django is imported here only, so this module stays importable
    without it. A forked child (gunicorn, Celery prefork) builds its own: sockets and the chdb
    session must not be shared across a fork."""
    global _default_store, _default_pid
    with _default_lock:
        if _default_store is None or _default_pid != os.getpid():
            from django.conf import settings

            store = metrics_store_from_url(settings.HUB_CLICKHOUSE_URL)
            try:
                store.ensure_schema()
            except BaseException:
                store.close()  # not cached: the next request retries
                raise
            _default_store, _default_pid = store, os.getpid()
        return _default_store
