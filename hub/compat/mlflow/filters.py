"""MLflow's search syntax (``filter_string`` and ``order_by``), parsed without Django.

The grammar is MLflow's (``mlflow/utils/search_utils.py``): comparisons joined by ``AND``
only (no ``OR``, no parentheses), each ``<identifier> <comparator> <value>``::

    metrics.loss < 0.5 AND params.lr = '0.1' AND tags.`my tag` LIKE 'a%' AND status = 'FINISHED'

- identifier: ``<entity>.<key>`` with entity ``metric(s)``, ``param(s)``/``parameter(s)``,
  ``tag(s)``, ``attribute(s)``/``attr``/``run``; no entity means an attribute. The key is split
  at the first dot (``tags.mlflow.runName``); a key with spaces or symbols is quoted with
  backticks or double quotes (``metrics.`f1 score```).
- metrics and the numeric attributes (``start_time``, ``end_time``, ``created``) take
  ``= != < <= > >=`` and a number; params, tags and the string attributes (``run_id``,
  ``run_name``, ``status``, ``user_id``) take ``= != LIKE ILIKE`` and a quoted string;
  ``run_id`` also takes ``IN`` / ``NOT IN`` with a parenthesised list of strings.
- LIKE is SQL's (``%`` any run of characters, ``_`` one character), case-sensitive; ILIKE
  ignores case.

Anything else (``OR``, datasets, ``artifact_uri``, a comparator the key's type does not
take) is a :class:`FilterError`, which the API answers with 400 ``INVALID_PARAMETER_VALUE``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_FILTER_CHARS = 4000
MAX_COMPARISONS = 50

ENTITIES = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}
_ATTRIBUTE_ALIASES = {
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
    "created": "start_time",
    "Created": "start_time",
}
STRING_ATTRIBUTES = ("run_id", "run_name", "status", "user_id")
NUMERIC_ATTRIBUTES = ("start_time", "end_time")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")

_OP = re.compile(r"(?i)(!=|<>|<=|>=|=|<|>|NOT\s+IN\b|IN\b|ILIKE\b|LIKE\b)")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_BARE = re.compile(r"[^\s=!<>()'\"`,]+")
_AND = re.compile(r"(?i)AND\b")


class FilterError(ValueError):
    """A filter or order-by clause MLflow's grammar (as the hub implements it) refuses."""


@dataclass(frozen=True)
class Comparison:
    entity: str  # metric | param | tag | attribute
    key: str
    op: str  # = != < <= > >= LIKE ILIKE IN NOT IN
    value: str | float | tuple[str, ...]


@dataclass(frozen=True)
class OrderBy:
    entity: str
    key: str
    ascending: bool


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def at_end(self) -> bool:
        self.ws()
        return self.i >= len(self.s)

    def fail(self, what: str) -> FilterError:
        return FilterError(f"{what} at position {self.i} of {self.s!r}")

    def match(self, pattern: re.Pattern) -> str | None:
        m = pattern.match(self.s, self.i)
        if not m:
            return None
        self.i = m.end()
        return m.group(0)

    def quoted(self, quote: str) -> str:
        """A string in ``quote``; the quote doubled stands for itself (SQL)."""
        start = self.i
        self.i += 1
        out = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == quote:
                if self.s[self.i + 1 : self.i + 2] == quote:
                    out.append(quote)
                    self.i += 2
                    continue
                self.i += 1
                return "".join(out)
            out.append(ch)
            self.i += 1
        self.i = start
        raise self.fail("unterminated quoted string")

    def identifier(self) -> tuple[str, str]:
        """``(entity, key)``; entity is ``attribute`` when none is written."""
        self.ws()
        if self.i >= len(self.s):
            raise self.fail("expected an identifier")
        if self.s[self.i] in '`"':
            key = self.quoted(self.s[self.i])
            return "attribute", _ATTRIBUTE_ALIASES.get(key, key)
        start = self.i
        word = self.match(_WORD)
        if word is None:
            raise self.fail("expected an identifier")
        if self.s[self.i : self.i + 1] != ".":
            return "attribute", _ATTRIBUTE_ALIASES.get(word, word)
        entity = ENTITIES.get(word.lower())
        if entity is None:
            self.i = start
            raise self.fail(
                f"unknown entity {word!r} (use metrics., params., tags. or attributes.)"
            )
        self.i += 1  # the dot
        if self.i < len(self.s) and self.s[self.i] in '`"':
            key = self.quoted(self.s[self.i])
        else:
            key = self.match(_KEY_BARE) or ""
        if not key:
            raise self.fail(f"expected a key after {word}.")
        if entity == "attribute":
            key = _ATTRIBUTE_ALIASES.get(key, key)
        return entity, key


def _value(sc: _Scanner) -> str | float | tuple[str, ...]:
    sc.ws()
    if sc.i >= len(sc.s):
        raise sc.fail("expected a value")
    ch = sc.s[sc.i]
    if ch in "'\"":
        return sc.quoted(ch)
    if ch == "(":
        sc.i += 1
        items: list[str] = []
        while True:
            sc.ws()
            if sc.i >= len(sc.s) or sc.s[sc.i] not in "'\"":
                raise sc.fail("expected a quoted string in the list")
            items.append(sc.quoted(sc.s[sc.i]))
            sc.ws()
            if sc.s[sc.i : sc.i + 1] == ",":
                sc.i += 1
                continue
            if sc.s[sc.i : sc.i + 1] == ")":
                sc.i += 1
                return tuple(items)
            raise sc.fail("expected ',' or ')' in the list")
    number = sc.match(_NUMBER)
    if number is None:
        raise sc.fail("expected a quoted string, a number or a list")
    value = float(number)
    if not math.isfinite(value):
        raise sc.fail(f"{number} is not a finite number")
    return value


def _check(c: Comparison) -> Comparison:
    where = f"{c.entity}s.{c.key}" if c.entity != "attribute" else c.key
    if c.entity == "dataset":
        raise FilterError("Searching runs by dataset is not supported by this server.")
    if c.entity == "metric" or (c.entity == "attribute" and c.key in NUMERIC_ATTRIBUTES):
        if c.op not in NUMERIC_OPS or not isinstance(c.value, float):
            raise FilterError(
                f"{where} is numeric: compare it with {', '.join(NUMERIC_OPS)} and a number."
            )
        return c
    if c.entity == "attribute" and c.key not in STRING_ATTRIBUTES:
        raise FilterError(
            f"Invalid attribute key {c.key!r}: searchable attributes are "
            f"{', '.join(STRING_ATTRIBUTES + NUMERIC_ATTRIBUTES)} (and created)."
        )
    if c.op in ("IN", "NOT IN"):
        if c.entity != "attribute" or c.key != "run_id" or not isinstance(c.value, tuple):
            raise FilterError("IN and NOT IN take a list of run ids: run_id IN ('a', 'b').")
        return c
    if c.op not in STRING_OPS or not isinstance(c.value, str):
        raise FilterError(
            f"{where} is a string: compare it with {', '.join(STRING_OPS)} and a quoted string."
        )
    return c


def parse_filter(text: str | None, *, check=None) -> list[Comparison]:
    """The comparisons of a run filter (empty for an empty filter); :class:`FilterError`
    for anything else. ``check`` replaces the run filter's type rules (experiments have
    their own keys)."""
    check = check or _check
    if not text or not text.strip():
        return []
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"A filter is at most {MAX_FILTER_CHARS} characters.")
    sc = _Scanner(text)
    out: list[Comparison] = []
    while True:
        entity, key = sc.identifier()
        sc.ws()
        op = sc.match(_OP)
        if op is None:
            raise sc.fail("expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN)")
        op = " ".join(op.upper().split())
        op = "!=" if op == "<>" else op
        out.append(check(Comparison(entity, key, op, _value(sc))))
        if len(out) > MAX_COMPARISONS:
            raise FilterError(f"A filter has at most {MAX_COMPARISONS} comparisons.")
        if sc.at_end():
            return out
        if sc.match(_AND) is None:
            raise sc.fail("expected AND (OR and parentheses are not supported by MLflow search)")
        if sc.at_end():
            raise sc.fail("expected a comparison after AND")


def parse_order_by(clauses: list[str] | None) -> list[OrderBy]:
    """``["metrics.loss ASC", "start_time DESC", ...]``; the direction defaults to ASC."""
    out: list[OrderBy] = []
    for clause in clauses or []:
        if not isinstance(clause, str) or not clause.strip():
            raise FilterError(f"Invalid order_by clause {clause!r}.")
        sc = _Scanner(clause)
        entity, key = sc.identifier()
        ascending = True
        if not sc.at_end():
            word = sc.match(re.compile(r"(?i)(ASC|DESC)\b"))
            if word is None or not sc.at_end():
                raise sc.fail("expected ASC or DESC at the end of the order_by clause")
            ascending = word.upper() == "ASC"
        if entity == "dataset" or (
            entity == "attribute" and key not in STRING_ATTRIBUTES + NUMERIC_ATTRIBUTES
        ):
            raise FilterError(f"Cannot order by {clause!r}.")
        out.append(OrderBy(entity, key, ascending))
    return out


def like_regex(pattern: str) -> str:
    """SQL LIKE as an anchored regular expression (``%`` → ``.*``, ``_`` → ``.``)."""
    out = []
    for ch in pattern:
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "^" + "".join(out) + "$"
