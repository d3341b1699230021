"""Model search: the heads of default branches in the commit index, found by name, card
fields, card text and the metrics of the runs that produced the repo's commits.

The query language is a list of terms, all of which must hold::

    moe tag:moe license:apache-2.0 base_model:alice/base metric:val_loss<2.0

- a bare word or ``"quoted phrase"`` searches the repo name, description, card text and the
  commit message (words fuzzily);
- ``tag:``, ``license:``, ``base_model:``, ``dataset:``, ``language:``, ``pipeline_tag:``,
  ``library:`` match the card's front-matter fields exactly; ``namespace:`` the owner;
  ``card:readme|generated|invalid`` whether the head has a README (``generated``: none);
- ``metric:<key><op><number>`` with ``op`` one of ``< <= > >= =`` compares a run summary
  statistic (``<key>`` is the last value, ``<key>.min`` / ``.max`` / ``.last_step`` the
  others); ``metric:<key>`` alone means "has that metric". A model matches when any run that
  produced one of its commits matches.

The API's ``tag``, ``license``, ``base_model`` and ``metric`` parameters add the same terms.
Every search is filtered to what the caller may read (public repos, and private repos of the
caller's namespaces); the hits are checked once more against the database, so a document the
index has not caught up with (a repo made private a moment ago, a deleted repo) is never
returned.
"""

from __future__ import annotations

import math
import re
from typing import Any

from hub.common.errors import InvalidInput, ServiceUnavailable
from hub.stores._search_layout import numeric_range, numeric_term

MAX_QUERY_CHARS = 1000
MAX_TERMS = 32
MAX_PAGE_SIZE = 100
MAX_OFFSET = 10_000

#: ``name:`` in the query -> the keyword field it matches.
KEYWORD_TERMS = {
    "tag": "card_tags",
    "tags": "card_tags",
    "license": "card_license",
    "base_model": "card_base_model",
    "dataset": "card_datasets",
    "datasets": "card_datasets",
    "language": "card_language",
    "pipeline_tag": "card_pipeline_tag",
    "library": "card_library_name",
    "library_name": "card_library_name",
    "namespace": "namespace",
    "owner": "namespace",
}
#: Facets the API returns: name -> keyword field.
FACETS = {"tags": "card_tags", "license": "card_license", "base_model": "card_base_model"}
_STATS = ("last", "min", "max", "last_step")
_METRIC = re.compile(r"^(?P<key>[^<>=\s]+?)(?:(?P<op><=|>=|<|>|=)(?P<num>.+))?$")
_TOKEN = re.compile(r'\s*(?:(?P<field>[A-Za-z_]+):)?(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s"]+))')


def _bad(message: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, code="invalid_query", details=details or None)


def _metric_clause(spec: str) -> dict[str, Any]:
    m = _METRIC.match(spec)
    if not m:
        raise _bad(f"Bad metric filter {spec!r}: use metric:<key><op><number>, e.g. val_loss<2.0.")
    key, op, num = m.group("key"), m.group("op"), m.group("num")
    stat = "last"
    head, _, last = key.rpartition(".")
    if head and last in _STATS:
        key, stat = head, last
    field = f"metrics.{key}.{stat}"
    if op is None:
        return {"exists": {"field": field}}
    try:
        value = float(num)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _bad(f"Bad metric filter {spec!r}: {num!r} is not a number.")
    if op == "=":
        return numeric_term(field, value)
    bound = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[op]
    return numeric_range(field, **{bound: value})


def _text_clause(text: str, phrase: bool) -> dict[str, Any]:
    fields = ["repo_name^3", "description^2", "card_text", "message"]
    if phrase:
        return {"multi_match": {"query": text, "fields": fields, "type": "phrase"}}
    return {
        "bool": {
            "should": [
                {
                    "multi_match": {
                        "query": text,
                        "fields": fields,
                        "fuzziness": "AUTO",
                        "operator": "and",
                    }
                },
                # an exact tag, base model or full repo name also finds it
                {"term": {"card_tags": text}},
                {"term": {"card_base_model": text}},
                {"term": {"repo": text}},
            ],
            "minimum_should_match": 1,
        }
    }


def compile_model_query(
    q: str = "",
    *,
    tags: list[str] | None = None,
    licenses: list[str] | None = None,
    base_models: list[str] | None = None,
    metrics: list[str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(must, filter)`` clauses for the query text and the API's filter parameters; raises
    :class:`InvalidInput` (400 ``invalid_query``) for anything malformed."""
    if len(q) > MAX_QUERY_CHARS:
        raise _bad(f"The query may be at most {MAX_QUERY_CHARS} characters.")
    must: list[dict[str, Any]] = []
    filters: list[dict[str, Any]] = []
    pos = 0
    rest = q.strip()
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        if not m or m.end() == pos:
            raise _bad(f"Cannot read the query at position {pos}.", position=pos)
        pos = m.end()
        name = (m.group("field") or "").lower()
        value = m.group("quoted") if m.group("quoted") is not None else m.group("bare")
        if not name:
            if value.strip():
                must.append(_text_clause(value, phrase=m.group("quoted") is not None))
        elif name in KEYWORD_TERMS:
            filters.append({"term": {KEYWORD_TERMS[name]: value}})
        elif name == "metric":
            filters.append(_metric_clause(value))
        elif name == "name":
            must.append({"match": {"repo_name": {"query": value, "fuzziness": "AUTO"}}})
        elif name == "card":
            kind = {"readme": "readme", "generated": "none", "invalid": "invalid"}.get(value)
            if kind is None:
                raise _bad("card: takes readme, generated or invalid.")
            filters.append({"term": {"card": kind}})
        else:
            raise _bad(
                f"Unknown field {name!r}: use {', '.join(sorted({*KEYWORD_TERMS, 'metric', 'name', 'card'}))}.",
                field=name,
            )
    for values, target in (
        (tags, "card_tags"),
        (licenses, "card_license"),
        (base_models, "card_base_model"),
    ):
        filters.extend({"term": {target: v}} for v in values or () if v)
    filters.extend(_metric_clause(v) for v in metrics or () if v)
    if len(must) + len(filters) > MAX_TERMS:
        raise _bad(f"At most {MAX_TERMS} terms per search.")
    return must, filters


def _visibility(user) -> dict[str, Any] | None:
    """Public repos, and the private repos of the caller's namespaces (None: all, admins)."""
    from hub.accounts.selectors import namespaces_for

    if user is not None and user.is_authenticated and user.is_superuser:
        return None
    should: list[dict[str, Any]] = [{"term": {"private": False}}]
    if user is not None and user.is_authenticated:
        names = list(namespaces_for(user=user).values_list("name", flat=True))
        if names:
            should.append({"terms": {"namespace": names}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def model_search(
    *,
    user,
    q: str = "",
    tags: list[str] | None = None,
    licenses: list[str] | None = None,
    base_models: list[str] | None = None,
    metrics: list[str] | None = None,
    page_size: int = 20,
    offset: int = 0,
) -> dict[str, Any]:
    """One page of models the caller may read, with facet counts (tags, license, base model)."""
    from hub.registry.selectors import repo_list
    from hub.stores.search import SearchError, SearchUnavailable
    from hub.tracking.indexing import search_index

    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be 1..{MAX_PAGE_SIZE}.", code="invalid_page_size")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be 0..{MAX_OFFSET}.", code="invalid_offset")
    must, filters = compile_model_query(
        q, tags=tags, licenses=licenses, base_models=base_models, metrics=metrics
    )
    filters.append({"term": {"default_head": True}})
    visible = _visibility(user)
    if visible is not None:
        filters.append(visible)
    query = {"bool": {"must": must or [{"match_all": {}}], "filter": filters}}
    idx = search_index()
    if idx is None:
        raise ServiceUnavailable(
            "Search is not configured (HUB_ELASTICSEARCH_URL).", code="search_unavailable"
        )
    try:
        res = idx.search_models(query, page_size=page_size, offset=offset, facets=FACETS)
    except SearchUnavailable:
        raise  # 503 search_unavailable (hub.common.errors)
    except SearchError as e:
        raise InvalidInput(str(e), code="invalid_search") from e
    # The index may lag the database by a moment: keep only repos the caller may read now,
    # whose default-branch head is still the commit the document describes.
    names = {h.source.get("repo") for h in res.hits}
    readable = {
        r.full_name: r
        for r in repo_list(user=user).filter(
            namespace__name__in={n.split("/", 1)[0] for n in names if n and "/" in n}
        )
        if r.full_name in names
    }
    results = []
    for h in res.hits:
        s = h.source
        repo = readable.get(s.get("repo"))
        if repo is None:
            continue
        results.append(
            {
                "id": repo.full_name,
                "namespace": repo.namespace.name,
                "name": repo.name,
                "private": repo.private,
                "description": repo.description,
                "default_branch": repo.default_branch,
                "commit": s.get("sha"),
                "message": s.get("message") or "",
                "updated_at": s.get("created_at"),
                "card": {"none": "generated"}.get(s.get("card") or "none", s.get("card")),
                "license": s.get("card_license"),
                "tags": s.get("card_tags") or [],
                "base_model": s.get("card_base_model") or [],
                "datasets": s.get("card_datasets") or [],
                "pipeline_tag": s.get("card_pipeline_tag"),
                "metrics": {
                    key: {stat: values for stat, values in stats.items()}
                    for key, stats in (s.get("metrics") or {}).items()
                },
                "score": h.score,
            }
        )
    return {
        "results": results,
        "total": res.total,
        "facets": res.facets,
        "took_ms": res.took_ms,
    }
