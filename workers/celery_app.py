"""The job workers' Celery application, without Django:
``celery -A workers.celery_app worker -Q cpu`` (or ``-Q gpu``).

A job worker needs the hub's URL, the workers' credential and the broker, nothing else: no
database, no search engine, no secret key, no shared volume (``workers.settings`` lists what it
reads). It consumes the same queues, under the same Redis key prefix, as the hub's own Celery
application (``hub.celery_app``, which the hub side keeps for its search indexer because that
one reads the database) publishes to, with the same delivery settings.
"""

from __future__ import annotations

from celery import Celery

from workers.settings import load

_settings = load()

app = Celery("hub")
app.conf.update(
    broker_url=_settings.broker_url,
    # A worker returns nothing the hub reads back: no result backend.
    task_ignore_result=True,
    broker_connection_timeout=2,
    broker_transport_options={"global_keyprefix": _settings.redis_prefix},
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="cpu",
    imports=("workers.tasks", "workers.inference.tasks"),
)
