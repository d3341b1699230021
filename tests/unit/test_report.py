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


def test_a_target_one_run_did_not_log_ranks_nobody():
    """The old summary said "B has the best final val_loss; the baseline A did not log it":
    a ranking on a metric the runs do not all share."""
    a = {"id": "A", "name": "A", "params": {}, "summary": {}}
    rep = report.compare([a, _run("B", 1.5, 1.5)], baseline="A", target="val_loss")
    assert rep["summary"][0] == "val_loss was not logged by A: no run is ranked on it."
    [m] = rep["metrics"]
    assert m["best_run"] is None and m["best_final_run"] is None
    assert m["shared"] is False and m["missing"] == ["A"]
    assert "best" not in " ".join(rep["summary"])


def test_a_param_missing_in_some_runs_is_not_a_difference():
    """Four runs, two of which recorded only the keys typed: the old report said they "differ
    in model.block_size 128→—, model.n_experts 8→— and 9 more"."""
    full = {"model.block_size": 128, "model.n_experts": 8, "train.lr": 1e-3}
    runs = [
        _run("A", 2.0, 2.0, params=dict(full)),
        _run("B", 1.8, 1.8, params={"train.lr": 3e-3}),
        _run("C", 1.9, 1.9, params={**full, "train.lr": 3e-3}),
        _run("D", 2.1, 2.1, params={"train.lr": 1e-3}),
    ]
    rep = report.compare(runs, baseline="A")
    assert [p["key"] for p in rep["params"]] == ["train.lr"]
    assert {p["key"]: p["recorded_in"] for p in rep["partial_params"]} == {
        "model.block_size": ["A", "C"],
        "model.n_experts": ["A", "C"],
    }
    assert rep["summary"][0] == (
        "B reaches 10.0% lower final val_loss than A (1.8 vs 2); they differ in train.lr 0.001→0.003."
    )
    assert "—" not in " ".join(rep["summary"])
    assert any("recorded by only some of the runs" in line for line in rep["summary"])
    md = report.to_markdown(rep)
    assert "Params recorded only in some runs (2; not compared)" in md and "not recorded" in md
    assert "not recorded" in report.to_html(rep)


def test_runs_that_share_the_params_they_all_recorded_have_no_difference():
    runs = [
        _run("A", 2.0, 2.0, params={"lr": 1e-3, "model.top_k": 2}),
        _run("B", 1.9, 1.9, params={"lr": 1e-3}),
    ]
    rep = report.compare(runs, baseline="A")
    assert rep["params"] == [] and rep["same_params"] == 1
    assert rep["summary"][0] == "B reaches 5.0% lower final val_loss than A (1.9 vs 2)."


@pytest.mark.parametrize(
    "key, want",
    [
        ("val/loss", "min"),
        ("val_loss", "min"),
        ("eval/bpb", "min"),
        ("perplexity", "min"),
        ("profile/step_ms", "min"),
        ("latency_p50", "min"),
        ("moe/layer0/dropped_frac", "min"),
        ("moe/load_cv", "min"),
        ("accuracy", "max"),
        ("eval/acc", "max"),
        ("f1", "max"),
        ("tokens_per_s", "max"),
        ("eval/tokens_per_s", "max"),
        ("mfu", "max"),
        ("lr", "none"),
        ("train/learning_rate", "none"),
        ("step", "none"),
        ("epoch", "none"),
        ("time", "none"),
        ("loss_scale", "none"),
        ("grad_norm", "none"),
        ("moe/entropy", "none"),
        ("profile/share/attention", "none"),
        ("something_unnamed", "none"),
    ],
)
def test_the_direction_of_a_metric_follows_its_name(key, want):
    assert report.direction(key) == want


def _metric(rid, key, final, lo, hi):
    return {
        "id": rid,
        "name": rid,
        "params": {},
        "summary": {
            key: {"last": final, "last_step": 9, "min": lo, "min_step": 3, "max": hi, "max_step": 1}
        },
    }


def test_a_metric_without_a_direction_gets_no_star_and_ranks_nobody():
    rep = report.compare(
        [_metric("A", "lr", 1e-3, 1e-4, 1e-3), _metric("B", "lr", 3e-3, 3e-4, 3e-3)],
        baseline="A",
        target="lr",
    )
    [m] = rep["metrics"]
    assert m["direction"] == "none" and m["best_run"] is None and m["best_final_run"] is None
    assert m["runs"]["B"]["best"] == 3e-3  # no "best" without a direction: the final value
    assert rep["summary"][0].startswith("lr has no better direction: no run is ranked on it")
    assert " ★" not in report.to_markdown(rep).split("★ = best")[1]
    assert "class='best'" not in report.to_html(rep)


def test_a_project_override_sets_the_direction_of_a_metric():
    runs = [_metric("A", "eval/score", 0.5, 0.4, 0.6), _metric("B", "eval/score", 0.7, 0.5, 0.9)]
    assert report.compare(runs, target="eval/score")["metrics"][0]["best_run"] is None
    rep = report.compare(runs, target="eval/score", directions={"eval/*": "max"})
    [m] = rep["metrics"]
    assert m["direction"] == "max" and m["best_run"] == "B" and m["runs"]["B"]["best"] == 0.9
    assert rep["summary"][0].startswith("B reaches 40.0% higher final eval/score than A")
    # An override can also take a direction away, and an exact key wins over a glob.
    off = report.compare(
        runs, target="eval/score", directions={"eval/*": "max", "eval/score": "none"}
    )
    assert off["metrics"][0]["best_run"] is None
    assert report.direction("val/loss", overrides={"val/*": "none"}) == "none"


def test_the_default_target_is_a_loss_every_run_logged():
    a = _run("A", 2.0, 2.0, key="loss")
    a["summary"]["val_loss"] = {"last": 1.0, "last_step": 1, "min": 1.0, "min_step": 1}
    b = _run("B", 1.5, 1.5, key="loss")
    rep = report.compare([a, b], baseline="A")
    assert rep["target"] == "loss" and rep["summary"][0].startswith(
        "B reaches 25.0% lower final loss"
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


def test_a_final_difference_under_one_percent_is_not_worded_as_a_win():
    """2.822 against 2.823 from one run each is not "B reaches 0.0% lower"."""
    rep = report.compare(
        [_run("A", 2.823, 2.8), _run("B", 2.822, 2.8, params={"lr": 3e-3})], baseline="A"
    )
    assert rep["summary"][0] == (
        "B and A end within 1% of each other on final val_loss (2.822 vs 2.823): no run is "
        "ranked on it; they differ in lr 0.001→0.003."
    )
