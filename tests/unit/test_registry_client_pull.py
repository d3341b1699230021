"""`pull` writes only inside its destination, whatever file paths the hub sends (a fake hub
answers over httpx's mock transport)."""

from __future__ import annotations

import json
import os
import unicodedata
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
        rest = path[len(prefix) :]
        if rest == "tree":
            listing = [{"path": p, "size": len(d), "oid": "0" * 64} for p, d in files.items()]
            return httpx.Response(200, json={"commit": SHA, "files": listing})
        if rest.startswith("info/"):
            data = files[rest[len("info/") :]]
            return httpx.Response(
                200,
                json={
                    "commit": SHA,
                    "size": len(data),
                    "chunks": [[blake3.blake3(data).hexdigest(), len(data)]],
                },
            )
        if rest.startswith("files/"):
            return httpx.Response(200, content=files[rest[len("files/") :]])
        return httpx.Response(
            404, json={"error": {"code": "not_found", "message": path, "details": None}}
        )

    return handler


def client_for(files: dict[str, bytes], seen: list[str]) -> Client:
    c = Client(url="http://hub.test", token="t", retries=0)
    c._http.close()
    c._http = httpx.Client(
        base_url="http://hub.test/api/v1", transport=httpx.MockTransport(fake_hub(files, seen))
    )
    return c


def test_pull_writes_safe_paths(tmp_path):
    seen: list[str] = []
    files = {"config.json": b"{}", "weights/model.bin": b"w" * 100}
    res = client_for(files, seen).pull("alice/m@main", tmp_path / "out")
    assert res["downloaded"] == 2
    assert (tmp_path / "out" / "weights" / "model.bin").read_bytes() == b"w" * 100


@pytest.mark.parametrize(
    "evil",
    [
        "../escape.txt",
        "a/../../escape.txt",
        "/tmp/escape.txt",
        "a/./b.txt",
        "a//b.txt",
        "..\\escape.txt",
        "nul\x00byte",
        "",
    ],
)
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
    for p in (
        "a.txt",
        "dir/sub/file.safetensors",
        "weird name:with colon",
        "..dots..x",
        ".hidden",
        ".gitignore",
    ):
        assert safe_target(tmp_path, p) == tmp_path / p
    with pytest.raises(HubClientError):
        safe_target(tmp_path, None)  # not a string


# --- the shared path rule (hub.shared.paths), applied again before writing ----------------------

NFD_CAFE = unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize(
    "evil",
    [
        ".git/config",
        ".GIT/config",
        "sub/.Git/hooks/post-checkout",
        ".git./config",
        ".git /config",
        "GIT~1/config",
        ".g\u200cit/config",
        "a\u202egnp.exe",
        "a\x85b",
        "a\x7fb",
        " ",
        "name.",
        "dir /f",
        f"{NFD_CAFE}.txt",
    ],
)
def test_pull_refuses_a_tree_with_a_path_the_rule_forbids_and_writes_nothing(tmp_path, evil):
    seen: list[str] = []
    files = {"a-first.txt": b"fine", evil: b"[core]\n\tfsmonitor = touch /tmp/pwned\n"}
    dest = tmp_path / "out"
    with pytest.raises(HubClientError) as e:
        client_for(files, seen).pull("alice/m@main", dest)
    assert e.value.code == "unsafe_path" and "refusing" in e.value.message
    assert e.value.details["path"] == evil and e.value.details["reason"] == "invalid_path"
    assert not any("/files/" in s or "/info/" in s for s in seen)
    assert not dest.exists() or not any(dest.rglob("*"))


def test_pull_refuses_a_bad_path_even_when_include_leaves_it_out(tmp_path):
    seen: list[str] = []
    with pytest.raises(HubClientError) as e:
        client_for({"weights/a.bin": b"w", ".git/config": b"x"}, seen).pull(
            "alice/m@main", tmp_path / "out", include=["weights/"]
        )
    assert e.value.code == "unsafe_path"
    assert not any("/files/" in s for s in seen)


@pytest.mark.parametrize(
    "paths",
    [
        ["README.md", "readme.md"],
        ["a/b", "A/b/c"],
        ["Models/x.bin", "models/y.bin"],
    ],
)
def test_pull_refuses_paths_that_collide_on_a_case_insensitive_disk_and_writes_nothing(
    tmp_path, paths
):
    seen: list[str] = []
    dest = tmp_path / "out"
    with pytest.raises(HubClientError) as e:
        client_for({p: p.encode() for p in paths}, seen).pull("alice/m@main", dest)
    assert e.value.code == "unsafe_path" and e.value.details["reason"] == "path_collision"
    assert sorted(e.value.details["paths"]) == sorted(paths)
    assert not any("/files/" in s or "/info/" in s for s in seen)
    assert not dest.exists() or not any(dest.rglob("*"))


def test_pull_never_writes_through_a_symlinked_partial_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    dest = tmp_path / "out"
    dest.mkdir()
    os.symlink(victim, dest / "model.bin.part")  # planted where the download stages its bytes
    seen: list[str] = []
    client_for({"model.bin": b"new weights"}, seen).pull("alice/m@main", dest)
    assert victim.read_bytes() == b"precious"
    assert (dest / "model.bin").read_bytes() == b"new weights" and not (
        dest / "model.bin"
    ).is_symlink()


def test_download_refuses_a_parent_that_leaves_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    os.symlink(outside, root / "sub")
    seen: list[str] = []
    c = client_for({"sub/f.bin": b"x"}, seen)
    manifest = {"commit": SHA, "size": 1, "chunks": [[blake3.blake3(b"x").hexdigest(), 1]]}
    with pytest.raises(HubClientError) as e:
        c.download_file(
            "alice/m", "sub/f.bin", root / "sub" / "f.bin", manifest=manifest, root=root
        )
    assert e.value.code == "unsafe_path"
    assert list(outside.iterdir()) == []


def fake_push_hub(commits: list[dict]):
    def handler(request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        if path == "/api/v1/repos/alice/m":
            return httpx.Response(200, json={"default_branch": "main"})
        if path == "/api/v1/repos/alice/m/branches/main":
            return httpx.Response(200, json={"commit": SHA})
        if path == "/api/v1/repos/alice/m/tree":
            return httpx.Response(200, json={"commit": SHA, "files": [], "next": None})
        if path == "/api/v1/repos/alice/m/chunks/missing":
            return httpx.Response(200, json={"missing": json.loads(request.content)["chunks"]})
        if path.startswith("/api/v1/repos/alice/m/chunks/"):
            return httpx.Response(201, json={})
        if path == "/api/v1/repos/alice/m/commits":
            commits.append(json.loads(request.content))
            return httpx.Response(201, json={"sha": "b" * 40})
        return httpx.Response(
            404, json={"error": {"code": "not_found", "message": path, "details": None}}
        )

    return handler


def push_client(commits: list[dict]) -> Client:
    c = Client(url="http://hub.test", token="t", retries=0)
    c._http.close()
    c._http = httpx.Client(
        base_url="http://hub.test/api/v1", transport=httpx.MockTransport(fake_push_hub(commits))
    )
    return c


def test_push_leaves_out_a_git_directory_and_sends_names_in_nfc(tmp_path):
    src = tmp_path / "model"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "config").write_text("[core]\n")
    (src / f"{NFD_CAFE}.txt").write_text("menu")
    (src / "w.bin").write_bytes(b"w")
    commits: list[dict] = []
    push_client(commits).push(src, repo="alice/m", message="m")
    sent = sorted(op["path"] for op in commits[0]["operations"])
    assert sent == sorted(["w.bin", unicodedata.normalize("NFC", "café") + ".txt"])


def test_push_refuses_colliding_names_before_uploading(tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    (src / "A.txt").write_text("x")
    (src / "a.txt").write_text("y")
    if len(list(src.iterdir())) < 2:
        pytest.fail("this test needs a case-sensitive temporary folder")
    commits: list[dict] = []
    with pytest.raises(HubClientError) as e:
        push_client(commits).push(src, repo="alice/m", message="m")
    assert e.value.code == "path_collision"
    assert commits == []
