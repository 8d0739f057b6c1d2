"""RFC 7644 §3.4.2 queries: ``filter``, ``startIndex``/``count`` (§3.4.2.4), and
``attributes``/``excludedAttributes`` (§3.4.2.5), over resources' JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ostiary.scim.errors import InvalidValue
from ostiary.scim.rfc7644_filter import Filter, matches, parse_filter
from ostiary.scim.rfc7644_patch import ResourceSpec

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
#: Returned whatever ``attributes`` asks for (RFC 7643 §2.4 ``returned: always``).
_ALWAYS = frozenset({"id", "schemas", "meta"})


@dataclass(frozen=True)
class Query:
    """A list or search request, parsed."""

    filter: Filter | None
    start_index: int
    count: int
    attributes: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


def _names(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = raw.split(",")
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise InvalidValue("attributes are a comma-separated list of names")
    return tuple(n.strip() for n in raw if n.strip())


def _integer(raw: Any, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise InvalidValue(f"{name} is an integer") from None


def parse(params: dict[str, Any], *, max_results: int) -> Query:
    """A query from URL parameters or a ``SearchRequest`` body (same names)."""
    raw_filter = params.get("filter")
    if raw_filter is not None and not isinstance(raw_filter, str):
        raise InvalidValue("filter is a string")
    # §3.4.2.4: startIndex below 1 means 1; a negative count means 0.
    start = max(1, _integer(params.get("startIndex"), "startIndex", 1))
    count = min(max(0, _integer(params.get("count"), "count", max_results)), max_results)
    return Query(
        filter=parse_filter(raw_filter) if raw_filter else None,
        start_index=start,
        count=count,
        attributes=_names(params.get("attributes")),
        excluded=_names(params.get("excludedAttributes")),
    )


def _strip_uri(name: str, schema: str) -> str:
    prefix = schema.lower() + ":"
    return name[len(prefix) :] if name.lower().startswith(prefix) else name


def project(
    resource: dict[str, Any],
    spec: ResourceSpec,
    *,
    attributes: tuple[str, ...],
    excluded: tuple[str, ...],
) -> dict[str, Any]:
    """``resource`` with only the asked-for attributes (``id``, ``schemas``, ``meta`` stay)."""
    if attributes:
        wanted: dict[str, set[str] | None] = {}
        for raw in attributes:
            top, _, sub = _strip_uri(raw, spec.schema).partition(".")
            top = top.lower()
            if sub and wanted.get(top, set()) is not None:
                wanted.setdefault(top, set()).add(sub.lower())  # type: ignore[union-attr]
            else:
                wanted[top] = None
        kept: dict[str, Any] = {}
        for key, value in resource.items():
            lowered = key.lower()
            if lowered in _ALWAYS:
                kept[key] = value
            elif lowered in wanted:
                subs = wanted[lowered]
                kept[key] = value if subs is None else _only(value, subs)
        return kept
    if excluded:
        doomed = {_strip_uri(n, spec.schema).lower() for n in excluded}
        return {
            k: v for k, v in resource.items() if k.lower() in _ALWAYS or k.lower() not in doomed
        }
    return resource


def _only(value: Any, subs: set[str]) -> Any:
    if isinstance(value, list):
        return [_only(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() in subs}
    return value


def answer(resources: list[dict[str, Any]], spec: ResourceSpec, query: Query) -> dict[str, Any]:
    """The ``ListResponse`` for ``query`` over ``resources`` (already in a stable order)."""
    return answer_across([(resources, spec)], query)


def answer_across(
    sources: list[tuple[list[dict[str, Any]], ResourceSpec]], query: Query
) -> dict[str, Any]:
    """The ``ListResponse`` for ``query`` over several resource types, one after the other
    (a search at the root, RFC 7644 §3.4.3)."""
    selected: list[tuple[dict[str, Any], ResourceSpec]] = []
    for resources, spec in sources:
        exact = spec.case_exact()
        selected += [
            (r, spec)
            for r in resources
            if query.filter is None or matches(query.filter, r, case_exact=exact)
        ]
    page = selected[query.start_index - 1 : query.start_index - 1 + query.count]
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(selected),
        "startIndex": query.start_index,
        "itemsPerPage": len(page),
        "Resources": [
            project(r, spec, attributes=query.attributes, excluded=query.excluded)
            for r, spec in page
        ],
    }
