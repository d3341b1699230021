"""The MLflow search syntax as the hub parses it, checked against MLflow's own parser."""

from __future__ import annotations

import re

import pytest

from hub.compat.mlflow.filters import (
    Comparison,
    FilterError,
    OrderBy,
    like_regex,
    parse_filter,
    parse_order_by,
)

pytestmark = pytest.mark.unit

VALID = [
    "metrics.loss < 0.5 and params.lr = '0.1'",
    "tags.`my tag` LIKE 'a%'",
    'metrics."f1 score" >= 1e-3',
    "attributes.status = 'FINISHED'",
    "run_name ILIKE 'x%'",
    "run_id IN ('a', 'b')",
    "attribute.run_id NOT IN ('a')",
    "start_time > 5",
    'tags.mlflow.runName = "x"',
    "params.optimizer != 'adam' AND metrics.acc >= 0.9 AND metrics.`val/loss` <= 2",
    "user_id = 'alice'",
]
_TYPES = {"metric": "metric", "parameter": "param", "tag": "tag", "attribute": "attribute"}


@pytest.mark.parametrize("text", VALID)
def test_valid_filters_parse_as_mlflow_parses_them(text):
    from mlflow.utils.search_utils import SearchUtils

    theirs = [
        Comparison(
            _TYPES[c["type"]],
            c["key"],
            c["comparator"],
            c["value"]
            if isinstance(c["value"], str | tuple) and not c["type"] == "metric"
            else float(c["value"]),
        )
        for c in SearchUtils.parse_search_filter(text)
    ]
    assert parse_filter(text) == theirs


@pytest.mark.parametrize(
    "text",
    [
        "metrics.loss >> 1",
        "metrics.a < 1 OR metrics.b < 1",
        "(metrics.a < 1)",
        "params.lr > '1'",
        "metrics.loss = 'low'",
        "foo.bar = 1",
        "artifact_uri = 'x'",
        "lifecycle_stage = 'deleted'",
        "datasets.name = 'x'",
        "params.lr = 'unterminated",
        "metrics.loss < 1 AND",
        "status IN ('FINISHED')",
        "metrics.x < 1e999",
        "x" * 5000,
    ],
)
def test_what_the_hub_cannot_answer_is_a_filter_error(text):
    with pytest.raises(FilterError):
        parse_filter(text)


def test_empty_filter_and_aliases():
    assert parse_filter("") == [] and parse_filter("   ") == []
    assert parse_filter("created > 5") == [Comparison("attribute", "start_time", ">", 5.0)]
    assert parse_filter("`Run name` = 'a'") == [Comparison("attribute", "run_name", "=", "a")]
    assert parse_filter("params.q = 'it''s'") == [Comparison("param", "q", "=", "it's")]


def test_order_by():
    assert parse_order_by(["metrics.loss DESC", "start_time", "params.`lr x` asc"]) == [
        OrderBy("metric", "loss", False),
        OrderBy("attribute", "start_time", True),
        OrderBy("param", "lr x", True),
    ]
    for bad in (["metrics.loss SIDEWAYS"], ["artifact_uri"], [""], ["metrics.loss DESC x"]):
        with pytest.raises(FilterError):
            parse_order_by(bad)


def test_like_patterns_are_sql_likes():
    rx = like_regex("a%b_.c")
    assert re.match(rx, "aXXXbY.c") and re.match(rx, "ab..c")
    assert not re.match(rx, "aXbY-c") and not re.match(rx, "xab..c")
