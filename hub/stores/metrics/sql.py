"""The SQL both engines accept, the schema and its migrations: one :class:`MetricsStore`
implementation (:class:`_SqlMetricsStore`) over an :class:`_Engine` that only runs SQL.

The same SQL runs on both engines: the recent engine inside chdb and the old 18.16 server
that the tests start (no ``DateTime64``, no ``Map``, no server-side query parameters, no
tuple comparisons, no ``mutations_sync``). Values are therefore inlined as escaped literals by
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
two processes racing through ``ensure_schema`` do no harm. A table is declared once
(:class:`Table`) and :func:`table_ddl` writes its DDL for one of two layouts:

- single node (the default): ``ReplacingMergeTree`` tables under the names above;
- a cluster (``HUB_CLICKHOUSE_CLUSTER``): every statement ``ON CLUSTER``; each table becomes
  ``<name>_local``, a ``ReplicatedReplacingMergeTree`` (ZooKeeper path per ``{shard}``, replica
  ``{replica}``, macros from the servers' config), and ``<name>`` a ``Distributed`` table over
  them, sharded by the identity's first column (run, job, profile), so every copy of a row lands
  on one shard and ``FINAL`` still collapses it. Every read and insert names ``<name>`` and runs
  unchanged in both layouts; inserts are synchronous (``insert_distributed_sync``), so a read
  after a write sees it, as on one node. Adding the profiler's operator table
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
"""

from __future__ import annotations

import abc
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hub.stores.metrics.base import (
    KeyStats,
    LogLine,
    LogRow,
    MetricsStore,
    MetricsStoreError,
    Point,
    Series,
    XAxis,
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Table:
    """A ``ReplacingMergeTree`` table, written out by :func:`table_ddl` for either layout."""

    name: str
    columns: tuple[str, ...]  # "run_id String", ...
    order_by: tuple[str, ...]
    version: str = ""  # ReplacingMergeTree's version column; empty: the last inserted wins
    # The Distributed table's sharding key: the identity's first column, so duplicates meet.
    shard_by: str = ""


@dataclass(frozen=True)
class Migration:
    """One schema step. Each statement is a :class:`Table` (created for the configured layout) or
    SQL formatted with ``db``; all must be idempotent."""

    id: int
    name: str
    statements: tuple[Table | str, ...]


def table_ddl(table: Table, db: str, cluster: str = "") -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` statements for ``table`` in database ``db``: one
    ``ReplacingMergeTree`` table, or (``cluster`` named) a replicated local table on every node
    and a ``Distributed`` table of the table's own name over them."""
    columns = ",\n    ".join(table.columns)
    order = ", ".join(table.order_by)
    if not cluster:
        engine = f"ReplacingMergeTree({table.version})" if table.version else "ReplacingMergeTree"
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.{table.name} (\n    {columns}\n) "
            f"ENGINE = {engine}\nORDER BY ({order})"
        ]
    _check_identifier(cluster)
    local = f"{table.name}_local"
    version = f", {table.version}" if table.version else ""
    path = _quote(f"/clickhouse/tables/{{shard}}/{db}/{local}")
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {cluster} (\n    {columns}\n) "
        f"ENGINE = ReplicatedReplacingMergeTree({path}, '{{replica}}'{version})\n"
        f"ORDER BY ({order})",
        f"CREATE TABLE IF NOT EXISTS {db}.{table.name} ON CLUSTER {cluster} (\n    {columns}\n) "
        f"ENGINE = Distributed({cluster}, {db}, {local}, cityHash64({table.shard_by}))",
    ]


def schema_migrations_ddl(db: str, cluster: str = "") -> str:
    """The bookkeeping table: per node, or (cluster) one replicated table shared by every node
    (one ZooKeeper path for all shards), so a migration is recorded once for the cluster."""
    columns = "(id UInt32, name String, applied_at DateTime DEFAULT now())"
    if not cluster:
        return (
            f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations {columns} "
            "ENGINE = ReplacingMergeTree ORDER BY id"
        )
    path = _quote(f"/clickhouse/tables/all/{db}/schema_migrations")
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations ON CLUSTER {_check_identifier(cluster)} "
        f"{columns} ENGINE = ReplicatedReplacingMergeTree({path}, '{{shard}}-{{replica}}') "
        "ORDER BY id"
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "metric_points",
        (
            Table(
                "metric_points",
                (
                    "run_id String",
                    "key String",
                    "step Int64",
                    "wall_time Float64",
                    "value Float64",
                    "version UInt64",
                ),
                order_by=("run_id", "key", "step"),
                version="version",
                shard_by="run_id",
            ),
        ),
    ),
    Migration(
        2,
        "job_log_lines",
        (
            Table(
                "job_log_lines",
                ("job_id String", "seq UInt64", "time Float64", "stream String", "line String"),
                order_by=("job_id", "seq"),
                shard_by="job_id",
            ),
        ),
    ),
    Migration(
        3,
        "profile_ops",
        (
            # One row per operator of a profile (a profiling job's operator table). Keyed by
            # (profile_id, op, shapes) so a re-sent table collapses; profiles of two commits
            # are compared by joining on op.
            Table(
                "profile_ops",
                (
                    "profile_id String",
                    "op String",
                    "shapes String",
                    "calls UInt64",
                    "self_us Float64",
                    "total_us Float64",
                    "flops Float64",
                    "self_memory_bytes Int64",
                ),
                order_by=("profile_id", "op", "shapes"),
                shard_by="profile_id",
            ),
        ),
    ),
)

_POINT_COLUMNS = ("run_id", "key", "step", "wall_time", "value", "version")
_LOG_COLUMNS = ("job_id", "seq", "time", "stream", "line")
_OP_COLUMNS = (
    "profile_id",
    "op",
    "shapes",
    "calls",
    "self_us",
    "total_us",
    "flops",
    "self_memory_bytes",
)


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


# --- the shared SQL implementation --------------------------------------------------------------


def _broadcast(value: str | Sequence[str], n: int, name: str) -> Any:
    if isinstance(value, str):
        return [value] * n
    if len(value) != n:
        raise MetricsStoreError(f"column {name} has {len(value)} values, expected {n}")
    return value


class _SqlMetricsStore(MetricsStore):
    """:class:`MetricsStore` in SQL both engines accept; subclasses only build the engine."""

    def __init__(self, engine: _Engine, database: str, *, cluster: str = "") -> None:
        self._engine = engine
        self.database = _check_identifier(database)
        self.cluster = _check_identifier(cluster) if cluster else ""
        self._on_cluster = f" ON CLUSTER {self.cluster}" if self.cluster else ""
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
            self._engine.execute(f"CREATE DATABASE IF NOT EXISTS {db}{self._on_cluster}")
            self._engine.execute(schema_migrations_ddl(db, self.cluster))
            (applied,) = self._engine.query_columns(
                f"SELECT DISTINCT id FROM {db}.schema_migrations", 1
            )
            done = set(applied)
            for migration in MIGRATIONS:
                if migration.id in done:
                    continue
                for statement in migration.statements:
                    if isinstance(statement, Table):
                        for sql in table_ddl(statement, db, self.cluster):
                            self._engine.execute(sql)
                    else:
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
        self._engine.execute(f"DROP DATABASE IF EXISTS {self.database}{self._on_cluster}")
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

    def profile_ops(
        self, profile_ids: Sequence[str], *, limit: int = 200
    ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for pid in profile_ids:
            cols = self._engine.query_columns(
                f"SELECT op, sum(calls), sum(self_us), sum(total_us), sum(flops), sum(self_memory_bytes) "
                f"FROM {self.database}.profile_ops FINAL WHERE profile_id = {_quote(pid)} "
                f"GROUP BY op ORDER BY sum(self_us) DESC LIMIT {max(1, int(limit))}",
                6,
            )
            out[pid] = [
                {
                    "op": op,
                    "calls": int(c),
                    "self_us": float(su),
                    "total_us": float(tu),
                    "flops": float(fl),
                    "self_memory_bytes": int(mem),
                }
                for op, c, su, tu, fl, mem in zip(*cols, strict=True)
            ]
        return out

    def _delete_where(self, table: str, condition: str, timeout: float = 60.0) -> None:
        if self.cluster:  # a mutation runs on the replicated tables, not the Distributed one
            table = f"{table}_local"
        mutations = (
            "SELECT count(), sum(is_done = 0) FROM system.mutations WHERE database = "
            f"{_quote(self.database)} AND table = {_quote(table)}"
        )
        before = self._engine.query_columns(mutations, 2)[0][0] if self.cluster else 0
        self._engine.execute(
            f"ALTER TABLE {self.database}.{table}{self._on_cluster} DELETE WHERE {condition}"
        )
        # 18.x has no mutations_sync: wait for the mutation like the newer setting would. On a
        # cluster, a replica learns of the mutation from ZooKeeper a moment after the ALTER
        # returns: wait until this node has seen one more mutation, and none is pending.
        deadline = time.monotonic() + timeout
        while True:
            total, pending = self._engine.query_columns(mutations, 2)
            if total and total[0] > before and not pending[0]:
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
