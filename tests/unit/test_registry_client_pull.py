"""`pull` writes only inside its destination, whatever file paths the hub sends (a fake hub
answers over httpx's mock transport)."""

from __future__ import annotations

import os
from urllib.parse import unquote

import blake3
import httpx
import pytest

from hub.client.api import Client, safe_target
from hub.client.errors import HubClientError

pytestmark = [pytest.mark.unit]

SHA = "a" * 40


def fake_hub(files: dict[str, bytes], seen: list[str]):
    def handler(request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        seen.append(path)
        prefix = "/api/v1/repos/alice/m/"
        rest = path[len(prefix):]
        if rest == "tree":
            listing = [{"path": p, "size": len(d), "oid": "0" * 64} for p, d in files.items()]
            return httpx.Response(200, json={"commit": SHA, "files": listing})
        if rest.startswith("info/"):
            data = files[rest[len("info/"):]]
            return httpx.Response(200, json={"commit": SHA, "size": len(data),
                                             "chunks": [[blake3.blake3(data).hexdigest(), len(data)]]})
        if rest.startswith("files/"):
            return httpx.Response(200, content=files[rest[len("files/"):]])
        return httpx.Response(404, json={"error": {"code": "not_found", "message": path, "details": None}})

    return handler


def client_for(files: dict[str, bytes], seen: list[str]) -> Client:
    c = Client(url="http://hub.test", token="t", retries=0)
    c._http.close()
    c._http = httpx.Client(base_url="http://hub.test/api/v1", transport=httpx.MockTransport(fake_hub(files, seen)))
    return c


def test_pull_writes_safe_paths(tmp_path):
    seen: list[str] = []
    files = {"config.json": b"{}", "weights/model.bin": b"w" * 100}
    res = client_for(files, seen).pull("alice/m@main", tmp_path / "out")
    assert res["downloaded"] == 2
    assert (tmp_path / "out" / "weights" / "model.bin").read_bytes() == b"w" * 100


@pytest.mark.parametrize("evil", [
    "../escape.txt",
    "a/../../escape.txt",
    "/tmp/escape.txt",
    "a/./b.txt",
    "a//b.txt",
    "..\\escape.txt",
    "nul\x00byte",
    "",
])
def test_pull_refuses_a_path_outside_dest_and_writes_nothing(tmp_path, evil):
    seen: list[str] = []
    files = {"ok.txt": b"fine", evil: b"pwned"}
    dest = tmp_path / "out"
    with pytest.raises(HubClientError) as e:
        client_for(files, seen).pull("alice/m@main", dest)
    assert e.value.code == "unsafe_path" and "refusing" in e.value.message
    assert e.value.details["path"] == evil
    assert not any("/files/" in s or "/info/" in s for s in seen)  # refused before any download
    assert not dest.exists() or not any(dest.rglob("*"))
    assert not (tmp_path / "escape.txt").exists()


def test_pull_refuses_a_path_that_resolves_outside_through_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    os.symlink(outside, dest / "link")
    seen: list[str] = []
    with pytest.raises(HubClientError) as e:
        client_for({"link/planted.txt": b"x"}, seen).pull("alice/m@main", dest)
    assert e.value.code == "unsafe_path"
    assert list(outside.iterdir()) == []


def test_safe_target_accepts_ordinary_names(tmp_path):
    for p in ("a.txt", "dir/sub/file.safetensors", "weird name:with colon", "..dots..", ".hidden"):
        assert safe_target(tmp_path, p) == tmp_path / p
    with pytest.raises(HubClientError):
        safe_target(tmp_path, None)  # not a string
