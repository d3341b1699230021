"""The pure profile diff (hub/shared/profile_diff.py): op ratios and the merged frame tree."""

from __future__ import annotations

import pytest

from hub.shared import profile_diff as pd

pytestmark = pytest.mark.unit


def test_op_ratios_per_step_sorted_by_impact_with_one_sided_ops():
    a = [
        {"op": "aten::mm", "self_us": 1000, "self_memory_bytes": 400},
        {"op": "aten::topk", "self_us": 30, "self_memory_bytes": 0},
        {"op": "aten::gone", "self_us": 50, "self_memory_bytes": 8},
    ]
    b = [
        {"op": "aten::mm", "self_us": 600, "self_memory_bytes": 200},  # 2 steps: 300 per step
        {"op": "aten::mm", "self_us": 600, "self_memory_bytes": 200},
        {"op": "aten::topk", "self_us": 240, "self_memory_bytes": 0},
        {"op": "aten::new", "self_us": 10, "self_memory_bytes": 0},
    ]
    rows = pd.op_ratios(a, b, steps_a=1, steps_b=2)
    by = {r["op"]: r for r in rows}
    assert by["aten::mm"]["b_self_us"] == 600 and by["aten::mm"]["self_ratio"] == pytest.approx(0.6)
    assert by["aten::mm"]["memory_ratio"] == pytest.approx(0.5)
    assert by["aten::topk"]["self_ratio"] == pytest.approx(4.0)
    assert by["aten::topk"]["memory_ratio"] is None  # A allocated nothing: no ratio
    assert by["aten::gone"]["only"] == "a" and by["aten::gone"]["self_ratio"] is None
    assert by["aten::new"]["only"] == "b" and by["aten::new"]["a_self_us"] is None
    assert [r["op"] for r in rows] == ["aten::mm", "aten::topk", "aten::gone", "aten::new"]
    assert [abs(r["delta_us"]) for r in rows] == [400, 90, 50, 5]


def test_parse_folded_sums_repeats_and_skips_bad_lines():
    text = "a;b;c 10\na;b;c 5\na;d 7\nbroken\nx;y notanumber\n\n"
    assert pd.parse_folded(text) == {("a", "b", "c"): 15.0, ("a", "d"): 7.0}


def test_diff_tree_totals_ratios_and_one_sided_frames():
    fa = pd.parse_folded("step;moe::router;aten::topk 100\nstep;moe::experts;aten::mm 300\n")
    fb = pd.parse_folded("step;moe::router;aten::topk 400\nstep;moe::attention;aten::bmm 50\n")
    tree = pd.diff_tree(fa, fb, steps_a=1, steps_b=2)
    root = tree["root"]
    assert (root["a_us"], root["b_us"]) == (400, 225)
    step = root["children"][0]
    kids = {c["name"]: c for c in step["children"]}
    assert kids["moe::router"]["ratio"] == pytest.approx(2.0)
    assert kids["moe::experts"]["only"] == "a" and kids["moe::experts"]["b_us"] == 0
    assert kids["moe::attention"]["only"] == "b" and kids["moe::attention"]["ratio"] is None
    assert kids["moe::router"]["children"][0]["name"] == "aten::topk"
    assert tree["frames"] == 8 and tree["truncated"] is False
    s = pd.summary(pd.op_ratios([], []), tree)
    assert s["total_ratio"] == pytest.approx(225 / 400)


def test_diff_tree_keeps_the_largest_frames_and_their_parents():
    fa = {("r", f"f{i}", "leaf"): float(i + 1) for i in range(10)}
    tree = pd.diff_tree(fa, fa, max_frames=5)
    assert tree["truncated"] is True and tree["frames"] == 5

    def names(n, out):
        out.append(n["name"])
        for c in n["children"]:
            names(c, out)
        return out

    kept = names(tree["root"], [])
    # all, r, then the largest subtrees f9 (+ its leaf): every kept frame's parent is kept.
    assert kept[:3] == ["all", "r", "f9"] and len(kept) == 5
