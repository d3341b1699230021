"""The `hub` CLI and the SDK against a live `hub serve`: what a user types, and its exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from hub.client import Client, HubClientError, HubUnreachable
from hub.shared.chunking import chunk_file
from tests.e2e.conftest import HUB, ROOT, wait_gone
from tests.helpers import model

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def alice(live_hub):
    return live_hub.make_user("alice", admin=True)


def _write_model(path, tensors, config='{"top_k": 2}'):
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(config)


def test_login_push_branch_diff_merge_pull(live_hub, alice, tmp_path):
    h = live_hub
    r = h.cli("login", input=alice + "\n")
    assert r.returncode == 0 and "as alice" in r.stdout
    h.cli("repo", "create", "alice/cli-demo", check=True)
    base = model(seed=11, n=6, shape=(64, 64))
    _write_model(tmp_path / "v1", base)
    r = h.cli(
        "push", str(tmp_path / "v1"), "--repo", "alice/cli-demo", "-m", "base", "-q", check=True
    )
    assert "uploaded 8 of 8 chunk(s)" in r.stdout  # header + 6 tensors, and config.json
    r = h.cli(
        "push", str(tmp_path / "v1"), "--repo", "alice/cli-demo", "-m", "again", "-q", check=True
    )
    assert "Nothing to commit" in r.stdout
    h.cli("branch", "create", "alice/cli-demo", "ft", check=True)
    ft = dict(base)
    ft["layers.2.w"] = base["layers.2.w"] * 1.1
    _write_model(tmp_path / "v2", ft)
    r = h.cli(
        "push",
        str(tmp_path / "v2"),
        "--repo",
        "alice/cli-demo",
        "-b",
        "ft",
        "-m",
        "tune layer 2",
        "-q",
        check=True,
    )
    assert "uploaded 1 of" in r.stdout  # only the changed tensor travels
    r = h.cli("diff", "main", "ft", "--repo", "alice/cli-demo", check=True)
    assert (
        "layers.2.w" in r.stdout
        and "rel=10.000%" in r.stdout
        and "5 tensor(s) unchanged" in r.stdout
    )
    r = h.cli("merge", "ft", "--into", "main", "--repo", "alice/cli-demo", check=True)
    assert "Fast-forward" in r.stdout
    h.cli("tag", "create", "alice/cli-demo", "v1", "main", "-m", "first release", check=True)
    r = h.cli("log", "alice/cli-demo@v1", check=True)
    assert "tune layer 2" in r.stdout and "base" in r.stdout
    r = h.cli("pull", "alice/cli-demo@v1", str(tmp_path / "out"), "-q", check=True)
    got = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert all(np.array_equal(got[k], ft[k]) for k in ft)
    r = h.cli("pull", "alice/cli-demo@v1", str(tmp_path / "out"), "-q", check=True)
    assert "2 already up to date" in r.stdout
    r = h.cli("ls", "alice/cli-demo@main", check=True)
    assert "model.safetensors" in r.stdout and "config.json" in r.stdout


def test_exit_codes(live_hub, alice, tmp_path):
    h = live_hub
    assert h.cli("repo", "info", "alice/does-not-exist", token=alice).returncode == 3
    h.cli("repo", "create", "alice/codes", token=alice, check=True)
    assert h.cli("repo", "create", "alice/codes", token=alice).returncode == 4
    assert h.cli("branch", "create", "alice/codes", "bad..name", token=alice).returncode == 2
    assert h.cli("repo", "create", "alice/x", token="hub_not_a_token").returncode == 5
    (tmp_path / "f.txt").write_text("x")
    head = h.cli("branch", "list", "alice/codes", "--json", token=alice, check=True)
    import json

    main_head = json.loads(head.stdout)[0]["commit"]
    h.cli(
        "push",
        str(tmp_path / "f.txt"),
        "--repo",
        "alice/codes",
        "-m",
        "1",
        "-q",
        token=alice,
        check=True,
    )
    (tmp_path / "f.txt").write_text("y")
    stale = h.cli(
        "push",
        str(tmp_path / "f.txt"),
        "--repo",
        "alice/codes",
        "-m",
        "2",
        "-q",
        "--expected-head",
        main_head,
        token=alice,
    )
    assert stale.returncode == 4 and "branch_conflict" in stale.stderr
    env = dict(h.env, HUB_URL="http://127.0.0.1:9", HUB_TOKEN=alice)
    r = subprocess.run(
        [*HUB, "repo", "list"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 6 and "cannot reach" in r.stderr
    assert "Traceback" not in r.stderr + stale.stderr


def test_merge_conflict_is_reported_with_both_sides(live_hub, alice, tmp_path):
    c = Client(url=live_hub.url, token=alice)
    c.create_repo("alice/conflict")
    base = model(seed=3)
    _write_model(tmp_path / "b", base)
    c.push(tmp_path / "b", repo="alice/conflict", message="base")
    c.create_branch("alice/conflict", "other")
    for branch, factor in (("main", 2.0), ("other", 3.0)):
        t = dict(base)
        t["layers.0.w"] = base["layers.0.w"] * factor
        _write_model(tmp_path / branch, t)
        c.push(tmp_path / branch, repo="alice/conflict", branch=branch, message=f"scale x{factor}")
    r = live_hub.cli("merge", "other", "--into", "main", "--repo", "alice/conflict", token=alice)
    assert r.returncode == 4
    assert "CONFLICT model.safetensors:layers.0.w" in r.stderr and "rel change 100.000%" in r.stderr
    r = live_hub.cli(
        "merge",
        "other",
        "--into",
        "main",
        "--repo",
        "alice/conflict",
        "--strategy",
        "average",
        "--weight",
        "0.5",
        token=alice,
        check=True,
    )
    assert "resolved by average" in r.stdout
    out = tmp_path / "pulled"
    c.pull("alice/conflict@main", out)
    assert np.allclose(
        load_file(str(out / "model.safetensors"))["layers.0.w"], base["layers.0.w"] * 2.5, rtol=1e-6
    )


def test_interrupted_push_resumes_with_only_the_missing_chunks(live_hub, alice, tmp_path):
    c = Client(url=live_hub.url, token=alice)
    c.create_repo("alice/resume")
    _write_model(tmp_path / "m", model(seed=21, n=10, shape=(128, 128)), config='{"resume": true}')
    sent = []
    real = c.upload_chunk

    def flaky(repo, digest, data):
        if len(sent) >= 4:
            raise HubUnreachable("network dropped")
        real(repo, digest, data)
        sent.append(digest)

    c.workers = 1
    c.upload_chunk = flaky
    with pytest.raises(HubUnreachable):
        c.push(tmp_path / "m", repo="alice/resume", message="weights")
    c.upload_chunk = real
    res = c.push(tmp_path / "m", repo="alice/resume", message="weights")
    total = (
        len(chunk_file(tmp_path / "m" / "model.safetensors", name="model.safetensors").chunks) + 1
    )
    assert res.chunks == total and res.uploaded_chunks == total - 4


def test_interrupted_pull_resumes_and_verifies(live_hub, alice, tmp_path):
    c = Client(url=live_hub.url, token=alice)
    c.create_repo("alice/pull-resume")
    _write_model(tmp_path / "m", model(seed=22, n=4, shape=(256, 256)))
    c.push(tmp_path / "m", repo="alice/pull-resume", message="w")
    full = (tmp_path / "m" / "model.safetensors").read_bytes()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "model.safetensors.part").write_bytes(full[: len(full) // 2] + b"garbage")
    res = c.pull("alice/pull-resume@main", dest)
    assert (dest / "model.safetensors").read_bytes() == full
    assert not (dest / "model.safetensors.part").exists() and res["downloaded"] == 2


def test_sixteen_concurrent_http_pushes_one_wins(live_hub, alice, tmp_path):
    c = Client(url=live_hub.url, token=alice)
    c.create_repo("alice/race")
    head = c.branch_info("alice/race", "main")["commit"]
    outcomes: list[str] = []
    barrier = threading.Barrier(16)

    def go(i):
        f = tmp_path / f"w{i}"
        f.mkdir()
        (f / f"file{i}.txt").write_text(str(i))
        cl = Client(url=live_hub.url, token=alice)
        try:
            barrier.wait()
            cl.push(f, repo="alice/race", message=f"writer {i}", expected_head=head)
            outcomes.append("ok")
        except HubClientError as e:
            outcomes.append(e.code)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["branch_conflict"] * 15 + ["ok"]
    assert len(c.log("alice/race", "main")) == 2


def test_serve_stops_every_child_on_sigterm(tmp_path):
    from hub.serve import free_port, wait_http

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATA_DIR=str(tmp_path / "d"),
        HUB_CONFIG_DIR=str(tmp_path / "c"),
        HUB_REDIS_URL="redis://127.0.0.1:1/0",
    )
    proc = subprocess.Popen(
        [*HUB, "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert wait_http(f"http://127.0.0.1:{port}/api/v1/health", 90)
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    assert (
        len(children) >= 3
    )  # elasticsearch-compatible server, a private redis (no Redis on port 1), web
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert all(wait_gone(int(pid)) for pid in children), out
    assert "stopping web" in out


def test_corrupt_chunk_is_a_clean_error_up_front_and_a_short_body_later(live_hub, alice, tmp_path):
    import httpx

    c = Client(url=live_hub.url, token=alice, retries=1, backoff=0.01)
    c.create_repo("alice/corrupt")
    _write_model(tmp_path / "m", model(seed=23, n=4, shape=(256, 256)))
    c.push(tmp_path / "m", repo="alice/corrupt", message="w")
    full = (tmp_path / "m" / "model.safetensors").read_bytes()
    chunks = chunk_file(tmp_path / "m" / "model.safetensors", name="model.safetensors").chunks

    def corrupt(chunk):
        path = live_hub.data_dir / "blobs" / chunk.hash[:2] / chunk.hash[2:4] / chunk.hash
        path.write_bytes(b"\0" * chunk.size)

    url = f"{live_hub.url}/api/v1/repos/alice/corrupt/files/model.safetensors"
    auth = {"Authorization": f"Bearer {alice}"}
    # A bad chunk after the first: 200 with the full Content-Length, then the body stops short.
    bad = chunks[2]
    corrupt(bad)
    got = bytearray()
    with httpx.stream("GET", url, headers=auth, timeout=30) as r:
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(full)
        with pytest.raises(httpx.RemoteProtocolError):
            for part in r.iter_bytes():
                got += part
    assert 0 < len(got) <= bad.offset and full.startswith(bytes(got))
    # The SDK verifies what it got, resumes at the bad chunk, and is refused with the code.
    dest = tmp_path / "dl" / "model.safetensors"
    with pytest.raises(HubClientError) as e:
        c.download_file("alice/corrupt", "model.safetensors", dest)
    assert (
        e.value.status == 503
        and e.value.code == "corrupt_chunk"
        and e.value.details["chunk"] == bad.hash
    )
    assert not dest.exists()
    # A bad first chunk: a clean JSON error before any byte, and `hub pull` exits 1 saying why.
    corrupt(chunks[0])
    r = httpx.get(url, headers=auth, timeout=30)
    assert (
        r.status_code == 503
        and r.json()["error"]["code"] == "corrupt_chunk"
        and r.headers["Retry-After"]
    )
    p = live_hub.cli("pull", "alice/corrupt@main", str(tmp_path / "out"), "--quiet", token=alice)
    assert p.returncode == 1 and "corrupt_chunk" in p.stderr, (p.stdout, p.stderr)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_runs_compare_takes_model_commits_and_refuses_a_mix(live_hub, alice, tmp_path):
    """`hub runs compare ns/repo@sha ...` compares model commits through their linked runs."""
    h = live_hub
    c = Client(url=h.url, token=alice)
    c.create_repo("alice/cmp")
    shas, runs = [], []
    for i, (top_k, final) in enumerate(((2, 2.0), (4, 1.5))):
        (tmp_path / "w.txt").write_text(f"weights {i}")
        sha = c.push(tmp_path / "w.txt", repo="alice/cmp", message=f"top-{top_k}").commit["sha"]
        with c.init_run(
            "alice/cmp-exp",
            name=f"top{top_k}",
            params={"moe": {"top_k": top_k}},
            commit=f"alice/cmp@{sha}",
            system_metrics=False,
        ) as run:
            run.log({"val_loss": 3.0}, step=0)
            run.log({"val_loss": final}, step=100)
        shas.append(sha)
        runs.append(run.id)
    refs = [f"alice/cmp@{s}" for s in shas]
    out = h.cli("runs", "compare", *refs, "--format", "markdown", token=alice, check=True).stdout
    assert "moe.top_k" in out and "25.0% lower final val_loss" in out, out
    mixed = h.cli("runs", "compare", refs[0], runs[1], token=alice)
    assert mixed.returncode == 2 and "not a mix" in mixed.stderr


def test_sdk_lists_every_file_across_pages_of_one_commit(live_hub, alice, tmp_path):
    c = Client(url=live_hub.url, token=alice)
    c.create_repo("alice/shards")
    src = tmp_path / "ckpt"
    src.mkdir()
    for i in range(5):
        (src / f"shard-{i}.bin").write_bytes(f"w{i}".encode())
    sha = c.push(src, repo="alice/shards", message="five shards").commit["sha"]
    listing = c.list_files("alice/shards", "main", page_size=2)
    assert listing["commit"] == sha
    assert [f["path"] for f in listing["files"]] == [f"shard-{i}.bin" for i in range(5)]
