"""RFC 7644 §3.5.2 PATCH: ``add``, ``replace`` and ``remove`` applied to the JSON
representation of a resource.

The engine works on a copy of the resource's JSON, guided by an ``AttrSpec`` tree drawn
from the published schema (which attributes are multi-valued, complex, read-only or
immutable). The caller then validates the result and stores it in one transaction, so a
PATCH whose third operation fails leaves nothing changed (§3.5.2: "the operations are
applied in sequence ... if any fails, the resource is not modified").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ostiary.scim.errors import InvalidPath, InvalidSyntax, InvalidValue, Mutability, NoTarget
from ostiary.scim.rfc7644_filter import AttrPath, PatchPath, lookup, matches, parse_path

#: Attributes a client may send back unchanged in a path-less value; they are ignored.
_IGNORED = frozenset({"id", "meta", "schemas"})
MAX_OPERATIONS = 1000


@dataclass(frozen=True)
class AttrSpec:
    """What PATCH needs to know of one attribute of a schema."""

    name: str
    multi_valued: bool = False
    #: ``readWrite``, ``readOnly``, ``immutable`` or ``writeOnly`` (RFC 7643 §7).
    mutability: str = "readWrite"
    case_exact: bool = False
    required: bool = False
    sub: dict[str, AttrSpec] = field(default_factory=dict)

    def child(self, name: str) -> AttrSpec:
        """The sub-attribute ``name`` (case-insensitive), or ``InvalidPath``."""
        found = self.sub.get(name.lower())
        if found is None:
            raise InvalidPath(f"{self.name} has no sub-attribute {name!r}")
        return found


@dataclass(frozen=True)
class ResourceSpec:
    """The attributes of one resource type's core schema, keyed by lower-cased name."""

    schema: str
    attributes: dict[str, AttrSpec]

    def attribute(self, path: AttrPath) -> AttrSpec:
        """The attribute ``path`` names (ignoring a sub-attribute), or ``InvalidPath``."""
        if path.uri is not None and path.uri.lower() != self.schema.lower():
            raise InvalidPath(f"this resource has no schema {path.uri!r}")
        found = self.attributes.get(path.attr.lower())
        if found is None:
            raise InvalidPath(f"no attribute {path.attr!r}")
        return found

    def case_exact(self) -> frozenset[str]:
        """Lower-cased dotted names of the ``caseExact`` attributes, for filters."""
        names = {a.name.lower() for a in self.attributes.values() if a.case_exact}
        for parent in self.attributes.values():
            names |= {
                f"{parent.name.lower()}.{s.name.lower()}"
                for s in parent.sub.values()
                if s.case_exact
            }
        return frozenset(names)


def _writable(spec: AttrSpec, current: Any, value: Any) -> None:
    if spec.mutability == "readOnly":
        raise Mutability(f"{spec.name} is read-only")
    if spec.mutability == "immutable" and current not in (None, value):
        raise Mutability(f"{spec.name} is immutable once set")


def _set_key(node: dict[str, Any], name: str, value: Any) -> None:
    """Set ``name`` in ``node``, replacing a member that differs only in case."""
    for key in [k for k in node if k.lower() == name.lower()]:
        del node[key]
    if value not in (None, [], {}):
        node[name] = value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _add_or_replace(
    spec: ResourceSpec, resource: dict[str, Any], op: str, path: PatchPath, value: Any
) -> None:
    attr = spec.attribute(path.attr)
    current = lookup(resource, attr.name)
    if path.filter is not None:
        _on_selected(spec, resource, op, path, value)
        return
    if path.attr.sub is not None:
        sub = attr.child(path.attr.sub)
        if attr.multi_valued:
            raise InvalidPath(f"name a value of {attr.name} with a filter to change {sub.name}")
        node = dict(current) if isinstance(current, dict) else {}
        _writable(sub, lookup(node, sub.name), value)
        _set_key(node, sub.name, value)
        _set_key(resource, attr.name, node)
        return
    _writable(attr, current, value)
    if attr.multi_valued:
        incoming = _as_list(value)
        if not all(isinstance(v, dict) for v in incoming) and attr.sub:
            raise InvalidValue(f"{attr.name} takes objects")
        if op == "add":
            merged = list(current or [])
            merged += [v for v in incoming if v not in merged]
        else:
            merged = incoming
        _set_key(resource, attr.name, merged)
    elif attr.sub and op == "add" and isinstance(value, dict) and isinstance(current, dict):
        # Adding to a complex attribute merges its sub-attributes (§3.5.2.1).
        _set_key(resource, attr.name, {**current, **value})
    else:
        _set_key(resource, attr.name, value)


def _on_selected(
    spec: ResourceSpec, resource: dict[str, Any], op: str, path: PatchPath, value: Any
) -> None:
    """``attr[filter]`` and ``attr[filter].sub``: change the values the filter selects."""
    attr = spec.attribute(path.attr)
    if not attr.multi_valued:
        raise InvalidPath(f"{attr.name} is not multi-valued; it takes no value filter")
    assert path.filter is not None
    items = list(lookup(resource, attr.name) or [])
    exact = frozenset(s.name.lower() for s in attr.sub.values() if s.case_exact)
    selected = [i for i, item in enumerate(items) if matches(path.filter, item, case_exact=exact)]
    if not selected:
        raise NoTarget(f"no value of {attr.name} matches the filter")
    for index in selected:
        item = dict(items[index])
        if op == "remove":
            if path.sub is None:
                items[index] = None
                continue
            sub = attr.child(path.sub)
            _writable(sub, lookup(item, sub.name), None)
            _set_key(item, sub.name, None)
        elif path.sub is not None:
            sub = attr.child(path.sub)
            _writable(sub, lookup(item, sub.name), value)
            _set_key(item, sub.name, value)
        elif isinstance(value, dict):
            item = {**item, **value} if op == "add" else dict(value)
        else:
            raise InvalidValue(f"a value of {attr.name} is an object")
        items[index] = item
    _set_key(resource, attr.name, [i for i in items if i is not None])


def _remove(spec: ResourceSpec, resource: dict[str, Any], path: PatchPath, value: Any) -> None:
    attr = spec.attribute(path.attr)
    if path.filter is not None:
        _on_selected(spec, resource, "remove", path, None)
        return
    current = lookup(resource, attr.name)
    if path.attr.sub is not None:
        sub = attr.child(path.attr.sub)
        if attr.multi_valued:
            raise InvalidPath(f"name a value of {attr.name} with a filter to remove {sub.name}")
        if isinstance(current, dict):
            _writable(sub, lookup(current, sub.name), None)
            node = dict(current)
            _set_key(node, sub.name, None)
            _set_key(resource, attr.name, node)
        return
    if attr.mutability in ("readOnly", "immutable") and current is not None:
        raise Mutability(f"{attr.name} cannot be removed")
    if attr.multi_valued and value is not None:
        # Entra ID and others name the values to remove in ``value`` (members, mostly).
        doomed = [v for v in _as_list(value) if isinstance(v, dict)]
        keep = [
            item
            for item in (current or [])
            if not any(all(lookup(item, k) == v for k, v in d.items()) for d in doomed)
        ]
        _set_key(resource, attr.name, keep)
        return
    if attr.required:
        raise InvalidValue(f"{attr.name} is required and cannot be removed")
    _set_key(resource, attr.name, None)


def known_only(spec: ResourceSpec, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the attributes (and sub-attributes) this resource does not keep.

    Identity providers send what they have (titles, phone numbers, the enterprise
    extension); a service provider keeps what it supports and ignores the rest (RFC 7644
    §3.3, §3.5.1), which ``/Schemas`` tells them."""
    kept: dict[str, Any] = {}
    for key, value in body.items():
        if key.lower() == "schemas":
            kept[key] = [spec.schema] if isinstance(value, list) and spec.schema in value else value
            continue
        attr = spec.attributes.get(key.lower())
        if attr is None:
            continue
        kept[key] = _known_sub(attr, value)
    return kept


def _known_sub(attr: AttrSpec, value: Any) -> Any:
    if not attr.sub:
        return value
    if isinstance(value, list):
        return [_known_sub(attr, v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() in attr.sub}
    return value


def _without_path(spec: ResourceSpec, resource: dict[str, Any], op: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidValue(f"an {op} without a path takes an object of attributes")
    for key, item in value.items():
        if key.lower() in _IGNORED:
            continue
        if key.lower() not in spec.attributes and key.lower() != spec.schema.lower():
            # Like a PUT body: what this resource does not keep is ignored (known_only).
            continue
        if key.lower() == spec.schema.lower() and isinstance(item, dict):
            _without_path(spec, resource, op, item)
            continue
        _add_or_replace(spec, resource, op, parse_path(key), item)


def apply(spec: ResourceSpec, resource: dict[str, Any], body: Any) -> dict[str, Any]:
    """The resource after the ``PatchOp`` message ``body``; ``resource`` is not changed."""
    if not isinstance(body, dict):
        raise InvalidSyntax("a PATCH body is a PatchOp object")
    schemas = lookup(body, "schemas")
    if not isinstance(schemas, list) or "urn:ietf:params:scim:api:messages:2.0:PatchOp" not in [
        str(s) for s in schemas
    ]:
        raise InvalidSyntax('schemas must be ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]')
    operations = lookup(body, "Operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("Operations must be a non-empty list")
    if len(operations) > MAX_OPERATIONS:
        raise InvalidValue(f"at most {MAX_OPERATIONS} operations per request")
    result = copy.deepcopy(resource)
    for operation in operations:
        if not isinstance(operation, dict):
            raise InvalidSyntax("each operation is an object")
        op = str(lookup(operation, "op") or "").lower()
        raw_path = lookup(operation, "path")
        value = lookup(operation, "value")
        if raw_path is not None and not isinstance(raw_path, str):
            raise InvalidPath("path is a string")
        if op not in ("add", "replace", "remove"):
            raise InvalidSyntax(f"op must be add, replace or remove, not {op!r}")
        if op == "remove":
            if not raw_path:
                raise NoTarget("remove needs a path")
            _remove(spec, result, parse_path(raw_path), value)
        elif not raw_path:
            _without_path(spec, result, op, value)
        else:
            if value is None:
                raise InvalidValue(f"{op} needs a value")
            _add_or_replace(spec, result, op, parse_path(raw_path), value)
    return result
