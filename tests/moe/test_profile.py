"""The profile entry point's outputs parse."""

from __future__ import annotations

import json
import re

import pytest

from tests.moe.helpers import TINY_MODEL, by_type, run_entry, tiny_data
from workers.moe import profile
from workers.moe.scopes import PROFILE_SCOPES

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profile")
    cfg = {
        "model": TINY_MODEL,
        "data": tiny_data(tmp / "cache"),
        "profile": {"steps": 2, "warmup": 1, "batch_size": 4},
    }
    code, events = run_entry("profile", profile.run, tmp, cfg, tmp / "o")
    assert code == 0, by_type(events, "error")
    return tmp / "o" / "profile", events


def test_every_profile_output_is_announced_as_an_artifact(profiled):
    pdir, events = profiled
    kinds = {e["kind"] for e in by_type(events, "artifact")}
    assert kinds == {
        "profile_ops",
        "profile_stacks",
        "profile_trace",
        "profile_memory",
        "profile_modules",
        "profile_lifetimes",
    }
    for e in by_type(events, "artifact"):
        assert (pdir.parent / e["path"]).is_file()


def test_collapsed_stacks_are_in_folded_format(profiled):
    pdir, _ = profiled
    lines = (pdir / "stacks.folded").read_text().splitlines()
    assert lines and all(re.fullmatch(r"[^;\n]+(;[^;\n]+)* \d+", line) for line in lines)
    assert any(line.startswith("train_step;") and "moe::experts" in line for line in lines)


def test_chrome_trace_is_json_with_events(profiled):
    pdir, _ = profiled
    trace = json.loads((pdir / "trace.json").read_text())
    names = {e.get("name") for e in trace["traceEvents"]}
    assert "train_step" in names and "aten::mm" in names


def test_operator_table_has_times_calls_and_flops(profiled):
    pdir, _ = profiled
    ops = json.loads((pdir / "ops.json").read_text())["ops"]
    mm = next(r for r in ops if r["name"] == "aten::mm")
    assert mm["calls"] > 0 and mm["flops"] > 0 and mm["self_cpu_us"] > 0
    assert "Self CPU" in (pdir / "ops.txt").read_text()
    assert len({r["name"] for r in ops}) == len(ops)  # still one row per op


def test_operator_rows_by_input_shape_sum_to_the_per_op_table(profiled):
    pdir, _ = profiled
    table = json.loads((pdir / "ops.json").read_text())
    by_shape = table["ops_by_shape"]
    mms = [r for r in by_shape if r["name"] == "aten::mm"]
    # The model multiplies matrices of several shapes (attention, router, experts, head).
    assert len(mms) > 1 and len({r["shapes"] for r in mms}) == len(mms)
    for r in mms:
        shapes = json.loads(r["shapes"])
        assert len(shapes) >= 2 and all(len(s) == 2 for s in shapes[:2])  # a matrix times a matrix
    assert len({(r["name"], r["shapes"]) for r in by_shape}) == len(by_shape)
    mm = next(r for r in table["ops"] if r["name"] == "aten::mm")
    assert mm["calls"] == sum(r["calls"] for r in mms)
    assert mm["flops"] == sum(r["flops"] for r in mms)
    assert mm["self_cpu_us"] == pytest.approx(sum(r["self_cpu_us"] for r in mms))


def test_an_overlong_shapes_string_is_cut_but_stays_distinct():
    a = [[i, i + 1] for i in range(1000)]
    b = [*a[:-1], [0, 0]]
    ka, kb = profile.shapes_key(a), profile.shapes_key(b)
    assert len(ka) <= profile.MAX_SHAPES_CHARS and len(kb) <= profile.MAX_SHAPES_CHARS and ka != kb
    assert profile.shapes_key([[8, 64], [64, 128], []]) == "[[8,64],[64,128],[]]"


def test_module_shares_cover_the_model_and_sum_to_one(profiled):
    pdir, events = profiled
    shares = json.loads((pdir / "modules.json").read_text())["cpu_share"]
    assert set(shares) == {*PROFILE_SCOPES, "other"}
    assert abs(sum(shares.values()) - 1) < 1e-6
    assert all(shares[s] > 0 for s in PROFILE_SCOPES)
    metric = by_type(events, "metric")[0]["values"]
    assert metric["profile/share/experts"] == shares["experts"]


def test_memory_timeline_has_points(profiled):
    pdir, _ = profiled
    mem = json.loads((pdir / "memory.json").read_text())
    assert mem["columns"] == ["t_ms", "cpu_bytes", "device_bytes"]
    assert len(mem["points"]) > 10 and mem["peak_cpu_bytes"] > 0
    times = [p[0] for p in mem["points"]]
    assert times == sorted(times)


def test_the_module_runs_as_workers_moe_profile_without_shadowing_the_stdlib():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, "-m", "workers.moe.profile", "--help"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert r.returncode == 0 and "--event-fd" in r.stdout + r.stderr
    code = (
        "import cProfile, profile, workers.moe.profile as p; "
        "assert profile.__file__ != p.__file__ and hasattr(profile, 'Profile')"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


def test_a_profile_measures_the_recomputation_activation_checkpointing_adds(profiled, tmp_path):
    """The profiled step is the step training would run: with ``blocks`` checkpointing every
    block's forward runs again in the backward pass, so the matmuls counted grow."""
    cfg = {
        "model": TINY_MODEL,
        "data": tiny_data(tmp_path / "cache"),
        "train": {"activation_checkpointing": "blocks"},
        "profile": {"steps": 2, "warmup": 1, "batch_size": 4},
    }
    code, events = run_entry("profile", profile.run, tmp_path, cfg, tmp_path / "o")
    assert code == 0, by_type(events, "error")

    def mm_calls(pdir):
        ops = json.loads((pdir / "ops.json").read_text())["ops"]
        return next(r["calls"] for r in ops if r["name"] == "aten::mm")

    assert mm_calls(tmp_path / "o" / "profile") > mm_calls(profiled[0])


def _lifetimes(profiled):
    pdir, _ = profiled
    return json.loads((pdir / "lifetimes.json").read_text())


def test_lifetimes_categorise_parameters_activations_and_gradients(profiled):
    lt = _lifetimes(profiled)
    cats = {t["category"] for t in lt["tensors"]}
    assert {"parameter", "activation", "gradient", "optimizer_state"} <= cats
    assert lt["columns"] == ["t_ms", *lt["categories"]]
    assert all(len(p) == len(lt["columns"]) for p in lt["points"])
    # Activations are created and freed inside the profiled steps.
    acts = [t for t in lt["tensors"] if t["category"] == "activation"]
    assert any(t["alloc_ms"] is not None and t["free_ms"] is not None for t in acts)
    assert all(
        t["free_ms"] is None or t["alloc_ms"] is None or t["free_ms"] >= t["alloc_ms"]
        for t in lt["tensors"]
    )
    # Each allocation inside the profile names the aten operator that made it.
    made = [t for t in lt["tensors"] if t["alloc_ms"] is not None]
    assert made and sum(
        t["op"] is not None and t["op"].startswith("aten::") for t in made
    ) >= 0.9 * len(made)
    assert any(t["module"] for t in made)


def test_the_peak_is_the_timeline_maximum_and_lists_what_was_live(profiled):
    lt = _lifetimes(profiled)
    totals = [sum(p[1:]) for p in lt["points"]]
    assert lt["peak"]["bytes"] == max(totals)
    assert sum(lt["peak"]["by_category"].values()) == lt["peak"]["bytes"]
    by_id = {t["id"]: t for t in lt["tensors"]}
    t_peak = lt["peak"]["t_ms"]
    live = [by_id[i] for i in lt["peak"]["live"]]
    assert live and lt["peak"]["live_count"] >= len(live)
    for t in live:
        assert t["alloc_ms"] is None or t["alloc_ms"] <= t_peak
        assert t["free_ms"] is None or t["free_ms"] > t_peak
    if lt["peak"]["live_count"] == len(live):
        assert sum(t["bytes"] for t in live) == lt["peak"]["bytes"]


def test_parameter_tensors_add_up_to_the_models_parameter_bytes(profiled):
    from workers.moe.config import ModelConfig
    from workers.moe.model import MoETransformer

    model = MoETransformer(ModelConfig(**TINY_MODEL))
    want = sum(p.numel() * p.element_size() for p in model.parameters())
    lt = _lifetimes(profiled)
    # Parameters exist before profiling and live through it: the first point holds them all.
    got = lt["points"][0][1 + lt["categories"].index("parameter")]
    # Tied weights are one storage; the allocator rounds nothing on CPU: within 1%.
    assert abs(got - want) <= 0.01 * want, (got, want)
    # The same bytes as tensors: the parameter storages that predate the profile (the
    # profiler's heuristic also files a few of Adam's in-place temporaries as parameters).
    params = [t for t in lt["tensors"] if t["category"] == "parameter" and t["alloc_ms"] is None]
    assert params and all(t["free_ms"] is None for t in params)
    assert sum(t["bytes"] for t in params) == got


def test_no_cuda_no_memory_snapshot(profiled):
    pdir, _ = profiled
    assert not (pdir / "memory_snapshot.pickle").exists()
    assert profile.cuda_memory_history(True) is False
    assert profile.cuda_memory_snapshot() is None


def test_the_operator_table_holds_operators_not_python_frames(profiled):
    # The memory profile records Python stacks; their frames must not become "operators".
    pdir, _ = profiled
    names = [r["name"] for r in json.loads((pdir / "ops.json").read_text())["ops"]]
    assert "aten::mm" in names
    assert not [n for n in names if ".py(" in n or n.startswith(("<built-in", "nn.Module:"))]
    assert ".py(" not in (pdir / "ops.txt").read_text()
