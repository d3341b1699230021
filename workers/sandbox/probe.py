"""``probe()``: which isolation layers this host offers. The worker logs it at start and refuses
to run jobs while a mandatory layer is missing (unless explicitly told to run degraded).

Mandatory, never degradable (without them there is no sandbox at all): running as root (to
create cgroups and drop to per-job uids), bubblewrap, unprivileged user namespaces (bwrap
runs as the job's uid), ``setpriv``, ``prlimit``, ``unshare`` and ``mount`` (util-linux).
Mandatory but degradable with ``allow_degraded=True`` (the job still runs, the result lists
what was skipped): seccomp (libseccomp), Landlock, cgroup memory+pids controllers.
Informational: the cgroup cpu controller, Landlock's network rules (ABI >= 4) and scopes
(ABI >= 6).
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from typing import Any

from workers.sandbox import seccomp
from workers.sandbox._shim import landlock_abi
from workers.sandbox.cgroups import detect_layout

#: A fixed, root-owned search path for the tools the sandbox execs as root: the supervisor's
#: own PATH could name a writable directory.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS = ("bwrap", "setpriv", "prlimit", "unshare", "mount")
PROBE_UID = 65534  # nobody: only used to check that an unprivileged bwrap works

HARD = ("root", "bwrap", "userns", "setpriv", "prlimit", "unshare", "mount")
DEGRADABLE = ("seccomp", "landlock", "cgroup")


class SandboxUnavailable(RuntimeError):
    """A mandatory isolation layer is missing on this host: no job may run."""


def tool(name: str) -> str | None:
    return shutil.which(name, path=SYSTEM_PATH)


def system_binds() -> list[str]:
    """bwrap arguments for the read-only system: /usr, and /bin /sbin /lib* as on the host
    (symlinks into /usr on merged-/usr systems, read-only binds otherwise)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = "/" + name
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    return args


def _bwrap_version(bwrap: str) -> str | None:
    try:
        out = subprocess.run(
            [bwrap, "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            env={"PATH": SYSTEM_PATH},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().split()[-1] if out.returncode == 0 and out.stdout else None


def _userns_check(bwrap: str, setpriv: str | None) -> str | None:
    """Run a trivial unprivileged bwrap the way jobs run. None when it works, else why not."""
    cmd = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        *system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "true",
    ]
    if os.geteuid() == 0:
        if setpriv is None:
            return "setpriv is missing"
        cmd = [
            setpriv,
            f"--reuid={PROBE_UID}",
            f"--regid={PROBE_UID}",
            "--clear-groups",
            "--no-new-privs",
            "--",
            *cmd,
        ]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=20, env={"PATH": SYSTEM_PATH}, cwd="/"
        )
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    if out.returncode != 0:
        return (out.stderr.strip() or f"exit code {out.returncode}")[-300:]
    return None


@functools.cache
def _probe() -> dict[str, Any]:
    r: dict[str, Any] = {"kernel": platform.release(), "root": os.geteuid() == 0}
    paths = {name: tool(name) for name in TOOLS}
    r["tools"] = paths
    bwrap = paths["bwrap"]
    r["bwrap"] = {"path": bwrap, "version": _bwrap_version(bwrap) if bwrap else None}
    err = _userns_check(bwrap, paths["setpriv"]) if bwrap else "bwrap is missing"
    r["userns"] = {"ok": err is None, "error": err}
    version = seccomp.libseccomp_version()
    seccomp_err = None
    if version is not None:
        try:
            seccomp.build_filter()
        except seccomp.SeccompUnavailable as e:
            seccomp_err = str(e)
    r["seccomp"] = {
        "libseccomp": version,
        "ok": version is not None and seccomp_err is None,
        "error": seccomp_err,
    }
    abi = landlock_abi()
    r["landlock"] = {"abi": abi, "fs": abi >= 1, "net": abi >= 4, "scope": abi >= 6}
    layout = detect_layout()
    r["cgroup"] = {
        "version": layout.version,
        "controllers": list(layout.controllers()),
        "v2_root": str(layout.v2_root) if layout.v2_root else None,
        "v2_controllers": list(layout.v2_controllers),
        "v1_roots": {k: str(v) for k, v in layout.v1_roots.items()},
    }
    present = {
        "root": r["root"],
        "bwrap": bwrap is not None and r["bwrap"]["version"] is not None,
        "userns": err is None,
        "setpriv": paths["setpriv"] is not None,
        "prlimit": paths["prlimit"] is not None,
        "unshare": paths["unshare"] is not None,
        "mount": paths["mount"] is not None,
        "seccomp": r["seccomp"]["ok"],
        "landlock": abi >= 1,
        "cgroup": layout.version is not None,
    }
    r["missing"] = [k for k in HARD if not present[k]]
    r["degraded"] = [k for k in DEGRADABLE if not present[k]]
    r["notes"] = []
    if layout.version and "cpu" not in layout.controllers():
        r["notes"].append("cgroup cpu controller missing: no CPU quota (rlimits still apply)")
    if 1 <= abi < 4:
        r["notes"].append(f"Landlock ABI {abi}: no TCP rules (seccomp still blocks inet)")
    r["ok"] = not r["missing"] and not r["degraded"]
    return r


def probe(*, refresh: bool = False) -> dict[str, Any]:
    """The host's isolation layers (cached; ``refresh=True`` probes again). Keys: ``ok``,
    ``missing`` (hard requirements absent), ``degraded`` (degradable layers absent), ``notes``,
    and one entry per layer with its details."""
    if refresh:
        _probe.cache_clear()
    return dict(_probe())


def require(*, allow_degraded: bool = False) -> dict[str, Any]:
    """The probe, or SandboxUnavailable with a sentence saying what is missing and why it
    matters."""
    r = probe()
    if r["missing"]:
        details = []
        for k in r["missing"]:
            if k == "userns":
                details.append(f"unprivileged user namespaces ({r['userns']['error']})")
            elif k == "root":
                details.append("root (cgroups and per-job uids need it)")
            else:
                details.append(k)
        raise SandboxUnavailable(
            "refusing to run jobs: mandatory sandbox layers are missing: " + "; ".join(details)
        )
    if r["degraded"] and not allow_degraded:
        raise SandboxUnavailable(
            "refusing to run jobs: sandbox layers missing: "
            + ", ".join(r["degraded"])
            + " (install them, or set allow_degraded to run with weaker isolation)"
        )
    return r
