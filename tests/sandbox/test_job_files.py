"""What the supervisor (root) reads out of a job's folder, and how much of the host's disk a
job may fill. A hostile job controls every name in its folder: whatever it links, swaps or
plants, nothing of the host may end up in what the supervisor uploads, commits or logs; and
whatever it writes, the host's disk keeps its free space."""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
import threading
from types import SimpleNamespace

import pytest

from tests.sandbox.conftest import MiB, assert_failed, make_spec, needs_sandbox, run_job
from workers.sandbox import PYTHON, Sandbox

pytestmark = [pytest.mark.integration, needs_sandbox]

SHADOW = open("/etc/shadow", "rb").read() if os.path.exists("/etc/shadow") else b""


# --------------------------------------------------------------------------- the supervisor, for real


class RecordingClient:
    """The hub as the supervisor sees it, recording every byte it is sent."""

    def __new__(cls, **kw):
        from tests.unit.test_supervisor import FakeClient

        class Client(FakeClient):
            def __init__(self, **kw):
                super().__init__(**kw)
                self.sent: list[bytes] = []  # chunk bodies and pushed files
                self.pushed: dict[str, bytes] = {}

            def _json(self, method, path, json=None, idempotent=False, params=None):
                if path.endswith("/worker/chunks/missing"):
                    self.calls.append((method, path, json))
                    return {"missing": json["chunks"]}
                return super()._json(method, path, json, idempotent, params)

            def upload(self, method, path, content):
                self.calls.append((method, path, None))
                self.sent.append(bytes(content))

            def push(self, folder, **kw):
                for p in sorted(folder.rglob("*")):
                    if p.is_file():
                        self.pushed[p.name] = p.read_bytes()
                        self.sent.append(self.pushed[p.name])
                return SimpleNamespace(commit={"sha": "c" * 40})

        return Client(**kw)


EMIT = """
import json, os, time
def artifact(path, kind):
    ev = {"type": "artifact", "seq": 0, "time": time.time(), "path": path, "kind": kind}
    os.write(3, (json.dumps(ev) + "\\n").encode())
"""


def supervise_for_real(tmp_path, code: str, *, resources=None, target=True):
    """Run ``code`` as the job, in the real sandbox, under the real supervisor."""
    from hub.client.worker import WorkerClient
    from workers.supervisor import JobSupervisor

    client = RecordingClient(
        resources={"memory_mb": 512, "time_limit_s": 60, **(resources or {})},
        target={"repo": "alice/moe", "branch": "main"} if target else None,
    )
    client.branches[("alice/moe", "main")] = "b" * 40
    argv = [PYTHON, "-c", EMIT + textwrap.dedent(code)]
    sup = JobSupervisor(
        "j1",
        client=WorkerClient(sdk=client),
        work_root=tmp_path / "work",
        hostname="w1",
        sandbox_factory=lambda spec: Sandbox(dataclasses.replace(spec, argv=argv)),
    )
    (tmp_path / "work").mkdir()
    status = sup.run()
    return status, client


def _assert_nothing_of_the_host_left(client, *secrets: bytes) -> None:
    everything = b"\n".join(client.sent) + "\n".join(client.log_lines()).encode()
    everything += json.dumps([c[2] for c in client.calls]).encode()
    for s in secrets:
        assert s and s not in everything, "a host file reached the hub"


@pytest.fixture
def hub_db(tmp_path):
    """A stand-in for the hub's SQLite file: root-only, outside every job folder."""
    d = tmp_path / "hub-data"
    d.mkdir(mode=0o700)
    db = d / "db.sqlite3"
    db.write_bytes(b"SQLite format 3\0 the hub's users and tokens " + os.urandom(16).hex().encode())
    os.chmod(db, 0o600)
    return db


def test_an_output_folder_linked_to_the_root_publishes_no_host_file(tmp_path, hub_db):
    """The attack as it was run: /job/out becomes a link to /, then /etc/shadow and the hub's
    database are named as an eval artifact and as weights (a commit)."""
    status, client = supervise_for_real(
        tmp_path,
        f"""
        import shutil
        shutil.rmtree("/job/out", ignore_errors=True)
        os.symlink("/", "/job/out")
        artifact("etc/shadow", "eval")
        artifact("etc/passwd", "samples")
        artifact({str(hub_db).lstrip("/")!r}, "weights")
    """,
    )
    assert status == "succeeded", client.log_lines()
    _assert_nothing_of_the_host_left(client, hub_db.read_bytes(), *([SHADOW] if SHADOW else []))
    assert client.pushed == {} and "artifacts" not in client.paths()
    assert sum("ignored artifact" in line for line in client.log_lines()) == 3


def test_an_output_folder_swapped_for_a_link_after_it_was_used_publishes_no_host_file(
    tmp_path, hub_db
):
    """A real output folder while the job writes, renamed away and replaced by a link at the
    end: the supervisor resolves ``out`` when it reads, not when the job started."""
    status, client = supervise_for_real(
        tmp_path,
        f"""
        os.makedirs("/job/out", exist_ok=True)
        open("/job/out/eval.json", "w").write("{{}}")
        artifact("eval.json", "eval")
        artifact({str(hub_db).lstrip("/")!r}, "weights")
        os.rename("/job/out", "/job/old")
        os.symlink("/", "/job/out")
    """,
    )
    assert status == "succeeded", client.log_lines()
    _assert_nothing_of_the_host_left(client, hub_db.read_bytes())
    assert client.pushed == {}


def test_the_job_cannot_swap_its_own_folder(tmp_path):
    """/job is a mount point inside the sandbox (and on the host, its own filesystem under a
    root-owned parent the job cannot see): it cannot be renamed or replaced."""
    run = run_job(
        tmp_path,
        """
        import os
        for op in (lambda: os.rename("/job", "/job2"), lambda: os.rmdir("/job")):
            try:
                op()
                print("swapped")
            except OSError as e:
                print(type(e).__name__)
    """,
    )
    assert run.result.ok, run.stderr
    assert "swapped" not in run.stdout
    assert (tmp_path / "job").is_dir() and not (tmp_path / "job").is_symlink()


def test_an_artifact_named_through_a_parent_link_is_refused(tmp_path, hub_db):
    status, client = supervise_for_real(
        tmp_path,
        f"""
        os.makedirs("/job/out/deep", exist_ok=True)
        os.symlink("/etc", "/job/out/etc")
        os.symlink({str(hub_db.parent)!r}, "/job/out/deep/data")
        artifact("etc/shadow", "eval")
        artifact("deep/data/db.sqlite3", "weights")
    """,
    )
    assert status == "succeeded", client.log_lines()
    _assert_nothing_of_the_host_left(client, hub_db.read_bytes(), *([SHADOW] if SHADOW else []))
    assert client.pushed == {}


def test_a_fifo_artifact_is_refused_without_waiting(tmp_path):
    """A FIFO would block a reader forever (and a device could do anything): only regular
    files are read, and the check opens without waiting."""
    status, client = supervise_for_real(
        tmp_path,
        """
        os.makedirs("/job/out", exist_ok=True)
        os.mkfifo("/job/out/eval.json")
        artifact("eval.json", "eval")
        os.mkfifo("/job/out/model.safetensors")
        artifact("model.safetensors", "weights")
    """,
    )
    assert status == "succeeded", client.log_lines()
    assert client.pushed == {} and client.sent == []
    assert sum("ignored artifact" in line for line in client.log_lines()) == 2


def test_real_outputs_still_reach_the_hub(tmp_path):
    status, client = supervise_for_real(
        tmp_path,
        """
        os.makedirs("/job/out/sub", exist_ok=True)
        open("/job/out/sub/eval.json", "w").write('{"acc": 0.5}')
        artifact("sub/eval.json", "eval")
        open("/job/out/model.safetensors", "wb").write(b"not really weights")
        artifact("model.safetensors", "config")
    """,
    )
    assert status == "succeeded", client.log_lines()
    assert client.finished()["summary"]["eval"] == {"acc": 0.5}
    assert client.pushed == {"model.safetensors": b"not really weights"}


# --------------------------------------------------------------------------- the primitive


@pytest.fixture(params=["openat2", "nofollow-walk"])
def resolver(request, monkeypatch):
    """Both ways of resolving beneath the handle: openat2 where the kernel has it, and the
    O_NOFOLLOW walk used where it does not (older kernels, container seccomp profiles)."""
    from workers.sandbox import jobfs

    if request.param == "openat2":
        fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert jobfs._openat2(fd, "etc", os.O_RDONLY | os.O_CLOEXEC, jobfs._RESOLVE) is not None
        finally:
            os.close(fd)
    else:
        monkeypatch.setattr(jobfs, "_openat2_ok", False)
    return request.param


def test_a_job_folder_replaced_on_the_host_is_still_read_through_its_handle(tmp_path, resolver):
    """The handle is taken before the job runs: whatever is at the folder's path later (a
    link to /, another folder), reads go to the folder the job was given."""
    from workers.sandbox.jobfs import JobFolder, UnsafeJobFile

    with JobFolder.create(tmp_path / "job") as folder:
        folder.write_text("config.json", "{}")
        os.mkdir(tmp_path / "job" / "out")
        (tmp_path / "job" / "out" / "a.json").write_text("mine")
        os.rename(tmp_path / "job", tmp_path / "moved")
        os.symlink("/", tmp_path / "job")
        with folder.open("out/a.json") as f:
            assert f.read() == b"mine"
        for rel in ("etc/shadow", "out/../../etc/shadow", "/etc/shadow"):
            with pytest.raises(UnsafeJobFile):
                folder.open(rel)


def test_a_file_swapped_for_a_link_between_announcement_and_open_is_refused(tmp_path, resolver):
    from workers.sandbox.jobfs import JobFolder, UnsafeJobFile

    with JobFolder.create(tmp_path / "job") as folder:
        out = tmp_path / "job" / "out"
        out.mkdir()
        (out / "eval.json").write_text("{}")  # announced while it was a file
        os.replace(out / "eval.json", out / "x")
        os.symlink("/etc/passwd", out / "eval.json")  # swapped before the open
        with pytest.raises(UnsafeJobFile, match="link"):
            folder.open("out/eval.json")
        os.symlink("/etc", out / "etc")
        with pytest.raises(UnsafeJobFile, match="link"):
            folder.open("out/etc/passwd")


def test_opening_a_fifo_refuses_it_at_once(tmp_path, resolver):
    from workers.sandbox.jobfs import JobFolder, UnsafeJobFile

    with JobFolder.create(tmp_path / "job") as folder:
        os.mkfifo(tmp_path / "job" / "pipe")
        got: list = []

        def attempt():
            try:
                folder.open("pipe")
            except UnsafeJobFile as e:
                got.append(e)

        t = threading.Thread(target=attempt, daemon=True)
        t.start()
        t.join(30)  # a hang guard, not a timing assertion: the open must not wait for a writer
        assert not t.is_alive(), "opening a FIFO blocked"
        assert got and "not a regular file" in str(got[0])


# --------------------------------------------------------------------------- disk


def _host_free(path) -> int:
    s = os.statvfs(path)
    return s.f_bavail * s.f_frsize


def test_a_disk_bomb_ends_with_disk_quota_exceeded_and_leaves_the_host_space(tmp_path):
    """15 x 100 MB into the job folder with a 32 MB quota: the job ends with the reason, the
    host's filesystem lost no more than the quota, and nothing is left once it is cleaned."""
    free_before = _host_free(tmp_path)
    status, client = supervise_for_real(
        tmp_path,
        """
        import os
        os.makedirs("/job/out", exist_ok=True)
        block = b"x" * (1 << 20)
        for i in range(15):
            with open(f"/job/out/part{i}", "wb") as f:
                for _ in range(100):
                    f.write(block)
    """,
        resources={"disk_mb": 32},
        target=False,
    )
    assert status == "failed"
    reason = client.finished()["reason"]
    assert reason.startswith("disk quota exceeded: the job wrote more than 32 MiB"), reason
    # What the job could take from the host's filesystem while it ran: its image, <= quota + fs overhead.
    assert free_before - _host_free(tmp_path) < 200 * MiB
    assert not list((tmp_path / "work").glob("j1*")), "the job folder and its image are removed"


def test_a_job_folder_image_never_takes_more_than_its_quota(tmp_path):
    from workers.sandbox.jobfs import JobFolder

    with JobFolder.create(tmp_path / "job", size_bytes=16 * MiB) as folder:
        run = run_job(
            tmp_path,
            """
            block = b"y" * (1 << 20)
            with open("/job/big", "wb") as f:
                for _ in range(200):
                    f.write(block)
        """,
            disk_bytes=16 * MiB,
        )
        assert_failed(run, "disk quota exceeded")
        assert "disk" in run.result.limits_hit
        st = os.stat(folder.image)
        # What the host gave: at most the image, i.e. the quota plus room for ext4's metadata.
        assert st.st_blocks * 512 <= st.st_size <= 16 * MiB * 17 // 16 + 4 * MiB
    assert not os.path.exists(folder.image) and not (tmp_path / "job").exists()


@pytest.mark.parametrize("where", ["/tmp", "/dev/shm"])
def test_tmp_and_dev_shm_are_size_limited(tmp_path, where):
    """Both are tmpfs: their pages are the job's memory (its cgroup is charged), and each is
    capped at the job's disk quota, so a bomb there ends on ENOSPC, not on the host's RAM."""
    from workers.sandbox.jobfs import JobFolder

    with JobFolder.create(tmp_path / "job", size_bytes=16 * MiB):
        run = run_job(
            tmp_path,
            f"""
            block = b"z" * (1 << 20)
            with open("{where}/big", "wb") as f:
                for _ in range(64):
                    f.write(block)
        """,
            disk_bytes=16 * MiB,
            memory_bytes=512 * MiB,
        )
    assert_failed(run, "disk quota exceeded")


def test_a_disk_quota_needs_the_folder_on_its_own_filesystem(tmp_path):
    spec = make_spec(tmp_path, "pass", disk_bytes=16 * MiB)
    with pytest.raises(ValueError, match="own filesystem"):
        Sandbox(spec).start()
    assert not (tmp_path / "job").exists()  # refused before anything was prepared


def _mounted(path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def test_a_worker_start_clears_job_folders_a_dead_worker_left_mounted(tmp_path):
    """A worker SIGKILLed mid-job leaves its job folder mounted on its image: the next worker
    on that jobs folder unmounts and removes both, and leaves a kept (unmounted) image alone."""
    from workers.sandbox.jobfs import JobFolder, claim_jobs_dir, sweep_stale

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    left = JobFolder.create(jobs / "abc123", size_bytes=16 * MiB)  # never removed: the crash
    os.close(left.fd)
    kept = jobs / "def456.disk"
    kept.write_bytes(b"a failed job's image kept for a person")
    assert _mounted(jobs / "abc123")

    lock = claim_jobs_dir(jobs)
    assert lock is not None
    assert claim_jobs_dir(jobs) is None  # a second worker on the same folder may not sweep
    try:
        assert sweep_stale(jobs) == ["abc123"]
    finally:
        os.close(lock)
    assert not _mounted(jobs / "abc123")
    assert not (jobs / "abc123").exists() and not left.image.exists()
    assert kept.exists()
