"""The inference worker: a long-lived sandboxed engine that keeps recently used commits
loaded and streams generated tokens (``service.py``: the supervisor side; ``engine.py``: the
process inside the sandbox; ``tasks.py``: the Celery task on queue ``infer``)."""
