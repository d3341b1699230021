"""The Inspector's model views end to end through `hub serve`: attention maps and the routing
diff are engine requests of the sandboxed inference worker (queue infer), fetched with the
request's credential; a private repo is 404 to others; the CLI prints the diff."""

from __future__ import annotations

import copy
import json
import time

import pytest
import torch

from hub.client import Client, HubClientError
from tests.moe.helpers import TINY_MODEL
from tests.sandbox.conftest import needs_sandbox
from workers.moe.checkpoint import save_weights
from workers.moe.config import ModelConfig
from workers.moe.introspect import routing_probe
from workers.moe.model import MoETransformer
from workers.moe.probe_set import PROBE_WINDOWS

pytestmark = [pytest.mark.e2e, needs_sandbox]


def _swap_experts(m: MoETransformer, i: int, j: int) -> MoETransformer:
    b = copy.deepcopy(m)
    n = m.cfg.n_experts
    perm = list(range(n))
    perm[i], perm[j] = j, i
    with torch.no_grad():
        for layer, moe in b.moe_layers().items():
            h = moe.experts.sizes[0]
            src = m.moe_layers()[layer]
            w13 = src.experts.w13.view(n, 2 * h, -1)[perm]
            moe.experts.w13.copy_(w13.reshape_as(moe.experts.w13))
            moe.experts.w2.copy_(src.experts.w2.view(n, h, -1)[perm].reshape_as(moe.experts.w2))
            moe.router.weight.copy_(src.router.weight[perm])
    return b


@pytest.fixture(scope="module")
def insp_hub(live_hub, tmp_path_factory):
    token = live_hub.make_user("insa")
    other = live_hub.make_user("insb")
    torch.manual_seed(0)
    model = MoETransformer(ModelConfig(**{**TINY_MODEL, "top_k": 1})).eval()
    top1 = routing_probe(model, list(PROBE_WINDOWS))["layers"][0]["top1"]
    busy = sorted(range(8), key=lambda e: -top1.count(e))[:2]
    swapped = _swap_experts(model, *busy)
    c = Client(url=live_hub.url, token=token)
    c.create_repo("insa/lm")
    for m, msg, tag in ((model, "tiny model", "base"), (swapped, "experts swapped", "swapped")):
        w = tmp_path_factory.mktemp("insp-weights")
        save_weights(m, w)
        c.push(w, repo="insa/lm", message=msg)
        c.create_tag("insa/lm", tag, "main")
    c.create_repo("insa/private", private=True)
    w = tmp_path_factory.mktemp("insp-private")
    save_weights(model, w)
    c.push(w, repo="insa/private", message="tiny model")
    deadline = time.monotonic() + 120
    while True:
        try:
            c.attention("insa/lm@base", "x", retries=0)
            break
        except HubClientError as e:
            if e.code != "no_inference_worker" or time.monotonic() > deadline:
                raise
            time.sleep(1)
    return {"client": c, "other": other, "model": model, "busy": busy, "token": token}


def test_attention_through_the_sandboxed_engine(insp_hub):
    c = insp_hub["client"]
    prompt = "def main():\n  return 1"
    res = c.attention("insa/lm@base", prompt)
    T = len(prompt.encode())
    assert res["tokens"][:4] == ["d", "e", "f", "␣"] and len(res["token_ids"]) == T
    assert res["n_layer"] == TINY_MODEL["n_layer"] and res["n_head"] == TINY_MODEL["n_head"]
    for layer in res["layers"]:
        assert layer["max_abs_diff"] < 1e-4  # explicit weights reproduce the SDPA output
        assert len(layer["heads"]) == TINY_MODEL["n_head"]
        assert [len(r) for r in layer["heads"][0]] == list(range(1, T + 1))
    moe = [L for L in res["layers"] if L.get("routing")]
    assert moe and all(len(L["routing"]["experts"]) == T for L in moe)
    # the routing shown is the model's own
    from workers.moe.introspect import attention_maps

    local = attention_maps(insp_hub["model"], prompt, max_tokens=256)
    assert [(L.get("routing") or {}).get("experts") for L in res["layers"]] == [
        (L.get("routing") or {}).get("experts") for L in local["layers"]
    ]


def test_attention_prompt_over_the_bound_is_413(insp_hub):
    with pytest.raises(HubClientError) as e:
        insp_hub["client"].attention("insa/lm@base", "x" * 257)
    assert e.value.status == 413 and e.value.code == "prompt_too_large"


def test_private_repo_is_404_to_others(insp_hub, live_hub):
    other = Client(url=live_hub.url, token=insp_hub["other"])
    for call in (
        lambda: other.attention("insa/private", "abc"),
        lambda: other.routing_diff("insa/private", "insa/private"),
        lambda: other.routing_diff("insa/lm@base", "insa/private"),
    ):
        with pytest.raises(HubClientError) as e:
            call()
        assert e.value.status == 404
    assert insp_hub["client"].attention("insa/private", "abc")["tokens"] == ["a", "b", "c"]


def test_routing_diff_with_itself_and_with_swapped_experts(insp_hub, live_hub):
    c = insp_hub["client"]
    same = c.routing_diff("insa/lm@base", "insa/lm@base")
    assert same["summary"] == {"same_top1": 1.0, "swaps": 0, "max_abs_load_delta": 0.0}
    d = c.routing_diff("insa/lm@base", "insa/lm@swapped")
    i, j = insp_hub["busy"]
    L = d["layers"][0]
    assert {(s["a"], s["b"]) for s in L["swaps"]} == {(i, j), (j, i)}
    assert L["matched_same_top1"] == 1.0 and L["same_top1"] < 1.0
    out = live_hub.cli(
        "inspect", "routing", "insa/lm@base", "insa/lm@swapped", token=insp_hub["token"], check=True
    ).stdout
    assert f"{i}→{j}" in out and f"{j}→{i}" in out and "probe set v1" in out
    js = json.loads(
        live_hub.cli(
            "inspect",
            "routing",
            "insa/lm@base",
            "insa/lm@base",
            "--json",
            token=insp_hub["token"],
            check=True,
        ).stdout
    )
    assert js["summary"]["same_top1"] == 1.0
