import logging
import os
import threading

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
application = get_wsgi_application()


def _warm_stores() -> None:
    """Open the metrics store (chdb: load the engine, check the schema) when the web process
    starts, not inside the first request that needs it."""
    try:
        from hub.stores.metrics import get_metrics_store

        get_metrics_store()
    except Exception as e:  # the first request will retry and report it
        logging.getLogger(__name__).warning("metrics store not ready at start: %s", e)


threading.Thread(target=_warm_stores, name="warm-stores", daemon=True).start()
