"""One test (at least) per isolation layer, each showing that the layer itself holds.

Layers: cgroup -> rlimits -> per-job uid -> bwrap namespaces and filesystem view -> seccomp ->
Landlock -> wall-clock timeout with a kill of the whole tree (see workers/sandbox/README.md).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.sandbox.conftest import MiB, assert_failed, make_spec, needs_sandbox, run_job
from workers.sandbox import Sandbox
from workers.sandbox.cgroups import pids_of_uid
from workers.sandbox.probe import SYSTEM_PATH, tool
from workers.sandbox.spec import PROJECT_ROOT, PythonRuntime

pytestmark = [pytest.mark.integration, needs_sandbox]

# --------------------------------------------------------------------------- cgroup


def test_cgroup_holds_the_job_with_its_limits_and_is_removed_after(tmp_path):
    spec = make_spec(
        tmp_path,
        """
        import os, time
        os.write(3, b"up\\n")
        time.sleep(1.5)
    """,
        memory_bytes=300 * MiB,
        pids=40,
        cpus=0.5,
    )
    with Sandbox(spec) as sb:
        sb.start()
        assert sb.read_events(timeout=20) == [b"up"]
        cg = sb.cgroup
        assert cg is not None
        members = cg.pids()
        # Every process of the job's uid is inside the job's groups.
        assert members and set(pids_of_uid(sb.uid)) <= members
        if cg.version == "v1":
            assert int((cg.dirs["memory"] / "memory.limit_in_bytes").read_text()) == 300 * MiB
            assert (cg.dirs["pids"] / "pids.max").read_text().strip() == "40"
            assert (cg.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
        else:
            d = cg.dirs["unified"]
            assert int((d / "memory.max").read_text()) == 300 * MiB
            assert (d / "pids.max").read_text().strip() == "40"
        res = sb.wait(timeout=60)
    assert res.ok, res
    assert all(not d.exists() for d in cg.dirs.values()), "the job's cgroups must be removed"


def test_cgroup_cpu_quota_caps_cpu_use(tmp_path):
    # 0.2 CPU for ~1.5 s of wall time: a busy loop cannot get much more than 0.3 s of CPU.
    run = run_job(
        tmp_path,
        """
        import time
        t = time.time()
        while time.time() - t < 1.5:
            pass
    """,
        cpus=0.2,
    )
    assert run.result.ok, run.result
    assert run.result.cpu_time <= 0.2 * run.result.wall_time + 0.25, run.result


# --------------------------------------------------------------------------- rlimits


def test_rlimits_are_set_inside(tmp_path):
    run = run_job(
        tmp_path,
        """
        import json, resource as r
        names = ["RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_NPROC"]
        print(json.dumps({n: r.getrlimit(getattr(r, n)) for n in names}))
    """,
        cpu_time_s=100,
        file_size_bytes=5 * MiB,
        open_files=200,
        pids=50,
    )
    assert run.result.ok, run.result
    lim = json.loads(run.stdout)
    assert lim["RLIMIT_CPU"] == [100, 105]
    assert lim["RLIMIT_FSIZE"] == [5 * MiB, 5 * MiB]
    assert lim["RLIMIT_NOFILE"] == [200, 200]
    assert lim["RLIMIT_CORE"] == [0, 0]
    assert lim["RLIMIT_NPROC"][0] >= 50  # binds: the job's uid is not root


def test_file_size_limit_stops_a_big_write(tmp_path):
    run = run_job(
        tmp_path,
        """
        with open("/job/big", "wb") as f:
            f.write(b"x" * (3 << 20))
    """,
        file_size_bytes=1 * MiB,
    )
    assert_failed(run, "File too large")
    assert "file_size" in run.result.limits_hit
    assert (tmp_path / "job" / "big").stat().st_size <= 1 * MiB


def test_cpu_time_limit_kills_a_spinning_job(tmp_path):
    run = run_job(
        tmp_path,
        """
        while True:
            pass
    """,
        cpu_time_s=1,
        wall_time_s=40,
    )
    assert run.result.reason == "killed", run.result
    assert_failed(run, "CPU-time limit of 1 s")
    assert "cpu_time" in run.result.limits_hit


# --------------------------------------------------------------------------- uid


def test_job_runs_as_its_own_unprivileged_uid_and_owns_its_dir(tmp_path):
    spec = make_spec(
        tmp_path,
        """
        import json, os, time
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        print(json.dumps({"uid": os.getresuid(), "gid": os.getresgid(),
                          "groups": os.getgroups(), "caps": status["CapEff"].strip(),
                          "bnd": status["CapBnd"].strip(), "nnp": status["NoNewPrivs"].strip()}))
        os.write(3, b"up\\n")
        time.sleep(0.5)
    """,
    )
    with Sandbox(spec) as sb:
        sb.start()
        assert sb.read_events(timeout=20) == [b"up"]
        st = os.stat(spec.job_dir)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (sb.uid, sb.uid, 0o700)
        res = sb.wait(timeout=60)
    assert res.ok, res
    info = json.loads(res.stdout_path.read_text())
    assert 60000 <= sb.uid < 61000
    assert info["uid"] == [sb.uid] * 3 and info["gid"] == [sb.uid] * 3
    assert info["groups"] in ([], [sb.uid])
    assert info["caps"] == "0000000000000000" and info["bnd"] == "0000000000000000"
    assert info["nnp"] == "1"
    # Afterwards the supervisor owns the dir again (the uid may go to another job).
    st = os.stat(spec.job_dir)
    assert (st.st_uid, st.st_mode & 0o777) == (os.geteuid(), 0o700)


def test_concurrent_jobs_get_different_uids(tmp_path):
    specs = [
        make_spec(tmp_path, "import os, time; os.write(3, b'x\\n'); time.sleep(1)", name=f"j{i}")
        for i in range(3)
    ]
    boxes = [Sandbox(s) for s in specs]
    for sb in boxes:
        sb.start()
    for sb in boxes:
        sb.read_events(timeout=20)
    uids = {sb.uid for sb in boxes}
    results = [sb.wait(timeout=60) for sb in boxes]
    assert len(uids) == 3
    assert all(r.ok for r in results), results


# --------------------------------------------------------------------------- bwrap


def test_namespaces_view_and_environment(tmp_path):
    host_ns = {
        n: os.readlink(f"/proc/self/ns/{n}")
        for n in ("net", "pid", "mnt", "uts", "ipc", "user", "cgroup")
    }
    run = run_job(
        tmp_path,
        """
        import json, os, socket
        ns = {n: os.readlink(f"/proc/self/ns/{n}") for n in
              ("net", "pid", "mnt", "uts", "ipc", "user", "cgroup")}
        ifaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]]
        print(json.dumps({"ns": ns, "hostname": socket.gethostname(), "pid": os.getpid(),
                          "ifaces": ifaces, "root": sorted(os.listdir("/")),
                          "env": dict(os.environ), "cwd": os.getcwd(),
                          "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}))
    """,
        env={"JOB_NAME": "demo"},
    )
    assert run.result.ok, run.result
    got = json.loads(run.stdout)
    for n, v in host_ns.items():
        assert got["ns"][n] != v, f"{n} namespace is shared with the host"
    assert got["hostname"] == "sandbox"
    assert got["ifaces"] == ["lo"]
    assert got["pid"] < 10 and max(got["procs"]) < 10  # a fresh PID namespace
    # The system dirs, the job's own, and the top-level parents of what is bound at its host
    # path (the interpreter, the venv, the checkout: /root, /work, /check, ... by machine).
    bound_at_host_path = {
        Path(os.path.realpath(p)).parts[1]
        for p in (*PythonRuntime.current().prefixes, PROJECT_ROOT)
    }
    assert set(got["root"]) <= {
        "bin",
        "dev",
        "etc",
        "job",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "sbin",
        "tmp",
        "usr",
        ".hub-sandbox",
        *bound_at_host_path,
    }
    assert got["cwd"] == "/job"
    assert got["env"]["JOB_NAME"] == "demo" and got["env"]["HOME"] == "/job"
    assert set(got["env"]) <= {
        "JOB_NAME",
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "TMPDIR",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "PWD",
    }


def test_system_and_runtime_are_read_only(tmp_path):
    run = run_job(
        tmp_path,
        f"""
        import errno
        for path in ("/usr/evil", "{PROJECT_ROOT}/workers/evil", "{sys.base_prefix}/evil"):
            try:
                open(path, "w")
            except OSError as e:
                assert e.errno == errno.EROFS, (path, e)
            else:
                raise SystemExit(f"wrote {{path}}")
        open("/job/fine", "w").write("ok")
        open("/tmp/fine", "w").write("ok")
    """,
    )
    assert run.result.ok, (run.result, run.stderr)


# --------------------------------------------------------------------------- seccomp


SECCOMP_PROBE = """
import ctypes, errno, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def err(f):
    try:
        r = f()
    except OSError as e:
        return e.errno
    return 0 if r is None or r >= 0 else ctypes.get_errno()
def sc(*a):
    return lambda: libc.syscall(*a)
print(json.dumps({
    "seccomp_mode": [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")],
    "inet": err(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
    "inet6": err(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()),
    "packet": err(lambda: socket.socket(17, socket.SOCK_RAW).close()),
    "netlink": err(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()),
    "unix": err(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()),
    "ptrace": err(sc(101, 0, 0, 0, 0)),            # PTRACE_TRACEME
    "unshare_user": err(sc(272, 0x10000000)),
    "unshare_net": err(sc(272, 0x40000000)),
    "clone3": err(sc(435, None, 0)),
    "io_uring_setup": err(sc(425, 8, None)),
    "bpf": err(sc(321, 0, None, 0)),
    "perf_event_open": err(sc(298, None, 0, -1, -1, 0)),
    "keyctl": err(sc(250, 0, 0, 0, 0)),
    "mount": err(sc(165, b"none", b"/tmp", b"tmpfs", 0, None)),
    "userfaultfd": err(sc(323, 0)),
}))
"""


def test_seccomp_denies_dangerous_calls_with_eperm(tmp_path):
    if os.uname().machine != "x86_64":
        pytest.skip("the probe uses x86_64 syscall numbers")
    run = run_job(tmp_path, SECCOMP_PROBE)
    assert run.result.ok, (run.result, run.stderr)
    got = json.loads(run.stdout)
    assert got.pop("seccomp_mode") == ["2"]
    assert got.pop("unix") == 0  # multiprocessing needs Unix sockets
    assert got.pop("clone3") == errno.ENOSYS  # glibc falls back to clone(), which is filtered
    # In a network namespace creating an inet socket works; EPERM is the filter speaking.
    assert got == {k: errno.EPERM for k in got}, got


# --------------------------------------------------------------------------- Landlock


def test_landlock_blocks_writes_the_mount_view_would_allow(tmp_path):
    # bwrap's /dev is a tmpfs owned by the job's uid: only Landlock stops a write there.
    run = run_job(
        tmp_path,
        """
        import os
        assert os.stat("/dev").st_uid == os.getuid()
        open("/dev/planted", "w")
    """,
    )
    assert_failed(run, "PermissionError", "/dev/planted")


def test_landlock_alone_denies_writes_and_tcp(tmp_path):
    """The shim's Landlock rules on a plain process (no namespaces, no seccomp, even root):
    writes outside the rw dirs and TCP connects fail."""
    from workers.sandbox import _shim

    if _shim.landlock_abi() < 4:
        pytest.skip("Landlock ABI >= 4 needed for TCP rules")
    rw = tmp_path / "rw"
    rw.mkdir()
    srv = socket.create_server(("127.0.0.1", 0))
    srv.setblocking(False)
    port = srv.getsockname()[1]
    code = f"""
import socket
open({str(rw / "ok")!r}, "w").write("ok")
for attempt in ("write", "tcp"):
    try:
        if attempt == "write":
            open({str(tmp_path / "outside")!r}, "w")
        else:
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
    except PermissionError as e:
        print(attempt, "denied", e.errno)
    else:
        print(attempt, "ALLOWED")
"""
    st_r, st_w = os.pipe()
    cfg = {
        "status_fd": st_w,
        "event_fd": None,
        "landlock": {
            "required": True,
            "ro": ["/"],
            "rw": [str(rw)],
            "dev": ["/dev/null"],
            "net": True,
            "scope": True,
        },
    }
    out = subprocess.run(
        [
            tool("setpriv"),
            "--no-new-privs",
            "--",
            sys.executable,
            "-I",
            "-S",
            _shim.__file__,
            json.dumps(cfg),
            sys.executable,
            "-c",
            code,
        ],
        pass_fds=[st_w],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": SYSTEM_PATH},
    )
    os.close(st_w)
    status = os.read(st_r, 4096)
    os.close(st_r)
    assert status == b"started\n", (status, out.stderr)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["write denied 13", "tcp denied 13"], out.stdout
    assert (rw / "ok").exists() and not (tmp_path / "outside").exists()
    with pytest.raises(BlockingIOError):
        srv.accept()  # the listener never saw a connection
    srv.close()


# --------------------------------------------------------------------------- timeout + kill


def test_timeout_kills_the_whole_tree_and_leaves_no_process(tmp_path):
    run = run_job(
        tmp_path,
        """
        import os, signal, subprocess, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen(["sleep", "1000"])              # a child
        if os.fork() == 0:                               # a daemon: double fork + setsid
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                while True:
                    time.sleep(1)
            os._exit(0)
        os.write(3, b"spawned\\n")
        time.sleep(1000)
    """,
        wall_time_s=4,
        kill_grace_s=0.5,
    )
    res = run.result
    assert res.reason == "timeout", res
    assert_failed(run, "exceeded the wall-clock limit of 4 s")
    assert run.events == [b"spawned"]
    assert res.wall_time < 15
    # Not one process of the job's uid is left on the host, not even a zombie.
    assert pids_of_uid(run.uid, live_only=False) == []


def test_cancel_from_another_thread(tmp_path):
    spec = make_spec(
        tmp_path,
        """
        import os, time
        os.write(3, b"up\\n")
        time.sleep(1000)
    """,
    )
    with Sandbox(spec) as sb:
        sb.start()
        assert sb.read_events(timeout=20) == [b"up"]
        t0 = time.monotonic()
        threading.Thread(target=sb.cancel).start()
        res = sb.wait(timeout=30)
    assert res.reason == "cancelled" and "cancelled" in res.message
    assert time.monotonic() - t0 < 10
    assert pids_of_uid(sb.uid, live_only=False) == []


def test_job_dir_outputs_are_readable_by_the_supervisor(tmp_path):
    run = run_job(
        tmp_path,
        """
        import os
        os.makedirs("/job/out/sub")
        with open("/job/out/sub/result.txt", "w") as f:
            f.write("42")
        os.chmod("/job/out/sub/result.txt", 0o600)
        os.symlink("/etc/passwd", "/job/out/link")
    """,
    )
    assert run.result.ok, run.result
    out = tmp_path / "job" / "out"
    assert (out / "sub" / "result.txt").read_text() == "42"
    assert (out / "sub" / "result.txt").stat().st_uid == os.geteuid()
    # The planted symlink was not followed by the ownership change.
    assert os.lstat(out / "link").st_uid == os.geteuid()
    assert os.stat("/etc/passwd").st_uid == 0
    assert Path(run.result.stderr_path).parent != tmp_path / "job"


def test_stale_cgroups_of_a_dead_supervisor_are_reaped():
    """A supervisor that died leaves a job cgroup with a process in it and no uid lock."""
    from workers.sandbox import SandboxConfig, reap_stale
    from workers.sandbox.cgroups import CgroupLimits, JobCgroup, detect_layout

    uid = 60999
    cfg = SandboxConfig()
    cg = JobCgroup(detect_layout(), cfg.cgroup_parent, f"job-{uid}-stale")
    cg.create(CgroupLimits(64 * MiB, 8, None))
    script = "; ".join(f"echo $$ > {p}" for p in cg.procs_files()) + (
        f"; exec {tool('setpriv')} --reuid={uid} --regid={uid} --clear-groups -- sleep 300"
    )
    proc = subprocess.Popen(["/bin/sh", "-c", script])
    try:
        deadline = time.monotonic() + 10
        while proc.pid not in cg.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.pid in cg.pids()
        assert f"job-{uid}-stale" in reap_stale(cfg)
        assert proc.wait(timeout=10) == -9
        assert all(not d.exists() for d in cg.dirs.values())
    finally:
        proc.kill()
        proc.wait()
        cg.kill_all()
        cg.remove()
