"""The supervisor and a job's MoE health alerts: each alert event is recorded on the run; an
alert whose action stopped the job ends it cancelled with the alert as the reason; a hub that
refuses an alert never fails the job; a malformed alert is rejected like any bad event."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_supervisor import FakeClient, supervise

pytestmark = pytest.mark.unit


def alert_event(seq: int, step: int, action: str = "none", **extra) -> bytes:
    return json.dumps(
        {
            "type": "alert",
            "seq": seq,
            "time": 1_800_000_000.0,
            "kind": "collapse",
            "step": step,
            "key": "collapse/layer1/expert3",
            "message": "layer 1: expert 3 serves 100% of the tokens",
            "details": {"layer": 1, "expert": 3},
            "action": action,
            **extra,
        }
    ).encode()


def posted_alerts(client: FakeClient) -> list[dict]:
    return [a for _, p, j in client.calls if p.endswith("/alerts") for a in j["alerts"]]


def test_an_alert_is_recorded_on_the_run_and_the_job_still_succeeds(tmp_path):
    sup, client = supervise(tmp_path, events=[alert_event(0, 6)])
    assert sup.run() == "succeeded"
    [posted] = posted_alerts(client)
    assert posted["kind"] == "collapse" and posted["step"] == 6 and posted["action"] == "none"
    assert posted["time"] == 1_800_000_000.0
    assert any(p == "/runs/run1/alerts" for _, p, _ in client.calls)


def test_a_stop_alert_ends_the_job_cancelled_with_the_alert_as_reason(tmp_path):
    sup, client = supervise(tmp_path, events=[alert_event(0, 6, "stop")])
    assert sup.run() == "cancelled"
    reason = client.finished()["reason"]
    assert reason == (
        "stopped itself on the collapse alert at step 6 (alerts.on_collapse: stop): "
        "layer 1: expert 3 serves 100% of the tokens"
    )
    assert client.run.finished == "killed"


def test_a_job_that_fails_after_a_stop_alert_is_failed_not_cancelled(tmp_path):
    from tests.unit.test_supervisor import FakeOutcome

    error = json.dumps({"type": "error", "seq": 1, "time": 1.0, "message": "boom"}).encode()
    sup, client = supervise(
        tmp_path,
        events=[alert_event(0, 6, "stop"), error],
        outcome=FakeOutcome(returncode=1),
    )
    assert sup.run() == "failed"
    assert client.finished()["reason"] == "boom"


def test_a_hub_that_refuses_an_alert_does_not_fail_the_job(tmp_path):
    client = FakeClient()
    plain = client._json

    def refusing(method, path, json=None, idempotent=False, params=None):
        if path.endswith("/alerts"):
            raise client.HubClientError(400, "too_many_alerts", "A run holds at most 1000 alerts")
        return plain(method, path, json=json, idempotent=idempotent, params=params)

    client._json = refusing
    sup, client = supervise(tmp_path, client=client, events=[alert_event(0, 6)])
    assert sup.run() == "succeeded"
    assert any("the collapse alert was not recorded" in line for line in client.log_lines())


def test_a_malformed_alert_is_rejected_like_any_bad_event(tmp_path):
    bad = [
        alert_event(0, 6, kind="meltdown"),
        alert_event(1, 6, action="self_destruct"),
        alert_event(2, 6, details="not an object"),
    ]
    sup, client = supervise(tmp_path, events=bad)
    assert sup.run() == "succeeded"
    assert posted_alerts(client) == []
    assert client.finished()["summary"]["events"]["rejected"] == 3
