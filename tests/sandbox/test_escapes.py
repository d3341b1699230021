"""Escape attempts. Each one must fail, the job must end as failed with a reason a person can
read, and the forbidden effect must not have happened on the host."""

from __future__ import annotations

import importlib
import json
import os
import socket
import time
from pathlib import Path

import pytest

from tests.sandbox.conftest import MiB, assert_failed, make_spec, needs_sandbox, run_job
from workers.sandbox import PYTHON, Sandbox
from workers.sandbox.cgroups import pids_of_uid
from workers.sandbox.spec import PROJECT_ROOT

pytestmark = [pytest.mark.integration, needs_sandbox]

PG_SOCKET = "/var/run/postgresql/.s.PGSQL.5432"


def _listener(family: int, host: str) -> socket.socket:
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind((host, 0))
    except OSError as e:
        pytest.skip(f"cannot listen on {host}: {e}")
    s.listen(8)
    s.setblocking(False)
    return s


def _assert_no_connection(srv: socket.socket) -> None:
    time.sleep(0.1)
    with pytest.raises(BlockingIOError):
        srv.accept()
    srv.close()


# --------------------------------------------------------------------------- network


@pytest.mark.parametrize(
    "family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["ipv4", "ipv6"]
)
def test_tcp_to_a_host_port(tmp_path, family, host):
    srv = _listener(family, host)
    port = srv.getsockname()[1]
    fam = "AF_INET" if family == socket.AF_INET else "AF_INET6"
    run = run_job(
        tmp_path,
        f"""
        import socket
        s = socket.socket(socket.{fam}, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(({host!r}, {port}))
    """,
    )
    assert_failed(run, "PermissionError: [Errno 1] Operation not permitted")
    _assert_no_connection(srv)


def test_unix_socket_of_a_running_service(tmp_path):
    # PostgreSQL's socket, when this machine runs PostgreSQL; and one of our own, always.
    own = tmp_path / "svc" / "service.sock"
    own.parent.mkdir()
    os.chmod(own.parent, 0o755)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(own))
    os.chmod(own, 0o777)
    srv.listen(8)
    srv.setblocking(False)
    targets = [str(own)]
    if os.path.exists(PG_SOCKET):
        with socket.socket(socket.AF_UNIX) as probe:  # the service is really there
            probe.connect(PG_SOCKET)
        targets.append(PG_SOCKET)
    run = run_job(
        tmp_path,
        f"""
        import socket
        for path in {targets!r}:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
            except FileNotFoundError as e:
                print("not visible:", path)
            else:
                print("CONNECTED:", path)
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect({targets[-1]!r})
    """,
    )
    assert_failed(run, "FileNotFoundError")
    assert "CONNECTED" not in run.stdout
    _assert_no_connection(srv)


def test_abstract_unix_socket_on_the_host(tmp_path):
    name = f"\0moe-hub-test-{os.getpid()}-{time.monotonic_ns()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(name)
    srv.listen(8)
    srv.setblocking(False)
    run = run_job(
        tmp_path,
        f"""
        import socket
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect({name!r})
    """,
    )
    assert_failed(run, "ConnectionRefusedError")
    _assert_no_connection(srv)


# --------------------------------------------------------------------------- reading


def test_read_the_hub_db_file(tmp_path, monkeypatch):
    # The hub's data dir is hidden even when something above it is bound on purpose.
    srv = tmp_path / "srv"
    data = srv / "hub-data"
    data.mkdir(parents=True)
    (data / "hub.sqlite3").write_bytes(b"SQLite format 3\0 secret rows")
    (srv / "weights.txt").write_text("fine to read")
    for p in (srv, data):
        os.chmod(p, 0o755)
    os.chmod(data / "hub.sqlite3", 0o644)
    os.chmod(srv / "weights.txt", 0o644)
    monkeypatch.setenv("HUB_DATA_DIR", str(data))  # the supervisor's setting
    run = run_job(
        tmp_path,
        """
        import os
        print(open("/srv/weights.txt").read(), os.listdir("/srv/hub-data"))
        open("/srv/hub-data/hub.sqlite3", "rb").read()
    """,
        ro_binds={srv: "/srv"},
    )
    assert_failed(run, "FileNotFoundError", "hub.sqlite3")
    assert run.stdout.strip() == "fine to read []"


def test_read_the_repository_secrets_when_the_whole_repo_is_bound(tmp_path):
    hidden = [p for p in (PROJECT_ROOT / ".hub-data", PROJECT_ROOT / ".git") if p.exists()]
    if not hidden:
        pytest.skip("no .hub-data or .git in this checkout")
    run = run_job(
        tmp_path,
        f"""
        import os
        for p in {[str(p) for p in hidden]!r}:
            print(p, os.listdir(p))
        os.listdir({str(hidden[0])!r} + "/..")  # the repo itself is there
        open({str(hidden[0] / "HEAD")!r} if {hidden[0].name!r} == ".git"
             else {str(hidden[0] / "hub.sqlite3")!r}, "rb")
    """,
        project_paths=[PROJECT_ROOT],
    )
    assert_failed(run, "FileNotFoundError")
    for p in hidden:
        assert f"{p} []" in run.stdout


def test_read_the_hub_settings_and_secrets(tmp_path):
    run = run_job(
        tmp_path,
        f"""
        import os
        for p in ({str(PROJECT_ROOT / "hub" / "settings.py")!r}, "/root/.config/moe-hub",
                  "/etc/shadow", "/run", "/var", "/home"):
            print(p, os.path.exists(p))
        try:
            import hub.settings
        except ImportError as e:
            print("import:", type(e).__name__)
        open({str(PROJECT_ROOT / "hub" / "settings.py")!r}).read()
    """,
    )
    assert_failed(run, "FileNotFoundError", "settings.py")
    assert "True" not in run.stdout, run.stdout
    assert "import: ModuleNotFoundError" in run.stdout


def test_environment_holds_no_hub_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_SECRET_KEY", "s3cr3t-do-not-leak")
    monkeypatch.setenv("HUB_DATABASE_URL", "postgres://hub:pw@127.0.0.1/hub")
    run = run_job(
        tmp_path,
        """
        import json, os
        found = {k: v for k, v in os.environ.items() if k.startswith("HUB_")}
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            try:
                env = open(f"/proc/{pid}/environ", "rb").read()
            except OSError:
                continue
            if b"HUB_" in env or b"s3cr3t" in env:
                found[pid] = "in environ"
        print(json.dumps(found))
        raise SystemExit(1 if found else 0)
    """,
    )
    assert run.result.ok, (run.result, run.stdout)
    assert json.loads(run.stdout) == {}
    with pytest.raises(ValueError, match="HUB_"):
        make_spec(tmp_path, "pass", env={"HUB_SECRET_KEY": "x"}).validate()


def test_read_another_jobs_dir(tmp_path):
    # Job A keeps running with a secret in its dir; job B tries to read it, first by its host
    # path (not visible), then through a bind (a different uid: the kernel says no).
    a = Sandbox(
        make_spec(
            tmp_path,
            """
        import os, time
        open("/job/secret.txt", "w").write("job A's data")
        os.write(3, b"ready\\n")
        time.sleep(60)
    """,
            name="job-a",
        )
    )
    with a:
        a.start()
        assert a.read_events(timeout=20) == [b"ready"]
        a_dir = tmp_path / "job-a"
        run = run_job(
            tmp_path,
            f"""
            import os
            print("host path visible:", os.path.exists({str(a_dir)!r}))
            open("/peek/secret.txt").read()
        """,
            name="job-b",
            ro_binds={a_dir: "/peek"},
        )
        a.cancel()
    assert_failed(run, "PermissionError", "/peek")
    assert "host path visible: False" in run.stdout
    assert run.uid != a.uid


def test_read_a_root_only_file(tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    os.chmod(d, 0o755)
    (d / "root-only.key").write_text("root secret")
    os.chmod(d / "root-only.key", 0o600)
    run = run_job(tmp_path, "open('/inputs/root-only.key').read()", ro_binds={d: "/inputs"})
    assert_failed(run, "PermissionError", "root-only.key")


# --------------------------------------------------------------------------- writing


def test_write_outside_the_job_dir(tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    os.chmod(d, 0o755)
    marker = f"/tmp/moe-hub-escape-{os.getpid()}-{time.monotonic_ns()}"
    run = run_job(
        tmp_path,
        f"""
        import errno
        for path in ("/evil", "/job/../evil", "/dev/evil", "/usr/evil", {str(PROJECT_ROOT)!r}
                     + "/workers/evil"):
            try:
                open(path, "w")
            except OSError as e:
                print(path, errno.errorcode[e.errno])
            else:
                print(path, "WRITTEN")
        open({marker!r}, "w").write("private /tmp")   # allowed: the sandbox's own /tmp
        open("/inputs/evil", "w")
    """,
        ro_binds={d: "/inputs"},
    )
    assert_failed(run, "Read-only file system", "/inputs/evil")
    assert "WRITTEN" not in run.stdout
    assert not (d / "evil").exists()
    assert not Path(marker).exists()
    assert not (PROJECT_ROOT / "workers" / "evil").exists()


# --------------------------------------------------------------------------- resources


def test_fork_bomb(tmp_path):
    run = run_job(
        tmp_path,
        """
        import os
        while True:
            os.fork()
    """,
        pids=32,
        wall_time_s=20,
    )
    assert_failed(run, "process limit of 32")
    assert "pids" in run.result.limits_hit
    assert pids_of_uid(run.uid, live_only=False) == []


def test_memory_bomb(tmp_path):
    run = run_job(
        tmp_path,
        """
        chunks = []
        while True:
            chunks.append(bytearray(8 << 20))
    """,
        memory_bytes=128 * MiB,
    )
    assert run.result.reason == "oom", run.result
    assert_failed(run, "ran out of memory", "memory limit of 128 MiB")
    assert run.result.max_rss is not None and run.result.max_rss <= 130 * MiB


# --------------------------------------------------------------------------- processes


def test_ptrace_the_supervisor(tmp_path):
    me = os.getpid()
    run = run_job(
        tmp_path,
        f"""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.ptrace(16, {me}, 0, 0) != 0:                    # PTRACE_ATTACH
            e = ctypes.get_errno()
            raise PermissionError(e, "ptrace(PTRACE_ATTACH, supervisor): " + os.strerror(e))
    """,
    )
    assert_failed(run, "ptrace(PTRACE_ATTACH, supervisor): Operation not permitted")
    status = Path("/proc/self/status").read_text()
    assert "TracerPid:\t0" in status


def test_nested_user_namespace(tmp_path):
    run = run_job(
        tmp_path,
        """
        import ctypes, os, subprocess
        r = subprocess.run(["unshare", "--user", "true"], capture_output=True, text=True)
        print("unshare(1):", r.returncode)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(0x10000000) != 0:                      # CLONE_NEWUSER
            e = ctypes.get_errno()
            raise PermissionError(e, "unshare(CLONE_NEWUSER): " + os.strerror(e))
    """,
    )
    assert_failed(run, "unshare(CLONE_NEWUSER): Operation not permitted")
    assert "unshare(1): 0" not in run.stdout


def test_nested_user_namespace_without_seccomp_still_fails(tmp_path, monkeypatch):
    """bwrap's --disable-userns is a second lock: with seccomp off it still holds."""
    probe_mod = importlib.import_module("workers.sandbox.probe")
    real = probe_mod.probe()
    monkeypatch.setattr(
        probe_mod, "probe", lambda **kw: {**real, "degraded": ["seccomp"], "ok": False}
    )
    run = run_job(
        tmp_path,
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(0x10000000) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "unshare(CLONE_NEWUSER): " + os.strerror(e))
    """,
        allow_degraded=True,
    )
    assert run.result.degraded == ("seccomp",)
    assert_failed(run, "unshare(CLONE_NEWUSER): No space left on device")


def test_the_job_cannot_see_or_signal_host_processes(tmp_path):
    me = os.getpid()
    run = run_job(
        tmp_path,
        f"""
        import os, signal
        print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        os.kill({me}, signal.SIGTERM)
    """,
    )
    assert_failed(run, "ProcessLookupError")


def test_the_sandbox_python_is_the_venv(tmp_path):
    run = run_job(
        tmp_path,
        """
        import sys, workers.moe
        print(sys.prefix, sys.base_prefix, workers.moe.__file__)
    """,
    )
    assert run.result.ok, run.stderr
    assert run.stdout.split()[0] == sys_prefix()
    assert PYTHON.startswith(sys_prefix())


def sys_prefix() -> str:
    import sys

    return sys.prefix


def test_binding_a_tree_with_a_unix_socket_is_refused(tmp_path):
    # A socket inside a read-only bind would still accept connections: refuse up front.
    d = tmp_path / "inputs"
    (d / "sub").mkdir(parents=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(d / "sub" / "redis.sock"))
    srv.listen(1)
    with pytest.raises(ValueError, match="Unix socket"):
        Sandbox(make_spec(tmp_path, "pass", ro_binds={d: "/inputs"})).start()
    srv.close()
