"""POST /api/v1/repos/{ns}/{name}/generate against a live hub (pytest-django's live server),
real Redis and the real inference worker: its task runs in a thread of this process (the
Celery hop itself is covered by tests/e2e/test_generate_e2e.py through `hub serve`), pulls
the commit over HTTP with the request's credential and runs the engine in the real sandbox.

Authorisation like a read (private repos 404 to others), the per-user rate limit (429 with
Retry-After), the token, prompt and wall-time bounds, the credential's scope and lifetime."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest
import torch

from hub.client import Client
from hub.shared.inference import QUEUE
from tests.moe.helpers import TINY_MODEL
from tests.sandbox.conftest import needs_sandbox
from workers.moe.checkpoint import save_weights
from workers.moe.config import ModelConfig
from workers.moe.model import MoETransformer

pytestmark = pytest.mark.integration


def sse(resp) -> list[tuple[str, dict]]:
    out, kind = [], None
    for line in resp.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            out.append((kind, json.loads(line[6:])))
    return out


@pytest.fixture
def prefix(settings, monkeypatch):
    p = f"test-infer-{uuid.uuid4().hex[:8]}:"
    settings.HUB_REDIS_PREFIX = p
    monkeypatch.setenv("HUB_REDIS_PREFIX", p)
    yield p
    import redis

    r = redis.Redis.from_url(settings.HUB_REDIS_URL)
    for k in r.scan_iter(f"{p}*"):
        r.delete(k)


@pytest.fixture
def worker_online(settings, prefix):
    from hub.stores.redis import get_redis

    get_redis().presence_announce(queue=QUEUE, hostname="test", info="1", ttl_s=120)


@pytest.fixture
def hub(live_server, make_user, blob_dir, tmp_path, prefix):
    _, alice = make_user("alice")
    _, bob = make_user("bob")
    torch.manual_seed(0)
    w = tmp_path / "weights"
    w.mkdir()
    save_weights(MoETransformer(ModelConfig(**TINY_MODEL)), w)
    with Client(url=live_server.url, token=alice, retries=0) as sdk:
        sdk.create_repo("alice/lm")
        sdk.push(w, repo="alice/lm", message="tiny model")
        sdk.create_repo("alice/secret", private=True)
        sdk.push(w, repo="alice/secret", message="tiny model")
    return {"url": live_server.url, "alice": alice, "bob": bob, "weights": w}


@pytest.fixture
def worker(hub, monkeypatch, tmp_path, settings):
    """The inference worker's task, run in a thread for each request the hub sends."""
    from hub import celery_app
    from workers.inference import tasks

    monkeypatch.setenv("HUB_WORKER_API_URL", hub["url"])
    monkeypatch.setenv("HUB_REDIS_URL", settings.HUB_REDIS_URL)
    monkeypatch.setenv("HUB_INFER_DIR", str(tmp_path / "infer"))
    monkeypatch.setenv("HUB_INFER_CPUS", "1")
    tasks._state.clear()

    class Sent(list):
        """The requests sent, in order; ``ran[id]``: the task's thread and its result."""

        ran: dict[str, tuple[threading.Thread, list[str]]] = {}

    sent = Sent()
    ran = sent.ran

    def send_task(name, args=(), queue=None, **kw):
        assert name == "workers.inference.tasks.generate" and queue == "infer"
        sent.append(args[0])
        out: list[str] = []
        t = threading.Thread(target=lambda: out.append(tasks.generate(args[0])), daemon=True)
        ran[args[0]["id"]] = (t, out)
        t.start()

    monkeypatch.setattr(celery_app.app, "send_task", send_task)
    from hub.stores.redis import get_redis

    get_redis().presence_announce(queue=QUEUE, hostname="test", info="1", ttl_s=120)
    yield sent
    if "service" in tasks._state:
        tasks._state["service"].close()
    tasks._state.clear()


def post(hub, repo, token, **body):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(
        f"{hub['url']}/api/v1/repos/{repo}/generate", json=body, headers=headers, timeout=120
    )


@needs_sandbox
def test_stream_and_json_through_the_worker_and_sandbox(hub, worker):
    body = {"prompt": "def main(", "max_new_tokens": 12, "temperature": 0.0}
    with httpx.stream(
        "POST",
        f"{hub['url']}/api/v1/repos/alice/lm/generate",
        json=body,
        headers={"Authorization": f"Bearer {hub['bob']}"},
        timeout=120,
    ) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse(r)
    kinds = [k for k, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("token") == 12
    start, done = events[0][1], events[-1][1]
    assert start["cold"] is True and len(start["commit"]) == 40 and start["repo"] == "alice/lm"
    tokens = [d for k, d in events if k == "token"]
    assert [t["index"] for t in tokens] == list(range(12))
    assert all(r["layer"] == 1 and len(r["experts"]) == 2 for t in tokens for r in t["routing"])
    assert done["tokens"] == 12 and done["finish_reason"] == "length"
    assert done["text"] == "".join(d.get("text", "") for k, d in events if k in ("token", "text"))
    assert done["watermark"] is None
    # The same tokens as the model outside the hub.
    from workers.moe.generate import SamplingParams, generate_ids
    from workers.moe.quantize import load_any

    model, _ = load_any(hub["weights"])
    ids, _, _ = generate_ids(model, "def main(", SamplingParams(max_new_tokens=12, temperature=0))
    assert [t["id"] for t in tokens] == ids
    # JSON mode, warm now, with a seed: the same answer twice.
    r1 = post(hub, "alice/lm", hub["alice"], prompt="x", max_new_tokens=6, seed=3, stream=False)
    r2 = post(hub, "alice/lm", hub["alice"], prompt="x", max_new_tokens=6, seed=3, stream=False)
    assert r1.status_code == 200, r1.text
    a, b = r1.json(), r2.json()
    assert a["stats"]["cold"] is False and a["stats"]["tokens"] == 6
    assert [t["id"] for t in a["tokens"]] == [t["id"] for t in b["tokens"]]
    assert a["text"] == b["text"] and a["finish_reason"] == "length"
    # The credential each request carried: read-only on that repo, revoked afterwards.
    cred = worker[0]["credential"]
    assert "credential" not in json.dumps(events)
    assert (
        httpx.get(
            f"{hub['url']}/api/v1/repos/alice/lm", headers={"Authorization": f"Bearer {cred}"}
        ).status_code
        == 401
    )


@needs_sandbox
def test_private_repo_generation_for_its_owner_and_404_for_others(hub, worker):
    ok = post(
        hub,
        "alice/secret",
        hub["alice"],
        prompt="def ",
        max_new_tokens=3,
        temperature=0,
        stream=False,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["stats"]["tokens"] == 3
    n = len(worker)
    for token in (hub["bob"], None):
        r = post(hub, "alice/secret", token, prompt="a", max_new_tokens=3)
        assert r.status_code == 404 and r.json()["error"]["code"] == "repo_not_found"
    assert len(worker) == n  # nothing was sent to a worker


def test_a_credential_reaches_only_its_repo(hub, worker_online, db):
    from hub.accounts.models import User
    from hub.accounts.services import job_credential_issue

    alice = User.objects.get(username="alice")
    cred = job_credential_issue(
        job_id="inf-test",
        attempt=0,
        acts_as=alice,
        rules=[[["GET", "HEAD"], "/api/v1/repos/alice/lm", True]],
        ttl_s=60,
    )
    h = {"Authorization": f"Bearer {cred}"}
    assert httpx.get(f"{hub['url']}/api/v1/repos/alice/lm", headers=h).status_code == 200
    r = httpx.get(f"{hub['url']}/api/v1/repos/alice/secret", headers=h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "job_credential_scope"
    r = httpx.post(f"{hub['url']}/api/v1/repos/alice/lm/branches", json={"name": "x"}, headers=h)
    assert r.status_code == 403


def test_rate_limit_429_with_retry_after(hub, worker_online, settings, monkeypatch):
    settings.HUB_INFER_RATE_LIMIT = 2
    settings.HUB_INFER_RATE_WINDOW_S = 3600
    from hub import celery_app

    monkeypatch.setattr(celery_app.app, "send_task", lambda *a, **k: None)
    settings.HUB_INFER_START_TIMEOUT_S = 1  # nobody answers: 503 inference_timeout
    for _ in range(2):
        r = post(hub, "alice/lm", hub["bob"], prompt="a", max_new_tokens=2)
        assert r.status_code == 503 and r.json()["error"]["code"] == "inference_timeout"
    r = post(hub, "alice/lm", hub["bob"], prompt="a", max_new_tokens=2)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "throttled"
    assert 0 < int(r.headers["Retry-After"]) <= 3600
    # Per user: alice still may.
    r = post(hub, "alice/lm", hub["alice"], prompt="a", max_new_tokens=2)
    assert r.status_code == 503


def test_bounds_and_bad_input_are_4xx_before_any_work(hub, worker_online, settings, monkeypatch):
    from hub import celery_app

    sent = []
    monkeypatch.setattr(celery_app.app, "send_task", lambda *a, **k: sent.append(a))
    settings.HUB_INFER_MAX_NEW_TOKENS = 16
    settings.HUB_INFER_MAX_PROMPT_BYTES = 10
    a = hub["alice"]
    r = post(hub, "alice/lm", a, prompt="a", max_new_tokens=17)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_tokens"
    r = post(hub, "alice/lm", a, prompt="é" * 6, max_new_tokens=2)  # 12 bytes
    assert r.status_code == 413 and r.json()["error"]["code"] == "prompt_too_large"
    for bad in ({"top_p": 0}, {"temperature": -1}, {"stop": ["x"] * 9}, {"seed": -1}, {}):
        body = {"max_new_tokens": 2, **bad}
        if bad:
            body["prompt"] = "a"
        r = post(hub, "alice/lm", a, **body)
        assert r.status_code == 400, (bad, r.text)
    for bad in ({"prompt": "\ud800"}, {"prompt": "a", "stop": ["\udfff"]}):
        raw = json.dumps({"max_new_tokens": 2, **bad})  # a lone surrogate, escaped in JSON
        r = httpx.post(
            f"{hub['url']}/api/v1/repos/alice/lm/generate",
            content=raw,
            headers={"Authorization": f"Bearer {a}", "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "validation_error", r.text
    r = post(hub, "alice/lm", a, prompt="a", ref="no-such-branch", max_new_tokens=2)
    assert r.status_code == 404
    assert sent == []


def test_no_worker_online_is_503(hub, prefix):
    r = post(hub, "alice/lm", hub["alice"], prompt="a", max_new_tokens=2)
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_inference_worker"
    assert "Retry-After" in r.headers


@needs_sandbox
def test_a_client_that_goes_away_cancels_the_generation(hub, worker, settings):
    settings.HUB_INFER_MAX_NEW_TOKENS = 100_000
    with httpx.stream(
        "POST",
        f"{hub['url']}/api/v1/repos/alice/lm/generate",
        json={"prompt": "def ", "max_new_tokens": 50_000, "temperature": 0},  # greedy: no EOT
        headers={"Authorization": f"Bearer {hub['alice']}"},
        timeout=120,
    ) as r:
        assert r.status_code == 200
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("event: token")
            if seen == 3:
                break  # the client leaves mid-stream
    thread, result = worker.ran[worker[-1]["id"]]
    thread.join(120)  # the wall time (60 s) would end it as "time", the cancel much sooner
    assert result == ["cancelled"]


def test_a_stream_closed_before_its_first_byte_still_ends_the_generation(db, prefix, settings):
    """Django closes a streaming response's iterator when the client left, even one never
    iterated (whose generator's `finally` would not run): the slot, the credential and the
    worker's generation must still be released."""
    import redis
    from django.http import StreamingHttpResponse

    from hub.inference import api, services
    from hub.shared.inference import cancel_key

    before = services._streams[0]
    services._streams[0] += 1  # taken by generation_start
    gen = services.Generation(
        id="f" * 32,
        repo="alice/lm",
        commit="c" * 40,
        ref="main",
        wall_time_s=5,
        watermark=None,
        credential_job="inf-closed",
    )
    resp = StreamingHttpResponse(api._Stream(gen), content_type="text/event-stream")
    resp.close()
    assert gen.closed and services._streams[0] == before
    raw = redis.Redis.from_url(settings.HUB_REDIS_URL)
    assert raw.exists(cancel_key(prefix, gen.id)) == 1


@needs_sandbox
def test_the_wall_time_bound_ends_a_long_generation(hub, worker, settings):
    settings.HUB_INFER_MAX_NEW_TOKENS = 100_000
    settings.HUB_INFER_MAX_WALL_S = 2
    body = {"prompt": "def ", "max_new_tokens": 100_000, "temperature": 0, "stream": False}
    r = post(hub, "alice/lm", hub["alice"], **body)  # greedy: this model never picks EOT
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["finish_reason"] == "time"
    assert 0 < out["stats"]["tokens"] < 100_000
    assert worker[-1]["wall_time_s"] == 2


@needs_sandbox
def test_the_owners_watermark_reaches_the_generation_and_can_be_switched_off(hub, worker, db):
    """The repo owner enables the watermark: a generation carries it (the answer names the key
    id, never the key) and its tokens are detected with the repo's key; `watermark: false`
    turns it off for one request."""
    from hub.accounts.models import User
    from hub.provenance.services import generation_watermark
    from hub.registry.selectors import repo_get
    from hub.shared import watermark as wm

    h = {"Authorization": f"Bearer {hub['alice']}"}
    r = httpx.patch(
        f"{hub['url']}/api/v1/repos/alice/lm/watermark",
        json={"enabled": True, "strength": 0.5},
        headers=h,
    )
    assert r.status_code == 200, r.text
    body = {"prompt": "def ", "max_new_tokens": 200, "temperature": 1.0, "seed": 5, "stream": False}
    on = post(hub, "alice/lm", hub["bob"], **body)
    off = post(hub, "alice/lm", hub["bob"], **body, watermark=False)
    assert on.status_code == 200 and off.status_code == 200, (on.text, off.text)
    assert on.json()["watermark"]["strength"] == 0.5 and off.json()["watermark"] is None
    assert "key_hex" not in on.text and worker[-2]["watermark"]["key_hex"]
    params = generation_watermark(
        repo=repo_get(namespace="alice", name="lm"),
        requested=True,
        user=User.objects.get(username="alice"),
    )["params"]
    key = bytes.fromhex(params["key_hex"])

    def z(resp) -> float:
        h = params["context_width"]
        ids = list(b"def ")[-h:] + [t["id"] for t in resp.json()["tokens"]]
        return wm.detect(ids, key=key, gamma=params["gamma"], context_width=h).z

    assert z(on) > 4.0 > z(off)


def test_one_user_runs_at_most_max_per_user_generations_at_once(
    hub, worker_online, settings, monkeypatch
):
    from hub import celery_app

    monkeypatch.setattr(celery_app.app, "send_task", lambda *a, **k: None)  # nobody answers
    settings.HUB_INFER_MAX_PER_USER = 1
    settings.HUB_INFER_START_TIMEOUT_S = 3
    first: list = []
    t = threading.Thread(
        target=lambda: first.append(post(hub, "alice/lm", hub["bob"], prompt="a", max_new_tokens=2))
    )
    t.start()
    import redis

    from hub.accounts.models import User

    raw = redis.Redis.from_url(settings.HUB_REDIS_URL)
    key = f"{settings.HUB_REDIS_PREFIX}infer:active:user:{User.objects.get(username='bob').pk}"
    for _ in range(300):  # until the first request runs (it now waits for a worker)
        if raw.get(key) == b"1":
            break
        time.sleep(0.01)
    second = post(hub, "alice/lm", hub["bob"], prompt="a", max_new_tokens=2)
    other = post(hub, "alice/lm", hub["alice"], prompt="a", max_new_tokens=2)
    t.join()
    assert second.status_code == 429 and "HUB_INFER_MAX_PER_USER" in second.text
    assert int(second.headers["Retry-After"]) > 0
    assert other.status_code == 503  # another user is not held back
    assert first[0].status_code == 503 and first[0].json()["error"]["code"] == "inference_timeout"
    # The first one ended: its slot is free again.
    again = post(hub, "alice/lm", hub["bob"], prompt="a", max_new_tokens=2)
    assert again.status_code == 503 and again.json()["error"]["code"] == "inference_timeout"
