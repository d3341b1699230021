"""The Inspector's model views in a real browser, against a live hub whose commits were trained
by real jobs (tests/helpers LIVE_TRAIN, gradient norms every 2 steps): the Attention tab
(heatmap over the prompt's characters, experts per token beside it), the Routing diff tab (a
top-2 commit against a top-3 one: table + load-change heatmap) and the run page's Gradients
tab (layers/experts × steps). Screenshots 93-attention.png, 93-routing-diff.png,
93-grad-heatmap.png in test-artifacts/screenshots/."""

from __future__ import annotations

import copy
import time

import pytest

from tests.e2e.conftest import LiveHub
from tests.e2e.test_dashboard import ARGS, CHROMIUM, Console, shot  # noqa: F401  (skips when not built)
from tests.helpers import LIVE_RES, LIVE_TRAIN, TERMINAL

pytest.importorskip("playwright")
from playwright.sync_api import BrowserContext, Page, expect  # noqa: E402

from hub.client import Client  # noqa: E402

pytestmark = pytest.mark.e2e

USER, PASSWORD = "inspectuser", "correct horse battery staple"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS, "headless": True}


@pytest.fixture
def browser_context_args(browser_context_args, live_hub):
    return {
        **browser_context_args,
        "viewport": {"width": 1400, "height": 1000},
        "base_url": live_hub.url,
    }


@pytest.fixture
def console(page: Page) -> Console:
    return Console(page)


def _config(top_k: int) -> dict:
    cfg = copy.deepcopy(LIVE_TRAIN)
    cfg["model"]["top_k"] = top_k
    cfg["train"]["grad_norm_interval"] = 2
    return cfg


@pytest.fixture(scope="module")
def trained(live_hub: LiveHub) -> dict:
    """USER/moe-a (top-2) and USER/moe-b (top-3), each the commit of a real training job."""
    live_hub.cli("admin", "create-user", "--user", USER, "--password", PASSWORD, check=True)
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    c = Client(url=live_hub.url, token=token)
    jobs = {}
    for repo, k in (("moe-a", 2), ("moe-b", 3)):
        c.create_repo(f"{USER}/{repo}")
        jobs[repo] = c._json(
            "POST",
            "/jobs",
            json={
                "project": f"{USER}/insp",
                "kind": "train",
                "config": _config(k),
                "target": f"{USER}/{repo}@main",
                "resources": LIVE_RES,
            },
        )
    out = {"client": c}
    for repo, job in jobs.items():
        deadline = time.time() + 400
        while True:
            j = c._json("GET", f"/jobs/{job['id']}")
            if j["status"] in TERMINAL or time.time() > deadline:
                break
            time.sleep(1)
        assert j["status"] == "succeeded", (j["status"], j["reason"])
        out[repo] = {"commit": j["result"]["commit"], "run": j["run_id"]}
    return out


def sign_in(context: BrowserContext) -> None:
    csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = context.request.post(
        "/api/v1/auth/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert r.ok, r.text()


def test_attention_tab_shows_a_heatmap_over_characters_and_experts_per_token(
    page: Page, context: BrowserContext, console: Console, trained
):
    sign_in(context)
    sha = trained["moe-a"]["commit"]
    page.goto(f"/models/{USER}/moe-a/commit/{sha}/inspect?tab=attention")
    prompt = "def train(model):\n    return model"
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Show attention").click()
    heat = page.get_by_test_id("attention-heatmap")
    expect(heat).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("attention-check")).to_contain_text(f"{len(prompt)} tokens")
    # the token labels are the prompt's characters (space and newline shown as ␣ and ⏎)
    expect(heat).to_contain_text("0 d")
    expect(heat).to_contain_text("3 ␣")
    expect(heat).to_contain_text("⏎")
    table = page.get_by_test_id("attention-routing")
    expect(table.locator("[data-row]")).to_have_count(len(prompt))
    # the character, then its top-2 experts; each row level with its heatmap row
    assert len(table.locator("[data-row]").first.locator("span").all()) == 1 + 2
    row_label = heat.get_by_text("5 r", exact=True).bounding_box()
    row = table.locator("[data-row='5']").bounding_box()
    assert row_label and row and abs(row_label["y"] - row["y"]) <= 2
    page.get_by_label("Layer", exact=True).select_option("1")
    page.get_by_label("Head", exact=True).select_option("1")
    expect(table).to_contain_text("experts (layer 1)")
    canvas = heat.locator("canvas")
    box = canvas.bounding_box()
    assert box is not None
    canvas.hover(position={"x": box["width"] * 0.3, "y": box["height"] * 0.6})
    expect(heat.locator(".heatmap-tip")).to_contain_text("%")
    shot(page, "93-attention")
    assert console.errors == [], console.errors


def test_routing_diff_tab_compares_a_top2_and_a_top1_commit(
    page: Page, context: BrowserContext, console: Console, trained
):
    sign_in(context)
    sha = trained["moe-a"]["commit"]
    page.goto(f"/models/{USER}/moe-a/commit/{sha}/inspect?tab=routing")
    page.get_by_label("Compare with (ns/name@ref)").fill(f"{USER}/moe-b@main")
    page.get_by_role("button", name="Compare routing").click()
    table = page.get_by_test_id("routing-diff-table")
    expect(table).to_be_visible(timeout=120_000)
    expect(table.locator("tbody tr")).to_have_count(2)  # LIVE_TRAIN: 2 MoE layers
    expect(page.get_by_text("top-k 2 → 3")).to_be_visible()
    expect(page.get_by_test_id("routing-diff-heatmap")).to_contain_text("layer 1")
    d = trained["client"].routing_diff(f"{USER}/moe-a@{sha}", f"{USER}/moe-b@main")
    first = d["layers"][0]
    expect(table.locator("tbody tr").first).to_contain_text(f"{first['same_top1'] * 100:.1f}%")
    shot(page, "93-routing-diff")
    # the comparison report of the runs that produced the two commits carries the diff
    runs = f"{trained['moe-a']['run']},{trained['moe-b']['run']}"
    md = trained["client"].request("GET", f"/runs/compare?runs={runs}&render=markdown").text
    assert "## Routing (probe set)" in md
    assert f"{d['summary']['same_top1'] * 100:.1f}% of the probe tokens keep" in md
    assert console.errors == [], console.errors


def test_run_page_gradients_tab_draws_the_grad_norm_heatmap(
    page: Page, context: BrowserContext, console: Console, trained
):
    sign_in(context)
    run = trained["client"].get_run(trained["moe-a"]["run"])
    keys = [k for k in run["summary"] if k.startswith("grad_norm/")]
    # 2 layers × (attn, router, experts) + 2 layers × 4 experts
    assert len(keys) == 2 * 3 + 2 * 4, keys
    assert run["summary"]["grad_norm/layer0/attn"]["count"] == 10  # every 2 of 20 steps
    page.goto(f"/runs/{run['id']}?tab=gradients")
    panel = page.get_by_test_id("grad-norm-panel")
    expect(panel).to_contain_text("14 rows × 10 logged steps", timeout=60_000)
    expect(panel).to_contain_text("L1 expert 3")
    expect(panel).to_contain_text("L0 attn")
    shot(page, "93-grad-heatmap")
    assert console.errors == [], console.errors
