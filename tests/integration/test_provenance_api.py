"""Watermark keys, the owner's setting, generation parameters and the verify API
(hub.provenance): the key never leaves the hub in a response, private repos' keys serve only
their readers, anonymous callers verify against public repos, and the limits hold."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from hub.accounts.models import Namespace
from hub.provenance import services
from hub.provenance.models import WatermarkKey
from hub.registry import services as registry
from hub.shared import watermark as wm
from tests.conftest import client_for

pytestmark = [pytest.mark.integration]


@pytest.fixture
def people(make_user, blob_dir):
    alice, alice_token = make_user("alice")
    bob, bob_token = make_user("bob")
    return {"alice": (alice, alice_token), "bob": (bob, bob_token)}


def _repo(user, name, *, private=False):
    ns = Namespace.objects.get(name=user.username)
    return registry.repo_create(namespace=ns, name=name, user=user, private=private)


def test_generation_watermark_follows_the_owner_switch_and_the_request(people):
    alice, _ = people["alice"]
    repo = _repo(alice, "m")
    assert services.generation_watermark(repo=repo, requested=None, user=alice) is None
    services.watermark_setting_update(repo=repo, user=alice, enabled=True, strength=0.3)
    got = services.generation_watermark(repo=repo, requested=None, user=alice)
    assert got is not None and got["key_id"].startswith("wmk_") and got["repo_id"] == repo.pk
    params = wm.WatermarkParams.from_dict(got["params"])
    assert params.delta == pytest.approx(3.0) and params.gamma == 0.25 and len(params.key) == 32
    assert services.generation_watermark(repo=repo, requested=False, user=alice) is None
    # the same key on every request, and the stored row holds it sealed, not in clear
    again = services.generation_watermark(repo=repo, requested=True, user=alice)
    assert again["params"]["key_hex"] == got["params"]["key_hex"]
    row = WatermarkKey.objects.get(key_id=got["key_id"])
    assert params.key not in bytes(row.sealed_secret)


def test_generation_watermark_can_be_requested_on_a_repo_whose_owner_did_not_enable_it(people):
    alice, _ = people["alice"]
    repo = _repo(alice, "m2")
    got = services.generation_watermark(repo=repo, requested=True, user=alice)
    assert got is not None and WatermarkKey.objects.filter(repo=repo).count() == 1


def test_generation_watermark_on_a_private_repo_is_404_to_others(people):
    from hub.common.errors import NotFound

    alice, _ = people["alice"]
    bob, _ = people["bob"]
    repo = _repo(alice, "secret-" + uuid.uuid4().hex[:6], private=True)
    with pytest.raises(NotFound):
        services.generation_watermark(repo=repo, requested=True, user=bob)


# --- the verify API -------------------------------------------------------------------------------

VERIFY = "/api/v1/watermark/verify"
PRINTABLE = np.array([10, *range(32, 127)])


def _marked_text(params: dict, n: int = 300, seed: int = 0) -> str:
    """ASCII text whose every byte after the first is green under ``params`` (a hard
    watermark: what generation at full strength on a flat distribution would write)."""
    p = wm.WatermarkParams.from_dict(params)
    table = wm.green_table(p.key, p.gamma)
    rng = np.random.default_rng(seed)
    out = [int(rng.choice(PRINTABLE))]
    for _ in range(n - 1):
        choices = PRINTABLE[table[out[-1], PRINTABLE]]
        out.append(int(rng.choice(choices)))
    return bytes(out).decode("ascii")


def _plain_text(n: int = 300, seed: int = 1) -> str:
    return bytes(np.random.default_rng(seed).choice(PRINTABLE, n).tolist()).decode("ascii")


def _assert_no_secret(response, params: dict) -> None:
    import base64

    key = bytes.fromhex(params["key_hex"])
    body = response.content
    for form in (
        key,
        params["key_hex"].encode(),
        params["key_hex"].upper().encode(),
        base64.b64encode(key),
        base64.urlsafe_b64encode(key),
    ):
        assert form not in body


@pytest.fixture
def fresh_limits(settings):
    """A Redis prefix of its own, so rate-limit windows do not leak between tests."""
    settings.HUB_REDIS_PREFIX = f"test:{uuid.uuid4().hex}:"
    settings.HUB_WATERMARK_RATE_LIMIT = 1000
    return settings


@pytest.fixture
def marked(people, fresh_limits):
    """alice's public repo with watermarking on, and a text marked with its key."""
    alice, _ = people["alice"]
    repo = _repo(alice, "pub")
    services.watermark_setting_update(repo=repo, user=alice, enabled=True)
    got = services.generation_watermark(repo=repo, requested=None, user=alice)
    return repo, got, _marked_text(got["params"])


def test_a_marked_text_verifies_against_its_repo_without_revealing_the_key(people, marked):
    repo, got, text = marked
    r = client_for(people["bob"][1]).post(
        VERIFY, {"text": text, "repo": repo.full_name}, format="json"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["detected"] is True and body["keys_tested"] == 1
    assert body["match"] == {"repo": repo.full_name, "repo_id": repo.pk, "key_id": got["key_id"]}
    assert body["z_score"] > 10 and body["p_value"] < 1e-20
    assert body["p_value_corrected"] == body["p_value"]
    _assert_no_secret(r, got["params"])


def test_an_unmarked_text_is_not_detected(people, marked):
    repo, _, _ = marked
    r = client_for(None).post(
        VERIFY, {"text": _plain_text(), "repo": repo.full_name}, format="json"
    )
    assert r.status_code == 200, r.content
    assert r.json()["detected"] is False and r.json()["match"] is None
    assert abs(r.json()["z_score"]) < 4


def test_anonymous_callers_verify_against_public_repos(marked):
    repo, got, text = marked
    r = client_for(None).post(VERIFY, {"text": text}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["detected"] is True and body["match"]["key_id"] == got["key_id"]
    _assert_no_secret(r, got["params"])


def test_without_a_repo_every_readable_key_is_tried_and_p_is_bonferroni_corrected(people, marked):
    alice, token = people["alice"]
    _, got, text = marked
    for i in range(4):  # four more keyed repos of alice's
        services.generation_watermark(repo=_repo(alice, f"other{i}"), requested=True, user=alice)
    body = client_for(token).post(VERIFY, {"text": text}, format="json").json()
    assert body["keys_tested"] == 5 and body["detected"] is True
    assert body["p_value_corrected"] == pytest.approx(min(1.0, 5 * body["p_value"]))
    assert body["match"]["key_id"] == got["key_id"]


def test_a_private_repos_key_serves_only_its_readers(people, fresh_limits):
    alice, alice_token = people["alice"]
    _, bob_token = people["bob"]
    repo = _repo(alice, "hidden", private=True)
    got = services.generation_watermark(repo=repo, requested=True, user=alice)
    text = _marked_text(got["params"], seed=5)
    # bob: without a repo, alice's private key is not tried; naming the repo is a 404
    r = client_for(bob_token).post(VERIFY, {"text": text}, format="json")
    assert r.status_code == 200 and r.json()["detected"] is False and r.json()["keys_tested"] == 0
    r = client_for(bob_token).post(VERIFY, {"text": text, "repo": "alice/hidden"}, format="json")
    assert r.status_code == 404 and r.json()["error"]["code"] == "repo_not_found"
    r = client_for(None).post(VERIFY, {"text": text}, format="json")
    assert r.json()["detected"] is False and r.json()["keys_tested"] == 0
    # alice: found
    r = client_for(alice_token).post(VERIFY, {"text": text}, format="json")
    assert r.json()["detected"] is True and r.json()["match"]["repo"] == "alice/hidden"
    _assert_no_secret(r, got["params"])


def test_verification_is_rate_limited_with_retry_after(people, fresh_limits):
    fresh_limits.HUB_WATERMARK_RATE_LIMIT = 3
    c = client_for(None)
    codes = [c.post(VERIFY, {"text": "hello world"}, format="json").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = c.post(VERIFY, {"text": "hello world"}, format="json")
    assert r.status_code == 429 and r.json()["error"]["code"] == "throttled"
    assert 1 <= int(r["Retry-After"]) <= fresh_limits.HUB_WATERMARK_RATE_WINDOW_S
    # another caller has its own window
    r = client_for(people["bob"][1]).post(VERIFY, {"text": "hello world"}, format="json")
    assert r.status_code == 200


def test_an_oversized_text_is_refused_with_a_code(fresh_limits):
    fresh_limits.HUB_WATERMARK_MAX_TEXT_BYTES = 1000
    r = client_for(None).post(VERIFY, {"text": "é" * 501}, format="json")  # 1002 bytes
    assert r.status_code == 413 and r.json()["error"]["code"] == "text_too_large"
    assert r.json()["error"]["details"] == {"limit": 1000, "size": 1002}
    r = client_for(None).post(VERIFY, {"text": ""}, format="json")
    assert r.status_code == 400
    r = client_for(None).post(VERIFY, {"text": "abc", "repo": "no-slash"}, format="json")
    assert r.status_code == 400


def test_too_many_candidate_keys_asks_for_a_repo(marked, fresh_limits):
    _, _, text = marked
    fresh_limits.HUB_WATERMARK_MAX_KEYS = 0
    r = client_for(None).post(VERIFY, {"text": text}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "repo_required"


# --- the repo setting -------------------------------------------------------------------------------


def test_only_admins_switch_watermarking_and_no_answer_holds_the_key(people, fresh_limits):
    alice, alice_token = people["alice"]
    _, bob_token = people["bob"]
    _repo(alice, "switch")
    url = "/api/v1/repos/alice/switch/watermark"
    r = client_for(bob_token).patch(url, {"enabled": True}, format="json")
    assert r.status_code == 403
    r = client_for(alice_token).patch(url, {"enabled": True, "strength": 0.5}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["enabled"] is True and body["delta"] == pytest.approx(5.0)
    assert len(body["keys"]) == 1 and body["keys"][0]["key_id"].startswith("wmk_")
    repo = registry_repo("alice", "switch")
    got = services.generation_watermark(repo=repo, requested=None, user=alice)
    assert got["params"]["delta"] == pytest.approx(5.0)
    _assert_no_secret(r, got["params"])
    r = client_for(None).get(url)
    assert r.status_code == 200 and r.json()["enabled"] is True
    _assert_no_secret(r, got["params"])
    r = client_for(alice_token).patch(url, {"strength": 1.5}, format="json")
    assert r.status_code == 400


def registry_repo(ns: str, name: str):
    from hub.registry import selectors

    return selectors.repo_get(namespace=ns, name=name)


# --- the CLI and the SDK against a live hub ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_cli_verifies_a_file_and_stdin_and_the_sdk_switches_the_repo(
    live_server, people, fresh_limits, tmp_path, capsys, monkeypatch
):
    import io
    import json

    from hub.client.api import Client
    from hub.client.cli import main

    alice, token = people["alice"]
    _repo(alice, "cli")
    with Client(url=live_server.url, token=token, retries=0) as sdk:
        setting = sdk.watermark_set("alice/cli", enabled=True, strength=0.4)
        assert setting["enabled"] is True and setting["delta"] == pytest.approx(4.0)
        assert sdk.watermark_setting("alice/cli")["keys"][0]["key_id"].startswith("wmk_")
    got = services.generation_watermark(
        repo=registry_repo("alice", "cli"), requested=None, user=alice
    )
    sample = tmp_path / "sample.txt"
    sample.write_text(_marked_text(got["params"], seed=9))
    base = ["--url", live_server.url, "--token", token]
    code = main(["watermark", "verify", "--repo", "alice/cli", str(sample), *base, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["detected"] is True and out["match"]["key_id"] == got["key_id"]
    assert got["params"]["key_hex"] not in json.dumps(out)
    monkeypatch.setattr("sys.stdin", io.StringIO(_plain_text(seed=3)))
    code = main(["watermark", "verify", "-", "--url", live_server.url])  # anonymous, stdin
    assert code == 1 and "not detected" in capsys.readouterr().out


# --- evaluate jobs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "owner_enabled, requested, expect",
    [(True, None, True), (True, False, False), (False, None, False), (False, True, True)],
)
def test_an_evaluate_jobs_start_answer_alone_carries_the_watermark(
    api, fresh_limits, owner_enabled, requested, expect
):
    from hub.accounts.services import worker_service_credential_create
    from tests.helpers import model, push, st_bytes

    client, alice = api
    client.post("/api/v1/repos", {"name": "moe"}, format="json")
    push(client, "alice/moe", {"model.safetensors": st_bytes(model())}, message="base")
    services.watermark_setting_update(
        repo=registry_repo("alice", "moe"), user=alice, enabled=owner_enabled
    )
    eval_cfg = {"max_tokens": 1024} | ({} if requested is None else {"watermark": requested})
    r = client.post(
        "/api/v1/jobs",
        {
            "project": "alice/exp",
            "kind": "evaluate",
            "base": "alice/moe@main",
            "config": {"eval": eval_cfg},
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    job = r.json()
    service = client_for(worker_service_credential_create(name="w")[1])
    started = service.post(
        f"/api/v1/jobs/{job['id']}/worker/start", {"worker": "w1"}, format="json"
    )
    assert started.status_code == 200, started.content
    got = started.json()["watermark"]
    if not expect:
        assert got is None
        return
    assert got["key_id"].startswith("wmk_") and got["params"]["delta"] == pytest.approx(3.0)
    secret = {"params": {"key_hex": got["params"]["key_hex"]}}
    # nowhere else: the job as its launcher reads it, and the job's stored record
    _assert_no_secret(client.get(f"/api/v1/jobs/{job['id']}"), secret["params"])
    from hub.jobs.models import Job

    stored = Job.objects.get(pk=job["id"])
    assert got["params"]["key_hex"] not in repr(stored.config) + repr(stored.resources)


def test_a_lone_surrogate_is_a_400_not_a_500(fresh_limits):
    body = '{"text": "abc\\ud800def"}'  # valid JSON, not valid UTF-8 once decoded
    r = client_for(None).post(VERIFY, data=body, content_type="application/json")
    assert r.status_code == 400 and "text" in r.json()["error"]["details"]


def test_a_rotated_key_marks_new_generations_and_the_old_one_still_verifies(people, marked):
    repo, old, old_text = marked
    _, token = people["alice"]
    r = client_for(token).patch(
        f"/api/v1/repos/{repo.full_name}/watermark", {"rotate_key": True}, format="json"
    )
    assert r.status_code == 200 and len(r.json()["keys"]) == 2
    new = services.generation_watermark(repo=repo, requested=None, user=people["alice"][0])
    assert new["key_id"] != old["key_id"]
    new_text = _marked_text(new["params"], seed=11)
    for text, key_id in ((old_text, old["key_id"]), (new_text, new["key_id"])):
        body = client_for(None).post(VERIFY, {"text": text, "repo": repo.full_name}).json()
        assert body["detected"] is True and body["keys_tested"] == 2
        assert body["match"]["key_id"] == key_id
        assert body["p_value_corrected"] == pytest.approx(min(1.0, 2 * body["p_value"]))
