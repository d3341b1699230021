"""Helpers for the sandbox tests: run a tiny Python script in a real sandbox and collect
everything (result, events, stdout). The sandbox needs root and bubblewrap; without them the
tests that launch jobs are skipped with the reason (the GPU-slot tests only need Redis)."""

from __future__ import annotations

import os
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from workers.sandbox import PYTHON, Sandbox, SandboxConfig, SandboxResult, SandboxSpec, probe

MiB = 1 << 20


def sandbox_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the sandbox needs root (cgroups, per-job uids): run the tests as root"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian package: bubblewrap)"
    r = probe()
    if r["missing"] or r["degraded"]:
        return f"sandbox layers missing on this host: {r['missing'] + r['degraded']}"
    return None


_SKIP = sandbox_skip_reason()
needs_sandbox = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


@dataclass
class Run:
    sandbox: Sandbox
    result: SandboxResult
    events: list[bytes]
    stdout: str
    stderr: str

    @property
    def uid(self) -> int:
        assert self.sandbox.uid is not None
        return self.sandbox.uid


def make_spec(tmp_path: Path, code: str, *, name: str = "job", **kw) -> SandboxSpec:
    kw.setdefault("wall_time_s", 30)
    kw.setdefault("memory_bytes", 512 * MiB)
    kw.setdefault("pids", 64)
    kw.setdefault("kill_grace_s", 1.0)
    return SandboxSpec(argv=[PYTHON, "-c", textwrap.dedent(code)], job_dir=tmp_path / name, **kw)


def run_job(
    tmp_path: Path,
    code: str,
    *,
    config: SandboxConfig | None = None,
    allow_degraded: bool = False,
    name: str = "job",
    **kw,
) -> Run:
    """Run ``code`` (``python -c``) in a sandbox; wait for the end; return everything."""
    sb = Sandbox(
        make_spec(tmp_path, code, name=name, **kw), config=config, allow_degraded=allow_degraded
    )
    with sb:
        sb.start()
        events = list(sb.events())
        res = sb.wait(timeout=120)
    out = res.stdout_path.read_text(errors="replace") if res.stdout_path else ""
    err = res.stderr_path.read_text(errors="replace") if res.stderr_path else ""
    return Run(sb, res, events, out, err)


def assert_failed(run: Run, *needles: str) -> None:
    """The job failed (not ok), and its message (what the user sees) says why."""
    res = run.result
    assert not res.ok, f"the job should have failed: {res}\nstdout: {run.stdout}"
    for n in needles:
        assert n in res.message, f"{n!r} not in the message {res.message!r}\n{run.stderr}"
