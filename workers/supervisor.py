"""The job supervisor: runs one job in the sandbox and is its only link to the world.

It runs in a Celery worker, outside the sandbox, and talks to the hub only through its API,
with :class:`hub.client.worker.WorkerClient` (it claims the job with the workers' service
credential, then uses the client on the credential that claim returns for this attempt alone;
neither enters the sandbox), so it works the same with the embedded stores and with servers,
on any host that reaches the hub's API and Redis. For one job it:

1. reads the job and reserves its GPUs (a lease held until the job is over), then takes it
   (queued → running; a job that is not queued any more is skipped and its GPUs released);
   too few free GPUs leave the job queued and untouched;
2. creates the job's tracker run (params = the config as typed; the job's ``config`` event
   adds its full resolved config) and pulls the base model, pinned to its commit id, into a
   read-only input folder;
3. starts the sandbox and reads the event stream: every line is size-checked, parsed and
   validated against the event schema (a malformed or oversized event is counted and
   logged, never trusted); metrics go to the run, log lines to the job's logs, progress to
   the job record (with each heartbeat, which also carries cancellation back);
4. after the process ends: weights become a registry commit on the target branch with the
   base commit as parent (compare-and-swap; if the branch moved meanwhile the commit goes to
   ``<target>/job-<id>`` and the job says so); profile outputs become job artifacts plus
   operator rows in ClickHouse; the run and the commit are linked both ways. Every file the
   job produced is opened beneath the job folder's handle, taken before the job ran, refusing
   links at every step and anything but a regular file (``workers.sandbox.jobfs``); the
   rest of this module gets open file objects, never a path into the job's folder;
5. reports succeeded / failed / cancelled with a reason a person can act on.

Infrastructure failures (the hub unreachable, the sandbox unable to start, the GPU lease
lost) raise :class:`InfrastructureError` after putting the job back in the queue (or before
taking it, where it still is), so the task retries it; too few free GPUs raise :class:`GpusBusy`
before the job is taken (it stays queued, nothing recorded). Failures of the job itself are
final. ``workers.tasks`` holds the retry policy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from hub.client import HubClientError, HubUnreachable
from hub.client.worker import WorkerClient
from hub.shared.chunking import chunk_file
from hub.shared.paths import path_problems
from hub.shared.resources import with_defaults

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
MAX_EVENT_BYTES = 64 * 1024
HEARTBEAT_S = 2.0
# A GPU reservation is a lease in Redis, refreshed every GPU_LEASE_TTL_S/3 s while the job
# runs; a worker that dies stops refreshing and its GPUs come free after this long.
GPU_LEASE_TTL_S = 60.0
ENTRY = {
    "train": "train",
    "finetune": "finetune",
    "evaluate": "evaluate",
    "profile": "profile",
    "quantize": "quantize",
    "inspect": "inspect",
}
MAX_FILE_BYTES = 16 << 30
# A JSON output the supervisor parses itself (eval results, profile tables) is read into memory.
MAX_OUTPUT_JSON_BYTES = 256 << 20
WEIGHT_KINDS = {"weights", "config", "adapter"}


class InfrastructureError(Exception):
    """Not the job's fault: retry it elsewhere or later."""


class GpusBusy(InfrastructureError):
    """Fewer free GPUs than the job asks for on this worker: raised before the job is taken,
    so it is still queued and waits there (not counted as an infrastructure failure)."""


def cpu_time_limit(time_limit_s: float, cpus: float) -> int:
    """RLIMIT_CPU for a job: what ``cpus`` CPUs can burn in its wall-clock limit, plus 10 %
    and a minute. A backstop (the cgroup's CPU quota limits the rate, the wall clock the
    total): it still binds where the cgroup cpu controller is missing, and a job cannot
    outlast its limit by burning CPU in a process that escaped the watchdog."""
    return math.ceil(round(float(time_limit_s) * max(float(cpus), 1.0) * 1.1, 6)) + 60


@dataclass
class EventCounters:
    received: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def reject(self, why: str) -> None:
        self.rejected += 1
        self.reasons[why] = self.reasons.get(why, 0) + 1


class LogForwarder:
    """Batches log lines (numbered per job, so retries collapse) and posts them every second."""

    def __init__(self, client: WorkerClient, job_id: str):
        self.client, self.job_id = client, job_id
        self.seq = 0
        self.buf: list[list] = []
        self.lock = threading.Lock()
        self.aliases: list[tuple[str, str]] = []

    def alias(self, host_path: Path | str, shown: str) -> None:
        """Show ``host_path`` as ``shown`` in every later line: a job's log names the paths the
        job sees (``/job``, ``/input``), never the worker's (an exception message that quotes
        the host's jobs folder would tell every reader of the log how the worker is laid out)."""
        with self.lock:
            self.aliases.append((str(host_path), shown))
            self.aliases.sort(key=lambda a: -len(a[0]))  # the longest (most specific) first

    def add(self, stream: str, text: str) -> None:
        with self.lock:
            for host, shown in self.aliases:
                text = text.replace(host, shown)
            for line in text.splitlines() or [""]:
                self.buf.append([self.seq, time.time(), stream, line[:16384]])
                self.seq += 1

    def flush(self) -> None:
        with self.lock:
            lines, self.buf = self.buf, []
        for i in range(0, len(lines), 5000):
            try:
                self.client.logs(self.job_id, lines[i : i + 5000])
            except HubClientError as e:
                log.warning(
                    "job %s: could not forward %d log line(s): %s",
                    self.job_id,
                    len(lines),
                    e.message,
                )


def profile_rows(table: dict) -> list[dict]:
    """The hub's operator rows from a profile's ``ops.json``: one per op and input shapes
    (``ops_by_shape``; the hub sums over shapes for its per-op table), or one per op with no
    shapes from a table written before shapes were recorded."""
    ops = table.get("ops_by_shape")
    if ops is None:
        ops = table["ops"]
    return [
        {
            "op": r["name"],
            "shapes": str(r.get("shapes") or ""),
            "calls": r["calls"],
            "self_us": r["self_cpu_us"] + r.get("self_device_us", 0),
            "total_us": r["cpu_total_us"] + r.get("device_total_us", 0),
            "flops": r.get("flops") or 0,
            "self_memory_bytes": r.get("self_cpu_memory_bytes", 0),
        }
        for r in ops
    ]


def validate_event(raw: bytes, counters: EventCounters) -> dict | None:
    from workers.moe.events import validate_event as schema_problems

    counters.received += 1
    if len(raw) > MAX_EVENT_BYTES:
        counters.reject("oversized")
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        counters.reject("not JSON")
        return None
    problems = schema_problems(obj)
    if problems:
        counters.reject("schema: " + problems[0][:120])
        return None
    return obj


def safe_output(folder, rel: str) -> BinaryIO | None:
    """A file the job says it produced, open for reading, only if ``out/<rel>`` resolves inside
    the job's folder (``folder``: a ``workers.sandbox.jobfs.JobFolder``) without a link at any
    depth (``out`` itself included, resolved now, beneath the handle taken before the job ran)
    and is a regular file; None otherwise. The supervisor runs as root: it reads the file
    object it got here, never the path again."""
    from workers.sandbox.jobfs import UnsafeJobFile, relative_parts

    try:
        relative_parts(rel)
        return folder.open(f"out/{rel}")
    except (UnsafeJobFile, OSError):
        return None


#: The request's watermark parameters, beside config.json in the job folder (an evaluate job
#: reads it and removes it: workers.moe.evaluate).
WATERMARK_FILE = "watermark.json"


class JobSupervisor:
    def __init__(
        self,
        job_id: str,
        *,
        client: WorkerClient,
        work_root: Path,
        hostname: str | None = None,
        gpu_slots=None,
        sandbox_factory=None,
        job_folder_factory=None,
        keep_failed_job_dirs: bool = False,
        system_interval_s: float = 5.0,
    ):
        self.job_id = job_id
        self.system_interval_s = system_interval_s  # the job's own system metrics; 0: none
        self.client = client  # the service credential's; the attempt's own once the job is started
        self.keep_failed_job_dirs = keep_failed_job_dirs
        self.work_root = Path(work_root)
        self.hostname = hostname or socket.gethostname()
        self.gpu_slots = gpu_slots
        self.sandbox_factory = sandbox_factory
        self.job_folder_factory = job_folder_factory
        self.folder = None  # the job's folder (workers.sandbox.jobfs.JobFolder) once made
        self.counters = EventCounters()
        self.progress: dict = {}
        self.summary: dict = {}
        self.error: str | None = None
        self.artifacts: list[tuple[str, str]] = []
        self.logs = LogForwarder(client, job_id)
        # The sandbox's names for the job's folders (see _run_sandbox), then the worker's own.
        self.logs.alias(self.work_root / job_id, "/job")
        self.logs.alias(self.work_root / f"{job_id}-input", "/input")
        self.logs.alias(self.work_root, "<jobs>")
        self.cancelled = threading.Event()
        self.sandbox = None
        self.first_event_at: float | None = None
        self.tracked_run = None
        self.gpu_lease_ttl_s = GPU_LEASE_TTL_S
        self.gpu_lease_lost = threading.Event()
        self.stopped_by_hub: str | None = None
        # The first MoE health alert whose configured action stopped the job (alert event).
        self.alert_stop: dict | None = None

    # --- plumbing ------------------------------------------------------------------------------

    def _hub(self, call, *args, **kw) -> Any:
        """``call(*args, **kw)`` on the hub; a hub out of reach is an infrastructure failure."""
        try:
            return call(*args, **kw)
        except HubUnreachable as e:
            raise InfrastructureError(f"the hub is unreachable: {e.message}") from e

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            self.logs.flush()
            try:
                state = self._hub(
                    self.client.heartbeat,
                    self.job_id,
                    progress=self.progress,
                    counters={
                        "received": self.counters.received,
                        "rejected": self.counters.rejected,
                    },
                )
            except HubClientError as e:
                if e.code == "job_credential_revoked" and self.stopped_by_hub is None:
                    # The attempt ended on the hub (marked lost, say): stop burning its resources.
                    self.stopped_by_hub = "ended (this attempt's credential was revoked)"
                    if self.sandbox is not None:
                        self.sandbox.cancel()
                log.warning("job %s: heartbeat failed: %s", self.job_id, e)
                continue
            except InfrastructureError as e:
                log.warning("job %s: heartbeat failed: %s", self.job_id, e)
                continue
            if state.get("cancel_requested") and not self.cancelled.is_set():
                self.cancelled.set()
                self.logs.add("supervisor", "cancellation requested: stopping the job")
                if self.sandbox is not None:
                    self.sandbox.cancel()
            elif state.get("status") not in (None, "running") and self.stopped_by_hub is None:
                # Marked lost (heartbeats were late) or ended by someone else: it may already
                # have been relaunched. Do not keep burning its resources or GPUs.
                self.stopped_by_hub = str(state["status"])
                self.logs.add(
                    "supervisor", f"the hub says the job is {state['status']}: stopping it"
                )
                if self.sandbox is not None:
                    self.sandbox.cancel()

    def _on_gpu_lease_lost(self) -> None:
        """Redis dropped the job's GPU reservation (unreachable for longer than the lease):
        another job may get these GPUs now, so this one must stop using them."""
        self.gpu_lease_lost.set()
        log.error("job %s: GPU lease lost; stopping the job", self.job_id)
        self.logs.add("supervisor", "the GPU reservation was lost; stopping the job")
        if self.sandbox is not None:
            self.sandbox.cancel()

    # --- the job -------------------------------------------------------------------------------

    def run(self) -> str:
        gpu_lease = (
            contextlib.ExitStack()
        )  # the GPU reservation: taken before the start, held until the job is over
        try:
            taken = self._take(gpu_lease)
        except BaseException:
            self._release_gpus(gpu_lease)  # never started: nothing to requeue, the task decides
            raise
        if taken is None:
            self._release_gpus(gpu_lease)
            return "skipped"
        job, gpus = taken
        self.job = job
        # The target branch's head when the job starts: the result's parent when there is no
        # base in that repo, and the compare-and-swap that detects a branch moving meanwhile.
        self.target_head = None
        if job["target"]:
            try:
                self.target_head = self.client.sdk.branch_info(
                    job["target"]["repo"], job["target"]["branch"]
                )["commit"]
            except HubClientError:
                self.target_head = None  # missing: created from the base when committing
        jobdir = self.work_root / self.job_id
        inputs = self.work_root / f"{self.job_id}-input"
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat_loop, args=(stop,), daemon=True)
        beat.start()
        status, reason, result = "failed", "", {}
        run = None
        try:
            if job["base"]:
                self.logs.add(
                    "supervisor", f"pulling {job['base']['repo']}@{job['base']['commit'][:12]}"
                )
                self.client.sdk.pull(f"{job['base']['repo']}@{job['base']['commit']}", inputs)
            status, reason, run = self._run_sandbox(
                job, jobdir, inputs if job["base"] else None, gpus
            )
            # checkpoint_stop: the job saved its weights before stopping on an alert
            alert_saved = (self.alert_stop or {}).get("action") == "checkpoint_stop"
            if status == "succeeded" or (status == "cancelled" and alert_saved):
                result = self._collect(job, run)
        except InfrastructureError as e:
            stop.set()
            self._release_gpus(gpu_lease)
            if self.tracked_run is not None:  # this attempt's run; a retry gets a new one
                with contextlib.suppress(Exception):
                    self.tracked_run.finish("failed", timeout=30)
            self.logs.add("supervisor", f"back to the queue: {e}")
            self.logs.flush()
            shutil.rmtree(inputs, ignore_errors=True)
            self._remove_folder()
            why = f"infrastructure failure on {self.hostname}: {e}"
            try:
                self._hub(self.client.requeue, self.job_id, reason=f"{why}; retrying"[:2000])
            except Exception as err:  # the task still retries (or fails the job when it gives up)
                log.warning("job %s: could not put the job back in the queue: %s", self.job_id, err)
            raise
        except HubClientError as e:
            status, reason = "failed", f"the hub refused a step of the job: {e.code}: {e.message}"
        except Exception as e:  # a bug here must still end the job with a reason
            log.exception("job %s: supervisor error", self.job_id)
            status, reason = "failed", f"supervisor error: {type(e).__name__}: {e}"
        finally:
            stop.set()
            self._release_gpus(gpu_lease)  # on every way out
        run = run or self.tracked_run
        if run is not None:
            run.finish(
                {"succeeded": "finished", "cancelled": "killed"}.get(status, "failed"), timeout=30
            )
        self.logs.add("supervisor", f"job {status}: {reason}")
        self.logs.flush()
        summary = {
            **self.summary,
            "events": {
                "received": self.counters.received,
                "rejected": self.counters.rejected,
                "rejected_reasons": self.counters.reasons,
                "first_event_at": self.first_event_at,
            },
            **result.get("summary", {}),
        }
        try:
            self._hub(
                self.client.finish,
                self.job_id,
                status=status,
                reason=reason,
                summary=summary,
                run_id=run.id if run else "",
                result_commit=result.get("commit", ""),
                result_branch=result.get("branch", ""),
            )
        except HubClientError as e:
            if e.code not in ("job_state_conflict", "job_credential_revoked"):
                raise
            # The hub ended the job meanwhile (marked lost, say): its state stands.
            log.warning(
                "job %s: the hub did not take the result (%s): %s", self.job_id, status, e.message
            )
        shutil.rmtree(inputs, ignore_errors=True)
        self._remove_folder(keep=status != "succeeded" and self.keep_failed_job_dirs)
        return status

    def _remove_folder(self, *, keep: bool = False) -> None:
        """Unmount and delete the job's folder (``keep``: leave its files, unmounted, for a
        person to look at: the folder's image is ``<folder>.disk``)."""
        if self.folder is None:
            return
        try:
            self.folder.remove(keep=keep)
        except Exception as e:  # a busy mount must not hide the job's result
            log.warning("job %s: could not remove its folder: %s", self.job_id, e)

    def _take(self, gpu_lease: contextlib.ExitStack) -> tuple[dict, list[int]] | None:
        """Reserve the job's GPUs, then take the job (queued → running): the job and its GPUs,
        or None when the job is not queued any more (another worker took it, it was cancelled).

        The GPUs come first: a GPU job that finds too few free ones raises :class:`GpusBusy`
        while it is still ``queued`` — no start, no attempt counted, no requeue, no transition —
        and its task tries again later. The caller releases ``gpu_lease`` if this raises or
        answers None."""
        want = self._hub(
            self.client.job, self.job_id
        )  # the job as its launcher sees it: status and resources
        if want.get("status") != "queued":
            log.info("job %s: not queued any more (%s); skipping", self.job_id, want.get("status"))
            return None
        n = int((want.get("resources") or {}).get("gpus") or 0)
        gpus = self._lease_gpus(gpu_lease, n) if n else []
        try:
            started = self._hub(self.client.start, self.job_id, worker=self.hostname, gpus=gpus)
        except HubClientError as e:
            if e.code == "job_state_conflict":
                log.info("job %s: not queued any more (%s); skipping", self.job_id, e.details)
                return None
            raise
        self._use_attempt_client(started.client)
        # An evaluate job's text-watermark parameters (secret key material): kept out of the
        # job dict (logged, sent as run params) and handed to the sandbox as a file only.
        self.watermark = started.job.pop("watermark", None)
        return started.job, gpus

    def _use_attempt_client(self, client: WorkerClient) -> None:
        """From the start on, every call for this job (worker endpoints, pull, run, commit) uses
        the attempt's own credential, not the workers' service credential, which can only claim
        jobs. It stays in this process: the sandbox's environment is scrubbed."""
        self.client = client
        self.logs.client = client

    def _lease_gpus(self, stack: contextlib.ExitStack, n: int) -> list[int]:
        """Reserve ``n`` GPUs for the whole job: the lease is refreshed in the background and
        released when ``stack`` closes; too few free GPUs raise :class:`GpusBusy` (taken before
        the job starts, so the job just stays in its queue)."""
        from workers.sandbox import NoGpuAvailable

        if self.gpu_slots is None:
            raise InfrastructureError("this worker has no GPU slots configured")
        try:
            gpus = stack.enter_context(
                self.gpu_slots.lease(
                    n, self.job_id, ttl=self.gpu_lease_ttl_s, on_lost=self._on_gpu_lease_lost
                )
            )
        except NoGpuAvailable as e:
            raise GpusBusy(f"waiting for GPUs: {e}") from e
        except Exception as e:  # Redis unreachable
            raise InfrastructureError(f"could not reserve GPUs: {type(e).__name__}: {e}") from e
        self.logs.add(
            "supervisor", f"reserved GPU(s) {', '.join(map(str, gpus))} on {self.hostname}"
        )
        return gpus

    def _release_gpus(self, gpu_lease: contextlib.ExitStack) -> None:
        try:
            gpu_lease.close()
        except Exception as e:  # Redis down: the lease expires by itself after its ttl
            log.warning("job %s: could not release its GPUs: %s", self.job_id, e)

    def _start_run(self, job: dict):
        """The job's tracker run (params = the config); created while the sandbox boots."""
        return self.client.sdk.init_run(
            job["project"],
            name=f"{job['kind']} job {self.job_id}",
            params=job["config"],
            tags=[job["kind"], "job"],
            run_id=f"job{self.job_id}a{job['attempt']}",
            job_id=self.job_id,
            spool_dir=self.work_root / "spool",
            # This process is the supervisor, not the job: its CPU and
            # memory would be mislabelled as the job's.
            system_metrics=False,
            commit=f"{job['base']['repo']}@{job['base']['commit']}" if job["base"] else None,
        )

    def _run_sandbox(
        self, job: dict, jobdir: Path, inputs: Path | None, gpus: list[int]
    ) -> tuple[str, str, Any]:
        from workers.sandbox import PYTHON, Sandbox, SandboxSpec
        from workers.sandbox.jobfs import JobFolder

        # The hub validated and filled in every request when it queued the job; the shared
        # defaults cover jobs queued before a key existed (disk_mb, say).
        res = with_defaults(job["resources"])
        disk_bytes = int(res["disk_mb"]) << 20
        # The folder and its handle exist before the job does: every later read of a job file
        # resolves beneath this handle. Its own filesystem of disk_bytes is the job's quota.
        try:
            self.folder = (self.job_folder_factory or JobFolder.create)(
                jobdir, size_bytes=disk_bytes
            )
            self.folder.write_text("config.json", json.dumps(job["config"]))
            if getattr(self, "watermark", None):
                self.folder.write_text(WATERMARK_FILE, json.dumps(self.watermark))
        except Exception as e:
            raise InfrastructureError(f"the job's folder could not be prepared: {e}") from e
        argv = [
            PYTHON,
            "-m",
            "workers.launch",
            ENTRY[job["kind"]],
            "--config",
            "/job/config.json",
            "--out",
            "/job/out",
            "--event-fd",
            "3",
        ]
        ro = {}
        if inputs is not None:
            ro[inputs] = "/input"
            argv += ["--weights", "/input"]
        spec = SandboxSpec(
            argv=argv,
            job_dir=jobdir,
            ro_binds=ro,
            # workers/ and the Django-free hub.shared (the MoE health rules): not the hub's
            # settings or server code
            project_paths=[ROOT / "workers", ROOT / "hub" / "__init__.py", ROOT / "hub" / "shared"],
            job_id=self.job_id,
            log_dir=self.work_root / "logs" / self.job_id,
            env={
                "OMP_NUM_THREADS": str(max(1, int(res["cpus"]))),
                # glibc malloc page-fault churn costs fp32 training 10-25% on CPU (workers/moe/README).
                "GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296",
            },
            cpus=float(res["cpus"]),
            memory_bytes=int(res["memory_mb"]) * 1024 * 1024,
            wall_time_s=float(res["time_limit_s"]),
            gpus=gpus,
            cpu_time_s=cpu_time_limit(res["time_limit_s"], res["cpus"]),
            # The job's stdout/stderr logs live outside its quota: RLIMIT_FSIZE keeps each of
            # them (and every file) within it.
            disk_bytes=disk_bytes,
            file_size_bytes=min(MAX_FILE_BYTES, disk_bytes),
        )
        factory = self.sandbox_factory or Sandbox
        try:
            self.sandbox = factory(spec)
            self.sandbox.start()
        except Exception as e:
            raise InfrastructureError(f"the sandbox could not start: {e}") from e
        if self.cancelled.is_set() or self.gpu_lease_lost.is_set() or self.stopped_by_hub:
            self.sandbox.cancel()
        try:
            run = self._start_run(job)  # events wait in the pipe meanwhile
        except Exception:
            self.sandbox.cancel()
            self.sandbox.wait()
            raise
        self.tracked_run = run
        sampler = self._start_system_metrics(run, float(res["cpus"]), gpus)
        try:
            outcome = self._read_events(run)
        finally:
            if sampler is not None:
                sampler.stop()
        return self._outcome(outcome, run)

    def _start_system_metrics(self, run, cpus: float, gpus: list[int]):
        """Sample the job's own cgroup (or process tree) and GPUs onto its run
        (``workers.sysmetrics``); never a reason for the job to fail."""
        if not self.system_interval_s or self.system_interval_s <= 0:
            return None
        cgroup, pid = getattr(self.sandbox, "cgroup", None), getattr(self.sandbox, "pid", None)
        if cgroup is None and pid is None:
            return None
        try:
            from workers.sysmetrics import JobSystemSampler, JobSystemThread, load_nvml

            sampler = JobSystemSampler(
                cgroup=cgroup,
                root_pid=pid,
                cpus=cpus,
                gpus=gpus,
                nvml=load_nvml() if gpus else None,
            )
            thread = JobSystemThread(
                sampler, lambda values, ms: run.log(values, step=ms), self.system_interval_s
            ).start()
        except Exception as e:  # noqa: BLE001
            log.warning("job %s: no system metrics: %s", self.job_id, e)
            return None
        where = "its cgroup" if sampler.source != "proc" else "/proc over its process tree"
        gpu_note = f", GPU(s) {', '.join(map(str, sorted(sampler.gpu_handles)))} via NVML"
        self.logs.add(
            "supervisor",
            f"system metrics every {self.system_interval_s:g} s from {where} "
            f"(source {sampler.source}){gpu_note if sampler.gpu_handles else ''}",
        )
        return thread

    def _read_events(self, run):
        for raw in self.sandbox.events():
            if self.first_event_at is None:
                self.first_event_at = time.time()
            ev = validate_event(raw, self.counters)
            if ev is None:
                self.logs.add(
                    "supervisor",
                    f"rejected an event from the job ({list(self.counters.reasons)[-1]})",
                )
                continue
            self._handle(ev, run)
        return self.sandbox.wait()

    def _outcome(self, outcome, run) -> tuple[str, str, Any]:
        dropped = int(getattr(outcome, "dropped_event_lines", 0) or 0)
        if dropped:  # lines over the size limit the sandbox's reader dropped before we saw them
            self.counters.received += dropped
            self.counters.rejected += dropped
            why = "oversized (dropped by the reader)"
            self.counters.reasons[why] = self.counters.reasons.get(why, 0) + dropped
            self.logs.add(
                "supervisor",
                f"rejected {dropped} event line(s) from the job: over "
                f"{MAX_EVENT_BYTES} bytes, dropped unread",
            )
        for line in (getattr(outcome, "stderr_tail", "") or "").splitlines()[-200:]:
            self.logs.add("stderr", line)
        if self.gpu_lease_lost.is_set():
            raise InfrastructureError(
                f"the job's GPU reservation was lost (Redis unreachable for over "
                f"{self.gpu_lease_ttl_s:.0f} s); it was stopped so that no two jobs "
                "share a GPU"
            )
        if self.stopped_by_hub:
            return (
                "failed",
                f"stopped: the hub marked the job {self.stopped_by_hub} while it ran",
                run,
            )
        if self.cancelled.is_set() or outcome.reason == "cancelled":
            return "cancelled", "cancelled by the user", run
        if self.alert_stop is not None and outcome.reason == "exited" and self.error is None:
            a = self.alert_stop  # the job cancelled itself on a MoE health alert, as configured
            return (
                "cancelled",
                f"stopped itself on the {a['kind']} alert at step {a['step']} "
                f"(alerts.on_{a['kind']}: {a['action']}): {a['message']}"[:2000],
                run,
            )
        if outcome.reason == "exited" and outcome.returncode == 0 and self.error is None:
            # A run that ended early on purpose says why (train.dp: "privacy budget reached ...").
            why = self.summary.get("stop_reason")
            return "succeeded", why[:500] if isinstance(why, str) and why else "completed", run
        message = self.error or outcome.message or f"exited with code {outcome.returncode}"
        return "failed", message, run

    def _handle(self, ev: dict, run) -> None:
        t = ev["type"]
        if t == "metric":
            values = {k: v for k, v in ev["values"].items() if v is not None}
            if values:
                run.log(values, step=int(ev["step"]))
        elif t == "log":
            self.logs.add(ev.get("level", "info"), ev["message"])
        elif t == "progress":
            self.progress = {"step": ev["step"], "total": ev["total"], "eta_s": ev.get("eta_s")}
        elif t == "artifact":
            self.artifacts.append((ev["path"], ev["kind"]))
        elif t == "config":
            self._record_params(run, ev["params"])
        elif t == "done":
            self.summary = ev.get("summary") or {}
        elif t == "error":
            self.error = str(ev.get("message", "the job reported an error"))[:4000]
            self.logs.add("error", self.error)
        elif t == "alert":
            self._record_alert(run, ev)

    def _record_alert(self, run, ev: dict) -> None:
        """A MoE health alert from the job: recorded on its run (a hub that refuses it, or is
        away, is logged, never a reason to fail the job); one with an action other than none
        says the job is stopping itself."""
        if ev["action"] != "none" and self.alert_stop is None:
            self.alert_stop = ev
        alert = {k: ev[k] for k in ("kind", "key", "step", "message", "details", "action")}
        alert["time"] = ev["time"]
        try:
            self.client.run_alerts(run.id, [alert])
        except (HubClientError, HubUnreachable) as e:
            self.logs.add("supervisor", f"the {ev['kind']} alert was not recorded: {e}")

    def _record_params(self, run, params: dict) -> None:
        """The job's full resolved config (its ``config`` event) joins the run's params, which
        hold the config as typed so far: the same keys with the same values, plus every default
        and the base model's architecture. Params are write-once, so a value that contradicts
        the typed one is refused by the hub; that, or the hub being away, is logged, never a
        reason to fail the job."""
        try:
            run.log_params(params)
        except (HubClientError, HubUnreachable) as e:
            self.logs.add(
                "supervisor", f"the job's resolved config was not recorded as params: {e}"
            )

    # --- outputs ---------------------------------------------------------------------------------

    def _upload_artifact(self, f: BinaryIO, rel: str, kind: str) -> None:
        # The chunker takes a path: /proc/self/fd/N names the very file already open (the
        # inode, not a name the job could swap), and it was checked to be a regular file.
        manifest = chunk_file(f"/proc/self/fd/{f.fileno()}", name=rel)
        missing = self._hub(
            self.client.chunks_missing, self.job_id, [c.hash for c in manifest.chunks]
        )
        for c in manifest.chunks:
            if c.hash in missing:
                f.seek(c.offset)
                self.client.upload_chunk(self.job_id, c.hash, f.read(c.size))
        self._hub(
            self.client.artifact,
            self.job_id,
            path=rel,
            kind=kind,
            chunks=[(c.hash, c.size) for c in manifest.chunks],
        )

    def _read_json(self, f: BinaryIO, rel: str) -> Any:
        if os.fstat(f.fileno()).st_size > MAX_OUTPUT_JSON_BYTES:
            raise ValueError(f"{rel} is over {MAX_OUTPUT_JSON_BYTES >> 20} MiB")
        f.seek(0)
        return json.loads(f.read())

    def _collect(self, job: dict, run) -> dict:
        result: dict = {"summary": {}}
        with contextlib.ExitStack() as opened:
            produced = []
            for rel, kind in dict(self.artifacts).items():
                if problems := path_problems(
                    rel
                ):  # the name becomes a repository path: the hub's rule
                    self.logs.add(
                        "supervisor",
                        f"ignored artifact {rel!r}: its name breaks the hub's path rule: "
                        + "; ".join(problems),
                    )
                    continue
                f = safe_output(self.folder, rel)
                if f is None:
                    self.logs.add(
                        "supervisor",
                        f"ignored artifact {rel!r}: not a regular file inside the output "
                        "folder (links are never followed)",
                    )
                    continue
                produced.append((rel, kind, opened.enter_context(f)))
            weights = [(rel, f) for rel, kind, f in produced if kind in WEIGHT_KINDS]
            for rel, kind, f in produced:
                if kind.startswith(("profile", "inspect")) or kind in {"eval", "samples"}:
                    self._upload_artifact(f, rel, kind)
                if kind == "profile_ops" and rel.endswith(".json"):
                    self._hub(
                        self.client.profile, self.job_id, profile_rows(self._read_json(f, rel))
                    )
                if kind == "eval":
                    result["summary"]["eval"] = self._read_json(f, rel)
            if weights and job["target"]:
                # A finetune without save_merged produced adapters only: its commit holds
                # only them (plus the base commit's id), not the base's weights beside them.
                adapter_only = all(
                    kind == "adapter" for _, kind, _ in produced if kind in WEIGHT_KINDS
                )
                committed = self._commit_weights(job, weights, run, adapter_only=adapter_only)
                result["summary"].update(committed.pop("summary"))
                result.update(committed)
        return result

    def _commit_weights(
        self, job: dict, weights: list[tuple[str, BinaryIO]], run, *, adapter_only: bool = False
    ) -> dict:
        repo, branch = job["target"]["repo"], job["target"]["branch"]
        staging = self.work_root / f"{self.job_id}-commit"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for rel, f in weights:  # copied from the open files into the supervisor's own folder
            _copy_open_file(f, staging / Path(rel).name)
        base_ref = f"{job['base']['repo']}@{job['base']['commit']}" if job["base"] else None
        if adapter_only and base_ref:
            self._stamp_adapter_base(staging / "adapter_config.json", job["base"])
        base = job["base"]["commit"] if job["base"] and job["base"]["repo"] == repo else None
        if base and self.target_head is None:
            # The launch accepted a target branch that did not exist because the base is in the
            # same repo: the branch starts at the base commit (someone may have created it since).
            try:
                self.client.sdk.create_branch(repo, branch, base)
                self.logs.add(
                    "supervisor",
                    f"created branch {branch} of {repo} at the base commit {base[:12]}",
                )
            except HubClientError as e:
                if e.code != "ref_exists":
                    raise
        expected = base or self.target_head or self.client.sdk.branch_info(repo, branch)["commit"]
        meta = {
            "job": self.job_id,
            "kind": job["kind"],
            "run": run.id,
            "config": job["config"],
            "launched_by": job["created_by"],
        }
        if base_ref:
            meta["base_commit"] = base_ref
        if self.summary:
            meta["summary"] = self.summary
            if isinstance(dp := self.summary.get("dp"), dict):
                # Shown on the commit page: the (ε, δ) the weights were trained under.
                meta["dp"] = dp
            if isinstance(q := self.summary.get("quantization"), dict):
                # Shown on the commit page: what the weights are and what they cost in quality.
                meta["quantization"] = {
                    k: q[k]
                    for k in (
                        "method",
                        "bytes_before",
                        "bytes_after",
                        "size_ratio",
                        "val_bpb_before",
                        "val_bpb_after",
                        "val_bpb_delta",
                    )
                    if k in q
                }
        message = f"{job['kind']} job {self.job_id}" + (
            f" from {job['base']['commit'][:12]}" if job["base"] else ""
        )
        note = ""
        try:
            res = self.client.sdk.push(
                staging,
                repo=repo,
                branch=branch,
                message=message,
                expected_head=expected,
                metadata=meta,
                delete_missing=adapter_only,
                job_id=self.job_id,
                run_id=run.id,
            )
        except HubClientError as e:
            if e.code != "branch_conflict":
                raise
            side = f"{branch}/job-{self.job_id}"
            self.client.sdk.create_branch(repo, side, expected)
            res = self.client.sdk.push(
                staging,
                repo=repo,
                branch=side,
                message=message,
                expected_head=expected,
                metadata=meta,
                delete_missing=adapter_only,
                job_id=self.job_id,
                run_id=run.id,
            )
            note = (
                f"{branch} moved while the job ran (now {e.details.get('current_head', '?')[:12]}); "
                f"the result is on branch {side} instead"
            )
            branch = side
            self.logs.add("supervisor", note)
        shutil.rmtree(staging, ignore_errors=True)
        commit = res.commit["sha"] if res.commit else expected
        self.client.link_run(run.id, commit=f"{repo}@{commit}", job_id=self.job_id)
        out = {"commit": commit, "branch": branch, "summary": {"commit": f"{repo}@{commit}"}}
        if note:
            out["summary"]["note"] = note
        return out

    def _stamp_adapter_base(self, path: Path, base: dict) -> None:
        """Write the base commit into the adapter's config (the job, sandboxed, only saw
        /input): the adapter then names the exact weights it needs to be merged into."""
        try:
            if path.stat().st_size > MAX_OUTPUT_JSON_BYTES:
                raise ValueError("too large")
            meta = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as e:
            self.logs.add("supervisor", f"adapter_config.json left as the job wrote it: {e}")
            return
        meta["base_commit"] = {"repo": base["repo"], "commit": base["commit"]}
        path.write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _copy_open_file(src: BinaryIO, dest: Path) -> None:
    """Copy an open file into a new file of the supervisor's (in the kernel: sendfile)."""
    size = os.fstat(src.fileno()).st_size
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        offset = 0
        while offset < size:
            n = os.sendfile(fd, src.fileno(), offset, min(size - offset, 1 << 30))
            if n == 0:
                break
            offset += n
    finally:
        os.close(fd)
