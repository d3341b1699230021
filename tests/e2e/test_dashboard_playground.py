"""The Playground page in a real browser (Debian's Chromium through Playwright) against a live
hub whose model was trained by a real job: a 20-step training job (tests/helpers LIVE_TRAIN)
commits into a repo through the sandboxed job worker; from the repo page the Playground link
opens the page, a prompt streams tokens from the sandboxed inference worker, every token is
underlined in its expert's colour, hovering one shows its routing per MoE layer, and the
stats line appears. No console errors. Screenshot: test-artifacts/screenshots/80-playground.png.
Needs the built SPA and chromium, as tests/e2e/test_dashboard.py does."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import LiveHub
from tests.e2e.test_dashboard import ARGS, CHROMIUM, Console, shot  # noqa: F401  (skips when not built)
from tests.helpers import LIVE_RES, LIVE_TRAIN, TERMINAL

pytest.importorskip("playwright")
from playwright.sync_api import BrowserContext, Page, expect  # noqa: E402

from hub.client import Client  # noqa: E402

pytestmark = pytest.mark.e2e

USER, PASSWORD = "playuser", "correct horse battery staple"


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


@pytest.fixture(scope="module")
def trained(live_hub: LiveHub) -> dict:
    """USER/moe with a commit produced by a real 20-step training job."""
    live_hub.cli("admin", "create-user", "--user", USER, "--password", PASSWORD, check=True)
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    c = Client(url=live_hub.url, token=token)
    c.create_repo(f"{USER}/moe")
    job = c._json(
        "POST",
        "/jobs",
        json={
            "project": f"{USER}/play",
            "kind": "train",
            "config": LIVE_TRAIN,
            "target": f"{USER}/moe@main",
            "resources": LIVE_RES,
        },
    )
    deadline = time.time() + 300
    while True:
        j = c._json("GET", f"/jobs/{job['id']}")
        if j["status"] in TERMINAL or time.time() > deadline:
            break
        time.sleep(1)
    assert j["status"] == "succeeded", (j["status"], j["reason"])
    return {"client": c, "commit": j["result"]["commit"]}


def sign_in(context: BrowserContext) -> None:
    csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = context.request.post(
        "/api/v1/auth/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert r.ok, r.text()


def test_playground_streams_tokens_with_their_experts(
    page: Page, context: BrowserContext, console: Console, trained
):
    sign_in(context)
    page.goto(f"/models/{USER}/moe")
    page.get_by_role("link", name="Playground").click()
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()
    form = page.get_by_role("form", name="Generation parameters")
    form.get_by_label("Prompt").fill("def train(model")
    form.get_by_label("Max new tokens").fill("48")
    form.get_by_label("Seed").fill("3")
    form.get_by_role("button", name="Generate").click()
    stats = page.get_by_label("Generation stats")
    expect(stats).to_contain_text("tokens/s", timeout=120_000)
    # 48 tokens, or fewer if the model chose to end its text (finish reason eos).
    n = int(re.match(r"(\d+) tokens · (length|eos)", stats.inner_text()).group(1))
    assert 1 <= n <= 48
    tokens = page.locator("[data-token]")
    expect(tokens).to_have_count(n)
    # The commit generated from is the trained one, linked.
    expect(page.get_by_role("link", name=trained["commit"][:10])).to_be_visible()
    # Every token underlined in an expert's colour; hovering shows the routing of each layer.
    assert all("solid" in (tokens.nth(i).get_attribute("style") or "") for i in range(n))
    tokens.nth(n // 2).hover()
    detail = page.get_by_role("region", name="Token routing")
    expect(detail).to_contain_text(f"token #{n // 2}")
    expect(detail).to_contain_text("layer 0")  # LIVE_TRAIN: n_dense_layers 0, every layer MoE
    expect(detail).to_contain_text("layer 1")
    assert detail.locator("[data-testid^=route-]").count() == 2 * 2  # 2 layers × top-2
    expect(page.get_by_role("figure", name="Routing per layer")).to_be_visible()
    shot(page, "80-playground")
    assert console.errors == [], console.errors
