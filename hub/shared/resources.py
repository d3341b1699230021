"""A job's resource requests: their keys, defaults and bounds, shared by the hub (which
validates what a launcher asks for and stores the result with every key filled in) and the
job supervisor (which turns the stored requests into sandbox limits).

Keys, defaults and bounds (inclusive):

* ``gpus``: 0, a whole number in 0..16;
* ``cpus``: 1, in 0.1..256;
* ``memory_mb``: 4096, in 64..4 TiB;
* ``time_limit_s``: 3600 (wall clock), in 1 s..7 days;
* ``disk_mb``: the job's disk quota (its folder, /tmp and /dev/shm each). The hub's default
  and maximum are settings (``HUB_JOB_DISK_MB``, ``HUB_JOB_MAX_DISK_MB``) passed in by the
  caller; :data:`DEFAULT_DISK_MB` is what a job stored before ``disk_mb`` existed gets.
"""

from __future__ import annotations

from typing import Any

MAX_TIME_LIMIT_S = 7 * 24 * 3600
DEFAULT_DISK_MB = 10 * 1024
MAX_DISK_MB = 1024 * 1024

DEFAULTS: dict[str, int | float] = {
    "gpus": 0,
    "cpus": 1,
    "memory_mb": 4096,
    "time_limit_s": 3600,
    "disk_mb": DEFAULT_DISK_MB,
}
BOUNDS: dict[str, tuple[int | float, int | float]] = {
    "gpus": (0, 16),
    "cpus": (0.1, 256),
    "memory_mb": (64, 4 * 1024 * 1024),
    "time_limit_s": (1, MAX_TIME_LIMIT_S),
    "disk_mb": (16, MAX_DISK_MB),
}


class ResourcesRefused(ValueError):
    """Resource requests the rule refuses (``code="invalid_resources"``); ``details`` lists
    every problem as ``{"path": "resources.<key>", "message": ...}``."""

    def __init__(self, message: str, *, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = "invalid_resources"
        self.details = details


def with_defaults(res: dict | None, *, disk_mb: int = DEFAULT_DISK_MB) -> dict[str, Any]:
    """``res`` with every missing (or null) key set to its default; no validation (the
    supervisor reads requests the hub validated when it stored them)."""
    res = res or {}
    out = {k: res[k] if res.get(k) is not None else v for k, v in DEFAULTS.items()}
    if res.get("disk_mb") is None:
        out["disk_mb"] = disk_mb
    return out


def check_resources(
    raw: Any, *, disk_mb: int = DEFAULT_DISK_MB, max_disk_mb: int = MAX_DISK_MB
) -> dict[str, Any]:
    """Validated requests with every key filled in (``gpus`` and ``disk_mb`` as ints);
    :class:`ResourcesRefused` listing every problem otherwise. ``disk_mb`` and ``max_disk_mb``:
    the deployment's default and maximum disk quota."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ResourcesRefused("'resources' must be an object.")
    out = {k: raw.get(k, v) for k, v in DEFAULTS.items()}
    if "disk_mb" not in raw:
        out["disk_mb"] = disk_mb
    problems = [
        {"path": f"resources.{key}", "message": f"unknown key (use {', '.join(out)})"}
        for key in sorted(set(raw) - set(out), key=str)
    ]
    bounds = {**BOUNDS, "disk_mb": (BOUNDS["disk_mb"][0], max_disk_mb)}
    for key, (lo, hi) in bounds.items():
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            problems.append(
                {"path": f"resources.{key}", "message": f"must be a number between {lo} and {hi}"}
            )
    if isinstance(out["gpus"], float) and not out["gpus"].is_integer():
        problems.append({"path": "resources.gpus", "message": "must be a whole number"})
    if problems:
        raise ResourcesRefused("Invalid resources.", details={"errors": problems})
    out["gpus"] = int(out["gpus"])
    out["disk_mb"] = int(out["disk_mb"])
    return out
