"""The inference engine in its sandbox (workers/inference): what it can reach and what the
long-lived engine does with requests (warm/cold, LRU, cancel, wall time, a crash).

The engine's sandbox is the job sandbox with /models and /ctl bound read-only; these tests
run a probe script under exactly ``InferenceService.engine_spec`` and then the real engine."""

from __future__ import annotations

import json
import os
import shutil
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.moe.helpers import TINY_MODEL
from tests.sandbox.conftest import needs_sandbox
from workers.inference.service import InferenceConfig, InferenceService
from workers.moe.checkpoint import save_weights
from workers.moe.config import ModelConfig
from workers.moe.model import MoETransformer
from workers.sandbox import PYTHON, Sandbox

pytestmark = [needs_sandbox]

COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


def _weights(folder: Path, seed: int, **over) -> Path:
    torch.manual_seed(seed)
    folder.mkdir(parents=True)
    save_weights(MoETransformer(ModelConfig(**{**TINY_MODEL, **over})), folder)
    return folder


@pytest.fixture
def service(tmp_path):
    src = {
        COMMIT_A: _weights(tmp_path / "src-a", 0),
        COMMIT_B: _weights(tmp_path / "src-b", 1, n_experts=16),
    }
    fetched: list[str] = []

    def fetch(request, dest):
        fetched.append(request["commit"])
        shutil.copytree(src[request["commit"]], dest)

    svc = InferenceService(
        InferenceConfig(work_root=tmp_path / "infer", cpus=1, memory_bytes=2 << 30),
        fetch=fetch,
    )
    svc.fetched = fetched
    yield svc
    svc.close()


def _req(rid, commit=COMMIT_A, **params):
    p = {"max_new_tokens": 8, "temperature": 0.0, **params}
    return {"id": rid, "commit": commit, "prompt": "def f(", "params": p, "wall_time_s": 30}


def _run(svc, req, cancelled=lambda: False):
    events = []
    svc.handle(req, events.append, cancelled)
    return events


def test_the_engines_sandbox_has_no_network_no_secrets_and_read_only_weights(tmp_path):
    svc = InferenceService(InferenceConfig(work_root=tmp_path / "infer", cpus=1), fetch=None)
    (svc.models / COMMIT_A).mkdir()
    (svc.models / COMMIT_A / "config.json").write_text("{}")
    os.chmod(svc.models / COMMIT_A, 0o755)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    os.environ["HUB_WORKER_TOKEN"] = "hubw_secret-for-the-test"
    probe = textwrap.dedent(
        f"""
        import json, os, socket
        out = {{}}
        try:
            s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
            out["tcp"] = "connected"
        except OSError as e:
            out["tcp"] = type(e).__name__ + ": " + str(e)
        try:
            socket.getaddrinfo("pypi.org", 443)
            out["dns"] = "resolved"
        except OSError as e:
            out["dns"] = type(e).__name__
        for path in ("/models/{COMMIT_A}/config.json", "/models/new", "/ctl/planted.sock"):
            try:
                open(path, "w").write("x")
                out[path] = "written"
            except OSError as e:
                out[path] = type(e).__name__
        out["env"] = sorted(k for k in os.environ if k.startswith("HUB_") or "TOKEN" in k)
        root = {str(Path(__file__).resolve().parents[2])!r}
        out["hub"] = sorted(os.listdir(root + "/hub"))
        import hub.shared.watermark  # the scheme the watermark processor needs
        out["models"] = os.listdir("/models")
        print(json.dumps(out))
        """
    )
    try:
        spec = svc.engine_spec([PYTHON, "-c", probe])
        with Sandbox(spec) as sb:
            sb.start()
            res = sb.wait(timeout=120)
        out = json.loads(res.stdout_path.read_text())
    finally:
        del os.environ["HUB_WORKER_TOKEN"]
        srv.close()
    assert res.ok, res.message
    assert out["tcp"].startswith("PermissionError"), out
    assert out["dns"] != "resolved"
    for path in (f"/models/{COMMIT_A}/config.json", "/models/new", "/ctl/planted.sock"):
        assert out[path] in ("OSError", "PermissionError"), (path, out)
    assert out["env"] == []
    # Of the hub only the Django-free shared code is in view: no settings, server code, data.
    assert out["hub"] == ["__init__.py", "shared"]
    assert out["models"] == [COMMIT_A]
    assert (svc.models / COMMIT_A / "config.json").read_text() == "{}"


def test_cold_then_warm_then_lru_eviction(service):
    t0 = time.monotonic()
    cold = _run(service, _req("r1"))
    cold_s = time.monotonic() - t0
    assert cold[0]["type"] == "start" and cold[0]["cold"] is True
    toks = [e for e in cold if e["type"] == "token"]
    assert len(toks) == 8 and cold[-1]["type"] == "done" and cold[-1]["tokens"] == 8
    assert all(len(r["experts"]) == 2 for t in toks for r in t["routing"])
    warm = _run(service, _req("r2"))
    assert warm[0] == {**warm[0], "cold": False, "load_s": 0.0}
    assert [e["id"] for e in warm if e["type"] == "token"] == [e["id"] for e in toks]
    assert service.fetched == [COMMIT_A]  # weights fetched once
    # The greedy tokens are the model's: the same as outside the sandbox.
    from workers.moe.generate import SamplingParams, generate_ids
    from workers.moe.quantize import load_any

    model, _ = load_any(service.models / COMMIT_A)
    ids, _, _ = generate_ids(model, "def f(", SamplingParams(max_new_tokens=8, temperature=0.0))
    assert [e["id"] for e in toks] == ids
    assert cold_s > 0
    # A second commit: both fit in the default 2 GiB cache; with a tiny budget the first goes.
    b = _run(service, _req("r3", COMMIT_B))
    assert b[0]["cold"] is True and b[-1]["type"] == "done"
    assert _run(service, _req("r4"))[0]["cold"] is False


def test_a_cache_too_small_evicts_the_least_recently_used(tmp_path):
    src = {c: _weights(tmp_path / f"src-{c[0]}", i) for i, c in enumerate((COMMIT_A, COMMIT_B))}
    size = sum(p.numel() * 4 for p in MoETransformer(ModelConfig(**TINY_MODEL)).parameters())
    svc = InferenceService(
        InferenceConfig(work_root=tmp_path / "infer", cpus=1, cache_bytes=int(size * 1.6)),
        fetch=lambda req, dest: shutil.copytree(src[req["commit"]], dest),
    )
    try:
        assert _run(svc, _req("1", COMMIT_A))[0]["cold"] is True
        assert _run(svc, _req("2", COMMIT_A))[0]["cold"] is False
        assert _run(svc, _req("3", COMMIT_B))[0]["cold"] is True  # A evicted to fit B
        assert _run(svc, _req("4", COMMIT_A))[0]["cold"] is True
        tiny = InferenceService(
            InferenceConfig(work_root=tmp_path / "infer2", cpus=1, cache_bytes=1000),
            fetch=lambda req, dest: shutil.copytree(src[req["commit"]], dest),
        )
        try:
            err = _run(tiny, _req("5", COMMIT_A))[-1]
            assert err["type"] == "error" and err["code"] == "model_too_large"
        finally:
            tiny.close()
    finally:
        svc.close()


def test_bounds_cancel_and_a_crashed_engine_is_restarted(service):
    ev = _run(service, {**_req("t1", max_new_tokens=5000), "wall_time_s": 0.5})
    assert ev[-1]["type"] == "done" and ev[-1]["finish_reason"] == "time"
    assert 0 < ev[-1]["tokens"] < 5000
    flag = threading.Event()
    seen: list[dict] = []

    def emit(e):
        seen.append(e)
        if e["type"] == "token" and e["index"] == 2:
            flag.set()

    service.handle(_req("c1", max_new_tokens=5000), emit, flag.is_set)
    assert seen[-1]["finish_reason"] == "cancelled" and seen[-1]["tokens"] < 5000
    bad = _run(service, _req("p1", top_p=5))
    assert bad[-1] == {**bad[-1], "type": "error", "code": "invalid_params"}
    # The engine dies (OOM, a bug): the next request starts a fresh one.
    os.kill(service.sandbox.pid, 9)
    time.sleep(0.5)
    again = _run(service, _req("k1"))
    assert again[-1]["type"] == "done" and again[-1]["tokens"] == 8


def test_a_commit_without_a_model_is_refused(tmp_path):
    def fetch(req, dest):
        dest.mkdir()
        (dest / "README.md").write_text("no weights here")

    svc = InferenceService(InferenceConfig(work_root=tmp_path / "infer", cpus=1), fetch=fetch)
    try:
        ev = _run(svc, _req("n1"))
        assert ev[-1]["type"] == "error" and ev[-1]["code"] == "not_a_model"
    finally:
        svc.close()


def test_a_watermarked_request_is_detected_and_a_plain_one_is_not(service):
    """The hub's watermark parameters reach the engine's logits processor inside the sandbox
    (hub.shared is in its view); the green-list detector finds the mark in the output."""
    from hub.shared import watermark as wm

    params = wm.WatermarkParams(key=bytes(range(32)), gamma=0.25, delta=4.0)
    req = _req("w1", max_new_tokens=200, temperature=1.0, seed=11)
    marked = _run(service, {**req, "watermark": params.to_dict()})
    plain = _run(service, {**_req("w2", max_new_tokens=200, temperature=1.0, seed=11)})
    assert marked[-1]["type"] == "done" and plain[-1]["type"] == "done"
    ids = {
        n: [e["id"] for e in ev if e["type"] == "token"] for n, ev in (("m", marked), ("p", plain))
    }
    assert ids["m"] != ids["p"]
    prompt = list(b"def f(")
    z = {
        n: wm.detect(prompt[-1:] + i, key=params.key, gamma=0.25, context_width=1).z
        for n, i in ids.items()
    }
    assert z["m"] > 4.0, z
    assert z["p"] < 4.0, z
