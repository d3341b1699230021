"""The Jobs and Profile pages in a real browser (Debian's Chromium through Playwright) against
a live hub running real jobs through the sandboxed worker (tiny configs):

- launch from the form: an invalid config shows inline errors and launches nothing; fixed, a
  tiny train job launches, its live log tail shows lines, cancel → cancelled;
- seeded through REST: a 20-step train job into a repo, then a profile job of its commit; the
  profile page renders the op table, module share, flame graph and memory chart without
  console errors, and comparing the profile with itself gives ratios of 1.00×.

Screenshots go to test-artifacts/screenshots/ (70-*). Needs the built SPA and chromium, as
tests/e2e/test_dashboard.py does.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.conftest import LiveHub
from tests.e2e.test_dashboard import ARGS, CHROMIUM, Console, shot  # noqa: F401  (skips when not built)
from tests.helpers import LIVE_RES as RES
from tests.helpers import TERMINAL

pytest.importorskip("playwright")
from playwright.sync_api import BrowserContext, Page, expect  # noqa: E402

from hub.client import Client  # noqa: E402

pytestmark = pytest.mark.e2e

USER, PASSWORD = "jobsuser", "correct horse battery staple"
MODEL = {
    "n_layer": 2,
    "n_embd": 32,
    "n_head": 2,
    "n_experts": 4,
    "expert_hidden": 32,
    "top_k": 2,
    "block_size": 64,
}
DATA = {"max_bytes": 200_000}
TINY = {
    "model": MODEL,
    "data": DATA,
    "train": {
        "steps": 2000,
        "batch_size": 4,
        "warmup_steps": 2,
        "checkpoint_every": 500,
        "eval_every": 500,
        "log_every": 5,
        "eval_tokens": 4096,
    },
}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS, "headless": True}


@pytest.fixture
def browser_context_args(browser_context_args, live_hub):
    return {
        **browser_context_args,
        "viewport": {"width": 1280, "height": 900},
        "base_url": live_hub.url,
        "accept_downloads": True,
    }


@pytest.fixture
def console(page: Page) -> Console:
    return Console(page)


@pytest.fixture(scope="module")
def seeded(live_hub: LiveHub) -> dict:
    """A user with a password, and a short training job into USER/moe, launched now so that it
    runs while the form flow is tested."""
    live_hub.cli("admin", "create-user", "--user", USER, "--password", PASSWORD, check=True)
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    c = Client(url=live_hub.url, token=token)
    c.create_repo(f"{USER}/moe")
    cfg = {
        **TINY,
        "train": {**TINY["train"], "steps": 20, "checkpoint_every": 20, "eval_every": 20},
    }
    train = c._json(
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
    return {"client": c, "train": train["id"]}


def wait(c: Client, job_id: str, until=TERMINAL, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while True:
        j = c._json("GET", f"/jobs/{job_id}")
        if j["status"] in until or time.time() > deadline:
            return j
        time.sleep(1)


def sign_in(context: BrowserContext) -> None:
    # As the dashboard does: the sign-in is CSRF-protected like every session write.
    csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = context.request.post(
        "/api/v1/auth/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert r.ok, r.text()


def test_launch_form_validates_then_launches_follows_logs_and_cancels(
    page: Page, context: BrowserContext, console: Console, seeded
):
    c: Client = seeded["client"]
    sign_in(context)
    page.goto(f"/jobs/new?project={USER}/ui")
    editor = page.get_by_label("Config (JSON)")
    expect(page.get_by_text(re.compile(r"Config reference \(\d+ fields\)"))).to_be_visible()
    launch = page.get_by_role("button", name="Launch train job")

    bad = json.loads(json.dumps(TINY))
    bad["model"]["top_k"] = 9
    bad["train"]["stepz"] = 5
    editor.fill(json.dumps(bad, indent=2))
    errors = page.get_by_test_id("config-errors")
    expect(errors).to_contain_text("model.top_k: must be between 2 and 8")
    expect(errors).to_contain_text("train.stepz: unknown key (did you mean 'steps'?)")
    expect(launch).to_be_disabled()
    # A cross-field rule only the hub knows: its answer shows the same way.
    cross = json.loads(json.dumps(TINY))
    cross["model"]["top_k"] = 8
    editor.fill(json.dumps(cross, indent=2))
    expect(errors).to_contain_text("model.top_k: must be ≤ n_experts (4)")
    expect(launch).to_be_disabled()
    shot(page, "70-job-launch-invalid")
    assert not [j for j in c._json("GET", "/jobs")["results"] if j["project"] == f"{USER}/ui"], (
        "something launched"
    )
    # The hub's 400 invalid_config answer to /jobs/validate is the only console error so far.
    console.check(r"status of 400")

    editor.fill(json.dumps(TINY, indent=2))
    expect(page.get_by_test_id("config-valid")).to_be_visible()
    page.get_by_label("CPUs").fill("1")
    page.get_by_label("Memory (MB)").fill("3072")
    page.get_by_label("Time limit (s)").fill("300")
    launch.click()
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f]{12}$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", name=re.compile(f"train job {job_id}"))).to_be_visible()

    # The live tail: lines arrive over SSE while the job runs.
    log = page.get_by_test_id("log-view")
    expect(page.get_by_test_id("log-state")).to_contain_text("live", timeout=30_000)
    expect(log).to_contain_text("model:", timeout=120_000)
    expect(page.get_by_role("progressbar")).to_be_visible(timeout=60_000)
    assert log.locator(".log-line").count() >= 2
    shot(page, "71-job-running")

    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_test_id("job-status")).to_contain_text("cancelled", timeout=60_000)
    expect(page.get_by_role("list", name="Status transitions")).to_contain_text("cancel")
    expect(log).to_contain_text("cancel", timeout=15_000)
    assert c._json("GET", f"/jobs/{job_id}")["status"] == "cancelled"
    expect(page.get_by_role("button", name="Relaunch")).to_be_visible()
    shot(page, "72-job-cancelled")

    page.goto(f"/jobs?project={USER}/ui&status=cancelled")
    expect(page.get_by_role("link", name=job_id, exact=True)).to_be_visible()
    shot(page, "73-jobs-list")
    console.check()


def test_profile_page_renders_and_compares(
    page: Page, context: BrowserContext, console: Console, seeded
):
    c: Client = seeded["client"]
    train = wait(c, seeded["train"])
    assert train["status"] == "succeeded", train["reason"]
    prof = c._json(
        "POST",
        "/jobs",
        json={
            "project": f"{USER}/seed",
            "kind": "profile",
            "config": {"data": DATA, "profile": {"steps": 2, "warmup": 1, "batch_size": 4}},
            "base": f"{USER}/moe@main",
            "resources": RES,
        },
    )
    prof = wait(c, prof["id"])
    assert prof["status"] == "succeeded", prof["reason"]
    assert prof["base"]["commit"] == train["result"]["commit"]

    sign_in(context)
    page.goto(f"/jobs/{train['id']}")
    expect(page.get_by_test_id("result-commit")).to_have_attribute(
        "href", f"/models/{USER}/moe/commit/{train['result']['commit']}"
    )
    expect(page.get_by_role("link", name=train["run_id"])).to_have_attribute(
        "href", f"/runs/{train['run_id']}"
    )

    # The commit the job wrote links back to both its run and its job.
    page.get_by_test_id("result-commit").click()
    lineage = page.get_by_role("region", name="Lineage")
    expect(lineage.get_by_role("link", name=train["run_id"], exact=True)).to_have_attribute(
        "href", f"/runs/{train['run_id']}"
    )
    expect(lineage.get_by_role("link", name=train["id"], exact=True)).to_have_attribute(
        "href", f"/jobs/{train['id']}"
    )
    shot(page, "77-commit-lineage")

    # The run's Logs tab tails the log of the job that produced it.
    lineage.get_by_role("link", name=train["run_id"], exact=True).click()
    page.get_by_role("tab", name="Logs").click()
    expect(page).to_have_url(re.compile(r"tab=logs"))
    run_log = page.get_by_role("log", name=f"Log of job {train['id']}")
    expect(run_log).to_contain_text("model:", timeout=20_000)
    assert run_log.locator(".log-line").count() >= 2
    expect(page.get_by_test_id("log-state")).to_contain_text("succeeded")
    shot(page, "78-run-logs")

    page.goto(f"/jobs/{prof['id']}")
    expect(page.get_by_role("table", name="Artifacts")).to_contain_text("profile/trace.json")
    shot(page, "74-profile-job")
    page.get_by_role("link", name="Open profile").click()
    expect(page).to_have_url(re.compile(f"/profiles/{prof['id']}$"))

    ops = page.get_by_test_id("op-table")
    expect(ops.locator("tbody tr").first).to_be_visible(timeout=20_000)
    assert ops.locator("tbody tr").count() > 5
    expect(page.get_by_test_id("module-share")).to_contain_text("experts")
    flame = page.get_by_test_id("flame-graph")
    expect(flame).to_be_visible()
    painted = page.evaluate("""() => {
        const c = document.querySelector('[data-testid=flame-graph]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
        return n / (c.width * c.height);
    }""")
    assert painted > 0.05, f"flame graph looks empty ({painted:.3f} painted)"
    expect(page.get_by_test_id("memory-chart").locator("canvas")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile(r"Download Chrome trace"))).to_have_attribute(
        "href", f"/api/v1/jobs/{prof['id']}/artifacts/profile/trace.json"
    )
    # Deep dives: the folded stacks in the hub's own copy of speedscope (built into
    # dist/speedscope/ from the npm package), which fetches the artifact same-origin.
    speedscope = page.get_by_role("link", name="Open in speedscope")
    href = speedscope.get_attribute("href")
    assert href.startswith("/speedscope/index.html#profileURL="), href
    assert (
        f"profileURL=%2Fapi%2Fv1%2Fjobs%2F{prof['id']}%2Fartifacts%2Fprofile%2Fstacks.folded&title="
        in href
    ), href
    assert page.request.get("/speedscope/index.html").status == 200
    with context.expect_page() as opened:
        speedscope.click()
    ss = opened.value
    ss_errors: list[str] = []
    ss.on("pageerror", lambda e: ss_errors.append(str(e)))
    # speedscope sets the title once it has parsed the profile.
    expect(ss).to_have_title(re.compile(rf"^profile {prof['id']} .* - speedscope$"), timeout=20_000)
    expect(ss.locator("canvas").first).to_be_visible()
    shot(ss, "79-speedscope")
    assert not ss_errors, ss_errors
    ss.close()

    # Sorting by calls reorders the table (URL state).
    page.get_by_role("button", name="Calls").click()
    expect(page).to_have_url(re.compile(r"sort=calls"))
    calls = [
        int(t.replace(",", "")) for t in ops.locator("tbody tr td:nth-child(2)").all_inner_texts()
    ]
    assert calls == sorted(calls, reverse=True)

    # Hover and zoom on the flame graph.
    box = flame.bounding_box()
    flame.hover(position={"x": box["width"] / 3, "y": 27})
    expect(page.locator(".flame-tip")).to_contain_text("total")
    flame.click(position={"x": box["width"] / 3, "y": 27})
    expect(page.get_by_role("button", name="Reset zoom")).to_be_enabled()
    shot(page, "75-profile")
    # The same with the keyboard: Home selects the root, ↓ its widest child, Enter zooms into
    # it, Escape zooms back out.
    page.get_by_role("button", name="Reset zoom").click()
    flame.focus()
    expect(flame).to_be_focused()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_test_id("flame-selected")).to_contain_text("Selected")
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Reset zoom")).to_be_enabled()
    expect(page.get_by_text("Zoomed into")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Reset zoom")).to_be_disabled()

    page.get_by_label("Profile B").select_option(prof["id"])
    cmp = page.get_by_test_id("compare-table")
    expect(cmp).to_be_visible(timeout=20_000)
    ratios = page.get_by_test_id("ratio").all_inner_texts()
    assert ratios and all(r == "1.00×" for r in ratios), ratios
    shot(page, "76-profile-compare")
    console.check()
