"""The metrics store's interface, the values it returns and its two errors.

Everything raises :class:`MetricsStoreUnavailable` when the engine cannot be reached and
:class:`MetricsStoreError` for everything else. Callers let both propagate: the API's one
exception handler (``hub.common.errors``) answers 503 with ``Retry-After`` for either.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

XAxis = Literal["step", "time"]
#: ``(run_id, key, step, wall_time, value)``
Point = tuple[str, str, int, float, float]
#: ``(job_id, seq, time, stream, line)``
LogRow = tuple[str, int, float, str, str]

DEFAULT_DATABASE = "hub"


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
    def profile_ops(
        self, profile_ids: Sequence[str], *, limit: int = 200
    ) -> dict[str, list[dict[str, Any]]]:
        """The top ``limit`` operators by self time of each profile, aggregated over shapes."""

    @abc.abstractmethod
    def drop_database(self) -> None:
        """Drop this store's database (tests, and a full reset)."""
