"""The dashboard's pages at a real run's scale, in a real browser (Debian's Chromium through
Playwright) against a live hub: a tiny training job runs through the sandboxed worker, so its
run carries exactly the metric keys the trainer emits (per-expert load and bias, per-layer
``dropped_frac``, ``val/...``) and its job page a real summary.

- home: recent runs, running jobs and recent models, each linking to its page;
- run page: sections in order (Overview first), per-expert families as one chart each, pins
  kept in the URL (a link shows the same pins), y tick labels inside the chart, the MoE view's
  dropped-tokens chart drawn from ``moe/layer{L}/dropped_frac``;
- job page: the summary is a table;
- compare page: the target metric is the metrics table's first row, nothing scrolls inside it.

Screenshots go to test-artifacts/screenshots/ (90-*). Needs the built SPA and chromium, as
tests/e2e/test_dashboard.py does.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest

from tests.e2e.conftest import LiveHub
from tests.e2e.test_dashboard import ARGS, CHROMIUM, Console, shot  # noqa: F401  (skips when not built)
from tests.helpers import LIVE_RES as RES
from tests.helpers import LIVE_TRAIN as TRAIN
from tests.helpers import TERMINAL

pytest.importorskip("playwright")
from playwright.sync_api import BrowserContext, Page, expect  # noqa: E402

from hub.client import Client  # noqa: E402

pytestmark = pytest.mark.e2e

USER, PASSWORD = "pagesuser", "correct horse battery staple"
PROJECT = f"{USER}/moe"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS, "headless": True}


@pytest.fixture
def browser_context_args(browser_context_args, live_hub):
    return {
        **browser_context_args,
        "viewport": {"width": 1280, "height": 900},
        "base_url": live_hub.url,
    }


@pytest.fixture
def console(page: Page) -> Console:
    return Console(page)


def _wait(c: Client, job_id: str, timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while True:
        j = c._json("GET", f"/jobs/{job_id}")
        if j["status"] in TERMINAL or time.time() > deadline:
            return j
        time.sleep(1)


@pytest.fixture(scope="module")
def seeded(live_hub: LiveHub, tmp_path_factory) -> dict:
    """A finished tiny training job into USER/moe-small (its run has the trainer's keys), and
    two SDK runs in the same project to compare with it."""
    live_hub.cli("admin", "create-user", "--user", USER, "--password", PASSWORD, check=True)
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    c = Client(url=live_hub.url, token=token)
    c.create_repo(f"{USER}/moe-small", description="checkpoints of the tiny training job")
    job = c._json(
        "POST",
        "/jobs",
        json={
            "project": PROJECT,
            "kind": "train",
            "config": TRAIN,
            "target": f"{USER}/moe-small@main",
            "resources": RES,
        },
    )
    spool = tmp_path_factory.mktemp("pages-spool")
    others = []
    for k, final in ((2, 3.2), (4, 3.0)):
        run = c.init_run(
            PROJECT,
            name=f"sdk-top{k}",
            params={"model": {"top_k": k}, "lr": 3e-3},
            spool_dir=spool,
            flush_interval=0.2,
        )
        for s in range(0, 21, 5):
            run.log(
                {
                    "loss": final + 2.0 / (1 + s),
                    "val/loss": final + 0.1 + 2.0 / (1 + s),
                    "tokens_per_s": 12_000.0 + 250 * s,
                },
                step=s,
            )
        run.finish()
        others.append(run.id)
    job = _wait(c, job["id"])
    assert job["status"] == "succeeded", job
    assert job["run_id"], job
    keys = set(c._json("GET", f"/runs/{job['run_id']}")["summary"])
    assert "moe/layer0/dropped_frac" in keys and "moe/layer1/load/expert3" in keys, sorted(keys)[
        :20
    ]
    return {
        "client": c,
        "job": job,
        "run": job["run_id"],
        "runs": [job["run_id"], *others],
        "keys": keys,
    }


def sign_in(context: BrowserContext) -> None:
    csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = context.request.post(
        "/api/v1/auth/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert r.ok, r.text()


# --- tests -------------------------------------------------------------------------------------


def test_home_orients_with_runs_jobs_and_models(
    page: Page, context: BrowserContext, console: Console, seeded
):
    sign_in(context)
    page.goto("/")
    runs = page.get_by_role("list", name="Recent runs")
    for run_id in seeded["runs"]:  # (other tests' public projects may add runs of their own)
        expect(runs.locator(f'a[href="/runs/{run_id}"]')).to_be_visible()
    expect(runs.get_by_role("link", name="sdk-top4")).to_have_attribute(
        "href", f"/runs/{seeded['runs'][2]}"
    )
    # running jobs: whatever the hub says is active now (ours has ended), or what to do instead
    active = seeded["client"]._json("GET", "/jobs", params={"status": "running,queued"})["results"]
    if active:
        expect(
            page.get_by_role("list", name="Running jobs").get_by_role("link").first
        ).to_be_visible()
    else:
        expect(page.get_by_text("No job is running or queued.")).to_be_visible()
        expect(page.get_by_role("link", name="Launch one")).to_have_attribute("href", "/jobs/new")
    models = page.get_by_role("list", name="Recent models")
    expect(models.get_by_role("link", name=f"{USER}/moe-small")).to_have_attribute(
        "href", f"/models/{USER}/moe-small"
    )
    shot(page, "90-home")
    console.check()


def test_run_page_sections_pins_and_dropped_tokens(
    page: Page, context: BrowserContext, console: Console, seeded
):
    sign_in(context)
    run = seeded["run"]
    page.goto(f"/runs/{run}")
    sections = page.locator("details.chart-group")
    expect(sections.first).to_have_attribute("data-section", "overview")
    overview = page.locator('[data-section="overview"] [data-chart]')
    expect(overview.first).to_have_attribute("data-chart", "loss")
    titles = [overview.nth(i).get_attribute("data-chart") for i in range(overview.count())]
    assert titles[:3] == ["loss", "val/loss", "lr"], titles
    # per-layer routing: collapsed, one chart per per-expert family (not one per expert)
    layer0 = page.locator('[data-section="section:moe/layer0"]')
    expect(layer0).not_to_have_attribute("open", "")
    layer0.locator("summary").click()
    expect(layer0.locator('[data-chart="moe/layer0/load/expert*"]')).to_be_visible()
    expect(layer0.locator('[data-chart="moe/layer0/load/expert0"]')).to_have_count(0)
    ids = page.locator("[data-chart]").evaluate_all("els => els.map(e => e.dataset.chart)")
    assert len(ids) == len(set(ids)), "a chart appears twice"
    assert len(ids) < len([k for k in seeded["keys"] if not k.startswith("system/")]), (
        "families did not collapse"
    )
    shot(page, "91-run-sections")

    # pin two charts: they come first and the URL keeps them
    page.get_by_role("button", name="Pin moe/layer0/dropped_frac").click()
    page.get_by_role("button", name="Pin moe/layer0/load/expert*").click()
    expect(page).to_have_url(
        re.compile(r"pin=moe%2Flayer0%2Fdropped_frac&pin=moe%2Flayer0%2Fload%2Fexpert")
    )
    link = page.url
    page.goto("/")
    page.goto(link)  # a link shows the same pins
    expect(sections.first).to_have_attribute("data-section", "pinned")
    pinned = page.locator('[data-section="pinned"] [data-chart]')
    expect(pinned).to_have_count(2)
    expect(pinned.first).to_have_attribute("data-chart", "moe/layer0/dropped_frac")
    expect(pinned.first.locator("canvas").first).to_be_visible()
    shot(page, "92-run-pinned")

    # the MoE view's dropped-tokens chart reads moe/layer{L}/dropped_frac
    page.goto(f"/runs/{run}?tab=moe")
    dropped = page.get_by_role("region", name="Chart of dropped tokens (per layer)")
    expect(dropped).to_be_visible()
    expect(dropped.locator("canvas").first).to_be_visible()
    shot(page, "93-run-moe")
    console.check()


def test_job_page_summary_is_a_table(page: Page, context: BrowserContext, console: Console, seeded):
    sign_in(context)
    job = seeded["job"]
    page.goto(f"/jobs/{job['id']}")
    table = page.get_by_test_id("job-summary")
    expect(table).to_be_visible()
    expect(table.get_by_role("rowheader", name="val_loss", exact=True)).to_be_visible()
    expect(table.get_by_role("rowheader", name="steps", exact=True)).to_be_visible()
    expect(
        table.locator(
            "tbody tr", has=page.get_by_role("rowheader", name="steps", exact=True)
        ).locator("td")
    ).to_have_text("20")
    expect(page.locator("pre.json", has_text='"val_loss"')).to_have_count(0)
    shot(page, "94-job-summary")
    console.check()


def test_compare_page_shows_the_target_metric_first(
    page: Page, context: BrowserContext, console: Console, seeded
):
    sign_in(context)
    runs = ",".join(seeded["runs"])
    page.goto(f"/projects/{PROJECT}/compare?runs={quote(runs)}")
    metrics = page.get_by_test_id("compare-metrics")
    expect(metrics).to_be_visible()
    target = page.locator("text=Target metric:").locator("code")
    expect(target).to_be_visible()
    first_row = metrics.locator("tbody tr").first.locator("th")
    expect(first_row).to_contain_text(target.inner_text())
    # no inner scrolling: the table's box holds all its rows
    wrap = metrics.locator("xpath=..")
    assert wrap.evaluate("e => e.scrollHeight <= e.clientHeight + 1"), (
        "the metrics table scrolls inside itself"
    )
    # parallel coordinates: numeric axes carry several round ticks
    ticks = page.locator(".pc-svg text.pc-tick")
    assert ticks.count() >= 6, ticks.count()
    shot(page, "95-compare")
    console.check()
