"""MoE health alerts end to end: a train job whose router is deliberately broken
(``model.debug_force_expert``: every token picks expert 3) goes through the real jobs API,
queue, worker and sandbox, raises the collapse alert within its window and stops itself
(``alerts.on_collapse: stop``) or writes its checkpoint and weights first (``checkpoint_stop``);
the alerts are listed by the API and the CLI, counted in the runs listing, and shown on the
run page, the job page and the runs table of the dashboard (a real browser; screenshots
95-alerts-*.png in test-artifacts/screenshots/)."""

from __future__ import annotations

import json
import time

import pytest

from hub.client import Client
from tests.e2e.test_dashboard import ARGS, CHROMIUM, Console, shot  # noqa: F401  (skips when not built)
from tests.helpers import LIVE_RES as RES
from tests.helpers import TERMINAL

pytest.importorskip("playwright")
from playwright.sync_api import BrowserContext, Page, expect  # noqa: E402

pytestmark = pytest.mark.e2e

USER, PASSWORD = "alertsuser", "correct horse battery staple"
PROJECT = f"{USER}/exp"
# 8 experts, top-2: a balanced expert serves 25 % of the tokens, the forced one 100 %.
MODEL = {
    "n_layer": 2,
    "n_embd": 32,
    "n_head": 2,
    "n_experts": 8,
    "expert_hidden": 32,
    "top_k": 2,
    "n_dense_layers": 0,
    "block_size": 64,
    "debug_force_expert": 3,
}


def broken_config(on_collapse: str) -> dict:
    return {
        "model": MODEL,
        "data": {"max_bytes": 200_000},
        "train": {
            "steps": 200,
            "batch_size": 4,
            "warmup_steps": 2,
            "checkpoint_every": 200,
            "eval_every": 0,
            "log_every": 2,
            "eval_tokens": 4096,
        },
        "alerts": {"collapse_steps": 3, "on_collapse": on_collapse},
    }


def _wait(c: Client, job_id: str, timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while True:
        j = c._json("GET", f"/jobs/{job_id}")
        if j["status"] in TERMINAL or time.time() > deadline:
            return j
        time.sleep(1)


@pytest.fixture(scope="session")  # once: pytest-playwright regroups browser tests across modules
def jobs(live_hub, tmp_path_factory) -> dict:
    live_hub.cli("admin", "create-user", "--user", USER, "--password", PASSWORD, check=True)
    token = live_hub.cli(
        "admin", "create-token", "--user", USER, "--scope", "write", check=True
    ).stdout.strip()
    c = Client(url=live_hub.url, token=token)
    c.create_repo(f"{USER}/broken")
    stop = c._json(
        "POST",
        "/jobs",
        json={
            "project": PROJECT,
            "kind": "train",
            "config": broken_config("stop"),
            "resources": RES,
        },
    )
    ckpt = c._json(
        "POST",
        "/jobs",
        json={
            "project": PROJECT,
            "kind": "train",
            "config": broken_config("checkpoint_stop"),
            "target": f"{USER}/broken@main",
            "resources": RES,
        },
    )
    return {"client": c, "token": token, "stop": _wait(c, stop["id"]), "ckpt": _wait(c, ckpt["id"])}


def test_a_collapsing_router_raises_the_alert_and_the_job_stops_itself(jobs):
    c, j = jobs["client"], jobs["stop"]
    assert j["status"] == "cancelled", j["reason"]
    # logged every 2 steps, a window of 3 logged steps: the alert fires at step 6
    assert j["reason"].startswith(
        "stopped itself on the collapse alert at step 6 (alerts.on_collapse: stop): "
        "layer 0: expert 3 serves 100% of the tokens"
    ), j["reason"]
    assert j["result"] is None  # stop: nothing committed
    assert j["summary"]["alerts"]["raised"]["collapse"] >= 1
    alerts = c.run_alerts(j["run_id"])
    collapse = [a for a in alerts["results"] if a["kind"] == "collapse"]
    assert {(a["step"], a["details"]["expert"], a["action"]) for a in collapse} == {(6, 3, "stop")}
    assert {a["details"]["layer"] for a in collapse} == {0, 1}  # both MoE layers
    run = c.get_run(j["run_id"])
    assert run["status"] == "killed" and run["alerts"]["kinds"]["collapse"] == 2
    assert run["summary"]["loss"]["last_step"] == 6  # no step after the stop
    logs = c._json("GET", f"/jobs/{j['id']}/logs")["lines"]
    assert any("MoE health alert (collapse) at step 6" in x["line"] for x in logs)


def test_checkpoint_stop_commits_the_weights_so_far_then_stops(jobs):
    c, j = jobs["client"], jobs["ckpt"]
    assert j["status"] == "cancelled", j["reason"]
    assert "(alerts.on_collapse: checkpoint_stop)" in j["reason"]
    commit = c.commit_info(f"{USER}/broken", j["result"]["commit"])
    assert {f["path"] for f in commit["files"]} >= {"model.safetensors", "config.json"}
    assert j["summary"]["steps"] == 6 and j["summary"]["stop_reason"].startswith(
        "stopped by the collapse alert at step 6"
    )


def test_the_cli_lists_a_runs_alerts(jobs, live_hub):
    run_id = jobs["stop"]["run_id"]
    out = live_hub.cli("runs", "alerts", run_id, token=jobs["token"], check=True).stdout
    assert out.splitlines()[0] == f"2 alert(s) on run {run_id}: collapse 2"
    assert "layer 0: expert 3 serves 100% of the tokens" in out and "stop" in out
    as_json = json.loads(
        live_hub.cli(
            "runs",
            "alerts",
            run_id,
            "--kind",
            "collapse",
            "--json",
            token=jobs["token"],
            check=True,
        ).stdout
    )
    assert as_json["count"] == 2 and len(as_json["results"]) == 2


def test_the_runs_listing_counts_each_runs_alerts(jobs):
    page = jobs["client"].search_runs(PROJECT)
    by_id = {r["id"]: r["alerts"] for r in page["results"]}
    assert by_id[jobs["stop"]["run_id"]] == {"count": 2, "kinds": {"collapse": 2}}


# --- the dashboard -----------------------------------------------------------------------------


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


def sign_in(context: BrowserContext) -> None:
    csrf = context.request.get("/api/v1/auth/csrf").json()["csrf_token"]
    r = context.request.post(
        "/api/v1/auth/login",
        data={"username": USER, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert r.ok, r.text()


def test_the_run_job_and_runs_pages_show_the_alert(page: Page, context: BrowserContext, jobs):
    console = Console(page)
    sign_in(context)
    j = jobs["stop"]
    page.goto(f"/runs/{j['run_id']}")
    banner = page.get_by_role("region", name="MoE health alerts")
    expect(banner).to_contain_text("2 MoE health alerts")
    expect(banner).to_contain_text("Routing collapse: 2")
    rows = banner.locator('tr[data-alert="collapse"]')
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("layer 0: expert 3 serves 100% of the tokens")
    expect(rows.first).to_contain_text("job stopped")
    shot(page, "95-alerts-run")

    page.goto(f"/jobs/{j['id']}")
    expect(page.get_by_role("region", name="MoE health alerts")).to_contain_text("Routing collapse")
    shot(page, "95-alerts-job")

    page.goto(f"/projects/{PROJECT}")
    row = page.get_by_role("row").filter(has=page.locator(f'a[href="/runs/{j["run_id"]}"]'))
    badge = row.get_by_label("2 alerts: Routing collapse: 2")
    expect(badge).to_be_visible()
    expect(badge).to_have_text("⚠ 2")
    shot(page, "95-alerts-runs-table")
    console.check()
