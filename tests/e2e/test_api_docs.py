"""The API docs work on a machine without internet: Swagger UI (/api/docs) and ReDoc
(/api/redoc) come from the hub itself (drf-spectacular-sidecar), in Debian's Chromium with
every request to anything but the hub blocked, and Swagger UI's "Authorize" takes a token that
"Try it out" then uses. Screenshots: test-artifacts/screenshots/98-api-docs-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.browser import ARGS, CHROMIUM, SHOTS
from tests.e2e.conftest import LiveHub

pytest.importorskip("playwright")
from playwright.sync_api import Page, Route, expect  # noqa: E402

pytestmark = pytest.mark.e2e

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


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
def offline(page: Page, live_hub: LiveHub) -> list[str]:
    """Every request that is not to the hub is aborted, and recorded."""
    blocked: list[str] = []

    def route(r: Route) -> None:
        if r.request.url.startswith(live_hub.url + "/"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return blocked


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_swagger_ui_renders_offline_and_authorize_takes_a_token(
    page: Page, live_hub: LiveHub, offline: list[str]
):
    token = live_hub.make_user("docsuser")
    page.goto("/api/docs")
    ops = page.locator(".opblock")
    expect(ops.first).to_be_visible(timeout=30_000)
    assert ops.count() >= 70
    expect(page.locator("#operations-whoami-whoami")).to_be_visible()

    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    expect(dialog).to_be_visible()
    bearer = dialog.locator("form", has_text="bearerAuth")
    bearer.locator("input").first.fill(token)
    bearer.locator("button.authorize").click()
    expect(bearer.locator("button", has_text="Logout")).to_be_visible()
    _shot(page, "98-api-docs-authorize")
    bearer.locator("button.btn-done").click()
    expect(dialog).to_have_count(0)

    # "Try it out" sends the token: whoami answers with the user.
    whoami = page.locator("#operations-whoami-whoami")
    whoami.locator(".opblock-summary").click()
    whoami.get_by_role("button", name="Try it out").click()
    whoami.get_by_role("button", name="Execute").click()
    live = whoami.locator(".live-responses-table")
    expect(live.locator("tbody .response-col_status").first).to_have_text("200", timeout=15_000)
    expect(live.locator("tbody").first).to_contain_text('"docsuser"')
    _shot(page, "98-api-docs-swagger")
    assert offline == [], f"the docs page reached beyond the hub: {offline}"


def test_redoc_renders_offline(page: Page, live_hub: LiveHub, offline: list[str]):
    page.goto("/api/redoc")
    expect(page.get_by_text("Who the caller is").first).to_be_attached(timeout=30_000)
    expect(page.get_by_text("Create a repo").first).to_be_attached()
    # The security schemes are documented: the Bearer token beside the session cookie.
    expect(page.get_by_text("bearerAuth").first).to_be_attached()
    _shot(page, "98-api-docs-redoc")
    # Only the bundle's own "API docs by Redocly" logo is asked for outside (an <img> that
    # hides itself when it fails); no script, stylesheet or font.
    outside = [u for u in offline if u != "https://cdn.redoc.ly/redoc/logo-mini.svg"]
    assert outside == [], f"the docs page reached beyond the hub: {outside}"
