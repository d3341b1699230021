"""A differential-privacy training job end to end: the jobs API, the real queue and sandbox,
the workload's DP-SGD; the job stops at its ε and the commit records the guarantee."""

from __future__ import annotations

import pytest

from hub.client import Client
from tests.e2e.test_jobs import DATA, MODEL, RES, wait
from workers.moe import dp, dp_accountant
from workers.moe.config import validate_config
from workers.moe.data import load_corpus

pytestmark = pytest.mark.e2e

SIGMA = 0.8
STOP_AT = 5


@pytest.fixture(scope="module")
def hub(live_hub):
    token = live_hub.make_user("dora")
    c = Client(url=live_hub.url, token=token)
    c.create_repo("dora/private-moe")
    return c


def test_dp_job_stops_at_its_budget_and_its_commit_records_it(hub, tmp_path):
    c = hub
    config = {
        "model": MODEL,
        "data": DATA,
        "train": {
            "steps": 30,
            "batch_size": 4,
            "warmup_steps": 2,
            "eval_every": 0,
            "eval_tokens": 4096,
            "log_every": 1,
            "checkpoint_every": 100,
        },
    }
    # The job's corpus is the default one at data.max_bytes: build the same here to know N,
    # then set the budget between ε after STOP_AT and after STOP_AT + 1 steps.
    cfg, errors = validate_config("train", config)
    assert cfg is not None, errors
    n = dp.n_examples(load_corpus(cfg.data, tmp_path, MODEL["block_size"]))
    q, delta = 4 / n, min(1e-5, 0.1 / n)
    budget = (
        dp_accountant.epsilon(q, SIGMA, STOP_AT, delta)
        + dp_accountant.epsilon(q, SIGMA, STOP_AT + 1, delta)
    ) / 2
    config["train"]["dp"] = {"epsilon": budget, "noise_multiplier": SIGMA}

    j = c._json(
        "POST",
        "/jobs",
        json={
            "project": "dora/exp",
            "resources": RES,
            "kind": "train",
            "config": config,
            "target": "dora/private-moe@main",
        },
    )
    j = wait(c, j["id"])
    assert j["status"] == "succeeded", j["reason"]
    assert j["reason"].startswith("privacy budget reached: ε = ")
    assert f"after {STOP_AT} of 30 steps" in j["reason"]
    rec = j["summary"]["dp"]
    assert rec["steps"] == STOP_AT and rec["n_examples"] == n and rec["sample_rate"] == q
    assert rec["epsilon"] == pytest.approx(dp_accountant.epsilon(q, SIGMA, STOP_AT, delta))
    assert rec["epsilon"] <= budget

    commit = c.commit_info("dora/private-moe", j["result"]["commit"])
    meta = commit["metadata"]["dp"]
    assert {
        k: meta[k]
        for k in ("epsilon", "delta", "noise_multiplier", "sample_rate", "steps", "max_grad_norm")
    } == {
        "epsilon": rec["epsilon"],
        "delta": delta,
        "noise_multiplier": SIGMA,
        "sample_rate": q,
        "steps": STOP_AT,
        "max_grad_norm": 1.0,
    }
    run = c.get_run(j["run_id"])
    assert run["summary"]["dp/epsilon"]["last_step"] == STOP_AT
    assert run["summary"]["dp/epsilon"]["last"] == pytest.approx(rec["epsilon"])
    assert run["params"]["train.dp.epsilon"] == pytest.approx(budget)
