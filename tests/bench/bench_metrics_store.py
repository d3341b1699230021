"""Metrics store benchmark on both engines: ingest and read figures against the issue's goals.

    .venv/bin/python -m tests.bench.bench_metrics_store            # both engines
    .venv/bin/python -m tests.bench.bench_metrics_store --engine chdb

Goals (tracker issue): 1,000,000-point series downsampled to 2,000 buckets < 100 ms; one
5,000-point series >= 20x faster than MLflow's ~470 ms (< 23.5 ms); the store's insert much
faster than the hub's 430,000 points/s end-to-end target. A clickhouse-server is started with
the same helper as the test fixtures unless HUB_TEST_CLICKHOUSE_URL is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hub.stores.metrics import ChdbMetricsStore, ClickHouseServerMetricsStore, MetricsStore
from tests.fixtures_services import start_clickhouse_server, unique_name

T0 = 1_700_000_000.0
N_BIG = 1_000_000
RUNS, KEYS, STEPS = 20, 10, 5_000


def p50(fn: Callable[[], Any], repeat: int = 7) -> float:
    fn()  # warm caches, as a dashboard that reloads would
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench(store: MetricsStore) -> dict[str, str]:
    rng = np.random.default_rng(0)
    out: dict[str, str] = {}

    steps = np.arange(N_BIG, dtype=np.int64)
    values = rng.random(N_BIG)
    values[123_456] = 1e9  # the spike that must survive downsampling
    seconds = timed(
        lambda: store.insert_columns(
            run_id="big", key="loss", step=steps, wall_time=T0 + steps * 0.01, value=values
        )
    )
    out["insert 1M, columnar (one call)"] = f"{N_BIG / seconds:,.0f} pts/s"

    rows = [
        ("big-rows", "loss", int(s), T0 + s * 0.01, float(v))
        for s, v in zip(steps, values, strict=True)
    ]
    seconds = timed(lambda: store.insert_points(rows))
    out["insert 1M, row tuples (one call)"] = f"{N_BIG / seconds:,.0f} pts/s"
    rows.clear()  # free the tuples before the next phase

    # 20 runs x 10 keys x 5,000 steps, one insert per run (an ingest API batch of 50,000 rows)
    def ingest_runs() -> None:
        step_col = np.tile(np.arange(STEPS, dtype=np.int64), KEYS)
        key_col = [f"key-{k}" for k in range(KEYS) for _ in range(STEPS)]
        for r in range(RUNS):
            store.insert_columns(
                run_id=f"run-{r}",
                key=key_col,
                step=step_col,
                wall_time=T0 + step_col,
                value=rng.random(step_col.size),
            )

    seconds = timed(ingest_runs)
    out["insert 20x10x5,000 (20 calls)"] = f"{RUNS * KEYS * STEPS / seconds:,.0f} pts/s"

    result: dict[str, Any] = {}

    def downsample() -> None:
        result["big"] = store.series(["big"], ["loss"], buckets=2000)[("big", "loss")]

    out["1M series -> 2,000 buckets (p50)"] = f"{p50(downsample):.1f} ms"
    big = result["big"]
    assert big.downsampled and len(big) <= 2000 and max(big.max) == 1e9, "spike lost"

    out["5,000-pt series, full (p50)"] = f"{p50(lambda: store.series(['run-3'], ['key-4'])):.1f} ms"
    out["5,000-pt series, buckets=2000 (p50)"] = (
        f"{p50(lambda: store.series(['run-3'], ['key-4'], buckets=2000)):.1f} ms"
    )
    runs = [f"run-{r}" for r in range(RUNS)]
    out["20 runs x 2 keys -> 500 buckets (p50)"] = (
        f"{p50(lambda: store.series(runs, ['key-0', 'key-1'], buckets=500)):.1f} ms"
    )
    out["zoom 1M series to 1,500 steps (p50)"] = (
        f"{p50(lambda: store.series(['big'], ['loss'], buckets=2000, x_min=5e5, x_max=501_499)):.1f} ms"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["chdb", "clickhouse", "both"], default="both")
    args = parser.parse_args(argv)

    columns: dict[str, dict[str, str]] = {}
    if args.engine in ("chdb", "both"):
        store = ChdbMetricsStore(tempfile.mkdtemp(prefix="hub-bench-chdb-"), database="bench")
        store.ensure_schema()
        try:
            columns["chdb"] = bench(store)
        finally:
            store.drop_database()
            store.close()
    if args.engine in ("clickhouse", "both"):
        server = None
        base = os.environ.get("HUB_TEST_CLICKHOUSE_URL")
        if not base:
            server = start_clickhouse_server()
            base = server.url
        store = ClickHouseServerMetricsStore(f"{base.rstrip('/')}/{unique_name('bench')}")
        store.ensure_schema()
        try:
            version = store._engine.query_columns("SELECT version()", 1)[0][0]
            columns[f"clickhouse-server {version}"] = bench(store)
        finally:
            store.drop_database()
            store.close()
            if server is not None:
                server.stop()

    names = list(columns)
    metrics = list(next(iter(columns.values())))
    width = max(len(m) for m in metrics)
    print(f"{'':{width}}  " + "  ".join(f"{n:>26}" for n in names))
    for metric in metrics:
        print(f"{metric:{width}}  " + "  ".join(f"{columns[n][metric]:>26}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
