"""Searchable run and model-commit metadata in Elasticsearch (the only module that imports the
``elasticsearch`` client).

The index is derived: the relational DB is canonical and a management command rebuilds
everything without downtime (:meth:`SearchIndex.rebuild`). Document layout -- a fixed, non-dynamic mapping with every user key (param,
metric, config key) inside ``flattened`` fields, numbers as order-preserving text -- is described in
``hub/stores/_search_layout.py``; the user query language that targets it is
``hub/tracking/query.py``.

Reads and writes go through the aliases ``<prefix>-runs`` and ``<prefix>-commits``; each points
at one concrete index of a *generation*, ``<alias>-<suffix>`` (``-1`` from
:meth:`SearchIndex.ensure_indices` on a fresh system, then a UTC timestamp per rebuild), created
explicitly with its mappings. :meth:`SearchIndex.rebuild` loads new concrete indices from a
stream of documents, then moves both aliases in one atomic ``POST _aliases`` and deletes the old
generation; if loading fails, the aliases never moved and the half-built indices are deleted.
A system from before the aliases has plain indices named like the aliases: they keep serving
until the first rebuild, whose alias swap removes them (``remove_index``) in the same atomic
request -- no moment without an index under that name. An index template with the same mappings
(``<alias>*``) also covers an index that a write creates implicitly (after someone deleted
everything by hand; the next rebuild turns it into an alias again).

Compatibility: everything here runs on Elasticsearch 8 and on ``noida-db``'s
Elasticsearch-compatible server used by the tests (8.15-compatible). Probed on noida-db 0.2.3:

- works: composable index templates, explicit mappings, ``subobjects: false``, dynamic
  templates with ``path_match`` + ``match_mapping_type``, bulk (index and delete), ``bool``,
  ``term``/``terms``/``range``/``exists``/``ids``/``prefix``/``wildcard`` (incl.
  ``case_insensitive``), ``match`` with ``fuzziness``/``operator``, ``multi_match`` with
  ``fuzziness``, ``match_phrase``, ``terms``/``min`` aggregations, ``sort`` on dotted fields
  with ``missing`` and ``unmapped_type``, ``search_after``, ``from``/``size``,
  ``track_total_hits``, ``delete_by_query``, ``update`` with ``doc_as_upsert``, ``_source``
  filtering.
- gaps / differences: a ``term`` query on a ``double`` field matches only when the JSON value
  is a float (``4.0``; ``4`` finds nothing, where Elasticsearch converts), so numeric terms are
  always sent as floats (the query compiler does); ``took`` is always 0 (so the engine time reported is coarse there);
  sorting on ``_id`` is refused -- as on Elasticsearch 8 by default -- so documents carry an
  ``id`` keyword used as the sort tie-breaker; the ``missing`` option of a ``terms``
  aggregation is ignored (no bucket for documents without the field), so it is not used;
  wildcard index deletion is refused (also the Elasticsearch 8 default), so :meth:`drop_all`
  names each index; a dynamic template without ``match_mapping_type`` also matches objects
  (as in Elasticsearch), so templates always name the JSON type.
- aliases (probed on noida-db 0.2.3): index creation with ``aliases``, reads, writes, bulk,
  ``update``, ``refresh`` through an alias, ``POST _aliases`` with ``add`` / ``remove`` /
  ``remove_index``. A ``remove`` whose alias is not on that index is *not* atomic there
  without ``must_exist: true`` (the other actions apply and ``errors: true`` comes back), so
  removes always say ``must_exist`` -- the whole request then fails with 404 and nothing moves,
  as in Elasticsearch. Deleting an index through its alias is refused (as in Elasticsearch 8).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.stores._search_layout import (
    CARD_KEYWORD_FIELDS,
    LAYOUT_VERSION,
    PARAM_PAIRS,
    PARAMS,
    PARAMS_NUM,
    SUMMARY,
    SUMMARY_STATS,
    decode_number,
    decode_numbers,
    encode_number,
    facet_field,
    flatten_params,
    flatten_summary,
    is_number,
    sort_field,
    split_params,
)

__all__ = [
    "SearchError",
    "SearchHit",
    "SearchIndex",
    "SearchResult",
    "SearchUnavailable",
    "commit_document",
    "flatten_params",
    "run_document",
]


class SearchError(Exception):
    """Elasticsearch rejected a request (bad query, mapping conflict...)."""


class SearchUnavailable(SearchError):
    """Elasticsearch cannot be reached or is overloaded; the API answers 503 + Retry-After."""

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Every user key lives inside one of these (see _search_layout): the mapping is the same
# whatever users send. The documents we build are flat (dotted keys), so depth 2 is slack.
_FLATTENED = {"type": "flattened", "depth_limit": 2, "ignore_above": 1024}
_KEYWORD = {"type": "keyword"}
_PAIRS = {"type": "keyword", "ignore_above": 2048}
_DATE = {"type": "date"}

# ``dynamic: false``: a field this code does not list stays in ``_source`` and is not mapped,
# so no document can add a field to the mapping.
RUN_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "_meta": {"layout_version": LAYOUT_VERSION},
    "properties": {
        "id": _KEYWORD,
        "project": _KEYWORD,
        "name": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
        "notes": {"type": "text"},
        "group": _KEYWORD,
        "user": _KEYWORD,
        "status": _KEYWORD,
        "tags": _KEYWORD,
        "commit": _KEYWORD,
        "job": _KEYWORD,
        "created_at": _DATE,
        "updated_at": _DATE,
        "started_at": _DATE,
        "finished_at": _DATE,
        "ended_at": _DATE,
        PARAMS: _FLATTENED,
        PARAMS_NUM: _FLATTENED,
        PARAM_PAIRS: _PAIRS,
        SUMMARY: _FLATTENED,
    },
}

COMMIT_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "_meta": {"layout_version": LAYOUT_VERSION},
    "properties": {
        "id": _KEYWORD,
        "project": _KEYWORD,
        "repo": _KEYWORD,
        "sha": _KEYWORD,
        "branches": _KEYWORD,  # branch heads pointing at this commit
        "tags": _KEYWORD,
        "parents": _KEYWORD,
        "message": {"type": "text"},
        "author": _KEYWORD,
        "created_at": _DATE,
        "job": _KEYWORD,
        "run": _KEYWORD,
        "config": _FLATTENED,
        "config_num": _FLATTENED,
        "config_pairs": _PAIRS,
        "eval": _FLATTENED,  # "<suite>.<metric>" -> encode_number(value)
        # The model the commit belongs to (hub.registry.cards.search_fields): model search
        # asks for the heads of default branches that the caller may read.
        "namespace": _KEYWORD,
        "repo_name": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
        "private": {"type": "boolean"},
        "default_head": {"type": "boolean"},
        "description": {"type": "text"},
        "card": _KEYWORD,  # readme | invalid | none
        "card_text": {"type": "text"},
        **{f"card_{name}": _KEYWORD for name in CARD_KEYWORD_FIELDS},
        # "<metric key>.<stat>" -> encode_number(value), one value per producing run
        "metrics": _FLATTENED,
    },
}

_SETTINGS = {
    # Backstops: the mappings above have about 30 fields and depth 2, and are not dynamic.
    "index.mapping.total_fields.limit": 100,
    "index.mapping.depth.limit": 3,
    "index.mapping.nested_fields.limit": 0,
}

#: The suffix of the concrete indices :meth:`SearchIndex.ensure_indices` creates on a fresh
#: system; rebuilds use a UTC timestamp (``%Y%m%d%H%M%S%f``), so suffixes are all digits.
FIRST_GENERATION = "1"

log = logging.getLogger(__name__)


# --- documents ------------------------------------------------------------------------------


def run_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A run as the service knows it -> the indexed document.

    Input: ``id`` (required), ``name``, ``notes``, ``project``, ``group``, ``user``,
    ``status``, ``tags``, ``commit``, ``job``, dates, ``params`` (nested dict) and ``summary``
    (``{metric_key: {"last", "min", "max", "last_step"}}``). Other keys are stored as given.
    """
    if not doc.get("id"):
        raise SearchError("a run document needs an id")
    out = {k: v for k, v in doc.items() if k not in (PARAMS, SUMMARY)}
    out["id"] = str(doc["id"])
    out[PARAMS], out[PARAMS_NUM], out[PARAM_PAIRS] = split_params(
        flatten_params(doc.get(PARAMS) or {})
    )
    out[SUMMARY] = flatten_summary(doc.get(SUMMARY) or {})
    return out


def commit_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A model commit -> the indexed document (``config`` flattened like params, ``eval`` as
    ``{suite: {metric: value}}``)."""
    if not doc.get("id"):
        raise SearchError("a commit document needs an id")
    out = {k: v for k, v in doc.items() if k not in ("config", "eval", "metrics")}
    out["id"] = str(doc["id"])
    out["metrics"] = {
        f"{key}.{stat}": [encode_number(s[stat]) for s in runs if is_number(s.get(stat))]
        for key, runs in (doc.get("metrics") or {}).items()
        for stat in SUMMARY_STATS
        if any(is_number(s.get(stat)) for s in runs)
    }
    out["config"], out["config_num"], out["config_pairs"] = split_params(
        flatten_params(doc.get("config") or {})
    )
    out["eval"] = {
        f"{suite}.{metric}": encode_number(value)
        for suite, metrics in (doc.get("eval") or {}).items()
        if isinstance(metrics, Mapping)
        for metric, value in metrics.items()
        if is_number(value)
    }
    return out


def _commit_source(source: Mapping[str, Any]) -> dict[str, Any]:
    """Indexed commit -> what callers see: numbers decoded, the pairs left out."""
    drop = ("config_num", "config_pairs", "eval", "metrics")
    out = {k: v for k, v in source.items() if k not in drop}
    out["config_num"] = {k: decode_numbers(v) for k, v in (source.get("config_num") or {}).items()}
    out["eval"] = {k: decode_number(v) for k, v in (source.get("eval") or {}).items()}
    metrics: dict[str, dict[str, Any]] = {}
    for path, value in (source.get("metrics") or {}).items():
        key, _, stat = path.rpartition(".")
        metrics.setdefault(key, {})[stat] = decode_numbers(value)
    out["metrics"] = metrics
    return out


def _run_source(source: Mapping[str, Any]) -> dict[str, Any]:
    """Indexed document -> what the API shows: params back to one flat dict with numbers as
    numbers, summary back to ``{key: {stat: value}}``."""
    out = {k: v for k, v in source.items() if k not in (PARAMS, PARAMS_NUM, PARAM_PAIRS, SUMMARY)}
    params: dict[str, Any] = dict(source.get(PARAMS) or {})
    for key, encoded in (source.get(PARAMS_NUM) or {}).items():
        number = decode_numbers(encoded)
        text = params.get(key)
        # Doubles come back as floats; the keyword side remembers whether it was an int.
        if isinstance(text, str) and text.lstrip("-").isdigit():
            params[key] = int(text)
        elif not isinstance(text, list):
            params[key] = number
    out[PARAMS] = params
    summary: dict[str, dict[str, float]] = {}
    for path, value in (source.get(SUMMARY) or {}).items():
        key, _, stat = path.rpartition(".")
        summary.setdefault(key, {})[stat] = decode_number(value)
    out[SUMMARY] = summary
    return out


@dataclass
class SearchHit:
    id: str
    score: float | None
    sort: list[Any] | None
    source: dict[str, Any]


@dataclass
class SearchResult:
    """One page. ``took_ms`` is the engine's own time, ``elapsed_ms`` the round trip seen by
    the hub (serialisation and network included); ``next_search_after`` feeds the next page."""

    hits: list[SearchHit]
    total: int
    total_relation: str
    facets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    took_ms: int = 0
    elapsed_ms: float = 0.0
    next_search_after: list[Any] | None = None


# --- the adapter -----------------------------------------------------------------------------


class SearchIndex:
    """Runs and commits in one Elasticsearch, under index names starting with ``prefix``."""

    def __init__(
        self,
        url: str | Sequence[str],
        prefix: str = "hub",
        *,
        request_timeout: float = 10.0,
        shards: int = 1,
        replicas: int = 0,
    ) -> None:
        """``url``: one node, or several (a sequence, or one string of comma-separated URLs):
        the client spreads requests over the nodes and leaves a dead one out for a while.
        ``shards`` and ``replicas`` apply to the indices (and the template) this creates; an
        existing index keeps its shard count until a rebuild, its replicas until changed."""
        from elasticsearch import Elasticsearch

        if not prefix or prefix != prefix.lower() or any(c in prefix for c in ' ,"*\\/<>|?#'):
            raise SearchError(f"invalid index prefix {prefix!r} (lower case, no punctuation)")
        hosts = [u.strip() for u in (url.split(",") if isinstance(url, str) else url)]
        hosts = [h for h in hosts if h]
        if not hosts:
            raise SearchError("no Elasticsearch URL given")
        if shards < 1 or replicas < 0:
            raise SearchError(f"shards must be >= 1 and replicas >= 0, got {shards}, {replicas}")
        self.url = url if isinstance(url, str) else ",".join(hosts)
        self.hosts = hosts
        self.settings = {"number_of_shards": shards, "number_of_replicas": replicas, **_SETTINGS}
        self.prefix = prefix
        self.runs_index = f"{prefix}-runs"
        self.commits_index = f"{prefix}-commits"
        # One retry only: callers map unavailability to 503 quickly instead of hanging.
        self._es = Elasticsearch(hosts, request_timeout=request_timeout, max_retries=1)

    # -- plumbing --

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout
        from elasticsearch import ApiError, TransportError

        try:
            return fn(*args, **kwargs)
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise SearchUnavailable(f"Elasticsearch at {self.url} is unreachable: {exc}") from exc
        except ApiError as exc:
            if exc.meta.status in (429, 502, 503, 504):
                raise SearchUnavailable(f"Elasticsearch is overloaded: {exc}") from exc
            raise SearchError(f"Elasticsearch rejected the request: {exc}") from exc
        except TransportError as exc:
            raise SearchUnavailable(f"Elasticsearch transport error: {exc}") from exc

    def ping(self) -> bool:
        try:
            return bool(self._call(self._es.ping))
        except SearchError:
            return False

    def close(self) -> None:
        self._es.close()

    # -- schema --

    def _specs(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        return ((self.runs_index, RUN_MAPPINGS), (self.commits_index, COMMIT_MAPPINGS))

    def _put_template(self, alias: str, mappings: dict[str, Any]) -> None:
        self._call(
            self._es.indices.put_index_template,
            name=f"{alias}-template",
            index_patterns=[f"{alias}*"],
            template={"settings": self.settings, "mappings": mappings},
            # Above the built-in logs-*-* / metrics-*-* templates (100): overlapping
            # patterns at equal priority are an error in Elasticsearch 8.
            priority=500,
        )

    def ensure_indices(self) -> list[str]:
        """Templates, and on a fresh system generation-1 concrete indices behind the aliases
        (idempotent; the migration step). An existing alias is left as it is, and so is a
        plain index named like the alias (a system from before the aliases: it keeps serving,
        and the next :meth:`rebuild` turns it into a generation behind an alias).

        Returns the aliases whose indices have another layout than this code's
        (``LAYOUT_VERSION`` in their mapping ``_meta``, absent before version 2): they keep
        serving, with wrong answers for the new query forms, until a :meth:`rebuild`
        (``manage.py search_init`` runs one for them)."""
        stale: list[str] = []
        for alias, mappings in self._specs():
            self._put_template(alias, mappings)
            if self._call(self._es.indices.exists, index=alias):  # an alias or a plain index
                if self.layout_version(alias) != LAYOUT_VERSION:
                    stale.append(alias)
                continue
            try:
                self._call(
                    self._es.indices.create,
                    index=f"{alias}-{FIRST_GENERATION}",
                    aliases={alias: {}},
                    mappings=mappings,
                    settings=self.settings,
                )
            except SearchError as exc:
                # Another process created it between exists() and create(): same name, same
                # alias, so there is still exactly one index behind the alias.
                if "resource_already_exists" not in str(exc):
                    raise
        return stale

    def layout_version(self, alias: str) -> int | None:
        """The oldest ``LAYOUT_VERSION`` among the indices behind ``alias`` (``None``: an
        index from before versions were recorded, or no index)."""
        found = self._call(self._es.options(ignore_status=404).indices.get_mapping, index=alias)
        if not found or "error" in found:
            return None
        versions = [
            (body.get("mappings") or {}).get("_meta", {}).get("layout_version")
            for body in found.values()
        ]
        if any(not isinstance(v, int) for v in versions):
            return None
        return min(versions) if versions else None

    def _alias_targets(self, alias: str) -> tuple[list[str], bool]:
        """``(indices, is_alias)``: the concrete indices behind ``alias``; ``([alias], False)``
        for a plain index of that name; ``([], False)`` when neither exists."""
        if self._call(self._es.indices.exists_alias, name=alias):
            return sorted(self._call(self._es.indices.get_alias, name=alias).keys()), True
        if self._call(self._es.indices.exists, index=alias):
            return [alias], False
        return [], False

    def describe(self) -> dict[str, list[str]]:
        """``{alias: [concrete indices behind it]}`` (an unmigrated plain index lists itself)."""
        return {alias: self._alias_targets(alias)[0] for alias, _ in self._specs()}

    def _generations(self, alias: str) -> list[str]:
        """Every concrete ``<alias>-<digits>`` index, in use or left over."""
        found = self._call(self._es.options(ignore_status=404).indices.get, index=f"{alias}-*")
        pattern = f"{alias}-"
        return sorted(
            name
            for name in (found.keys() if "error" not in found else ())
            if name.startswith(pattern) and name[len(pattern) :].isdigit()
        )

    def _delete_indices(self, names: Iterable[str]) -> None:
        for name in names:
            self._call(self._es.options(ignore_status=404).indices.delete, index=name)

    def drop_all(self) -> None:
        """Delete this prefix's indices (every generation, a plain index from before the
        aliases) and templates (tests, starting over). Not a step of :meth:`rebuild`."""
        for alias, _ in self._specs():
            targets, _ = self._alias_targets(alias)
            self._delete_indices({*self._generations(alias), *targets})
            self._call(
                self._es.options(ignore_status=404).indices.delete_index_template,
                name=f"{alias}-template",
            )

    def refresh(self) -> None:
        """Make every write so far visible to search (tests; the API does not need it)."""
        self._call(self._es.indices.refresh, index=[self.runs_index, self.commits_index])

    def rebuild(
        self,
        runs: Iterable[Mapping[str, Any]],
        commits: Iterable[Mapping[str, Any]],
        *,
        generation: str | None = None,
    ) -> dict[str, Any]:
        """Rebuild both indices without downtime; returns ``{"runs", "commits", "indices"}``.

        ``runs`` and ``commits`` are consumed once, lazily, 500 documents per bulk request
        (pass generators: nothing is held in memory beyond a bulk chunk). Steps:

        1. create ``<alias>-<generation>`` for both aliases (``generation`` defaults to the UTC
           time, ``%Y%m%d%H%M%S%f``), with their mappings, not aliased: searches and live
           writes keep going to the current generation;
        2. bulk-load them and refresh them;
        3. one ``POST _aliases``: for each alias, ``remove`` (``must_exist``) from the indices it
           pointed at a moment ago -- or ``remove_index`` for a plain index from before the
           aliases -- and ``add`` to the new index. Atomic: readers see the old generation or
           the new one, never neither. Should another rebuild have swapped in between, the
           ``must_exist`` removes fail, nothing moves, and this rebuild counts as failed;
        4. delete the previous generation's indices (a failure here only leaves garbage, which
           is logged; :meth:`drop_all` removes leftovers).

        Any failure in steps 1-3 (a document Elasticsearch rejects, the source iterator
        raising, the server going away) deletes the new indices and re-raises: the aliases
        still point at the generation that was serving. Live writes that reach the old
        generation while the new one loads are *not* copied over: the caller re-sends what
        changed meanwhile after this returns (``hub.tracking.indexing.reindex_all`` does).
        """
        suffix = generation or datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
        if not suffix.isdigit() or suffix == FIRST_GENERATION:
            raise SearchError(f"invalid generation {suffix!r} (digits, not {FIRST_GENERATION})")
        new = {alias: f"{alias}-{suffix}" for alias, _ in self._specs()}
        created: list[str] = []
        old: list[str] = []
        try:
            for alias, mappings in self._specs():
                self._put_template(alias, mappings)
                self._call(
                    self._es.indices.create,
                    index=new[alias],
                    mappings=mappings,
                    settings=self.settings,
                )
                created.append(new[alias])
            counts = {
                "runs": self._bulk(new[self.runs_index], (run_document(d) for d in runs), False),
                "commits": self._bulk(
                    new[self.commits_index], (commit_document(d) for d in commits), False
                ),
            }
            self._call(self._es.indices.refresh, index=list(new.values()))
            actions: list[dict[str, Any]] = []
            for alias, _ in self._specs():
                targets, is_alias = self._alias_targets(alias)
                actions.append({"add": {"index": new[alias], "alias": alias}})
                if is_alias:
                    old.extend(targets)
                    actions.extend(
                        {"remove": {"index": t, "alias": alias, "must_exist": True}}
                        for t in targets
                    )
                elif targets:  # a plain index from before the aliases: gone in the same step
                    actions.append({"remove_index": {"index": alias}})
            response = self._call(self._es.indices.update_aliases, actions=actions)
            if response.get("errors"):
                raise SearchError(f"alias swap partly failed: {response.get('action_results')}")
        except BaseException:
            try:
                # A swap that timed out may still have been applied: never delete what an
                # alias points at now.
                live = {i for alias, _ in self._specs() for i in self._alias_targets(alias)[0]}
                self._delete_indices(i for i in created if i not in live)
            except Exception as exc:  # the original error matters more
                log.warning("could not delete the half-built indices %s: %s", created, exc)
            raise
        try:
            self._delete_indices(old)
        except SearchError as exc:
            log.warning("rebuild done, but the old indices %s are left over: %s", old, exc)
        return {**counts, "indices": new}

    # -- writes --

    def index_run(self, doc: Mapping[str, Any], *, refresh: bool = False) -> None:
        body = run_document(doc)
        self._call(
            self._es.index,
            index=self.runs_index,
            id=body["id"],
            document=body,
            refresh="wait_for" if refresh else None,
        )

    def index_commit(self, doc: Mapping[str, Any], *, refresh: bool = False) -> None:
        body = commit_document(doc)
        self._call(
            self._es.index,
            index=self.commits_index,
            id=body["id"],
            document=body,
            refresh="wait_for" if refresh else None,
        )

    def bulk_index_runs(self, docs: Iterable[Mapping[str, Any]], *, refresh: bool = False) -> int:
        return self._bulk(self.runs_index, (run_document(d) for d in docs), refresh)

    def bulk_index_commits(
        self, docs: Iterable[Mapping[str, Any]], *, refresh: bool = False
    ) -> int:
        return self._bulk(self.commits_index, (commit_document(d) for d in docs), refresh)

    def _bulk(self, index: str, bodies: Iterable[dict[str, Any]], refresh: bool) -> int:
        from elasticsearch import helpers

        actions = ({"_index": index, "_id": b["id"], "_source": b} for b in bodies)
        ok, errors = self._call(
            helpers.bulk,
            self._es,
            actions,
            chunk_size=500,
            raise_on_error=False,
            refresh="wait_for" if refresh else False,
        )
        if errors:
            raise SearchError(f"{len(errors)} document(s) failed to index; first: {errors[0]}")
        return int(ok)

    def bulk_delete_commits(
        self, commit_ids: Iterable[str], *, refresh: bool = False, chunk_size: int = 1000
    ) -> int:
        """Delete these commit documents, ``chunk_size`` per bulk request; returns how many
        were deleted. A document already gone (``not_found``) is not an error; any other
        refused item is a :class:`SearchError`, unavailability a :class:`SearchUnavailable`."""
        from elasticsearch import helpers

        actions = (
            {"_op_type": "delete", "_index": self.commits_index, "_id": str(i)} for i in commit_ids
        )
        ok, errors = self._call(
            helpers.bulk,
            self._es,
            actions,
            chunk_size=chunk_size,
            raise_on_error=False,
            refresh="wait_for" if refresh else False,
        )
        # Each error is {"delete": item}; "not_found" means the document was already gone.
        failed = [e for e in errors if next(iter(e.values()), {}).get("result") != "not_found"]
        if failed:
            raise SearchError(f"{len(failed)} document(s) failed to delete; first: {failed[0]}")
        return int(ok)

    def delete_run(self, run_id: str, *, refresh: bool = False) -> bool:
        return self._delete(self.runs_index, run_id, refresh)

    def delete_commit(self, commit_id: str, *, refresh: bool = False) -> bool:
        return self._delete(self.commits_index, commit_id, refresh)

    def _delete(self, index: str, doc_id: str, refresh: bool) -> bool:
        response = self._call(
            self._es.options(ignore_status=404).delete,
            index=index,
            id=doc_id,
            refresh="wait_for" if refresh else None,
        )
        return response.get("result") == "deleted"

    # -- reads --

    def search_runs(
        self,
        query: Mapping[str, Any] | None = None,
        *,
        sort: Sequence[str] = (),
        page_size: int = 50,
        search_after: Sequence[Any] | None = None,
        offset: int = 0,
        facets: Sequence[str] = (),
        facet_size: int = 20,
    ) -> SearchResult:
        """One page of runs matching ``query`` (DSL, e.g. from ``compile_query``).

        ``sort`` holds user-facing fields, ``-`` first for descending (``"-summary.val_loss"``,
        ``"params.lr"``, ``"created_at"``); without it, best score first. ``id`` always breaks
        ties so ``search_after`` (the previous page's ``next_search_after``) pages exactly;
        ``offset`` is the simpler alternative for small result sets. ``facets`` are keyword
        fields (``tags``, ``status``, ``params.optimizer``...) counted over all matches.
        """
        sort_clause: list[dict[str, Any]] = []
        for spec in sort:
            descending = spec.startswith("-")
            try:
                target, unmapped = sort_field(spec.lstrip("-+"))
            except ValueError as exc:
                raise SearchError(str(exc)) from exc
            options: dict[str, Any] = {"order": "desc" if descending else "asc", "missing": "_last"}
            if unmapped:
                # A metric nobody has logged yet is not mapped: sort as if all were missing.
                options["unmapped_type"] = unmapped
            sort_clause.append({target: options})
        if not sort_clause:
            sort_clause.append({"_score": {"order": "desc"}})
        sort_clause.append({"id": {"order": "asc"}})
        aggs: dict[str, Any] = {}
        for name in facets:
            try:
                aggs[name] = {"terms": {"field": facet_field(name), "size": facet_size}}
            except ValueError as exc:
                raise SearchError(str(exc)) from exc
        kwargs: dict[str, Any] = {
            "index": self.runs_index,
            "query": dict(query) if query else {"match_all": {}},
            "sort": sort_clause,
            "size": page_size,
            "track_total_hits": True,
        }
        if aggs:
            kwargs["aggs"] = aggs
        if search_after is not None:
            kwargs["search_after"] = list(search_after)
        elif offset:
            kwargs["from_"] = offset
        started = time.perf_counter()
        response = self._call(self._es.search, **kwargs)
        elapsed_ms = (time.perf_counter() - started) * 1000
        hits = [
            SearchHit(
                id=h["_id"],
                score=h.get("_score"),
                sort=h.get("sort"),
                source=_run_source(h.get("_source") or {}),
            )
            for h in response["hits"]["hits"]
        ]
        total = response["hits"]["total"]
        aggregations = response.get("aggregations") or {}
        return SearchResult(
            hits=hits,
            total=int(total["value"]),
            total_relation=total.get("relation", "eq"),
            facets={
                name: [
                    {"value": b["key"], "count": b["doc_count"]}
                    for b in aggregations.get(name, {}).get("buckets", [])
                ]
                for name in aggs
            },
            took_ms=int(response.get("took", 0)),
            elapsed_ms=elapsed_ms,
            next_search_after=hits[-1].sort if len(hits) == page_size and hits else None,
        )

    def search_commits(
        self,
        query: Mapping[str, Any] | None = None,
        *,
        page_size: int = 50,
        offset: int = 0,
    ) -> SearchResult:
        """Commits matching a DSL query, newest first (the commit search is simple filters
        plus full text on ``message``; the lead's selector builds the DSL)."""
        started = time.perf_counter()
        response = self._call(
            self._es.search,
            index=self.commits_index,
            query=dict(query) if query else {"match_all": {}},
            sort=[{"created_at": {"order": "desc", "missing": "_last"}}, {"id": "asc"}],
            size=page_size,
            from_=offset,
            track_total_hits=True,
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        total = response["hits"]["total"]
        return SearchResult(
            hits=[
                SearchHit(
                    h["_id"], h.get("_score"), h.get("sort"), _commit_source(h.get("_source") or {})
                )
                for h in response["hits"]["hits"]
            ],
            total=int(total["value"]),
            total_relation=total.get("relation", "eq"),
            took_ms=int(response.get("took", 0)),
            elapsed_ms=elapsed_ms,
        )

    def search_models(
        self,
        query: Mapping[str, Any],
        *,
        page_size: int = 20,
        offset: int = 0,
        facets: Mapping[str, str] | None = None,
        facet_size: int = 20,
    ) -> SearchResult:
        """Commit documents that stand for models (``query`` selects them: the model search
        filters on ``default_head``), best score first, then by repo. ``facets`` maps a
        facet name to a keyword field (``{"tags": "card_tags"}``), counted over all matches."""
        kwargs: dict[str, Any] = {
            "index": self.commits_index,
            "query": dict(query),
            "sort": [{"_score": {"order": "desc"}}, {"repo": {"order": "asc"}}, {"id": "asc"}],
            "size": page_size,
            "from_": offset,
            "track_total_hits": True,
        }
        if facets:
            kwargs["aggs"] = {
                name: {"terms": {"field": target, "size": facet_size}}
                for name, target in facets.items()
            }
        started = time.perf_counter()
        response = self._call(self._es.search, **kwargs)
        elapsed_ms = (time.perf_counter() - started) * 1000
        total = response["hits"]["total"]
        aggregations = response.get("aggregations") or {}
        return SearchResult(
            hits=[
                SearchHit(
                    h["_id"], h.get("_score"), h.get("sort"), _commit_source(h.get("_source") or {})
                )
                for h in response["hits"]["hits"]
            ],
            total=int(total["value"]),
            total_relation=total.get("relation", "eq"),
            facets={
                name: [
                    {"value": b["key"], "count": b["doc_count"]}
                    for b in aggregations.get(name, {}).get("buckets", [])
                ]
                for name in (facets or {})
            },
            took_ms=int(response.get("took", 0)),
            elapsed_ms=elapsed_ms,
        )
