"""MoE health alerts inside a training job: a router forced onto one expert raises the
collapse alert within its window and, as configured, stops the job (or checkpoints, then
stops); a healthy tiny run raises none."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.moe.helpers import by_type, run_entry, tiny_config
from workers.moe import train
from workers.moe.config import validate_config

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus-cache")


def broken(cache: Path, on_collapse: str) -> dict:
    return tiny_config(
        cache,
        model={"debug_force_expert": 3},
        train={"steps": 20, "log_every": 2, "checkpoint_every": 100, "warmup_steps": 2},
        alerts={"collapse_steps": 2, "on_collapse": on_collapse},
    )


def test_a_forced_router_raises_collapse_and_the_job_stops(tmp_path, cache):
    code, events = run_entry("train", train.run, tmp_path, broken(cache, "stop"), tmp_path / "out")
    assert code == 0
    alerts = by_type(events, "alert")
    collapse = [a for a in alerts if a["kind"] == "collapse"]
    # logged at steps 2, 4: the second consecutive logged step completes the window
    assert [a["step"] for a in collapse] == [4]
    assert {a["details"]["expert"] for a in collapse} == {3}
    assert collapse[0]["details"]["token_share"] == 1.0 and collapse[0]["action"] == "stop"
    summary = by_type(events, "done")[0]["summary"]
    assert summary["steps"] == 4
    assert summary["stop_reason"].startswith("stopped by the collapse alert at step 4")
    assert summary["alerts"]["raised"]["collapse"] == 1
    assert max(e["step"] for e in by_type(events, "metric")) == 4  # nothing after the stop
    assert by_type(events, "artifact") == []  # stop: nothing saved


def test_checkpoint_stop_writes_a_checkpoint_and_the_weights_then_stops(tmp_path, cache):
    out = tmp_path / "out"
    code, events = run_entry("train", train.run, tmp_path, broken(cache, "checkpoint_stop"), out)
    assert code == 0
    kinds = {a["kind"]: a["path"] for a in by_type(events, "artifact")}
    assert kinds["checkpoint"].endswith("4.pt") or "4" in kinds["checkpoint"]
    assert (out / kinds["checkpoint"]).is_file() and (out / "model.safetensors").is_file()
    summary = by_type(events, "done")[0]["summary"]
    assert summary["steps"] == 4 and "checkpoint_stop" in summary["stop_reason"]


def test_a_healthy_tiny_run_raises_no_collapse_and_runs_to_the_end(tmp_path, cache):
    # The defaults (3 logged steps of the same expert over half the tokens), on a tiny model
    # whose router swings between favourites in its first steps
    cfg = tiny_config(cache, train={"steps": 30}, alerts={"on_collapse": "stop"})
    code, events = run_entry("train", train.run, tmp_path, cfg, tmp_path / "out")
    assert code == 0
    assert [a for a in by_type(events, "alert") if a["kind"] == "collapse"] == []
    summary = by_type(events, "done")[0]["summary"]
    assert summary["steps"] == 30 and "stop_reason" not in summary


def test_the_alerts_section_and_the_debug_option_are_validated():
    cfg, errors = validate_config(
        "train",
        {
            "model": {"n_experts": 8, "debug_force_expert": 8},
            "alerts": {"on_collapse": "explode", "collapse_share": 0, "dead_expert_steps": 0},
        },
    )
    assert cfg is None
    assert {e["path"] for e in errors} == {
        "model.debug_force_expert",
        "alerts.on_collapse",
        "alerts.collapse_share",
        "alerts.dead_expert_steps",
    }
    ok, _ = validate_config("train", {})
    assert ok is not None and ok.model.debug_force_expert is None  # off by default
    assert ok.alerts is not None and ok.alerts.on_collapse == "none"
