"""The run search language: what users type in the search box, compiled to Elasticsearch DSL.

Pure Python: no Django, no Elasticsearch client. :func:`compile_query` is the entry point::

    params.moe.top_k:4 AND summary.val_loss:<2.1 AND tags:baseline AND status:finished

Grammar (a small recursive-descent parser; ``AND``/``OR``/``NOT`` are upper case, as in
Lucene, so that ``and`` stays an ordinary word)::

    query    := or_expr? END
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := not_expr (["AND"] not_expr)*        -- juxtaposition is AND
    not_expr := "NOT" not_expr | primary
    primary  := "(" or_expr ")" | field ":" value | WORD | PHRASE
    value    := (">" | ">=" | "<" | "<=") scalar
              | ("[" | "{") bound "TO" bound ("]" | "}")   -- [ ] inclusive, { } exclusive
              | PHRASE | WORD                              -- * and ? make a wildcard,
                                                           -- a lone * means "has the field"
    bound    := scalar | "*"                               -- * leaves the side open

Fields: ``params.<dotted>``, ``summary.<key>`` (= ``.last``) and ``summary.<key>.(last|min|max|
last_step)``, ``tags``, ``status``, ``name``, ``notes``, ``group``, ``user``, ``project``,
``commit``, ``job``, ``id``, and the dates ``created_at``/``updated_at``/``started_at``/
``finished_at``. A bare word or quoted phrase searches ``name`` and ``notes`` (words fuzzily).

What each term becomes (see ``hub/stores/_search_layout.py`` for the document layout):

- ``params.x:4`` matches the keyword ``"4"`` OR the number 4 (so ``4``, ``4.0`` and
  ``"4"`` all match); ``params.x:adam`` is a keyword term; comparisons and ranges are numeric.
- ``summary.k:<2.1`` is a range on the encoded number ``summary.k.last``.
- keyword fields take terms, wildcards and (string) ranges; ``name``/``notes`` take analysed
  matches, phrases and wildcards; dates take comparisons and ranges.

Every error is a :class:`QuerySyntaxError` with a 0-based character position (the API answers
400 with it); nothing else escapes the parser, whatever the input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from hub.stores._search_layout import (
    FREE_TEXT_FIELDS,
    PARAM_PAIRS,
    PARAMS,
    PARAMS_NUM,
    RUN_DATE_FIELDS,
    RUN_KEYWORD_FIELDS,
    RUN_TEXT_FIELDS,
    SUMMARY,
    numeric_range,
    numeric_term,
    pair_pattern,
    summary_field,
)

__all__ = ["QuerySyntaxError", "compile_query", "parse_query", "to_dsl"]

MAX_QUERY_LENGTH = 4000
MAX_DEPTH = 40
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[^.\s]+)*$")
_STOP = set(' \t\r\n\f\v()"')


def _is_number(text: str | None) -> bool:
    """A finite decimal number (``1e999`` is not: JSON has no infinity)."""
    return text is not None and bool(_NUMBER.match(text)) and math.isfinite(float(text))


class QuerySyntaxError(ValueError):
    """A malformed query; ``position`` is the 0-based offset of the offending character."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


# --- syntax tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Text:
    """A bare word (fuzzy, or wildcard when it has * or ?) or a quoted phrase."""

    text: str
    phrase: bool
    position: int


@dataclass(frozen=True)
class Term:
    """``field:value``. ``op`` is one of eq, phrase, wildcard, exists, gt, gte, lt, lte, range.
    For ``range``, ``value``/``upper`` are the bounds (``None`` = open)."""

    field: str
    kind: str  # param | summary | keyword | text | date
    op: str
    value: str | None
    position: int
    value_position: int
    upper: str | None = None
    include_lower: bool = True
    include_upper: bool = True


Node = And | Or | Not | Text | Term


# --- parser ---------------------------------------------------------------------------------


def _field_kind(name: str) -> str | None:
    if name.startswith(f"{PARAMS}.") and len(name) > len(PARAMS) + 1:
        return "param"
    if name.startswith(f"{SUMMARY}.") and len(name) > len(SUMMARY) + 1:
        return "summary"
    if name in RUN_KEYWORD_FIELDS:
        return "keyword"
    if name in RUN_TEXT_FIELDS:
        return "text"
    if name in RUN_DATE_FIELDS:
        return "date"
    return None


def _has_wildcard(raw: str) -> bool:
    """Unescaped * or ? in a raw (still escaped) value."""
    escaped = False
    for ch in raw:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "*?":
            return True
    return False


def _unescape(raw: str, keep_wildcard_escapes: bool = False) -> str:
    out = []
    escaped = False
    for ch in raw:
        if escaped:
            # In a wildcard pattern an escaped * or ? must stay escaped for Elasticsearch.
            out.append("\\" + ch if keep_wildcard_escapes and ch in "*?\\" else ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.depth = 0

    # -- scanning --

    def error(self, message: str, position: int | None = None) -> QuerySyntaxError:
        return QuerySyntaxError(message, self.i if position is None else position)

    def skip_ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def peek_keyword(self, word: str) -> bool:
        """``word`` as a whole token at the cursor (``ANDROID`` is a word, not ``AND``)."""
        end = self.i + len(word)
        if self.s[self.i : end] != word:
            return False
        return end >= len(self.s) or self.s[end].isspace() or self.s[end] in '()"'

    def read_bare(self, stop: str = "") -> str:
        """Characters up to whitespace, a paren, a quote or one of ``stop``; backslash escapes
        the next character (kept in the returned raw text)."""
        start = self.i
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == "\\":
                if self.i + 1 >= len(self.s):
                    raise self.error("nothing to escape after '\\'", self.i)
                self.i += 2
                continue
            if ch in _STOP or ch in stop:
                break
            self.i += 1
        return self.s[start : self.i]

    def read_quoted(self) -> str:
        start = self.i
        self.i += 1  # opening quote
        out = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if ch == '"':
                self.i += 1
                return "".join(out)
            out.append(ch)
            self.i += 1
        raise self.error("unterminated quoted string", start)

    # -- grammar --

    def parse(self) -> Node | None:
        if len(self.s) > MAX_QUERY_LENGTH:
            raise self.error(f"query longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
        self.skip_ws()
        if self.at_end():
            return None
        node = self.parse_or()
        self.skip_ws()
        if not self.at_end():
            if self.s[self.i] == ")":
                raise self.error("unexpected ')' without a matching '('")
            raise self.error(f"unexpected {self.s[self.i]!r}")  # pragma: no cover - defensive
        return node

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"query nested deeper than {MAX_DEPTH} levels")

    def parse_or(self) -> Node:
        self.enter()
        children = [self.parse_and()]
        while True:
            self.skip_ws()
            if not self.peek_keyword("OR"):
                break
            self.i += 2
            self.skip_ws()
            if self.at_end() or self.s[self.i] == ")":
                raise self.error("expected a term after OR")
            children.append(self.parse_and())
        self.depth -= 1
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self) -> Node:
        children = [self.parse_not()]
        while True:
            self.skip_ws()
            if self.at_end() or self.s[self.i] == ")" or self.peek_keyword("OR"):
                break
            if self.peek_keyword("AND"):
                self.i += 3
                self.skip_ws()
                if self.at_end() or self.s[self.i] == ")" or self.peek_keyword("OR"):
                    raise self.error("expected a term after AND")
            children.append(self.parse_not())
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_not(self) -> Node:
        self.skip_ws()
        if self.peek_keyword("NOT"):
            self.i += 3
            self.skip_ws()
            if self.at_end() or self.s[self.i] == ")":
                raise self.error("expected a term after NOT")
            self.enter()
            child = self.parse_not()
            self.depth -= 1
            return Not(child)
        return self.parse_primary()

    def parse_primary(self) -> Node:
        self.skip_ws()
        if self.at_end():
            raise self.error("expected a term")
        ch = self.s[self.i]
        if ch == "(":
            open_at = self.i
            self.i += 1
            self.skip_ws()
            if not self.at_end() and self.s[self.i] == ")":
                raise self.error("empty parentheses")
            node = self.parse_or()
            self.skip_ws()
            if self.at_end() or self.s[self.i] != ")":
                raise self.error("missing ')' for this '('", open_at)
            self.i += 1
            return node
        if ch == ")":
            raise self.error("unexpected ')' without a matching '('")
        if ch == '"':
            start = self.i
            return Text(self.read_quoted(), phrase=True, position=start)
        for keyword in ("AND", "OR"):
            if self.peek_keyword(keyword):
                raise self.error(f"expected a term before {keyword}")
        start = self.i
        raw = self.read_bare(stop=":")
        if not self.at_end() and self.s[self.i] == ":":
            return self.parse_term(raw, start)
        if not raw:  # pragma: no cover - _STOP characters are handled above
            raise self.error("expected a term")
        return Text(_unescape(raw, keep_wildcard_escapes=_has_wildcard(raw)), False, start)

    def parse_term(self, name: str, start: int) -> Term:
        if not name:
            raise self.error("missing field name before ':'", start)
        kind = _field_kind(name) if _FIELD.match(name) else None
        if kind is None:
            raise self.error(
                f"unknown field {name!r}; use params.<name>, summary.<metric>, tags, status, "
                "name, notes, group, user, project, commit, job, id or a date field",
                start,
            )
        self.i += 1  # ':'
        value_at = self.i
        if self.at_end() or self.s[self.i].isspace() or self.s[self.i] == ")":
            raise self.error(f"missing value after '{name}:'")
        ch = self.s[self.i]
        if ch in "<>":
            op = {"<": "lt", ">": "gt"}[ch]
            self.i += 1
            if not self.at_end() and self.s[self.i] == "=":
                op += "e"
                self.i += 1
            value_at = self.i
            if self.at_end() or self.s[self.i].isspace() or self.s[self.i] in "()":
                raise self.error(
                    f"missing value after '{name}:{self.s[start + len(name) + 1 : self.i]}'"
                )
            value = self.read_quoted() if self.s[self.i] == '"' else _unescape(self.read_bare())
            return self.checked(Term(name, kind, op, value, start, value_at))
        if ch in "[{":
            return self.parse_range(name, kind, start)
        if ch == '"':
            return self.checked(Term(name, kind, "phrase", self.read_quoted(), start, value_at))
        raw = self.read_bare()
        if raw == "*":
            return self.checked(Term(name, kind, "exists", None, start, value_at))
        if _has_wildcard(raw):
            pattern = _unescape(raw, keep_wildcard_escapes=True)
            return self.checked(Term(name, kind, "wildcard", pattern, start, value_at))
        return self.checked(Term(name, kind, "eq", _unescape(raw), start, value_at))

    def parse_range(self, name: str, kind: str, start: int) -> Term:
        open_at = self.i
        include_lower = self.s[self.i] == "["
        self.i += 1
        self.skip_ws()
        lower_at = self.i
        lower = self.read_bound()
        self.skip_ws()
        if not self.peek_keyword("TO"):
            raise self.error("expected 'TO' in range")
        self.i += 2
        self.skip_ws()
        upper = self.read_bound()
        self.skip_ws()
        if self.at_end() or self.s[self.i] not in "]}":
            raise self.error("missing ']' or '}' to close the range", open_at)
        include_upper = self.s[self.i] == "]"
        self.i += 1
        term = Term(
            name,
            kind,
            "range",
            lower,
            start,
            lower_at,
            upper=upper,
            include_lower=include_lower,
            include_upper=include_upper,
        )
        return self.checked(term)

    def read_bound(self) -> str | None:
        if self.at_end():
            raise self.error("unfinished range")
        at = self.i
        if self.s[self.i] == '"':
            return self.read_quoted()
        raw = self.read_bare(stop="[]{}")
        if not raw:
            raise self.error("expected a range bound", at)
        return None if raw == "*" else _unescape(raw)

    def checked(self, term: Term) -> Term:
        """Reject what the field's type cannot answer, pointing at the value."""
        numeric_ops = {"gt", "gte", "lt", "lte", "range"}
        values = [term.value] if term.op != "range" else [term.value, term.upper]
        if term.kind == "summary" and term.op in {"eq", "phrase", *numeric_ops}:
            for v in values:
                if v is not None and not _is_number(v):
                    raise self.error(f"{term.field} takes a number, not {v!r}", term.value_position)
        if term.kind == "summary" and term.op == "wildcard":
            raise self.error(f"{term.field} takes a number, not a pattern", term.value_position)
        if term.kind == "param" and term.op in numeric_ops:
            for v in values:
                if v is not None and not _is_number(v):
                    raise self.error(
                        f"comparisons on {term.field} take numbers, not {v!r}", term.value_position
                    )
        if term.kind == "text" and term.op in numeric_ops:
            raise self.error(f"{term.field} is text: it cannot be compared", term.value_position)
        if term.kind == "date" and term.op == "wildcard":
            raise self.error(f"{term.field} is a date: use a range", term.value_position)
        if term.op == "range" and term.value is None and term.upper is None:
            raise self.error("a range needs at least one bound", term.value_position)
        return term


def parse_query(text: str) -> Node | None:
    """Parse a query into its syntax tree (``None`` for an empty query)."""
    if not isinstance(text, str):
        raise QuerySyntaxError("query must be text", 0)
    return _Parser(text).parse()


# --- compiler -------------------------------------------------------------------------------


def _bool(**clauses: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {k: v for k, v in clauses.items() if v}
    if "should" in body:
        body["minimum_should_match"] = 1
    return {"bool": body}


def _numeric_range(field: str, term: Term) -> dict[str, Any]:
    """A comparison or range on an encoded number (see ``_search_layout.numeric_range``)."""
    if term.op == "range":
        low = None if term.value is None else float(term.value)
        high = None if term.upper is None else float(term.upper)
        return numeric_range(
            field,
            gte=low if term.include_lower else None,
            gt=None if term.include_lower else low,
            lte=high if term.include_upper else None,
            lt=None if term.include_upper else high,
        )
    assert term.value is not None
    return numeric_range(field, **{term.op: float(term.value)})


def _range_body(term: Term, convert: Any) -> dict[str, Any]:
    if term.op == "range":
        body: dict[str, Any] = {}
        if term.value is not None:
            body["gte" if term.include_lower else "gt"] = convert(term.value)
        if term.upper is not None:
            body["lte" if term.include_upper else "lt"] = convert(term.upper)
        return body
    return {term.op: convert(term.value)}


def _term_dsl(term: Term) -> dict[str, Any]:
    field, op, value = term.field, term.op, term.value
    if term.kind == "param":
        name = field[len(PARAMS) + 1 :]
        keyword, number = f"{PARAMS}.{name}", f"{PARAMS_NUM}.{name}"
        if op == "exists":
            return {"exists": {"field": keyword}}
        if op == "wildcard":
            assert value is not None
            # Elasticsearch has no wildcard on a flattened sub-key: the key/value pairs do.
            return {"wildcard": {PARAM_PAIRS: {"value": pair_pattern(name, value)}}}
        if op == "phrase":
            return {"term": {keyword: value}}
        if op == "eq":
            assert value is not None
            if _is_number(value):
                return _bool(
                    should=[{"term": {keyword: value}}, numeric_term(number, float(value))]
                )
            return {"term": {keyword: value}}
        return _numeric_range(number, term)
    if term.kind == "summary":
        target = summary_field(field[len(SUMMARY) + 1 :])
        if op == "exists":
            return {"exists": {"field": target}}
        if op in {"eq", "phrase"}:
            assert value is not None
            return numeric_term(target, float(value))
        return _numeric_range(target, term)
    if term.kind == "keyword":
        if op == "exists":
            return {"exists": {"field": field}}
        if op == "wildcard":
            return {"wildcard": {field: {"value": value}}}
        if op in {"eq", "phrase"}:
            return {"term": {field: value}}
        return {"range": {field: _range_body(term, str)}}
    if term.kind == "text":
        if op == "exists":
            return {"exists": {"field": field}}
        if op == "phrase":
            return {"match_phrase": {field: value}}
        if op == "wildcard":
            target = "name.raw" if field == "name" else field
            return {"wildcard": {target: {"value": value, "case_insensitive": True}}}
        return {"match": {field: {"query": value, "operator": "and", "fuzziness": "AUTO"}}}
    # dates: equality is a closed range on the same instant/day as the user wrote it
    if op == "exists":
        return {"exists": {"field": field}}
    if op in {"eq", "phrase"}:
        return {"range": {field: {"gte": value, "lte": value}}}
    return {"range": {field: _range_body(term, str)}}


def _text_dsl(node: Text) -> dict[str, Any]:
    if node.phrase:
        return _bool(should=[{"match_phrase": {f: node.text}} for f in FREE_TEXT_FIELDS])
    if _has_wildcard(node.text):
        return _bool(
            should=[
                {"wildcard": {f: {"value": node.text, "case_insensitive": True}}}
                for f in FREE_TEXT_FIELDS
            ]
        )
    return {
        "multi_match": {
            "query": node.text,
            "fields": list(FREE_TEXT_FIELDS),
            "fuzziness": "AUTO",
        }
    }


def to_dsl(node: Node | None) -> dict[str, Any]:
    """Compile a syntax tree to an Elasticsearch query (``match_all`` for ``None``)."""
    if node is None:
        return {"match_all": {}}
    if isinstance(node, Term):
        return _term_dsl(node)
    if isinstance(node, Text):
        return _text_dsl(node)
    if isinstance(node, Not):
        return _bool(must_not=[to_dsl(node.child)])
    if isinstance(node, Or):
        return _bool(should=[to_dsl(c) for c in node.children])
    must = [to_dsl(c) for c in node.children if not isinstance(c, Not)]
    must_not = [to_dsl(c.child) for c in node.children if isinstance(c, Not)]
    return _bool(must=must, must_not=must_not)


def compile_query(text: str) -> dict[str, Any]:
    """User query text -> Elasticsearch query DSL; raises :class:`QuerySyntaxError`."""
    return to_dsl(parse_query(text))
