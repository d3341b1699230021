"""The first process inside the sandbox: fix up descriptors, apply Landlock, exec the job.

bwrap runs this file (copied into the sandbox read-only at ``/.hub-sandbox/shim.py``) with the
job's own interpreter in isolated mode (``python -I -S``), as the job's unprivileged uid, after
the seccomp filter is already loaded. It is deliberately self-contained (stdlib and ``ctypes``
only, no imports from the project): it must not depend on anything the job could influence,
and the supervisor imports the same functions (``landlock_abi``) to probe the host.

Protocol with the supervisor (``argv[1]`` is a JSON object, ``argv[2:]`` is the job's argv):

    {"status_fd": N,              # write end of the status pipe
     "event_fd": [SRC, DST],      # the event pipe arrives as SRC and must be DST for the job
     "landlock": {"required": bool, "ro": [dir...], "rw": [dir...], "dev": [file...],
                  "net": bool, "scope": bool}}

On the status pipe the shim writes ``started`` first, then either nothing (the exec worked:
the descriptor is close-on-exec) or one ``error: <text>`` line before exiting with 126/127.
The supervisor turns that line into ``reason="error"`` with the text as the message, so a
broken sandbox never looks like a failing job.

Descriptors: the job receives exactly 0, 1, 2 and the event descriptor; every other inherited
descriptor (bwrap's argument and data descriptors, anything leaked) is closed here.

Landlock (https://docs.kernel.org/userspace-api/landlock.html): everything visible is
read-only (read, list, execute), the job dir and the private /tmp and /dev/shm are writable,
the listed device nodes may be read, written and ioctl'ed (GPUs). TCP bind/connect are denied
(ABI >= 4) and, from ABI 6, abstract Unix sockets and signals cannot cross the domain. The
mount view already gives the same picture; Landlock makes it hold even if a bind were
writable by mistake, and it is the layer that stops writes to the sandbox's own tmpfs /dev.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

# Syscall numbers are the same on every architecture (the generic table): 444-446.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

# Rights that make sense on a regular file / device node (anything else is EINVAL there).
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
_READ_ONLY = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel struct is __attribute__((packed)): 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockError(OSError):
    """Landlock was required but could not be applied."""


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    try:
        r = _libc().syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            None,
            ctypes.c_size_t(0),
            ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
        )
    except (OSError, AttributeError):
        return 0
    return int(r) if r > 0 else 0


def handled_fs(abi: int) -> int:
    """Every filesystem right this ABI knows: unhandled rights would stay allowed."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def apply_landlock(
    ro: list[str], rw: list[str], dev: list[str], *, net: bool = True, scope: bool = True
) -> int:
    """Restrict this process (and everything it execs or forks) for good. Returns the ABI used.

    ``ro`` directories get read/list/execute, ``rw`` directories get every right, ``dev`` files
    get read/write/truncate/ioctl. Paths that do not exist are skipped (a job without GPUs has
    no /dev/nvidia*). Requires no_new_privs, which the supervisor set before bwrap.
    """
    abi = landlock_abi()
    if abi < 1:
        raise LandlockError(0, "Landlock is not supported or not enabled by this kernel")
    libc = _libc()
    fs = handled_fs(abi)
    attr = _RulesetAttr(fs, 0, 0)
    # The struct grew with the ABI; the kernel rejects a size it does not know.
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    if abi >= 4 and net:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP  # no rule: no TCP at all
    if abi >= 6 and scope:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    ruleset = libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        for paths, rights in ((ro, _READ_ONLY), (rw, fs), (dev, _FILE_RIGHTS)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                try:
                    allowed = rights & fs
                    if not os.path.isdir(path):
                        allowed &= _FILE_RIGHTS
                    rule = _PathBeneathAttr(allowed, fd)
                    if (
                        libc.syscall(
                            SYS_LANDLOCK_ADD_RULE,
                            ctypes.c_int(ruleset),
                            ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                            ctypes.byref(rule),
                            ctypes.c_uint32(0),
                        )
                        != 0
                    ):
                        err = ctypes.get_errno()
                        raise LandlockError(err, f"landlock_add_rule({path}): {os.strerror(err)}")
                finally:
                    os.close(fd)
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise LandlockError(err, f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(ruleset)
    return abi


def _setup_fds(status_fd: int, event: list[int] | None) -> int:
    """Leave exactly 0, 1, 2, the event descriptor and the (close-on-exec) status descriptor.

    The supervisor's descriptor numbers are arbitrary, so the status descriptor is first moved
    out of the way of the event descriptor's target number. Returns the new status descriptor.
    """
    import fcntl

    keep = {0, 1, 2}
    status = fcntl.fcntl(status_fd, fcntl.F_DUPFD_CLOEXEC, 3)
    if event is not None:
        src, dst = int(event[0]), int(event[1])
        if status == dst:
            status = fcntl.fcntl(status, fcntl.F_DUPFD_CLOEXEC, dst + 1)
        if src != dst:
            os.dup2(src, dst, inheritable=True)
        else:
            os.set_inheritable(dst, True)
        keep.add(dst)
    keep.add(status)
    try:
        open_fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 4096))
    for fd in open_fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    return status


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[1])
    job = argv[2:]
    status = int(cfg["status_fd"])
    os.write(status, b"started\n")
    status = _setup_fds(status, cfg.get("event_fd"))

    def fail(code: int, text: str) -> int:
        os.write(status, b"error: " + text.replace("\n", " ").encode(errors="replace") + b"\n")
        return code

    ll = cfg.get("landlock") or {}
    if ll:
        try:
            apply_landlock(
                ll.get("ro", []),
                ll.get("rw", []),
                ll.get("dev", []),
                net=bool(ll.get("net", True)),
                scope=bool(ll.get("scope", True)),
            )
        except OSError as e:
            if ll.get("required", True):
                return fail(126, f"Landlock could not be applied: {e}")
    if not job:
        return fail(127, "no command to run")
    try:
        os.execvp(job[0], job)
    except OSError as e:
        return fail(127, f"cannot execute {job[0]!r}: {e.strerror or e}")
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
