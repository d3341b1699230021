"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a live hub
seeded with real data (tests/e2e/dashboard_seed.py): every page loads without console errors
and the key flows work — sign in and tokens; search → compare → Markdown export; a run with
120k steps (charts, zoom, MoE view); branch diff → merge with a conflict resolved.

Screenshots of each page go to test-artifacts/screenshots/ at the repository root.

Needs the built SPA (``cd frontend && npm ci && npm run build``) before the hub starts, the
``playwright`` and ``pytest-playwright`` packages, and ``chromium`` (apt); never
``playwright install``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import HUB, ROOT, LiveHub

pytest.importorskip("playwright")
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect  # noqa: E402

from hub.client import Client  # noqa: E402
from tests.e2e.dashboard_seed import XSS_NAME, Seeded, seed_repo, seed_runs  # noqa: E402

pytestmark = pytest.mark.e2e

from tests.e2e.browser import ARGS, CHROMIUM, SHOTS  # noqa: E402

USER, PASSWORD = "dashuser", "correct horse battery staple"

if not (ROOT / "frontend" / "dist" / "index.html").exists():
    pytest.skip(
        "the dashboard is not built: cd frontend && npm ci && npm run build",
        allow_module_level=True,
    )
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian's Chromium, not a downloaded browser."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS, "headless": True}


@pytest.fixture(scope="module")
def dash(live_hub: LiveHub, tmp_path_factory) -> tuple[Seeded, dict, str]:
    subprocess.run(
        [*HUB, "admin", "create-user", "--user", USER, "--password", PASSWORD],
        env=live_hub.env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    client = Client(url=live_hub.url, token=token)
    seeded = seed_runs(client, f"{USER}/moe-sweep", spool=tmp_path_factory.mktemp("spool"))
    repo = seed_repo(client, f"{USER}/moe-ckpt", run_id=seeded.big_run)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return seeded, repo, token


@pytest.fixture(scope="module")
def base(live_hub) -> str:
    return live_hub.url


@pytest.fixture
def browser_context_args(browser_context_args, live_hub):
    return {
        **browser_context_args,
        "viewport": {"width": 1280, "height": 900},
        "base_url": live_hub.url,
        "accept_downloads": True,
    }


class Console:
    """Console errors and uncaught exceptions of a page; `allow` what a flow provokes on purpose
    (a 409 from a conflicting merge, a 400 from a bad query)."""

    def __init__(self, page: Page):
        self.errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def _on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)

    def check(self, *allow: str) -> None:
        left = [e for e in self.errors if not any(re.search(a, e) for a in allow)]
        assert not left, f"console errors: {left}"
        self.errors.clear()


@pytest.fixture
def console(page: Page) -> Console:
    return Console(page)


def sign_in(context: BrowserContext) -> None:
    # As the dashboard does: the sign-in is CSRF-protected like every session write.
    csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = context.request.post(
        "/api/v1/auth/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert r.ok, r.text()


def shot(page: Page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # sticky headers: a full-page shot from the top
    page.screenshot(path=str(path), full_page=True)
    return path


def no_injected_script(page: Page) -> None:
    assert page.evaluate("window.__xss") is None, "markup from user data was executed"


# --- tests -------------------------------------------------------------------------------------


def test_sign_in_then_create_use_and_revoke_a_token(page: Page, console: Console, dash, live_hub):
    page.goto("/projects")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fprojects"))
    expect(page.get_by_role("heading", name="Sign in to MoE Hub")).to_be_visible()
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    shot(page, "01-sign-in")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/projects$"))
    expect(page.get_by_role("link", name=f"{USER}/moe-sweep")).to_be_visible()
    shot(page, "02-projects")

    page.get_by_role("link", name="Tokens").click()
    page.get_by_label("Name", exact=True).fill("laptop")
    page.get_by_label("Scope", exact=True).select_option("read")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("new-token").inner_text()
    assert secret.startswith("hub_")
    me = httpx.get(
        f"{live_hub.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"}
    ).json()
    assert me["username"] == USER and me["token_scope"] == "read"
    row = page.get_by_role("row").filter(has_text="laptop")
    expect(row).to_contain_text("active")
    shot(page, "03-tokens")
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Revoke token laptop").click()
    expect(row).to_contain_text("revoked")
    assert (
        httpx.get(
            f"{live_hub.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 401
    )
    # Signed out, the first whoami answers 401 (the redirect to sign-in): the only console error.
    console.check(r"status of 401")


def test_every_page_loads_without_console_errors(
    page: Page, context: BrowserContext, console: Console, dash
):
    seeded, repo, _ = dash
    sign_in(context)
    ns, name = seeded.project.split("/")
    pages = [
        ("10-projects", "/projects", page.get_by_role("link", name=seeded.project)),
        ("11-runs-table", f"/projects/{seeded.project}", page.get_by_role("link", name="cmp-top4")),
        (
            "12-run-metrics",
            f"/runs/{seeded.big_run}",
            page.locator("[data-chart='train/loss'] canvas"),
        ),
        (
            "13-run-params",
            f"/runs/{seeded.big_run}?tab=overview",
            page.get_by_role("cell", name="moe.n_expert"),
        ),
        (
            "14-run-system",
            f"/runs/{seeded.big_run}?tab=system",
            page.locator("[data-chart='system/gpu_util'] canvas"),
        ),
        (
            "15-run-moe",
            f"/runs/{seeded.big_run}?tab=moe",
            page.get_by_role("img", name=re.compile("Expert load, layer 0")),
        ),
        (
            "16-run-logs",
            f"/runs/{seeded.big_run}?tab=logs",
            page.get_by_text("logged from outside a job"),  # seeded runs have no job
        ),
        (
            "17-compare",
            f"/projects/{seeded.project}/compare?runs={','.join(seeded.compare_runs)}",
            page.get_by_test_id("param-diff"),
        ),
        ("18-models", "/models", page.get_by_role("link", name=repo["repo"])),
        (
            "19-repo",
            f"/models/{repo['repo']}",
            page.get_by_role("list", name="Commits, newest first"),
        ),
        (
            "20-diff",
            f"/models/{repo['repo']}/diff?a=main&b=exp/b",
            page.get_by_test_id("diff-table"),
        ),
        ("21-not-found", "/no/such/page", page.get_by_role("heading", name="Page not found")),
    ]
    for shot_name, url, ready in pages:
        page.goto(url)
        expect(ready.first).to_be_visible(timeout=20_000)
        page.wait_for_load_state("networkidle")
        expect(page.locator(".spinner")).to_have_count(0, timeout=20_000)
        assert page.locator("#main").inner_text().strip(), f"{url} rendered an empty page"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, f"{url} is {width}px wide at a 1280px window"
        shot(page, shot_name)
        no_injected_script(page)
        console.check()
    # Dark mode follows the OS setting.
    page.emulate_media(color_scheme="dark")
    for shot_name, url in (
        ("22-dark-run-metrics", f"/runs/{seeded.big_run}"),
        ("23-dark-repo", f"/models/{repo['repo']}"),
    ):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        expect(page.locator(".spinner")).to_have_count(0, timeout=20_000)
        shot(page, shot_name)
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg != "rgb(247, 248, 250)", bg
    page.emulate_media(color_scheme="light")
    console.check()
    # Every page is keyboard reachable: the first Tab lands on the skip link, then the nav.
    page.goto(f"/projects/{ns}/{name}")
    expect(page.get_by_role("link", name="cmp-top4")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()


def test_search_compare_and_export_markdown(
    page: Page, context: BrowserContext, console: Console, dash
):
    seeded, _, _ = dash
    sign_in(context)
    page.goto(f"/projects/{seeded.project}")
    box = page.get_by_label("Search runs")
    # A bad query: the server's message and position, inline under the box.
    box.fill("params.moe.top_k:4 AND (status:finished")
    box.press("Enter")
    err = page.get_by_test_id("query-error")
    expect(err).to_contain_text("position")
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(err.locator("mark")).to_have_count(1)
    shot(page, "30-runs-query-error")
    # A good one, through a facet click too.
    box.fill("tags:compare")
    box.press("Enter")
    expect(page.get_by_text("3 runs", exact=True)).to_be_visible()
    page.get_by_role("navigation", name="Facets").get_by_role(
        "button", name=re.compile(r"^finished")
    ).click()
    expect(page).to_have_url(re.compile(r"q=tags%3Acompare\+AND\+status%3Afinished"))
    expect(page.get_by_text("3 runs", exact=True)).to_be_visible()
    # Sort by a summary metric from its header button: the server sorts, the URL says so.
    page.get_by_role("button", name=re.compile(r"^val\/loss")).click()
    expect(page).to_have_url(re.compile(r"sort=summary.val%2Floss"))
    expect(page.locator("tbody tr td:nth-child(2)")).to_have_text(
        ["cmp-top8", "cmp-top4", "cmp-top2"]
    )
    page.get_by_label("Select all runs on this page").check()
    shot(page, "31-runs-selected")
    page.get_by_role("button", name="Compare (3)").click()
    expect(page).to_have_url(re.compile(r"/compare\?runs="))
    expect(page.get_by_role("heading", name="Compare 3 runs")).to_be_visible()
    expect(page.get_by_test_id("param-diff")).to_contain_text("moe.top_k")
    expect(
        page.get_by_text(re.compile(r"The baseline cmp-top8 has the best final val/loss"))
    ).to_be_visible()
    page.get_by_label("Baseline", exact=True).select_option(label="cmp-top2")
    expect(page).to_have_url(re.compile(r"baseline="))
    expect(
        page.get_by_text(re.compile(r"cmp-top8 reaches [\d.]+% lower final val/loss than cmp-top2"))
    ).to_be_visible()
    expect(page.locator("[data-chart='val/loss'] canvas").first).to_be_visible()
    expect(
        page.get_by_role("img", name=re.compile("Parallel coordinates of 3 runs"))
    ).to_be_visible()
    page.wait_for_load_state("networkidle")
    shot(page, "32-compare")
    with page.expect_download() as dl:
        page.get_by_test_id("export-markdown").click()
    md = Path(dl.value.path()).read_text()
    assert md.startswith("# Run comparison") and "cmp-top8" in md and "moe.top_k" in md
    console.check(r"status of 400")


def column(page: Page, table, col: str) -> list[str]:
    """The texts of one column of the runs table, found by its header's title (the column id)."""
    return page.evaluate(
        """([t, col]) => {
            const table = document.querySelector(`table[aria-label="${t}"]`);
            const i = [...table.querySelectorAll("thead th")].findIndex((th) => th.title === col);
            return i < 0 ? null : [...table.querySelectorAll("tbody tr")].map((tr) => tr.children[i].innerText.trim());
        }""",
        [table, col],
    )


def test_runs_table_choose_columns_sort_and_paginate(
    page: Page, context: BrowserContext, console: Console, dash
):
    seeded, _, _ = dash
    sign_in(context)
    page.goto(f"/projects/{seeded.project}?q=tags%3Asweep&sort=name")
    label = f"Runs of {seeded.project}"
    table = page.get_by_role("table", name=label)
    expect(page.get_by_text("120 runs", exact=True)).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(50)
    # The automatic columns are the sweep's varying params; a constant one is not shown.
    expect(table.get_by_role("button", name=re.compile(r"^seed"))).to_be_visible()
    expect(table.get_by_role("button", name=re.compile(r"^moe\.n_expert"))).to_have_count(0)

    # Columns: tick a param, its header appears (and the choice is in the URL).
    page.get_by_role("button", name=re.compile(r"^Columns \(\d+\)")).click()
    chooser = page.get_by_role("group", name="Choose columns")
    chooser.get_by_label("Filter columns").fill("n_expert")
    # (click, then wait: the checkbox shows the URL's state once the router has moved)
    n_expert = chooser.get_by_role("checkbox", name="moe.n_expert", exact=True)
    n_expert.click()
    expect(n_expert).to_be_checked()
    expect(table.get_by_role("button", name=re.compile(r"^moe\.n_expert"))).to_be_visible()
    expect(page).to_have_url(re.compile(r"cols=[^&]*params\.moe\.n_expert"))
    assert set(column(page, label, "params.moe.n_expert")) == {"16"}
    # ... and untick one: its header goes.
    chooser.get_by_label("Filter columns").fill("seed")
    seed = chooser.get_by_role("checkbox", name="seed", exact=True)
    seed.click()
    expect(seed).not_to_be_checked()
    expect(table.get_by_role("button", name=re.compile(r"^seed"))).to_have_count(0)
    seed.click()
    expect(seed).to_be_checked()
    expect(table.get_by_role("button", name=re.compile(r"^seed"))).to_be_visible()
    page.keyboard.press("Escape")
    expect(chooser).to_have_count(0)
    shot(page, "33-runs-columns")

    # Sort by the chosen param: the server sorts, ascending then descending.
    page.get_by_role("button", name=re.compile(r"^seed")).click()
    expect(page).to_have_url(re.compile(r"sort=params\.seed(&|$)"))
    expect(page.locator("th[title='params.seed']")).to_have_attribute("aria-sort", "ascending")
    expect(table).to_have_attribute("aria-busy", "false")  # the sorted page has arrived
    seeds = [int(v) for v in column(page, label, "params.seed")]
    assert seeds == sorted(seeds) and seeds[0] == 0, seeds
    page.get_by_role("button", name=re.compile(r"^seed")).click()
    expect(page).to_have_url(re.compile(r"sort=-params\.seed"))
    expect(page.locator("th[title='params.seed']")).to_have_attribute("aria-sort", "descending")
    expect(table).to_have_attribute("aria-busy", "false")
    seeds = [int(v) for v in column(page, label, "params.seed")]
    assert seeds == sorted(seeds, reverse=True) and seeds[0] == 4, seeds

    # Pagination, by name: Next shows the next 50 runs, then the last 20; Previous goes back.
    page.get_by_role("button", name="Name", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=name(&|$)"))
    expect(table.locator("tbody tr td:nth-child(2)").first).to_have_text("sweep-000")
    first = table.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert first == [f"sweep-{i:03d}" for i in range(50)], first
    page.get_by_role("button", name="Next →").click()
    expect(page).to_have_url(re.compile(r"offset=50"))
    expect(page.get_by_text("51–100 of 120")).to_be_visible()
    expect(table.locator("tbody tr td:nth-child(2)").first).to_have_text("sweep-050")
    assert table.locator("tbody tr td:nth-child(2)").all_inner_texts() == [
        f"sweep-{i:03d}" for i in range(50, 100)
    ]
    page.get_by_role("button", name="Next →").click()
    expect(page.get_by_text("101–120 of 120")).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(20)
    expect(page.get_by_role("button", name="Next →")).to_be_disabled()
    # The chosen columns stay while paging.
    expect(table.get_by_role("button", name=re.compile(r"^moe\.n_expert"))).to_be_visible()
    shot(page, "34-runs-page-3")
    page.get_by_role("button", name="← Previous").click()
    expect(page.get_by_text("51–100 of 120")).to_be_visible()
    expect(table.locator("tbody tr td:nth-child(2)").first).to_have_text("sweep-050")
    console.check()


def test_run_page_charts_zoom_and_moe_view(
    page: Page, context: BrowserContext, console: Console, dash
):
    seeded, _, _ = dash
    sign_in(context)
    page.goto(f"/runs/{seeded.big_run}")
    chart = page.locator("[data-chart='train/loss']")
    expect(chart).to_contain_text(re.compile(r"120\.0k pts → \d+"))  # downsampled server-side
    plot = chart.locator(".u-over")
    expect(plot).to_be_visible()
    box = plot.bounding_box()
    with page.expect_request(
        lambda r: "/metrics/series" in r.url and "min=" in r.url and "max=" in r.url
    ):
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
    expect(chart.get_by_role("button", name="Reset zoom")).to_be_visible()
    expect(chart).to_contain_text(re.compile(r"\d[\d,.k]* pts"))
    page.get_by_label("Log scale").check()
    page.get_by_label("Smoothing").fill("0.9")
    expect(page).to_have_url(re.compile(r"smooth=0\.9.*log=1|log=1.*smooth=0\.9"))
    page.get_by_role("button", name="Time").click()
    expect(page.locator("[data-chart='train/loss'] canvas")).to_be_visible()
    page.wait_for_load_state("networkidle")
    shot(page, "40-run-zoom-log-time")
    # Keyboard: the chart is focusable and + zooms.
    page.get_by_role("button", name="Step").click()
    page.locator("[data-chart='val/loss'] .chart-body").focus()
    page.keyboard.press("+")
    expect(
        page.locator("[data-chart='val/loss']").get_by_role("button", name="Reset zoom")
    ).to_be_visible()
    # Notes and tags are editable.
    page.get_by_role("tab", name="Params & notes").click()
    page.get_by_role("textbox", name="Notes").fill("Spike at 60k: a bad batch.")
    page.get_by_role("button", name="Save notes").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    # The MoE view: heatmap on a canvas, read with the keyboard.
    page.get_by_role("tab", name=re.compile("MoE")).click()
    heat = page.get_by_role("img", name=re.compile("Expert load, layer 0: 8 experts"))
    expect(heat).to_be_visible()
    heat.focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator(".heatmap-tip")).to_contain_text("Expert 1")
    page.get_by_label("Layer", exact=True).select_option("1")
    expect(page.get_by_role("img", name=re.compile("Expert load, layer 1"))).to_be_visible()
    expect(page.locator("[data-chart='routing entropy (per layer)'] canvas")).to_be_visible()
    page.wait_for_load_state("networkidle")
    shot(page, "41-run-moe-layer1")
    console.check()


def test_branch_diff_then_merge_with_a_conflict_resolved(
    page: Page, context: BrowserContext, console: Console, dash
):
    seeded, repo, _ = dash
    sign_in(context)
    page.goto(f"/models/{repo['repo']}")
    graph = page.get_by_role("list", name="Commits, newest first")
    expect(graph.get_by_role("link", name="Merge finetune/router into main")).to_be_visible()
    expect(page.locator(".graph-svg circle")).to_have_count(
        7
    )  # base, 4 branch commits, merge, initial
    page.get_by_role("row").filter(has_text="exp/a").get_by_role("link", name="Diff").click()
    expect(page).to_have_url(re.compile(r"/diff\?a=main&b=exp%2Fa"))
    page.get_by_label("a (base)").fill("exp/a")
    page.get_by_label("a (base)").press("Enter")
    page.get_by_label("b (compare)").fill("exp/b")
    page.get_by_label("b (compare)").press("Enter")
    table = page.get_by_test_id("diff-table")
    expect(table).to_contain_text("layers.1.moe.router.weight")
    expect(table).to_contain_text("removed")
    page.get_by_label("Filter by name").fill("layers.1.*")
    expect(table.locator("tbody tr")).to_have_count(1)
    page.get_by_label("Filter by name").fill("")
    page.get_by_role("button", name="Cosine").click()
    expect(page).to_have_url(re.compile(r"sort=-cosine"))
    shot(page, "50-diff")

    page.get_by_role("button", name="Merge b into a…").click()
    dialog = page.get_by_role("dialog", name="Merge")
    expect(dialog.get_by_label("Merge (source)")).to_have_value("exp/b")
    expect(dialog.get_by_label("Target branch")).to_have_value("exp/a")
    page.get_by_role("button", name="Merge", exact=True).click()
    conflict = dialog.get_by_test_id("merge-conflict")
    expect(conflict).to_contain_text("layers.1.moe.router.weight")
    expect(conflict).to_contain_text("[8 × 64]")
    shot(page, "51-merge-conflict")
    dialog.get_by_label(re.compile("Weighted average")).check()
    dialog.get_by_label("Weight of exp/b").fill("0.25")
    page.get_by_role("button", name="Merge with “average”").click()
    result = dialog.get_by_test_id("merge-result")
    expect(result).to_contain_text("Merged exp/b into exp/a")
    shot(page, "52-merge-result")
    result.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Merge exp/b into exp/a")).to_be_visible()
    expect(page.get_by_text("(merge)")).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"exp/b with strategy\s*average\s*\(w = 0.25\)"))
    ).to_be_visible()
    page.get_by_role("button", name="model.safetensors").click()
    tensors = page.get_by_role("table", name="Tensors of model.safetensors")
    expect(tensors).to_contain_text("layers.1.moe.router.weight")
    expect(tensors).to_contain_text("[8 × 64]")
    page.get_by_label("Filter tensors").fill("layers.0.*.experts.*")
    expect(tensors.locator("tbody tr")).to_have_count(16)
    shot(page, "53-commit")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download config.json").click()
    assert Path(dl.value.path()).read_text().startswith('{"model"')
    # The merge moved exp/a: the diff now shows only exp/b's own changes relative to it.
    console.check(r"status of 409")


def test_missing_things_are_messages_not_blank_pages(
    page: Page, context: BrowserContext, console: Console, dash
):
    sign_in(context)
    for url, text in (
        ("/runs/0000000000000000", "Run 0000000000000000 not found"),
        (f"/projects/{USER}/no-such-project", "not found"),
        (f"/models/{USER}/no-such-repo", "not found"),
        (f"/models/{USER}/moe-ckpt/diff?a=main&b=no-such-ref", "no-such-ref"),
    ):
        page.goto(url)
        expect(page.get_by_role("alert").first).to_contain_text(text, ignore_case=True)
    shot(page, "60-error-message")
    console.check(r"status of 404", r"status of 400")


def test_user_markup_renders_as_text(page: Page, context: BrowserContext, console: Console, dash):
    seeded, _, _ = dash
    sign_in(context)
    page.goto(f"/runs/{seeded.xss_run}")
    expect(page.get_by_role("heading", name=XSS_NAME)).to_be_visible()
    page.get_by_role("tab", name="Params & notes").click()
    expect(page.get_by_role("textbox", name="Notes")).to_have_value(
        "<script>window.__xss = 3</script>"
    )
    page.goto(f"/projects/{seeded.project}?q=tags:%22%3Ci%3Etag%3C/i%3E%22")
    expect(page.get_by_role("link", name=XSS_NAME)).to_be_visible()
    no_injected_script(page)
    console.check()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
