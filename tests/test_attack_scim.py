"""Attacks on SCIM with control characters: PostgreSQL refuses a NUL in any text column,
so such input must be a SCIM 400 or 404 on both backends, never a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ostiary.context import AppContext
from tests.test_scim_api import ERROR, GROUP, PATCH_OP, USER, new_user, token


def test_control_characters_in_user_attributes_are_invalid_values(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    user = new_user(client, auth, "x@corp.local")
    for body in (
        {"schemas": [USER], "userName": "y\x00@corp.local"},
        {"schemas": [USER], "userName": "y@corp.local", "name": {"givenName": "Y\x07"}},
        {"schemas": [USER], "userName": "y@corp.local", "displayName": "\x00Y"},
        {"schemas": [USER], "userName": "y@corp.local", "externalId": "e\x00"},
        {
            "schemas": [USER],
            "userName": "y@corp.local",
            "emails": [{"value": "y@corp.local", "type": "w\x00rk"}],
        },
    ):
        made = client.post("/scim/v2/Users", headers=auth, json=body)
        assert made.status_code == 400, (body, made.text)
        assert made.json()["schemas"] == [ERROR] and made.json()["scimType"] == "invalidValue"
    patched = client.patch(
        f"/scim/v2/Users/{user['id']}",
        headers=auth,
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "displayName", "value": "a\x00b"}],
        },
    )
    assert patched.status_code == 400, patched.text
    shown = client.get(f"/scim/v2/Users/{user['id']}", headers=auth)
    assert shown.status_code == 200 and "displayName" not in shown.json()


def test_control_characters_in_ids_and_member_values_are_not_found(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    for url in ("/scim/v2/Users/%00", "/scim/v2/Groups/%00", "/scim/v2/Users/P%00"):
        answer = client.get(url, headers=auth)
        assert answer.status_code == 404, (url, answer.text)
        assert answer.json()["schemas"] == [ERROR]
    made = client.post(
        "/scim/v2/Groups",
        headers=auth,
        json={"schemas": [GROUP], "displayName": "Team", "members": [{"value": "P\x00"}]},
    )
    assert made.status_code == 400, made.text
    assert made.json()["scimType"] == "invalidValue"
