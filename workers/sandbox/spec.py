"""What a job asks for (``SandboxSpec``), how a host is set up (``SandboxConfig``), and what
came out (``SandboxResult``). Plain data: no Django, no I/O beyond reading the environment."""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workers.sandbox.uids import DEFAULT_UID_RANGE

GiB = 1 << 30
MiB = 1 << 20

#: Where the job directory appears inside the sandbox.
JOB_MOUNT = "/job"
#: The repository root (the directory holding ``workers/``).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: Reasons a job can end with (``SandboxResult.reason``).
REASONS = ("exited", "timeout", "oom", "disk", "killed", "cancelled", "error")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PythonRuntime:
    """The interpreter the job runs: its installation and (optionally) a virtualenv.

    Both directories are bound read-only into the sandbox *at their host paths*, so every
    absolute path baked into them keeps working unchanged: the interpreter's RUNPATH to
    libpython, the venv's ``pyvenv.cfg`` ``home``, script shebangs, editable-install finders.
    A prefix under /root (pyenv) is unreadable to the job's uid on the host; the sandbox first
    re-mounts such a directory, as root, somewhere the job's bwrap can reach (see
    ``Sandbox``), and inside the sandbox its parent directories are bwrap's own 0755 ones
    that contain nothing else: the job never sees the rest of /root.
    """

    executable: str
    prefixes: tuple[str, ...]

    @classmethod
    def current(cls) -> PythonRuntime:
        """The interpreter running this code (the worker's venv)."""
        prefixes = []
        for p in (sys.base_prefix, sys.prefix):
            rp = os.path.realpath(p)
            if rp not in prefixes:
                prefixes.append(rp)
        return cls(executable=sys.executable, prefixes=tuple(prefixes))

    @property
    def bin_dir(self) -> str:
        return os.path.dirname(self.executable)


#: The interpreter to put in ``SandboxSpec.argv`` (the same path is valid inside).
PYTHON = PythonRuntime.current().executable


def default_hidden_paths(project_root: Path = PROJECT_ROOT) -> list[Path]:
    """Paths that must never be visible inside a sandbox, when something above them is bound.

    The hub's data dir (DB file, blobs, chdb, other jobs), the repository's git metadata and
    local env files, the hub's and the CLI's config directories (tokens), and any directory
    named by ``HUB_DATA_DIR`` / ``HUB_BLOB_DIR`` in the supervisor's environment.
    """
    out = [
        project_root / ".hub-data",
        project_root / ".git",
        project_root / ".env",
        Path.home() / ".config" / "moe-hub",
        Path("/root/.config/moe-hub"),
    ]
    for var in ("HUB_DATA_DIR", "HUB_BLOB_DIR"):
        if os.environ.get(var):
            out.append(Path(os.environ[var]))
    return out


@dataclass
class SandboxSpec:
    """One job's sandbox. Sizes in bytes, times in seconds; ``None`` means no limit.

    ``argv`` runs inside with ``/job`` (``job_dir`` on the host, the only writable place besides
    a private /tmp) as working directory. ``env`` is the whole environment the job gets besides
    a few safe basics (PATH, HOME=/job, LANG, TMPDIR, PYTHONUNBUFFERED, thread counts); names
    starting with ``HUB_`` are refused: the hub's settings and secrets never enter a sandbox.
    ``ro_binds`` maps host paths to sandbox paths (read-only). ``hide`` adds host paths to the
    default hidden set (``default_hidden_paths``): wherever such a path falls inside something
    bound, an empty read-only tmpfs (or /dev/null for a file) covers it.
    ``project_paths`` are parts of the repository bound read-only at their host paths (the job
    imports ``workers.moe``); by default ``workers/`` and the Django-free ``hub/shared/`` (with
    ``hub/__init__.py``) - not the rest of ``hub/``, not the settings.
    ``gpus`` are the device indices this job reserved (``GpuSlots``): only their
    ``/dev/nvidiaN`` nodes (plus the control nodes) exist inside.
    ``event_fd`` is the descriptor number the event pipe gets inside (None: no event pipe).
    ``disk_bytes`` is the job's disk quota: ``job_dir`` must then be the mount point of a
    filesystem that size (``workers.sandbox.jobfs.JobFolder``: the kernel refuses writes past
    it), and ``/tmp`` and ``/dev/shm`` become tmpfs of that size each (``tmp_size_bytes``
    overrides it for ``/tmp``). tmpfs pages are memory charged to the job's cgroup, so those
    two are bounded by ``memory_bytes`` as well. A job that fills any of them ends with reason
    ``disk`` ("disk quota exceeded: ..."). ``file_size_bytes`` (RLIMIT_FSIZE) still caps every
    file, the job's stdout and stderr logs (outside the quota) included.
    """

    argv: Sequence[str]
    job_dir: Path
    ro_binds: Mapping[Path | str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    job_id: str = ""
    cpus: float | None = 1.0
    memory_bytes: int | None = 2 * GiB
    pids: int | None = 256
    cpu_time_s: int | None = None
    wall_time_s: float | None = 3600.0
    file_size_bytes: int | None = 16 * GiB
    open_files: int = 1024
    gpus: Sequence[int] = ()
    event_fd: int | None = 3
    hide: Sequence[Path | str] = ()
    hide_defaults: bool = True
    project_paths: Sequence[Path | str] | None = None
    python: PythonRuntime | None = None
    log_dir: Path | None = None
    tmp_size_bytes: int | None = None
    disk_bytes: int | None = None
    kill_grace_s: float = 5.0

    def validate(self) -> None:
        """Raise ValueError for anything that would weaken the sandbox or cannot work."""
        if not self.argv or not all(isinstance(a, str) and "\0" not in a for a in self.argv):
            raise ValueError("argv must be a non-empty list of strings without NUL bytes")
        for k, v in self.env.items():
            if not _ENV_NAME.match(k) or "\0" in str(v):
                raise ValueError(f"bad environment variable name or value: {k!r}")
            if k.upper().startswith("HUB_"):
                raise ValueError(
                    f"{k}: HUB_* variables (hub settings and secrets) never enter a sandbox"
                )
        for host, inside in self.ro_binds.items():
            if not os.path.isabs(str(host)) or not os.path.isabs(inside):
                raise ValueError(f"ro_binds needs absolute paths: {host} -> {inside}")
            if os.path.normpath(inside) in ("/", JOB_MOUNT, "/tmp", "/proc", "/dev", "/etc"):
                raise ValueError(f"ro_binds cannot cover {inside}")
            if not os.path.exists(host):
                raise ValueError(f"ro_binds source does not exist: {host}")
        if self.log_dir is not None:
            jd, ld = os.path.realpath(self.job_dir), os.path.realpath(self.log_dir)
            if ld == jd or ld.startswith(jd.rstrip("/") + "/"):
                raise ValueError(
                    "log_dir must be outside job_dir (the job must not edit its own logs)"
                )
        if self.event_fd is not None and not 3 <= self.event_fd < 1024:
            raise ValueError("event_fd must be in 3..1023 (0-2 are stdio)")
        for name in (
            "memory_bytes",
            "pids",
            "cpu_time_s",
            "file_size_bytes",
            "tmp_size_bytes",
            "disk_bytes",
        ):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be positive")
        if self.cpus is not None and not 0 < self.cpus <= 1024:
            raise ValueError("cpus must be positive")
        if self.wall_time_s is not None and self.wall_time_s <= 0:
            raise ValueError("wall_time_s must be positive")
        if self.open_files < 16:
            raise ValueError("open_files must be at least 16")
        if len(set(self.gpus)) != len(self.gpus) or any(int(g) < 0 for g in self.gpus):
            raise ValueError(f"bad gpu list {list(self.gpus)}")

    def thread_count(self) -> int:
        return max(1, math.ceil(self.cpus)) if self.cpus else (os.cpu_count() or 1)


@dataclass(frozen=True)
class SandboxConfig:
    """Per-host settings of the worker (the same for every job it runs)."""

    state_dir: Path = Path("/run/moe-hub-sandbox")
    uid_range: tuple[int, int] = DEFAULT_UID_RANGE
    cgroup_parent: str = "hub-jobs"
    dev_root: Path = Path("/dev")
    project_root: Path = PROJECT_ROOT
    reclaim_job_dir: bool = True
    max_event_line: int = 64 * 1024
    max_queued_event_bytes: int = 16 * MiB


@dataclass(frozen=True)
class SandboxResult:
    """How a job ended. ``ok`` is the only success; every other outcome has a ``message``
    written for the person who launched the job ("exceeded the wall-clock limit of 60 s")."""

    reason: str
    message: str
    returncode: int | None
    signal: int | None
    wall_time: float
    cpu_time: float
    max_rss: int | None
    stderr_tail: str
    stdout_path: Path | None
    stderr_path: Path | None
    uid: int | None
    limits_hit: tuple[str, ...] = ()
    dropped_event_lines: int = 0
    degraded: tuple[str, ...] = ()
    startup_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "exited" and self.returncode == 0


def fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} bytes"
