"""The Inspector's Graph tab in a real browser against a live hub: a tiny training job makes
a commit (tests/helpers.py LIVE_TRAIN), an inspect job exports its graph in the sandbox, and
the page — opened from the commit page's Inspect button — draws it folded by module, expands
a block, finds a node by search and shows its details; a diff against a top-k 4 copy colours
the changed top-k node. Screenshots: test-artifacts/screenshots/93-inspector-graph-moe.png (the
MoE layer open), 93-inspector-graph.png (a searched node) and 93-inspector-graph-diff.png. Needs the built SPA and chromium, as test_dashboard.py does."""

from __future__ import annotations

import copy
import time

import pytest

from tests.e2e.conftest import LiveHub
from tests.e2e.test_dashboard import ARGS, CHROMIUM, Console, shot  # noqa: F401  (skips when not built)
from tests.helpers import LIVE_RES as RES
from tests.helpers import LIVE_TRAIN as TRAIN
from tests.helpers import TERMINAL
from tests.sandbox.conftest import needs_sandbox

pytest.importorskip("playwright")
from playwright.sync_api import BrowserContext, Page, expect  # noqa: E402

from hub.client import Client  # noqa: E402

pytestmark = [pytest.mark.e2e, needs_sandbox]

USER, PASSWORD = "graphuser", "correct horse battery staple"
REPO = f"{USER}/moe-graph"
INSPECT = {"inspect": {"what": "graph", "seq_len": 16, "batch": 1}}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS, "headless": True}


@pytest.fixture
def browser_context_args(browser_context_args, live_hub):
    return {
        **browser_context_args,
        "viewport": {"width": 1400, "height": 950},
        "base_url": live_hub.url,
    }


def _wait(c: Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while True:
        j = c._json("GET", f"/jobs/{job_id}")
        if j["status"] in TERMINAL or time.time() > deadline:
            return j
        time.sleep(1)


def _launch(c: Client, **body) -> dict:
    return c._json("POST", "/jobs", json={"project": f"{USER}/inspect", "resources": RES, **body})


@pytest.fixture(scope="module")
def seeded(live_hub: LiveHub) -> dict:
    live_hub.cli("admin", "create-user", "--user", USER, "--password", PASSWORD, check=True)
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    c = Client(url=live_hub.url, token=token)
    c.create_repo(REPO)
    top4 = copy.deepcopy(TRAIN)
    top4["model"]["top_k"] = 4
    trained = {}
    for branch, cfg in (("main", TRAIN), ("top4", top4)):
        if branch != "main":
            c.create_branch(REPO, branch, "main")
        j = _wait(c, _launch(c, kind="train", config=cfg, target=f"{REPO}@{branch}")["id"])
        assert j["status"] == "succeeded", j
        trained[branch] = j["result"]["commit"]
    for sha in trained.values():
        j = _wait(c, _launch(c, kind="inspect", config=INSPECT, base=f"{REPO}@{sha}")["id"])
        assert j["status"] == "succeeded", j
    return {"client": c, "commits": trained}


def sign_in(context: BrowserContext) -> None:
    csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = context.request.post(
        "/api/v1/auth/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert r.ok, r.text()


def test_graph_from_the_commit_page_expand_search_details(
    page: Page, context: BrowserContext, seeded
):
    console = Console(page)
    sign_in(context)
    sha = seeded["commits"]["top4"]
    page.goto(f"/models/{REPO}/commit/{sha}")
    page.get_by_role("link", name="Inspect", exact=True).click()
    expect(page).to_have_url(f"/models/{REPO}/commit/{sha}/inspect", timeout=10_000)
    graph = page.get_by_role("img", name="Computation graph")
    expect(graph).to_be_visible(timeout=30_000)
    # folded: the model's top-level modules only
    expect(graph.locator('[data-item="group:blocks.1"]')).to_be_visible()
    expect(graph.locator('[data-item="group:blocks.1.ffn"]')).to_have_count(0)
    # expand block 1, then its MoE layer: router, dispatch and the experts appear
    graph.locator('[data-item="group:blocks.1"]').click()
    expect(graph.locator('[data-item="group:blocks.1.ffn"]')).to_be_visible()
    graph.locator('[data-item="group:blocks.1.ffn"]').click()
    for part in ("router", "dispatch", "expert.0", "expert.3"):
        expect(graph.locator(f'[data-item="group:blocks.1.ffn.{part}"]')).to_be_visible()
    page.wait_for_timeout(300)  # the view's move to the opened layer
    shot(page, "93-inspector-graph-moe")
    # search: the router's top-k, focused and detailed
    page.get_by_role("searchbox", name="Search nodes").fill("topk")
    results = page.get_by_role("list", name="Search results")
    results.get_by_role("button").filter(has_text="blocks.1.ffn.router").first.click()
    expect(graph.locator('[data-item^="topk"].is-selected')).to_be_visible()
    details = page.get_by_role("complementary", name="Selected node")
    expect(details).to_contain_text("aten.topk.default")
    expect(details).to_contain_text("blocks.1.ffn.router")
    expect(details).to_contain_text('"arg1":4')
    shot(page, "93-inspector-graph")

    # diff against the top-k 2 commit: the top-k node is changed
    page.get_by_role("textbox", name="Compare with commit").fill(
        f"{REPO}@{seeded['commits']['main']}"
    )
    page.get_by_role("button", name="Diff", exact=True).click()
    expect(page.locator(".graph-diff-summary")).to_contain_text("changed", timeout=20_000)
    expect(graph.locator('[data-item^="topk"].st-changed')).to_be_visible()
    shot(page, "93-inspector-graph-diff")
    # an open group is a frame: its header folds it (and what is open inside it) again
    page.get_by_role("button", name="Fit").click()
    graph.locator('[data-frame="blocks.1.ffn"]').get_by_role(
        "button", name="collapse blocks.1.ffn"
    ).click()
    expect(graph.locator('[data-item="group:blocks.1.ffn"]')).to_be_visible()
    expect(graph.locator('[data-item^="topk"]')).to_have_count(0)
    expect(graph.locator('[data-frame="blocks.1"]')).to_be_visible()
    console.check()
