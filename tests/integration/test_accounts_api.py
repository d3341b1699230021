import pytest

from hub.accounts.models import ApiToken
from hub.accounts.services import token_digest
from tests.conftest import client_for

pytestmark = [pytest.mark.integration, pytest.mark.pg]


def test_tokens_are_hashed_at_rest_shown_once_and_revocable(api):
    client, user = api
    r = client.post("/api/v1/tokens", {"name": "ci", "scope": "read"}, format="json")
    assert r.status_code == 201
    secret = r.json()["token"]
    row = ApiToken.objects.get(pk=r.json()["id"])
    assert row.digest == token_digest(secret) and secret not in (row.digest, row.prefix)
    assert not ApiToken.objects.filter(digest=secret).exists()
    listed = client.get("/api/v1/tokens").json()["results"]
    assert all("token" not in t for t in listed)
    assert client_for(secret).get("/api/v1/whoami").json()["token_scope"] == "read"
    assert client.delete(f"/api/v1/tokens/{row.pk}").status_code == 200
    r = client_for(secret).get("/api/v1/whoami")
    assert r.status_code == 401 and r.json()["error"]["code"] == "authentication_failed"


def test_read_token_cannot_create_tokens_or_repos(make_user, blob_dir):
    _, ro = make_user("ro", scope="read")
    c = client_for(ro)
    assert (
        c.post("/api/v1/tokens", {"name": "x"}, format="json").json()["error"]["code"]
        == "token_read_only"
    )
    assert (
        c.post("/api/v1/repos", {"name": "r"}, format="json").json()["error"]["code"]
        == "token_read_only"
    )


def test_orgs_and_roles(api, make_user):
    client, _ = api
    assert client.post("/api/v1/orgs", {"name": "lab"}, format="json").status_code == 201
    assert (
        client.post("/api/v1/orgs", {"name": "lab"}, format="json").json()["error"]["code"]
        == "name_taken"
    )
    _, bob = make_user("bob")
    b = client_for(bob)
    assert (
        b.post("/api/v1/repos", {"namespace": "lab", "name": "m"}, format="json").status_code == 403
    )
    client.put("/api/v1/namespaces/lab/members/bob", {"role": "read"}, format="json")
    assert (
        b.post("/api/v1/repos", {"namespace": "lab", "name": "m"}, format="json").status_code == 403
    )
    client.put("/api/v1/namespaces/lab/members/bob", {"role": "write"}, format="json")
    assert (
        b.post(
            "/api/v1/repos", {"namespace": "lab", "name": "m", "private": True}, format="json"
        ).status_code
        == 201
    )
    # bob (write) cannot change roles; alice (admin) can remove him, after which the private repo vanishes for him
    assert (
        b.put("/api/v1/namespaces/lab/members/bob", {"role": "admin"}, format="json").status_code
        == 403
    )
    assert client.delete("/api/v1/namespaces/lab/members/bob").status_code == 204
    assert b.get("/api/v1/repos/lab/m").status_code == 404
    assert (
        client.delete("/api/v1/namespaces/lab/members/alice").json()["error"]["code"]
        == "last_admin"
    )
    bad = client.put("/api/v1/namespaces/lab/members/bob", {"role": "owner"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


def test_invalid_names_are_400(api):
    client, _ = api
    for name in ["", "-bad", "a b", "x" * 65, "..", "a/b"]:
        r = client.post("/api/v1/repos", {"name": name}, format="json")
        assert r.status_code == 400, (name, r.content)
    assert client.post("/api/v1/orgs", {"name": "bad name"}, format="json").status_code == 400
