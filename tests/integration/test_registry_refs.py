"""One ref-resolution rule for every caller (API, SDK, CLI, jobs): a full commit id always
names that commit, and no new branch or tag can be named so that it shadows a commit id,
a ref of the other kind, or the ``ns/repo@ref`` syntax."""

from __future__ import annotations

import httpx
import pytest

from hub.client.api import Client
from hub.jobs.models import Job
from hub.registry.models import Commit, Ref, Repo
from tests.helpers import download, head, push

pytestmark = [pytest.mark.integration, pytest.mark.pg]

R = "alice/reg"


@pytest.fixture
def repo(api):
    client, _ = api
    assert client.post("/api/v1/repos", {"name": "reg"}, format="json").status_code == 201
    assert push(client, R, {"w.bin": b"pinned"}, message="the pinned model").status_code == 201
    return R


def _legacy_branch(name: str, *, at: str) -> None:
    """A branch written before the naming rules existed (the API now refuses such a name)."""
    repo = Repo.objects.get(namespace__name="alice", name="reg")
    Ref.objects.create(
        repo=repo, name=name, kind=Ref.Kind.BRANCH, commit=Commit.objects.get(repo=repo, sha=at)
    )


def _swap_head(client) -> tuple[str, str]:
    """(pinned commit, a later commit with other content on branch 'evil')."""
    pinned = head(client, R)
    assert (
        client.post(f"/api/v1/repos/{R}/branches", {"name": "evil"}, format="json").status_code
        == 201
    )
    assert push(client, R, {"w.bin": b"swapped"}, branch="evil").status_code == 201
    return pinned, head(client, R, "evil")


def _create(client, kind: str, name: str, at: str = "main"):
    if kind == "branch":
        return client.post(
            f"/api/v1/repos/{R}/branches", {"name": name, "from_ref": at}, format="json"
        )
    return client.post(f"/api/v1/repos/{R}/tags", {"name": name, "ref": at}, format="json")


@pytest.mark.parametrize("kind", ["branch", "tag"])
def test_a_ref_named_like_a_commit_id_is_refused(api, repo, kind):
    client, _ = api
    sha = head(client, R)
    for name in (sha, sha[:7], sha[:12], sha.upper()[:10], "deadbeefcafe", "0123456"):
        r = _create(client, kind, name)
        assert r.status_code == 400, (name, r.content)
        assert r.json()["error"]["code"] == "ref_name_looks_like_commit"
    assert not Ref.objects.filter(name__in=[sha, sha[:7]]).exists()
    assert _create(client, kind, "v0123456").status_code == 201  # not all hex: fine


@pytest.mark.parametrize("kind", ["branch", "tag"])
@pytest.mark.parametrize("name", ["HEAD", "refs/heads/x", "refs/tags/v1", "a@b", "x@"])
def test_reserved_ref_names_are_refused(api, repo, kind, name):
    client, _ = api
    r = _create(client, kind, name)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] in {"ref_name_reserved", "invalid_ref_name"}
    assert not Ref.objects.filter(name=name).exists()


def test_a_branch_may_not_take_a_tag_name_nor_a_tag_a_branch_name(api, repo):
    client, _ = api
    assert _create(client, "tag", "v1").status_code == 201
    r = _create(client, "branch", "v1")
    assert r.status_code == 409 and r.json()["error"]["code"] == "ref_name_taken"
    r = _create(client, "tag", "main")
    assert r.status_code == 409 and r.json()["error"]["code"] == "ref_name_taken"
    assert sorted(Ref.objects.filter(name__in=["v1", "main"]).values_list("kind", "name")) == [
        ("branch", "main"),
        ("tag", "v1"),
    ]


def test_a_repo_default_branch_follows_the_same_rules(api):
    client, _ = api
    r = client.post("/api/v1/repos", {"name": "x", "default_branch": "abcdef1234"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "ref_name_looks_like_commit"
    assert not Repo.objects.filter(name="x").exists()


def test_a_full_commit_id_beats_a_legacy_branch_of_that_name(api, repo):
    client, _ = api
    pinned, swapped = _swap_head(client)
    _legacy_branch(pinned, at=swapped)
    assert download(client, R, "w.bin", ref=pinned)[1] == b"pinned"
    tree = client.get(f"/api/v1/repos/{R}/tree?ref={pinned}").json()
    assert tree["commit"] == pinned
    # The legacy branch stays reachable by its explicit name.
    assert client.get(f"/api/v1/repos/{R}/tree?ref=refs/heads/{pinned}").json()["commit"] == swapped


def test_a_short_name_that_is_a_legacy_branch_and_a_commit_prefix_means_the_branch(api, repo):
    client, _ = api
    pinned, swapped = _swap_head(client)
    _legacy_branch(pinned[:10], at=swapped)
    assert client.get(f"/api/v1/repos/{R}/tree?ref={pinned[:10]}").json()["commit"] == swapped
    assert client.get(f"/api/v1/repos/{R}/tree?ref={pinned}").json()["commit"] == pinned


def test_a_legacy_branch_shadows_a_legacy_tag_and_explicit_forms_reach_both(api, repo):
    client, _ = api
    pinned, swapped = _swap_head(client)
    repo_row = Repo.objects.get(namespace__name="alice", name="reg")
    Ref.objects.create(
        repo=repo_row, name="release", kind=Ref.Kind.TAG, commit=Commit.objects.get(sha=pinned)
    )
    _legacy_branch("release", at=swapped)
    ref_of = lambda ref: client.get(f"/api/v1/repos/{R}/tree?ref={ref}").json()["commit"]  # noqa: E731
    assert ref_of("release") == swapped
    assert ref_of("refs/heads/release") == swapped
    assert ref_of("refs/tags/release") == pinned
    assert ref_of("refs/heads/main") == pinned
    assert ref_of("HEAD") == pinned  # the default branch
    r = client.get(f"/api/v1/repos/{R}/tree?ref=refs/tags/main")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ref_not_found"


def test_an_ambiguous_commit_prefix_is_a_400_listing_the_candidates(api, repo):
    client, _ = api
    repo_row = Repo.objects.get(namespace__name="alice", name="reg")
    base = Commit.objects.get(sha=head(client, R))
    twins = []
    for sha in ("abcdef1" + "0" * 33, "abcdef1" + "1" * 33):
        c = Commit.objects.create(
            repo=repo_row,
            sha=sha,
            tree=base.tree,
            parents=[base.sha],
            author_name="x",
            message="twin",
            created_at=base.created_at,
            generation=base.generation + 1,
        )
        twins.append(c.sha)
    for url in (f"/api/v1/repos/{R}/tree?ref=abcdef1", f"/api/v1/repos/{R}/commits/abcdef1"):
        r = client.get(url)
        assert r.status_code == 400, r.content
        err = r.json()["error"]
        assert err["code"] == "ambiguous_ref" and sorted(err["details"]["candidates"]) == twins
    assert client.get(f"/api/v1/repos/{R}/tree?ref=abcdef10").json()["commit"] == twins[0]
    assert client.get(f"/api/v1/repos/{R}/tree?ref={twins[1]}").json()["commit"] == twins[1]


def test_sdk_pull_of_a_commit_id_gets_that_commit_even_with_a_legacy_branch_named_like_it(
    transactional_db, api, repo, tmp_path
):
    """The SDK against the real hub (in process, over WSGI): its download threads need
    committed rows, hence a transactional test."""
    from django.core.wsgi import get_wsgi_application

    from hub.accounts import services as accounts

    client, user = api
    pinned, swapped = _swap_head(client)
    _legacy_branch(pinned, at=swapped)
    _legacy_branch(pinned[:8], at=swapped)
    _, token = accounts.token_create(user=user, name="sdk", scope="read")
    sdk = Client(url="http://testserver", token=token, retries=0)
    sdk._http.close()
    sdk._http = httpx.Client(
        base_url="http://testserver/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        transport=httpx.WSGITransport(app=get_wsgi_application()),
    )
    res = sdk.pull(f"{R}@{pinned}", tmp_path / "out")
    assert res["commit"] == pinned and (tmp_path / "out" / "w.bin").read_bytes() == b"pinned"


def _launch(client, base: str):
    body = {"project": "alice/exp", "kind": "evaluate", "config": {}, "base": base}
    return client.post("/api/v1/jobs", body, format="json")


def test_a_job_base_given_as_a_commit_id_pins_that_commit_not_a_legacy_branch(api, repo):
    client, _ = api
    pinned, swapped = _swap_head(client)
    # A branch named like the commit cannot be created any more ...
    assert _create(client, "branch", pinned, at=swapped).status_code == 400
    # ... but one written before the rule (inserted directly) must not win either.
    _legacy_branch(pinned, at=swapped)
    r = _launch(client, f"{R}@{pinned}")
    assert r.status_code == 201, r.content
    assert r.json()["base"]["commit"] == pinned
    assert Job.objects.get(pk=r.json()["id"]).base_commit == pinned


def test_a_job_target_branch_the_worker_would_create_follows_the_naming_rules(api, repo):
    client, _ = api
    sha = head(client, R)
    body = {"project": "alice/exp", "kind": "finetune", "config": {}, "base": f"{R}@main"}
    for name, code in ((sha[:9], "ref_name_looks_like_commit"), ("HEAD", "ref_name_reserved")):
        r = client.post("/api/v1/jobs", {**body, "target": f"{R}@{name}"}, format="json")
        assert r.status_code == 400 and r.json()["error"]["code"] == code, r.content
    assert _create(client, "tag", "v1").status_code == 201
    r = client.post("/api/v1/jobs", {**body, "target": f"{R}@v1"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "ref_name_taken", r.content
    assert Job.objects.count() == 0
