"""A response sent before the body was read must not break the client's keep-alive connection.

gunicorn drains at most 64 KiB of an unread body before reusing a connection and otherwise
closes it silently; the SDK's next request on that connection then failed with "Server
disconnected" (hub/common/middleware.py). Against the real ``hub serve`` (gunicorn).
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("size", [300 * 1024, 4 * 1024 * 1024])
def test_a_refused_request_with_a_large_body_keeps_the_connection_usable(live_hub, size):
    token = live_hub.make_user(f"keepalive{size}")
    body = b'{"name": "x", "params": {"p": "' + b"v" * size + b'"}}'
    with httpx.Client(base_url=live_hub.url, timeout=30) as client:
        # Refused by authentication, before any view reads the body.
        bad = client.post(
            "/api/v1/projects/nobody/nothing/runs",
            content=body,
            headers={"Authorization": "Bearer hub_not-a-token", "Content-Type": "application/json"},
        )
        assert bad.status_code == 401, bad.text
        # Refused for a project that does not exist (404), with a valid token.
        missing = client.post(
            "/api/v1/projects/nobody/nothing/runs",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert missing.status_code in (403, 404), missing.text
        # The same client's next requests succeed on the kept-alive connection.
        for _ in range(3):
            ok = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200, ok.text
            assert ok.json()["username"] == f"keepalive{size}"
