"""Who may call a job's worker endpoints: only a live credential of that job's current attempt,
handed out by ``/worker/start`` to the holder of the workers' service credential. No user
token works there, however privileged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hub.accounts.models import WorkerCredential
from hub.accounts.services import token_digest, worker_service_credential_create
from hub.jobs.models import Job
from tests.conftest import client_for
from tests.helpers import TINY

pytestmark = [pytest.mark.integration, pytest.mark.pg]

WORKER_CALLS = [
    ("post", "heartbeat", {}),
    ("post", "logs", {"lines": [[0, 1.7e9, "stdout", "injected"]]}),
    ("post", "chunks/missing", {"chunks": []}),
    ("post", "artifacts", {"path": "x", "chunks": []}),
    ("post", "profile", {"ops": []}),
    ("post", "finish", {"status": "failed", "reason": "x"}),
    ("post", "requeue", {"reason": "x"}),
]


@pytest.fixture
def hub(api, make_user):
    client, _ = api
    _, service_secret = worker_service_credential_create(name="worker")
    return client, client_for(service_secret)


def launch(client) -> dict:
    r = client.post(
        "/api/v1/jobs", {"project": "alice/exp", "kind": "train", "config": TINY}, format="json"
    )
    assert r.status_code == 201, r.content
    return r.json()


def start(service, job_id: str) -> str:
    r = service.post(f"/api/v1/jobs/{job_id}/worker/start", {"worker": "w1"}, format="json")
    assert r.status_code == 200, r.content
    return r.json()["credential"]


def call(c, job_id, method, path, body):
    if path == "chunks/x":
        return c.put(
            f"/api/v1/jobs/{job_id}/worker/chunks/{'0' * 64}",
            b"x",
            content_type="application/octet-stream",
        )
    return getattr(c, method)(f"/api/v1/jobs/{job_id}/worker/{path}", body, format="json")


def test_no_user_token_works_on_any_worker_endpoint(hub, make_user):
    client, service = hub
    job = launch(client)
    _, admin_read = make_user("root", admin=True, scope="read")
    _, admin_write = make_user("root2", admin=True)
    start(service, job["id"])
    for token in (admin_read, admin_write):
        c = client_for(token)
        assert (
            c.post(f"/api/v1/jobs/{job['id']}/worker/start", {}, format="json").status_code == 403
        )
        for method, path, body in [*WORKER_CALLS, ("put", "chunks/x", None)]:
            r = call(c, job["id"], method, path, body)
            assert r.status_code == 403 and r.json()["error"]["code"] == "not_a_worker", (
                path,
                r.content,
            )
    assert Job.objects.get(pk=job["id"]).status == "running"


def test_an_anonymous_caller_is_401_on_worker_endpoints(hub):
    client, service = hub
    job = launch(client)
    start(service, job["id"])
    for method, path, body in WORKER_CALLS:
        assert call(client_for(None), job["id"], method, path, body).status_code == 401


def test_start_returns_a_credential_stored_only_as_its_hash_and_bound_to_the_attempt(hub):
    client, service = hub
    job = launch(client)
    secret = start(service, job["id"])
    row = WorkerCredential.objects.get(digest=token_digest(secret))
    assert row.kind == "attempt" and row.job_id == job["id"] and row.attempt == 1
    assert not WorkerCredential.objects.filter(digest=secret).exists() and secret not in row.prefix
    assert row.expires_at > timezone.now() + timedelta(
        seconds=3600
    )  # the job's time limit, plus a margin
    attempt = client_for(secret)
    assert (
        attempt.post(f"/api/v1/jobs/{job['id']}/worker/heartbeat", {}, format="json").json()[
            "status"
        ]
        == "running"
    )
    done = attempt.post(
        f"/api/v1/jobs/{job['id']}/worker/finish", {"status": "succeeded"}, format="json"
    )
    assert done.status_code == 200 and done.json()["status"] == "succeeded"


def test_the_service_credential_only_claims_jobs(hub):
    client, service = hub
    job = launch(client)
    start(service, job["id"])
    for method, path, body in WORKER_CALLS:
        r = call(service, job["id"], method, path, body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_a_worker", (
            path,
            r.content,
        )
    # Not a user either: it reads nothing else.
    assert service.get("/api/v1/whoami").status_code in (401, 403)
    assert service.get("/api/v1/repos/alice/moe").status_code in (401, 403)


def test_the_service_credential_may_fail_a_job_it_could_not_start_and_nothing_more(hub):
    client, service = hub
    job = launch(client)
    bad = service.post(
        f"/api/v1/jobs/{job['id']}/worker/finish", {"status": "succeeded"}, format="json"
    )
    assert bad.status_code == 403
    r = service.post(
        f"/api/v1/jobs/{job['id']}/worker/finish",
        {"status": "failed", "reason": "no sandbox"},
        format="json",
    )
    assert r.status_code == 200 and r.json()["status"] == "failed"


def test_a_credential_works_only_for_its_own_job(hub):
    client, service = hub
    a, b = launch(client), launch(client)
    secret_a = start(service, a["id"])
    start(service, b["id"])
    r = client_for(secret_a).post(f"/api/v1/jobs/{b['id']}/worker/heartbeat", {}, format="json")
    assert r.status_code == 403
    r = client_for(secret_a).post(
        f"/api/v1/jobs/{b['id']}/worker/logs", {"lines": [[0, 1.7e9, "stdout", "x"]]}, format="json"
    )
    assert r.status_code == 403


@pytest.mark.parametrize("end", ["finish", "requeue", "lost", "cancel"])
def test_the_credential_is_revoked_when_the_attempt_ends(hub, end):
    client, service = hub
    job = launch(client)
    secret = start(service, job["id"])
    attempt = client_for(secret)
    if end == "finish":
        attempt.post(
            f"/api/v1/jobs/{job['id']}/worker/finish",
            {"status": "failed", "reason": "x"},
            format="json",
        )
    elif end == "requeue":
        attempt.post(f"/api/v1/jobs/{job['id']}/worker/requeue", {"reason": "x"}, format="json")
    elif end == "lost":
        Job.objects.filter(pk=job["id"]).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        from hub.jobs.services import jobs_reap_lost

        assert jobs_reap_lost() == [job["id"]]
        assert client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "lost"
    else:
        client.post(f"/api/v1/jobs/{job['id']}/cancel")
        attempt.post(
            f"/api/v1/jobs/{job['id']}/worker/finish",
            {"status": "cancelled", "reason": "x"},
            format="json",
        )
    assert WorkerCredential.objects.get(digest=token_digest(secret)).revoked_at is not None
    r = attempt.post(
        f"/api/v1/jobs/{job['id']}/worker/logs",
        {"lines": [[0, 1.7e9, "stdout", "x"]]},
        format="json",
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "job_credential_revoked", r.content
    if end == "requeue":  # the next attempt gets a new credential; the old one stays dead
        again = start(service, job["id"])
        assert again != secret
        assert (
            client_for(again)
            .post(f"/api/v1/jobs/{job['id']}/worker/heartbeat", {}, format="json")
            .status_code
            == 200
        )
        assert (
            attempt.post(
                f"/api/v1/jobs/{job['id']}/worker/heartbeat", {}, format="json"
            ).status_code
            == 401
        )


def test_an_expired_credential_is_refused(hub):
    client, service = hub
    job = launch(client)
    secret = start(service, job["id"])
    WorkerCredential.objects.filter(digest=token_digest(secret)).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    r = client_for(secret).post(f"/api/v1/jobs/{job['id']}/worker/heartbeat", {}, format="json")
    assert r.status_code == 401


def test_the_attempt_credential_reaches_only_what_the_job_needs(hub, make_user):
    """It acts as the job's launcher, on the job's own repos, project and run only."""
    client, service = hub
    client.post("/api/v1/repos", {"name": "moe"}, format="json")
    client.post("/api/v1/repos", {"name": "secret", "private": True}, format="json")
    r = client.post(
        "/api/v1/jobs",
        {"project": "alice/exp", "kind": "train", "config": TINY, "target": "alice/moe@main"},
        format="json",
    )
    job = r.json()
    attempt = client_for(start(service, job["id"]))
    assert attempt.get("/api/v1/repos/alice/moe/branches/main").status_code == 200
    assert attempt.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    assert attempt.get("/api/v1/repos/alice/secret").status_code in (401, 403)
    assert attempt.get("/api/v1/tokens").status_code in (401, 403)
    assert attempt.post("/api/v1/tokens", {"name": "x"}, format="json").status_code in (401, 403)
    assert attempt.delete("/api/v1/repos/alice/moe").status_code in (401, 403)


def test_a_worker_credential_can_be_created_from_the_command_line(db):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("hub_admin", "create-worker-credential", "--name", "gpu-pool", stdout=out)
    secret = out.getvalue().strip()
    row = WorkerCredential.objects.get(digest=token_digest(secret))
    assert row.kind == "service" and row.name == "gpu-pool" and row.expires_at is None


def test_a_job_cannot_learn_that_someone_elses_private_repo_exists(hub, make_user):
    """A private target or base the launcher cannot read answers exactly like a repo that does
    not exist; a repo they can read but not write stays a 403 (that reveals nothing new)."""
    client, _ = hub
    _, bob = make_user("bob")
    b = client_for(bob)
    b.post("/api/v1/repos", {"name": "hidden", "private": True}, format="json")
    b.post("/api/v1/repos", {"name": "open"}, format="json")

    def launch_as_alice(**extra):
        return client.post(
            "/api/v1/jobs",
            {"project": "alice/exp", "kind": "train", "config": TINY, **extra},
            format="json",
        )

    for field in ("target", "base"):
        hidden = launch_as_alice(**{field: "bob/hidden@main"})
        missing = launch_as_alice(**{field: "bob/nothing-here@main"})
        assert hidden.status_code == missing.status_code == 404, (field, hidden.content)
        assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "repo_not_found"
        assert hidden.json()["error"]["message"].replace("hidden", "X") == missing.json()["error"][
            "message"
        ].replace("nothing-here", "X")
    readable = launch_as_alice(target="bob/open@main")
    assert readable.status_code == 403 and readable.json()["error"]["code"] == "target_forbidden"
    assert Job.objects.count() == 0


def test_the_site_admin_account_older_workers_used_is_retired(db, make_user):
    """Older data dirs hold ``worker-token``, a site admin's token of user ``hub-worker``:
    ``hub admin deactivate-user`` (which ``hub serve`` runs once for that file) revokes it."""
    from io import StringIO

    from django.core.management import call_command

    user, secret = make_user("hub-worker", admin=True)
    assert client_for(secret).get("/api/v1/whoami").status_code == 200
    out = StringIO()
    call_command("hub_admin", "deactivate-user", "--user", "hub-worker", stdout=out)
    assert "1 token(s) revoked" in out.getvalue()
    assert client_for(secret).get("/api/v1/whoami").status_code == 401
    user.refresh_from_db()
    assert not user.is_active and not user.has_usable_password()


def test_hub_serve_retires_an_old_worker_token_file_once(tmp_path, monkeypatch):
    from hub import serve

    calls = []
    monkeypatch.setattr(serve.subprocess, "run", lambda argv, **kw: calls.append(argv))
    (tmp_path / "worker-token").write_text("hub_legacy")
    serve._retire_legacy_worker_account({}, tmp_path)
    serve._retire_legacy_worker_account({}, tmp_path)
    assert len(calls) == 1 and calls[0][-4:] == [
        "deactivate-user",
        "--user",
        "hub-worker",
        "--missing-ok",
    ]
    assert not (tmp_path / "worker-token").exists()
