"""The comparison report's "Routing" section: the stored routing diff of the runs' commits,
or the command that computes it."""

from __future__ import annotations

from hub.tracking import report


def _report(routing):
    runs = [
        {
            "id": "r1",
            "name": "top2",
            "params": {"model.top_k": 2},
            "summary": {"loss": {"last": 2.0, "min": 1.9}},
        },
        {
            "id": "r2",
            "name": "top4",
            "params": {"model.top_k": 4},
            "summary": {"loss": {"last": 1.8, "min": 1.7}},
        },
    ]
    rep = report.compare(runs, target="loss")
    rep["routing"] = routing
    return rep


def test_routing_lines_with_a_stored_diff_and_without():
    stored = {
        "a_run": "r1",
        "b_run": "r2",
        "a": "u/lm@aaa",
        "b": "u/lm@bbb",
        "diff": {"same_top1": 0.625, "swaps": 2, "max_abs_load_delta": 0.0731, "probe_version": 1},
    }
    missing = {**stored, "diff": None}
    rep = _report([stored, missing])
    lines = report.routing_lines(rep)
    assert lines[0] == (
        "top2 → top4: 62.5% of the probe tokens keep their top-1 expert, 2 expert(s) swapped "
        "roles, largest load change 7.3 points (probe set v1)"
    )
    assert lines[1] == "top2 → top4: no routing diff yet (`hub inspect routing u/lm@aaa u/lm@bbb`)"
    md = report.to_markdown(rep)
    assert "## Routing (probe set)\n- top2 → top4: 62.5%" in md
    html = report.to_html(rep)
    assert "<h2>Routing (probe set)</h2><ul><li>top2 → top4: 62.5%" in html
    assert html.count("<ul>") == html.count("</ul>")


def test_no_routing_section_without_commits():
    rep = _report([])
    assert "Routing" not in report.to_markdown(rep) and "Routing" not in report.to_html(rep)
