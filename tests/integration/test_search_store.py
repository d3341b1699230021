"""The search index against noida-db's Elasticsearch-compatible server (or the URL in
HUB_TEST_ELASTICSEARCH_URL), including queries compiled from the user query language."""

from __future__ import annotations

import pytest

from hub.stores._search_layout import numeric_range, numeric_term
from hub.stores.search import SearchError, SearchIndex, SearchUnavailable
from hub.tracking.query import compile_query
from tests.fixtures_services import free_port

pytestmark = pytest.mark.integration

RUNS = [
    {
        "id": "r1",
        "name": "baseline moe top2",
        "notes": "first try with the router",
        "project": "p",
        "user": "ada",
        "status": "finished",
        "tags": ["baseline", "moe"],
        "params": {"moe": {"top_k": 2, "experts": 8}, "lr": 0.001, "optimizer": "adamw"},
        "summary": {"val_loss": {"last": 2.0, "min": 1.9, "max": 4.0, "last_step": 1000}},
        "created_at": "2024-01-01T00:00:00Z",
    },
    {
        "id": "r2",
        "name": "bigger experts",
        "notes": "routing collapse seen at step 300",
        "project": "p",
        "user": "bob",
        "status": "failed",
        "tags": ["moe"],
        "params": {"moe": {"top_k": 4, "experts": 64}, "lr": 0.01, "optimizer": "sgd"},
        "summary": {"val_loss": {"last": 2.5, "min": 2.2}},
        "created_at": "2024-01-02T00:00:00Z",
    },
    {
        "id": "r3",
        "name": "baseline dense",
        "notes": "no experts at all",
        "project": "p",
        "user": "ada",
        "status": "finished",
        "tags": ["baseline"],
        # lr is a string here and a number elsewhere: no mapping conflict
        "params": {"moe": {"top_k": 4}, "lr": "auto", "optimizer": "adamw"},
        "summary": {"val_loss": {"last": 1.5, "min": 1.4}},
        "created_at": "2024-01-03T00:00:00Z",
    },
    {
        "id": "r4",
        "name": "moe top8 sweep",
        "notes": "",
        "project": "p",
        "user": "cyd",
        "status": "running",
        "tags": ["sweep", "moe"],
        # "moe" is a leaf here and a prefix of "moe.top_k" elsewhere (subobjects: false)
        "params": {"moe": "custom", "moe.top_k": 8.0, "lr": 0.003},
        "summary": {},
        "created_at": "2024-01-04T00:00:00Z",
    },
]


@pytest.fixture
def runs_index(search_index: SearchIndex) -> SearchIndex:
    assert search_index.bulk_index_runs(RUNS) == len(RUNS)
    search_index.refresh()
    return search_index


def ids(result):
    return sorted(hit.id for hit in result.hits)


def find(index, text, **kwargs):
    return index.search_runs(compile_query(text), **kwargs)


def test_numeric_param_range(runs_index):
    assert ids(find(runs_index, "params.moe.top_k:>=4")) == ["r2", "r3", "r4"]
    assert ids(find(runs_index, "params.lr:[0.002 TO 0.02]")) == ["r2", "r4"]


def test_numeric_param_equality_matches_numbers_and_text(runs_index):
    assert ids(find(runs_index, "params.moe.top_k:4")) == ["r2", "r3"]
    assert ids(find(runs_index, "params.moe.top_k:4.0")) == ["r2", "r3"]
    assert ids(find(runs_index, "params.moe.top_k:8")) == ["r4"]


def test_keyword_param_term_and_wildcard(runs_index):
    assert ids(find(runs_index, "params.optimizer:adamw")) == ["r1", "r3"]
    assert ids(find(runs_index, "params.lr:auto")) == ["r3"]
    assert ids(find(runs_index, "params.optimizer:adam*")) == ["r1", "r3"]
    assert ids(find(runs_index, "params.moe:custom")) == ["r4"]


def test_issue_example_query(runs_index):
    text = "params.moe.top_k:4 AND summary.val_loss:<2.1 AND tags:baseline AND status:finished"
    assert ids(find(runs_index, text)) == ["r3"]


def test_or_not_and_grouping(runs_index):
    assert ids(find(runs_index, "status:failed OR (tags:baseline NOT user:ada)")) == ["r2"]
    assert ids(find(runs_index, "tags:moe NOT status:failed")) == ["r1", "r4"]


def test_summary_statistics(runs_index):
    assert ids(find(runs_index, "summary.val_loss.min:<2")) == ["r1", "r3"]
    assert ids(find(runs_index, "summary.val_loss:*")) == ["r1", "r2", "r3"]


def test_fuzzy_text_on_name_and_notes(runs_index):
    assert ids(find(runs_index, "baselin")) == ["r1", "r3"]
    assert ids(find(runs_index, "routr")) == ["r1"]
    assert ids(find(runs_index, '"routing collapse"')) == ["r2"]
    assert ids(find(runs_index, "name:base*")) == ["r1", "r3"]


def test_facets_count_over_all_matches(runs_index):
    result = find(
        runs_index, "project:p", facets=["tags", "status", "params.optimizer"], page_size=1
    )
    assert result.total == 4 and len(result.hits) == 1
    tags = {b["value"]: b["count"] for b in result.facets["tags"]}
    assert tags == {"moe": 3, "baseline": 2, "sweep": 1}
    assert {b["value"]: b["count"] for b in result.facets["status"]} == {
        "finished": 2,
        "failed": 1,
        "running": 1,
    }
    assert {b["value"]: b["count"] for b in result.facets["params.optimizer"]} == {
        "adamw": 2,
        "sgd": 1,
    }


def test_sort_by_summary_metric_puts_missing_last(runs_index):
    up = runs_index.search_runs(None, sort=["summary.val_loss"])
    assert [h.id for h in up.hits] == ["r3", "r1", "r2", "r4"]
    down = runs_index.search_runs(None, sort=["-summary.val_loss"])
    assert [h.id for h in down.hits] == ["r2", "r1", "r3", "r4"]


def test_sort_on_a_metric_nobody_logged_is_not_an_error(runs_index):
    result = runs_index.search_runs(None, sort=["summary.never_logged"])
    assert [h.id for h in result.hits] == ["r1", "r2", "r3", "r4"]


def test_search_after_pages_through_everything_once(runs_index):
    seen, after = [], None
    for _ in range(10):
        page = runs_index.search_runs(None, sort=["-created_at"], page_size=3, search_after=after)
        seen += [h.id for h in page.hits]
        after = page.next_search_after
        if after is None:
            break
    assert seen == ["r4", "r3", "r2", "r1"]


def test_offset_pagination(runs_index):
    page = runs_index.search_runs(None, sort=["created_at"], page_size=2, offset=2)
    assert [h.id for h in page.hits] == ["r3", "r4"]


def test_hits_show_params_as_typed_values_and_summary_nested(runs_index):
    hit = find(runs_index, "id:r1").hits[0]
    assert hit.source["params"]["moe.top_k"] == 2
    assert hit.source["params"]["lr"] == 0.001
    assert hit.source["params"]["optimizer"] == "adamw"
    assert hit.source["summary"]["val_loss"]["min"] == 1.9


def test_timings_are_reported_apart(runs_index):
    result = runs_index.search_runs(None)
    assert result.took_ms >= 0 and result.elapsed_ms > 0


def test_reindex_replaces_and_delete_removes(runs_index):
    runs_index.index_run({**RUNS[0], "status": "failed"}, refresh=True)
    assert ids(find(runs_index, "status:failed")) == ["r1", "r2"]
    assert runs_index.delete_run("r1", refresh=True) is True
    assert runs_index.delete_run("r1", refresh=True) is False
    assert ids(find(runs_index, "status:failed")) == ["r2"]


def test_commits_index(search_index):
    search_index.index_commit(
        {
            "id": "c1",
            "repo": "moe-small",
            "branches": ["main"],
            "message": "raise top_k to 4",
            "config": {"moe": {"top_k": 4}},
            "eval": {"wikitext": {"ppl": 12.5}},
            "created_at": "2024-02-01T00:00:00Z",
        },
        refresh=True,
    )
    result = search_index.search_commits(numeric_range("eval.wikitext.ppl", lt=13))
    assert [h.id for h in result.hits] == ["c1"]
    assert result.hits[0].source["eval"] == {"wikitext.ppl": 12.5}
    result = search_index.search_commits(numeric_term("config_num.moe.top_k", 4))
    assert result.total == 1
    assert result.hits[0].source["config_num"] == {"moe.top_k": 4.0}
    assert search_index.search_commits(numeric_range("config_num.moe.top_k", gt=4)).total == 0


def test_ensure_indices_is_idempotent(search_index):
    search_index.ensure_indices()
    assert search_index.ping()


def test_fresh_ensure_indices_creates_generation_one_behind_aliases(search_index):
    runs, commits = search_index.runs_index, search_index.commits_index
    expected = {runs: [f"{runs}-1"], commits: [f"{commits}-1"]}
    assert search_index.describe() == expected
    search_index.ensure_indices()  # idempotent: no second generation
    assert search_index.describe() == expected
    search_index.index_run(RUNS[0], refresh=True)  # writes and reads go through the alias
    assert ids(search_index.search_runs(None)) == ["r1"]


def _rebuilt(docs, **changes):
    return [{**d, **changes} for d in docs]


def test_rebuild_serves_the_old_generation_until_an_atomic_swap(runs_index):
    before = runs_index.describe()
    seen = []

    def runs_while_searching():
        for doc in _rebuilt(RUNS, status="killed"):
            # mid-rebuild: the alias still answers, from the old generation, complete
            seen.append(ids(runs_index.search_runs(None)))
            assert find(runs_index, "status:killed").total == 0
            yield doc

    commits = (
        {"id": f"c{i}", "message": "m", "created_at": "2024-02-01T00:00:00Z"} for i in range(3)
    )
    result = runs_index.rebuild(runs_while_searching(), commits, generation="20240101000000000001")
    assert result["runs"] == 4 and result["commits"] == 3
    assert seen == [["r1", "r2", "r3", "r4"]] * 4
    assert ids(find(runs_index, "status:killed")) == ["r1", "r2", "r3", "r4"]
    assert runs_index.search_commits(None).total == 3
    after = runs_index.describe()
    assert after == {alias: [f"{alias}-20240101000000000001"] for alias in before}
    # the previous generation is gone, not left over
    assert runs_index._generations(runs_index.runs_index) == after[runs_index.runs_index]
    # live writes after the swap land in the new generation
    runs_index.index_run({**RUNS[0], "status": "finished"}, refresh=True)
    assert ids(find(runs_index, "status:finished")) == ["r1"]


def test_a_searcher_thread_never_sees_an_empty_index_during_rebuilds(runs_index):
    import threading

    done, totals, errors = threading.Event(), [], []

    def searcher():
        while not done.is_set():
            try:
                totals.append(runs_index.search_runs(None).total)
            except Exception as exc:  # reported below, not swallowed
                errors.append(exc)

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        for _ in range(5):
            runs_index.rebuild(iter(RUNS), iter(()))
    finally:
        done.set()
        thread.join()
    assert not errors and totals and set(totals) == {4}


def test_a_failed_rebuild_leaves_the_old_generation_serving(runs_index):
    before = runs_index.describe()
    # a document Elasticsearch rejects (bulk error) after some good ones
    bad = [*_rebuilt(RUNS, status="killed"), {"id": "bad", "created_at": "not a date"}]
    with pytest.raises(SearchError, match="failed to index"):
        runs_index.rebuild(bad, [])

    # the source failing midway (a DB error while streaming)
    def broken():
        yield from _rebuilt(RUNS[:2], status="killed")
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        runs_index.rebuild(broken(), [])
    assert runs_index.describe() == before
    assert ids(runs_index.search_runs(None)) == ["r1", "r2", "r3", "r4"]
    assert find(runs_index, "status:killed").total == 0
    # no half-built generation left behind
    assert runs_index._generations(runs_index.runs_index) == before[runs_index.runs_index]
    assert runs_index._generations(runs_index.commits_index) == before[runs_index.commits_index]


def test_rebuild_migrates_plain_indices_from_before_the_aliases(search_index):
    from hub.stores.search import COMMIT_MAPPINGS, RUN_MAPPINGS, run_document

    search_index.drop_all()
    es = search_index._es
    es.indices.create(index=search_index.runs_index, mappings=RUN_MAPPINGS)
    es.indices.create(index=search_index.commits_index, mappings=COMMIT_MAPPINGS)
    es.index(
        index=search_index.runs_index, id="old", document=run_document({"id": "old"}), refresh=True
    )
    search_index.ensure_indices()  # leaves the plain indices serving
    assert search_index.describe() == {
        search_index.runs_index: [search_index.runs_index],
        search_index.commits_index: [search_index.commits_index],
    }
    assert ids(search_index.search_runs(None)) == ["old"]
    search_index.rebuild(iter(RUNS), iter(()), generation="20240101000000000002")
    assert search_index.describe() == {
        search_index.runs_index: [f"{search_index.runs_index}-20240101000000000002"],
        search_index.commits_index: [f"{search_index.commits_index}-20240101000000000002"],
    }
    assert es.indices.exists_alias(name=search_index.runs_index)
    assert ids(search_index.search_runs(None)) == ["r1", "r2", "r3", "r4"]
    search_index.index_run({"id": "new"}, refresh=True)
    assert search_index.search_runs(None).total == 5


def test_drop_all_removes_every_generation(search_index):
    search_index.rebuild(iter(RUNS), iter(()))
    search_index.drop_all()
    for alias in (search_index.runs_index, search_index.commits_index):
        assert search_index._generations(alias) == []
        assert not search_index._es.indices.exists(index=alias)


def test_bad_sort_or_facet_is_a_search_error(runs_index):
    with pytest.raises(SearchError):
        runs_index.search_runs(None, sort=["notes"])
    with pytest.raises(SearchError):
        runs_index.search_runs(None, facets=["name"])


def test_unreachable_server_raises_unavailable():
    index = SearchIndex(f"http://127.0.0.1:{free_port()}", prefix="nowhere", request_timeout=2)
    with pytest.raises(SearchUnavailable):
        index.search_runs(None)
    assert index.ping() is False


def _commit(i: int) -> dict:
    return {
        "id": f"m/r@{i}",
        "repo": "m/r",
        "message": f"c{i}",
        "created_at": "2024-02-01T00:00:00Z",
    }


def test_bulk_delete_commits_removes_them_and_ignores_missing_ones(search_index):
    assert search_index.bulk_index_commits([_commit(i) for i in range(5)], refresh=True) == 5
    deleted = search_index.bulk_delete_commits(
        ["m/r@0", "m/r@2", "m/r@gone", "m/r@4"], refresh=True
    )
    assert deleted == 3
    assert sorted(h.id for h in search_index.search_commits(None).hits) == ["m/r@1", "m/r@3"]
    # all already gone: not an error, nothing deleted; chunks smaller than the list work too
    assert search_index.bulk_delete_commits(["m/r@0", "m/r@2"], refresh=True, chunk_size=1) == 0
    assert search_index.bulk_delete_commits([]) == 0


def test_bulk_delete_on_unreachable_server_raises_unavailable():
    index = SearchIndex(f"http://127.0.0.1:{free_port()}", prefix="nowhere", request_timeout=2)
    with pytest.raises(SearchUnavailable):
        index.bulk_delete_commits(["a@1"])
