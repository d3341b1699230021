"""Loaded with ``-p`` (pyproject addopts) before pytest-django reads the settings: the test
session's environment. Each pytest process gets a fresh data dir (so its SQLite test database
is its own, and two runs side by side never share one file); settings refuse to run without a
secret key outside ``hub serve``."""

import os
import tempfile

os.environ.setdefault("HUB_DATA_DIR", tempfile.mkdtemp(prefix="hub-test-"))
os.environ.setdefault("HUB_BLOB_FSYNC", "0")
os.environ.setdefault("HUB_SECRET_KEY", "test-only-" + os.urandom(16).hex())
