"""RFC 7644 §3.5.2 PATCH over a resource's JSON: add, replace, remove, value filters,
membership, mutability, all-or-nothing."""

from __future__ import annotations

from typing import Any

import pytest

from ostiary.scim import groups, users
from ostiary.scim.errors import InvalidPath, InvalidSyntax, InvalidValue, Mutability, NoTarget
from ostiary.scim.rfc7644_patch import apply

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
    "id": "G000001",
    "displayName": "Integration Team",
    "members": [{"value": "P000001"}, {"value": "T000004"}],
}
USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "P000001",
    "userName": "alice",
    "active": True,
    "name": {"givenName": "Alice"},
    "emails": [{"value": "alice@example.com", "type": "work"}],
}


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def test_add_members_appends_without_duplicates() -> None:
    body = ops(
        {"op": "add", "path": "members", "value": [{"value": "P000002"}, {"value": "P000001"}]}
    )
    patched = apply(groups.SPEC, GROUP, body)
    assert [m["value"] for m in patched["members"]] == ["P000001", "T000004", "P000002"]
    assert [m["value"] for m in GROUP["members"]] == ["P000001", "T000004"]  # input untouched


def test_remove_member_by_value_filter() -> None:
    patched = apply(
        groups.SPEC, GROUP, ops({"op": "remove", "path": 'members[value eq "T000004"]'})
    )
    assert patched["members"] == [{"value": "P000001"}]


def test_remove_members_named_in_value_as_entra_id_sends_it() -> None:
    body = ops({"op": "remove", "path": "members", "value": [{"value": "P000001"}]})
    assert apply(groups.SPEC, GROUP, body)["members"] == [{"value": "T000004"}]


def test_remove_all_members_and_replace_them() -> None:
    assert "members" not in apply(groups.SPEC, GROUP, ops({"op": "remove", "path": "members"}))
    body = ops({"op": "replace", "path": "members", "value": [{"value": "P000009"}]})
    assert apply(groups.SPEC, GROUP, body)["members"] == [{"value": "P000009"}]


def test_filter_matching_nothing_is_no_target() -> None:
    with pytest.raises(NoTarget):
        apply(groups.SPEC, GROUP, ops({"op": "remove", "path": 'members[value eq "P999999"]'}))


def test_replace_without_path_merges_attributes_case_insensitively() -> None:
    body = ops({"op": "Replace", "value": {"DISPLAYNAME": "Ops", "id": "ignored", "active": False}})
    patched = apply(users.SPEC, USER, body)
    assert patched["displayName"] == "Ops"
    assert patched["active"] is False
    assert patched["id"] == "P000001"


def test_sub_attribute_paths_and_value_filter_sub_attribute() -> None:
    body = ops(
        {"op": "replace", "path": "name.familyName", "value": "Liddell"},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@example.org"},
    )
    patched = apply(users.SPEC, USER, body)
    assert patched["name"] == {"givenName": "Alice", "familyName": "Liddell"}
    assert patched["emails"] == [{"value": "a@example.org", "type": "work"}]


def test_add_to_complex_attribute_merges_sub_attributes() -> None:
    body = ops({"op": "add", "path": "name", "value": {"familyName": "Liddell"}})
    assert apply(users.SPEC, USER, body)["name"] == {"givenName": "Alice", "familyName": "Liddell"}


def test_core_schema_uri_prefix_in_path() -> None:
    body = ops(
        {
            "op": "replace",
            "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName",
            "value": "A",
        }
    )
    assert apply(users.SPEC, USER, body)["displayName"] == "A"


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ({"op": "replace", "path": "id", "value": "x"}, Mutability),
        ({"op": "add", "path": "groups", "value": [{"value": "G1"}]}, Mutability),
        ({"op": "replace", "path": "nickName", "value": "x"}, InvalidPath),
        ({"op": "replace", "path": "urn:example:other:displayName", "value": "x"}, InvalidPath),
        ({"op": "replace", "path": "name.middleName", "value": "x"}, InvalidPath),
        ({"op": "remove"}, NoTarget),
        ({"op": "remove", "path": "userName"}, InvalidValue),
        ({"op": "replace", "path": "userName"}, InvalidValue),
        ({"op": "move", "path": "userName", "value": "x"}, InvalidSyntax),
        ({"op": "replace", "path": 'userName[value eq "x"]', "value": "x"}, InvalidPath),
    ],
)
def test_refused_operations(operation: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        apply(users.SPEC, USER, ops(operation))


def test_a_failing_later_operation_leaves_the_resource_unchanged() -> None:
    body = ops(
        {"op": "replace", "path": "displayName", "value": "changed"},
        {"op": "replace", "path": "id", "value": "nope"},
    )
    with pytest.raises(Mutability):
        apply(users.SPEC, USER, body)
    assert "displayName" not in USER


@pytest.mark.parametrize(
    "body",
    [[], {"Operations": []}, {"schemas": ["x"], "Operations": [{"op": "add"}]}, ops(), ops("x")],  # type: ignore[arg-type]
)
def test_malformed_patch_messages_are_invalid_syntax(body: Any) -> None:
    with pytest.raises(InvalidSyntax):
        apply(users.SPEC, USER, body)


def test_path_less_values_ignore_attributes_the_resource_does_not_keep() -> None:
    body = ops({"op": "replace", "value": {"title": "CTO", "displayName": "A", "nickName": "a"}})
    patched = apply(users.SPEC, USER, body)
    assert patched["displayName"] == "A"
    assert "title" not in patched and "nickName" not in patched
