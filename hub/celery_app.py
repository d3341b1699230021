"""The Celery application (``celery -A hub.celery_app worker -Q cpu``). Broker and result
backend are Redis (``HUB_REDIS_URL``); configuration comes from Django settings."""

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
