"""The API contract holds: the OpenAPI schema of /api/v1 is valid without a warning, describes
every operation's bodies and errors, and the hub answers as it says (schemathesis).

- ``manage.py spectacular --validate --fail-on-warn`` passes;
- every operation has a response schema that is a component (a serializer), lists its error
  statuses with the one ``Error`` component, and takes the Bearer token or the session cookie;
- schemathesis, over every operation of the schema, against the hub's WSGI app with a write
  token and a seeded repo, project, run and finished job: no 5xx, no answer that breaks its
  schema, no status the schema does not list. Three passes per operation: generated input,
  valid input against the seeded objects, and invalid input (schemathesis' negative mode)
  against them. Examples are bounded (``HUB_CONTRACT_EXAMPLES`` per operation and pass,
  default 10) and derandomized, so a run is repeatable. Deletes run last; the token revoked
  is a spare one; the log stream is followed on a finished job, so it ends.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import client_for
from tests.helpers import model, push, st_bytes

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("HUB_CONTRACT_EXAMPLES", "10"))


def _schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, op


# --- the schema ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """``manage.py spectacular --validate --fail-on-warn``, as a user runs it: its result and
    the schema file it wrote."""
    out = tmp_path_factory.mktemp("openapi") / "schema.yaml"
    r = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return r, out


def test_schema_validates_with_no_generator_error_or_warning(generated):
    r, out = generated
    assert r.returncode == 0, r.stderr[-5000:]
    assert "Warning" not in r.stderr and "Error" not in r.stderr, r.stderr[-5000:]
    assert out.stat().st_size > 10_000


def test_dashboard_api_types_are_generated_from_the_current_schema(generated, tmp_path):
    """frontend/src/api/schema.d.ts is openapi-typescript's output for this schema: an API
    change without `npm run api:types` fails here (and `npm run api:check`)."""
    tool = ROOT / "frontend" / "node_modules" / ".bin" / "openapi-typescript"
    if not tool.exists():
        pytest.skip("the dashboard's dependencies are not installed: cd frontend && npm ci")
    r, schema = generated
    assert r.returncode == 0, r.stderr[-5000:]
    fresh = tmp_path / "schema.d.ts"
    subprocess.run(
        [str(tool), str(schema), "-o", str(fresh)],
        cwd=ROOT / "frontend",
        check=True,
        capture_output=True,
        timeout=300,
    )
    committed = ROOT / "frontend" / "src" / "api" / "schema.d.ts"
    if fresh.read_text() != committed.read_text():
        diff = difflib.unified_diff(
            committed.read_text().splitlines(),
            fresh.read_text().splitlines(),
            "committed",
            "generated",
            lineterm="",
        )
        pytest.fail(
            "frontend/src/api/schema.d.ts is out of date with the API: run "
            "`cd frontend && npm run api:types`\n" + "\n".join(list(diff)[:80])
        )


@pytest.mark.django_db
def test_every_operation_has_a_response_schema_its_errors_and_an_id():
    schema = _schema()
    components = schema["components"]["schemas"]
    ops = list(_operations(schema))
    assert len(ops) >= 70
    assert all(p.startswith("/api/v1/") for p, _, _ in ops)
    ids = [op["operationId"] for _, _, op in ops]
    assert len(ids) == len(set(ids))
    missing_body, bad_errors, undeclared_auth = [], [], []
    for path, method, op in ops:
        responses = op["responses"]
        ok = {s: r for s, r in responses.items() if s.startswith("2")}
        assert ok, (method, path)
        for status, resp in ok.items():
            if status == "204":
                assert "content" not in resp, (method, path)
                continue
            content = resp.get("content")
            if not content:
                missing_body.append(f"{method.upper()} {path} {status}")
                continue
            json_body = content.get("application/json")
            # JSON answers are serializers (components), not free-form objects.
            if json_body is not None and "$ref" not in json_body["schema"]:
                missing_body.append(f"{method.upper()} {path} {status} (not a component)")
        for status, resp in responses.items():
            if status[0] in "45":
                schema_ref = resp.get("content", {}).get("application/json", {}).get("schema")
                if (
                    schema_ref != {"$ref": "#/components/schemas/Error"}
                    or len(resp["content"]) != 1
                ):
                    bad_errors.append(f"{method.upper()} {path} {status}")
        # Every operation can be refused by authentication.
        assert {"401", "403"} <= set(responses), (method, path)
        if any(p["in"] == "path" for p in op.get("parameters", [])):
            assert "404" in responses, (method, path)
        if op.get("requestBody"):
            assert {"400", "413", "415"} <= set(responses), (method, path)
        if {"bearerAuth": []} not in op.get("security", []):
            undeclared_auth.append(f"{method.upper()} {path}")
    assert not missing_body, missing_body
    assert not bad_errors, bad_errors
    # Only the sign-in and its CSRF token are answered without authentication.
    assert set(undeclared_auth) == {"GET /api/v1/auth/csrf", "POST /api/v1/auth/login"}
    # One error component: the envelope of hub/common/errors.py, with its required fields.
    error = components["Error"]
    assert error["required"] == ["error"]
    detail = components[error["properties"]["error"]["$ref"].rsplit("/", 1)[-1]]
    assert set(detail["required"]) == {"code", "message", "details"}
    envelopes = [n for n, c in components.items() if "error" in c.get("properties", {})]
    assert envelopes == ["Error"], envelopes
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["cookieAuth"] == {"type": "apiKey", "in": "cookie", "name": "sessionid"}
    # Required fields are marked: a repo's answer always has its id; creating one needs a name.
    assert "id" in components["RepoOut"]["required"]
    assert components["RepoListCreateInputRequest"]["required"] == ["name"]


# --- schemathesis --------------------------------------------------------------------------------


@pytest.fixture
def seeded(api, settings, elasticsearch_url):
    """alice (write token) with a repo holding a safetensors file, a branch, a tag, a project
    with a run and its metrics, and a finished job; bob exists (for memberships) and alice
    has a second token that the revoke operation may take."""
    from hub.accounts import services as accounts
    from hub.jobs import services as jobs
    from hub.jobs.models import Job
    from hub.tracking import indexing
    from hub.tracking.models import Project
    from tests.fixtures_services import unique_name

    settings.HUB_ELASTICSEARCH_URL = elasticsearch_url
    settings.HUB_ELASTICSEARCH_INDEX_PREFIX = unique_name("hub").replace("_", "-").lower()
    settings.CELERY_TASK_ALWAYS_EAGER = True
    indexing.search_index().ensure_indices()
    client, alice = api
    token = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    accounts.user_create(username="bob")
    spare, _ = accounts.token_create(user=alice, name="spare", scope="write")
    assert client.post("/api/v1/repos", {"name": "moe"}, format="json").status_code == 201
    r = push(client, "alice/moe", {"w/model.safetensors": st_bytes(model(0, n=2, shape=(8, 8)))})
    assert r.status_code == 201, r.content
    sha = r.json()["sha"]
    assert (
        client.post(
            "/api/v1/repos/alice/moe/tags", {"name": "v1", "ref": "main"}, format="json"
        ).status_code
        == 201
    )
    chunk = client.get("/api/v1/repos/alice/moe/info/w/model.safetensors").json()["chunks"][0]
    assert client.post("/api/v1/projects", {"name": "exp"}, format="json").status_code == 201
    run = client.post("/api/v1/projects/alice/exp/runs", {"name": "r1"}, format="json").json()
    got = client.post(
        f"/api/v1/runs/{run['id']}/metrics",
        {"key": "loss", "step": [0, 1, 2], "value": [3.0, 2.5, 2.0]},
        format="json",
    )
    assert got.status_code == 200, got.content
    run2 = client.post("/api/v1/projects/alice/exp/runs", {"name": "r2"}, format="json").json()
    job = Job.objects.create(
        id="job0contract",
        project=Project.objects.get(namespace__name="alice", name="exp"),
        kind="train",
        config={},
        status=Job.Status.CANCELLED,
        created_by=alice,
    )
    # A running job and its attempt's credential: the worker endpoints are exercised with it.
    running = Job.objects.create(
        id="job1contract",
        project=job.project,
        kind="train",
        config={},
        status=Job.Status.QUEUED,
        created_by=alice,
    )
    _, attempt = jobs.job_start(job_id=running.pk, worker="w1", gpus=[])
    yield {
        "token": token,
        "attempt": attempt,
        "running_job": running.pk,
        "spare_token_id": spare.pk,
        "sha": sha,
        "chunk": chunk[0],  # [hash, size]
        "run": run["id"],
        "run2": run2["id"],
        "job": job.pk,
    }
    indexing.search_index().drop_all()


#: Error codes of a 503 that says a service is absent, where this test does not start it
#: (status_code_conformance still requires the 503 to be documented).
ABSENT_HERE = {"no_inference_worker": "the inference playground's worker (queue infer)"}


def _error_code(response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _known_query(path: str, seeded: dict) -> dict | None:
    """Query parameters that an operation needs to reach the seeded objects at all."""
    runs = f"{seeded['run']},{seeded['run2']}"
    return {
        "/api/v1/metrics/series": {"runs": runs, "keys": "loss"},
        "/api/v1/runs/compare": {"runs": runs},
    }.get(path)


def _known_path_parameters(path: str, seeded: dict) -> dict:
    """Path parameters that name the seeded objects, so operations reach real data."""
    known = {
        "namespace": "alice",
        "name": "exp" if path.startswith("/api/v1/projects/") else "moe",
        "branch": "main",
        "tag": "v1",
        "sha": seeded["sha"],
        "digest": seeded["chunk"],
        "path": "w/model.safetensors",
        "run_id": seeded["run"],
        "job_id": seeded["job"],
        # Revoking the token the run itself uses would turn every later call into a 401.
        "token_id": seeded["spare_token_id"],
        "username": "bob",
    }
    names = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
    return {k: v for k, v in known.items() if k in names}


@pytest.fixture
def wsgi_app():
    """The hub's WSGI app inside the test's transaction: like Django's test client, requests
    must not close the test database's connection when they finish."""
    from django.core import signals
    from django.db import close_old_connections

    from hub.wsgi import application

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield application
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
def test_schemathesis_finds_no_server_error_schema_violation_or_undocumented_status(
    seeded, wsgi_app
):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hsettings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_dict(_schema())
    schema.app = wsgi_app

    def no_server_error(ctx, response, case):
        """not_a_server_error, except a documented 503 for a service this test does not run."""
        if response.status_code == 503 and _error_code(response) in ABSENT_HERE:
            return None
        return not_a_server_error(ctx, response, case)

    checks = [no_server_error, response_schema_conformance, status_code_conformance]
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    findings: dict[str, str] = {}
    operations = [r.ok() for r in schema.get_all_operations()]
    # Deletes last, so the seeded objects serve every other operation first; a worker's finish
    # and requeue end the attempt, so they come after its other calls.
    operations.sort(
        key=lambda op: (
            op.method.upper() == "DELETE",
            op.path.endswith(("/worker/finish", "/worker/requeue")),
        )
    )
    calls = 0
    answered: set[str] = set()  # operations that answered 2xx at least once

    for op in operations:
        label = f"{op.method.upper()} {op.path}"
        known = _known_path_parameters(op.path, seeded)
        # The worker endpoints answer a job attempt's credential (a user token gets 403).
        worker = "/worker/" in op.path
        if worker:
            known["job_id"] = seeded["running_job"]
        call_headers = {"Authorization": f"Bearer {seeded['attempt']}"} if worker else headers
        passes = [("generated", {}, GenerationMode.POSITIVE)]
        if known or _known_query(op.path, seeded):
            passes.append(("seeded", known, GenerationMode.POSITIVE))
        # Invalid bodies and parameters against the real objects: a 4xx, never a 500.
        passes.append(("invalid input", known, GenerationMode.NEGATIVE))
        for pass_name, fixed, mode in passes:
            query = _known_query(op.path, seeded) if pass_name == "seeded" else None

            @hsettings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(mode, path_parameters=fixed or None, query=query))
            def check(case):
                nonlocal calls
                calls += 1
                response = case.call_and_validate(
                    headers=call_headers,  # noqa: B023 -- called within this iteration
                    checks=checks,
                )
                if response.status_code < 300:
                    answered.add(label)  # noqa: B023

            try:
                check()
            except Unsatisfiable:
                pass  # nothing to make invalid: every input of the operation is fixed
            except (Exception, BaseExceptionGroup) as e:  # collected, reported together below
                findings[f"{label} ({pass_name})"] = str(e)[:1500]
    assert calls >= len(operations) * EXAMPLES
    never = sorted({f"{o.method.upper()} {o.path}" for o in operations} - answered)
    print(f"{len(answered)}/{len(operations)} operations answered 2xx; never:", *never, sep="\n")
    # Meaningful: most operations reached real objects with the token (not only 401/403/404).
    assert len(answered) >= 0.7 * len(operations), never
    assert not findings, "\n\n".join(f"{k}:\n{v}" for k, v in findings.items())


def test_the_revoke_operation_never_takes_the_token_the_fuzzer_uses(seeded):
    """The run above revokes ``token_id`` = a spare token: its own token keeps working."""
    me = client_for(seeded["token"])
    assert me.delete(f"/api/v1/tokens/{seeded['spare_token_id']}").json()["revoked_at"] is not None
    assert me.get("/api/v1/whoami").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, body",
    [
        ("heartbeat", {"counters": {"received": "many"}}),
        ("heartbeat", {"progress": [1, 2]}),
        ("finish", {"status": "succeeded", "summary": [1]}),
        ("artifacts", {"path": ["x"], "chunks": "abc"}),
        ("chunks/missing", {"chunks": "abc"}),
        ("logs", ["not", "an", "object"]),
        ("profile", ["not", "an", "object"]),
    ],
)
def test_a_worker_body_of_the_wrong_shape_is_a_400_not_a_500(seeded, path, body):
    """Found by the negative pass: worker bodies were read with .get() and int() unchecked."""
    worker = client_for(seeded["attempt"])
    r = worker.post(f"/api/v1/jobs/{seeded['running_job']}/worker/{path}", body, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] in {"validation_error", "invalid_log_line", "invalid_ops"}


@pytest.mark.django_db
def test_the_service_credential_with_bad_gpus_is_a_400_not_a_500(seeded):
    from hub.accounts.services import worker_service_credential_create
    from hub.jobs.models import Job

    queued = Job.objects.create(
        id="job2contract",
        project=Job.objects.get(pk=seeded["job"]).project,
        kind="train",
        config={},
        status=Job.Status.QUEUED,
    )
    _, secret = worker_service_credential_create()
    service = client_for(secret)
    r = service.post(f"/api/v1/jobs/{queued.pk}/worker/start", {"gpus": ["zero"]}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_error", r.content
    assert Job.objects.get(pk=queued.pk).status == Job.Status.QUEUED
