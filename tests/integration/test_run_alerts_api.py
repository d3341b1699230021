"""MoE health alerts through the REST API: recorded on a run (idempotently, within limits),
listed in step order, counted in the run and in run listings, and private like the run."""

from __future__ import annotations

import pytest

from tests.conftest import client_for

pytestmark = [pytest.mark.integration]


@pytest.fixture
def tracker(api, settings):
    settings.HUB_ELASTICSEARCH_URL = ""
    client, _ = api
    assert client.post("/api/v1/projects", {"name": "exp"}, format="json").status_code == 201
    return client


def new_run(client, project="exp"):
    r = client.post(f"/api/v1/projects/alice/{project}/runs", {"name": "r"}, format="json")
    assert r.status_code == 201, r.content
    return r.json()["id"]


def collapse(step: int, expert: int = 3, action: str = "none") -> dict:
    return {
        "kind": "collapse",
        "key": f"collapse/layer1/expert{expert}",
        "step": step,
        "message": f"layer 1: expert {expert} serves 100% of the tokens",
        "details": {"layer": 1, "expert": expert, "token_share": 1.0},
        "action": action,
        "time": 1_800_000_000.5,
    }


def post(client, run_id, alerts):
    return client.post(f"/api/v1/runs/{run_id}/alerts", {"alerts": alerts}, format="json")


def test_alerts_are_recorded_listed_in_step_order_and_counted(tracker):
    run = new_run(tracker)
    dead = {
        "kind": "dead_expert",
        "key": "dead_expert/layer1/expert5",
        "step": 20,
        "message": "layer 1 expert 5: load share 0 below 0.0125",
    }
    r = post(tracker, run, [collapse(40, action="stop"), dead])
    assert r.status_code == 200, r.content
    assert r.json() == {"accepted": 2, "duplicates": 0}
    listed = tracker.get(f"/api/v1/runs/{run}/alerts").json()
    assert listed["count"] == 2 and listed["kinds"] == {"collapse": 1, "dead_expert": 1}
    assert [(a["kind"], a["step"]) for a in listed["results"]] == [
        ("dead_expert", 20),
        ("collapse", 40),
    ]
    first, second = listed["results"]
    assert first["action"] == "none" and first["details"] == {}
    assert second["action"] == "stop" and second["details"]["expert"] == 3
    assert second["time"].startswith("2027-01-15T08:00:00.5")
    only = tracker.get(f"/api/v1/runs/{run}/alerts?kind=collapse").json()["results"]
    assert [a["kind"] for a in only] == ["collapse"]
    detail = tracker.get(f"/api/v1/runs/{run}").json()
    assert detail["alerts"] == {"count": 2, "kinds": {"collapse": 1, "dead_expert": 1}}


def test_a_retried_post_records_nothing_twice(tracker):
    run = new_run(tracker)
    assert post(tracker, run, [collapse(4)]).json() == {"accepted": 1, "duplicates": 0}
    assert post(tracker, run, [collapse(4), collapse(6)]).json() == {
        "accepted": 1,
        "duplicates": 1,
    }
    assert tracker.get(f"/api/v1/runs/{run}/alerts").json()["count"] == 2


def test_the_runs_listing_carries_each_runs_alert_counts(tracker):
    quiet, loud = new_run(tracker), new_run(tracker)
    post(tracker, loud, [collapse(4), collapse(4, expert=5)])
    page = tracker.get("/api/v1/projects/alice/exp/runs").json()
    by_id = {r["id"]: r["alerts"] for r in page["results"]}
    assert by_id[quiet] == {"count": 0, "kinds": {}}
    assert by_id[loud] == {"count": 2, "kinds": {"collapse": 2}}


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"kind": "meltdown"}, "kind"),
        ({"action": "explode"}, "action"),
        ({"step": -1}, "step"),
        ({"key": "k" * 201}, "key"),
        ({"details": {"blob": "x" * 9000}}, "details"),
    ],
)
def test_a_malformed_alert_is_a_400_and_nothing_is_written(tracker, bad, field):
    run = new_run(tracker)
    r = post(tracker, run, [collapse(2), {**collapse(4), **bad}])
    assert r.status_code == 400, r.content
    assert field in str(r.json()["error"]["details"])
    assert tracker.get(f"/api/v1/runs/{run}/alerts").json()["count"] == 0


def test_an_unknown_kind_filter_is_a_400(tracker):
    run = new_run(tracker)
    r = tracker.get(f"/api/v1/runs/{run}/alerts?kind=meltdown")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_alert_kind"


def test_a_post_over_the_runs_alert_limit_is_refused_whole(tracker, settings):
    settings.HUB_MAX_ALERTS_PER_RUN = 3
    run = new_run(tracker)
    assert post(tracker, run, [collapse(s) for s in (1, 2)]).status_code == 200
    r = post(tracker, run, [collapse(s) for s in (3, 4)])
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_alerts"
    assert tracker.get(f"/api/v1/runs/{run}/alerts").json()["count"] == 2
    too_many = post(tracker, run, [collapse(s) for s in range(101)])
    assert too_many.status_code == 400


def test_alerts_of_a_private_run_are_invisible_and_read_only_to_others(tracker, make_user):
    tracker.post("/api/v1/projects", {"name": "secret", "private": True}, format="json")
    hidden = new_run(tracker, "secret")
    public = new_run(tracker)
    post(tracker, hidden, [collapse(4)])
    _, tok = make_user("eve")
    eve = client_for(tok)
    assert eve.get(f"/api/v1/runs/{hidden}/alerts").status_code == 404
    assert post(eve, hidden, [collapse(6)]).status_code == 404
    # a public run is readable, but only its project's writers record alerts on it
    assert eve.get(f"/api/v1/runs/{public}/alerts").status_code == 200
    assert post(eve, public, [collapse(6)]).status_code in (403, 404)
    assert client_for(None).post(
        f"/api/v1/runs/{public}/alerts", {"alerts": [collapse(6)]}, format="json"
    ).status_code in (401, 403)
    assert tracker.get(f"/api/v1/runs/{public}/alerts").json()["count"] == 0
    assert tracker.get(f"/api/v1/runs/{hidden}/alerts").json()["count"] == 1
