"""The workers' side of the hub API: every call a job's supervisor makes, typed.

A worker reaches the hub only through this client (no database, no shared folder), so the
same worker code runs next to ``hub serve`` and on a GPU host elsewhere. It rides on
:class:`hub.client.Client`'s public ``request``: connection failures and 502/503/504 are
retried with backoff and jitter when the call is safe to repeat, and a hub that stays out of
reach raises :class:`~hub.client.HubUnreachable`; an error answer raises
:class:`~hub.client.HubClientError` with the hub's code (``job_state_conflict``,
``job_credential_revoked``, ...).

Credentials, per attempt::

    service = WorkerClient(url, token=HUB_WORKER_TOKEN)   # may read a job, claim it, fail it
    started = service.start(job_id, worker=host, gpus=[0])  # queued → running
    attempt = started.client                               # the attempt's own credential
    attempt.heartbeat(job_id, ...); attempt.finish(job_id, status="succeeded", ...)

The service credential can only read jobs, claim one, log a line for a queued one and fail a
job it could not start. ``start`` answers with a credential for that attempt alone; from then
on every call for the job — the worker endpoints and the SDK calls behind ``client.sdk``
(pull the base, the run, the commit) — uses it, until the attempt ends and the hub revokes it.
Neither credential ever enters the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hub.client.api import Client

#: How often a worker call is retried (connection failures, 502/503/504) before the hub
#: counts as unreachable.
WORKER_RETRIES = 3


@dataclass
class StartedJob:
    """What ``start`` answers: the job as the worker runs it, and the client on the attempt's
    own credential to use for everything after the start."""

    job: dict
    client: WorkerClient


class WorkerClient:
    """The hub as a worker sees it. ``sdk`` is the full SDK on the same credential (pull,
    push, runs, branches); the methods here are the worker endpoints (``/jobs/<id>/worker/...``).
    Pass ``sdk`` to wrap an existing client instead of making one."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = WORKER_RETRIES,
        backoff: float = 0.5,
        sdk: Client | None = None,
    ):
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.sdk = (
            sdk
            if sdk is not None
            else Client(url=url, token=token, timeout=timeout, retries=retries, backoff=backoff)
        )

    @property
    def url(self) -> str:
        return self.sdk.url

    def close(self) -> None:
        self.sdk.close()

    def _call(
        self, method: str, job_id: str, path: str = "", *, idempotent: bool | None = None, **kw
    ) -> Any:
        resp = self.sdk.request(
            method, f"/jobs/{quote(job_id, safe='')}{path}", idempotent=idempotent, **kw
        )
        return resp.json() if resp.content else None

    def _for_attempt(self, credential: str | None) -> WorkerClient:
        if not credential:  # a hub that hands out none: the same credential goes on
            return self
        return WorkerClient(
            self.url, credential, timeout=self.timeout, retries=self.retries, backoff=self.backoff
        )

    # --- with the service credential -----------------------------------------------------------

    def job(self, job_id: str) -> dict:
        """The job as its launcher sees it (status, resources, ...)."""
        return self._call("GET", job_id)

    def start(self, job_id: str, *, worker: str, gpus: list[int]) -> StartedJob:
        """Take the queued job (queued → running) on ``worker`` with the GPU indices it reserved.
        A job that is not queued any more raises ``job_state_conflict``. Not repeated once the
        request reached the hub (a second start would be a second attempt)."""
        job = self._call(
            "POST", job_id, "/worker/start", json={"worker": worker, "gpus": list(gpus)}
        )
        credential = job.pop("credential", None)
        return StartedJob(job=job, client=self._for_attempt(credential))

    def logs(self, job_id: str, lines: list[list]) -> None:
        """Log lines ``[seq, time, stream, text]``; the hub keeps one line per seq, so a retry
        never doubles one. Also taken for a queued job (a line saying why it waits)."""
        self._call("POST", job_id, "/worker/logs", json={"lines": lines}, idempotent=True)

    def finish(
        self,
        job_id: str,
        *,
        status: str,
        reason: str,
        summary: dict | None = None,
        run_id: str | None = None,
        result_commit: str | None = None,
        result_branch: str | None = None,
    ) -> dict:
        """End the job: ``succeeded``, ``failed`` or ``cancelled`` with a reason a person can act
        on. The service credential may only fail a job that is still queued."""
        body: dict[str, Any] = {"status": status, "reason": reason}
        for key, value in (
            ("summary", summary),
            ("run_id", run_id),
            ("result_commit", result_commit),
            ("result_branch", result_branch),
        ):
            if value is not None:
                body[key] = value
        return self._call("POST", job_id, "/worker/finish", json=body, idempotent=True)

    # --- with the attempt's credential ---------------------------------------------------------

    def heartbeat(self, job_id: str, *, progress: dict, counters: dict) -> dict:
        """Progress and event counters; answers the job's state (``status``,
        ``cancel_requested``), which is how a cancel reaches the worker."""
        return self._call(
            "POST", job_id, "/worker/heartbeat", json={"progress": progress, "counters": counters}
        )

    def chunks_missing(self, job_id: str, hashes: list[str]) -> set[str]:
        """Which of these chunks the hub lacks (upload only those)."""
        return set(
            self._call(
                "POST", job_id, "/worker/chunks/missing", json={"chunks": hashes}, idempotent=True
            )["missing"]
        )

    def upload_chunk(self, job_id: str, digest: str, data: bytes) -> None:
        """One chunk's bytes; the hub checks them against ``digest``."""
        self._call(
            "PUT",
            job_id,
            f"/worker/chunks/{digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def artifact(self, job_id: str, *, path: str, kind: str, chunks: list[tuple[str, int]]) -> dict:
        """Record a file the job produced (its chunks uploaded first) as a job artifact."""
        return self._call(
            "POST",
            job_id,
            "/worker/artifacts",
            json={"path": path, "kind": kind, "chunks": [list(c) for c in chunks]},
        )

    def profile(self, job_id: str, ops: list[dict]) -> dict:
        """A profile job's operator rows (``workers.supervisor.profile_rows``)."""
        return self._call("POST", job_id, "/worker/profile", json={"ops": ops})

    def requeue(self, job_id: str, *, reason: str) -> dict:
        """Give the job back (running → queued) after an infrastructure failure; its task
        retries it."""
        return self._call("POST", job_id, "/worker/requeue", json={"reason": reason})

    def run_alerts(self, run_id: str, alerts: list[dict]) -> dict:
        """Record MoE health alerts on the job's run (idempotent per key and step)."""
        resp = self.sdk.request(
            "POST",
            f"/runs/{quote(run_id, safe='')}/alerts",
            json={"alerts": alerts},
            idempotent=True,
        )
        return resp.json() if resp.content else {}

    def link_run(self, run_id: str, *, commit: str, job_id: str) -> dict:
        """Point the job's run at the commit it produced (``repo@sha``)."""
        resp = self.sdk.request(
            "PATCH", f"/runs/{quote(run_id, safe='')}", json={"commit": commit, "job_id": job_id}
        )
        return resp.json() if resp.content else None
