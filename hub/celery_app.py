"""The hub's Celery application (``celery -A hub.celery_app worker -Q hub``: search indexing,
which needs the database). Broker and result backend are Redis (``HUB_REDIS_URL``);
configuration comes from Django settings. Job workers on other hosts run
``celery -A workers.celery_app worker -Q cpu`` (or ``gpu``): the same queues without Django.

The hub sends tasks by name (``app.send_task("workers.tasks.run_job", ...)``,
``"hub.tracking.tasks.*"``) and never imports the workers' code; a worker process imports
``workers.tasks`` at start (``imports`` below), whose code reaches the hub only through its API.
Celery's worker process still sets Django up for itself (the hub's own tasks need it)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="cpu",
    # Hub housekeeping (search indexing) has its own queue, so long-running jobs on the
    # cpu queue never delay it.
    task_routes={"hub.tracking.tasks.*": {"queue": "hub"}},
    imports=("workers.tasks",),
)
app.autodiscover_tasks()
