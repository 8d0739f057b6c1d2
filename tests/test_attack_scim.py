"""Attacks on SCIM with control characters: PostgreSQL refuses a NUL in any text column,
so such input must be a SCIM 400 or 404 on both backends, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ostiary.context import AppContext
from tests import factories as f
from tests.conftest import SmtpSink
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


def test_a_scim_token_cannot_take_over_a_platform_administrator(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    """A provisioning client that rewrote a platform administrator's e-mail would get the
    reset link for their account: SCIM must leave platform administrators alone."""
    auth = token(client, ctx)
    boss = f.admin(ctx, email="boss@corp.local")
    url = f"/scim/v2/Users/{boss.user_id}"
    assert client.get(url, headers=auth).status_code == 200
    for method, body in (
        (
            "patch",
            {
                "schemas": [PATCH_OP],
                "Operations": [
                    {"op": "replace", "path": "emails", "value": [{"value": "evil@corp.local"}]}
                ],
            },
        ),
        ("put", {"schemas": [USER], "userName": "evil@corp.local", "active": False}),
        ("delete", None),
    ):
        answer = client.request(method.upper(), url, headers=auth, json=body)
        assert answer.status_code == 403, (method, answer.text)
        assert answer.json()["schemas"] == [ERROR]
    asked = client.post("/api/v1/password-resets", json={"email": "evil@corp.local"})
    assert asked.status_code == 202
    me = client.get("/api/v1/me", headers=f.basic("boss@corp.local"))
    assert me.status_code == 200 and me.json()["status"] == "active"
    with pytest.raises(AssertionError):
        smtp.wait_for("evil@corp.local", subject="reset", timeout=0.5)
