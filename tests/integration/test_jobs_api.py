"""The jobs API: validation before queueing, pinned inputs, the state machine, cancellation,
lost workers, and the endpoints workers report through."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from hub.jobs.models import Job
from tests.conftest import client_for
from tests.helpers import TINY, model, push, st_bytes

pytestmark = [pytest.mark.integration, pytest.mark.pg]


class Worker:
    """What a worker holds: the service credential, which claims a job, then the credential
    /worker/start hands out for that attempt, used for every later call of the job."""

    def __init__(self, service_secret: str):
        self.service = client_for(service_secret)
        self.attempts: dict[str, object] = {}

    def post(self, path: str, *args, **kwargs):
        job_id = path.split("/")[4]
        if path.endswith("/worker/start"):
            r = self.service.post(path, *args, **kwargs)
            if r.status_code == 200:
                self.attempts[job_id] = client_for(r.json()["credential"])
            return r
        return self.attempts.get(job_id, self.service).post(path, *args, **kwargs)


@pytest.fixture
def setup(api, make_user):
    from hub.accounts.services import worker_service_credential_create

    client, _ = api
    client.post("/api/v1/repos", {"name": "moe"}, format="json")
    push(client, "alice/moe", {"model.safetensors": st_bytes(model())}, message="base")
    return client, Worker(worker_service_credential_create(name="worker")[1])


def launch(client, **body):
    body = {"project": "alice/exp", "kind": "train", "config": TINY, **body}
    return client.post("/api/v1/jobs", body, format="json")


def test_bad_config_lists_every_problem_and_queues_nothing(setup):
    client, _ = setup
    r = launch(client, config={"model": {"top_k": 99, "bogus": 1}, "train": {"steps": -1}})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_config"
    paths = {e["path"] for e in err["details"]["errors"]}
    assert {"model.top_k", "model.bogus", "train.steps"} <= paths
    bad_res = launch(client, resources={"gpus": -1, "memory_mb": "lots", "turbo": True})
    assert bad_res.status_code == 400 and bad_res.json()["error"]["code"] == "invalid_resources"
    assert launch(client, kind="evaluate", config={}).json()["error"]["code"] == "base_required"
    assert Job.objects.count() == 0


def test_gpu_job_without_a_gpu_worker_says_so(setup):
    client, _ = setup
    r = launch(client, resources={"gpus": 1})
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_gpu_worker"
    assert "no GPU worker is online" in r.json()["error"]["message"] and Job.objects.count() == 0


def test_launch_pins_the_base_commit_and_records_transitions(setup):
    client, _ = setup
    head = client.get("/api/v1/repos/alice/moe/branches/main").json()["commit"]
    r = launch(
        client, kind="evaluate", base="alice/moe@main", config={"eval": {"max_tokens": 1024}}
    )
    assert r.status_code == 201, r.content
    job = r.json()
    assert job["status"] == "queued" and job["base"] == {
        "repo": "alice/moe",
        "ref": "main",
        "commit": head,
    }
    push(client, "alice/moe", {"other.txt": b"x"}, message="main moves on")
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["base"]["commit"] == head
    assert [t["to"] for t in job["transitions"]] == ["queued"]
    schema = client.get("/api/v1/jobs/schema?kind=train").json()
    assert schema["schema"]["type"] == "object" and schema["defaults"]["model"]["top_k"] == 2


def test_worker_lifecycle_and_cancellation(setup):
    client, worker = setup
    job = launch(client, target="alice/moe@main").json()
    assert (
        client.post(
            f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json"
        ).status_code
        == 403
    )
    started = worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")
    assert started.status_code == 200 and started.json()["status"] == "running"
    again = worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w2"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_state_conflict"
    hb = worker.post(
        f"/api/v1/jobs/{job['id']}/worker/heartbeat",
        {"progress": {"step": 1, "total": 2, "eta_s": 3}},
        format="json",
    )
    assert hb.json() == {"status": "running", "cancel_requested": False}
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").json()["cancel_requested"] is True
    assert worker.post(f"/api/v1/jobs/{job['id']}/worker/heartbeat", {}, format="json").json()[
        "cancel_requested"
    ]
    done = worker.post(
        f"/api/v1/jobs/{job['id']}/worker/finish",
        {"status": "cancelled", "reason": "cancelled by the user"},
        format="json",
    )
    assert done.json()["status"] == "cancelled"
    detail = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert [t["to"] for t in detail["transitions"]] == ["queued", "running", "cancelled"]
    assert all(t["at"] for t in detail["transitions"]) and detail["progress"]["step"] == 1
    twice = worker.post(
        f"/api/v1/jobs/{job['id']}/worker/finish", {"status": "succeeded"}, format="json"
    )
    # The attempt's credential died with it: nothing more is taken for this job.
    assert twice.status_code == 401 and twice.json()["error"]["code"] == "job_credential_revoked"
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").json()["error"]["code"] == "job_finished"


def test_cancelling_a_running_job_only_flags_it_for_the_heartbeat(setup, monkeypatch):
    import redis

    published = []
    monkeypatch.setattr(
        redis.Redis, "publish", lambda self, channel, msg: published.append(channel)
    )
    client, worker = setup
    job = launch(client).json()
    worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").json()["status"] == "running"
    # No pub/sub message nobody listens to: the next heartbeat's answer is how the worker learns.
    assert not [c for c in published if "cancel" in str(c)]
    hb = worker.post(f"/api/v1/jobs/{job['id']}/worker/heartbeat", {}, format="json").json()
    assert hb == {"status": "running", "cancel_requested": True}


def test_queued_job_cancels_at_once(setup):
    client, _ = setup
    job = launch(client).json()
    r = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert r.json()["status"] == "cancelled"


def test_a_job_whose_worker_stops_heartbeating_is_lost_and_can_be_relaunched(setup):
    client, worker = setup
    job = launch(client, kind="evaluate", base="alice/moe@main", config={}).json()
    worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")
    Job.objects.filter(pk=job["id"]).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    from hub.jobs.services import jobs_reap_lost

    assert jobs_reap_lost() == [job["id"]]  # what the reaper does every HUB_JOB_REAP_EVERY_S
    detail = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert detail["status"] == "lost" and "no heartbeat" in detail["reason"]
    again = client.post(f"/api/v1/jobs/{job['id']}/relaunch")
    assert again.status_code == 201
    new = again.json()
    assert new["relaunched_from"] == job["id"] and new["base"]["commit"] == job["base"]["commit"]
    assert new["config"] == job["config"] and new["status"] == "queued"


def test_reading_jobs_never_reaps_them(setup):
    """Only the reaper marks a job lost: a GET of the list or of the job changes nothing."""
    client, worker = setup
    job = launch(client, kind="evaluate", base="alice/moe@main", config={}).json()
    worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")
    Job.objects.filter(pk=job["id"]).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert client.get("/api/v1/jobs?project=alice/exp").json()["results"][0]["status"] == "running"
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "running"
    assert Job.objects.get(pk=job["id"]).status == Job.Status.RUNNING


def test_worker_logs_and_profile_rows(setup, metrics_store, monkeypatch):
    import hub.jobs.selectors as sel
    import hub.jobs.services as svc
    import hub.stores.metrics as m

    monkeypatch.setattr(m, "get_metrics_store", lambda: metrics_store)
    client, worker = setup
    job = launch(client).json()
    worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")
    lines = [[i, 1.7e9 + i, "info", f"line {i}"] for i in range(5)]
    assert (
        worker.post(
            f"/api/v1/jobs/{job['id']}/worker/logs", {"lines": lines}, format="json"
        ).json()["accepted"]
        == 5
    )
    worker.post(
        f"/api/v1/jobs/{job['id']}/worker/logs", {"lines": lines[3:]}, format="json"
    )  # a retry
    got = client.get(f"/api/v1/jobs/{job['id']}/logs").json()["lines"]
    assert [x["line"] for x in got] == [f"line {i}" for i in range(5)]
    assert [
        x["line"] for x in client.get(f"/api/v1/jobs/{job['id']}/logs?after_seq=2").json()["lines"]
    ] == ["line 3", "line 4"]
    assert [
        x["line"] for x in client.get(f"/api/v1/jobs/{job['id']}/logs?tail=2").json()["lines"]
    ] == ["line 3", "line 4"]
    bad = worker.post(f"/api/v1/jobs/{job['id']}/worker/logs", {"lines": [["x"]]}, format="json")
    assert bad.status_code == 400
    ops = [
        {"op": "aten::mm", "calls": 10, "self_us": 500.0, "total_us": 600.0, "flops": 1e9},
        {"op": "aten::add", "calls": 5, "self_us": 50.0, "total_us": 50.0},
    ]
    assert (
        worker.post(f"/api/v1/jobs/{job['id']}/worker/profile", {"ops": ops}, format="json").json()[
            "accepted"
        ]
        == 2
    )
    prof = client.get(f"/api/v1/jobs/{job['id']}/profile").json()
    assert [o["op"] for o in prof["ops"]] == ["aten::mm", "aten::add"]
    assert sel and svc  # imported for their get_metrics_store lookups


def test_every_unknown_resource_key_is_reported(setup):
    client, _ = setup
    r = launch(client, resources={"gpus": 0, "turbo": True, "nodes": 2, "cpus": 1})
    assert r.status_code == 400
    paths = [e["path"] for e in r.json()["error"]["details"]["errors"]]
    assert paths == ["resources.nodes", "resources.turbo"]


def test_a_target_branch_that_does_not_exist_is_refused_at_launch(setup):
    client, _ = setup
    client.post("/api/v1/repos", {"name": "other"}, format="json")
    r = launch(client, target="alice/moe@no-such-branch")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "target_branch_not_found" and "no-such-branch" in err["message"]
    assert err["details"] == {"repo": "alice/moe", "branch": "no-such-branch"}
    # A base in another repo does not help: the branch would have nothing to start from.
    r = launch(client, kind="evaluate", config={}, base="alice/other@main", target="alice/moe@new")
    assert r.json()["error"]["code"] == "target_branch_not_found"
    assert Job.objects.count() == 0
    # From a base in the same repo the worker creates the branch at the base commit.
    ok = launch(client, kind="finetune", config={}, base="alice/moe@main", target="alice/moe@exp-1")
    assert ok.status_code == 201, ok.content
    assert ok.json()["target"] == {"repo": "alice/moe", "branch": "exp-1"}
    assert launch(client, target="alice/moe@main").status_code == 201


def test_the_final_event_counts_are_kept(setup):
    client, worker = setup
    job = launch(client).json()
    worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")
    worker.post(
        f"/api/v1/jobs/{job['id']}/worker/finish",
        {"status": "succeeded", "summary": {"events": {"received": 12, "rejected": 3}}},
        format="json",
    )
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["events"] == {
        "received": 12,
        "rejected": 3,
    }


def test_lost_jobs_are_reaped_on_a_timer_without_anybody_reading(setup, settings):
    from io import StringIO

    from django.core.management import call_command

    from hub import settings as hub_settings

    # Heartbeats every 2 s; the default leaves room for 20 missed beats (a hub stalled for
    # half a minute must not kill every job) and, with the reaper's period, marks a dead
    # worker's job lost within the 60 s required.
    assert hub_settings.HUB_JOB_LOST_AFTER_S >= 30
    assert hub_settings.HUB_JOB_LOST_AFTER_S + hub_settings.HUB_JOB_REAP_EVERY_S <= 50
    client, worker = setup
    job = launch(client).json()
    worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")
    out = StringIO()
    call_command("jobs_reaper", "--once", stdout=out)
    assert Job.objects.get(pk=job["id"]).status == "running" and out.getvalue() == ""
    Job.objects.filter(pk=job["id"]).update(
        heartbeat_at=timezone.now() - timedelta(seconds=hub_settings.HUB_JOB_LOST_AFTER_S + 1)
    )
    call_command("jobs_reaper", "--once", stdout=out)
    j = Job.objects.get(pk=job["id"])
    assert j.status == "lost" and "no heartbeat" in j.status_reason and job["id"] in out.getvalue()


def test_a_launched_job_is_sent_to_its_queue_by_the_tasks_name(
    setup, monkeypatch, django_capture_on_commit_callbacks
):
    """The hub and the workers meet at the broker: the hub names the task, it never imports the
    workers' code; a broker that refuses the message fails the job with the reason."""
    from hub.celery_app import app as celery_app

    client, _ = setup
    sent = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: sent.append((name, kw)))
    with django_capture_on_commit_callbacks(execute=True):
        job = launch(client).json()
    assert sent == [
        ("workers.tasks.run_job", {"args": [job["id"]], "queue": "cpu", "retry": False})
    ]

    def broker_down(name, **kw):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(celery_app, "send_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        job = launch(client).json()
    j = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert j["status"] == "failed" and "could not reach the job queue" in j["reason"]


def test_a_worker_that_cannot_reach_the_api_leaves_the_job_to_the_reaper(setup):
    """Workers reach the hub only through its API: a task that gives up while the API is out of
    reach tells nobody, the job it started stops heartbeating, and the jobs reaper marks it
    lost, after which its user can relaunch it."""
    from io import StringIO

    from django.conf import settings as hub_settings
    from django.core.management import call_command

    from hub.client import HubUnreachable
    from workers.tasks import _give_up

    client, worker = setup
    job = launch(client).json()
    worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")

    class Down:
        def finish(self, job_id, **report):
            raise HubUnreachable("connection refused")

    _give_up(
        job["id"],
        Down(),
        "infrastructure failure, gave up after 4 attempts: the hub is unreachable",
        attempt_client=Down(),
    )
    assert Job.objects.get(pk=job["id"]).status == Job.Status.RUNNING
    Job.objects.filter(pk=job["id"]).update(
        heartbeat_at=timezone.now() - timedelta(seconds=hub_settings.HUB_JOB_LOST_AFTER_S + 1)
    )
    call_command("jobs_reaper", "--once", stdout=StringIO())
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "lost"
    assert client.post(f"/api/v1/jobs/{job['id']}/relaunch").status_code == 201


def test_logs_filter_by_stream_and_time(setup, metrics_store, monkeypatch):
    import hub.stores.metrics as m

    monkeypatch.setattr(m, "get_metrics_store", lambda: metrics_store)
    client, worker = setup
    job = launch(client).json()
    worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")
    streams = ["stdout", "stderr", "supervisor"]
    lines = [[i, 1.7e9 + i, streams[i % 3], f"line {i}"] for i in range(9)]
    assert (
        worker.post(
            f"/api/v1/jobs/{job['id']}/worker/logs", {"lines": lines}, format="json"
        ).json()["accepted"]
        == 9
    )
    url = f"/api/v1/jobs/{job['id']}/logs"

    def got(query):
        r = client.get(f"{url}?{query}")
        assert r.status_code == 200, r.content
        return [x["seq"] for x in r.json()["lines"]]

    assert got("stream=stderr") == [1, 4, 7]
    assert got("stream=stdout,supervisor") == [0, 2, 3, 5, 6, 8]
    assert got("stream=stdout,%20stderr,") == [0, 1, 3, 4, 6, 7]
    assert got(f"since={1.7e9 + 3}&until={1.7e9 + 5}") == [3, 4, 5]
    # ISO times: 1.7e9 is 2023-11-14T22:13:20Z; a time with no zone is UTC.
    assert got("since=2023-11-14T22:13:26Z") == [6, 7, 8]
    assert got("until=2023-11-14T22:13:21") == [0, 1]
    assert got("since=2023-11-15T00:13:24%2B02:00") == [4, 5, 6, 7, 8]
    assert got(f"stream=stderr&since={1.7e9 + 2}") == [4, 7]
    assert got("stream=stdout&tail=2") == [3, 6]
    assert got("stream=stdout&after_seq=0&limit=1") == [3]
    assert got("stream=nothing") == []
    for bad in (
        "stream=",
        "stream=a%20b",
        "since=yesterday",
        "until=nan",
        f"since={1.7e9 + 5}&until={1.7e9}",
    ):
        r = client.get(f"{url}?{bad}")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_log_filter", (
            bad,
            r.content,
        )


def test_log_stream_resumes_after_last_event_id_and_refuses_a_bad_one(
    setup, metrics_store, monkeypatch
):
    import hub.stores.metrics as m

    monkeypatch.setattr(m, "get_metrics_store", lambda: metrics_store)
    client, worker = setup
    job = launch(client).json()
    worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json")
    lines = [[i, 1.7e9 + i, "stdout", f"line {i}"] for i in range(5)]
    worker.post(f"/api/v1/jobs/{job['id']}/worker/logs", {"lines": lines}, format="json")
    worker.post(f"/api/v1/jobs/{job['id']}/worker/finish", {"status": "succeeded"}, format="json")
    url = f"/api/v1/jobs/{job['id']}/logs/stream"
    # An EventSource reconnecting after seq 2 gets 3 and 4, then the end of the job.
    r = client.get(url, HTTP_LAST_EVENT_ID="2")
    body = b"".join(r.streaming_content).decode()
    assert [int(x) for x in re.findall(r"^id: (\d+)$", body, re.M)] == [3, 4]
    assert '"status": "succeeded"' in body
    for bad in ({"QUERY_STRING": "after_seq=abc"}, {"HTTP_LAST_EVENT_ID": "x"}):
        r = client.get(url, **bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_page", r.content


def test_a_config_that_needs_cuda_is_refused_for_a_job_without_gpus(setup):
    client, _ = setup
    for runtime, path in (
        ({"device": "auto", "dtype": "fp16"}, "runtime.dtype"),
        ({"device": "cuda"}, "runtime.device"),
    ):
        r = launch(client, config={**TINY, "runtime": runtime})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config", r.content
        assert [e["path"] for e in r.json()["error"]["details"]["errors"]] == [path]
    assert (
        "fp16 needs CUDA"
        in launch(client, config={**TINY, "runtime": {"dtype": "fp16"}}).json()["error"]["details"][
            "errors"
        ][0]["message"]
    )
    assert Job.objects.count() == 0
    assert launch(client, config={**TINY, "runtime": {"dtype": "bf16"}}).status_code == 201


def test_a_launch_validates_its_config_once_and_passes_the_parsed_config_on(setup, monkeypatch):
    """One validation per request on the hub: the device check reads the parsed config instead
    of validating the raw one again (the job's entry point validates once more in the sandbox)."""
    from workers.moe import config as moe_config

    calls = []
    real = moe_config.validate_config

    def counted(kind, raw):
        calls.append(kind)
        return real(kind, raw)

    monkeypatch.setattr(moe_config, "validate_config", counted)
    client, _ = setup
    assert launch(client).status_code == 201  # no GPU: the device check runs too
    assert calls == ["train"]
    r = launch(client, config={**TINY, "runtime": {"dtype": "fp16"}})
    assert r.json()["error"]["details"]["errors"][0]["path"] == "runtime.dtype"
    assert calls == ["train", "train"]


def test_an_adapter_only_finetune_may_not_replace_a_branchs_model(setup):
    """A fine-tune that keeps only its adapter commits the adapter alone: onto a branch that
    holds a model it would replace the model's files, so it is refused at launch."""
    client, _ = setup
    r = launch(client, kind="finetune", config={}, base="alice/moe@main", target="alice/moe@main")
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "adapter_would_replace_model"
    assert err["details"] == {"branch": "main", "files": ["model.safetensors"]}
    assert Job.objects.count() == 0
    merged = {"lora": {"save_merged": True}}
    assert (
        launch(
            client, kind="finetune", config=merged, base="alice/moe@main", target="alice/moe@main"
        ).status_code
        == 201
    )
    assert (
        launch(
            client, kind="finetune", config={}, base="alice/moe@main", target="alice/moe@adapters/a"
        ).status_code
        == 201
    )


def test_a_worker_reports_nulls_in_its_progress_and_its_summary(setup):
    """A progress whose eta is unknown yet, a summary with null values (a train job's
    resumed_from): both are taken, not refused as invalid input (which failed every job)."""
    client, worker = setup
    job = launch(client).json()
    started = worker.post(f"/api/v1/jobs/{job['id']}/worker/start", {}, format="json")
    assert started.status_code == 200, started.content
    hb = worker.post(
        f"/api/v1/jobs/{job['id']}/worker/heartbeat",
        {"progress": {"step": 1, "total": 2, "eta_s": None}},
        format="json",
    )
    assert hb.status_code == 200, hb.content
    done = worker.post(
        f"/api/v1/jobs/{job['id']}/worker/finish",
        {"status": "succeeded", "summary": {"resumed_from": None, "steps": 2}},
        format="json",
    )
    assert done.status_code == 200, done.content
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["summary"]["resumed_from"] is None
