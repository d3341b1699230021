"""Comparison reports: the summary is worded from final values and the sign of the difference."""

import pytest

from hub.tracking import report

pytestmark = pytest.mark.unit


def _run(rid, final, best, *, key="val_loss", params=None, best_step=5):
    d = "min" if report.direction(key) == "min" else "max"
    return {
        "id": rid,
        "name": rid,
        "params": params or {"lr": 1e-3},
        "summary": {
            key: {
                "last": final,
                "last_step": 10,
                d: best,
                f"{d}_step": best_step,
                ("max" if d == "min" else "min"): max(final, best),
            }
        },
    }


def test_best_ever_run_that_ended_worse_is_not_called_lower():
    """B touched 1.0 at some step but ended at 3, A ended at 2: the old summary said
    "B reaches 50.0% lower final val_loss than A (3 vs 2)"."""
    rep = report.compare(
        [_run("A", 2.0, 1.5), _run("B", 3.0, 1.0, params={"lr": 3e-3})], baseline="A"
    )
    [m] = rep["metrics"]
    assert m["best_run"] == "B" and m["best_final_run"] == "A"
    text = " ".join(rep["summary"])
    assert "lower final" not in text
    assert (
        rep["summary"][0]
        == "The baseline A has the best final val_loss (2); the next best, B, ends 50.0% higher (3)."
    )
    assert (
        rep["summary"][1] == "B reached the best val_loss at any step (1 at step 5) but ended at 3."
    )


def test_the_best_final_run_against_the_baseline():
    rep = report.compare(
        [_run("A", 2.0, 2.0), _run("B", 1.76, 1.7, params={"lr": 3e-3}), _run("C", 1.9, 1.1)],
        baseline="A",
    )
    assert (
        rep["summary"][0]
        == "B reaches 12.0% lower final val_loss than A (1.76 vs 2); they differ in lr 0.001→0.003."
    )
    assert rep["summary"][1].startswith("C reached the best val_loss at any step (1.1 at step 5)")


def test_higher_is_better_metrics_say_higher():
    rep = report.compare(
        [
            _run("A", 0.5, 0.5, key="accuracy"),
            _run("B", 0.6, 0.6, key="accuracy", params={"lr": 1}),
        ],
        baseline="A",
        target="accuracy",
    )
    assert rep["summary"][0].startswith("B reaches 20.0% higher final accuracy than A (0.6 vs 0.5)")


def test_goal_overrides_the_direction_of_the_name():
    runs = [_run("A", 0.5, 0.5, key="score"), _run("B", 0.4, 0.4, key="score", params={"lr": 1})]
    runs[1]["summary"]["score"]["min"] = 0.4
    runs[0]["summary"]["score"]["min"] = 0.5
    rep = report.compare(runs, baseline="A", target="score", goal="min")
    assert rep["summary"][0].startswith("B reaches 20.0% lower final score than A")


def test_a_zero_baseline_and_a_tie_are_worded_without_a_percentage():
    rep = report.compare(
        [_run("A", 0.0, 0.0, key="accuracy"), _run("B", 0.3, 0.3, key="accuracy", params={"x": 1})],
        baseline="A",
        target="accuracy",
    )
    assert rep["summary"][0].startswith("B reaches higher final accuracy than A (0.3 vs 0)")
    tie = report.compare([_run("A", 2.0, 2.0), _run("B", 2.0, 2.0)], baseline="B")
    assert tie["summary"][0].startswith(
        "The baseline B has the best final val_loss (2); the next best, A, ends the same (2)"
    )


def test_baseline_without_the_target_metric():
    a = {"id": "A", "name": "A", "params": {}, "summary": {}}
    rep = report.compare([a, _run("B", 1.5, 1.5)], baseline="A", target="val_loss")
    assert (
        rep["summary"][0]
        == "B has the best final val_loss (1.5 at step 10); the baseline A did not log it."
    )


def _five():
    rows = [(2, 3e-4, 2.0), (4, 1e-3, 1.76), (8, 1e-3, 1.9), (2, 1e-4, 2.3), (4, 3e-4, 1.8)]
    return [
        {
            "id": f"r{i}",
            "name": f"r{i}",
            "params": {"moe.top_k": k, "lr": lr, "seed": 0},
            "summary": {
                "val_loss": {
                    "last": loss,
                    "last_step": 100,
                    "min": loss,
                    "min_step": 100,
                    "max": loss + 1,
                    "max_step": 0,
                }
            },
        }
        for i, (k, lr, loss) in enumerate(rows)
    ]


def test_html_has_what_markdown_has():
    rep = report.compare(_five(), baseline="r0")
    md, page = report.to_markdown(rep), report.to_html(rep)
    for text in ("(-12.0%)", "(-5.0%)", "Rank correlation with val_loss", "moe.top_k", "★"):
        assert text in md and text in page, text
    assert "Baseline: <b>r0</b>" in page and "class='best'" in page
    for c in rep["correlations"]:
        assert f"{c['spearman']:+.3f}" in page
    assert html_escaped(
        report.to_html(
            report.compare(
                [
                    {"id": "a", "name": "<script>", "params": {}, "summary": {}},
                    {"id": "b", "name": "b", "params": {}, "summary": {}},
                ]
            )
        )
    )


def html_escaped(page: str) -> bool:
    return "<script>" not in page and "&lt;script&gt;" in page
