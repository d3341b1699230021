"""A run started while the hub is unreachable: training goes on, the creation is spooled and
sent first (by the sender or `hub sync`) once the hub answers."""

import json
import time

import pytest

from hub.client.api import Client
from hub.client.errors import HubClientError, HubUnreachable
from hub.client.run import Run
from hub.client.spool import sync_spool
from hub.shared import wire
from hub.shared.spool import CREATE_FILE, STATUS_FILE

pytestmark = pytest.mark.unit

CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port: connection refused


def _points(kw) -> int:
    return len(wire.decode(kw["content"], max_points=10**6)[2])


class FlakyHub:
    """Unreachable until ``up`` is set; then records every call, in order."""

    def __init__(self, up=False, create_error=None):
        self.up, self.calls, self.create_error = up, [], create_error

    def request(self, method, path, **kw):
        if not self.up:
            raise HubUnreachable("connection refused")
        self.calls.append((method, path, _points(kw)))

    def _json(self, method, path, **kw):
        if not self.up:
            raise HubUnreachable("connection refused")
        self.calls.append((method, path, kw.get("json")))
        if method == "POST" and path.endswith("/runs"):
            if self.create_error:
                raise self.create_error
            return {
                "id": kw["json"]["run_id"],
                "params": kw["json"]["params"],
                "notes": kw["json"].get("notes", ""),
            }
        return {}


def test_init_run_starts_offline_when_the_hub_refuses_connections(tmp_path):
    c = Client(CLOSED, "token", retries=0)
    started = time.monotonic()
    with pytest.warns(UserWarning, match="created when the hub answers"):
        run = c.init_run(
            "alice/exp",
            name="offline",
            params={"moe": {"top_k": 4}},
            tags=["a"],
            spool_dir=tmp_path,
            system_metrics=False,
            flush_interval=0.05,
        )
    assert time.monotonic() - started < 5
    assert run.pending_creation and len(run.id) == 16
    create = json.loads((tmp_path / run.id / CREATE_FILE).read_text())
    assert (
        create["project"] == "alice/exp"
        and create["run_id"] == run.id
        and create["name"] == "offline"
    )
    assert create["params"] == {"moe": {"top_k": 4}} and create["tags"] == ["a"]
    for step in range(1000):
        run.log({"loss": float(step)}, step=step)
    with pytest.warns(UserWarning) as warned:
        report = run.finish(timeout=0.5)
    messages = " ".join(str(w.message) for w in warned)
    assert "not created yet" in messages and "1000 point(s) not yet sent" in messages
    assert report["pending"] == 1000 and report["created"] is False and not report["status_sent"]
    spool = tmp_path / run.id
    assert (
        sum(len(wire.decode(f.read_bytes(), max_points=10**6)[2]) for f in spool.glob("*.bin"))
        == 1000
    )
    assert json.loads((spool / STATUS_FILE).read_text()) == {"status": "finished"}
    assert (spool / CREATE_FILE).exists()


@pytest.mark.parametrize(
    "status,code", [(403, "forbidden"), (400, "invalid_run_id"), (404, "project_not_found")]
)
def test_init_run_still_raises_on_a_refusal(tmp_path, monkeypatch, status, code):
    c = Client(CLOSED, "token", retries=0)

    def refuse(*a, **kw):
        raise HubClientError(status, code, "no")

    monkeypatch.setattr(c, "_json", refuse)
    with pytest.raises(HubClientError) as e:
        c.init_run("alice/exp", spool_dir=tmp_path, create_project=False)
    assert e.value.status == status
    assert not any(tmp_path.iterdir())  # nothing spooled


@pytest.mark.parametrize("status", [503, 429])
def test_init_run_starts_offline_on_a_busy_hub(tmp_path, monkeypatch, status):
    c = Client(CLOSED, "token", retries=0)

    def busy(*a, **kw):
        raise HubClientError(status, "unavailable", "busy")

    monkeypatch.setattr(c, "_json", busy)
    with pytest.warns(UserWarning, match="offline"):
        run = c.init_run("alice/exp", spool_dir=tmp_path, system_metrics=False, flush_interval=3600)
    assert run.pending_creation
    with pytest.warns(UserWarning):
        run.finish(timeout=0.1)


def test_the_sender_creates_the_run_before_sending_any_point(tmp_path):
    hub = FlakyHub()
    create = {
        "project": "alice/exp",
        "create_project": True,
        "name": "n",
        "group": "",
        "params": {"lr": 0.1},
        "tags": [],
        "notes": "",
        "run_id": "off0123456789abc",
        "commit": "",
        "job_id": "",
    }
    run = Run(
        hub,
        {"id": "off0123456789abc"},
        spool_dir=tmp_path,
        flush_interval=0.05,
        batch_points=100,
        system_metrics=False,
        create=create,
    )
    for step in range(250):
        run.log({"loss": 1.0}, step=step)
    time.sleep(0.3)  # batches go to the spool while the hub is down
    assert run.pending_creation and list((tmp_path / run.id).glob("*.bin"))
    assert run.log_params({"wd": 0.01}) == {
        "lr": 0.1,
        "wd": 0.01,
    }  # merged into the pending creation
    with pytest.raises(HubClientError) as e:
        run.log_params({"lr": 0.2})
    assert e.value.code == "param_conflict"
    hub.up = True
    report = run.finish(timeout=10)
    assert report == {
        "pending": 0,
        "sent": 250,
        "spool": None,
        "status_sent": True,
        "created": True,
    }
    method, path, body = hub.calls[0]
    assert (method, path) == ("POST", "/projects/alice/exp/runs")
    assert body["run_id"] == "off0123456789abc" and body["params"] == {"lr": 0.1, "wd": 0.01}
    assert "project" not in body and "create_project" not in body
    assert [c[0] for c in hub.calls[1:-1]] == ["POST"] * (len(hub.calls) - 2)
    assert sum(c[2] for c in hub.calls[1:-1]) == 250
    assert hub.calls[-1] == ("PATCH", "/runs/off0123456789abc", {"status": "finished"})
    assert not (tmp_path / run.id / CREATE_FILE).exists()


def test_a_refused_creation_keeps_the_points_spooled(tmp_path):
    hub = FlakyHub(up=True, create_error=HubClientError(403, "forbidden", "token revoked"))
    create = {"project": "alice/exp", "params": {}, "run_id": "ref0123456789abc"}
    run = Run(
        hub,
        {"id": "ref0123456789abc"},
        spool_dir=tmp_path,
        flush_interval=0.05,
        system_metrics=False,
        create=create,
    )
    run.log({"loss": 1.0}, step=0)
    with pytest.warns(UserWarning) as warned:
        report = run.finish(timeout=0.5)
    assert any("refused to create" in str(w.message) for w in warned)
    assert report["pending"] == 1 and report["created"] is False
    assert [c[1] for c in hub.calls] == ["/projects/alice/exp/runs"]  # tried once, no point posted
    assert (tmp_path / run.id / CREATE_FILE).exists()


def _spool_run(root, run_id, points=3):
    spool = root / run_id
    spool.mkdir()
    (spool / f"00000000000000000001000001-{points}.bin").write_bytes(
        wire.encode(["a"], [0] * points, list(range(points)), [1.0] * points, [1.0] * points)
    )
    (spool / CREATE_FILE).write_text(
        json.dumps(
            {
                "project": "alice/exp",
                "create_project": True,
                "name": "x",
                "params": {"lr": 1},
                "run_id": run_id,
            }
        )
    )
    (spool / STATUS_FILE).write_text(json.dumps({"status": "finished"}))
    return spool


def test_sync_creates_the_run_then_sends_points_then_status(tmp_path):
    hub = FlakyHub(up=True)
    spool = _spool_run(tmp_path, "sync0123456789ab")
    assert sync_spool(hub, tmp_path) == {"sent_points": 3, "runs_left": 0}
    assert hub.calls == [
        (
            "POST",
            "/projects/alice/exp/runs",
            {"name": "x", "params": {"lr": 1}, "run_id": "sync0123456789ab"},
        ),
        ("POST", "/runs/sync0123456789ab/metrics", 3),
        ("PATCH", "/runs/sync0123456789ab", {"status": "finished"}),
    ]
    assert not spool.exists()


def test_sync_creates_a_missing_project_first(tmp_path):
    class NoProject(FlakyHub):
        def _json(self, method, path, **kw):
            if path.endswith("/runs") and not any(c[1] == "/projects" for c in self.calls):
                self.calls.append((method, path, None))
                raise HubClientError(404, "project_not_found", "no such project")
            return super()._json(method, path, **kw)

    hub = NoProject(up=True)
    _spool_run(tmp_path, "proj0123456789ab")
    assert sync_spool(hub, tmp_path) == {"sent_points": 3, "runs_left": 0}
    assert [c[1] for c in hub.calls[:3]] == [
        "/projects/alice/exp/runs",
        "/projects",
        "/projects/alice/exp/runs",
    ]


@pytest.mark.parametrize("error", [HubUnreachable("down"), HubClientError(403, "forbidden", "no")])
def test_sync_keeps_a_run_it_cannot_create(tmp_path, error):
    hub = FlakyHub(up=True, create_error=error)
    spool = _spool_run(tmp_path, "keep0123456789ab")
    assert sync_spool(hub, tmp_path) == {"sent_points": 0, "runs_left": 1}
    assert len(hub.calls) == 1 and (spool / CREATE_FILE).exists() and list(spool.glob("*.bin"))


def test_the_next_start_of_the_run_sends_a_creation_left_on_disk(tmp_path):
    hub = FlakyHub(up=True)
    spool = _spool_run(tmp_path, "next0123456789ab")
    run = Run(
        hub,
        {"id": "next0123456789ab"},
        spool_dir=tmp_path,
        flush_interval=0.05,
        system_metrics=False,
    )
    assert not run.pending_creation  # the run exists: this start created (resumed) it
    report = run.finish(timeout=5)
    assert report["pending"] == 0 and report["status_sent"]
    assert [c[1] for c in hub.calls] == [
        "/projects/alice/exp/runs",
        "/runs/next0123456789ab/metrics",
        "/runs/next0123456789ab",
    ]
    assert not (spool / CREATE_FILE).exists() and not (spool / STATUS_FILE).exists()
