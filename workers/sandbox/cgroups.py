"""Per-job control groups: memory, process count and CPU bandwidth, and the kill of the tree.

cgroup v2 is used when its hierarchy offers the ``memory`` and ``pids`` controllers; otherwise
the v1 ``memory``, ``pids`` and ``cpu`` hierarchies (the machines this was built on run a
hybrid layout whose v2 half has no memory controller). The job's group is
``<hierarchy>/<parent>/<name>`` (``parent`` defaults to ``hub-jobs``).

The first process of the job (a root shell, before it execs anything the job controls) writes
its own pid into every ``cgroup.procs``: everything the job ever starts is born inside the
groups, and a process cannot leave them (moving needs write access to another group's
``cgroup.procs``, and /sys is not visible in the sandbox anyway).

Killing the tree: v2 has ``cgroup.kill``. v1 has no such file, so ``pids.max`` is first set
to 0 (no process in the group can fork any more, so the list cannot grow), then every listed
pid is signalled through a pidfd after checking, through that same pidfd's process, that it
is still a member: a pid that exited and was reused by an unrelated process is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")  # cpuacct: accounting only
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupLayout:
    """Where the hierarchies are mounted on this host (read from /proc/self/mountinfo)."""

    v2_root: Path | None
    v2_controllers: tuple[str, ...]
    v1_roots: dict[str, Path] = field(default_factory=dict)

    @property
    def version(self) -> str | None:
        """ "v2" when v2 has memory and pids, else "v1" when v1 has both, else None."""
        if self.v2_root is not None and {"memory", "pids"} <= set(self.v2_controllers):
            return "v2"
        if {"memory", "pids"} <= set(self.v1_roots):
            return "v1"
        return None

    def controllers(self) -> tuple[str, ...]:
        """The controllers the chosen version offers among memory, pids, cpu (and v1's
        cpuacct, for accounting; v2 always accounts CPU in cpu.stat)."""
        if self.version == "v2":
            return tuple(c for c in V1_CONTROLLERS if c in self.v2_controllers)
        if self.version == "v1":
            return tuple(c for c in V1_CONTROLLERS if c in self.v1_roots)
        return ()


def detect_layout(mountinfo: str = "/proc/self/mountinfo") -> CgroupLayout:
    v2_root: Path | None = None
    v1: dict[str, Path] = {}
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        left, _, right = line.partition(" - ")
        parts = left.split()
        rparts = right.split()
        if len(parts) < 5 or len(rparts) < 3:
            continue
        fstype, mnt = rparts[0], Path(parts[4])
        if parts[3] != "/":
            continue  # a bind of a sub-group (containers): not a hierarchy root
        if fstype == "cgroup2" and v2_root is None:
            v2_root = mnt
        elif fstype == "cgroup":
            for opt in rparts[2].split(","):
                if opt in V1_CONTROLLERS and opt not in v1:
                    v1[opt] = mnt
    v2_controllers: tuple[str, ...] = ()
    if v2_root is not None:
        with contextlib.suppress(OSError):
            v2_controllers = tuple((v2_root / "cgroup.controllers").read_text().split())
    return CgroupLayout(v2_root, v2_controllers, v1)


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int | None
    pids: int | None
    cpus: float | None


class CgroupError(RuntimeError):
    pass


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror or e}") from e


def _read_kv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[k] = int(v)
    return out


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class JobCgroup:
    """The groups of one job, created with its limits; ``remove()`` kills and deletes them."""

    def __init__(self, layout: CgroupLayout, parent: str, name: str) -> None:
        if layout.version is None:
            raise CgroupError("no usable cgroup hierarchy (memory and pids controllers)")
        self.layout = layout
        self.version = layout.version
        self.name = name
        self.controllers = layout.controllers()
        if self.version == "v2":
            assert layout.v2_root is not None
            self._parent_dirs = {"unified": layout.v2_root / parent}
            self.dirs = {"unified": layout.v2_root / parent / name}
        else:
            self._parent_dirs = {c: layout.v1_roots[c] / parent for c in self.controllers}
            self.dirs = {c: layout.v1_roots[c] / parent / name for c in self.controllers}

    # ---- creation ----

    def create(self, limits: CgroupLimits) -> None:
        if self.version == "v2":
            self._create_v2(limits)
        else:
            self._create_v1(limits)

    def _create_v2(self, limits: CgroupLimits) -> None:
        assert self.layout.v2_root is not None
        parent = self._parent_dirs["unified"]
        want = " ".join(f"+{c}" for c in self.controllers)
        # Controllers must be enabled on every level down to the job's group.
        _write(self.layout.v2_root / "cgroup.subtree_control", want)
        parent.mkdir(exist_ok=True)
        _write(parent / "cgroup.subtree_control", want)
        d = self.dirs["unified"]
        d.mkdir()
        if limits.memory_bytes is not None:
            _write(d / "memory.max", str(limits.memory_bytes))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            if (d / "memory.oom.group").exists():
                # One OOM kill takes the whole job: a half-killed training run is useless.
                _write(d / "memory.oom.group", "1")
        if limits.pids is not None:
            _write(d / "pids.max", str(limits.pids))
        if limits.cpus is not None and "cpu" in self.controllers:
            _write(d / "cpu.max", f"{max(1000, int(limits.cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}")

    def _paths(self) -> list[Path]:
        """Distinct group directories (v1 may co-mount controllers, e.g. "cpu,cpuacct")."""
        return list(dict.fromkeys(self.dirs.values()))

    def _create_v1(self, limits: CgroupLimits) -> None:
        for p in dict.fromkeys(self._parent_dirs.values()):
            p.mkdir(exist_ok=True)
        for d in self._paths():
            d.mkdir()
        if limits.memory_bytes is not None and "memory" in self.dirs:
            d = self.dirs["memory"]
            _write(d / "memory.limit_in_bytes", str(limits.memory_bytes))
            if (d / "memory.memsw.limit_in_bytes").exists():
                # memsw >= memory is required; equal means: no swap on top of the limit.
                _write(d / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            with contextlib.suppress(CgroupError):
                _write(d / "memory.swappiness", "0")
        if limits.pids is not None and "pids" in self.dirs:
            _write(self.dirs["pids"] / "pids.max", str(limits.pids))
        if limits.cpus is not None and "cpu" in self.dirs:
            d = self.dirs["cpu"]
            _write(d / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(d / "cpu.cfs_quota_us", str(max(1000, int(limits.cpus * CPU_PERIOD_US))))

    def procs_files(self) -> list[Path]:
        """The files the job's first process writes its pid into."""
        return [d / "cgroup.procs" for d in self._paths()]

    # ---- observation ----

    def pids(self) -> set[int]:
        out: set[int] = set()
        for d in self._paths():
            with contextlib.suppress(OSError):
                out.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return out

    def stats(self) -> dict[str, int | None]:
        """oom_kills, memory_peak (bytes), pids_max_hits (forks refused by the pids limit),
        pids_peak, cpu_usage_s (all processes of the job, reaped or killed alike)."""
        if self.version == "v2":
            d = self.dirs["unified"]
            ev = _read_kv(d / "memory.events")
            usec = _read_kv(d / "cpu.stat").get("usage_usec")
            return {
                "oom_kills": ev.get("oom_kill", 0),
                "memory_peak": _read_int(d / "memory.peak"),
                "pids_max_hits": _read_kv(d / "pids.events").get("max", 0),
                "pids_peak": _read_int(d / "pids.peak"),
                "cpu_usage_s": usec / 1e6 if usec is not None else None,
            }
        mem = self.dirs.get("memory")
        pids = self.dirs.get("pids")
        acct = self.dirs.get("cpuacct")
        oom = _read_kv(mem / "memory.oom_control") if mem else {}
        ns = _read_int(acct / "cpuacct.usage") if acct else None
        return {
            "oom_kills": oom.get("oom_kill", 0),
            "memory_peak": _read_int(mem / "memory.max_usage_in_bytes") if mem else None,
            "pids_max_hits": _read_kv(pids / "pids.events").get("max", 0) if pids else 0,
            "pids_peak": _read_int(pids / "pids.peak") if pids else None,
            "cpu_usage_s": ns / 1e9 if ns is not None else None,
        }

    # ---- the end ----

    def _member_paths(self) -> set[str]:
        """The group paths as /proc/PID/cgroup prints them (relative to each hierarchy)."""
        out = set()
        for c, d in self.dirs.items():
            root = self.layout.v2_root if c == "unified" else self.layout.v1_roots[c]
            assert root is not None
            out.add("/" + str(d.relative_to(root)))
        return out

    def signal_all(self, sig: int, *, exclude: set[int] | frozenset[int] = frozenset()) -> int:
        """Send ``sig`` to every member (but ``exclude``) through pidfds. Returns how many."""
        paths = self._member_paths()
        sent = 0
        for pid in self.pids() - set(exclude):
            if signal_pid_if(pid, sig, lambda p: _in_cgroup(p, paths)):
                sent += 1
        return sent

    def kill_all(self, timeout: float = 10.0) -> bool:
        """SIGKILL every member until the groups are empty. True when they are."""
        if self.version == "v2":
            kill = self.dirs["unified"] / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
        elif "pids" in self.dirs:
            with contextlib.suppress(OSError):
                (self.dirs["pids"] / "pids.max").write_text("0")  # no more forks
        deadline = time.monotonic() + timeout
        while True:
            if not self.pids():
                return True
            self.signal_all(signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def remove(self) -> list[str]:
        """rmdir every group (retrying while the last exits are accounted). Returns failures."""
        failed = []
        for d in self._paths():
            for attempt in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if attempt == 99:
                        failed.append(f"{d}: {e.strerror}")
                    time.sleep(0.02)
        return failed


def _in_cgroup(pid: int, paths: set[str]) -> bool:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        p = line.split(":", 2)[-1]
        if p in paths:
            return True
    return False


def signal_pid_if(pid: int, sig: int, check) -> bool:  # noqa: ANN001 - a predicate
    """Signal ``pid`` only if ``check(pid)`` holds while we hold a pidfd to that very process.

    pidfd_open pins the process: if the check (made after the pidfd exists) says it is ours,
    the signal cannot reach a different process that later reused the number.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return False
    try:
        if not check(pid):
            return False
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(pidfd)


def proc_uids(pid: int, *, live_only: bool = False) -> tuple[int, ...]:
    """Real, effective, saved and filesystem uids of a process (empty if it is gone, or, with
    ``live_only``, a zombie: it holds no resources and only waits for its parent to reap it)."""
    uids: tuple[int, ...] = ()
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"State:") and live_only and line.split()[1:2] == [b"Z"]:
                    return ()
                if line.startswith(b"Uid:"):
                    uids = tuple(int(x) for x in line.split()[1:5])
                    break
    except (OSError, ValueError):
        return ()
    return uids


def pids_of_uid(uid: int, *, live_only: bool = True) -> list[int]:
    """Every process on the host running with ``uid`` as any of its uids."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and uid in proc_uids(int(name), live_only=live_only):
            out.append(int(name))
    return out


def kill_uid(uid: int, timeout: float = 5.0) -> bool:
    """SIGKILL every process of ``uid`` (a job uid is never shared). True when none is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids = pids_of_uid(uid)
        if not pids:
            return True
        for pid in pids:
            signal_pid_if(pid, signal.SIGKILL, lambda p: uid in proc_uids(p))
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
