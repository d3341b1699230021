"""The profile memory and profile diff endpoints: pairing by identical settings (reuse, not a
second launch), clear errors for bad sides, and privacy (a private repo's refs and a private
project's jobs are 404 to others)."""

from __future__ import annotations

import pytest

from hub.jobs.models import Job
from tests.conftest import client_for
from tests.helpers import model, push, st_bytes

pytestmark = [pytest.mark.integration, pytest.mark.pg]

CFG = {"profile": {"steps": 2, "batch_size": 4}}


@pytest.fixture
def alice(api):
    client, _ = api
    client.post("/api/v1/repos", {"name": "moe"}, format="json")
    push(client, "alice/moe", {"model.safetensors": st_bytes(model())}, message="base")
    client.post("/api/v1/repos", {"name": "secret", "private": True}, format="json")
    push(client, "alice/secret", {"model.safetensors": st_bytes(model())}, message="base")
    client.post("/api/v1/projects", {"name": "hidden", "private": True}, format="json")
    return client


def prepare(client, **body):
    return client.post("/api/v1/jobs/profile-diff", body, format="json")


def test_refs_of_one_commit_pair_with_one_profile_and_a_diff_waits_for_it(alice):
    r = prepare(alice, a="alice/moe@main", b="alice/moe@main", config=CFG, project="alice/exp")
    assert r.status_code == 200, r.content
    d = r.json()
    # Side B reuses the profile just launched for A: same commit, same settings.
    assert d["a"]["launched"] is True and d["b"]["launched"] is False
    assert d["a"]["job"] == d["b"]["job"] and d["ready"] is False
    assert Job.objects.filter(kind="profile").count() == 1
    # Asked again: nothing new is launched.
    again = prepare(alice, a=d["a"]["job"], b="alice/moe@main").json()
    assert again["b"]["job"] == d["a"]["job"] and Job.objects.filter(kind="profile").count() == 1
    # Other settings: another profile.
    other = prepare(
        alice,
        a="alice/moe@main",
        b="alice/moe@main",
        config={"profile": {"steps": 3}},
        project="alice/exp",
    )
    assert other.json()["a"]["job"] != d["a"]["job"]
    # A job and settings other than its own: refused, not paired with a mismatched profile.
    r = prepare(alice, a=d["a"]["job"], b="alice/moe@main", config={"profile": {"steps": 3}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "profile_settings_differ"
    r = alice.get("/api/v1/jobs/profile-diff", {"a": d["a"]["job"], "b": d["b"]["job"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "profile_not_ready"
    r = alice.get(f"/api/v1/jobs/{d['a']['job']}/profile/memory")
    assert r.status_code == 404 and r.json()["error"]["code"] == "profile_memory_missing"


def test_bad_sides_are_clear_4xx_and_launch_nothing(alice):
    cases = [
        ({"a": "alice/moe@no-such", "b": "alice/moe@main"}, 404, "ref_not_found"),
        ({"a": "nobody/none@main", "b": "alice/moe@main"}, 404, "repo_not_found"),
        ({"a": "not a ref", "b": "alice/moe@main"}, 400, "profile_side_invalid"),
        ({"a": "deadbeef0000", "b": "alice/moe@main"}, 404, "job_not_found"),
        ({"a": "alice/moe@main", "b": "alice/moe@main"}, 400, "profile_config_required"),
        ({"a": "alice/moe@main", "b": "alice/moe@main", "config": CFG}, 400, "project_required"),
        (
            {"a": "alice/moe@main", "b": "alice/moe@main", "config": {"profile": {"steps": -1}}},
            400,
            "invalid_config",
        ),
    ]
    for body, status, code in cases:
        r = prepare(alice, **body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.content)
    assert Job.objects.count() == 0
    r = alice.get("/api/v1/jobs/profile-diff", {"a": "x"})
    assert r.status_code == 400


def test_a_train_job_is_not_a_profile(alice):
    from tests.helpers import TINY

    j = alice.post(
        "/api/v1/jobs", {"project": "alice/exp", "kind": "train", "config": TINY}, format="json"
    ).json()
    r = alice.get(f"/api/v1/jobs/{j['id']}/profile/memory")
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_a_profile"
    r = prepare(alice, a=j["id"], b="alice/moe@main")
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_a_profile"


def test_private_refs_and_jobs_are_404_to_others(alice, make_user):
    d = prepare(
        alice, a="alice/secret@main", b="alice/secret@main", config=CFG, project="alice/hidden"
    ).json()
    job = d["a"]["job"]
    _, token = make_user("mallory")
    mallory = client_for(token)
    r = prepare(mallory, a="alice/secret@main", b="alice/moe@main", config=CFG, project="mallory/x")
    assert r.status_code == 404 and r.json()["error"]["code"] == "repo_not_found"
    r = prepare(mallory, a=job, b="alice/moe@main", project="mallory/x")
    assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
    r = mallory.get(f"/api/v1/jobs/{job}/profile/memory")
    assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
    r = mallory.get("/api/v1/jobs/profile-diff", {"a": job, "b": job})
    assert r.status_code == 404
    # Nor can she launch profiles into alice's project with alice's public model.
    r = prepare(mallory, a="alice/moe@main", b="alice/moe@main", config=CFG, project="alice/exp")
    assert r.status_code in (403, 404), r.content
    assert Job.objects.filter(created_by__username="mallory").count() == 0


def _lifetimes(n: int) -> dict:
    cats = ["parameter", "gradient", "optimizer_state", "activation", "temporary", "input", "other"]
    tensors = [
        {
            "id": i,
            "category": "activation",
            "bytes": 100 + i,
            "alloc_ms": float(i),
            "free_ms": float(i + 1),
            "op": "aten::mm",
            "module": "blocks.0",
        }
        for i in range(n)
    ]
    points = [[float(i), 0, 0, 0, 100 + i, 0, 0, 0] for i in range(n)]
    return {
        "device": "cpu",
        "categories": cats,
        "columns": ["t_ms", *cats],
        "points": points,
        "duration_ms": float(n),
        "peak": {
            "t_ms": float(n - 1),
            "bytes": 100 + n - 1,
            "by_category": dict.fromkeys(cats, 0) | {"activation": 100 + n - 1},
            "live_count": n,
            "live": list(range(n))[::-1],
        },
        "tensor_count": n,
        "tensors": tensors,
        "longest": list(range(n)),
        "largest": list(range(n))[::-1],
    }


def _upload(worker, job_id: str, data: bytes) -> list:
    from hub.shared.chunking import chunk_hash

    digest = chunk_hash(data)
    r = worker.attempts[job_id].put(
        f"/api/v1/jobs/{job_id}/worker/chunks/{digest}",
        data,
        content_type="application/octet-stream",
    )
    assert r.status_code in (200, 201), r.content
    return [[digest, len(data)]]


@pytest.fixture
def profile_job(alice):
    from hub.accounts.services import worker_service_credential_create
    from tests.integration.test_jobs_api import Worker

    d = prepare(alice, a="alice/moe@main", b="alice/moe@main", config=CFG, project="alice/exp")
    job = d.json()["a"]["job"]
    worker = Worker(worker_service_credential_create(name="worker")[1])
    r = worker.post(f"/api/v1/jobs/{job}/worker/start", {"worker": "w"}, format="json")
    assert r.status_code == 200

    def store(data: bytes) -> None:
        r = worker.post(
            f"/api/v1/jobs/{job}/worker/artifacts",
            {
                "path": "profile/lifetimes.json",
                "kind": "profile_lifetimes",
                "chunks": _upload(worker, job, data),
            },
            format="json",
        )
        assert r.status_code == 201, r.content

    return job, store


def test_memory_is_capped_to_the_limits_keeping_the_peak(alice, profile_job, settings):
    import json

    job, store = profile_job
    store(json.dumps(_lifetimes(50)).encode())
    settings.HUB_PROFILE_MEMORY_MAX_TENSORS = 5
    settings.HUB_PROFILE_MEMORY_MAX_POINTS = 7
    m = alice.get(f"/api/v1/jobs/{job}/profile/memory").json()
    assert m["tensor_count"] == 50 and len(m["points"]) == 7
    assert max(sum(p[1:]) for p in m["points"]) == m["peak"]["bytes"] == 149
    assert m["longest"] == [0, 1, 2, 3, 4] and m["largest"] == [49, 48, 47, 46, 45]
    assert m["peak"]["live"] == [49, 48, 47, 46, 45] and m["peak"]["live_count"] == 50
    assert {t["id"] for t in m["tensors"]} == {0, 1, 2, 3, 4, 45, 46, 47, 48, 49}
    assert m["snapshot"] is False


def test_an_unreadable_lifetimes_file_is_a_409_not_a_500(alice, profile_job):
    job, store = profile_job
    store(b'{"points": "not a list"}')
    r = alice.get(f"/api/v1/jobs/{job}/profile/memory")
    assert r.status_code == 409 and r.json()["error"]["code"] == "profile_memory_unreadable"
