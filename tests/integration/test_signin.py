"""Dashboard sign-in: a cross-site form cannot sign a victim in (login CSRF), and guessing
passwords is throttled per account and per client address."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from hub.accounts import services

pytestmark = [pytest.mark.integration, pytest.mark.pg]
LOGIN = "/api/v1/auth/login"


@pytest.fixture
def carol(db):
    return services.user_create(username="carol", password="right-horse-battery")


def browser() -> tuple[APIClient, str]:
    """A client that enforces CSRF like a browser session, with the token /auth/csrf gives."""
    c = APIClient(enforce_csrf_checks=True)
    token = c.get("/api/v1/auth/csrf").json()["csrf_token"]
    return c, token


def sign_in(c: APIClient, token: str | None, username: str, password: str, **extra):
    headers = {"HTTP_X_CSRFTOKEN": token} if token else {}
    return c.post(
        LOGIN, {"username": username, "password": password}, format="json", **headers, **extra
    )


def test_sign_in_without_a_csrf_token_is_refused(carol):
    c = APIClient(enforce_csrf_checks=True)
    r = c.post(LOGIN, {"username": "carol", "password": "right-horse-battery"}, format="json")
    assert r.status_code == 403, r.content
    assert "sessionid" not in r.cookies and c.get("/api/v1/whoami").status_code == 401


def test_sign_in_from_another_origin_is_refused(carol):
    c, token = browser()
    r = sign_in(c, token, "carol", "right-horse-battery", HTTP_ORIGIN="https://evil.example")
    assert r.status_code == 403, r.content
    assert c.get("/api/v1/whoami").status_code == 401


def test_sign_in_with_the_csrf_token_from_the_same_origin_works(carol):
    c, token = browser()
    r = sign_in(c, token, "carol", "right-horse-battery", HTTP_ORIGIN="http://testserver")
    assert r.status_code == 200, r.content
    assert c.get("/api/v1/whoami").json()["username"] == "carol"


def test_wrong_passwords_for_one_account_are_throttled(carol):
    c, token = browser()
    for _ in range(5):
        assert sign_in(c, token, "carol", "guess").status_code == 401
    r = sign_in(c, token, "carol", "guess")
    assert r.status_code == 429 and r.json()["error"]["code"] == "throttled"
    assert 0 < int(r["Retry-After"]) <= 15 * 60
    # Locked: even the right password waits, so guessing learns nothing.
    assert sign_in(c, token, "carol", "right-horse-battery").status_code == 429
    # Another address is throttled for this account as well (the account is the target).
    other, t2 = browser()
    assert (
        sign_in(other, t2, "carol", "right-horse-battery", REMOTE_ADDR="10.9.9.9").status_code
        == 429
    )


def test_one_address_guessing_many_accounts_is_throttled(db):
    c, token = browser()
    for i in range(20):
        assert sign_in(c, token, f"user{i}", "guess").status_code == 401
    r = sign_in(c, token, "someone-else", "guess")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0


def test_a_successful_sign_in_resets_the_account_count(carol):
    c, token = browser()
    for _ in range(4):
        sign_in(c, token, "carol", "guess")
    assert sign_in(c, token, "carol", "right-horse-battery").status_code == 200
    c, token = browser()
    for _ in range(4):
        assert sign_in(c, token, "carol", "guess").status_code == 401
    assert sign_in(c, token, "carol", "right-horse-battery").status_code == 200


def test_the_limits_are_settings(carol, settings):
    settings.HUB_SIGNIN_MAX_FAILURES_PER_ACCOUNT = 2
    c, token = browser()
    for _ in range(2):
        sign_in(c, token, "carol", "guess")
    assert sign_in(c, token, "carol", "guess").status_code == 429
