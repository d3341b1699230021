"""System metrics for a run: CPU, memory and GPU use, sampled by a thread of
:class:`hub.client.run.Run` and logged as ordinary ``system/`` metrics."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("hub.client")


class SystemSampler:
    """CPU, memory and (when ``nvidia-smi`` is present) GPU use, as ordinary ``system/``
    metrics. Reads ``/proc`` (Linux) for the machine and this process; no dependency.
    Every source is optional: whatever cannot be read is left out, never raised.

    Keys: ``system/cpu_percent`` (machine, 0..100), ``system/process_cpu_percent`` (this
    process, 100 = one core), ``system/memory_rss_mb`` (this process),
    ``system/memory_percent`` (machine, used = total - available), and per GPU ``i``
    ``system/gpu{i}/util_percent`` and ``system/gpu{i}/memory_mb``."""

    GPU_QUERY = ["--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"]

    def __init__(self, proc: str | os.PathLike = "/proc", nvidia_smi: str | None = None):
        import shutil

        self.proc = Path(proc)
        self.nvidia_smi = nvidia_smi if nvidia_smi is not None else shutil.which("nvidia-smi")
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last_machine: tuple[float, float] | None = None  # (busy, total) jiffies
        self._last_process: tuple[float, float] | None = None  # (cpu seconds, monotonic)
        self.sample()  # baselines for the CPU deltas

    def _read(self, *parts: str) -> str | None:
        try:
            return self.proc.joinpath(*parts).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in (self._machine_cpu, self._process_cpu, self._memory, self._gpus):
            try:
                out.update(part())
            except Exception:  # noqa: BLE001 - a sampler must never disturb the run
                log.debug("system metrics: %s failed", part.__name__, exc_info=True)
        return out

    def _machine_cpu(self) -> dict[str, float]:
        text = self._read("stat")
        if not text or not text.startswith("cpu "):
            return {}
        fields = [float(x) for x in text.split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
        total = sum(fields[:8])  # guest time is already counted in user
        last, self._last_machine = self._last_machine, (total - idle, total)
        if last is None or total <= last[1]:
            return {}
        return {
            "system/cpu_percent": round(100.0 * (total - idle - last[0]) / (total - last[1]), 2)
        }

    def _process_cpu(self) -> dict[str, float]:
        text = self._read("self", "stat")
        if not text:
            return {}
        fields = text.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
        cpu = (float(fields[11]) + float(fields[12])) / self._ticks  # utime + stime
        now = time.monotonic()
        last, self._last_process = self._last_process, (cpu, now)
        if last is None or now <= last[1]:
            return {}
        return {"system/process_cpu_percent": round(100.0 * (cpu - last[0]) / (now - last[1]), 2)}

    def _memory(self) -> dict[str, float]:
        out: dict[str, float] = {}
        status = self._read("self", "status") or ""
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                out["system/memory_rss_mb"] = round(float(line.split()[1]) / 1024, 2)
        info = {}
        for line in (self._read("meminfo") or "").splitlines():
            name, _, rest = line.partition(":")
            if name in ("MemTotal", "MemAvailable") and rest.split():
                info[name] = float(rest.split()[0])
        if info.get("MemTotal") and "MemAvailable" in info:
            out["system/memory_percent"] = round(
                100.0 * (1 - info["MemAvailable"] / info["MemTotal"]), 2
            )
        return out

    def _gpus(self) -> dict[str, float]:
        if not self.nvidia_smi:
            return {}
        import subprocess

        try:
            res = subprocess.run(
                [self.nvidia_smi, *self.GPU_QUERY], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.SubprocessError):
            self.nvidia_smi = None  # not going to work later either
            return {}
        if res.returncode != 0:
            return {}
        out: dict[str, float] = {}
        for line in res.stdout.splitlines():
            cols = [c.strip() for c in line.split(",")]
            if len(cols) != 3 or not cols[0].isdigit():
                continue
            for name, text in (("util_percent", cols[1]), ("memory_mb", cols[2])):
                try:
                    out[f"system/gpu{cols[0]}/{name}"] = float(text)
                except ValueError:  # "[N/A]" on some boards
                    pass
        return out
