"""System metrics of one job, sampled by its supervisor and logged on the job's run.

What is measured is the job alone, never the worker or another job:

* the job's cgroup when it has one (``source = "cgroup-v2"`` / ``"cgroup-v1"``): CPU from
  ``cpu.stat`` ``usage_usec`` (v1 ``cpuacct.usage``), memory from ``memory.current`` and
  ``memory.stat`` ``anon`` (v1 ``memory.usage_in_bytes`` and ``total_rss``), the peak from
  ``memory.peak`` (v1 ``memory.max_usage_in_bytes``), read/write bytes from ``io.stat``
  (v1 has no io controller for jobs: the ``/proc/<pid>/io`` of the group's processes);
* otherwise (``source = "proc"``) the sum of ``/proc/<pid>/{stat,status,io}`` over the
  process tree under the sandbox's first process;
* with GPUs, NVML (``nvidia-ml-py``, optional) for the job's reserved GPUs only, matched by
  the device's minor number (``/dev/nvidia<N>``, the index the reservation names).

Keys (the SDK's ``system/`` namespace, so the run page's System tab shows them):
``system/process_cpu_percent`` (the job, 100 = one core), ``system/cpu_percent`` (the job's
share of the CPUs it was given, 0..100), ``system/memory_rss_mb``, ``system/memory_used_mb``
(cgroup charge incl. page cache), ``system/memory_peak_mb``, ``system/disk_read_mb`` and
``system/disk_write_mb`` (cumulative), ``system/gpu{i}/util_percent``,
``system/gpu{i}/memory_mb``, ``system/gpu{i}/power_w``. Every source is optional: what
cannot be read is left out, never raised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MB = 1024 * 1024
FIRST_SAMPLE_S = 1.0


# --- parsers (pure: text in, numbers out) ------------------------------------------------------


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.stat, /proc/<pid>/io with its colons)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def parse_io_stat(text: str) -> tuple[int, int]:
    """cgroup v2 ``io.stat`` (``MAJ:MIN rbytes=.. wbytes=.. rios=..`` per device), summed."""
    rbytes = wbytes = 0
    for line in text.splitlines():
        for field in line.split()[1:]:
            name, _, value = field.partition("=")
            with contextlib.suppress(ValueError):
                if name == "rbytes":
                    rbytes += int(value)
                elif name == "wbytes":
                    wbytes += int(value)
    return rbytes, wbytes


def parse_proc_stat(text: str) -> tuple[int, int, int]:
    """``/proc/<pid>/stat`` → (ppid, cpu ticks, start time): utime + stime + the reaped
    children's cutime + cstime, so that a tree's total does not drop when a child exits."""
    fields = text.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces or ")"
    ticks = sum(int(x) for x in fields[11:15])
    return int(fields[1]), ticks, int(fields[19])


def parse_status_rss_kb(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None  # a kernel thread or a zombie


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def process_tree(root: int, proc: Path) -> dict[int, tuple[int, int]]:
    """``{pid: (cpu ticks, start time)}`` for ``root`` and all its descendants."""
    stats: dict[int, tuple[int, int, int]] = {}
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            text = _read(entry / "stat")
            if text:
                with contextlib.suppress(ValueError, IndexError):
                    stats[int(entry.name)] = parse_proc_stat(text)
    if root not in stats:
        return {}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out[pid] = stats[pid][1:]
        todo += children.get(pid, [])
    return out


# --- GPUs ---------------------------------------------------------------------------------------


def load_nvml() -> Any | None:
    """The ``pynvml`` module, initialised, or None (not installed, no driver)."""
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no NVML here: no GPU metrics
        return None
    return pynvml


def gpu_handles(nvml: Any, indices: Iterable[int]) -> dict[int, Any]:
    """NVML handles of the GPUs with these ``/dev/nvidia<N>`` minor numbers, and no others."""
    want = {int(i) for i in indices}
    out: dict[int, Any] = {}
    for n in range(nvml.nvmlDeviceGetCount()):
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(n)
            minor = int(nvml.nvmlDeviceGetMinorNumber(h))
        except Exception:  # noqa: BLE001
            continue
        if minor in want:
            out[minor] = h
    return out


def gpu_sample(nvml: Any, handles: dict[int, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for i, h in sorted(handles.items()):
        reads: list[tuple[str, Callable[[], float]]] = [
            ("util_percent", lambda h=h: float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)),
            ("memory_mb", lambda h=h: nvml.nvmlDeviceGetMemoryInfo(h).used / MB),
            ("power_w", lambda h=h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
        ]
        for name, read in reads:
            try:
                out[f"system/gpu{i}/{name}"] = round(read(), 2)
            except Exception:  # noqa: BLE001 - not supported on this board
                pass
    return out


# --- the sampler --------------------------------------------------------------------------------


class JobSystemSampler:
    """``sample()`` → the job's metrics now (CPU figures need two samples: the first call
    sets their baseline). ``cgroup``: a ``workers.sandbox.cgroups.JobCgroup`` or None;
    ``root_pid``: the job's first process (the /proc fallback's tree root)."""

    def __init__(
        self,
        *,
        cgroup: Any = None,
        root_pid: int | None = None,
        cpus: float = 1.0,
        gpus: Iterable[int] = (),
        proc: str | os.PathLike = "/proc",
        nvml: Any = None,
    ) -> None:
        self.cgroup = cgroup
        self.root_pid = root_pid
        self.cpus = max(float(cpus or 1.0), 0.001)
        self.proc = Path(proc)
        self._ticks = os.sysconf("SC_CLK_TCK")
        version = getattr(cgroup, "version", None)
        self.source = f"cgroup-{version}" if version in ("v1", "v2") else "proc"
        self.nvml = nvml
        self.gpu_handles: dict[int, Any] = {}
        if gpus and nvml is not None:
            try:
                self.gpu_handles = gpu_handles(nvml, gpus)
            except Exception:  # noqa: BLE001
                log.debug("NVML: no handles", exc_info=True)
        self._last_cpu: tuple[float, float] | None = None  # (cpu seconds, monotonic)
        self._io_seen: dict[tuple[int, int], tuple[int, int]] = {}  # (pid, start) -> r, w

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        parts = [self._from_cgroup if self.source != "proc" else self._from_proc]
        if self.gpu_handles:
            parts.append(lambda: gpu_sample(self.nvml, self.gpu_handles))
        for part in parts:
            try:
                out.update(part())
            except Exception:  # noqa: BLE001 - a sampler must never disturb the job
                log.debug("job system metrics failed", exc_info=True)
        return out

    def _cpu(self, seconds: float | None) -> dict[str, float]:
        if seconds is None:
            return {}
        now = time.monotonic()
        last, self._last_cpu = self._last_cpu, (seconds, now)
        if last is None or now <= last[1]:
            return {}
        pct = max(0.0, 100.0 * (seconds - last[0]) / (now - last[1]))
        return {
            "system/process_cpu_percent": round(pct, 2),
            "system/cpu_percent": round(min(100.0, pct / self.cpus), 2),
        }

    def _io_of(self, pids: Iterable[tuple[int, int]]) -> dict[str, float]:
        """Read/write bytes of these processes, each one's last value kept after it exits."""
        for pid, start in pids:
            kv = parse_flat_keyed(_read(self.proc / str(pid) / "io") or "")
            if "read_bytes" in kv:
                self._io_seen[(pid, start)] = (kv["read_bytes"], kv.get("write_bytes", 0))
        if not self._io_seen:
            return {}
        return {
            "system/disk_read_mb": round(sum(r for r, _ in self._io_seen.values()) / MB, 3),
            "system/disk_write_mb": round(sum(w for _, w in self._io_seen.values()) / MB, 3),
        }

    def _start_of(self, pid: int) -> int:
        text = _read(self.proc / str(pid) / "stat")
        try:
            return parse_proc_stat(text)[2] if text else -1
        except (ValueError, IndexError):
            return -1

    def _from_cgroup(self) -> dict[str, float]:
        out: dict[str, float] = {}
        dirs = self.cgroup.dirs
        if self.source == "cgroup-v2":
            d = Path(dirs["unified"])
            usec = parse_flat_keyed(_read(d / "cpu.stat") or "").get("usage_usec")
            out.update(self._cpu(usec / 1e6 if usec is not None else None))
            used, peak = _read_int(d / "memory.current"), _read_int(d / "memory.peak")
            rss = parse_flat_keyed(_read(d / "memory.stat") or "").get("anon")
            io = _read(d / "io.stat")
            if io is not None:
                r, w = parse_io_stat(io)
                out["system/disk_read_mb"] = round(r / MB, 3)
                out["system/disk_write_mb"] = round(w / MB, 3)
        else:
            acct, mem = dirs.get("cpuacct"), dirs.get("memory")
            ns = _read_int(Path(acct) / "cpuacct.usage") if acct else None
            out.update(self._cpu(ns / 1e9 if ns is not None else None))
            used = _read_int(Path(mem) / "memory.usage_in_bytes") if mem else None
            peak = _read_int(Path(mem) / "memory.max_usage_in_bytes") if mem else None
            stat = parse_flat_keyed(_read(Path(mem) / "memory.stat") or "") if mem else {}
            rss = stat.get("total_rss", stat.get("rss"))
            io = None
        for key, value in (
            ("system/memory_rss_mb", rss),
            ("system/memory_used_mb", used),
            ("system/memory_peak_mb", peak),
        ):
            if value is not None:
                out[key] = round(value / MB, 2)
        if io is None:
            out.update(self._io_of((p, self._start_of(p)) for p in self.cgroup.pids()))
        return out

    def _from_proc(self) -> dict[str, float]:
        if self.root_pid is None:
            return {}
        tree = process_tree(self.root_pid, self.proc)
        if not tree:
            return {}
        out = self._cpu(sum(t for t, _ in tree.values()) / self._ticks)
        rss_kb = 0
        for pid in tree:
            rss_kb += parse_status_rss_kb(_read(self.proc / str(pid) / "status") or "") or 0
        out["system/memory_rss_mb"] = round(rss_kb / 1024, 2)
        out.update(self._io_of((pid, start) for pid, (_, start) in tree.items()))
        return out


class JobSystemThread:
    """Samples every ``interval_s`` seconds and hands each sample to ``emit`` (the run's
    ``log`` with a step of milliseconds since the start, as the SDK's system metrics do).
    Nothing it does can fail the job: every error is logged and the loop goes on."""

    def __init__(
        self, sampler: JobSystemSampler, emit: Callable[[dict, int], None], interval_s: float
    ) -> None:
        self.sampler, self.emit, self.interval_s = sampler, emit, float(interval_s)
        self.samples = 0
        self._stop = threading.Event()
        self._t0 = time.time()
        self._thread = threading.Thread(target=self._loop, name="job-system-metrics", daemon=True)

    def start(self) -> JobSystemThread:
        self._thread.start()
        return self

    def _once(self) -> None:
        try:
            values = self.sampler.sample()
            if values:
                self.emit(values, max(0, int((time.time() - self._t0) * 1000)))
                self.samples += 1
        except Exception:  # noqa: BLE001
            log.warning("job system metrics: a sample was lost", exc_info=True)

    def _loop(self) -> None:
        # The CPU baseline now (not logged: the job is only starting), the first sample after
        # at most a second (a job shorter than the interval still gets one), then every interval.
        with contextlib.suppress(Exception):
            self.sampler.sample()
        wait = min(self.interval_s, FIRST_SAMPLE_S)
        while not self._stop.wait(wait):
            self._once()
            wait = self.interval_s

    def stop(self) -> None:
        """Stop, with one last sample (the job has usually exited by then: its memory is
        gone, its peak and I/O totals are final)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._once()
