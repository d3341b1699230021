from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "hub.tracking"
    label = "tracking"

    def ready(self) -> None:
        # Bind @shared_task to the configured Celery app (Redis broker) in every process
        # that publishes tasks, not only in workers.
        import hub.celery_app  # noqa: F401
