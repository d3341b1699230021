"""The inference playground end to end through `hub serve`: the API sends the request on the
broker (queue infer), the inference worker `hub serve` started fetches the commit with the
request's credential, its sandboxed engine generates, the events come back as SSE; the CLI
(`hub generate`) and the SDK (`Client.generate`) on top. A private repo is 404 to others."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import torch

from hub.client import Client, HubClientError
from tests.e2e.conftest import HUB
from tests.moe.helpers import TINY_MODEL
from tests.sandbox.conftest import needs_sandbox
from workers.moe.checkpoint import save_weights
from workers.moe.config import ModelConfig
from workers.moe.generate import SamplingParams, generate_ids
from workers.moe.model import MoETransformer

pytestmark = [pytest.mark.e2e, needs_sandbox]


@pytest.fixture(scope="module")
def gen_hub(live_hub, tmp_path_factory):
    token = live_hub.make_user("gena")
    other = live_hub.make_user("genb")
    torch.manual_seed(0)
    model = MoETransformer(ModelConfig(**{**TINY_MODEL, "top_k": 4}))
    w = tmp_path_factory.mktemp("gen-weights")
    save_weights(model, w)
    c = Client(url=live_hub.url, token=token)
    c.create_repo("gena/lm")
    c.push(w, repo="gena/lm", message="tiny model")
    c.create_repo("gena/private-lm", private=True)
    c.push(w, repo="gena/private-lm", message="tiny model")
    # The inference worker announces itself a few seconds after the hub is up.
    deadline = time.monotonic() + 120
    while True:
        try:
            list(c.generate("gena/lm", "x", max_new_tokens=1))
            break
        except HubClientError as e:
            if e.code != "no_inference_worker" or time.monotonic() > deadline:
                raise
            time.sleep(1)
    return {"token": token, "other": other, "client": c, "model": model.eval()}


def test_sdk_streams_tokens_with_routing_through_the_sandboxed_worker(gen_hub):
    c = gen_hub["client"]
    events = list(c.generate("gena/lm@main", "def main(", max_new_tokens=16, temperature=0))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("token") == 16
    assert events[0]["cold"] is False  # the fixture's request loaded it: warm now
    tokens = [e for e in events if e["type"] == "token"]
    expected, _, _ = generate_ids(
        gen_hub["model"], "def main(", SamplingParams(max_new_tokens=16, temperature=0)
    )
    assert [t["id"] for t in tokens] == expected
    for t in tokens:
        assert [r["layer"] for r in t["routing"]] == [1]
        (r,) = t["routing"]
        assert len(r["experts"]) == 4 and len(set(r["experts"])) == 4
        assert abs(sum(r["weights"]) - 1.0) < 1e-3
    done = events[-1]
    assert done["tokens"] == 16 and done["tokens_per_s"] > 0 and done["kv_cache"] is True


def test_cli_generate_streams_text_and_json(gen_hub, live_hub):
    r = live_hub.cli(
        "generate",
        "gena/lm",
        "import ",
        "--max-new-tokens",
        "8",
        "--temperature",
        "0.8",
        "--seed",
        "5",
        "--json",
        token=gen_hub["token"],
        check=True,
    )
    out = json.loads(r.stdout)
    assert out["tokens"] and len(out["tokens"]) == 8 and out["finish_reason"] == "length"
    again = live_hub.cli(
        "generate",
        "gena/lm",
        "import ",
        "--max-new-tokens",
        "8",
        "--temperature",
        "0.8",
        "--seed",
        "5",
        token=gen_hub["token"],
        check=True,
    )
    assert again.stdout.rstrip("\n") == out["text"]  # same seed, same text, streamed
    assert "token(s), length" in again.stderr and "tokens/s" in again.stderr


def test_private_repo_is_404_to_others_and_works_for_its_owner(gen_hub, live_hub, tmp_path):
    r = live_hub.cli(
        "generate", "gena/private-lm", "a", "--max-new-tokens", "2", token=gen_hub["other"]
    )
    assert r.returncode == 3, r.stderr
    assert "not found" in r.stderr.lower()
    # Anonymous: an empty config folder, so no login another test saved for this hub is used.
    env = {k: v for k, v in live_hub.env.items() if k != "HUB_TOKEN"}
    r = subprocess.run(
        [*HUB, "generate", "gena/private-lm", "a", "--max-new-tokens", "2"],
        env=dict(env, HUB_CONFIG_DIR=str(tmp_path / "anonymous")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 3, r.stderr
    ok = live_hub.cli(
        "generate",
        "gena/private-lm",
        "a",
        "--max-new-tokens",
        "2",
        "--json",
        token=gen_hub["token"],
        check=True,
    )
    assert json.loads(ok.stdout)["tokens"]
