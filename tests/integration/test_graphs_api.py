"""The graphs API against PostgreSQL and the blob store, with a worker that reports through
the real worker endpoints: the graph size limit is enforced when the worker registers the
file (nothing stored), a stored graph is served to readers of the repo and 404 to others."""

from __future__ import annotations

import json

import pytest

from hub.jobs.models import JobArtifact
from hub.registry.models import FileObject
from hub.shared.chunking import chunk_hash
from tests.conftest import client_for
from tests.helpers import model, push, st_bytes
from tests.integration.test_jobs_api import Worker

pytestmark = [pytest.mark.integration, pytest.mark.pg]

GRAPH = {
    "params_total": 3,
    "modules": [{"path": "lin", "type": "Linear", "params": 3}],
    "nodes": [
        {
            "id": "p",
            "op": "placeholder",
            "kind": "parameter",
            "target": "lin.weight",
            "module": "lin",
            "params": 3,
        },
        {
            "id": "topk",
            "op": "call_function",
            "kind": "op",
            "target": "aten.topk.default",
            "module": "r",
            "args": {"arg1": 2},
        },
    ],
    "edges": [["p", "topk"]],
}


@pytest.fixture
def setup(api, make_user):
    from hub.accounts.services import worker_service_credential_create

    client, _ = api
    client.post("/api/v1/repos", {"name": "secret", "private": True}, format="json")
    push(client, "alice/secret", {"model.safetensors": st_bytes(model())}, message="base")
    worker = Worker(worker_service_credential_create(name="worker")[1])
    job = client.post(
        "/api/v1/jobs",
        {"project": "alice/exp", "kind": "inspect", "config": {}, "base": "alice/secret@main"},
        format="json",
    ).json()
    assert (
        worker.post(
            f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w"}, format="json"
        ).status_code
        == 200
    )
    _, other = make_user("mallory")
    return client, worker, job, client_for(other)


def _upload(worker, job_id: str, data: bytes) -> list:
    digest = chunk_hash(data)
    attempt = worker.attempts[job_id]
    r = attempt.put(
        f"/api/v1/jobs/{job_id}/worker/chunks/{digest}",
        data,
        content_type="application/octet-stream",
    )
    assert r.status_code in (200, 201), r.content
    return [[digest, len(data)]]


def test_a_graph_over_the_limit_is_refused_and_nothing_is_stored(setup, settings):
    client, worker, job, _ = setup
    settings.HUB_INSPECT_MAX_GRAPH_BYTES = 64
    data = json.dumps(GRAPH).encode()
    chunks = _upload(worker, job["id"], data)
    files_before = FileObject.objects.count()
    r = worker.post(
        f"/api/v1/jobs/{job['id']}/worker/artifacts",
        {"path": "inspect/graph.json", "kind": "inspect_graph", "chunks": chunks},
        format="json",
    )
    assert r.status_code == 413, r.content
    assert r.json()["error"]["code"] == "graph_too_large"
    assert r.json()["error"]["details"] == {"limit": 64, "size": len(data)}
    assert not JobArtifact.objects.filter(job_id=job["id"]).exists()
    assert FileObject.objects.count() == files_before
    # the same file is another kind's artifact: that limit is the graph's alone
    ok = worker.post(
        f"/api/v1/jobs/{job['id']}/worker/artifacts",
        {"path": "profile/ops.json", "kind": "profile_ops", "chunks": chunks},
        format="json",
    )
    assert ok.status_code == 201


def test_a_stored_graph_is_served_to_readers_and_404_to_others(setup):
    client, worker, job, other = setup
    chunks = _upload(worker, job["id"], json.dumps(GRAPH).encode())
    r = worker.post(
        f"/api/v1/jobs/{job['id']}/worker/artifacts",
        {"path": "inspect/graph.json", "kind": "inspect_graph", "chunks": chunks},
        format="json",
    )
    assert r.status_code == 201
    # not yet succeeded: the job's graph is readable, the commit has none yet
    g = client.get(f"/api/v1/jobs/{job['id']}/graph").json()
    assert g["graph"]["params_total"] == 3 and g["onnx_url"] is None
    none = client.get("/api/v1/repos/alice/secret/commits/main/graph")
    assert none.status_code == 404 and none.json()["error"]["code"] == "graph_not_found"
    done = worker.post(
        f"/api/v1/jobs/{job['id']}/worker/finish", {"status": "succeeded"}, format="json"
    )
    assert done.status_code == 200
    by_commit = client.get("/api/v1/repos/alice/secret/commits/main/graph").json()
    assert by_commit["job"] == job["id"] and by_commit["commit"] == job["base"]["commit"]
    # the project alice/exp is readable by others; the private repo's graph is not
    for path in (
        f"/api/v1/jobs/{job['id']}/graph",
        f"/api/v1/jobs/{job['id']}/artifacts/inspect/graph.json",
        "/api/v1/repos/alice/secret/commits/main/graph",
        "/api/v1/graphs/diff?a=alice/secret@main&b=alice/secret@main",
    ):
        r = other.get(path)
        assert r.status_code == 404, (path, r.status_code)
    d = client.get("/api/v1/graphs/diff?a=alice/secret@main&b=alice/secret@main").json()
    assert d["diff"]["summary"]["changed"] == 0 and d["diff"]["summary"]["unchanged"] == len(
        GRAPH["nodes"]
    )


def test_a_non_inspect_job_has_no_graph(setup):
    client, _, _, _ = setup
    push(client, "alice/secret", {"model.safetensors": st_bytes(model(1))}, message="again")
    job = client.post(
        "/api/v1/jobs",
        {"project": "alice/exp", "kind": "evaluate", "config": {}, "base": "alice/secret@main"},
        format="json",
    ).json()
    r = client.get(f"/api/v1/jobs/{job['id']}/graph")
    assert r.status_code == 404 and r.json()["error"]["code"] == "graph_not_found"
