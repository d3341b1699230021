"""The supervisor's distrust of the sandbox's output."""

import json
import os

import pytest

from hub.shared.resources import DEFAULT_DISK_MB
from workers.supervisor import EventCounters, safe_output, validate_event

pytestmark = pytest.mark.unit


def test_malformed_and_oversized_events_are_counted_not_trusted():
    c = EventCounters()
    good = json.dumps(
        {"type": "metric", "seq": 0, "time": 1.0, "step": 1, "values": {"loss": 1.0}}
    ).encode()
    assert validate_event(good, c)["values"] == {"loss": 1.0}
    for raw in (
        b"not json",
        b'{"type": "metric"}',
        b'{"type": "rm -rf", "seq": 1, "time": 1}',
        json.dumps(
            {"type": "log", "seq": 1, "time": 1.0, "level": "info", "message": "x" * 70_000}
        ).encode(),
        b"[1, 2, 3]",
    ):
        assert validate_event(raw, c) is None
    assert c.received == 6 and c.rejected == 5
    assert set(c.reasons) >= {"not JSON", "oversized"}


def test_artifacts_must_be_regular_files_inside_the_output_dir(tmp_path):
    from workers.sandbox.jobfs import JobFolder

    with JobFolder.create(tmp_path / "job") as folder:
        out = tmp_path / "job" / "out"
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"x")
        (out / "sub").mkdir()
        (out / "sub" / "a.json").write_text("{}")
        secret = tmp_path / "secret"
        secret.write_text("root only")
        os.symlink(secret, out / "link.json")
        os.symlink(tmp_path, out / "dirlink")
        with safe_output(folder, "model.safetensors") as f:
            assert f.read() == b"x"
        with safe_output(folder, "sub/a.json") as f:
            assert f.read() == b"{}"
        for bad in (
            "link.json",
            "dirlink/secret",
            "../secret",
            "/etc/passwd",
            "sub",
            "missing",
            "a\x00b",
            "",
            "sub/../model.safetensors",
            "./model.safetensors",
            "sub//a.json",
        ):
            assert safe_output(folder, bad) is None, bad


def test_a_file_swapped_for_a_link_after_the_supervisor_checked_it_is_not_read(
    tmp_path, monkeypatch
):
    """The check and the open are one step: swapping the file for a link to a host file right
    after the supervisor looked at it changes nothing in what it uploads."""
    import workers.supervisor as supervisor

    secret = tmp_path / "host-secret"
    secret.write_bytes(b"host secret")
    art = json.dumps(
        {"type": "artifact", "seq": 0, "time": 1.0, "path": "eval.json", "kind": "eval"}
    ).encode()

    def write_eval(sandbox):
        out = sandbox.spec.job_dir / "out"
        out.mkdir()
        (out / "eval.json").write_text('{"acc": 1}')

    real = supervisor.safe_output

    def checked_then_swapped(folder, rel):
        got = real(folder, rel)
        path = folder.path / "out" / rel
        os.replace(path, path.with_name("moved"))
        os.symlink(secret, path)
        return got

    monkeypatch.setattr(supervisor, "safe_output", checked_then_swapped)

    class Client(FakeClient):
        def _json(self, method, path, json=None, idempotent=False, params=None):
            if path.endswith("/worker/chunks/missing"):
                self.calls.append((method, path, json))
                return {"missing": json["chunks"]}
            return super()._json(method, path, json, idempotent, params)

    sup, client = supervise(tmp_path, client=Client(), events=[art], during=write_eval)
    assert sup.run() == "succeeded"
    sent = [c for m, p, c in client.calls if m == "PUT"]
    assert sent == [b'{"acc": 1}'] and client.finished()["summary"]["eval"] == {"acc": 1}


def test_the_disk_quota_comes_from_the_jobs_resources(tmp_path):

    sup, _ = supervise(tmp_path, client=FakeClient(resources={"disk_mb": 64}))
    assert sup.run() == "succeeded"
    spec = FakeSandbox.instances[-1].spec
    assert spec.disk_bytes == 64 << 20
    assert spec.file_size_bytes == 64 << 20  # the logs, outside the quota, get no more than it
    assert FakeSandbox.instances[-1].folder_size == 64 << 20
    sup, _ = supervise(tmp_path)  # a job queued before jobs had a disk_mb
    assert sup.run() == "succeeded"
    assert FakeSandbox.instances[-1].spec.disk_bytes == DEFAULT_DISK_MB << 20


# --------------------------------------------------------------------------- the supervisor's run
# A fake hub client and a fake sandbox: the supervisor's decisions (limits, counters, GPU lease,
# requeue) without services. tests/sandbox/test_gpu.py reuses them with a real GpuSlots.


class FakeRun:
    id = "run1"

    def __init__(self):
        self.finished = None
        self.logged = []

    def log(self, values, step):
        self.logged.append((step, values))

    def finish(self, status, timeout=None):
        self.finished = status


class FakeClient:
    """The hub behind ``hub.client.worker.WorkerClient``: the SDK's ``request`` (answered by
    ``_json``, chunk bodies recorded by ``upload``) and the SDK calls the supervisor makes."""

    def __init__(
        self,
        *,
        resources=None,
        target=None,
        base=None,
        heartbeat_status="running",
        status="queued",
        start_error=None,
    ):
        from hub.client import HubClientError

        self.HubClientError = HubClientError
        self.calls: list[tuple[str, str, object]] = []
        self.heartbeat_status = heartbeat_status
        self.status, self.start_error = status, start_error
        self.branches: dict[tuple[str, str], str] = {}
        self.run = FakeRun()
        self.job = {
            "id": "j1",
            "kind": "train",
            "config": {"train": {"steps": 1}},
            "project": "alice/exp",
            "attempt": 1,
            "created_by": "alice",
            "base": base,
            "target": target,
            "resources": {
                "gpus": 0,
                "cpus": 2,
                "memory_mb": 512,
                "time_limit_s": 100,
                **(resources or {}),
            },
        }

    def _json(self, method, path, json=None, idempotent=False, params=None):
        self.calls.append((method, path, json))
        if method == "GET" and path == f"/jobs/{self.job['id']}":
            return {**self.job, "status": self.status}
        if path.endswith("/worker/start"):
            if self.start_error is not None:
                raise self.start_error
            return {**self.job, "status": "running"}
        if path.endswith("/worker/heartbeat"):
            return {"status": self.heartbeat_status, "cancel_requested": False}
        return {}

    def upload(self, method, path, content):
        self.calls.append((method, path, bytes(content)))

    def request(
        self,
        method,
        path,
        *,
        json=None,
        params=None,
        content=None,
        headers=None,
        idempotent=None,
        retries=None,
    ):
        import httpx

        if content is not None:
            return httpx.Response(200, json=self.upload(method, path, content))
        return httpx.Response(
            200,
            json=self._json(method, path, json=json, idempotent=bool(idempotent), params=params),
        )

    def paths(self):
        return [p.rsplit("/worker/", 1)[-1] for _, p, _ in self.calls if "/worker/" in p]

    def finished(self):
        return next(j for _, p, j in self.calls if p.endswith("/worker/finish"))

    def log_lines(self):
        return [
            line[3] for _, p, j in self.calls if p.endswith("/worker/logs") for line in j["lines"]
        ]

    def branch_info(self, repo, branch):
        if (repo, branch) not in self.branches:
            raise self.HubClientError(404, "branch_not_found", f"no branch {branch}")
        return {"commit": self.branches[(repo, branch)]}

    def create_branch(self, repo, name, from_ref=None):
        self.calls.append(("POST", f"/repos/{repo}/branches", {"name": name, "from_ref": from_ref}))
        self.branches[(repo, name)] = from_ref
        return {}

    def pull(self, spec, dest):
        os.makedirs(dest, exist_ok=True)

    def init_run(self, *a, **kw):
        self.run_kwargs = kw
        return self.run


class FakeOutcome:
    def __init__(self, reason="exited", returncode=0, message="", dropped_event_lines=0):
        self.reason, self.returncode, self.message = reason, returncode, message
        self.dropped_event_lines = dropped_event_lines
        self.stderr_tail = ""


class FakeSandbox:
    """Yields ``events``, calls ``during`` (the job "running") between them, ends with ``outcome``."""

    instances: list = []

    def __init__(self, spec, *, events=(), outcome=None, during=None, start_error=None):
        self.spec, self.events_, self.outcome = spec, list(events), outcome or FakeOutcome()
        self.during, self.start_error = during, start_error
        self.cancelled = False
        FakeSandbox.instances.append(self)

    @classmethod
    def factory(cls, **kw):
        return lambda spec: cls(spec, **kw)

    def start(self):
        if self.start_error:
            raise self.start_error

    def cancel(self):
        self.cancelled = True

    def events(self):
        yield from self.events_
        if self.during:
            self.during(self)

    def wait(self):
        if self.cancelled and self.outcome.reason == "exited":
            return FakeOutcome("cancelled", -15, "cancelled")
        return self.outcome


def supervise(tmp_path, client=None, gpu_slots=None, **sandbox):
    from hub.client.worker import WorkerClient
    from workers.sandbox.jobfs import JobFolder
    from workers.supervisor import JobSupervisor

    client = client or FakeClient()
    sizes = []

    def plain_folder(path, *, size_bytes=None):
        """No filesystem of its own (that needs root and a loop device: tests/sandbox
        mounts real ones); the size asked for is recorded."""
        sizes.append(size_bytes)
        return JobFolder.create(path)

    def sandbox_factory(spec):
        sb = FakeSandbox.factory(**sandbox)(spec)
        sb.folder_size = sizes[-1] if sizes else None
        return sb

    sup = JobSupervisor(
        "j1",
        client=WorkerClient(sdk=client),
        work_root=tmp_path,
        hostname="w1",
        gpu_slots=gpu_slots,
        sandbox_factory=sandbox_factory,
        job_folder_factory=plain_folder,
    )
    return sup, client


def test_the_job_gets_a_cpu_time_limit_from_its_wall_clock_and_cpus(tmp_path):
    from workers.supervisor import cpu_time_limit

    sup, client = supervise(tmp_path)
    assert sup.run() == "succeeded"
    spec = FakeSandbox.instances[-1].spec
    assert spec.wall_time_s == 100 and spec.cpus == 2.0
    # 100 s x 2 CPUs + 10 % + a minute: a backstop above what the cgroup quota allows.
    assert spec.cpu_time_s == cpu_time_limit(100, 2) == 280
    assert cpu_time_limit(3600, 0.5) == 3960 + 60  # a fraction of a CPU still gets one CPU's worth
    spec.validate()


def test_event_lines_the_reader_dropped_count_as_rejected_and_are_logged(tmp_path):
    good = json.dumps(
        {"type": "progress", "seq": 0, "time": 1.0, "step": 1, "total": 2, "eta_s": None}
    ).encode()
    sup, client = supervise(
        tmp_path, events=[good, b"not json"], outcome=FakeOutcome(dropped_event_lines=3)
    )
    assert sup.run() == "succeeded"
    events = client.finished()["summary"]["events"]
    assert events["received"] == 5 and events["rejected"] == 4
    assert events["rejected_reasons"]["oversized (dropped by the reader)"] == 3
    assert any("rejected 3 event line(s)" in line for line in client.log_lines())


def test_a_sandbox_that_cannot_start_requeues_the_job_and_raises(tmp_path):
    from workers.supervisor import InfrastructureError

    sup, client = supervise(tmp_path, start_error=OSError("no cgroup"))
    with pytest.raises(InfrastructureError, match="no cgroup"):
        sup.run()
    assert client.paths()[-1] == "requeue" and "finish" not in client.paths()
    assert "no cgroup" in client.calls[-1][2]["reason"]


class _BusySlots:
    """A GpuSlots whose GPUs are all taken."""

    def lease(self, n, job_id, ttl=60.0, *, on_lost=None):
        from workers.sandbox import NoGpuAvailable

        raise NoGpuAvailable(f"{n} GPUs requested, 0 free on host-a")


def test_no_free_gpu_leaves_the_job_queued_without_starting_or_requeueing_it(tmp_path):
    from workers.supervisor import GpusBusy

    sup, client = supervise(
        tmp_path, client=FakeClient(resources={"gpus": 2}), gpu_slots=_BusySlots()
    )
    with pytest.raises(GpusBusy, match="waiting for GPUs: 2 GPUs requested, 0 free"):
        sup.run()
    # Only the job was read: no start (no attempt, no transition), no requeue, no finish, no
    # log lines, no branch lookup, no run.
    assert client.calls == [("GET", "/jobs/j1", None)]
    assert sup.sandbox is None


class _RecordingSlots:
    """A GpuSlots with free GPUs that records when its leases are taken and released."""

    def __init__(self):
        self.events: list[str] = []

    def lease(self, n, job_id, ttl=60.0, *, on_lost=None):
        import contextlib

        @contextlib.contextmanager
        def held():
            self.events.append(f"take {n}")
            try:
                yield list(range(n))
            finally:
                self.events.append("release")

        return held()


def test_gpus_are_reserved_before_the_job_starts_and_named_in_the_start(tmp_path):
    slots = _RecordingSlots()
    client = FakeClient(resources={"gpus": 2})
    start_seen = []
    orig = client._json

    def spy(method, path, **kw):
        if path.endswith("/worker/start"):
            start_seen.append(list(slots.events))
        return orig(method, path, **kw)

    client._json = spy
    sup, _ = supervise(tmp_path, client=client, gpu_slots=slots)
    assert sup.run() == "succeeded"
    assert start_seen == [["take 2"]]  # held when the hub was told the job runs
    assert next(j for _, p, j in client.calls if p.endswith("/worker/start")) == {
        "worker": "w1",
        "gpus": [0, 1],
    }
    assert slots.events == ["take 2", "release"]
    assert FakeSandbox.instances[-1].spec.gpus == [0, 1]


def test_a_lease_taken_before_the_start_is_released_when_the_start_is_refused(tmp_path):
    from hub.client import HubClientError, HubUnreachable
    from workers.supervisor import InfrastructureError

    refused = HubClientError(
        409, "job_state_conflict", "Job j1 is cancelled, not queued.", {"status": "cancelled"}
    )
    slots = _RecordingSlots()
    sup, client = supervise(
        tmp_path, client=FakeClient(resources={"gpus": 1}, start_error=refused), gpu_slots=slots
    )
    assert sup.run() == "skipped"
    assert slots.events == ["take 1", "release"]
    assert client.paths() == ["start"]  # no requeue, no finish

    slots = _RecordingSlots()
    unreachable = HubUnreachable("connection refused")
    sup, client = supervise(
        tmp_path, client=FakeClient(resources={"gpus": 1}, start_error=unreachable), gpu_slots=slots
    )
    with pytest.raises(InfrastructureError, match="unreachable"):
        sup.run()
    assert slots.events == ["take 1", "release"]
    assert client.paths() == ["start"]

    slots = _RecordingSlots()
    other = HubClientError(500, "internal_error", "boom")
    sup, client = supervise(
        tmp_path, client=FakeClient(resources={"gpus": 1}, start_error=other), gpu_slots=slots
    )
    with pytest.raises(HubClientError):
        sup.run()
    assert slots.events == ["take 1", "release"]


def test_a_job_that_is_not_queued_any_more_is_skipped_without_reserving_gpus(tmp_path):
    slots = _RecordingSlots()
    sup, client = supervise(
        tmp_path, client=FakeClient(resources={"gpus": 1}, status="cancelled"), gpu_slots=slots
    )
    assert sup.run() == "skipped"
    assert slots.events == [] and client.paths() == []


def test_a_job_the_hub_marked_lost_is_stopped_and_its_late_result_not_forced(tmp_path, monkeypatch):
    import time

    import workers.supervisor as supervisor
    from hub.client import HubClientError

    monkeypatch.setattr(supervisor, "HEARTBEAT_S", 0.02)
    client = FakeClient(heartbeat_status="lost")
    orig = client._json

    def _json(method, path, **kw):
        if path.endswith("/worker/finish"):
            client.calls.append((method, path, kw.get("json")))
            raise HubClientError(409, "job_state_conflict", "Job j1 cannot go from lost to failed.")
        return orig(method, path, **kw)

    client._json = _json

    def running(sb):
        deadline = time.time() + 5
        while not sb.cancelled and time.time() < deadline:
            time.sleep(0.01)

    sup, _ = supervise(tmp_path, client=client, during=running)
    assert sup.run() == "failed"
    assert FakeSandbox.instances[-1].cancelled
    assert "marked the job lost" in client.finished()["reason"]


def test_a_missing_target_branch_is_created_at_the_base_commit(tmp_path):
    base = {"repo": "alice/moe", "ref": "main", "commit": "a" * 40}
    client = FakeClient(base=base, target={"repo": "alice/moe", "branch": "exp"})
    sup, _ = supervise(tmp_path, client=client)
    sup.job = client.job
    sup.target_head = None
    assert client.paths() == []
    sup.client.sdk.push = lambda *a, **kw: (_ for _ in ()).throw(
        AssertionError("stop after the branch")
    )
    (tmp_path / "w.safetensors").write_bytes(b"x")
    with (
        open(tmp_path / "w.safetensors", "rb") as f,
        pytest.raises(AssertionError, match="stop after the branch"),
    ):
        sup._commit_weights(client.job, [("w.safetensors", f)], FakeRun())
    assert client.branches[("alice/moe", "exp")] == "a" * 40


def test_profile_rows_reach_the_hub_with_their_input_shapes(tmp_path):
    class Client(FakeClient):
        def _json(self, method, path, json=None, idempotent=False, params=None):
            if path.endswith("/worker/chunks/missing"):
                self.calls.append((method, path, json))
                return {"missing": []}
            return super()._json(method, path, json, idempotent, params)

    row = {
        "calls": 2,
        "self_cpu_us": 10.0,
        "cpu_total_us": 12.0,
        "self_device_us": 0.0,
        "device_total_us": 0.0,
        "flops": 100,
        "self_cpu_memory_bytes": 0,
        "self_device_memory_bytes": 0,
    }
    table = {
        "steps": 1,
        "ops": [
            {
                "name": "aten::mm",
                **row,
                "calls": 4,
                "self_cpu_us": 20.0,
                "cpu_total_us": 24.0,
                "flops": 200,
            }
        ],
        "ops_by_shape": [
            {"name": "aten::mm", "shapes": "[[4,8],[8,8]]", **row},
            {"name": "aten::mm", "shapes": "[[4,8],[8,2]]", **row},
        ],
    }
    art = json.dumps(
        {
            "type": "artifact",
            "seq": 0,
            "time": 1.0,
            "path": "profile/ops.json",
            "kind": "profile_ops",
        }
    ).encode()

    def write_table(sandbox):
        out = sandbox.spec.job_dir / "out" / "profile"
        out.mkdir(parents=True, exist_ok=True)
        (out / "ops.json").write_text(json.dumps(table))

    sup, client = supervise(tmp_path, client=Client(), events=[art], during=write_table)
    assert sup.run() == "succeeded"
    sent = next(j for _, p, j in client.calls if p.endswith("/worker/profile"))["ops"]
    assert [(r["op"], r["shapes"], r["calls"], r["self_us"]) for r in sent] == [
        ("aten::mm", "[[4,8],[8,8]]", 2, 10.0),
        ("aten::mm", "[[4,8],[8,2]]", 2, 10.0),
    ]


def test_a_profile_table_without_shapes_is_still_sent_per_op():
    from workers.supervisor import profile_rows

    old = {
        "ops": [
            {"name": "aten::add", "calls": 3, "self_cpu_us": 5.0, "cpu_total_us": 6.0, "flops": 0}
        ]
    }
    assert profile_rows(old) == [
        {
            "op": "aten::add",
            "shapes": "",
            "calls": 3,
            "self_us": 5.0,
            "total_us": 6.0,
            "flops": 0,
            "self_memory_bytes": 0,
        }
    ]


def test_a_cancel_reaches_the_sandbox_with_the_next_heartbeat(tmp_path):
    """The hub's cancel only flags the job; the heartbeat's response is the whole path to the
    worker, so a running job stops within one heartbeat interval (2 s)."""
    import time

    import workers.supervisor as supervisor

    class Client(FakeClient):
        cancel_at = None

        def _json(self, method, path, json=None, idempotent=False, params=None):
            if path.endswith("/worker/heartbeat") and self.cancel_at is not None:
                self.calls.append((method, path, json))
                return {"status": "running", "cancel_requested": True}
            return super()._json(method, path, json, idempotent, params)

    client = Client()
    took = []

    def running(sb):
        client.cancel_at = time.monotonic()  # the user cancels now
        while not sb.cancelled and time.monotonic() - client.cancel_at < 10:
            time.sleep(0.01)
        took.append(time.monotonic() - client.cancel_at)

    sup, _ = supervise(tmp_path, client=client, during=running)
    assert sup.run() == "cancelled"
    assert took[0] < supervisor.HEARTBEAT_S + 1.0
    assert (
        client.finished()["status"] == "cancelled"
        and client.finished()["reason"] == "cancelled by the user"
    )


def test_the_jobs_run_does_not_sample_the_supervisors_own_cpu_and_memory(tmp_path):
    sup, client = supervise(tmp_path)
    assert sup.run() == "succeeded"
    assert client.run_kwargs["system_metrics"] is False


def test_the_jobs_log_names_the_sandbox_paths_never_the_workers(tmp_path):
    """A supervisor line quoting the host's job folders (an exception message, say) reaches
    the job's log with the paths the job sees."""
    sup, _ = supervise(tmp_path)
    sup.logs.add(
        "supervisor",
        f"back to the queue: cannot open {tmp_path}/j1/out/model.safetensors "
        f"or {tmp_path}/j1-input/config.json in {tmp_path}",
    )
    [line] = [text for _, _, _, text in sup.logs.buf]
    assert str(tmp_path) not in line
    assert line == (
        "back to the queue: cannot open /job/out/model.safetensors or /input/config.json in <jobs>"
    )
