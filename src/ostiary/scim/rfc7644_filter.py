"""RFC 7644 §3.4.2.2 filters and §3.5.2 PATCH paths: a parser and an evaluator.

The grammar (Figure 1 of §3.4.2.2), with ``not`` binding tighter than ``and``, and
``and`` tighter than ``or``::

    FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
    valuePath = attrPath "[" valFilter "]"
    attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
    compareOp = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "lt" / "ge" / "le"
    compValue = false / null / true / number / string
    attrPath  = [URI ":"] ATTRNAME *1subAttr
    PATH      = attrPath / valuePath [subAttr]                  (§3.5.2)

Filters are evaluated over the JSON representation of a resource, so the same code serves
``GET ...?filter=`` and PATCH value selectors. Attribute names and operators are
case-insensitive (§3.4.2.2); string values compare case-insensitively unless the attribute
is ``caseExact`` (RFC 7643 §2.2), and a multi-valued attribute matches when any of its
values does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ostiary.scim.errors import InvalidFilter, InvalidPath

__all__ = [
    "And",
    "AttrPath",
    "Compare",
    "Filter",
    "Not",
    "Or",
    "PatchPath",
    "Present",
    "ValuePath",
    "matches",
    "parse_filter",
    "parse_path",
]

OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le"})
#: Longest filter accepted; anything longer is refused rather than parsed.
MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 32
_NAME = re.compile(r"[A-Za-z0-9:._$\-]+")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class AttrPath:
    """``[URI ":"] ATTRNAME [ "." subAttr ]``; names kept as written, compared lower-cased."""

    uri: str | None
    attr: str
    sub: str | None = None

    def __str__(self) -> str:
        name = self.attr if self.sub is None else f"{self.attr}.{self.sub}"
        return name if self.uri is None else f"{self.uri}:{name}"


@dataclass(frozen=True)
class Compare:
    """``attrPath op value``."""

    path: AttrPath
    op: str
    value: str | int | float | bool | None


@dataclass(frozen=True)
class Present:
    """``attrPath pr``: the attribute has a non-empty value."""

    path: AttrPath


@dataclass(frozen=True)
class And:
    """Both sides match."""

    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    """Either side matches."""

    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    """``not ( FILTER )``."""

    inner: Filter


@dataclass(frozen=True)
class ValuePath:
    """``attr[filter]``: some value of the multi-valued ``attr`` matches ``filter``."""

    path: AttrPath
    filter: Filter


Filter = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True)
class PatchPath:
    """A PATCH ``path``: an attribute, optionally narrowed by a value filter and a
    sub-attribute after it (``members[value eq "x"].display``)."""

    attr: AttrPath
    filter: Filter | None = None
    sub: str | None = None


def _split_name(raw: str, error: type[InvalidFilter] | type[InvalidPath]) -> AttrPath:
    uri: str | None = None
    name = raw
    if raw.lower().startswith("urn:"):
        uri, _, name = raw.rpartition(":")
        if not uri or not name:
            raise error(f"attribute path {raw!r} names no attribute after its schema URI")
    parts = name.split(".")
    if len(parts) > 2 or not all(re.fullmatch(r"[A-Za-z$][A-Za-z0-9_$\-]*", p) for p in parts):
        raise error(f"{raw!r} is not an attribute path")
    return AttrPath(uri, parts[0], parts[1] if len(parts) == 2 else None)


class _Parser:
    def __init__(self, text: str, error: type[InvalidFilter] | type[InvalidPath]) -> None:
        if len(text) > MAX_FILTER_LENGTH:
            raise error(f"longer than {MAX_FILTER_LENGTH} characters")
        self.text = text
        self.pos = 0
        self.error = error
        self.depth = 0

    def fail(self, what: str) -> InvalidFilter | InvalidPath:
        return self.error(f"{what} at position {self.pos} of {self.text!r}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def peek_word(self) -> str:
        self.skip()
        found = _NAME.match(self.text, self.pos)
        return found.group(0) if found else ""

    def take(self, literal: str) -> bool:
        self.skip()
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def keyword(self, word: str) -> bool:
        """Consume ``word`` (case-insensitive) if it is the next whole word."""
        if self.peek_word().lower() == word:
            self.pos += len(word)
            return True
        return False

    def attr_path(self) -> AttrPath:
        raw = self.peek_word()
        if not raw:
            raise self.fail("expected an attribute path")
        self.pos += len(raw)
        return _split_name(raw, self.error)

    # FILTER := term ("or" term)*;  term := factor ("and" factor)*
    def filter(self) -> Filter:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("nested too deeply")
        left = self.term()
        while self.keyword("or"):
            left = Or(left, self.term())
        self.depth -= 1
        return left

    def term(self) -> Filter:
        left = self.factor()
        while self.keyword("and"):
            left = And(left, self.factor())
        return left

    def factor(self) -> Filter:
        self.skip()
        if self.take("("):
            inner = self.filter()
            if not self.take(")"):
                raise self.fail("expected ')'")
            return inner
        word = self.peek_word().lower()
        if word == "not":
            self.pos += 3
            if not self.take("("):
                raise self.fail("expected '(' after not")
            inner = self.filter()
            if not self.take(")"):
                raise self.fail("expected ')'")
            return Not(inner)
        path = self.attr_path()
        if self.take("["):
            if path.sub is not None:
                raise self.fail("a value filter follows an attribute, not a sub-attribute")
            inner = self.filter()
            if not self.take("]"):
                raise self.fail("expected ']'")
            return ValuePath(path, inner)
        op = self.peek_word().lower()
        if op == "pr":
            self.pos += 2
            return Present(path)
        if op not in OPERATORS:
            raise self.fail("expected a comparison operator")
        self.pos += len(op)
        return Compare(path, op, self.value())

    def value(self) -> str | int | float | bool | None:
        self.skip()
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            return self.string()
        for word, literal in (("true", True), ("false", False), ("null", None)):
            if self.keyword(word):
                return literal
        number = _NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            raw = number.group(0)
            return float(raw) if any(c in raw for c in ".eE") else int(raw)
        raise self.fail("expected a value (string, number, true, false or null)")

    def string(self) -> str:
        start = self.pos
        self.pos += 1
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                self.pos += 2
                continue
            if char == '"':
                self.pos += 1
                try:
                    decoded = json.loads(self.text[start : self.pos])
                except ValueError:
                    raise self.fail("malformed string") from None
                assert isinstance(decoded, str)
                return decoded
            self.pos += 1
        raise self.fail("unterminated string")


def parse_filter(text: str) -> Filter:
    """The filter ``text`` as a tree; ``InvalidFilter`` (400 ``invalidFilter``) if malformed."""
    parser = _Parser(text, InvalidFilter)
    if parser.at_end():
        raise InvalidFilter("the filter is empty")
    found = parser.filter()
    if not parser.at_end():
        raise parser.fail("unexpected text")
    return found


def parse_path(text: str) -> PatchPath:
    """A PATCH operation's ``path`` (§3.5.2); ``InvalidPath`` (400 ``invalidPath``) if not."""
    parser = _Parser(text.strip(), InvalidPath)
    if parser.at_end():
        raise InvalidPath("the path is empty")
    attr = parser.attr_path()
    if parser.at_end():
        return PatchPath(attr)
    if attr.sub is not None or not parser.take("["):
        raise parser.fail("unexpected text")
    # Inside brackets the filter's own errors are path errors for the client (§3.5.2).
    try:
        inner = parser.filter()
    except InvalidFilter as exc:
        raise InvalidPath(exc.detail) from None
    if not parser.take("]"):
        raise parser.fail("expected ']'")
    sub: str | None = None
    if parser.take("."):
        sub = parser.peek_word()
        if not re.fullmatch(r"[A-Za-z$][A-Za-z0-9_$\-]*", sub):
            raise parser.fail("expected a sub-attribute")
        parser.pos += len(sub)
    if not parser.at_end():
        raise parser.fail("unexpected text")
    return PatchPath(attr, inner, sub)


# ---------------------------------------------------------------- evaluation


def lookup(node: Any, name: str) -> Any:
    """The member ``name`` of a JSON object, matched case-insensitively (RFC 7643 §2.1)."""
    if not isinstance(node, dict):
        return None
    lowered = name.lower()
    for key, value in node.items():
        if key.lower() == lowered:
            return value
    return None


def _values(resource: dict[str, Any], path: AttrPath) -> list[Any]:
    """Every value ``path`` reaches in ``resource`` (flattening multi-valued attributes)."""
    node: Any = resource
    if path.uri is not None:
        extension = lookup(resource, path.uri)
        node = extension if extension is not None else resource
    top = lookup(node, path.attr)
    items = top if isinstance(top, list) else [top]
    if path.sub is None:
        found = []
        for item in items:
            # A filter on a complex multi-valued attribute without a sub-attribute means
            # its ``value`` (RFC 7644 §3.4.2.2, "emails co ...").
            found.append(lookup(item, "value") if isinstance(item, dict) else item)
        return [v for v in found if v is not None]
    return [v for v in (lookup(item, path.sub) for item in items) if v is not None]


def _compare(actual: Any, op: str, expected: Any, *, exact: bool) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool) or expected is None:
        if op == "eq":
            return bool(actual == expected)
        if op == "ne":
            return bool(actual != expected)
        return False
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        numbers = {
            "eq": actual == expected,
            "ne": actual != expected,
            "gt": actual > expected,
            "ge": actual >= expected,
            "lt": actual < expected,
            "le": actual <= expected,
        }
        return numbers.get(op, False)
    if not isinstance(actual, str) or not isinstance(expected, str):
        return op == "ne"
    if not exact:
        actual, expected = actual.casefold(), expected.casefold()
    strings = {
        "eq": actual == expected,
        "ne": actual != expected,
        "co": expected in actual,
        "sw": actual.startswith(expected),
        "ew": actual.endswith(expected),
        # Timestamps are ISO 8601 in UTC, so they order as strings (RFC 7644 §3.4.2.2).
        "gt": actual > expected,
        "ge": actual >= expected,
        "lt": actual < expected,
        "le": actual <= expected,
    }
    return bool(strings[op])


def matches(found: Filter, resource: dict[str, Any], *, case_exact: frozenset[str]) -> bool:
    """Whether the JSON ``resource`` matches ``found``; ``case_exact`` holds the lower-cased
    dotted names (``id``, ``externalid``, ``members.value``) compared case-sensitively."""
    if isinstance(found, And):
        return matches(found.left, resource, case_exact=case_exact) and matches(
            found.right, resource, case_exact=case_exact
        )
    if isinstance(found, Or):
        return matches(found.left, resource, case_exact=case_exact) or matches(
            found.right, resource, case_exact=case_exact
        )
    if isinstance(found, Not):
        return not matches(found.inner, resource, case_exact=case_exact)
    if isinstance(found, ValuePath):
        top = lookup(resource, found.path.attr)
        items = top if isinstance(top, list) else [top] if top is not None else []
        prefix = found.path.attr.lower() + "."
        inner_exact = frozenset(n[len(prefix) :] for n in case_exact if n.startswith(prefix))
        return any(
            isinstance(item, dict) and matches(found.filter, item, case_exact=inner_exact)
            for item in items
        )
    values = _values(resource, found.path)
    if isinstance(found, Present):
        return any(v not in ("", [], {}) for v in values)
    name = found.path.attr.lower() + (
        "" if found.path.sub is None else "." + found.path.sub.lower()
    )
    exact = name in case_exact
    if not values:
        return found.op == "ne" or (found.op == "eq" and found.value is None)
    if found.op == "ne":
        return all(_compare(v, "ne", found.value, exact=exact) for v in values)
    return any(_compare(v, found.op, found.value, exact=exact) for v in values)
