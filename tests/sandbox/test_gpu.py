"""GPU slots: atomic reservations in Redis (real server at 127.0.0.1:6379, a unique key prefix
per test), and the sandbox exposing only the reserved devices' nodes (fake device nodes made
with mknod: no GPU on these machines)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
import uuid

import pytest

from tests.sandbox.conftest import make_spec, needs_sandbox, run_job
from workers.sandbox import GpuSlots, NoGpuAvailable, Sandbox, SandboxConfig, discover_gpus

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("HUB_TEST_SANDBOX_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {e}")
    return client


@pytest.fixture
def prefix():
    client = _redis()
    p = f"test:gpu:{uuid.uuid4().hex}"
    yield p
    for key in client.scan_iter(f"{p}*"):
        client.delete(key)


def slots(prefix: str, devices=(0, 1, 2, 3), host: str = "host-a") -> GpuSlots:
    return GpuSlots(REDIS_URL, host, devices, key_prefix=prefix)


# --------------------------------------------------------------------------- reservations


def test_reserve_release_and_exhaustion(prefix):
    s = slots(prefix)
    a = s.reserve(2, "job-a")
    b = s.reserve(2, "job-b")
    assert sorted(a + b) == [0, 1, 2, 3] and not set(a) & set(b)
    with pytest.raises(NoGpuAvailable, match="1 GPUs requested, 0 free"):
        s.reserve(1, "job-c")
    assert s.holders() == {**dict.fromkeys(a, "job-a"), **dict.fromkeys(b, "job-b")}
    assert s.release("job-a") == sorted(a)
    assert s.release("job-a") == []  # idempotent
    assert s.reserve(1, "job-c") == [min(a)]
    assert s.reserve(0, "job-d") == []
    with pytest.raises(NoGpuAvailable):
        s.reserve(5, "job-e")


def test_reserve_is_idempotent_for_a_job(prefix):
    s = slots(prefix)
    first = s.reserve(2, "job-a")
    assert s.reserve(2, "job-a") == first  # a retried task does not take a second set
    assert len(s.holders()) == 2


def test_hosts_are_separate(prefix):
    assert slots(prefix, host="a").reserve(4, "j1") == [0, 1, 2, 3]
    assert slots(prefix, host="b").reserve(4, "j2") == [0, 1, 2, 3]


def test_stale_leases_expire_and_refresh_keeps_them(prefix):
    s = slots(prefix, devices=(0, 1))
    s.reserve(1, "dead-worker", ttl=0.2)
    s.reserve(1, "live-worker", ttl=0.2)
    for _ in range(3):
        time.sleep(0.1)
        assert s.refresh("live-worker", ttl=0.2)
    time.sleep(0.05)
    # dead-worker stopped refreshing: its device is free again, live-worker's is not.
    assert s.reserve(1, "new-job", ttl=5) == [0]
    assert not s.refresh("dead-worker")  # the lease is gone: the job must stop
    with pytest.raises(NoGpuAvailable):
        s.reserve(1, "another", ttl=5)


def test_lease_releases_on_every_way_out(prefix):
    s = slots(prefix, devices=(0,))
    with pytest.raises(RuntimeError):
        with s.lease(1, "job-a", ttl=0.3) as devs:
            assert devs == [0]
            time.sleep(0.5)  # longer than the ttl: the heartbeat keeps it
            assert s.holders() == {0: "job-a"}
            raise RuntimeError("the job failed")
    assert s.holders() == {}
    with s.lease(1, "job-b") as devs:
        assert devs == [0]
    assert s.holders() == {}


def _worker(prefix, barrier, results, rounds):
    import redis

    s = slots(prefix)
    checker = redis.Redis.from_url(REDIS_URL)
    job = f"job-{os.getpid()}"
    barrier.wait()
    got = []
    overlaps = 0
    for _ in range(rounds):
        try:
            devs = s.reserve(1, job, ttl=30)
        except NoGpuAvailable:
            got.append(None)
            continue
        got.append(devs[0])
        # While we hold the device nobody else may: SETNX on a per-device marker proves it.
        if not checker.set(f"{prefix}:check:{devs[0]}", job, nx=True):
            overlaps += 1
        time.sleep(0.002)
        checker.delete(f"{prefix}:check:{devs[0]}")
        s.release(job)
    results.put((job, got, overlaps))


def test_concurrent_processes_never_share_a_device(prefix):
    ctx = multiprocessing.get_context("fork")
    n = 8
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(prefix, barrier, results, 25)) for _ in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert all(p.exitcode == 0 for p in procs)
    assert sum(o[2] for o in out) == 0, "two processes held the same device at once"
    granted = sum(1 for o in out for d in o[1] if d is not None)
    assert granted > 0 and all(d in (None, 0, 1, 2, 3) for o in out for d in o[1])
    assert slots(prefix).holders() == {}


def test_first_round_hands_out_each_device_once(prefix):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(6), ctx.Queue()

    def grab(i):
        s = slots(prefix)
        barrier.wait()
        try:
            results.put(s.reserve(1, f"job-{i}", ttl=30)[0])
        except NoGpuAvailable:
            results.put(None)

    procs = [ctx.Process(target=grab, args=(i,)) for i in range(6)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sorted(d for d in got if d is not None) == [0, 1, 2, 3]
    assert got.count(None) == 2


# --------------------------------------------------------------------------- device nodes


@pytest.fixture
def fake_dev(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    d = tmp_path / "dev"
    d.mkdir()
    null = os.stat("/dev/null").st_rdev  # fake GPUs that behave like /dev/null
    for name in ("nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidiactl", "nvidia-uvm"):
        os.mknod(d / name, 0o666 | stat.S_IFCHR, null)
        os.chmod(d / name, 0o666)
    (d / "nvidia9").write_text("a regular file is not a device")
    return d


def test_discovery_reads_only_nvidia_char_devices(fake_dev):
    assert discover_gpus(fake_dev) == [0, 1, 2, 3]
    assert GpuSlots(REDIS_URL, "h", dev_root=fake_dev, client=_FakeRedis()).devices == [0, 1, 2, 3]


class _FakeRedis:
    def register_script(self, script):
        return None


@needs_sandbox
def test_sandbox_exposes_only_the_reserved_devices(tmp_path, fake_dev):
    run = run_job(
        tmp_path,
        """
        import os
        nodes = sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))
        print(" ".join(nodes))
        for n in nodes:
            with open("/dev/" + n, "w") as f:   # read/write/ioctl are allowed on these
                f.write("x")
        open("/dev/nvidia0", "rb")
    """,
        gpus=[1, 3],
        config=SandboxConfig(dev_root=fake_dev),
    )
    assert run.stdout.split() == ["nvidia-uvm", "nvidia1", "nvidia3", "nvidiactl"], run.stderr
    assert "FileNotFoundError" in run.result.message and "/dev/nvidia0" in run.result.message


@needs_sandbox
def test_no_gpu_nodes_without_a_reservation(tmp_path, fake_dev):
    run = run_job(
        tmp_path,
        "import os; print([n for n in os.listdir('/dev') if 'nvidia' in n])",
        config=SandboxConfig(dev_root=fake_dev),
    )
    assert run.result.ok and run.stdout.strip() == "[]"


@needs_sandbox
def test_an_absent_gpu_is_refused_before_launch(tmp_path, fake_dev):
    sb = Sandbox(make_spec(tmp_path, "pass", gpus=[7]), config=SandboxConfig(dev_root=fake_dev))
    with pytest.raises(ValueError, match="GPU 7 has no device node"):
        sb.start()
    assert not (tmp_path / "job").exists()  # refused before anything was prepared


def test_lease_reports_a_lost_reservation(prefix):
    s = slots(prefix, devices=(0,))
    lost = []
    with s.lease(1, "job-a", ttl=0.3, on_lost=lambda: lost.append(1)) as devs:
        assert devs == [0]
        s.release("job-a")  # as if Redis had expired it while unreachable
        deadline = time.time() + 3
        while not lost and time.time() < deadline:
            time.sleep(0.02)
    assert lost == [1]


# --------------------------------------------------------------------------- the supervisor's lease


def test_the_supervisor_holds_its_gpus_for_the_whole_job_and_releases_them(prefix, tmp_path):
    """A job longer than the lease's ttl keeps its GPUs (nobody else can take them), and they
    are free again after it, whatever way it ended."""
    from tests.unit.test_supervisor import FakeClient, FakeOutcome, supervise

    s = slots(prefix, devices=(0, 1))
    seen = {}

    def running(sb):
        time.sleep(1.2)  # four times the ttl below: an unrefreshed lease would have expired
        seen["holders"] = s.holders()
        try:
            seen["other"] = slots(prefix, devices=(0, 1)).reserve(2, "other-job", ttl=5)
        except NoGpuAvailable as e:
            seen["other"] = str(e)

    for outcome in (FakeOutcome(), FakeOutcome("exited", 1, "the job failed with exit code 1")):
        sup, client = supervise(
            tmp_path,
            client=FakeClient(resources={"gpus": 2}),
            gpu_slots=s,
            during=running,
            outcome=outcome,
        )
        sup.gpu_lease_ttl_s = 0.3
        sup.run()
        assert seen["holders"] == {0: "j1", 1: "j1"}
        assert "0 free" in seen["other"]
        assert s.holders() == {}
        from tests.unit.test_supervisor import FakeSandbox

        assert FakeSandbox.instances[-1].spec.gpus == [0, 1]


def test_a_job_whose_gpu_lease_is_lost_is_stopped_and_requeued(prefix, tmp_path):
    from tests.unit.test_supervisor import FakeClient, FakeSandbox, supervise
    from workers.supervisor import InfrastructureError

    s = slots(prefix, devices=(0,))

    def running(sb):
        s.release("j1")  # Redis lost the reservation (unreachable past the ttl, say)
        deadline = time.time() + 5
        while not sb.cancelled and time.time() < deadline:
            time.sleep(0.02)

    sup, client = supervise(
        tmp_path, client=FakeClient(resources={"gpus": 1}), gpu_slots=s, during=running
    )
    sup.gpu_lease_ttl_s = 0.3
    with pytest.raises(InfrastructureError, match="GPU reservation was lost"):
        sup.run()
    assert FakeSandbox.instances[-1].cancelled
    assert client.paths()[-1] == "requeue" and client.run.finished == "failed"
