"""Code the SDK, the server and the workers share, in one Django-free package.

The rule: nothing under ``hub/shared/`` imports Django, Django REST framework, Celery or
torch (``tests/unit/test_shared_package.py`` checks every module's imports), so the SDK, the
hub and the job supervisor all import it as it is. What lives here is a format or a rule
that both sides must agree on byte for byte:

* ``paths``: the one rule for file paths in a repository tree;
* ``tensors`` and ``chunking``: safetensors headers and content-addressed chunking;
* ``wire``: the binary encoding of a metric batch;
* ``spool``: the on-disk layout of the SDK's spool of unsent metrics;
* ``resources``: a job's resource requests, their defaults and their bounds.

A module here raises plain exceptions with a ``code`` (``PathRefused``,
``ResourcesRefused``); the server turns them into its API errors, the SDK into its own.
"""
