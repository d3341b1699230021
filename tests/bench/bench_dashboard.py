"""Dashboard benchmark in headless Chromium (Debian's, driven by Playwright) against a live hub.

1. Run page: a run with 10 metric keys of 1,000,000 points each (logged through the ingest
   API). Time from navigation start until all 10 charts are drawn, read from the page's
   Performance API marks (``chart-drawn:<key>``, set by uPlot's draw hook), with the server's
   share (Resource Timing of the /metrics/series calls) and the browser's (the rest).
   Goal: < 1.5 s.
   The same load against the API answers recorded from it and replayed from memory gives the
   dashboard's own share (boot, rendering, drawing) apart from the hub's.
2. Runs table with 100,000 runs: time from navigation start until the first page of rows is
   rendered (mark ``runs-table-rendered``), then — once the page has settled (facets counted,
   next page prefetched) — the next page and a sort by a summary metric, from the click to the
   new rows. Goal: first page < 500 ms.

The 100,000 runs are bulk-created in the hub's database by a Django script in a subprocess
(with the hub's HUB_DATA_DIR, as a second process next to the running hub), then indexed with
``manage.py search_reindex`` — creating them one by one through the API would take an hour.
The hub gets its own Elasticsearch-compatible server (noida-db) so the reindex can reach it.

    .venv/bin/python -m tests.bench.bench_dashboard [--runs 100000] [--points 1000000] [--repeat 3]

Needs the built SPA (cd frontend && npm ci && npm run build) and chromium (apt). Prints
figures; asserts nothing. Screenshots go to test-artifacts/screenshots/bench-*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.e2e.browser import ARGS, CHROMIUM, SHOTS  # noqa: E402

USER, PASSWORD = "bench", "bench-password"
KEYS = [f"train/metric{i}" for i in range(10)]

BULK_RUNS = r"""
import os, random, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
django.setup()
from django.db import transaction
from django.utils import timezone
from datetime import timedelta
from hub.accounts.models import User
from hub.tracking import services
from hub.tracking.models import Run

n = int(os.environ["BENCH_RUNS"])
user = User.objects.get(username="bench")
ns = user.memberships.get().namespace
project = services.project_get_or_create(namespace=ns, name="runs100k")
rng = random.Random(0)
now = timezone.now()
t = time.perf_counter()
batch = []
for i in range(n):
    k = rng.choice([1, 2, 4, 8])
    lr = rng.choice([1e-4, 3e-4, 1e-3, 3e-3])
    loss = 2.0 + 0.3 / k + rng.random() * 0.5
    summary = {m: {"last": v, "last_step": 10000, "min": v * 0.97, "min_step": 9000, "max": v * 2.5, "max_step": 0,
                   "count": 10001} for m, v in (("train/loss", loss), ("val/loss", loss + 0.05), ("val/acc", 1 / loss))}
    batch.append(Run(id=f"b{i:015d}", project=project, user=user, name=f"run-{i:06d}", status=rng.choice(
        ["finished"] * 8 + ["failed", "killed"]), started_at=now - timedelta(seconds=i),
        params={"moe.top_k": k, "moe.n_expert": rng.choice([8, 16, 64]), "lr": lr, "optimizer": rng.choice(["adamw", "lion"]),
                "seed": i % 10}, tags=rng.sample(["sweep", "baseline", "ablation", "long", "debug"], 2), summary=summary))
    if len(batch) == 5000:
        Run.objects.bulk_create(batch)
        batch = []
if batch:
    Run.objects.bulk_create(batch)
print(f"created {n} runs in {time.perf_counter() - t:.1f}s", flush=True)
"""


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def seed_points(client, n: int) -> str:
    """10 keys × n points through the binary ingest API, in 200k-point requests."""
    from hub.shared.wire import CONTENT_TYPE, encode

    run = client.init_run(f"{USER}/charts", name="ten-million-points", params={"moe": {"top_k": 2}})
    rng = np.random.default_rng(0)
    steps = np.arange(n, dtype=np.int64)
    wall = 1.7e9 + steps * 0.05
    chunk = 200_000
    for i, key in enumerate(KEYS):
        values = 3.0 / (1 + steps / (n / 100)) + 0.05 * rng.standard_normal(n) + i * 0.1
        values[n // 2] += 5  # a spike the min/max band must show
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            body = encode(
                [key], np.zeros(e - s, dtype=np.uint32), steps[s:e], wall[s:e], values[s:e]
            )
            client.request(
                "POST",
                f"/runs/{run.id}/metrics",
                content=body,
                headers={"Content-Type": CONTENT_TYPE},
                idempotent=True,
            )
    run.finish()
    return run.id


class ApiTape:
    """Records the API responses of a real page load, then replays them from memory: a load
    against the tape measures the dashboard alone (server and network time ~0), which
    separates the browser's share of a figure from the hub's."""

    def __init__(self) -> None:
        self.responses: list = []
        self.tape: dict[str, tuple[int, str, bytes]] = {}

    def record(self, page) -> None:
        page.on(
            "response",
            lambda r: (
                self.responses.append(r)
                if "/api/v1/" in r.url and r.request.method == "GET"
                else None
            ),
        )

    def close(self) -> None:
        for r in self.responses:
            try:
                self.tape[r.url] = (
                    r.status,
                    r.headers.get("content-type", "application/json"),
                    r.body(),
                )
            except Exception:  # a response the page aborted
                pass
        self.responses = []

    def replay(self, context) -> None:
        def handle(route):
            hit = self.tape.get(route.request.url)
            if hit:
                route.fulfill(status=hit[0], content_type=hit[1], body=hit[2])
            else:
                route.fallback()  # another tape's handler, or the network

        context.route("**/api/v1/**", handle)


def measure_run_page(
    context, run_id: str, repeat: int, tape: ApiTape | None = None, shot: bool = True
) -> dict:
    out = {"total_ms": [], "series_ms": [], "after_data_ms": [], "requests": []}
    for i in range(repeat):
        page = context.new_page()
        if tape is not None and i == repeat - 1:
            tape.record(page)
        page.goto(f"/runs/{run_id}", wait_until="commit")
        page.wait_for_function(
            "performance.getEntriesByType('mark').filter(m => m.name.startsWith('chart-drawn:train/metric')).length >= 10",
            timeout=120_000,
            polling=20,
        )
        t = page.evaluate("""() => {
            const marks = performance.getEntriesByType('mark').filter(m => m.name.startsWith('chart-drawn:train/metric'));
            const series = performance.getEntriesByType('resource').filter(r => r.name.includes('/metrics/series'));
            const lastDraw = Math.max(...marks.map(m => m.startTime));
            const lastData = Math.max(...series.map(r => r.responseEnd));
            return {total: lastDraw, series: series.map(r => r.responseEnd - r.startTime), lastData,
                    requests: series.length, bytes: series.reduce((a, r) => a + r.transferSize, 0)};
        }""")
        out["total_ms"].append(t["total"])
        out["series_ms"].append(max(t["series"]))
        out["after_data_ms"].append(t["total"] - t["lastData"])
        out["requests"].append(t["requests"])
        if i == repeat - 1 and shot:
            page.wait_for_timeout(300)
            page.screenshot(path=str(SHOTS / "bench-run-page-10x1M.png"), full_page=True)
        if tape is not None and i == repeat - 1:
            page.wait_for_load_state("networkidle")
            tape.close()
        page.close()
    return out


def measure_runs_table(
    context, project: str, repeat: int, tape: ApiTape | None = None, interact: bool = True
) -> dict:
    out = {"first_ms": [], "api_ms": [], "next_ms": [], "sort_ms": []}
    for i in range(repeat):
        page = context.new_page()
        if tape is not None and i == repeat - 1:
            tape.record(page)
        page.goto(f"/projects/{project}", wait_until="commit")
        page.wait_for_function(
            "performance.getEntriesByName('runs-table-rendered').length >= 1",
            timeout=60_000,
            polling=10,
        )
        t = page.evaluate("""() => {
            const m = performance.getEntriesByName('runs-table-rendered')[0];
            const r = performance.getEntriesByType('resource').filter(x => x.name.includes('/runs?') || x.name.endsWith('/runs'))[0];
            return {first: m.startTime, api: r ? r.responseEnd - r.startTime : null};
        }""")
        out["first_ms"].append(t["first"])
        out["api_ms"].append(t["api"])
        if tape is not None and i == repeat - 1:
            page.wait_for_load_state("networkidle")
            tape.close()
        for what, button in (
            ()
            if not interact
            else (
                ("next_ms", page.get_by_role("button", name="Next →")),
                ("sort_ms", page.get_by_role("button", name="val/loss", exact=True)),
            )
        ):
            page.wait_for_load_state(
                "networkidle"
            )  # the user reads the page: facets and prefetch done
            before = page.evaluate("performance.getEntriesByName('runs-table-rendered').length")
            t0 = page.evaluate("performance.now()")
            button.click()
            page.wait_for_function(
                f"performance.getEntriesByName('runs-table-rendered').length > {before}",
                timeout=60_000,
                polling=10,
            )
            t1 = page.evaluate(
                "performance.getEntriesByName('runs-table-rendered').at(-1).startTime"
            )
            out[what].append(t1 - t0)
        if i == repeat - 1 and interact:
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(SHOTS / "bench-runs-table-100k.png"), full_page=True)
        page.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    if not (ROOT / "frontend" / "dist" / "index.html").exists():
        print("skipped: build the dashboard first (cd frontend && npm ci && npm run build)")
        return 0
    if not Path(CHROMIUM).exists():
        print("skipped: chromium is not installed (apt-get install chromium)")
        return 0
    from playwright.sync_api import sync_playwright

    from hub.client import Client
    from hub.serve import free_port, wait_http
    from tests.fixtures_services import start_elasticsearch

    work = Path(tempfile.mkdtemp(prefix="hub-bench-dash-", dir=os.environ.get("BENCH_DIR")))
    es = start_elasticsearch(work / "es")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATA_DIR=str(work / "data"),
        HUB_CONFIG_DIR=str(work / "cfg"),
        HUB_ELASTICSEARCH_URL=es.url,
        HUB_BLOB_FSYNC="0",
        PYTHONUNBUFFERED="1",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "hub.client.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=open(work / "serve.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    figures: dict = {}
    try:
        assert wait_http(url + "/api/v1/health", 180), (work / "serve.log").read_text()
        cli = [sys.executable, "-m", "hub.client.cli"]
        subprocess.run(
            [*cli, "admin", "create-user", "--user", USER, "--password", PASSWORD],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        token = subprocess.run(
            [*cli, "admin", "create-token", "--user", USER, "--scope", "write"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        client = Client(url=url, token=token, timeout=300)

        t = time.perf_counter()
        run_id = seed_points(client, args.points)
        print(
            f"seeded 10 × {args.points:,} points through the ingest API in {time.perf_counter() - t:.1f}s",
            flush=True,
        )
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", BULK_RUNS],
            env={**env, "BENCH_RUNS": str(args.runs)},
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        print(out.stdout.strip(), flush=True)
        out = subprocess.run(
            [sys.executable, "manage.py", "search_reindex"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        print(
            f"bulk-created and indexed {args.runs:,} runs in {time.perf_counter() - t:.1f}s ({out.stdout.strip()})",
            flush=True,
        )

        SHOTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=url)
            csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
            r = context.request.post(
                "/api/v1/auth/login",
                data={"username": USER, "password": PASSWORD},
                headers={"X-CSRFToken": csrf},
            )
            assert r.ok, r.text()
            # one warm-up load: the SPA's assets in the HTTP cache, as for a returning user
            warm = context.new_page()
            warm.goto("/projects")
            warm.wait_for_load_state("networkidle")
            warm.close()
            run_tape, table_tape = ApiTape(), ApiTape()
            rp = measure_run_page(context, run_id, args.repeat, run_tape)
            rt = measure_runs_table(context, f"{USER}/runs100k", args.repeat, table_tape)
            # The same pages against the recorded API answers: the dashboard's own share.
            replay = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=url)
            run_tape.replay(replay)
            table_tape.replay(replay)
            warm = replay.new_page()
            warm.goto("/login")
            warm.wait_for_load_state("networkidle")
            warm.close()
            rp_local = measure_run_page(replay, run_id, args.repeat, shot=False)
            rt_local = measure_runs_table(replay, f"{USER}/runs100k", args.repeat, interact=False)
            browser.close()
        search = client._json("GET", f"/projects/{USER}/runs100k/runs", params={"page_size": 50})
        figures = {
            "run_page_all_10_charts_drawn_ms": round(median(rp["total_ms"])),
            "run_page_series_request_ms": round(median(rp["series_ms"])),
            "run_page_browser_after_data_ms": round(median(rp["after_data_ms"])),
            "run_page_series_requests": rp["requests"][-1],
            "runs_table_total": search["total"],
            "runs_table_first_page_ms": round(median(rt["first_ms"])),
            "runs_table_search_request_ms": round(
                median([x for x in rt["api_ms"] if x is not None])
            ),
            "runs_table_engine_ms": search["engine_elapsed_ms"],
            "run_page_with_instant_api_ms": round(median(rp_local["total_ms"])),
            "runs_table_first_page_with_instant_api_ms": round(median(rt_local["first_ms"])),
            "runs_table_next_page_ms": round(median(rt["next_ms"])),
            "runs_table_sort_by_metric_ms": round(median(rt["sort_ms"])),
        }
        print("\n== dashboard benchmark (headless Chromium, median of", args.repeat, "page loads)")
        print(
            f"run page, 10 charts × {args.points:,} points: all drawn after {figures['run_page_all_10_charts_drawn_ms']} ms "
            f"(goal < 1500 ms); /metrics/series took {figures['run_page_series_request_ms']} ms "
            f"({figures['run_page_series_requests']} batched request(s)); the browser drew them "
            f"{figures['run_page_browser_after_data_ms']} ms after the data arrived"
        )
        print(
            f"runs table, {search['total']:,} runs: first page rendered after {figures['runs_table_first_page_ms']} ms "
            f"(goal < 500 ms); search request {figures['runs_table_search_request_ms']} ms (engine "
            f"{figures['runs_table_engine_ms']} ms); next page (prefetched) {figures['runs_table_next_page_ms']} ms; "
            f"sort by val/loss {figures['runs_table_sort_by_metric_ms']} ms"
        )
        print(
            f"the dashboard's own share (API answers replayed from memory): run page "
            f"{figures['run_page_with_instant_api_ms']} ms, runs table first page "
            f"{figures['runs_table_first_page_with_instant_api_ms']} ms"
        )
        print(
            f"screenshots: {SHOTS / 'bench-run-page-10x1M.png'}, {SHOTS / 'bench-runs-table-100k.png'}"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        **figures,
                        "raw": {
                            "run_page": rp,
                            "runs_table": rt,
                            "run_page_replayed": rp_local,
                            "runs_table_replayed": rt_local,
                        },
                    },
                    indent=2,
                )
            )
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        es.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
