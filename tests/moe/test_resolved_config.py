"""Every entry point tells the supervisor the config it really runs with (a ``config`` event),
so a job's run records its full resolved config, whatever the job typed."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from tests.moe.helpers import TINY_MODEL, by_type, run_entry
from workers.moe.config import ModelConfig, validate_config
from workers.moe.evaluate import run as evaluate_run
from workers.moe.finetune import run as finetune_run

pytestmark = pytest.mark.unit


def _no_work(cfg, out, events, weights):
    return {}


def test_a_job_that_typed_one_key_sends_its_whole_resolved_config(tmp_path):
    code, events = run_entry("train", _no_work, tmp_path, {"train": {"steps": 3}}, tmp_path / "out")
    assert code == 0
    [config] = by_type(events, "config")
    defaults, _ = validate_config("train", {"train": {"steps": 3}})
    assert config["params"] == defaults.to_dict()
    assert config["params"]["train"]["steps"] == 3
    assert config["params"]["model"]["block_size"] == ModelConfig().block_size
    assert {"seed", "model", "data", "runtime", "train"} <= set(config["params"])
    # Sent before the work starts, so a job that fails later still records it.
    assert [e["type"] for e in events].index("config") < [e["type"] for e in events].index("done")


@pytest.fixture
def base_weights(tmp_path):
    """A saved model whose architecture is not the default one."""
    from workers.moe.checkpoint import save_weights
    from workers.moe.model import MoETransformer

    cfg = ModelConfig(**TINY_MODEL)
    assert cfg.n_experts != ModelConfig().n_experts and cfg.block_size != ModelConfig().block_size
    d = tmp_path / "base"
    d.mkdir()
    save_weights(MoETransformer(cfg), d, {"step": 7})
    return d, cfg


@pytest.mark.parametrize("kind, run", [("finetune", finetune_run), ("evaluate", evaluate_run)])
def test_a_job_on_base_weights_records_the_models_architecture_from_the_weights(
    tmp_path, base_weights, kind, run
):
    """A fine-tune or evaluation typed without a model section used to record no model keys,
    and a comparison with a training run called every one of them a difference."""
    weights, model = base_weights
    code, events = run_entry(
        kind, _no_work, tmp_path, {"seed": 1}, tmp_path / "out", ["--weights", str(weights)]
    )
    assert code == 0, events
    [config] = by_type(events, "config")
    params = config["params"]
    assert params["model"]["n_experts"] == model.n_experts
    assert params["model"]["block_size"] == model.block_size
    assert params["model"] == asdict(model)  # every model key, as the weights have it
    assert params["seed"] == 1


def test_a_job_key_that_contradicts_the_weights_is_an_input_error_not_a_config(
    tmp_path, base_weights
):
    weights, model = base_weights
    code, events = run_entry(
        "evaluate",
        _no_work,
        tmp_path,
        {"model": {"n_experts": model.n_experts * 2}},
        tmp_path / "out",
        ["--weights", str(weights)],
    )
    assert code == 2
    assert by_type(events, "config") == [] and by_type(events, "error")
