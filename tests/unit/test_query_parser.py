"""The run search language: each test pins one behaviour of hub/tracking/query.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.stores._search_layout import (
    decode_number,
    encode_number,
    flatten_params,
    numeric_range,
    numeric_term,
    pair_pattern,
    split_params,
)
from hub.tracking.query import (
    And,
    Not,
    Or,
    QuerySyntaxError,
    Term,
    Text,
    compile_query,
    parse_query,
)

pytestmark = pytest.mark.unit


def error_of(text: str) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as info:
        compile_query(text)
    return info.value


def test_empty_query_matches_everything():
    assert compile_query("") == {"match_all": {}}
    assert compile_query("   ") == {"match_all": {}}


def test_issue_example_compiles_to_one_bool_must():
    dsl = compile_query(
        "params.moe.top_k:4 AND summary.val_loss:<2.1 AND tags:baseline AND status:finished"
    )
    must = dsl["bool"]["must"]
    assert must[0] == {
        "bool": {
            "should": [
                {"term": {"params.moe.top_k": "4"}},
                numeric_term("params_num.moe.top_k", 4.0),
            ],
            "minimum_should_match": 1,
        }
    }
    assert must[1] == numeric_range("summary.val_loss.last", lt=2.1)
    assert must[2] == {"term": {"tags": "baseline"}}
    assert must[3] == {"term": {"status": "finished"}}


def test_juxtaposition_is_and():
    assert compile_query("tags:a tags:b") == compile_query("tags:a AND tags:b")


def test_and_binds_tighter_than_or():
    node = parse_query("tags:a OR tags:b AND tags:c")
    assert isinstance(node, Or)
    assert isinstance(node.children[1], And)


def test_parentheses_group():
    node = parse_query("(tags:a OR tags:b) AND tags:c")
    assert isinstance(node, And)
    assert isinstance(node.children[0], Or)


def test_not_becomes_must_not_next_to_must():
    dsl = compile_query("tags:a NOT status:failed")
    assert dsl == {
        "bool": {
            "must": [{"term": {"tags": "a"}}],
            "must_not": [{"term": {"status": "failed"}}],
        }
    }


def test_lone_not_is_must_not_only():
    assert compile_query("NOT status:failed") == {
        "bool": {"must_not": [{"term": {"status": "failed"}}]}
    }


def test_double_not_nests():
    assert isinstance(parse_query("NOT NOT tags:a"), Not)


def test_lowercase_and_is_a_word():
    node = parse_query("moe and dense")
    assert isinstance(node, And)
    assert [c.text for c in node.children if isinstance(c, Text)] == ["moe", "and", "dense"]


def test_keyword_prefix_is_not_an_operator():
    node = parse_query("ANDROID")
    assert isinstance(node, Text) and node.text == "ANDROID"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("summary.loss:>1", {"gt": 1.0}),
        ("summary.loss:>=1", {"gte": 1.0}),
        ("summary.loss:<1", {"lt": 1.0}),
        ("summary.loss:<=1e-3", {"lte": 0.001}),
    ],
)
def test_comparisons_are_numeric_ranges(text, expected):
    assert compile_query(text) == numeric_range("summary.loss.last", **expected)


def test_summary_stat_suffix_selects_the_statistic():
    assert compile_query("summary.val/loss.min:<2") == numeric_range("summary.val/loss.min", lt=2.0)


def test_summary_key_with_dots_keeps_last_by_default():
    assert compile_query("summary.moe.aux_loss:>0") == numeric_range(
        "summary.moe.aux_loss.last", gt=0.0
    )


def test_inclusive_and_exclusive_ranges():
    assert compile_query("params.lr:[0.001 TO 0.01}") == numeric_range(
        "params_num.lr", gte=0.001, lt=0.01
    )


def test_open_range_bound():
    assert compile_query("params.layers:[4 TO *]") == numeric_range("params_num.layers", gte=4.0)


def test_keyword_range_on_strings():
    assert compile_query("user:[a TO m]") == {"range": {"user": {"gte": "a", "lte": "m"}}}


def test_date_comparison_keeps_the_text():
    assert compile_query("created_at:>=2024-05-01") == {
        "range": {"created_at": {"gte": "2024-05-01"}}
    }


def test_param_string_is_a_keyword_term():
    assert compile_query("params.optimizer:adamw") == {"term": {"params.optimizer": "adamw"}}


def test_quoted_value_is_exact():
    assert compile_query('params.note:"a b:c"') == {"term": {"params.note": "a b:c"}}


def test_wildcard_value():
    # Elasticsearch has no wildcard query on a flattened sub-key: the key/value pairs take it
    assert compile_query("params.optimizer:adam*") == {
        "wildcard": {"param_pairs": {"value": pair_pattern("optimizer", "adam*")}}
    }
    assert pair_pattern("a*b", "x?") == "a\\*b\x1fx?"


def test_lone_star_means_field_exists():
    assert compile_query("params.moe.top_k:*") == {"exists": {"field": "params.moe.top_k"}}


def test_escaped_star_is_literal():
    assert compile_query(r"tags:a\*b") == {"term": {"tags": "a*b"}}


def test_bare_word_is_fuzzy_over_name_and_notes():
    assert compile_query("baselin") == {
        "multi_match": {"query": "baselin", "fields": ["name", "notes"], "fuzziness": "AUTO"}
    }


def test_bare_phrase_matches_either_field():
    dsl = compile_query('"routing collapse"')
    assert {"match_phrase": {"notes": "routing collapse"}} in dsl["bool"]["should"]


def test_name_field_is_an_analysed_match():
    assert compile_query("name:moe") == {
        "match": {"name": {"query": "moe", "operator": "and", "fuzziness": "AUTO"}}
    }


def test_name_wildcard_uses_the_raw_keyword():
    assert compile_query("name:base*") == {
        "wildcard": {"name.raw": {"value": "base*", "case_insensitive": True}}
    }


def test_negative_number_value():
    assert compile_query("params.shift:-1")["bool"]["should"][1] == numeric_term(
        "params_num.shift", -1.0
    )


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("tags:", 5, "missing value"),
        ("foo:1", 0, "unknown field"),
        ("tags:a AND", 10, "after AND"),
        ("tags:a OR", 9, "after OR"),
        ("(tags:a", 0, "missing ')'"),
        ("tags:a)", 6, "unexpected ')'"),
        ('name:"abc', 5, "unterminated"),
        ("summary.loss:abc", 13, "takes a number"),
        ("params.lr:>abc", 11, "take numbers"),
        ("params.lr:[1 2]", 13, "TO"),
        ("params.lr:[1 TO 2", 10, "close the range"),
        ("name:>3", 6, "cannot be compared"),
        ("AND tags:a", 0, "before AND"),
        ("()", 1, "empty parentheses"),
        ("NOT", 3, "after NOT"),
        (":x", 0, "missing field name"),
        ("summary.loss:>1e999", 14, "takes a number"),
        ("tags:[* TO *]", 6, "at least one bound"),
    ],
)
def test_errors_point_at_the_offending_character(text, position, fragment):
    error = error_of(text)
    assert error.position == position, error
    assert fragment in error.message


def test_deep_nesting_is_a_syntax_error_not_a_crash():
    error = error_of("(" * 500 + "tags:a" + ")" * 500)
    assert "nested deeper" in error.message


def test_flatten_params_dots_nested_keys_and_keeps_lists():
    flat = flatten_params(
        {
            "moe": {"top_k": 4, "experts": {"n": 8}},
            "lr": 1e-3,
            "x": None,
            "layers": [1, 2],
            "objs": [{"a": 1}],
        }
    )
    assert flat == {
        "moe.top_k": 4,
        "moe.experts.n": 8,
        "lr": 0.001,
        "layers": [1, 2],
        "objs": '[{"a":1}]',
    }


def test_split_params_keeps_numbers_twice_and_booleans_as_keywords():
    keywords, numbers, pairs = split_params({"k": 4, "lr": 0.001, "opt": "adam", "flag": True})
    assert keywords == {"k": "4", "lr": "0.001", "opt": "adam", "flag": "true"}
    assert numbers == {"k": encode_number(4.0), "lr": encode_number(0.001)}
    assert pairs == ["k\x1f4", "lr\x1f0.001", "opt\x1fadam", "flag\x1ftrue"]


QUERY_ALPHABET = st.sampled_from(
    list('abcz019 .:*?"\\()[]{}<>=-_/')
    + [
        "AND",
        "OR",
        "NOT",
        "TO",
        " AND ",
        " OR ",
        "NOT ",
        "params.",
        "summary.",
        "tags:",
        "status:",
        "name:",
        "created_at:",
        "\t",
        "é",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(QUERY_ALPHABET, max_size=30).map("".join))
def test_garbage_never_raises_anything_but_syntax_errors(text):
    try:
        dsl = compile_query(text)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(text)
    else:
        assert isinstance(dsl, dict) and len(dsl) == 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_unicode_never_crashes(text):
    try:
        compile_query(text)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(text)


def test_term_positions_are_recorded():
    node = parse_query("  tags:x")
    assert isinstance(node, Term) and node.position == 2 and node.value_position == 7


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False), st.floats(allow_nan=False))
def test_encoded_numbers_sort_as_the_numbers_and_decode_exactly(a, b):
    ea, eb = encode_number(a), encode_number(b)
    assert len(ea) == len(eb) == 16 and ea.isalpha()
    assert (ea < eb) == (a < b) and (ea == eb) == (a == b)
    assert decode_number(ea) == a
