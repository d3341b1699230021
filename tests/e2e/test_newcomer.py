"""A newcomer's first walk through the dashboard, in a real browser (Debian's Chromium through
Playwright) against a live hub with real data: sign in with the form, home, a model (its
page says what dedupe saves), a diff between two of its commits, a commit (new vs reused
bytes), a run, a comparison of four runs, a job and its profile.

At each page: the page has its content, no error banner (role=alert) and no console error, and
the figures it shows are the API's. A screenshot of each goes to
test-artifacts/screenshots/ (20-newcomer-*). Needs the built SPA and chromium, as
tests/e2e/test_dashboard.py does.
"""

from __future__ import annotations

import re
import time
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import quote

import pytest

from tests.e2e.conftest import LiveHub
from tests.e2e.test_dashboard import ARGS, CHROMIUM, SHOTS, Console, shot  # noqa: F401  (skips when not built)
from tests.helpers import LIVE_RES as RES
from tests.helpers import LIVE_TRAIN as TRAIN
from tests.helpers import TERMINAL

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402

from hub.client import Client  # noqa: E402
from tests.e2e.dashboard_seed import seed_repo  # noqa: E402

pytestmark = pytest.mark.e2e

USER, PASSWORD = "newbie", "correct horse battery staple"
PROJECT = f"{USER}/first-steps"
MODEL_REPO = f"{USER}/moe-ckpt"  # seeded with branches, a fast-forward and a merge
JOB_REPO = f"{USER}/moe-small"  # the training job commits here; the profile job reads it
PROFILE = {"data": {"max_bytes": 200_000}, "profile": {"steps": 2, "warmup": 1, "batch_size": 4}}


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


def fmt_bytes(n: float) -> str:
    """The dashboard's fmtBytes (frontend/src/lib/format.ts): binary units, 3 significant
    digits, ties rounded up as JavaScript's toFixed does."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i, v = 0, float(n)
    while abs(v) >= 1024 and i < len(units) - 1:
        v /= 1024
        i += 1
    if i == 0:
        return f"{int(v)} B"
    digits = 0 if v >= 100 else 1 if v >= 10 else 2
    q = Decimal(v).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{q} {units[i]}"


def _wait(c: Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while True:
        j = c._json("GET", f"/jobs/{job_id}")
        if j["status"] in TERMINAL or time.time() > deadline:
            return j
        time.sleep(1)


@pytest.fixture(scope="module")
def hub_data(live_hub: LiveHub, tmp_path_factory) -> dict:
    """What a team's hub holds after a week: a model with history, four runs of a project,
    a finished training job and a profile of the commit it wrote."""
    live_hub.cli("admin", "create-user", "--user", USER, "--password", PASSWORD, check=True)
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    c = Client(url=live_hub.url, token=token)
    c.create_repo(JOB_REPO, description="checkpoints of the tiny training job")
    train = c._json(
        "POST",
        "/jobs",
        json={
            "project": PROJECT,
            "kind": "train",
            "config": TRAIN,
            "target": f"{JOB_REPO}@main",
            "resources": RES,
        },
    )
    seed_repo(c, MODEL_REPO)
    spool = tmp_path_factory.mktemp("newcomer-spool")
    runs = []
    for k in (2, 4, 8):
        run = c.init_run(
            PROJECT,
            name=f"top{k}",
            params={"model": {"top_k": k}, "lr": 3e-3},
            spool_dir=spool,
            flush_interval=0.2,
        )
        for s in range(0, 21, 5):
            run.log(
                {"loss": 3.0 + 1.0 / k + 2.0 / (1 + s), "val/loss": 3.2 + 2.0 / (1 + s)}, step=s
            )
        run.finish()
        runs.append(run.id)
    train = _wait(c, train["id"])
    assert train["status"] == "succeeded", train
    prof = c._json(
        "POST",
        "/jobs",
        json={
            "project": PROJECT,
            "kind": "profile",
            "config": PROFILE,
            "base": f"{JOB_REPO}@main",
            "resources": RES,
        },
    )
    prof = _wait(c, prof["id"])
    assert prof["status"] == "succeeded", prof
    SHOTS.mkdir(parents=True, exist_ok=True)
    return {"client": c, "runs": [train["run_id"], *runs], "train": train, "profile": prof}


def page_is_sound(page: Page, console: Console, name: str, *allow: str) -> None:
    """No error banner, no console error; then the screenshot."""
    page.wait_for_load_state("networkidle")
    expect(page.locator(".state[role=status]")).to_have_count(0)  # nothing left loading
    expect(page.get_by_role("alert")).to_have_count(0)
    shot(page, f"20-newcomer-{name}")
    console.check(*allow)


def test_a_newcomer_walks_from_sign_in_to_a_profile(page: Page, hub_data):
    c: Client = hub_data["client"]
    console = Console(page)

    # Sign in with the form, as a person does.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login"))
    console.check(r"status of 401")  # the first visit, signed out, is sent to the form

    # Home: recent runs, jobs and recently updated models (the hub's order).
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    recent = c._json("GET", "/repos", params={"sort": "-updated_at", "page_size": 8})["results"]
    models = page.get_by_role("list", name="Recent models")
    expect(models.get_by_role("link")).to_have_text([r["id"] for r in recent])
    expect(models).to_contain_text("updated")
    runs = page.get_by_role("list", name="Recent runs")
    for run_id in hub_data["runs"]:
        expect(runs.locator(f'a[href="/runs/{run_id}"]')).to_be_visible()
    page_is_sound(page, console, "1-home")

    # A model: its size, and what dedupe saves, as the API measures them.
    models.get_by_role("link", name=MODEL_REPO).click()
    expect(page.get_by_role("heading", name=MODEL_REPO)).to_be_visible()
    stats = c._json("GET", f"/repos/{MODEL_REPO}/stats")
    saved = round(100 * (1 - stats["stored_bytes"] / stats["logical_bytes"]))
    expect(page.get_by_test_id("repo-size")).to_have_text(
        f"{stats['commits']} commits, {fmt_bytes(stats['logical_bytes'])} logical, "
        f"{fmt_bytes(stats['stored_bytes'])} stored — dedupe saves {saved}% · "
        f"head {fmt_bytes(stats['head_bytes'])}"
    )
    assert stats["stored_bytes"] < stats["logical_bytes"], stats  # fine-tunes share chunks
    expect(page.get_by_role("list", name="Commits, newest first")).to_be_visible()
    page_is_sound(page, console, "2-model")

    # A commit: the merge, with the bytes it added and those it reused from its parents.
    page.get_by_role("link", name="Merge finetune/router into main").click()
    expect(page.get_by_text("(merge)")).to_be_visible()
    sha = page.url.rsplit("/", 1)[-1]
    cs = c._json("GET", f"/repos/{MODEL_REPO}/commits/{sha}")["stats"]
    assert cs["reused_bytes"] > 0 and cs["new_bytes"] < cs["reused_bytes"], cs
    new = fmt_bytes(cs["new_bytes"])
    expect(page.get_by_test_id("commit-stats")).to_have_text(
        f"{new} new, {fmt_bytes(cs['reused_bytes'])} reused" if cs["reused_bytes"] else f"{new} new"
    )
    expect(page.get_by_text(f"{fmt_bytes(cs['bytes'])} in {cs['files']} files")).to_be_visible()
    page_is_sound(page, console, "3-commit")

    # A diff between two commits: the merge against its first parent.
    page.get_by_role("link", name="Diff with parent").click()
    table = page.get_by_test_id("diff-table")
    parent = c._json("GET", f"/repos/{MODEL_REPO}/commits/{sha}")["parents"][0]
    d = c._json("GET", f"/repos/{MODEL_REPO}/diff", params={"a": parent, "b": sha})
    changed = [t["name"] for f in d["files"] for t in f.get("tensors", [])]
    assert changed, d
    for name in changed:
        expect(table).to_contain_text(name)
    page_is_sound(page, console, "4-diff")

    # A run: the one the training job logged.
    run_id = hub_data["train"]["run_id"]
    page.goto(f"/projects/{PROJECT}")
    page.locator(f'a[href="/runs/{run_id}"]').first.click()
    run = c._json("GET", f"/runs/{run_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(run["name"])
    expect(page.locator('[data-section="overview"] [data-chart]').first).to_be_visible()
    expect(page.locator("canvas").first).to_be_visible()
    page_is_sound(page, console, "5-run")

    # A comparison of four runs.
    page.goto(f"/projects/{PROJECT}/compare?runs={quote(','.join(hub_data['runs']))}")
    expect(page.get_by_role("heading", name="Compare 4 runs")).to_be_visible()
    metrics = page.get_by_test_id("compare-metrics")
    expect(metrics).to_be_visible()
    for name in ("top2", "top4", "top8"):
        expect(metrics).to_contain_text(name)
    page_is_sound(page, console, "6-compare")

    # A job: its status and summary, as the API has them.
    job = hub_data["train"]
    page.goto(f"/jobs/{job['id']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(job["id"])
    expect(page.get_by_test_id("job-status")).to_contain_text(job["status"])
    summary = page.get_by_test_id("job-summary")
    expect(
        summary.locator(
            "tbody tr", has=page.get_by_role("rowheader", name="steps", exact=True)
        ).locator("td")
    ).to_have_text(str(job["summary"]["steps"]))
    page_is_sound(page, console, "7-job")

    # The profile of the commit that job wrote.
    prof = hub_data["profile"]
    page.goto(f"/profiles/{prof['id']}")
    ops = page.get_by_test_id("op-table")
    expect(ops.locator("tbody tr").first).to_be_visible(timeout=20_000)
    top = c._json("GET", f"/jobs/{prof['id']}/profile")["ops"]
    assert top, "the profile has no operators"
    expect(ops).to_contain_text(max(top, key=lambda o: o["self_us"])["op"])
    expect(page.get_by_test_id("flame-graph")).to_be_visible()
    page_is_sound(page, console, "8-profile")
