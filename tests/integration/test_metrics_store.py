"""The metrics store against both engines: chdb in-process and a real clickhouse-server 18.x.

Every test runs twice through the parametrized ``metrics_store`` fixture
(tests/fixtures_services.py), each time on a fresh database.
"""

from __future__ import annotations

import threading
import time

import pytest

from hub.stores.metrics import (
    ChdbMetricsStore,
    ClickHouseServerMetricsStore,
    MetricsStoreError,
    MetricsStoreUnavailable,
    metrics_store_from_url,
)
from tests.fixtures_services import free_port, unique_name

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0


def points(run, key, steps, value=lambda s: float(s), t0=T0):
    return [(run, key, s, t0 + s, value(s)) for s in steps]


def test_roundtrip_returns_points_in_step_order(metrics_store):
    metrics_store.insert_points(points("r1", "loss", range(10)))
    series = metrics_store.series(["r1"], ["loss"])[("r1", "loss")]
    assert series.step == list(range(10))
    assert series.value == [float(s) for s in range(10)]
    assert series.wall_time == [T0 + s for s in range(10)]
    assert not series.downsampled and series.points == 10


def test_retried_batch_collapses(metrics_store):
    batch = points("r1", "loss", range(100))
    metrics_store.insert_points(batch)
    metrics_store.insert_points(batch)
    metrics_store.insert_points(batch[:50])
    series = metrics_store.series(["r1"], ["loss"])[("r1", "loss")]
    assert series.step == list(range(100))
    assert metrics_store.keys("r1")[0].count == 100


def test_late_and_out_of_order_steps_are_sorted(metrics_store):
    metrics_store.insert_points(points("r1", "loss", [5, 1, 9]))
    metrics_store.insert_points(points("r1", "loss", [0, 3]))
    assert metrics_store.series(["r1"], ["loss"])[("r1", "loss")].step == [0, 1, 3, 5, 9]


def test_latest_write_of_a_step_wins(metrics_store):
    metrics_store.insert_points([("r1", "loss", 7, T0, 1.0)])
    metrics_store.insert_points([("r1", "loss", 7, T0, 2.0)])
    assert metrics_store.series(["r1"], ["loss"])[("r1", "loss")].value == [2.0]


def test_later_row_in_one_batch_wins(metrics_store):
    metrics_store.insert_points([("r1", "loss", 7, T0, 1.0), ("r1", "loss", 7, T0, 3.0)])
    assert metrics_store.series(["r1"], ["loss"])[("r1", "loss")].value == [3.0]


def test_downsampling_keeps_a_single_spike(metrics_store):
    values = {s: 1.0 for s in range(10_000)}
    values[4_321] = 1e6
    values[7_777] = -1e6
    metrics_store.insert_columns(
        run_id="r1",
        key="loss",
        step=list(values),
        wall_time=[T0 + s for s in values],
        value=list(values.values()),
    )
    series = metrics_store.series(["r1"], ["loss"], buckets=100)[("r1", "loss")]
    assert series.downsampled
    assert len(series) <= 100
    assert max(series.max) == 1e6
    assert min(series.min) == -1e6
    assert sum(series.count) == series.points == 10_000
    assert series.step[-1] == 9_999  # each bucket reports its last point


@pytest.mark.parametrize("buckets", [1, 7, 333, 999])
def test_bucket_count_never_exceeds_the_request(metrics_store, buckets):
    metrics_store.insert_points(points("r1", "loss", range(1000)))
    for x in ("step", "time"):
        series = metrics_store.series(["r1"], ["loss"], buckets=buckets, x=x)[("r1", "loss")]
        assert 1 <= len(series) <= buckets
        assert sum(series.count) == 1000


def test_few_points_come_back_at_full_resolution(metrics_store):
    metrics_store.insert_points(points("r1", "loss", range(50)))
    series = metrics_store.series(["r1"], ["loss"], buckets=100)[("r1", "loss")]
    assert not series.downsampled and series.min is None
    assert series.step == list(range(50))


def test_zoomed_range_returns_full_resolution(metrics_store):
    metrics_store.insert_points(points("r1", "loss", range(5000)))
    whole = metrics_store.series(["r1"], ["loss"], buckets=200)[("r1", "loss")]
    assert whole.downsampled
    zoom = metrics_store.series(["r1"], ["loss"], buckets=200, x_min=1000, x_max=1149)
    series = zoom[("r1", "loss")]
    assert not series.downsampled
    assert series.step == list(range(1000, 1150))


def test_time_axis_orders_and_filters_by_wall_time(metrics_store):
    # steps restart (a resumed run) but wall time keeps growing
    metrics_store.insert_points([("r1", "loss", s, T0 + 10 - s, float(s)) for s in range(10)])
    series = metrics_store.series(["r1"], ["loss"], x="time", x_min=T0 + 3, x_max=T0 + 6)
    s = series[("r1", "loss")]
    assert s.x == [T0 + 3, T0 + 4, T0 + 5, T0 + 6]
    assert s.step == [7, 6, 5, 4]


def test_many_runs_and_keys_in_one_call(metrics_store):
    for run in ("a", "b", "c"):
        for key in ("loss", "acc", "system/gpu0/util"):
            metrics_store.insert_points(points(run, key, range(300), t0=T0 + len(run)))
    metrics_store.insert_points(points("d", "loss", range(5)))
    result = metrics_store.series(["a", "b", "c", "d"], ["loss", "system/gpu0/util"], buckets=50)
    assert set(result) == {(r, k) for r in "abcd" for k in ("loss", "system/gpu0/util")}
    assert all(result[(r, k)].downsampled for r in "abc" for k in ("loss", "system/gpu0/util"))
    assert result[("d", "loss")].step == [0, 1, 2, 3, 4]  # mixed full + downsampled
    assert len(result[("d", "system/gpu0/util")]) == 0


def test_quotes_and_backslashes_in_names_are_data(metrics_store):
    run, key = "it's", "a\\b' OR 1=1 --"
    metrics_store.insert_points([(run, key, 1, T0, 1.0)])
    assert metrics_store.series([run], [key])[(run, key)].value == [1.0]
    assert [k.key for k in metrics_store.keys(run)] == [key]


def test_keys_summarise_each_series(metrics_store):
    metrics_store.insert_points(points("r1", "loss", range(1, 11), value=lambda s: 10.0 / s))
    metrics_store.insert_points(points("r1", "acc", [3]))
    stats = {k.key: k for k in metrics_store.keys("r1")}
    assert list(stats) == ["acc", "loss"]
    loss = stats["loss"]
    assert (loss.count, loss.first_step, loss.last_step) == (10, 1, 10)
    assert (loss.last_value, loss.min_value, loss.max_value) == (1.0, 1.0, 10.0)
    assert metrics_store.key_stats(["r1", "none"])["none"] == []


def test_export_streams_every_point_in_batches(metrics_store):
    metrics_store.insert_points(points("r1", "b", range(120)) + points("r1", "a", range(130)))
    metrics_store.insert_points(points("r2", "a", range(7)))
    batches = list(metrics_store.export_rows("r1", batch_size=100))
    assert [len(b) for b in batches] == [100, 100, 50]
    rows = [row for batch in batches for row in batch]
    assert [(k, s) for k, s, _, _ in rows] == [("a", s) for s in range(130)] + [
        ("b", s) for s in range(120)
    ]
    assert sum(len(b) for b in metrics_store.export_rows("r1", ["b"])) == 120


def test_delete_run_removes_only_that_run(metrics_store):
    metrics_store.insert_points(points("r1", "loss", range(10)) + points("r2", "loss", range(3)))
    metrics_store.delete_run("r1")
    assert metrics_store.keys("r1") == []
    assert len(metrics_store.series(["r2"], ["loss"])[("r2", "loss")]) == 3


def test_log_lines_follow_and_tail(metrics_store):
    rows = [
        ("job1", i, T0 + i, "stderr" if i % 3 == 0 else "stdout", f"line {i}") for i in range(20)
    ]
    metrics_store.insert_log_lines(rows)
    metrics_store.insert_log_lines(rows[:5])  # retried batch
    metrics_store.insert_log_lines([("job2", 0, T0, "stdout", "other job")])
    assert [line.seq for line in metrics_store.log_lines("job1")] == list(range(20))
    follow = metrics_store.log_lines("job1", after_seq=15, limit=3)
    assert [(line.seq, line.line) for line in follow] == [
        (16, "line 16"),
        (17, "line 17"),
        (18, "line 18"),
    ]
    assert [line.seq for line in metrics_store.log_tail("job1", 2)] == [18, 19]
    errors = metrics_store.log_lines("job1", streams=["stderr"], time_min=T0 + 10)
    assert [line.seq for line in errors] == [12, 15, 18]
    metrics_store.delete_job_logs("job1")
    assert metrics_store.log_lines("job1") == []
    assert len(metrics_store.log_lines("job2")) == 1


def test_malformed_points_raise_a_store_error(metrics_store):
    with pytest.raises(MetricsStoreError):
        metrics_store.insert_points([("r1", "loss", 1, T0)])
    with pytest.raises(MetricsStoreError):
        metrics_store.insert_points([("r1", "loss", "one", T0, 1.0)])


def test_concurrent_inserts_from_threads(metrics_store):
    def worker(n):
        for chunk in range(5):
            steps = range(chunk * 100, chunk * 100 + 100)
            metrics_store.insert_points(points(f"t{n}", "loss", steps))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = metrics_store.key_stats([f"t{n}" for n in range(4)])
    assert all(s[0].count == 500 for s in stats.values())


def test_schema_is_idempotent(metrics_store):
    metrics_store.ensure_schema()
    metrics_store._schema_ready = False
    metrics_store.ensure_schema()
    assert metrics_store.ping()


def test_unreachable_server_raises_unavailable_quickly():
    store = ClickHouseServerMetricsStore(f"clickhouse://127.0.0.1:{free_port()}/x")
    started = time.monotonic()
    with pytest.raises(MetricsStoreUnavailable) as info:
        store.insert_points([("r", "k", 1, T0, 1.0)])
    assert time.monotonic() - started < 5
    assert info.value.retry_after > 0
    assert store.ping() is False


def test_a_second_chdb_path_in_one_process_is_a_clear_error(chdb_path, tmp_path):
    first = ChdbMetricsStore(chdb_path, database=unique_name())
    first.ensure_schema()
    try:
        other = ChdbMetricsStore(str(tmp_path / "elsewhere"), database="x")
        with pytest.raises(MetricsStoreError, match="one database path per process"):
            other.ensure_schema()
        other.close()
        assert ChdbMetricsStore.open_path() == first.path
    finally:
        first.drop_database()
        first.close()


def test_url_picks_the_engine():
    assert isinstance(
        metrics_store_from_url("clickhouse://h:9000/db"), ClickHouseServerMetricsStore
    )
    assert metrics_store_from_url("clickhouse://h:9000/db").database == "db"
    with pytest.raises(MetricsStoreError):
        metrics_store_from_url("chdb://relative/path")
    with pytest.raises(MetricsStoreError):
        metrics_store_from_url("mysql://x")


def test_outage_during_ingest_loses_and_duplicates_nothing(clickhouse_server_restartable):
    """Stop the server mid-ingest, retry like the SDK does, restart: every point once."""
    server = clickhouse_server_restartable
    store = ClickHouseServerMetricsStore(server.url_for(unique_name()))
    store.ensure_schema()
    batches = [points("r1", "loss", range(i * 500, i * 500 + 500)) for i in range(10)]
    pending = list(batches)
    failures = 0
    try:
        for n in range(200):
            if n == 3:
                server.stop()
            if n == 6:
                server.start()
            if not pending:
                break
            try:
                store.insert_points(pending[0])
                # the SDK re-sends a batch whose ack it may have lost: harmless
                if n == 2:
                    store.insert_points(pending[0])
                pending.pop(0)
            except MetricsStoreUnavailable:
                failures += 1
                time.sleep(0.05)
        assert not pending and failures >= 1
        series = store.series(["r1"], ["loss"])[("r1", "loss")]
        assert series.step == list(range(5000))
    finally:
        store.close()
