"""``Sandbox``: run one job inside every isolation layer, stream its events, report its end.

The launch chain (each step execs the next, so it is one process until bwrap forks)::

    [unshare --mount]      root; only when a bound path is unreachable to the job's uid
    /bin/sh -c SCRIPT      root: joins the job's cgroups (before anything the job controls
                           runs), then, in that private mount namespace, re-mounts the
                           unreachable sources under a 0711 staging tmpfs
    prlimit ...            rlimits: CPU time, file size, open files, processes, no core dumps
    setpriv ...            drops to the job's own uid/gid for good: no groups, no capabilities
                           (bounding set emptied), no_new_privs
    bwrap --args FD        unprivileged: new user, mount, PID, network, IPC, UTS and cgroup
                           namespaces; read-only system and runtime; /job read-write (with a
                           disk quota: its own filesystem, see jobfs.py); private /tmp and
                           /dev/shm, size-limited to the quota; no /run, /var, /home, /sys,
                           hub data; cleared environment;
                           nested user namespaces disabled; seccomp filter loaded before exec
    python -I -S shim.py   the job's uid: closes stray descriptors, puts the event pipe on its
                           number, applies Landlock, execs the job
    the job

Why bwrap does not run as root: root's bwrap with ``--unshare-user --uid N`` maps the sandbox
uid to host root, so every bound file is still accessed as root. Here the job's process is
the real unprivileged uid from ``setpriv`` on, before bwrap even starts; bwrap only gets the
capabilities of its own new user namespace. The price is that bwrap cannot read paths the
job's uid cannot traverse (a venv under /root, pytest's 0700 temp dirs): those few sources
are bind-mounted, as root, into a private mount namespace at a reachable spot first.

The supervisor side is one thread per job (the "watchdog") that spawns the chain, so the
parent-death signal bwrap sets is tied to a thread that lives exactly as long as the job,
and that polls the process (pidfd), the event pipe, the status pipe and a wake-up pipe. It
enforces the wall-clock limit (SIGTERM to the tree, a grace period, then SIGKILL to the whole
cgroup), handles ``cancel()``, and after the end kills whatever is left (cgroup, then every
process of the job's uid), removes the cgroups, gives the job dir back to the supervisor and
releases the uid.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import select
import shlex
import signal
import stat
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from workers.sandbox import seccomp
from workers.sandbox.cgroups import (
    CgroupError,
    CgroupLimits,
    JobCgroup,
    detect_layout,
    kill_uid,
    pids_of_uid,
    proc_uids,
    signal_pid_if,
)
from workers.sandbox.gpu import control_nodes, gpu_node
from workers.sandbox.probe import SYSTEM_PATH, require, system_binds, tool
from workers.sandbox.spec import (
    JOB_MOUNT,
    PythonRuntime,
    SandboxConfig,
    SandboxResult,
    SandboxSpec,
    default_hidden_paths,
    fmt_bytes,
)
from workers.sandbox.uids import UidLease, allocate_uid, uid_is_locked

SHIM_PATH = "/.hub-sandbox/shim.py"
_SHIM_SOURCE = Path(__file__).with_name("_shim.py")
STDERR_TAIL_BYTES = 4096
#: Device nodes every job may use (bwrap's --dev provides them).
BASIC_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
F_SETPIPE_SZ = 1031
#: Read-only /sys parts a GPU job gets (nothing of /sys otherwise).
GPU_SYS_PATHS = ("/sys/bus/pci", "/sys/devices", "/sys/module/nvidia")


@functools.cache
def _shim_source() -> str:
    return _SHIM_SOURCE.read_text()


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _refuse_sockets(root: str, limit: int = 100_000) -> None:
    """Refuse an input tree holding a Unix socket: a socket in a read-only mount still
    accepts connections, and Landlock (ABI <= 7) does not cover connect()."""
    seen = 0
    if stat.S_ISSOCK(os.lstat(root).st_mode):
        raise ValueError(f"refusing to bind {root}: it is a Unix socket")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            seen += 1
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    raise ValueError(
                        f"refusing to bind {root}: it contains a Unix socket "
                        f"({path}) that the job could connect to"
                    )
        if seen > limit:
            raise ValueError(f"refusing to bind {root}: more than {limit} entries to check")


def _needs_staging(path: str) -> bool:
    """True when an unprivileged uid cannot reach ``path`` (some ancestor lacks o+x)."""
    parent = os.path.dirname(path)
    while True:
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return True
        except OSError:
            return True
        if parent == "/":
            return False
        parent = os.path.dirname(parent)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass
class _Bind:
    src: str  # host path (resolved)
    dst: str  # sandbox path
    mode: str  # "ro", "rw", "dev"
    staged: str | None = None  # where it is re-mounted for the unprivileged bwrap


@dataclass
class _Plan:
    """Everything decided before spawning: pure data plus descriptors to pass."""

    binds: list[_Bind]
    hides: list[tuple[str, bool]]  # sandbox path, is_dir
    env: dict[str, str]
    landlock: dict
    fds: list[int] = field(default_factory=list)


class Sandbox:
    """One job in a sandbox. ``start()`` once, then ``events()`` / ``read_events()``, then
    ``wait()``; ``cancel()`` from any thread. Also a context manager (cancels on exit)."""

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        config: SandboxConfig | None = None,
        allow_degraded: bool = False,
    ) -> None:
        spec.validate()
        self.spec = spec
        self.config = config or SandboxConfig()
        self.allow_degraded = allow_degraded
        self.job_id = spec.job_id or uuid.uuid4().hex[:12]
        self.uid: int | None = None
        self.pid: int | None = None
        self.cgroup: JobCgroup | None = None
        self.log_dir: Path | None = None
        self.degraded: tuple[str, ...] = ()
        self._lease: UidLease | None = None
        self._state = "new"
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._events_closed = False
        self._paused = False
        self._dropped = 0
        self._cancel = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._done = threading.Event()
        self._result: SandboxResult | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Set everything up and launch the job; returns once it is spawned (tens of ms).

        Raises SandboxUnavailable when a mandatory layer is missing, and ordinary exceptions
        (OSError, CgroupError, ValueError) when the host could not prepare the job; in both
        cases nothing is left behind.
        """
        with self._lock:
            if self._state != "new":
                raise RuntimeError("a Sandbox runs once")
            self._state = "starting"
        try:
            report = require(allow_degraded=self.allow_degraded)
        except BaseException as e:
            self._start_error = e
            self._state = "done"
            self._close_wake()
            raise
        try:
            self._preflight()
        except BaseException as e:
            self._start_error = e
            self._state = "done"
            self._close_wake()
            raise
        _become_subreaper()
        self.degraded = tuple(report["degraded"])
        self._thread = threading.Thread(
            target=self._watchdog, args=(report,), daemon=True, name=f"sandbox-{self.job_id}"
        )
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    def read_events(self, timeout: float | None = 0.0) -> list[bytes]:
        """Event lines available now, waiting up to ``timeout`` seconds for the first one
        (None: until one arrives or the stream ends). Lines come without their newline; a
        line longer than ``config.max_event_line`` is dropped (never truncated into something
        that might parse) and counted in ``SandboxResult.dropped_event_lines``."""
        with self._cond:
            if not self._queue and not self._events_closed:
                self._cond.wait_for(lambda: self._queue or self._events_closed, timeout)
            out = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            if self._paused:
                self._wake()
        return out

    @property
    def events_closed(self) -> bool:
        """True once the job's end of the event pipe is closed and every line was read."""
        with self._cond:
            return self._events_closed and not self._queue

    def events(self, poll_s: float = 0.5) -> Iterator[bytes]:
        """Every event line until the pipe closes (the job ended, or closed it)."""
        while True:
            lines = self.read_events(poll_s)
            yield from lines
            if not lines and self.events_closed:
                return

    def wait(self, timeout: float | None = None) -> SandboxResult:
        """The result, once the job and its cleanup are over. TimeoutError if ``timeout``."""
        if self._state == "new":
            raise RuntimeError("start() the sandbox first")
        if self._start_error is not None:
            raise RuntimeError(f"the sandbox did not start: {self._start_error}")
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.job_id} still running after {timeout} s")
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        """Kill the whole tree now (from any thread); the result's reason is "cancelled"."""
        self._cancel.set()
        self._wake()

    @property
    def running(self) -> bool:
        return self._state == "running"

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._state in ("starting", "running"):
            self.cancel()
            self._done.wait()
        self._close_wake()

    def _close_wake(self) -> None:
        # Under the lock: a late cancel() must never write into a reused descriptor number.
        with self._lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1

    def _wake(self) -> None:
        with self._lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"x")

    # ------------------------------------------------------------------ preparation

    def _preflight(self) -> None:
        """Checks that refuse a job before anything is prepared for it."""
        for idx in self.spec.gpus:
            if gpu_node(self.config.dev_root, int(idx)) is None:
                raise ValueError(f"GPU {idx} has no device node under {self.config.dev_root}")
        for host in self.spec.ro_binds:
            _refuse_sockets(os.path.realpath(host))
        if self.spec.disk_bytes is not None:
            d = self.spec.job_dir
            if d.is_symlink() or not os.path.ismount(d):
                raise ValueError(
                    f"a disk quota needs job_dir {d} on its own filesystem "
                    "(create it with workers.sandbox.jobfs.JobFolder)"
                )

    def _prepare_job_dir(self, uid: int, gid: int) -> None:
        d = self.spec.job_dir
        d.mkdir(parents=True, exist_ok=True)
        st = os.lstat(d)
        if not stat.S_ISDIR(st.st_mode):
            raise ValueError(f"job_dir {d} is not a directory (symlinks are refused)")
        _chown_tree(d, uid, gid)
        os.chmod(d, 0o700)

    def _plan(self, report: dict, uid: int) -> _Plan:
        spec, cfg = self.spec, self.config
        runtime = spec.python or PythonRuntime.current()
        binds: list[_Bind] = []
        for p in runtime.prefixes:
            if not any(_within(p, s) for s in ("/usr", "/bin", "/lib")):
                binds.append(_Bind(p, p, "ro"))
        projects = spec.project_paths
        if projects is None:
            # What the workload imports: workers/ and the hub's Django-free shared package
            # (the MoE health rules, the watermark); never the rest of hub/ or the settings.
            root = cfg.project_root
            projects = [root / "workers", root / "hub" / "__init__.py", root / "hub" / "shared"]
        for p in projects:
            rp = os.path.realpath(p)
            binds.append(_Bind(rp, rp, "ro"))
        # The job dir before the inputs, so that an input may be mounted inside it
        # (e.g. base weights at /job/base).
        binds.append(_Bind(os.path.realpath(spec.job_dir), JOB_MOUNT, "rw"))
        for host, inside in spec.ro_binds.items():
            binds.append(_Bind(os.path.realpath(host), os.path.normpath(inside), "ro"))
        dev_paths = list(BASIC_DEVICES)
        if spec.gpus:
            for idx in spec.gpus:
                node = gpu_node(cfg.dev_root, int(idx))
                if node is None:
                    raise ValueError(f"GPU {idx} has no device node under {cfg.dev_root}")
                binds.append(_Bind(str(node), f"/dev/nvidia{int(idx)}", "dev"))
                dev_paths.append(f"/dev/nvidia{int(idx)}")
            for node in control_nodes(cfg.dev_root):
                binds.append(_Bind(str(node), f"/dev/{node.name}", "dev"))
                dev_paths.append(f"/dev/{node.name}")
            # The CUDA driver and NVML read PCI topology and the driver's module info.
            for p in GPU_SYS_PATHS:
                if os.path.isdir(p):
                    binds.append(_Bind(p, p, "ro"))
        stage_root = str(cfg.state_dir / "stage")
        if os.geteuid() == 0:
            for i, b in enumerate(b for b in binds if _needs_staging(b.src)):
                b.staged = f"{stage_root}/{i}"

        # Hidden paths: wherever one falls inside a bound source, cover its sandbox image.
        hidden = [os.path.realpath(h) for h in spec.hide]
        if spec.hide_defaults:
            hidden += [os.path.realpath(h) for h in default_hidden_paths(cfg.project_root)]
        hides: list[tuple[str, bool]] = []
        for h in dict.fromkeys(hidden):
            for b in binds:
                if b.mode == "dev" or not _within(h, b.src) or not os.path.lexists(h):
                    continue
                if b.mode == "rw":
                    continue  # the job's own dir: it could recreate anything hidden there
                target = os.path.normpath(b.dst + "/" + os.path.relpath(h, b.src))
                hides.append((target, os.path.isdir(h) and not os.path.islink(h)))

        env = {
            "PATH": f"{runtime.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": JOB_MOUNT,
            "USER": "hubjob",
            "LOGNAME": "hubjob",
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": str(spec.thread_count()),
            "MKL_NUM_THREADS": str(spec.thread_count()),
        }
        env.update({k: str(v) for k, v in spec.env.items()})

        ll_on = "landlock" not in self.degraded
        landlock = {}
        if ll_on:
            landlock = {
                "required": True,
                "ro": ["/"],
                "rw": [JOB_MOUNT, "/tmp", "/dev/shm"],
                "dev": dev_paths,
                "net": bool(report["landlock"]["net"]),
                "scope": bool(report["landlock"]["scope"]),
            }
        return _Plan(binds=binds, hides=hides, env=env, landlock=landlock)

    def _bwrap_args(
        self, plan: _Plan, uid: int, runtime: PythonRuntime, status_w: int, event_w: int | None
    ) -> tuple[list[str], list[str]]:
        """(options for the --args memfd, the command)."""
        spec = self.spec
        a = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--hostname",
            "sandbox",
        ]
        a += system_binds()
        for f in ("/etc/ld.so.cache", "/etc/localtime"):
            if os.path.exists(f):
                a += ["--ro-bind", f, f]
        files = {
            "/etc/passwd": f"root:x:0:0::/:/usr/sbin/nologin\n"
            f"hubjob:x:{uid}:{uid}:hub job:{JOB_MOUNT}:/usr/sbin/nologin\n"
            f"nobody:x:65534:65534::/:/usr/sbin/nologin\n",
            "/etc/group": f"root:x:0:\nhubjob:x:{uid}:\nnogroup:x:65534:\n",
            "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost sandbox\n",
            "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
            SHIM_PATH: _shim_source(),
        }
        for dest, text in files.items():
            fd = _memfd("hub-sandbox-file", text.encode())
            plan.fds.append(fd)
            a += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
        a += ["--proc", "/proc", "--dev", "/dev"]
        # /tmp and /dev/shm are tmpfs: without a size a job could fill half the host's RAM
        # there (its cgroup is charged for the pages, but the size gives a clear ENOSPC).
        tmp_size = spec.tmp_size_bytes or spec.disk_bytes
        if tmp_size:
            a += ["--size", str(tmp_size)]
        a += ["--tmpfs", "/tmp"]
        if spec.disk_bytes:
            a += ["--size", str(spec.disk_bytes), "--tmpfs", "/dev/shm"]
        for b in plan.binds:
            src = b.staged or b.src
            flag = {"ro": "--ro-bind", "rw": "--bind", "dev": "--dev-bind"}[b.mode]
            a += [flag, src, b.dst]
        for target, is_dir in plan.hides:
            if is_dir:
                a += ["--perms", "0555", "--tmpfs", target, "--remount-ro", target]
            else:
                a += ["--ro-bind", "/dev/null", target]
        for k, v in plan.env.items():
            a += ["--setenv", k, v]
        a += ["--chdir", JOB_MOUNT]
        if "seccomp" not in self.degraded:
            fd = _memfd("hub-seccomp", seccomp.build_filter())
            plan.fds.append(fd)
            a += ["--seccomp", str(fd)]
        shim_cfg = {
            "status_fd": status_w,
            "event_fd": [event_w, spec.event_fd] if event_w is not None else None,
            "landlock": plan.landlock,
        }
        # bwrap only takes options from --args; the command stays on its command line.
        command = [runtime.executable, "-I", "-S", SHIM_PATH, json.dumps(shim_cfg), *spec.argv]
        return a, command

    def _launcher(
        self, plan: _Plan, uid: int, gid: int, args_fd: int, command: list[str]
    ) -> list[str]:
        """The root part of the chain as an argv: [unshare] sh -c SCRIPT."""
        spec = self.spec
        q = shlex.quote
        lines = ["set -e"]
        if self.cgroup is not None:
            lines += [f"echo $$ > {q(str(p))}" for p in self.cgroup.procs_files()]
        staged = [b for b in plan.binds if b.staged]
        stage_root = str(self.config.state_dir / "stage")
        if staged:
            lines.append(
                f"mount -n -t tmpfs -o mode=0711,size=64k,nosuid,nodev hub-stage {q(stage_root)}"
            )
            for b in staged:
                assert b.staged is not None
                if os.path.isdir(b.src):
                    lines.append(f"mkdir -m 0711 {q(b.staged)}")
                else:
                    lines.append(f": > {q(b.staged)}")
                lines.append(f"mount -n --rbind {q(b.src)} {q(b.staged)}")
        limits = []
        if spec.cpu_time_s:
            limits.append(f"--cpu={spec.cpu_time_s}:{spec.cpu_time_s + 5}")
        if spec.file_size_bytes:
            limits.append(f"--fsize={spec.file_size_bytes}")
        if spec.pids:
            # A little above the cgroup's pids.max, so that the cgroup (which counts the hits
            # it refused) is the limit a fork bomb meets; RLIMIT_NPROC is the backstop when
            # cgroups are unavailable. It binds because the job's uid is not root.
            limits.append(f"--nproc={spec.pids + 16}")
        limits += [f"--nofile={spec.open_files}", "--core=0"]
        chain = [
            tool("prlimit"),
            *limits,
            "--",
            tool("setpriv"),
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            tool("bwrap"),
            "--args",
            str(args_fd),
            "--",
            *command,
        ]
        lines.append("exec " + " ".join(q(str(x)) for x in chain))
        argv = ["/bin/sh", "-c", "\n".join(lines)]
        if staged:
            argv = [tool("unshare"), "--mount", "--propagation", "private", "--", *argv]
        return argv

    # ------------------------------------------------------------------ the watchdog thread

    def _watchdog(self, report: dict) -> None:
        """The job's thread: spawn, supervise, clean up, publish the result. Never raises:
        whatever happens, ``wait()`` gets a result and no process of the job survives."""
        t0 = time.monotonic()
        launched = None
        try:
            launched = self._launch(report)
        except BaseException as e:
            self._start_error = e
        if launched is None:
            with contextlib.suppress(Exception):
                self._cleanup_host()
            self._state = "done"
            self._publish(None)
            self._started.set()
            return
        proc, pidfd, ev_r, st_r, log_files, stdout_path, stderr_path = launched
        self._state = "running"
        self._started.set()
        outcome: dict = {}
        try:
            outcome = self._supervise(proc, pidfd, ev_r, st_r, t0)
            result = self._finish(outcome, t0, stdout_path, stderr_path)
        except Exception as e:  # a bug here must not leave a job running or wait() hanging
            with contextlib.suppress(Exception):
                self._kill_tree()
            problems = []
            with contextlib.suppress(Exception):
                problems = self._cleanup_host()
            result = SandboxResult(
                reason="error",
                message=f"the sandbox supervisor failed: {e!r}"
                + (f"; cleanup problems: {'; '.join(problems)}" if problems else ""),
                returncode=None,
                signal=None,
                wall_time=time.monotonic() - t0,
                cpu_time=0.0,
                max_rss=None,
                stderr_tail=_tail(stderr_path),
                stdout_path=stdout_path,
                stderr_path=stderr_path,
                uid=self.uid,
                degraded=self.degraded,
            )
        finally:
            for fd in [pidfd, ev_r, st_r, *log_files]:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        self._state = "done"
        self._publish(result)

    def _publish(self, result: SandboxResult | None) -> None:
        self._result = result
        with self._cond:
            self._events_closed = True
            self._cond.notify_all()
        self._close_wake()
        self._done.set()

    def _launch(self, report: dict) -> tuple:
        """Prepare the host side and spawn the chain. On failure, closes what it opened and
        raises (the caller cleans cgroup, job dir and uid)."""
        spec, cfg = self.spec, self.config
        opened: list[int] = []  # closed on failure
        passed: list[int] = []  # closed in the parent once the child holds them
        try:
            if os.geteuid() == 0:
                cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
                os.chmod(cfg.state_dir, 0o711)
                (cfg.state_dir / "stage").mkdir(exist_ok=True, mode=0o711)
            self._lease = allocate_uid(cfg.state_dir, self.job_id, cfg.uid_range)
            uid, gid = self._lease.uid, self._lease.gid
            self.uid = uid
            self._prepare_job_dir(uid, gid)
            self.log_dir = spec.log_dir or spec.job_dir.with_name(spec.job_dir.name + ".logs")
            self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.log_dir, 0o700)
            stdout_path, stderr_path = self.log_dir / "stdout.log", self.log_dir / "stderr.log"
            log_files = []
            for p in (stdout_path, stderr_path):
                fd = os.open(
                    p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
                )
                opened.append(fd)
                log_files.append(fd)
            if "cgroup" not in self.degraded:
                name = f"job-{uid}-{uuid.uuid4().hex[:8]}"
                self.cgroup = JobCgroup(detect_layout(), cfg.cgroup_parent, name)
                self.cgroup.create(CgroupLimits(spec.memory_bytes, spec.pids, spec.cpus))
            runtime = spec.python or PythonRuntime.current()
            plan = self._plan(report, uid)
            st_r, status_w = os.pipe2(os.O_CLOEXEC)
            opened.append(st_r)
            passed.append(status_w)
            ev_r, event_w = -1, None
            if spec.event_fd is not None:
                ev_r, event_w = os.pipe2(os.O_CLOEXEC)
                opened.append(ev_r)
                passed.append(event_w)
                with contextlib.suppress(OSError):  # a roomier pipe: fewer stalls of the job
                    fcntl.fcntl(event_w, F_SETPIPE_SZ, 1 << 20)
                os.set_blocking(ev_r, False)
            os.set_blocking(st_r, False)
            # bwrap reads its options from a memfd: paths and environment values do not show
            # in the host's process list.
            args_fd = os.memfd_create("hub-bwrap-args", os.MFD_CLOEXEC)
            passed.append(args_fd)
            try:
                bw_args, command = self._bwrap_args(plan, uid, runtime, status_w, event_w)
            finally:
                passed += plan.fds
            launcher = self._launcher(plan, uid, gid, args_fd, command)
            os.write(args_fd, b"".join(x.encode() + b"\0" for x in bw_args))
            os.lseek(args_fd, 0, os.SEEK_SET)
            proc = subprocess.Popen(
                launcher,
                stdin=subprocess.DEVNULL,
                stdout=log_files[0],
                stderr=log_files[1],
                pass_fds=passed,
                env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
                cwd="/",
                start_new_session=True,
            )
            self.pid = proc.pid
            try:
                pidfd = os.pidfd_open(proc.pid)
            except OSError:
                proc.kill()
                proc.wait()
                raise
        except BaseException:
            for fd in opened:
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        finally:
            for fd in passed:  # the child has its copies (or there is no child)
                with contextlib.suppress(OSError):
                    os.close(fd)
        return proc, pidfd, ev_r, st_r, log_files, stdout_path, stderr_path

    def _supervise(
        self, proc: subprocess.Popen, pidfd: int, ev_r: int, st_r: int, t0: float
    ) -> dict:
        spec = self.spec
        out: dict = {
            "timed_out": False,
            "cancelled": False,
            "escalated": False,
            "status": [],
            "started_at": None,
        }
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        poller.register(st_r, select.POLLIN)
        ev_open = ev_r >= 0
        if ev_open:
            poller.register(ev_r, select.POLLIN)
        deadline = t0 + spec.wall_time_s if spec.wall_time_s else None
        kill_at: float | None = None
        buf = bytearray()
        discarding = False
        st_buf = bytearray()
        exited = False
        while not exited:
            now = time.monotonic()
            waits = [x - now for x in (deadline, kill_at) if x is not None]
            timeout_ms = max(0, int(min(waits) * 1000) + 1) if waits else None
            for fd, _ev in poller.poll(timeout_ms):
                if fd == pidfd:
                    exited = True
                elif fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                elif fd == st_r:
                    if _read_status(st_r, st_buf, out, t0) is None:
                        poller.unregister(st_r)
                elif fd == ev_r and ev_open:
                    eof, discarding = self._read_event_chunk(ev_r, buf, discarding)
                    if eof:
                        ev_open = False
                        poller.unregister(ev_r)
                        self._flush_partial(buf, discarding)
                        with self._cond:
                            self._events_closed = True
                            self._cond.notify_all()
            # Backpressure: stop reading while the consumer is far behind (the job blocks on
            # a full pipe instead of the supervisor's memory growing).
            if ev_open:
                with self._cond:
                    full = self._queued_bytes >= self.config.max_queued_event_bytes
                    if full and not self._paused:
                        self._paused = True
                        poller.unregister(ev_r)
                    elif not full and self._paused:
                        self._paused = False
                        poller.register(ev_r, select.POLLIN)
            now = time.monotonic()
            if self._cancel.is_set() and not out["cancelled"] and not exited:
                out["cancelled"] = True
                self._kill_tree()
            if deadline is not None and now >= deadline and not out["timed_out"] and not exited:
                out["timed_out"] = True
                self._terminate_tree(proc.pid)
                kill_at = now + max(0.0, spec.kill_grace_s)
                deadline = None
            if kill_at is not None and now >= kill_at and not exited:
                out["escalated"] = True
                self._kill_tree()
                kill_at = None
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen quiet
        out["wait_status"] = status
        out["rusage"] = usage
        # Nothing of the job may outlive it: the PID namespace is gone with bwrap, but check.
        self._kill_tree()
        out["orphan_cpu"] = self._reap_orphans()
        # Drain what the job wrote before it ended (all writers are gone: EOF comes at once).
        end = time.monotonic() + 2.0
        with self._cond:
            self._paused = False
        while ev_open and time.monotonic() < end:
            r, _, _ = select.select([ev_r], [], [], 0.2)
            if r:
                eof, discarding = self._read_event_chunk(ev_r, buf, discarding)
                if eof:
                    ev_open = False
                    self._flush_partial(buf, discarding)
        with contextlib.suppress(OSError):
            while _read_status(st_r, st_buf, out, t0):
                pass  # the shim is long gone: this ends at EOF
        return out

    def _read_event_chunk(self, fd: int, buf: bytearray, discarding: bool) -> tuple[bool, bool]:
        """Read what is there; queue complete lines. Returns (eof, discarding)."""
        try:
            data = os.read(fd, 1 << 18)
        except BlockingIOError:
            return False, discarding
        if not data:
            return True, discarding
        limit = self.config.max_event_line
        lines = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            piece = data[start:nl]
            if discarding:
                discarding = False  # the end of an over-long line: drop it
                self._dropped += 1
            elif len(buf) + len(piece) > limit:
                buf.clear()
                self._dropped += 1
            else:
                buf += piece
                lines.append(bytes(buf))
                buf.clear()
            start = nl + 1
        rest = data[start:]
        if not discarding:
            if len(buf) + len(rest) > limit:
                buf.clear()
                discarding = True
            else:
                buf += rest
        if lines:
            with self._cond:
                self._queue.extend(lines)
                self._queued_bytes += sum(len(x) for x in lines)
                self._cond.notify_all()
        return False, discarding

    def _flush_partial(self, buf: bytearray, discarding: bool) -> None:
        """At EOF: a last line without newline is still a line; an over-long one is not."""
        if discarding:
            self._dropped += 1
        elif buf:
            with self._cond:
                self._queue.append(bytes(buf))
                self._queued_bytes += len(buf)
                self._cond.notify_all()
        buf.clear()

    # ------------------------------------------------------------------ killing

    def _bwrap_pids(self, outer: int) -> set[int]:
        """The outer bwrap and its direct child (the PID namespace's init): signalling those
        with SIGTERM would SIGKILL the tree at once (parent-death signal), skipping the grace."""
        out = {outer}
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{outer}/task"):
                with contextlib.suppress(OSError, ValueError):
                    kids = Path(f"/proc/{outer}/task/{tid}/children").read_text().split()
                    out.update(int(k) for k in kids)
        return out

    def _terminate_tree(self, outer: int) -> None:
        """SIGTERM to every process of the job (not bwrap itself): a chance to save state."""
        exclude = self._bwrap_pids(outer)
        if self.cgroup is not None:
            self.cgroup.signal_all(signal.SIGTERM, exclude=exclude)
        elif self.uid is not None:
            uid = self.uid
            for pid in set(pids_of_uid(uid)) - exclude:
                signal_pid_if(pid, signal.SIGTERM, lambda p: uid in proc_uids(p))

    def _reap_orphans(self, timeout: float = 2.0) -> float:
        """Reap the job's processes that were re-parented to this (subreaper) process.

        bwrap's outer process returns as soon as the sandbox's init reports the job's exit,
        before that init has exited itself; the init is then orphaned. Without a subreaper it
        becomes a zombie of the host's PID 1 (forever, in a container whose PID 1 does not
        reap). As subreaper we get it, and reap it here: only processes of this job's uid.
        """
        cpu = 0.0
        if self.uid is None or not _SUBREAPER_SET:
            return cpu
        me = os.getpid()
        deadline = time.monotonic() + timeout
        while True:
            mine = [p for p in _children_of(me) if self.uid in proc_uids(p)]
            for pid in mine:
                with contextlib.suppress(ChildProcessError, OSError):
                    got, _, ru = os.wait4(pid, os.WNOHANG)
                    if got:
                        cpu += ru.ru_utime + ru.ru_stime
            if not mine or time.monotonic() > deadline:
                return cpu
            time.sleep(0.005)

    def _kill_tree(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill_all()
        if self.uid is not None:
            kill_uid(self.uid)

    def _cleanup_host(self) -> list[str]:
        """Kill leftovers, remove cgroups, give the job dir back, release the uid."""
        problems: list[str] = []
        with contextlib.suppress(Exception):
            self._kill_tree()
        survivors = self.uid is not None and bool(pids_of_uid(self.uid))
        if survivors:
            problems.append(f"processes of uid {self.uid} survived the kill")
        if self.cgroup is not None:
            problems += self.cgroup.remove()
        # Not while a process of the job lives: it could swap a folder for a link during the
        # walk (chown's follow_symlinks=False guards only the last component).
        if (
            self.config.reclaim_job_dir
            and self.uid is not None
            and not survivors
            and self.spec.job_dir.is_dir()
        ):
            try:
                _chown_tree(self.spec.job_dir, os.geteuid(), os.getegid())
            except OSError as e:
                problems.append(f"cannot reclaim {self.spec.job_dir}: {e}")
        if self._lease is not None and not problems:
            self._lease.release()
        elif self._lease is not None:
            # Keep the uid locked for the life of this process rather than hand a uid that
            # still owns something to another job.
            pass
        return problems

    # ------------------------------------------------------------------ the result

    def _finish(
        self, out: dict, t0: float, stdout_path: Path | None, stderr_path: Path | None
    ) -> SandboxResult:
        spec = self.spec
        wall = time.monotonic() - t0
        stats = self.cgroup.stats() if self.cgroup is not None else {}
        problems = self._cleanup_host()
        usage = out.get("rusage")
        cpu = stats.get("cpu_usage_s")
        if cpu is None:  # no cgroup accounting: what the reaped processes reported
            cpu = out.get("orphan_cpu", 0.0) + ((usage.ru_utime + usage.ru_stime) if usage else 0.0)
        status = out.get("wait_status", 0)
        sig: int | None = None
        code: int | None = None
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = -sig
        else:
            code = os.WEXITSTATUS(status)
            # bwrap reports a job killed by signal N as exit status 128 + N.
            if out["started_at"] is not None and 128 < code < 128 + 65:
                sig = code - 128
        tail = _tail(stderr_path)
        last_line = next((ln.strip() for ln in reversed(tail.splitlines()) if ln.strip()), "")
        limits: list[str] = []
        oom = (stats.get("oom_kills") or 0) > 0
        if oom:
            limits.append("memory")
        if (stats.get("pids_max_hits") or 0) > 0:
            limits.append("pids")
        if out["timed_out"]:
            limits.append("wall_time")
        cpu_hit = sig == signal.SIGXCPU or (
            sig == signal.SIGKILL and spec.cpu_time_s is not None and cpu >= spec.cpu_time_s
        )
        if cpu_hit:
            limits.append("cpu_time")
        if sig == signal.SIGXFSZ or "File too large" in tail:
            limits.append("file_size")
        disk = self._disk_quota_hit(tail) and not (code == 0 and sig is None)
        if disk:
            limits.append("disk")
        errors = [s[len("error: ") :] for s in out["status"] if s.startswith("error: ")]
        if errors:
            reason, msg = "error", f"the sandbox could not run the job: {errors[0]}"
        elif out["started_at"] is None and not out["cancelled"]:
            reason = "error"
            msg = "the sandbox failed to start" + (f": {last_line}" if last_line else "")
        elif out["cancelled"]:
            reason, msg = "cancelled", "the job was cancelled and its processes killed"
        elif out["timed_out"]:
            reason = "timeout"
            msg = f"the job exceeded the wall-clock limit of {spec.wall_time_s:g} s and was stopped"
            if out["escalated"]:
                msg += (
                    f" (it was still running {spec.kill_grace_s:g} s after SIGTERM and was killed)"
                )
        elif oom:
            reason = "oom"
            msg = (
                f"the job ran out of memory: it exceeded its memory limit of "
                f"{fmt_bytes(spec.memory_bytes or 0)} and the kernel's OOM killer stopped it"
            )
        elif disk:
            reason = "disk"
            msg = (
                f"disk quota exceeded: the job wrote more than {fmt_bytes(spec.disk_bytes or 0)} "
                "(its limit for /job, /tmp and /dev/shm each)"
            )
            if last_line:
                msg += f": {last_line[:300]}"
        elif sig is not None:
            reason = "killed"
            name = _signame(sig)
            if cpu_hit:
                msg = f"the job exceeded its CPU-time limit of {spec.cpu_time_s} s ({name})"
            elif sig == signal.SIGXFSZ:
                msg = (
                    f"the job exceeded its file-size limit of "
                    f"{fmt_bytes(spec.file_size_bytes or 0)} ({name})"
                )
            else:
                msg = f"the job was killed by {name}"
        else:
            reason = "exited"
            if code == 0:
                msg = "the job finished successfully"
            else:
                msg = f"the job failed with exit code {code}"
                if last_line:
                    msg += f": {last_line[:300]}"
        if reason not in ("oom", "error") and "pids" in limits:
            msg += f" (it reached its process limit of {spec.pids})"
        if reason == "exited" and "file_size" in limits and code:
            msg += f" (file-size limit: {fmt_bytes(spec.file_size_bytes or 0)})"
        if problems:
            msg += "; cleanup problems: " + "; ".join(problems)
        peak = stats.get("memory_peak")
        if peak is None and usage is not None:
            peak = usage.ru_maxrss * 1024
        return SandboxResult(
            reason=reason,
            message=msg,
            returncode=code,
            signal=sig,
            wall_time=wall,
            cpu_time=cpu,
            max_rss=peak,
            stderr_tail=tail,
            stdout_path=stdout_path,
            stderr_path=stderr_path,
            uid=self.uid,
            limits_hit=tuple(limits),
            dropped_event_lines=self._dropped,
            degraded=self.degraded,
            startup_s=out["started_at"],
        )

    def _disk_quota_hit(self, tail: str) -> bool:
        """Did the job run into its disk quota? The kernel refused a write (ENOSPC, EDQUOT in
        its last words), or its folder's filesystem is (nearly) full: ext4 says ENOSPC with a
        few delayed-allocation blocks still counted free."""
        if self.spec.disk_bytes is None:
            return False
        if "No space left on device" in tail or "Disk quota exceeded" in tail:
            return True
        try:
            st = os.statvfs(self.spec.job_dir)  # a root-owned path: the job cannot swap it
        except OSError:
            return False
        total = st.f_blocks * st.f_frsize
        return st.f_favail == 0 or st.f_bavail * st.f_frsize < min(total // 16, 64 << 20)


def _read_status(fd: int, buf: bytearray, out: dict, t0: float) -> bool | None:
    """Read the shim's status lines: True if some came, False if none yet, None at EOF."""
    try:
        data = os.read(fd, 4096)
    except BlockingIOError:
        return False
    if not data:
        return None
    buf += data
    while b"\n" in buf:
        line, _, rest = bytes(buf).partition(b"\n")
        buf[:] = rest
        text = line.decode(errors="replace")
        out["status"].append(text)
        if text == "started" and out["started_at"] is None:
            out["started_at"] = time.monotonic() - t0
    return True


_SUBREAPER_SET = False
PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Make orphaned descendants this process's children (see ``Sandbox._reap_orphans``)."""
    global _SUBREAPER_SET
    if _SUBREAPER_SET:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
        _SUBREAPER_SET = True


def _children_of(ppid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and int(fields[1]) == ppid:
            out.append(int(name))
    return out


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """chown a tree without ever following a symlink (the job may have planted some)."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            with contextlib.suppress(FileNotFoundError):
                os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _tail(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - STDERR_TAIL_BYTES))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def reap_stale(config: SandboxConfig | None = None) -> list[str]:
    """Remove job cgroups left by a supervisor that died (their uid lock is free): kill what
    is inside, rmdir them. Call once when a worker starts. Returns the groups removed."""
    cfg = config or SandboxConfig()
    layout = detect_layout()
    removed = []
    roots = (
        [layout.v2_root]
        if layout.version == "v2"
        else [layout.v1_roots[c] for c in layout.controllers()]
    )
    names: set[str] = set()
    for root in roots:
        if root is None:
            continue
        with contextlib.suppress(OSError):
            names.update(p.name for p in (root / cfg.cgroup_parent).iterdir() if p.is_dir())
    for name in sorted(names):
        parts = name.split("-")
        if len(parts) < 3 or parts[0] != "job" or not parts[1].isdigit():
            continue
        if uid_is_locked(cfg.state_dir, int(parts[1])):
            continue
        try:
            cg = JobCgroup(layout, cfg.cgroup_parent, name)
        except CgroupError:
            continue
        cg.kill_all()
        if not cg.remove():
            removed.append(name)
    return removed
