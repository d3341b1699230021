"""Sending what a run spooled (the layout is :mod:`hub.shared.spool`): its creation request,
its metric batches and its final status. :class:`hub.client.run.Run`'s sender and
``hub sync`` (:func:`sync_spool`) both go through the functions here, so a spooled run is
created, replayed and closed the same way whichever of them gets to it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from hub.client import config
from hub.client.errors import HubClientError, HubUnreachable
from hub.shared import spool as layout
from hub.shared.wire import CONTENT_TYPE

log = logging.getLogger("hub.client")
RUN_FIELDS = ("name", "group", "params", "tags", "notes", "run_id", "commit", "job_id")


def is_transient(e: BaseException) -> bool:
    """Worth retrying later: the hub did not answer, or answered 408/429/5xx. Any other
    error answer (auth, validation, conflict) is final for a request made now."""
    if isinstance(e, HubUnreachable):
        return True
    if isinstance(e, HubClientError):
        return e.status in (408, 429) or e.status >= 500
    import httpx

    return isinstance(e, httpx.TransportError)


def refused_for_good(e: BaseException) -> bool:
    """The hub answered and will never take this data: a malformed batch (400, 413, 422), a
    conflict (409), or a run that no longer exists (404). Anything else, including 401/403
    (a token can be renewed) and failures that are not answers at all, keeps the data on
    disk for a later try: metrics are dropped only when keeping them cannot help."""
    return (
        isinstance(e, HubClientError)
        and not isinstance(e, HubUnreachable)
        and e.status in (400, 404, 409, 413, 422)
    )


def create_run(client, create: dict, **kw) -> dict:
    """POST a run creation (``create`` = the body plus ``project`` and ``create_project``),
    creating the project first if it does not exist and that is allowed. Idempotent by
    ``run_id``: a repeat resumes the same run."""
    from urllib.parse import quote

    ns, _, proj = create["project"].partition("/")
    path = f"/projects/{quote(ns)}/{quote(proj)}/runs"
    body = {k: create[k] for k in RUN_FIELDS if k in create}
    try:
        return client._json("POST", path, json=body, idempotent=True, **kw)
    except HubClientError as e:
        if e.code != "project_not_found" or not create.get("create_project", True):
            raise
        client._json("POST", "/projects", json={"namespace": ns, "name": proj}, **kw)
        return client._json("POST", path, json=body, idempotent=True, **kw)


class CreationRefused(Exception):
    """The hub refused a spooled creation request (auth, validation, conflict): retrying
    the same request cannot help; ``error`` is the hub's answer."""

    def __init__(self, error: BaseException):
        super().__init__(getattr(error, "message", str(error)))
        self.error = error
        self.message = str(self)


def send_creation(client, run_dir: Path, create: dict | None, **kw) -> dict | None:
    """Send the creation request spooled in ``run_dir`` (``create``: its content, None when
    ``create.json`` is not a creation request): the run as the hub returns it, or None when
    the hub cannot take it now (unreachable, 408/429/5xx: keep it for a later try). A refusal
    is logged and raised as :class:`CreationRefused`. ``create.json`` stays where it is: the
    caller removes it (:func:`creation_done`) once no newer request replaced it."""
    run_id = run_dir.name
    try:
        if create is None:
            raise HubClientError(
                400, "invalid_spool", f"{run_dir / layout.CREATE_FILE} is not a creation request"
            )
        return create_run(client, create, **kw)
    except Exception as e:  # noqa: BLE001 - the sender must survive anything
        if is_transient(e):
            log.debug("run %s: not created yet (%s)", run_id, e)
            return None
        log.error(
            "run %s: the hub refused to create the run: %s; it stays spooled in %s",
            run_id,
            getattr(e, "message", e),
            run_dir,
        )
        raise CreationRefused(e) from e


def creation_done(run_dir: Path) -> None:
    (run_dir / layout.CREATE_FILE).unlink(missing_ok=True)


def post_batch(client, run_id: str, body: bytes) -> None:
    client.request(
        "POST",
        f"/runs/{run_id}/metrics",
        content=body,
        headers={"Content-Type": CONTENT_TYPE},
        idempotent=True,
        retries=0,
    )


def replay(client, run_id: str, run_dir: Path) -> tuple[bool, int]:
    """Send the spooled batches oldest first: (True when none is left, points sent). A batch
    the hub refuses for good is set aside (``*.rejected``); any other failure stops the
    replay and keeps the rest for the next try (or ``hub sync``)."""
    sent = 0
    for f in layout.batch_files(run_dir):
        try:
            body = f.read_bytes()
        except FileNotFoundError:
            continue
        try:
            post_batch(client, run_id, body)
        except Exception as e:  # noqa: BLE001
            if not refused_for_good(e):
                return False, sent
            log.error("run %s: the hub refused spooled batch %s: %s", run_id, f.name, e.message)
            layout.set_aside(f)
            continue
        sent += layout.batch_points(f)
        f.unlink(missing_ok=True)
    return True, sent


def sync_spool(client, spool_root: str | os.PathLike | None = None) -> dict:
    """Send every spooled run (the ``hub sync`` command): first the creation of a run that
    was started while the hub was unreachable (``create.json``), then its batches, then the
    final status a finish() could not send (after the points, so a run is never marked
    finished while some of its points are still on disk). A run whose creation the hub
    refuses keeps its spool and counts in ``runs_left``."""
    root = Path(spool_root or config.spool_dir())
    sent = failed = 0
    for run_dir in sorted(p for p in root.glob("*") if p.is_dir()):
        run_id = run_dir.name
        if (run_dir / layout.CREATE_FILE).exists():
            try:
                created = send_creation(client, run_dir, layout.read_create(run_dir))
            except CreationRefused:
                created = None
            if created is None:
                failed += 1
                continue
            creation_done(run_dir)
        ok, n = replay(client, run_id, run_dir)
        sent += n
        status_file = run_dir / layout.STATUS_FILE
        if ok and status_file.exists():
            try:
                status = json.loads(status_file.read_text())["status"]
                client._json("PATCH", f"/runs/{run_id}", json={"status": status})
                status_file.unlink(missing_ok=True)
            except HubClientError as e:
                if not refused_for_good(e):
                    ok = False
                else:  # refused (the run is gone, or the status is not valid): nothing to retry
                    log.error("run %s: the hub refused the spooled status: %s", run_id, e.message)
                    status_file.unlink(missing_ok=True)
            except (ValueError, KeyError):
                status_file.unlink(missing_ok=True)
        failed += 0 if ok else 1
        if ok and not any(run_dir.iterdir()):
            run_dir.rmdir()
    return {"sent_points": sent, "runs_left": failed}
