"""POST /api/v1/repos/{ns}/{name}/attention and /routing-diff against a live hub, real Redis
and the real inference worker (its task in a thread, the engine in the real sandbox): the
generation's rate limit applies to them, the answer's size bound is enforced by the engine,
bad input and unreadable repos are refused before any work."""

from __future__ import annotations

import httpx
import pytest

from tests.integration import test_generate_api as gen
from tests.sandbox.conftest import needs_sandbox

# The generation tests' fixtures: a live hub with alice/lm and alice/secret, the worker.
prefix, hub, worker, worker_online = gen.prefix, gen.hub, gen.worker, gen.worker_online

pytestmark = pytest.mark.integration


def call(live, repo, what, token, **body):
    return httpx.post(
        f"{live['url']}/api/v1/repos/{repo}/{what}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )


def test_inspection_shares_the_generation_rate_limit(hub, worker_online, settings, monkeypatch):
    settings.HUB_INFER_RATE_LIMIT = 2
    settings.HUB_INFER_RATE_WINDOW_S = 3600
    settings.HUB_INFER_START_TIMEOUT_S = 1  # nobody answers: 503 inference_timeout
    from hub import celery_app

    sent = []
    monkeypatch.setattr(celery_app.app, "send_task", lambda *a, **k: sent.append(k or a))
    r = call(hub, "alice/lm", "attention", hub["bob"], prompt="ab")
    assert r.status_code == 503 and r.json()["error"]["code"] == "inference_timeout"
    r = call(hub, "alice/lm", "routing-diff", hub["bob"], a="main", b="main")
    assert r.status_code == 503  # the first probe was sent, nobody answered
    for what, body in (
        ("attention", {"prompt": "ab"}),
        ("routing-diff", {"a": "main", "b": "main"}),
    ):
        r = call(hub, "alice/lm", what, hub["bob"], **body)
        assert r.status_code == 429 and r.json()["error"]["code"] == "throttled", r.text
        assert int(r.headers["Retry-After"]) > 0
    assert len(sent) == 2


def test_bad_input_and_unreadable_repos_before_any_work(hub, worker_online, settings, monkeypatch):
    from hub import celery_app

    sent = []
    monkeypatch.setattr(celery_app.app, "send_task", lambda *a, **k: sent.append(a))
    settings.HUB_INSPECT_MAX_PROMPT_BYTES = 8
    a, b = hub["alice"], hub["bob"]
    r = call(hub, "alice/lm", "attention", a, prompt="é" * 5)  # 10 bytes
    assert r.status_code == 413 and r.json()["error"]["code"] == "prompt_too_large"
    assert call(hub, "alice/lm", "attention", a).status_code == 400  # no prompt
    r = call(hub, "alice/lm", "routing-diff", a, a="main", b="main", b_repo="no-slash")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_repo"
    assert call(hub, "alice/secret", "attention", b, prompt="a").status_code == 404
    r = call(hub, "alice/lm", "routing-diff", b, a="main", b="main", b_repo="alice/secret")
    assert r.status_code == 404
    assert call(hub, "alice/lm", "attention", a, prompt="a", ref="nope").status_code == 404
    assert sent == []


@needs_sandbox
def test_the_engine_refuses_a_map_over_the_cell_bound(hub, worker, settings):
    settings.HUB_INSPECT_MAX_ATTN_CELLS = 2 * 2 * 10  # TINY_MODEL: 2 layers × 2 heads
    r = call(hub, "alice/lm", "attention", hub["alice"], prompt="abcd")  # 2·2·10 weights
    assert r.status_code == 200, r.text
    assert [len(h) for h in r.json()["layers"][1]["heads"][0]] == [1, 2, 3, 4]
    r = call(hub, "alice/lm", "attention", hub["alice"], prompt="abcde")  # 2·2·15
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_params", r.text
    assert "at most 40" in r.json()["error"]["message"]
    # a routing diff of the commit with itself, through the same engine
    d = call(hub, "alice/lm", "routing-diff", hub["alice"], a="main", b="main").json()
    assert d["summary"] == {"same_top1": 1.0, "swaps": 0, "max_abs_load_delta": 0.0}
    assert d["probe_version"] == 1 and d["a"]["commit"] == d["b"]["commit"]
