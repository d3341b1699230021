"""The seccomp filter: a classic BPF program built with libseccomp (through ctypes).

bwrap loads it (``--seccomp FD``) right before it execs the sandbox's first process, after
no_new_privs is set, so it binds the shim, the job and every descendant; a filter can never be
removed. Default action: allow. The denied calls return an errno instead of killing the
process, so the job gets an ordinary, readable error ("Operation not permitted") and the
supervisor can report it, rather than a mysterious SIGSYS.

What is denied and why (each line is a way out of, or under, the other layers):

- ``socket``/``socketpair`` for every family except AF_UNIX: no IPv4/IPv6 (even on the
  sandbox's empty loopback), no AF_PACKET (raw frames), no AF_NETLINK (kernel interfaces), no
  AF_VSOCK, AF_BLUETOOTH... Unix sockets stay (multiprocessing needs them); the filesystem view
  holds no service socket and Landlock scopes abstract ones.
- ``ptrace``, ``process_vm_readv/writev``, ``pidfd_getfd``, ``kcmp``: no reading or steering
  another process (the supervisor is not even visible: separate PID namespace).
- ``clone``/``unshare`` with any CLONE_NEW* flag, ``setns``; ``clone3`` answers ENOSYS (its
  flags are behind a pointer seccomp cannot read; glibc then falls back to ``clone``): no new
  user namespace, which would hand the job a fresh set of capabilities and the kernel attack
  surface that comes with them (bwrap's ``--disable-userns`` is the second lock on that door).
- ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``: large kernel attack surface,
  frequent source of privilege escalations, not needed by training code.
- ``mount`` and the new mount API, ``umount2``, ``pivot_root``, ``chroot``: no changing the
  filesystem view.
- ``keyctl``, ``add_key``, ``request_key``: the kernel keyring is not namespaced.
- module loading, ``kexec_*``, ``reboot``, ``swapon/off``, ``syslog``, ``acct``, quota, clock
  setting, ``iopl``/``ioperm``, ``open_by_handle_at``, ``name_to_handle_at``, ``lookup_dcookie``,
  ``vhangup``: administration calls (most also need capabilities the job lacks; denying them
  here does not depend on that).
- ``ioctl(TIOCSTI)`` / ``ioctl(TIOCLINUX)``: typing into a terminal (also defeated by
  ``--new-session``).

Only the native architecture is allowed; a 32-bit syscall (``int 0x80``) from a 64-bit process
hits libseccomp's bad-architecture action and kills the process (there is no legitimate use).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import socket

SCMP_ACT_ALLOW = 0x7FFF0000


def SCMP_ACT_ERRNO(e: int) -> int:  # noqa: N802 - the libseccomp macro's name
    return 0x00050000 | (e & 0xFFFF)


SCMP_CMP_NE = 1
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (
    CLONE_NEWTIME,
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
)
TIOCSTI = 0x5412
TIOCLINUX = 0x541C

DENIED_SYSCALLS = (
    # other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    # namespaces
    "setns",
    # kernel attack surface
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    # the filesystem view
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # keyrings
    "keyctl",
    "add_key",
    "request_key",
    # administration
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "acct",
    "quotactl",
    "quotactl_fd",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "vhangup",
    "uselib",
    "nfsservctl",
    "_sysctl",
    "fanotify_init",
)


class SeccompUnavailable(RuntimeError):
    """libseccomp could not be loaded or refused the filter."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@functools.cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise SeccompUnavailable(
            f"libseccomp is not installed ({e}); install the Debian package libseccomp2"
        ) from e
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


def libseccomp_version() -> str | None:
    """ "2.5.4", or None when libseccomp is missing."""
    try:
        v = _lib().seccomp_version().contents
    except (SeccompUnavailable, AttributeError):
        return None
    return f"{v.major}.{v.minor}.{v.micro}"


def _add(
    lib: ctypes.CDLL, ctx: int, action: int, name: str, conds: list[tuple[int, int, int, int]] = ()
) -> bool:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        return False  # not a syscall on this architecture (umount, _sysctl...): nothing to deny
    arr = (_ArgCmp * max(1, len(conds)))(*[_ArgCmp(*c) for c in conds])
    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(conds), arr)
    if rc != 0:
        raise SeccompUnavailable(f"seccomp_rule_add({name}): {os.strerror(-rc)}")
    return True


@functools.cache
def build_filter() -> bytes:
    """The compiled BPF program (``struct sock_filter[]``, native byte order), built once."""
    lib = _lib()
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    eperm = SCMP_ACT_ERRNO(errno.EPERM)
    try:
        for name in DENIED_SYSCALLS:
            _add(lib, ctx, eperm, name)
        for name in ("socket", "socketpair"):
            _add(lib, ctx, eperm, name, [(0, SCMP_CMP_NE, socket.AF_UNIX, 0)])
        for flag in NAMESPACE_FLAGS:
            for name in ("clone", "unshare"):
                _add(lib, ctx, eperm, name, [(0, SCMP_CMP_MASKED_EQ, flag, flag)])
        _add(lib, ctx, SCMP_ACT_ERRNO(errno.ENOSYS), "clone3")
        for req in (TIOCSTI, TIOCLINUX):
            _add(lib, ctx, eperm, "ioctl", [(1, SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, req)])
        # Export through a memfd: libseccomp writes to a descriptor, we want bytes.
        fd = os.memfd_create("hub-seccomp", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc != 0:
                raise SeccompUnavailable(f"seccomp_export_bpf: {os.strerror(-rc)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, 0, os.SEEK_SET)
            data = b""
            while len(data) < size:
                chunk = os.read(fd, size - len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    if not data or len(data) % 8:
        raise SeccompUnavailable("libseccomp produced an empty or malformed program")
    return data
