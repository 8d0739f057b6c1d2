"""SCIM 2.0 at /scim/v2 through the ASGI app: tokens, Users, Groups, filters, paging,
ETags, and Error resources with their scimType."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.groups import service as groups
from ostiary.identity.models import User, UserStatus
from ostiary.scim.models import ScimToken
from tests import factories as f

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def token(client: TestClient, ctx: AppContext) -> dict[str, str]:
    boss = f.admin(ctx)
    made = client.post(
        "/api/v1/scim-tokens", headers=f.basic(boss.user_id), json={"description": "Entra ID"}
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


def new_user(
    client: TestClient, auth: dict[str, str], user_name: str, **extra: Any
) -> dict[str, Any]:
    body = {"schemas": [USER], "userName": user_name, **extra}
    made = client.post("/scim/v2/Users", headers=auth, json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_token_is_shown_once_kept_as_keyed_hash_and_listed_without_it(
    client: TestClient, ctx: AppContext
) -> None:
    boss = f.admin(ctx)
    made = client.post("/api/v1/scim-tokens", headers=f.basic(boss.user_id), json={})
    assert made.status_code == 201
    secret, token_id = made.json()["token"], made.json()["token_id"]
    assert len(secret) >= 43
    listed = client.get("/api/v1/scim-tokens", headers=f.basic(boss.user_id))
    assert [t["token_id"] for t in listed.json()] == [token_id]
    assert secret not in listed.text
    with transaction(ctx.read_sessions) as session:
        row = session.get(ScimToken, token_id)
        assert row is not None and secret not in (row.token_hash, row.description)
        dumped = session.execute(text("SELECT * FROM scim_tokens")).all()
    assert secret not in repr(dumped)


def test_only_platform_admins_make_tokens(client: TestClient, ctx: AppContext) -> None:
    someone = f.person(ctx)
    answer = client.post("/api/v1/scim-tokens", headers=f.basic(someone.user_id), json={})
    assert answer.status_code == 403


def test_missing_wrong_and_revoked_tokens_get_401_error_resources(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    assert client.get("/scim/v2/Users", headers=auth).status_code == 200
    for headers in ({}, {"Authorization": "Bearer ostscim_wrong"}, {"Authorization": "Basic eDp5"}):
        refused = client.get("/scim/v2/Users", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["schemas"] == [ERROR]
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    boss = f.admin(ctx)
    token_id = client.get("/api/v1/scim-tokens", headers=f.basic(boss.user_id)).json()[0][
        "token_id"
    ]
    revoked = client.delete(f"/api/v1/scim-tokens/{token_id}", headers=f.basic(boss.user_id))
    assert revoked.json()["status"] == "revoked"
    assert client.get("/scim/v2/Users", headers=auth).status_code == 401


def test_last_use_is_recorded_at_most_once_a_minute(client: TestClient, ctx: AppContext) -> None:
    auth = token(client, ctx)
    boss = f.admin(ctx)
    first = ctx.clock.now()
    client.get("/scim/v2/ServiceProviderConfig", headers=auth)
    ctx.clock.advance(timedelta(seconds=30))  # type: ignore[attr-defined]
    client.get("/scim/v2/ServiceProviderConfig", headers=auth)
    listed = client.get("/api/v1/scim-tokens", headers=f.basic(boss.user_id)).json()[0]
    assert listed["last_used_at"].startswith(first.isoformat()[:19])
    assert listed["last_address"] == "testclient"
    ctx.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    client.get("/scim/v2/ServiceProviderConfig", headers=auth)
    later = client.get("/api/v1/scim-tokens", headers=f.basic(boss.user_id)).json()[0]
    assert later["last_used_at"] > listed["last_used_at"]


def test_provisioned_user_is_an_active_person_in_the_directory(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    made = new_user(
        client,
        auth,
        "grace",
        name={"givenName": "Grace", "familyName": "Hopper"},
        emails=[{"value": "grace@corp.local", "type": "work", "primary": True}],
        externalId="entra-42",
    )
    assert made["id"].startswith("P")
    assert made["active"] is True
    with transaction(ctx.read_sessions) as session:
        user = session.scalar(select(User).where(User.user_id == made["id"]))
        assert user is not None
        assert (user.email, user.given_name, user.status) == (
            "grace@corp.local",
            "Grace",
            UserStatus.active,
        )
    fetched = client.get(f"/scim/v2/Users/{made['id']}", headers=auth)
    assert fetched.headers["content-type"].startswith("application/scim+json")
    assert fetched.json()["externalId"] == "entra-42"
    assert fetched.headers["ETag"] == made["meta"]["version"]


def test_self_registered_person_shows_with_email_as_user_name(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    ada = f.person(ctx, email="ada@example.test")
    found = client.get(
        "/scim/v2/Users", headers=auth, params={"filter": 'userName eq "ADA@example.test"'}
    )
    assert [r["id"] for r in found.json()["Resources"]] == [ada.user_id]


def test_taken_user_name_or_email_is_409_uniqueness(client: TestClient, ctx: AppContext) -> None:
    auth = token(client, ctx)
    new_user(client, auth, "alan", emails=[{"value": "alan@example.com"}])
    for body in (
        {"userName": "ALAN"},
        {"userName": "other", "emails": [{"value": "Alan@example.com"}]},
    ):
        taken = client.post("/scim/v2/Users", headers=auth, json={"schemas": [USER], **body})
        assert taken.status_code == 409, taken.text
        assert taken.json()["scimType"] == "uniqueness"


def test_bad_input_is_400_with_scim_type_never_500(client: TestClient, ctx: AppContext) -> None:
    auth = token(client, ctx)
    cases = [
        ("post", "/scim/v2/Users", {"content": b"{not json"}, "invalidSyntax"),
        ("post", "/scim/v2/Users", {"json": {"userName": "x"}}, "invalidSyntax"),
        ("post", "/scim/v2/Users", {"json": {"schemas": [USER]}}, "invalidValue"),
        (
            "post",
            "/scim/v2/Users",
            {"json": {"schemas": [USER], "userName": "x", "emails": [{"value": "nope"}]}},
            "invalidValue",
        ),
        ("get", "/scim/v2/Users", {"params": {"filter": 'userName eq "x" and'}}, "invalidFilter"),
        ("get", "/scim/v2/Users", {"params": {"count": "many"}}, "invalidValue"),
    ]
    for method, url, kwargs, scim_type in cases:
        answer = getattr(client, method)(url, headers=auth, **kwargs)
        assert answer.status_code == 400, (url, kwargs, answer.text)
        assert answer.json()["scimType"] == scim_type
        assert answer.json()["status"] == "400"


def test_unknown_endpoint_and_resource_are_scim_404s(client: TestClient, ctx: AppContext) -> None:
    auth = token(client, ctx)
    for url in ("/scim/v2/Nope", "/scim/v2/Users/P999999", "/scim/v2/Groups/G999999"):
        answer = client.get(url, headers=auth)
        assert answer.status_code == 404
        assert answer.json()["schemas"] == [ERROR]


def test_filters_and_pagination(client: TestClient, ctx: AppContext) -> None:
    auth = token(client, ctx)
    for n in range(5):
        new_user(client, auth, f"user-{n}", name={"givenName": "Sam" if n % 2 else "Kim"})
    page = client.get(
        "/scim/v2/Users",
        headers=auth,
        params={"filter": 'userName sw "user-"', "startIndex": 2, "count": 2},
    ).json()
    assert page["totalResults"] == 5
    assert (page["startIndex"], page["itemsPerPage"]) == (2, 2)
    assert [r["userName"] for r in page["Resources"]] == ["user-1", "user-2"]
    sams = client.post(
        "/scim/v2/Users/.search",
        headers=auth,
        json={
            "filter": 'name.givenName eq "sam" or userName eq "user-0"',
            "attributes": ["userName"],
        },
    ).json()
    assert sorted(r["userName"] for r in sams["Resources"]) == ["user-0", "user-1", "user-3"]
    assert all(set(r) == {"schemas", "id", "meta", "userName"} for r in sams["Resources"])
    none = client.get("/scim/v2/Users", headers=auth, params={"filter": "title pr"}).json()
    assert none["totalResults"] == 0


def test_if_match_guards_writes_and_if_none_match_answers_304(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    made = new_user(client, auth, "etag")
    url, version = f"/scim/v2/Users/{made['id']}", made["meta"]["version"]
    assert client.get(url, headers={**auth, "If-None-Match": version}).status_code == 304
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "displayName", "value": "E"}],
    }
    changed = client.patch(url, headers={**auth, "If-Match": version}, json=patch)
    assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] != version
    stale = client.put(
        url, headers={**auth, "If-Match": version}, json={"schemas": [USER], "userName": "etag"}
    )
    assert stale.status_code == 412
    assert client.get(url, headers=auth).json()["displayName"] == "E"
    gone = client.delete(url, headers={**auth, "If-Match": version})
    assert gone.status_code == 412


def test_active_false_disables_the_person(client: TestClient, ctx: AppContext) -> None:
    auth = token(client, ctx)
    made = new_user(client, auth, "leaver")
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert client.patch(f"/scim/v2/Users/{made['id']}", headers=auth, json=patch).status_code == 200
    with transaction(ctx.read_sessions) as session:
        user = session.scalar(select(User).where(User.user_id == made["id"]))
        assert user is not None and user.status is UserStatus.disabled


def test_deleting_a_person_who_owns_technical_users_is_refused(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    owner = f.person(ctx)
    f.technical_user(ctx, owner=owner)
    refused = client.delete(f"/scim/v2/Users/{owner.user_id}", headers=auth)
    assert refused.status_code == 409
    assert "technical" in refused.json()["detail"]
    made = new_user(client, auth, "temp")
    assert client.delete(f"/scim/v2/Users/{made['id']}", headers=auth).status_code == 204
    assert client.get(f"/scim/v2/Users/{made['id']}", headers=auth).status_code == 404


def test_group_membership_through_patch_reaches_the_directory(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    alice, bob = new_user(client, auth, "alice"), new_user(client, auth, "bob")
    owner = f.person(ctx)
    robot, _ = f.technical_user(ctx, owner=owner)
    made = client.post(
        "/scim/v2/Groups",
        headers=auth,
        json={
            "schemas": [GROUP],
            "displayName": "Integration Team",
            "members": [{"value": alice["id"]}],
        },
    )
    assert made.status_code == 201, made.text
    group_url = f"/scim/v2/Groups/{made.json()['id']}"
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "add",
                "path": "members",
                "value": [{"value": bob["id"]}, {"value": robot.user_id}],
            },
            {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'},
        ],
    }
    patched = client.patch(group_url, headers=auth, json=patch)
    assert patched.status_code == 200, patched.text
    assert patched.json()["members"] == [
        {"value": bob["id"], "$ref": f"http://testserver/scim/v2/Users/{bob['id']}"},
        {"value": robot.user_id},
    ]
    with transaction(ctx.read_sessions) as session:
        group = groups.get(session, group_id=made.json()["id"])
        assert sorted(u.user_id for u in groups.members(session, group=group)) == sorted(
            [bob["id"], robot.user_id]
        )
    shown = client.get(f"/scim/v2/Users/{bob['id']}", headers=auth).json()
    assert shown["groups"][0]["display"] == "Integration Team"
    unknown = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": "P999999"}]}],
    }
    refused = client.patch(group_url, headers=auth, json=unknown)
    assert refused.status_code == 400
    assert refused.json()["scimType"] == "invalidValue"
    taken = client.post(
        "/scim/v2/Groups",
        headers=auth,
        json={"schemas": [GROUP], "displayName": "Integration Team"},
    )
    assert taken.status_code == 409
    assert taken.json()["scimType"] == "uniqueness"
    assert client.delete(group_url, headers=auth).status_code == 204


def test_discovery_documents_describe_what_is_served(client: TestClient, ctx: AppContext) -> None:
    auth = token(client, ctx)
    config = client.get("/scim/v2/ServiceProviderConfig", headers=auth).json()
    assert config["patch"]["supported"] and config["etag"]["supported"]
    assert not config["bulk"]["supported"]
    types = client.get("/scim/v2/ResourceTypes", headers=auth).json()
    assert sorted(t["endpoint"] for t in types["Resources"]) == [
        "/Groups",
        "/TechnicalUsers",
        "/Users",
    ]
    user_schema = client.get(f"/scim/v2/Schemas/{USER}", headers=auth).json()
    names = [a["name"] for a in user_schema["attributes"]]
    assert names == ["userName", "name", "displayName", "active", "emails", "groups"]


def test_attributes_identity_providers_send_beyond_the_schema_are_ignored(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    made = client.post(
        "/scim/v2/Users",
        headers=auth,
        json={
            "schemas": [USER, enterprise],
            "userName": "okta-user",
            "title": "CTO",
            "phoneNumbers": [{"value": "+41 1"}],
            "emails": [{"value": "o@example.com", "primary": True, "display": "O"}],
            enterprise: {"employeeNumber": "7"},
        },
    )
    assert made.status_code == 201, made.text
    assert set(made.json()) == {"schemas", "id", "userName", "active", "emails", "meta"}
    group = client.post(
        "/scim/v2/Groups",
        headers=auth,
        json={
            "schemas": [GROUP],
            "displayName": "Okta Team",
            "members": [{"value": made.json()["id"], "display": "okta-user", "type": "User"}],
        },
    )
    assert group.status_code == 201, group.text
    assert [m["value"] for m in group.json()["members"]] == [made.json()["id"]]


def test_membership_changed_over_scim_admits_and_then_refuses_at_the_runtime(
    client: TestClient, ctx: AppContext
) -> None:
    from tests.test_runtime import API, Tenant

    tenant = Tenant(client, ctx)
    robot, secret = tenant.technical_user(None)
    assert tenant.send(robot, secret).status_code == 403
    auth = token(client, ctx)
    made = client.post(
        "/scim/v2/Groups",
        headers=auth,
        json={"schemas": [GROUP], "displayName": "Senders team", "members": [{"value": robot}]},
    ).json()
    assigned = client.put(
        f"{API}/acme/groups/{made['id']}/role-collections",
        headers=tenant.root,
        json={"role_collections": ["Senders"]},
    )
    assert assigned.status_code == 200, assigned.text
    assert tenant.send(robot, secret).status_code == 200
    leave = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "remove", "path": f'members[value eq "{robot}"]'}],
    }
    assert (
        client.patch(f"/scim/v2/Groups/{made['id']}", headers=auth, json=leave).status_code == 200
    )
    assert tenant.send(robot, secret).status_code == 403
