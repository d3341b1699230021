"""Model cards and model search end to end, against a live hub (``hub serve``: the embedded
Elasticsearch-compatible server, the indexing queue) in a real browser (Debian's Chromium):

- the repo page renders a README.md card (front matter fields, sanitised Markdown: a
  payload in the README never runs), the commit page that commit's card;
- a repo without a README shows a "generated card" from its lineage (the run that produced
  its head), with "Download README.md" and "Add this card", which commits it;
- the Models page searches by text and ``metric:``, and filters by the license facet;
- ``hub search`` and ``Client.search_models`` find the same models; another user's private
  model never appears.

Screenshots: test-artifacts/screenshots/95-repo-card.png, 96-generated-card.png,
97-models-search.png.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.conftest import LiveHub
from tests.e2e.test_dashboard import ARGS, CHROMIUM, Console, shot  # noqa: F401  (skips when not built)

pytest.importorskip("playwright")
from playwright.sync_api import BrowserContext, Page, expect  # noqa: E402

from hub.client import Client  # noqa: E402

pytestmark = pytest.mark.e2e

USER, PASSWORD = "carduser", "correct horse battery staple"

README = """---
license: apache-2.0
tags: [moe, text-generation]
base_model: carduser/dense-base
datasets: [tinystories]
---
# MoE small

A **sparse** model: eight experts behind a learned top-2 router.

| experts | top-k |
| ---: | ---: |
| 8 | 2 |

<img src=x onerror="window.__xss=1">
[click me](javascript:window.__xss=2)
<script>window.__xss = 3</script>
"""


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


def _until(fn, timeout: float = 60):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value or time.time() > deadline:
            return value
        time.sleep(0.5)


@pytest.fixture(scope="session")  # once: pytest-playwright regroups browser tests across modules
def seeded(live_hub: LiveHub, tmp_path_factory) -> dict:
    """carduser's three models (a card, a plain card, one made by a run with no card) and
    another user's private model with the same tag."""
    live_hub.cli("admin", "create-user", "--user", USER, "--password", PASSWORD, check=True)
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    c = Client(url=live_hub.url, token=token)
    tmp = tmp_path_factory.mktemp("cards")
    for name, readme in (
        ("moe-small", README),
        ("dense-base", "---\nlicense: mit\ntags: [dense]\n---\nA dense baseline.\n"),
    ):
        c.create_repo(f"{USER}/{name}", description=f"{name} checkpoints")
        d = tmp / name
        d.mkdir()
        (d / "README.md").write_text(readme)
        (d / "weights.bin").write_bytes(name.encode() * 64)
        c.push(d, repo=f"{USER}/{name}", message="first weights and card")
    run = c.init_run(f"{USER}/exp", name="finetune-top2", spool_dir=tmp / "spool")
    for step, loss in ((0, 3.5), (10, 2.2), (20, 1.6)):
        run.log({"val_loss": loss}, step=step)
    run.finish()
    c.create_repo(f"{USER}/tuned", description="fine-tuned without a card")
    d = tmp / "tuned"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model": {"n_experts": 8, "top_k": 2}}))
    (d / "weights.bin").write_bytes(b"t" * 256)
    c.push(d, repo=f"{USER}/tuned", message="fine-tuned 20 steps", run_id=run.id)

    other = Client(url=live_hub.url, token=live_hub.make_user("cardrival"))
    other.create_repo("cardrival/hidden-moe", private=True)
    d = tmp / "hidden"
    d.mkdir()
    (d / "README.md").write_text("---\nlicense: apache-2.0\ntags: [moe]\n---\nsecret\n")
    other.push(d, repo="cardrival/hidden-moe", message="secret card")
    # indexing is asynchronous (a queue): wait until every model is searchable
    assert _until(
        lambda: (
            len(c.search_models(q="namespace:carduser")["results"]) == 3
            and other.search_models(q="secret")["results"]
        )
    ), c.search_models(q="namespace:carduser")
    return {"client": c, "token": token, "run": run.id}


def sign_in(context: BrowserContext) -> None:
    csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = context.request.post(
        "/api/v1/auth/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert r.ok, r.text()


def test_cli_and_sdk_search_by_tag_license_and_metric(live_hub: LiveHub, seeded):
    c = seeded["client"]
    found = c.search_models(tag="moe")
    assert [m["id"] for m in found["results"]] == [f"{USER}/moe-small"]  # not the rival's
    assert [m["id"] for m in c.search_models(metric="val_loss<2.0")["results"]] == [f"{USER}/tuned"]
    r = live_hub.cli("search", "--license", "mit", "--json", token=seeded["token"], check=True)
    assert [m["id"] for m in json.loads(r.stdout)["results"]] == [f"{USER}/dense-base"]
    r = live_hub.cli("search", "base_model:carduser/dense-base", token=seeded["token"], check=True)
    assert r.stdout.split()[0] == f"{USER}/moe-small" and "apache-2.0" in r.stdout
    anon = live_hub.cli("search", "secret", "--json", token="", check=True)
    assert json.loads(anon.stdout)["results"] == []


def test_repo_page_renders_the_card_and_no_payload_runs(
    page: Page, context: BrowserContext, seeded
):
    console = Console(page)
    sign_in(context)
    page.goto(f"/models/{USER}/moe-small")
    card = page.get_by_test_id("model-card")
    expect(card.get_by_role("heading", name="MoE small")).to_be_visible()
    expect(card.locator("strong", has_text="sparse")).to_be_visible()
    expect(card.locator("table td").first).to_have_text("8")
    expect(card.get_by_label("Card metadata")).to_contain_text("apache-2.0")
    expect(card.get_by_label("Card metadata")).to_contain_text("carduser/dense-base")
    expect(card.get_by_text("text-generation")).to_be_visible()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None, "markup from the README was executed"
    assert card.locator("script, [onerror]").count() == 0
    assert card.locator('a[href^="javascript"]').count() == 0
    shot(page, "95-repo-card")
    # the commit page shows that commit's card
    head = seeded["client"].branch_info(f"{USER}/moe-small", "main")["commit"]
    page.goto(f"/models/{USER}/moe-small/commit/{head}")
    expect(
        page.get_by_test_id("model-card").get_by_role("heading", name="MoE small")
    ).to_be_visible()
    console.check()


def test_a_repo_without_card_shows_a_generated_one_and_can_add_it(
    page: Page, context: BrowserContext, seeded
):
    console = Console(page)
    sign_in(context)
    page.goto(f"/models/{USER}/tuned")
    card = page.get_by_test_id("model-card")
    expect(card.get_by_text("generated card")).to_be_visible()
    expect(card.get_by_test_id("card-body")).to_contain_text(seeded["run"])
    expect(card.get_by_test_id("card-body")).to_contain_text("val_loss")
    expect(card.get_by_test_id("card-body")).to_contain_text("n_experts")
    download = card.get_by_role("link", name="Download README.md")
    expect(download).to_have_attribute("download", "README.md")
    shot(page, "96-generated-card")
    card.get_by_role("button", name="Add this card").click()
    expect(card.locator(".badge", has_text="README.md")).to_be_visible()
    expect(card.get_by_text("generated card")).to_have_count(0)
    files = [f["path"] for f in seeded["client"].list_files(f"{USER}/tuned")["files"]]
    assert "README.md" in files
    console.check()


def test_models_page_searches_and_filters_by_facet(page: Page, context: BrowserContext, seeded):
    console = Console(page)
    sign_in(context)
    page.goto("/models")
    results = page.get_by_role("table", name="Models found")
    expect(results.get_by_role("link", name=f"{USER}/moe-small")).to_be_visible()
    expect(results.get_by_role("link", name="cardrival/hidden-moe")).to_have_count(0)
    box = page.get_by_role("searchbox", name="Search models")
    box.fill("metric:val_loss<2.0")
    box.press("Enter")
    expect(results.get_by_role("link", name=f"{USER}/tuned")).to_be_visible()
    expect(results.get_by_role("link", name=f"{USER}/moe-small")).to_have_count(0)
    box.fill("experts router")
    box.press("Enter")
    expect(results.get_by_role("link", name=f"{USER}/moe-small")).to_be_visible()
    box.fill("")
    box.press("Enter")
    filters = page.get_by_role("complementary", name="Filters")
    # a facet is a link-like filter: the URL changes (a router transition), then the box
    mit = filters.get_by_role("checkbox", name="mit")
    mit.click()
    expect(mit).to_be_checked()
    expect(page).to_have_url(re.compile(r"license=mit"))
    expect(results.get_by_role("link", name=f"{USER}/dense-base")).to_be_visible()
    expect(results.get_by_role("link", name=f"{USER}/moe-small")).to_have_count(0)
    mit.click()
    expect(mit).not_to_be_checked()
    expect(results.get_by_role("link", name=f"{USER}/moe-small")).to_be_visible()
    shot(page, "97-models-search")
    console.check()
