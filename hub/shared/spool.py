"""The on-disk layout of the SDK's spool: what a run could not send yet, kept until the hub
answers (``hub.client.run`` writes it, ``hub sync`` and the next start of the run read it;
the job supervisor points a job's run at a spool of its own).

One folder per run, ``<spool root>/<run id>/``, holding:

* ``<ns><seq>-<points>.bin``: one metric batch in the wire format (:mod:`hub.shared.wire`),
  its body exactly as it would have been posted. ``<ns>`` (20 digits of ``time.time_ns()``)
  and ``<seq>`` (6 digits) make names sort in writing order; ``<points>`` is the number of
  points in it, so counting what is pending never reads a batch. Replayed oldest first;
  one the hub refuses for good is renamed ``*.rejected`` and kept.
* ``create.json``: the creation request of a run started while the hub was unreachable
  (the POST body plus ``project`` and ``create_project``); sent before any batch.
* ``status.json``: ``{"status": ...}``, a final status ``finish()`` could not send; sent
  after every batch, so a run is never marked finished while points are still on disk.

Every file is written under a temporary name and renamed into place: a crash leaves the
old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

CREATE_FILE = "create.json"
STATUS_FILE = "status.json"
BATCH_SUFFIX = ".bin"
REJECTED_SUFFIX = ".rejected"


def batch_name(points: int, seq: int) -> str:
    return f"{time.time_ns():020d}{seq:06d}-{points}{BATCH_SUFFIX}"


def batch_points(path: Path) -> int:
    """The number of points a batch file holds, from its name (0 for a foreign name)."""
    try:
        return int(path.name.split("-")[1].split(".")[0])
    except (IndexError, ValueError):
        return 0


def batch_files(run_dir: Path) -> list[Path]:
    """The batches waiting in ``run_dir``, oldest first."""
    try:
        return sorted(run_dir.glob("*" + BATCH_SUFFIX))
    except FileNotFoundError:
        return []


def points_on_disk(run_dir: Path) -> int:
    return sum(batch_points(f) for f in batch_files(run_dir))


def write_atomic(run_dir: Path, name: str, data: bytes) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, run_dir / name)
    return run_dir / name


def write_batch(run_dir: Path, body: bytes, points: int, seq: int) -> Path:
    return write_atomic(run_dir, batch_name(points, seq), body)


def write_create(run_dir: Path, create: dict) -> None:
    write_atomic(run_dir, CREATE_FILE, json.dumps(create).encode())


def read_create(run_dir: Path) -> dict | None:
    """The spooled creation request; None when there is none or it is not one."""
    try:
        data = json.loads((run_dir / CREATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("project") else None


def write_status(run_dir: Path, status: str) -> None:
    write_atomic(run_dir, STATUS_FILE, json.dumps({"status": status}).encode())


def set_aside(path: Path) -> None:
    """Keep a file the hub refused for good, out of the way of later replays."""
    if path.suffix == BATCH_SUFFIX:
        path.replace(path.with_suffix(REJECTED_SUFFIX))  # x-3.bin -> x-3.rejected
    else:
        path.replace(
            path.with_name(path.name + REJECTED_SUFFIX)
        )  # create.json -> create.json.rejected
