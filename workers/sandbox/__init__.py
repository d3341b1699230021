"""The job sandbox and GPU slot allocation (pure Python; no Django). See README.md.

from workers.sandbox import PYTHON, Sandbox, SandboxSpec, probe

spec = SandboxSpec(argv=[PYTHON, "-m", "workers.moe.train", "--config", "/job/config.json",
                         "--out", "/job/out", "--event-fd", "3"],
                   job_dir=Path("/srv/hub/jobs/42"), memory_bytes=8 << 30, wall_time_s=3600)
with Sandbox(spec) as sb:
    sb.start()
    for line in sb.events():      # raw JSON lines from inside, max 64 KiB each
        ...
    result = sb.wait()            # result.reason, result.message, ...
"""

from workers.sandbox.gpu import GpuSlots, NoGpuAvailable, discover_gpus
from workers.sandbox.probe import SandboxUnavailable, probe
from workers.sandbox.sandbox import Sandbox, reap_stale
from workers.sandbox.spec import (
    JOB_MOUNT,
    PYTHON,
    REASONS,
    PythonRuntime,
    SandboxConfig,
    SandboxResult,
    SandboxSpec,
    default_hidden_paths,
)
from workers.sandbox.uids import NoUidAvailable

__all__ = [
    "JOB_MOUNT",
    "PYTHON",
    "REASONS",
    "GpuSlots",
    "NoGpuAvailable",
    "NoUidAvailable",
    "PythonRuntime",
    "Sandbox",
    "SandboxConfig",
    "SandboxResult",
    "SandboxSpec",
    "SandboxUnavailable",
    "default_hidden_paths",
    "discover_gpus",
    "probe",
    "reap_stale",
]
