"""Experiment tracking in the SDK: ``Run.log`` never blocks a training loop.

``log()`` appends one record to an in-memory list (about a microsecond). A background thread
turns records into compact binary batches and posts them. If the hub cannot be reached (or
answers 503 because ClickHouse is down), batches are spooled to disk (``<config>/spool/<run>``)
and replayed in order once it answers again — a retried batch is harmless, the server
collapses duplicates. Memory is bounded: past ``max_pending`` points the buffer is spilled
to the spool by ``log()`` itself. ``finish()`` and interpreter exit flush with a bounded wait
and then say what is still pending (it stays spooled; ``hub sync`` or the next start of the
same run sends it) instead of hanging.

Offline start: when the hub cannot be reached at ``init_run`` time, the run starts "pending
creation" under a client-chosen id; its creation request is spooled (``create.json``) and the
sender (or ``hub sync``) creates the run, idempotently by id, before sending any point.

The spool's layout is :mod:`hub.shared.spool`; sending what it holds (creation, batches,
status) is :mod:`hub.client.spool`, shared with ``hub sync``. System metrics come from
:class:`hub.client.system.SystemSampler`.

NaN and ±Inf values are dropped client-side with one warning per key (the hub refuses them).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import secrets
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

from hub.client import config
from hub.client.errors import HubClientError
from hub.client.spool import (
    CreationRefused,
    creation_done,
    post_batch,
    refused_for_good,
    replay,
    send_creation,
)
from hub.client.system import SystemSampler
from hub.shared import spool as layout

log = logging.getLogger("hub.client")
STATUS_TIMEOUT = 5.0  # seconds for the final status call (one try: finish() must stay bounded)


def _encode(records: list[tuple[int, float, dict]]) -> tuple[bytes, int, dict[str, int]]:
    """records → (binary batch, points, non-finite counts per key)."""
    import numpy as np

    from hub.shared.wire import encode

    keys: dict[str, int] = {}
    ki: list[int] = []
    steps: list[int] = []
    times: list[float] = []
    values: list[float] = []
    dropped: dict[str, int] = {}
    isfinite = math.isfinite
    for step, t, d in records:
        for k, v in d.items():
            try:
                fv = float(v)
            except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float
                dropped[k] = dropped.get(k, 0) + 1
                continue
            if not isfinite(fv):
                dropped[k] = dropped.get(k, 0) + 1
                continue
            idx = keys.get(k)
            if idx is None:
                idx = keys[k] = len(keys)
            ki.append(idx)
            steps.append(step)
            times.append(t)
            values.append(fv)
    body = encode(list(keys), np.asarray(ki, dtype=np.uint32), steps, times, values)
    return body, len(steps), dropped


class Run:
    """A tracked run. Use as a context manager, or call :meth:`finish`."""

    def __init__(
        self,
        client,
        data: dict,
        *,
        flush_interval: float = 1.0,
        batch_points: int = 50_000,
        max_pending: int = 2_000_000,
        spool_dir: str | os.PathLike | None = None,
        system_metrics: bool = True,
        system_interval: float = 10.0,
        create: dict | None = None,
    ):
        """``create``: the run could not be created yet (the hub was unreachable); this is its
        creation request, spooled and sent by the sender before any point."""
        self.client = client
        self.id: str = data["id"]
        self.data = data
        self.flush_interval = flush_interval
        self.batch_points = batch_points
        self.max_pending = max_pending
        self.spool = Path(spool_dir or config.spool_dir()) / self.id
        self._records: list[tuple[int, float, dict]] = []
        self._pending_points = 0  # points in _records
        # Batches taken from the buffer and not yet sent or spooled (the sender may be blocked
        # in a POST): they count as pending, and finish() spools them if the sender hangs.
        self._inflight: dict[int, tuple[bytes, int]] = {}
        self._inflight_points = 0  # points taken by _take() and not yet sent, spooled or dropped
        self._batch_seq = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._step = 0
        self._warned: set[str] = set()
        self._seq = 0
        self.sent_points = 0
        self.spooled_points = 0
        self.online = True
        self._probe_now = False
        self.finished = False
        # Pending creation: the request (spooled as create.json) and a version bumped by
        # log_params/add_tags/set_notes while pending, so a concurrent create is redone.
        self._create: dict | None = None
        self._create_ver = 0
        self._create_refused = False
        self._notes_dirty = False
        self._created_at_start = create is None  # the run exists on the hub already
        if create is not None:
            self._create = dict(create)
            layout.write_create(self.spool, self._create)
        else:
            self._create = layout.read_create(self.spool)  # left by an earlier offline start
        if self._create is not None:
            self.online = False  # nothing is posted before the run exists
        # A status left by an earlier finish() that could not reach the hub is void: the run
        # is running again.
        (self.spool / layout.STATUS_FILE).unlink(missing_ok=True)
        self._thread = threading.Thread(target=self._loop, name=f"hub-run-{self.id}", daemon=True)
        self._thread.start()
        self._sampler_stop = threading.Event()
        self._sampler: threading.Thread | None = None
        if system_metrics and system_interval > 0:
            self._sampler = threading.Thread(
                target=self._sample_loop,
                args=(system_interval,),
                name=f"hub-run-{self.id}-system",
                daemon=True,
            )
            self._sampler.start()
        _live_runs.add(self)

    # --- the hot path ------------------------------------------------------------------------

    def log(
        self, values: dict[str, Any], step: int | None = None, *, time_: float | None = None
    ) -> None:
        """Record ``{key: number}`` at ``step`` (default: one more than the last step)."""
        if step is None:
            step = self._step
            self._step += 1
        else:
            self._step = step + 1
        rec = (step, time_ if time_ is not None else time.time(), dict(values))
        with self._lock:
            self._records.append(rec)
            self._pending_points += len(rec[2])
            n = self._pending_points
        if n >= self.batch_points:
            self._wake.set()
        if n >= self.max_pending:
            self._spill()  # the sender cannot keep up: keep memory bounded

    def _record(self, values: dict[str, float], step: int) -> None:
        """Append without touching the user's step counter (system metrics)."""
        with self._lock:
            self._records.append((step, time.time(), values))
            self._pending_points += len(values)

    def _run_started(self) -> float:
        from datetime import datetime

        try:
            return datetime.fromisoformat(
                str(self.data["started_at"]).replace("Z", "+00:00")
            ).timestamp()
        except (KeyError, TypeError, ValueError):
            return time.time()

    def _sample_loop(self, interval: float) -> None:
        """System metrics every ``interval`` seconds. Their step is the milliseconds since the
        run started, not the training step: no sample overwrites another when training stalls
        (or when the run is resumed by another process); plot them against ``x=time``."""
        try:
            sampler = SystemSampler()
            started = self._run_started()
        except Exception:  # noqa: BLE001
            log.debug("system metrics disabled", exc_info=True)
            return
        while not self._sampler_stop.wait(interval):
            values = sampler.sample()
            if values:
                self._record(values, max(0, int((time.time() - started) * 1000)))

    def _stop_sampler(self) -> None:
        sampler = getattr(self, "_sampler", None)
        if sampler is not None:
            self._sampler_stop.set()
            sampler.join(timeout=1)

    # --- params, tags, lifecycle ---------------------------------------------------------------

    @property
    def pending_creation(self) -> bool:
        """True while the run waits to be created on the hub (it was started offline)."""
        return self._create is not None and not self._created_at_start

    def _update_pending(self, fn) -> bool:
        """While creation is pending, apply ``fn`` to the creation request (and its spooled
        copy) instead of calling the hub; False when the run exists already."""
        with self._lock:
            if self._create is None or self._created_at_start:
                return False
            fn(self._create)
            self._create_ver += 1
            layout.write_create(self.spool, self._create)
            return True

    def log_params(self, params: dict) -> dict:
        from hub.stores._search_layout import flatten_params

        def merge(create: dict) -> None:
            old, new = flatten_params(create.get("params") or {}), flatten_params(params)
            conflicts = {
                k: {"logged": old[k], "new": v} for k, v in new.items() if k in old and old[k] != v
            }
            if conflicts:  # the hub would answer the same (params are write-once)
                raise HubClientError(
                    409,
                    "param_conflict",
                    f"{len(conflicts)} param(s) already logged with "
                    "another value; params are write-once.",
                    conflicts,
                )
            create["params"] = {**old, **new}
            self.data["params"] = dict(create["params"])

        if self._update_pending(merge):
            return self.data["params"]
        self.data = self.client._json("POST", f"/runs/{self.id}/params", json={"params": params})
        return self.data["params"]

    def add_tags(self, *tags: str) -> None:
        def merge(create: dict) -> None:
            create["tags"] = list(create.get("tags") or []) + [
                t for t in tags if t not in (create.get("tags") or [])
            ]

        if not self._update_pending(merge):
            self.data = self.client._json(
                "PATCH", f"/runs/{self.id}", json={"add_tags": list(tags)}
            )

    def set_notes(self, notes: str) -> None:
        def merge(create: dict) -> None:
            create["notes"] = notes
            self._notes_dirty = True  # a resumed run keeps its notes on create: PATCH them after

        if not self._update_pending(merge):
            self.data = self.client._json("PATCH", f"/runs/{self.id}", json={"notes": notes})

    def flush(self, timeout: float = 30.0) -> int:
        """Send what is buffered; returns the points still pending after ``timeout``."""
        deadline = time.monotonic() + timeout
        pause = 0.01
        while time.monotonic() < deadline:
            with self._lock:
                empty = not self._records
            if empty and self._idle.is_set() and not self._spool_files() and self._create is None:
                break
            self._probe_now = True  # while flushing, retry the hub without the usual backoff
            self._wake.set()
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)
        return self.pending()

    def pending(self) -> int:
        """Points not yet accepted by the hub: buffered, in flight (a POST that has not
        answered) or spooled on disk."""
        with self._lock:
            mem = self._pending_points + self._inflight_points
        return mem + self._spooled_points_on_disk()

    def _stop_sender(self, deadline: float) -> None:
        """Stop the sender by ``deadline``. If it is stuck (a POST that does not answer), the
        batches it holds are spooled from here: if the POST did land after all, the replay
        is a duplicate, which the hub collapses on (run, key, step)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=max(0.05, deadline - time.monotonic()))
        with self._lock:
            stuck = list(self._inflight.items())
        for token, (body, n) in stuck:
            self._write_spool(body, n)
            self._resolve(token)
        if self._records:
            self._spill()

    def _send_status(self, status: str, timeout: float) -> bool:
        """One short PATCH, no retries (finish() must not outlast its timeout); if the hub
        does not answer, the status is spooled next to the points and `hub sync` sends it."""
        try:
            self.data = self.client._json(
                "PATCH",
                f"/runs/{self.id}",
                json={"status": status},
                retries=0,
                timeout=max(0.5, timeout),
            )
            return True
        except HubClientError as e:
            if refused_for_good(e):
                warnings.warn(
                    f"run {self.id}: the hub refused status {status!r}: {e.message}", stacklevel=3
                )
                return False
            reason = e.message
        except Exception as e:  # a timeout or a broken connection: the hub may be hung
            reason = str(e) or type(e).__name__
        layout.write_status(self.spool, status)
        warnings.warn(
            f"run {self.id}: could not set status {status!r} ({reason}); it is spooled in {self.spool} "
            "and will be sent by `hub sync`",
            stacklevel=3,
        )
        return False

    def finish(self, status: str = "finished", *, timeout: float = 30.0) -> dict:
        """Flush, mark the run ``status`` and stop the sender, all within about ``timeout``
        seconds (plus at most a few seconds for the status call). Whatever could not be sent
        (including a batch whose POST hangs) stays spooled on disk and is reported, never
        silently dropped."""
        if self.finished:
            return {"pending": self.pending()}
        start = time.monotonic()
        deadline = start + timeout
        self._stop_sampler()
        self.flush(max(0.0, timeout - 0.1))
        self._stop_sender(deadline)
        left = self.pending()
        self.finished = True
        _live_runs.discard(self)
        if self._create is not None and not self._created_at_start:
            # Not created yet: the status waits on disk, after the creation and the points.
            layout.write_status(self.spool, status)
            why = (
                "the hub refused to create it"
                if self._create_refused
                else "the hub has not answered since it started"
            )
            warnings.warn(
                f"run {self.id} is not created yet ({why}); its creation, points and status {status!r} are "
                f"spooled in {self.spool} and will be sent by `hub sync`",
                stacklevel=2,
            )
            status_sent = False
        else:
            status_sent = self._send_status(
                status, min(STATUS_TIMEOUT, max(0.5, deadline - time.monotonic()))
            )
        if left:
            msg = (
                f"run {self.id}: {left} point(s) not yet sent; they are spooled in {self.spool} and will be "
                f"sent by `hub sync` or the next start of this run"
            )
            warnings.warn(msg, stacklevel=2)
        return {
            "pending": left,
            "sent": self.sent_points,
            "spool": str(self.spool) if left or not status_sent else None,
            "status_sent": status_sent,
            "created": not self.pending_creation,
        }

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("killed")
        else:
            self.finish("failed")

    # --- the sender ------------------------------------------------------------------------------

    def _take(self) -> list[tuple[int, float, dict]]:
        """Take the buffer; its points stay pending (in flight) until sent, spooled or dropped."""
        with self._lock:
            recs, self._records = self._records, []
            self._inflight_points += self._pending_points
            self._pending_points = 0
        return recs

    def _resolve(self, token: int) -> None:
        """A batch was sent or spooled: it no longer counts as in flight (once)."""
        with self._lock:
            batch = self._inflight.pop(token, None)
            if batch is not None:
                self._inflight_points -= batch[1]

    def _spool_files(self) -> list[Path]:
        return layout.batch_files(self.spool)

    def _spooled_points_on_disk(self) -> int:
        return layout.points_on_disk(self.spool)

    def _write_spool(self, body: bytes, points: int) -> None:
        with self._lock:
            self._seq += 1
            seq = self._seq
        layout.write_batch(self.spool, body, points, seq)
        self.spooled_points += points

    def _batches(self) -> list[tuple[int, bytes, int]]:
        """Take the buffer, cut into encoded batches of about ``batch_points`` points (the
        hub refuses larger requests), each registered as in flight until :meth:`_resolve`:
        a list of (token, body, points). Encoded all at once so that a sender stuck on the
        first POST leaves the others where finish() can spool them."""
        out: list[tuple[int, bytes, int]] = []
        chunk: list = []
        points = 0
        for rec in self._take() + [None]:
            if rec is not None:
                chunk.append(rec)
                points += len(rec[2])
            if chunk and (rec is None or points >= self.batch_points):
                body, n, dropped = _encode(chunk)
                self._warn(dropped)
                with self._lock:
                    self._inflight_points -= points - n  # dropped values are not pending
                    if n:
                        self._batch_seq += 1
                        self._inflight[self._batch_seq] = (body, n)
                        out.append((self._batch_seq, body, n))
                chunk, points = [], 0
        return out

    def _spill(self) -> None:
        """Write the buffer to the spool, one file per batch."""
        for token, body, n in self._batches():
            self._write_spool(body, n)
            self._resolve(token)

    def _warn(self, dropped: dict[str, int]) -> None:
        for k, n in dropped.items():
            if k not in self._warned:
                self._warned.add(k)
                warnings.warn(
                    f"run {self.id}: dropped {n} non-finite or non-numeric value(s) of {k!r} "
                    "(NaN/Inf are not stored)",
                    stacklevel=3,
                )

    def _post(self, body: bytes) -> None:
        post_batch(self.client, self.id, body)

    def _send_or_spool(self, token: int, body: bytes, points: int) -> None:
        with self._lock:
            if token not in self._inflight:
                return  # finish() spooled it while this thread was stuck on an earlier POST
        try:
            if self.online:
                try:
                    self._post(body)
                    self.sent_points += points
                    return
                except Exception as e:  # noqa: BLE001 - whatever failed, the batch must not be lost
                    if refused_for_good(e):
                        log.error(
                            "run %s: the hub refused a batch of %d point(s): %s",
                            self.id,
                            points,
                            getattr(e, "message", e),
                        )
                        return
                    self.online = False
                    log.warning(
                        "run %s: hub unavailable (%s); spooling to %s",
                        self.id,
                        getattr(e, "message", None) or e,
                        self.spool,
                    )
            with self._lock:
                # finish() spooled it already while this thread was stuck in the POST
                spooled_by_finish = token not in self._inflight
            if not spooled_by_finish:
                self._write_spool(body, points)
        finally:
            self._resolve(token)

    def _replay(self) -> bool:
        """Send spooled batches oldest first; True when the spool is empty."""
        ok, sent = replay(self.client, self.id, self.spool)
        self.sent_points += sent
        return ok

    def _try_create(self) -> bool:
        """Send the pending creation; True once the run exists. A refusal (auth, validation,
        conflict) is logged and leaves everything spooled, for `hub sync` once it is fixed."""
        for _ in range(5):  # redo if log_params/add_tags/set_notes changed the request meanwhile
            with self._lock:
                create, ver = self._create, self._create_ver
            if create is None:
                return True
            try:
                data = send_creation(self.client, self.spool, create, retries=0)
            except CreationRefused:
                if (
                    self._created_at_start
                ):  # a stale request from an earlier offline start: set it aside
                    layout.set_aside(self.spool / layout.CREATE_FILE)
                    with self._lock:
                        self._create = None
                    return True
                self._create_refused = True
                return False
            if data is None:
                return False
            with self._lock:
                if self._create_ver != ver:
                    continue
                self._create = None
                notes, self._notes_dirty = self._notes_dirty, False
            if isinstance(data, dict):
                self.data = data
            if notes and data and data.get("notes") != create.get("notes"):
                try:
                    self.data = self.client._json(
                        "PATCH", f"/runs/{self.id}", json={"notes": create["notes"]}, retries=0
                    )
                except Exception as e:  # noqa: BLE001
                    log.error("run %s: could not set the notes: %s", self.id, e)
            creation_done(self.spool)
            log.info("run %s: created on the hub", self.id)
            return True
        return False

    def _loop(self) -> None:
        backoff = 1.0
        next_probe = 0.0
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stop.is_set()
            self._idle.clear()
            try:
                probe, self._probe_now = self._probe_now, False
                if (
                    self._create is not None
                    and not self._create_refused
                    and (probe or time.monotonic() >= next_probe)
                ):
                    if self._try_create():
                        self.online, backoff = True, 1.0
                    else:
                        next_probe = time.monotonic() + backoff
                        backoff = min(backoff * 2, 30.0)
                if self._create is not None:
                    self.online = False  # no point is posted before the run exists: spool them
                for token, body, n in self._batches():
                    self._send_or_spool(token, body, n)
                if (
                    self._create is None
                    and (self.online or probe or time.monotonic() >= next_probe)
                    and self._spool_files()
                ):
                    if self._replay():
                        self.online, backoff = True, 1.0
                    else:
                        self.online = False
                        next_probe = time.monotonic() + backoff
                        backoff = min(backoff * 2, 30.0)
            except Exception:  # never let the sender die silently
                log.exception("run %s: metrics sender error", self.id)
            finally:
                self._idle.set()
            if stopping:
                return


_live_runs: weakref.WeakSet[Run] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for run in list(_live_runs):
        if not run.finished:
            wait = float(os.environ.get("HUB_EXIT_FLUSH_SECONDS", "10"))
            deadline = time.monotonic() + wait
            run._stop_sampler()
            run.flush(timeout=wait)
            run._stop_sender(deadline + 2)
            left = run.pending()
            if left:
                print(
                    f"[hub] run {run.id}: {left} point(s) not sent before exit; spooled in {run.spool} "
                    "(run `hub sync` to send them)",
                    flush=True,
                )


def new_run_id() -> str:
    return secrets.token_hex(8)
