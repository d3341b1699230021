"""Per-job uids: every running job has a uid (and a same-numbered private gid) of its own.

Why one uid per job and not one shared "nobody": with a shared uid, job A could read job B's
files (same owner), signal or ptrace B's processes, and fill B's RLIMIT_NPROC budget. With
its own uid, the kernel's ordinary permission checks separate jobs even outside the sandbox's
other layers.

Allocation is atomic across processes without any service: the uid N is held by whoever holds
an exclusive ``flock`` on ``<state_dir>/uids/N.lock``. The kernel drops the lock when its
holder dies, so a crashed supervisor never leaks a uid; and a uid that still has a live process
(a job that survived its supervisor somehow) is skipped, never handed to a new job. Uids that
belong to an account in the passwd/group database are skipped too. The search starts at a
hash of the job id so concurrent workers rarely probe the same lock files.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from workers.sandbox.cgroups import pids_of_uid

DEFAULT_UID_RANGE = (60000, 61000)  # [start, stop)


class NoUidAvailable(RuntimeError):
    pass


@dataclass
class UidLease:
    uid: int
    gid: int
    _fd: int | None

    def release(self) -> None:
        """Give the uid back (idempotent). Callers first make sure no process of it is left."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _taken_by_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        pass
    try:
        grp.getgrgid(uid)
        return True
    except KeyError:
        return False


def allocate_uid(
    state_dir: Path, job_id: str, uid_range: tuple[int, int] = DEFAULT_UID_RANGE
) -> UidLease:
    start, stop = uid_range
    if not 0 < start < stop:
        raise ValueError(f"bad uid range {uid_range}")
    lock_dir = state_dir / "uids"
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    n = stop - start
    first = int.from_bytes(hashlib.blake2b(job_id.encode(), digest_size=8).digest(), "big") % n
    for i in range(n):
        uid = start + (first + i) % n
        if _taken_by_account(uid):
            continue
        fd = os.open(lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if pids_of_uid(uid):
            # Leftovers of a job whose supervisor died: never share a uid with them.
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {job_id}\n".encode())
        return UidLease(uid, uid, fd)
    raise NoUidAvailable(f"every uid in {start}-{stop - 1} is in use")


def uid_is_locked(state_dir: Path, uid: int) -> bool:
    """True while some supervisor holds ``uid`` (used to find stale cgroups)."""
    path = state_dir / "uids" / f"{uid}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
