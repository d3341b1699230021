"""``manage.py jobs_reaper [--once]``: mark ``lost`` every running job whose worker stopped
heartbeating, every ``HUB_JOB_REAP_EVERY_S`` seconds, whether or not anybody reads jobs.

This is the only place jobs are reaped (reads of jobs never write). ``hub serve`` runs it;
elsewhere run one next to the web process. It touches the database only (safe to run in
several copies: each move to ``lost`` is a compare-and-swap).

Each pass also sweeps the search index (:mod:`hub.tracking.sweep`: re-index the runs changed
since the previous pass, in case an index task was lost). That safety net needs the database,
so it lives here, in the hub's long-lived housekeeping process, not in the workers."""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from hub.jobs.services import jobs_reap_lost
from hub.tracking.sweep import IndexSweep

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Mark running jobs whose worker stopped heartbeating as lost, periodically."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="reap once and exit")
        parser.add_argument(
            "--every",
            type=float,
            default=None,
            help="seconds between sweeps (default HUB_JOB_REAP_EVERY_S)",
        )

    def handle(self, *args, once: bool = False, every: float | None = None, **opts):
        every = float(every or settings.HUB_JOB_REAP_EVERY_S)
        stop = threading.Event()
        sweep = IndexSweep()
        if not once:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        while True:
            try:
                lost = jobs_reap_lost()
            except Exception as e:  # the database is briefly unavailable: try again next sweep
                log.warning("jobs reaper: %s", e)
                lost = []
            try:
                sweep.run()  # never raises
            finally:
                if not once:  # a long-lived process: do not hold a connection between sweeps
                    close_old_connections()
            for job_id in lost:
                self.stdout.write(
                    f"job {job_id}: no heartbeat for over {settings.HUB_JOB_LOST_AFTER_S} s; marked lost"
                )
            self.stdout.flush()
            if once or stop.wait(every):
                return
