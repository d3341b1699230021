"""The profile page's memory view and the profile diff page in a real browser (Debian's
Chromium through Playwright) against a live hub running real jobs (tiny configs): two commits
(top_k 2, then 4), their profiles paired through the profile-diff API, then

- the profile page shows the stacked memory timeline by category, the tensors live at the
  peak and the lifetime bars (hover: operator, module, size);
- the commit page's "Profile & memory" opens the Inspector's Memory tab with the same view;
- "compare with…" leads to the differential flame graph (frames coloured by change) and the
  ratio table, where the router's top-k has a ratio;
- on a third, unprofiled commit's Memory tab "Profile this commit" launches a profile (default
  config) and shows its memory when it ends; "Compare with commit" takes another ref (an
  unknown one is a message), profiles it with the same settings and opens the diff.

Screenshots: test-artifacts/screenshots/99-profile-memory.png, 99-profile-diff.png,
99-profile-by-ref.png.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import LiveHub
from tests.e2e.test_dashboard import ARGS, CHROMIUM, SHOTS, Console, shot  # noqa: F401  (skips when not built)
from tests.e2e.test_dashboard_jobs import MODEL, TINY, wait
from tests.helpers import LIVE_RES as RES

pytest.importorskip("playwright")
from playwright.sync_api import BrowserContext, Page, expect  # noqa: E402

from hub.client import Client  # noqa: E402

pytestmark = pytest.mark.e2e

USER, PASSWORD = "memuser", "correct horse battery staple"
PROFILE = {"data": TINY["data"], "profile": {"steps": 2, "warmup": 1, "batch_size": 4}}


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
def profiles(live_hub: LiveHub) -> dict:
    live_hub.cli("admin", "create-user", "--user", USER, "--password", PASSWORD, check=True)
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    c = Client(url=live_hub.url, token=token)
    c.create_repo(f"{USER}/moe")
    shas = []
    for k in (2, 4):
        cfg = {
            **TINY,
            "model": {**MODEL, "top_k": k},
            "train": {**TINY["train"], "steps": 6, "checkpoint_every": 6, "eval_every": 6},
        }
        job = c._json(
            "POST",
            "/jobs",
            json={
                "project": f"{USER}/seed",
                "kind": "train",
                "config": cfg,
                "target": f"{USER}/moe@main",
                "resources": RES,
            },
        )
        j = wait(c, job["id"], timeout=300)
        assert j["status"] == "succeeded", j["reason"]
        shas.append(j["result"]["commit"])
    prep = c._json(
        "POST",
        "/jobs/profile-diff",
        json={
            "a": f"{USER}/moe@{shas[0]}",
            "b": f"{USER}/moe@{shas[1]}",
            "config": PROFILE,
            "project": f"{USER}/seed",
            "resources": RES,
        },
    )
    for side in ("a", "b"):
        j = wait(c, prep[side]["job"], timeout=300)
        assert j["status"] == "succeeded", j["reason"]
    return {"a": prep["a"]["job"], "b": prep["b"]["job"], "shas": shas, "token": token}


def sign_in(context: BrowserContext) -> None:
    csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = context.request.post(
        "/api/v1/auth/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert r.ok, r.text()


def test_memory_view_and_differential_flame_graph(
    page: Page, context: BrowserContext, console: Console, profiles
):
    sign_in(context)
    a, b = profiles["a"], profiles["b"]
    page.goto(f"/profiles/{a}")
    mem = page.get_by_test_id("memory-lifetimes")
    try:
        expect(mem).to_be_visible(timeout=20_000)
    except AssertionError:
        shot(page, "99-profile-memory-failed")
        console.check()  # a crash of the page says why
        raise
    stack = page.get_by_test_id("memory-stack")
    expect(stack).to_have_attribute("aria-label", re.compile(r"peak \d"))
    # One filled band per category that holds memory: parameters and activations at least.
    assert stack.locator("path").count() >= 3
    expect(stack.locator("path title", has_text="parameter")).to_have_count(1)
    expect(stack.locator("path title", has_text="activation")).to_have_count(1)
    peak = page.get_by_test_id("peak-table")
    assert peak.locator("tbody tr").count() > 3
    expect(peak).to_contain_text("parameter")
    expect(peak).to_contain_text("aten::")
    bars = page.get_by_test_id("lifetime-bars")
    assert bars.locator("rect").count() >= 20
    title = bars.locator("g title").first.text_content()
    assert re.search(r"(KiB|MiB|B) · \w+ · ", title), title
    page.get_by_label("Which tensors").select_option("longest")
    # The longest-living are the parameters and optimizer state, alive all along.
    expect(bars.locator("g title").first).to_contain_text("before profiling → end")
    page.get_by_label("Which tensors").select_option("largest")
    mem.scroll_into_view_if_needed()
    # The section alone, without the sticky top bar drawn over it.
    page.add_style_tag(content=".topbar { position: static !important; }")
    mem.locator("..").screenshot(path=str(SHOTS / "99-profile-memory.png"))

    # Compare with… the other commit's profile, then the differential flame graph.
    page.get_by_label("Profile B").select_option(b)
    page.get_by_test_id("diff-link").click()
    expect(page).to_have_url(re.compile(rf"/profiles/diff\?a={a}&b={b}$"))
    flame = page.get_by_test_id("diff-flame")
    expect(flame).to_be_visible(timeout=20_000)
    assert flame.locator("rect").count() > 10
    fills = set(flame.locator("rect").evaluate_all("els => els.map(e => e.getAttribute('fill'))"))
    assert len(fills) > 3, fills  # coloured by change, not one colour
    expect(flame.locator("title", has_text="moe::router").first).to_have_count(1)
    table = page.get_by_test_id("diff-table")
    topk = table.locator("tr", has=page.locator("td", has_text=re.compile(r"^aten::topk$")))
    expect(topk).to_have_count(1)
    expect(topk.get_by_test_id("diff-ratio")).to_have_text(re.compile(r"^\d+\.\d\d×$"))
    flame.locator("g", has=page.locator("title", has_text="moe::router")).first.hover()
    expect(flame).to_contain_text("B/A")
    shot(page, "99-profile-diff")

    # From the commit page: "Profile & memory" opens the Inspector's Memory tab.
    page.goto(f"/models/{USER}/moe/commit/{profiles['shas'][0]}")
    page.get_by_role("link", name="Profile & memory").click()
    expect(page).to_have_url(re.compile(r"/inspect\?tab=memory$"))
    expect(page.get_by_role("tab", name="Memory")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("memory-lifetimes")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("link", name=a)).to_have_attribute("href", f"/profiles/{a}")
    console.check()


def test_profile_this_commit_and_compare_by_ref(
    page: Page, context: BrowserContext, console: Console, profiles, live_hub: LiveHub
):
    c = Client(url=live_hub.url, token=profiles["token"])
    cfg = {
        **TINY,
        "model": {**MODEL, "top_k": 3},
        "train": {**TINY["train"], "steps": 6, "checkpoint_every": 6, "eval_every": 6},
    }
    job = c._json(
        "POST",
        "/jobs",
        json={
            "project": f"{USER}/seed",
            "kind": "train",
            "config": cfg,
            "target": f"{USER}/moe@main",
            "resources": RES,
        },
    )
    j = wait(c, job["id"], timeout=300)
    assert j["status"] == "succeeded", j["reason"]
    sha = j["result"]["commit"]
    assert sha not in profiles["shas"]

    sign_in(context)
    page.goto(f"/models/{USER}/moe/commit/{sha}/inspect?tab=memory")
    expect(page.get_by_text("No finished profile of this commit")).to_be_visible(timeout=20_000)
    expect(page.locator("#profile-project")).to_have_value(re.compile(rf"^{USER}/"))
    page.get_by_role("button", name="Profile this commit").click()
    status = page.get_by_test_id("profile-this-commit").get_by_role("status")
    expect(status).to_contain_text(re.compile(r"Profile job \w+: (queued|running|succeeded)"))
    new = status.get_by_role("link").text_content()
    expect(page.get_by_test_id("memory-lifetimes")).to_be_visible(timeout=300_000)
    launched = c._json("GET", f"/jobs/{new}")
    assert launched["kind"] == "profile" and launched["status"] == "succeeded"
    assert launched["base"]["commit"] == sha and launched["config"] == {}
    expect(page.get_by_role("link", name=new).first).to_have_attribute("href", f"/profiles/{new}")

    # Compare with another commit by ref: an unknown ref is a message, not a launch.
    form = page.get_by_test_id("compare-by-ref")
    form.get_by_label("Commit B").fill("no-such-branch")
    form.get_by_role("button", name="Compare by commit").click()
    expect(form.get_by_role("alert")).to_contain_text("has no branch, tag or commit")
    # The first commit (profiled with other settings): profiled again with this one's settings.
    form.get_by_label("Commit B").fill(profiles["shas"][0])
    form.get_by_role("button", name="Compare by commit").click()
    progress = page.get_by_test_id("compare-progress")
    expect(progress).to_contain_text(f"profile {new} reused")
    expect(progress).to_contain_text(
        re.compile(rf"profiling B {USER}/moe@{profiles['shas'][0][:12]}…")
    )
    shot(page, "99-profile-by-ref")
    expect(page).to_have_url(re.compile(rf"/profiles/diff\?a={new}&b=\w+$"), timeout=300_000)
    b = re.search(r"b=(\w+)$", page.url).group(1)
    assert b not in (profiles["a"], profiles["b"])
    assert c._json("GET", f"/jobs/{b}")["config"] == {}
    flame = page.get_by_test_id("diff-flame")
    expect(flame).to_be_visible(timeout=20_000)
    assert flame.locator("rect").count() > 10
    console.check("status of 404")  # the unknown ref's answer, shown as a message above
