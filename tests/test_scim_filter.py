"""RFC 7644 §3.4.2.2 filters and §3.5.2 paths: parsing, precedence, evaluation, refusals."""

from __future__ import annotations

import pytest

from ostiary.scim.errors import InvalidFilter, InvalidPath
from ostiary.scim.rfc7644_filter import (
    And,
    AttrPath,
    Compare,
    Not,
    Or,
    Present,
    ValuePath,
    matches,
    parse_filter,
    parse_path,
)

ALICE = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "P000001",
    "externalId": "Ext-1",
    "userName": "Alice@Example.com",
    "name": {"givenName": "Alice", "familyName": "Liddell"},
    "active": True,
    "emails": [{"value": "alice@example.com", "type": "work", "primary": True}],
    "meta": {"lastModified": "2026-12-02T10:00:00Z"},
}
EXACT = frozenset({"id", "externalid"})


def hit(text: str, resource: dict[str, object] = ALICE) -> bool:
    return matches(parse_filter(text), resource, case_exact=EXACT)


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    found = parse_filter("a eq 1 or b eq 2 and not (c pr)")
    assert found == Or(
        Compare(AttrPath(None, "a"), "eq", 1),
        And(Compare(AttrPath(None, "b"), "eq", 2), Not(Present(AttrPath(None, "c")))),
    )


def test_schema_uri_prefix_and_sub_attribute_are_split_from_the_name() -> None:
    found = parse_filter('urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "Al"')
    assert found == Compare(
        AttrPath("urn:ietf:params:scim:schemas:core:2.0:User", "name", "givenName"), "sw", "Al"
    )
    assert hit('urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "Al"')


def test_value_path_filter_parses_and_matches_one_value() -> None:
    found = parse_filter('emails[type eq "work" and value co "@example.com"]')
    assert isinstance(found, ValuePath)
    assert hit('emails[type eq "work" and value co "@example.com"]')
    assert not hit('emails[type eq "home"]')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "alice@example.com"', True),  # caseExact false: case-insensitive
        ('USERNAME EQ "alice@example.com"', True),  # names and operators too
        ('userName ne "alice@example.com"', False),
        ('userName co "@EXAMPLE"', True),
        ('userName sw "alice"', True),
        ('userName ew ".com"', True),
        ('userName sw "bob"', False),
        ('externalId eq "ext-1"', False),  # caseExact true
        ('externalId eq "Ext-1"', True),
        ("title pr", False),
        ("name.givenName pr", True),
        ("active eq true", True),
        ("active eq false", False),
        ('emails co "alice@"', True),  # a complex multi-valued attribute means its value
        ('emails.type eq "work"', True),
        ('meta.lastModified gt "2026-12-01T00:00:00Z"', True),
        ('meta.lastModified lt "2026-12-01T00:00:00Z"', False),
        ('not (userName eq "alice@example.com")', False),
        ('(userName eq "x" or active eq true) and name.familyName eq "Liddell"', True),
        ('userName eq "a \\"quoted\\" name"', False),
    ],
)
def test_filter_evaluation(text: str, expected: bool) -> None:
    assert hit(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "userName",
        'userName zz "x"',
        'userName eq "unterminated',
        'userName eq "x" and',
        '(userName eq "x"',
        'emails[type eq "work"',
        "userName eq bare",
        'userName eq "x") extra',
        "name.given.name pr",
        "urn:only: pr",
        "(" * 100 + 'a eq "x"' + ")" * 100,
        'a eq "' + "x" * 5000 + '"',
    ],
)
def test_malformed_filters_are_invalid_filter_errors(text: str) -> None:
    with pytest.raises(InvalidFilter) as raised:
        parse_filter(text)
    assert raised.value.scim_type == "invalidFilter"
    assert raised.value.status == 400


def test_patch_paths_with_filter_and_sub_attribute() -> None:
    found = parse_path('members[value eq "P000002"].display')
    assert found.attr == AttrPath(None, "members")
    assert found.filter == Compare(AttrPath(None, "value"), "eq", "P000002")
    assert found.sub == "display"
    assert parse_path("name.familyName").attr == AttrPath(None, "name", "familyName")


@pytest.mark.parametrize(
    "text", ["", "members[", 'members[value eq "x"] junk', "a.b.c", 'm[x eq "1"].']
)
def test_malformed_paths_are_invalid_path_errors(text: str) -> None:
    with pytest.raises(InvalidPath) as raised:
        parse_path(text)
    assert raised.value.scim_type == "invalidPath"
