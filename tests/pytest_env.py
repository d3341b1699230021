"""Loaded with ``-p`` (pyproject addopts) before pytest-django reads the settings: the test
session's environment. Settings refuse to run without a secret key outside ``hub serve``."""

import os

os.environ.setdefault("HUB_SECRET_KEY", "test-only-" + os.urandom(16).hex())
