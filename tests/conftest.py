"""Shared fixtures.

Service fixtures (ClickHouse server, the Elasticsearch-compatible server) live in
tests/fixtures_services.py and start real processes on free loopback ports. The hub's data
dir for the whole session is a fresh temporary folder, set before Django reads settings
(``tests/pytest_env.py``, loaded with ``-p``).
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures_services"]


@pytest.fixture
def blob_dir(settings, tmp_path):
    """Each test gets its own blob store folder."""
    settings.HUB_BLOB_DIR = tmp_path / "blobs"
    return settings.HUB_BLOB_DIR


@pytest.fixture
def make_user(db):
    from hub.accounts import services

    def make(username: str, *, admin: bool = False, scope: str = "write"):
        user = services.user_create(username=username, is_staff=admin)
        _, token = services.token_create(user=user, name="test", scope=scope)
        return user, token

    return make


@pytest.fixture
def api(make_user, blob_dir):
    """(client for alice, alice) — alice is a plain user with a write token."""
    from rest_framework.test import APIClient

    user, token = make_user("alice")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client, user


def client_for(token: str | None):
    from rest_framework.test import APIClient

    c = APIClient()
    if token:
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return c
