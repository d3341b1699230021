"""A job's folder as the supervisor (root) sees it: created before the job, on its own
size-limited filesystem, and read only through a directory handle taken then.

Everything in a job's folder is named by the job, and the job may have replaced any name
with a link (to ``/``, to the hub's database), a FIFO that blocks its reader, or a file that
turns into a link between the moment the supervisor checked it and the moment it opens it.
So the supervisor never opens a job file by path:

- ``JobFolder.create`` makes the folder and opens a handle on it before the job runs. The
  folder is a mount point on the host (its own filesystem) under a root-owned parent the
  sandbox does not show, and inside the sandbox ``/job`` is a mount point too: the job can
  neither rename nor replace it. Names *inside* it (``out`` included) are the job's to change,
  so they are resolved at read time, beneath the handle.
- ``open_beneath`` resolves a relative path beneath that handle with ``openat2(RESOLVE_BENEATH
  | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`` where the kernel has it
  (Linux >= 5.6; Python 3.11 has no ``os.openat2``, so the syscall goes through ctypes), and
  otherwise walks one component at a time with ``O_NOFOLLOW`` and ``dir_fd``, checking that
  it stays on the folder's filesystem: a link at any depth is refused, never followed.
- ``open_regular`` opens with ``O_NONBLOCK`` (a FIFO does not wait for a writer), ``fstat``s
  the descriptor and refuses anything but a regular file. The caller gets a file object, not
  a path, so nothing is opened by name a second time.

Why not read as the job's uid instead: the supervisor reads outputs after the job ended, its
processes were killed and the sandbox gave the folder back to root and released the uid. The
folder is then inert, and with every link refused and the filesystem the folder's own, the
only inodes reachable are ones created inside the folder (a hard link cannot cross
filesystems): root reads nothing the job could not.

Disk quota. A job's folder is an ext4 image (a sparse file next to the folder, root-only)
loop-mounted on it, ``nosuid,nodev``: the kernel refuses writes past its size (ENOSPC) and the
host's filesystem gives the job at most that much. Chosen over the alternatives because it
works the same here (a container with loop devices, kernel 6.18) and on any Linux host whose
worker runs as root: a tmpfs would charge every written byte to the job's memory cgroup and
keep checkpoints in RAM; project quotas need an XFS/ext4 host volume mounted with them;
polling the folder's size lets a fast writer overshoot. The image is made without a journal
(a job folder does not survive a crash anyway) and a little larger than the quota so that
ext4's own metadata does not eat into it. ``/tmp`` and ``/dev/shm`` are size-limited tmpfs
set up by the sandbox (``SandboxSpec.disk_bytes``).

Needs root, ``mkfs.ext4`` (e2fsprogs) and ``mount``/``umount`` (util-linux), and free loop
devices (``/dev/loop-control``). ``size_bytes=None`` makes a plain folder on the host's
filesystem (no quota; tests and hosts that cannot mount).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import platform
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from workers.sandbox.probe import SYSTEM_PATH, tool

log = logging.getLogger(__name__)

MiB = 1 << 20
#: The smallest quota an ext4 image can hold usefully.
MIN_DISK_BYTES = 8 * MiB

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
#: openat2's number (the same on every architecture that has it: it came after the unified table).
_SYS_OPENAT2 = {
    "x86_64": 437,
    "amd64": 437,
    "aarch64": 437,
    "arm64": 437,
    "riscv64": 437,
    "ppc64le": 437,
    "s390x": 437,
}


class UnsafeJobFile(ValueError):
    """A job file the supervisor refuses to open, with the reason."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_openat2_ok: bool | None = None  # unknown until first tried


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int | None:
    """openat2(2) through ctypes: the descriptor, OSError, or None where the kernel (or a
    container's seccomp profile) does not offer the syscall."""
    global _openat2_ok
    nr = _SYS_OPENAT2.get(platform.machine())
    if nr is None or _openat2_ok is False:
        return None
    how = _OpenHow(flags, 0, resolve)
    fd = _libc.syscall(
        ctypes.c_long(nr),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd >= 0:
        _openat2_ok = True
        return int(fd)
    err = ctypes.get_errno()
    if err == errno.ENOSYS or (err == errno.EPERM and _openat2_ok is None):
        _openat2_ok = False  # not here: the O_NOFOLLOW walk does the same job
        return None
    raise OSError(err, os.strerror(err), path)


def relative_parts(rel: str) -> list[str]:
    """The components of a path the job named, or UnsafeJobFile: relative, no empty, ``.`` or
    ``..`` component, no NUL."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or len(rel.encode()) > 4000:
        raise UnsafeJobFile(f"not a usable path: {rel!r}")
    if rel.startswith("/"):
        raise UnsafeJobFile(f"an absolute path: {rel!r}")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafeJobFile(f"an empty, '.' or '..' component: {rel!r}")
    return parts


def _refusal(e: OSError, rel: str) -> UnsafeJobFile:
    why = {
        errno.ELOOP: "it goes through a link",
        errno.EXDEV: "it leaves the job's folder",
        errno.ENOTDIR: "a component is not a directory",
        errno.ENOENT: "it does not exist",
        errno.EACCES: "permission denied",
    }.get(e.errno or 0, os.strerror(e.errno or 0))
    return UnsafeJobFile(f"{rel!r}: {why}")


def open_beneath(dirfd: int, rel: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor for ``rel`` beneath the directory ``dirfd``, never following a link at any
    depth (the last component included) nor leaving ``dirfd``'s filesystem. UnsafeJobFile
    when refused."""
    parts = relative_parts(rel)
    flags |= os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY
    try:
        fd = _openat2(dirfd, "/".join(parts), flags, _RESOLVE)
    except OSError as e:
        raise _refusal(e, rel) from None
    if fd is not None:
        return fd
    # Without openat2: one component at a time, each opened relative to the last with
    # O_NOFOLLOW (a link fails with ELOOP), each checked to be on the folder's filesystem.
    dev = os.fstat(dirfd).st_dev
    cur = dirfd
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            f = (
                flags
                if last
                else os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            )
            try:
                nxt = os.open(name, f, dir_fd=cur)
            except OSError as e:
                if e.errno == errno.ENOTDIR:  # O_DIRECTORY | O_NOFOLLOW on a link says ENOTDIR
                    with contextlib.suppress(OSError):
                        if stat.S_ISLNK(os.stat(name, dir_fd=cur, follow_symlinks=False).st_mode):
                            e = OSError(errno.ELOOP, "a link")
                raise _refusal(e, rel) from None
            if cur != dirfd:
                os.close(cur)
            cur = nxt
            if os.fstat(cur).st_dev != dev:
                raise UnsafeJobFile(f"{rel!r}: it leaves the job's folder")
        fd, cur = cur, dirfd
        return fd
    finally:
        if cur != dirfd:
            os.close(cur)


def open_regular(dirfd: int, rel: str) -> BinaryIO:
    """``rel`` beneath ``dirfd`` opened for reading, only if it is a regular file (a FIFO, a
    device, a socket or a directory is refused at once, never waited on)."""
    fd = open_beneath(dirfd, rel, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeJobFile(f"{rel!r}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@dataclass(frozen=True)
class DiskUsage:
    total: int
    available: int
    files_available: int


class JobFolder:
    """One job's folder on the host. ``create`` before the job, ``open`` its files after,
    ``remove`` (or leave the ``with`` block) when done."""

    def __init__(self, path: Path | str, *, size_bytes: int | None = None):
        if size_bytes is not None and size_bytes < MIN_DISK_BYTES:
            raise ValueError(f"a job folder's quota must be at least {MIN_DISK_BYTES // MiB} MiB")
        self.path = Path(path)
        self.size_bytes = size_bytes
        #: The filesystem image behind a size-limited folder (next to it, root-only).
        self.image = self.path.with_name(self.path.name + ".disk")
        self.fd = -1
        self.mounted = False

    @classmethod
    def create(cls, path: Path | str, *, size_bytes: int | None = None) -> JobFolder:
        """Make the folder (replacing what a previous attempt left there), with its own
        filesystem of ``size_bytes`` when given, and take the handle."""
        folder = cls(path, size_bytes=size_bytes)
        folder._clear()
        try:
            folder.path.mkdir(mode=0o700)
            if size_bytes is not None:
                folder._mount()
            fd = os.open(folder.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            folder.fd = fd
        except BaseException:
            folder.remove()
            raise
        return folder

    # --- the filesystem ----------------------------------------------------------------------

    def _image_bytes(self) -> int:
        # ext4 keeps ~1.6 % for inode tables and up to 2 % (<= 16 MiB) for delayed allocation:
        # room for those, so the job can write about its quota.
        assert self.size_bytes is not None
        return self.size_bytes + self.size_bytes // 16 + 4 * MiB

    def _mount(self) -> None:
        mkfs, mount = tool("mkfs.ext4"), tool("mount")
        if mkfs is None or mount is None:
            raise OSError("a job's disk quota needs mkfs.ext4 (e2fsprogs) and mount (util-linux)")
        fd = os.open(
            self.image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            os.ftruncate(fd, self._image_bytes())  # sparse: the host pays only for what is written
        finally:
            os.close(fd)
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
        _run(
            [
                mkfs,
                "-q",
                "-F",
                "-m",
                "0",
                "-O",
                "^has_journal",
                "-E",
                "nodiscard,root_owner=0:0",
                "-L",
                "hub-job",
                str(self.image),
            ],
            env,
        )
        _run(
            [mount, "-n", "-t", "ext4", "-o", "loop,nosuid,nodev", str(self.image), str(self.path)],
            env,
        )
        self.mounted = True
        with contextlib.suppress(OSError):
            os.rmdir(self.path / "lost+found")
        os.chmod(self.path, 0o700)

    def _unmount(self) -> None:
        umount = tool("umount") or "umount"
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
        try:
            _run([umount, "-n", str(self.path)], env)
        except OSError:
            _run([umount, "-n", "-l", str(self.path)], env)  # busy: detach now, freed when let go
        self.mounted = False

    def _clear(self) -> None:
        """What a previous attempt (or a supervisor that died) left at this path."""
        if os.path.ismount(self.path):
            self._unmount()
        if self.path.is_symlink() or self.path.is_file():
            self.path.unlink()
        elif self.path.exists():
            shutil.rmtree(self.path)
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()

    # --- reading ------------------------------------------------------------------------------

    def open(self, rel: str) -> BinaryIO:
        """A regular file of the folder, by a path relative to it (see ``open_regular``)."""
        if self.fd < 0:
            raise RuntimeError("the job folder is closed")
        return open_regular(self.fd, rel)

    def write_text(self, name: str, text: str) -> None:
        """A new file directly in the folder (the supervisor's own, before the job runs)."""
        relative_parts(name)
        if "/" in name:
            raise UnsafeJobFile(f"{name!r}: only a name directly in the folder")
        fd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=self.fd,
        )
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def usage(self) -> DiskUsage:
        s = os.fstatvfs(self.fd)
        return DiskUsage(
            total=s.f_blocks * s.f_frsize,
            available=s.f_bavail * s.f_frsize,
            files_available=s.f_favail,
        )

    # --- the end ------------------------------------------------------------------------------

    def remove(self, *, keep: bool = False) -> None:
        """Close the handle, unmount, delete the folder and its image; ``keep`` leaves the
        files for a person to look at (the folder, or the image unmounted next to it)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        if keep:
            if self.mounted:
                self._unmount()
            return
        self._clear()

    def __enter__(self) -> JobFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _run(argv: list[str], env: dict[str, str]) -> None:
    r = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    if r.returncode != 0:
        raise OSError(
            f"{os.path.basename(argv[0])} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[:500]}"
        )


def _mount_points_below(parent: Path) -> list[Path]:
    """Mount points whose parent folder is ``parent`` (from this process's mount table)."""
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            lines = f.readlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        # mountinfo escapes space, tab, newline and backslash as octal
        point = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
        if point.parent == parent:
            found.append(point)
    return found


def claim_jobs_dir(jobs_dir: Path | str) -> int | None:
    """An exclusive lock on ``jobs_dir`` for this worker's lifetime (the returned descriptor is
    kept open), or None when another live worker holds it. Only the holder may sweep."""
    jobs_dir = Path(jobs_dir)
    jobs_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(jobs_dir / ".worker.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def sweep_stale(jobs_dir: Path | str) -> list[str]:
    """What a worker that died (SIGKILL, host crash) left in its jobs folder: job folders
    still mounted on their disk images (unmounted, removed with their images). Call once at
    worker start, holding
    ``claim_jobs_dir``: no job of this folder can be running then. Returns the job folders
    cleared."""
    jobs_dir = Path(jobs_dir)
    cleared = []
    for point in _mount_points_below(jobs_dir):
        folder = JobFolder(point)
        folder.mounted = True
        try:
            folder._clear()
            cleared.append(point.name)
        except OSError as e:  # left for a person; the next start tries again
            log.warning("could not clear the stale job folder %s: %s", point, e)
    return cleared  # (an unmounted image is a failed job kept for a person: HUB_KEEP_JOB_DIRS)
