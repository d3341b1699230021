"""Watermark keys, the owner's setting, generation parameters and the verify API
(hub.provenance): the key never leaves the hub in a response, private repos' keys serve only
their readers, anonymous callers verify against public repos, and the limits hold."""

from __future__ import annotations

import uuid

import pytest

from hub.accounts.models import Namespace
from hub.provenance import services
from hub.provenance.models import WatermarkKey
from hub.registry import services as registry
from hub.shared import watermark as wm

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
