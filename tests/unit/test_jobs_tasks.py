"""The job task's retry policy: infrastructure failures retry a bounded number of times and
then fail the job with the reason; too few free GPUs wait in the queue; a worker whose sandbox
is unusable fails jobs at once; a retry that cannot be queued ends the job. Nothing leaves a
job queued or running forever."""

from __future__ import annotations

import time

import pytest
from celery.exceptions import Reject, Retry

import workers.tasks as tasks
from workers.supervisor import GpusBusy, InfrastructureError

pytestmark = pytest.mark.unit


class Hub:
    """The hub as the task sees it (a fake ``hub.client.worker.WorkerClient``)."""

    def __init__(self):
        self.finished = []
        self.lines = []

    def finish(self, job_id, **report):
        self.finished.append(report)
        return {}

    def logs(self, job_id, lines):
        self.lines.extend(lines)


@pytest.fixture
def hub(monkeypatch):
    h = Hub()
    monkeypatch.setattr(tasks, "_client", lambda: h)
    monkeypatch.setattr(tasks, "_sandbox_problem", lambda: None)
    monkeypatch.setenv("HUB_JOBS_DIR", "/tmp/hub-test-jobs-tasks")
    return h


def supervisor_raising(monkeypatch, exc):
    made = []

    class Sup:
        def __init__(self, job_id, **kw):
            made.append(job_id)

        def run(self):
            raise exc

    monkeypatch.setattr(tasks, "JobSupervisor", Sup)
    return made


@pytest.fixture
def retries(monkeypatch):
    calls = []

    def retry(args=None, kwargs=None, exc=None, countdown=None, **kw):
        calls.append({"args": args, "kwargs": kwargs, "countdown": countdown})
        return Retry("retry", exc)

    monkeypatch.setattr(tasks.run_job, "retry", retry)
    return calls


def test_an_infrastructure_failure_is_retried_with_a_growing_countdown(hub, monkeypatch, retries):
    supervisor_raising(monkeypatch, InfrastructureError("the hub is unreachable"))
    with pytest.raises(Retry):
        tasks.run_job.run("j1")
    with pytest.raises(Retry):
        tasks.run_job.run("j1", infra_failures=1)
    assert [c["countdown"] for c in retries] == [10, 20]
    assert [c["kwargs"]["infra_failures"] for c in retries] == [1, 2]
    assert retries[0]["args"] == ["j1"] and hub.finished == []


def test_when_retries_run_out_the_job_fails_with_the_reason(hub, monkeypatch, retries):
    monkeypatch.setenv("HUB_JOB_MAX_INFRA_RETRIES", "3")
    supervisor_raising(monkeypatch, InfrastructureError("the sandbox could not start: no cgroup"))
    assert tasks.run_job.run("j1", infra_failures=3) == "failed"
    assert retries == []
    [done] = hub.finished
    assert done["status"] == "failed"
    assert "gave up after 4 attempts" in done["reason"] and "no cgroup" in done["reason"]


def test_every_attempt_through_eager_celery_ends_failed_not_queued(hub, monkeypatch):
    monkeypatch.setenv("HUB_JOB_MAX_INFRA_RETRIES", "2")
    made = supervisor_raising(monkeypatch, InfrastructureError("the hub is unreachable"))
    result = tasks.run_job.apply(args=["j1"])
    assert result.get() == "failed" and len(made) == 3
    assert [f["status"] for f in hub.finished] == ["failed"]


def test_too_few_free_gpus_waits_in_the_queue_without_using_the_retry_budget(
    hub, monkeypatch, retries
):
    monkeypatch.setenv("HUB_JOB_GPU_RETRY_S", "30")
    supervisor_raising(
        monkeypatch, GpusBusy("waiting for GPUs: 2 GPUs requested, 0 free on host-a")
    )
    with pytest.raises(Retry):
        tasks.run_job.run("j1", infra_failures=2)
    [r] = retries
    assert (
        r["countdown"] == 30
        and r["kwargs"]["infra_failures"] == 2
        and r["kwargs"]["gpu_wait_since"]
    )
    assert hub.finished == []
    # The job is still queued (the supervisor reserves GPUs before taking it): one log line
    # says why when the wait begins, not one per try.
    [line] = hub.lines
    assert line[2] == "supervisor" and "waiting for GPUs" in line[3] and "every 30 s" in line[3]
    with pytest.raises(Retry):
        tasks.run_job.run("j1", gpu_wait_since=r["kwargs"]["gpu_wait_since"])
    assert len(hub.lines) == 1 and len(retries) == 2
    # ... but not forever.
    monkeypatch.setenv("HUB_JOB_GPU_MAX_WAIT_S", "3600")
    assert tasks.run_job.run("j1", gpu_wait_since=time.time() - 7200) == "failed"
    assert (
        "no worker had the GPUs" in hub.finished[-1]["reason"]
        and "0 free" in hub.finished[-1]["reason"]
    )


def test_a_retry_the_broker_refuses_fails_the_job(hub, monkeypatch):
    supervisor_raising(monkeypatch, InfrastructureError("the hub is unreachable"))

    def retry(**kw):
        raise Reject(ConnectionError("broker down"), requeue=False)

    monkeypatch.setattr(tasks.run_job, "retry", retry)
    with pytest.raises(Reject):
        tasks.run_job.run("j1")
    assert "could not be queued again" in hub.finished[-1]["reason"]


def test_a_worker_with_a_broken_sandbox_fails_the_job_at_once_with_the_reason(
    hub, monkeypatch, retries
):
    made = supervisor_raising(monkeypatch, AssertionError("must not run"))
    monkeypatch.setattr(
        tasks,
        "_sandbox_problem",
        lambda: "refusing to run jobs: mandatory sandbox layers are missing: bwrap",
    )
    assert tasks.run_job.run("j1") == "failed"
    assert made == [] and retries == []
    [done] = hub.finished
    assert "cannot run jobs" in done["reason"] and "missing: bwrap" in done["reason"]


def test_a_bug_fails_the_job_even_when_the_client_cannot_be_made(monkeypatch):
    reported = []
    monkeypatch.setattr(
        tasks,
        "_give_up",
        lambda job_id, client, reason: reported.append((job_id, client, reason)) or True,
    )

    def no_client():
        raise RuntimeError("bad HUB_WORKER_API_URL")

    monkeypatch.setattr(tasks, "_client", no_client)
    with pytest.raises(RuntimeError):
        tasks.run_job.run("j1")
    assert reported == [("j1", None, "worker error: RuntimeError: bad HUB_WORKER_API_URL")]


# --------------------------------------------------------------------------- settings and the hub's API


def test_the_worker_reads_its_settings_from_the_environment_in_one_place():
    from workers.settings import load

    s = load(
        {
            "HUB_URL": "http://hub:8000",
            "HUB_WORKER_TOKEN": "hubw_x",
            "HUB_WORKER_QUEUES": "cpu, gpu,",
            "HUB_DATA_DIR": "/srv/hub",
            "HUB_KEEP_JOB_DIRS": "1",
            "HUB_JOB_GPU_RETRY_S": "5",
        }
    )
    assert (s.api_url, s.token, s.queues) == ("http://hub:8000", "hubw_x", ("cpu", "gpu"))
    assert s.jobs_dir.as_posix() == "/srv/hub/jobs" and s.keep_job_dirs and s.gpus is None
    assert (s.max_infra_retries, s.gpu_retry_s, s.gpu_max_wait_s) == (3, 5, 24 * 3600)
    assert (
        load({"HUB_WORKER_API_URL": "http://web:8000", "HUB_URL": "http://hub:8000"}).api_url
        == "http://web:8000"
    )
    with pytest.raises(ValueError, match="HUB_JOB_MAX_INFRA_RETRIES"):
        load({"HUB_JOB_MAX_INFRA_RETRIES": "three"})


@pytest.mark.parametrize(
    ("raw", "gpus"),
    [(None, None), ("", None), ("all", None), ("ALL", None), ("0,1", (0, 1)), ("3, 1", (1, 3))],
)
def test_hub_worker_gpus_names_all_gpus_or_the_indices_a_worker_may_hand_out(raw, gpus):
    from workers.settings import parse_gpus

    assert parse_gpus(raw) == gpus


@pytest.mark.parametrize("raw", ["gpu0", "-1", "0;1"])
def test_a_malformed_hub_worker_gpus_is_refused_with_its_name(raw):
    from workers.settings import parse_gpus

    with pytest.raises(ValueError, match="HUB_WORKER_GPUS"):
        parse_gpus(raw)


def test_a_gpu_worker_hands_jobs_only_the_gpus_hub_worker_gpus_names(monkeypatch):
    from workers.settings import load

    slots = tasks._gpu_slots(
        load({"HUB_WORKER_GPUS": "1,3", "HUB_REDIS_PREFIX": "t:"})
    )  # no Redis call yet
    assert slots.devices == [1, 3] and slots.owners_key.startswith("t:gpu:")


def test_the_jobs_folder_and_keeping_failed_ones_come_from_the_workers_settings(
    hub, monkeypatch, tmp_path
):
    made = []

    class Sup:
        def __init__(self, job_id, **kw):
            made.append(kw)

        def run(self):
            return "succeeded"

    monkeypatch.setattr(tasks, "JobSupervisor", Sup)
    monkeypatch.setenv("HUB_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("HUB_KEEP_JOB_DIRS", "1")
    monkeypatch.setenv("HUB_WORKER_QUEUES", "cpu")
    assert tasks.run_job.run("j1") == "succeeded"
    [kw] = made
    assert kw["work_root"] == tmp_path / "jobs" and (tmp_path / "jobs").is_dir()
    assert kw["keep_failed_job_dirs"] is True and kw["gpu_slots"] is None and kw["client"] is hub


def test_a_failure_the_hub_cannot_be_told_is_left_to_the_hub_not_written_anywhere_else():
    """No database fallback: the attempt's credential, then the service credential, then the
    job is left to the hub's reaper (tests/integration/test_jobs_api.py shows it become lost)."""
    from hub.client import HubUnreachable

    tried = []

    class Down:
        def __init__(self, name):
            self.name = name

        def finish(self, job_id, **report):
            tried.append((self.name, job_id, report["status"]))
            raise HubUnreachable("connection refused")

    tasks._give_up("j1", Down("service"), "gave up", attempt_client=Down("attempt"))
    assert tried == [("attempt", "j1", "failed"), ("service", "j1", "failed")]


def test_a_failure_of_a_never_started_job_is_told_later_when_the_hub_is_down(monkeypatch, retries):
    """The hub is unreachable when the task gives up on a job it never started: the failure
    goes back to the queue with a growing countdown, and is told once the hub answers."""
    from hub.client import HubUnreachable

    class Down(Hub):
        def finish(self, job_id, **report):
            raise HubUnreachable("connection refused")

    down, up = Down(), Hub()
    monkeypatch.setattr(tasks, "_client", lambda: down)
    monkeypatch.setattr(tasks, "_sandbox_problem", lambda: "bwrap cannot create namespaces")
    with pytest.raises(Retry):
        tasks.run_job.run("j1")
    [first] = retries
    assert first["kwargs"]["report_failure"].endswith("bwrap cannot create namespaces")
    with pytest.raises(Retry):
        tasks.run_job.run("j1", **first["kwargs"])
    assert [c["countdown"] for c in retries] == [30, 60] and retries[1]["kwargs"]["tells"] == 2
    monkeypatch.setattr(tasks, "_client", lambda: up)
    assert tasks.run_job.run("j1", **retries[1]["kwargs"]) == "failed"
    [done] = up.finished
    assert done["status"] == "failed" and "bwrap cannot create namespaces" in done["reason"]
