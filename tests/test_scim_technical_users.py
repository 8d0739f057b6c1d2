"""SCIM ``/TechnicalUsers``: technical users as a read-only resource type of Ostiary's own
schema, with the filters, paging and ETags of Users and Groups, and writes refused."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.groups import ownership
from ostiary.groups import service as groups
from ostiary.identity import technical
from ostiary.identity.models import User, UserStatus
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan
from tests import factories as f
from tests.test_scim_api import ERROR, PATCH_OP, token

SCHEMA = "urn:ostiary:params:scim:schemas:core:2.0:TechnicalUser"
BASE = "http://testserver/scim/v2"


def _home(ctx: AppContext, robot: User, subdomain: str) -> None:
    with transaction(ctx.sessions) as s:
        home = tenancy.create(
            s,
            clock=ctx.clock,
            actor="test",
            subdomain=subdomain,
            display_name="Shop",
            plan=Plan.standard,
        )
        row = s.get(User, robot.id)
        assert row is not None
        row.home_subaccount_id = home.id


def _group_owned(ctx: AppContext, creator: User, robot: User) -> str:
    with transaction(ctx.sessions) as s:
        team = groups.create(s, clock=ctx.clock, actor="test", name="Integration Team")
        groups.add_member(s, clock=ctx.clock, actor="test", group=team, user=s.merge(creator))
        row = s.get(User, robot.id)
        assert row is not None
        ownership.give_to_group(s, clock=ctx.clock, actor=s.merge(creator), user=row, group=team)
        return team.group_id


def test_a_person_owned_technical_user_is_served_with_its_owner_and_home(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    owner = f.person(ctx)
    robot, secret = f.technical_user(ctx, owner=owner, display_name="Order sender")
    _home(ctx, robot, "shop-eu")
    got = client.get(f"/scim/v2/TechnicalUsers/{robot.user_id}", headers=auth)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("application/scim+json")
    body = got.json()
    assert body["schemas"] == [SCHEMA]
    assert body["id"] == robot.user_id
    assert body["displayName"] == "Order sender"
    assert body["active"] is True
    assert body["owner"] == {
        "value": owner.user_id,
        "type": "person",
        "$ref": f"{BASE}/Users/{owner.user_id}",
    }
    assert body["homeSubaccount"] == "shop-eu"
    assert body["meta"]["resourceType"] == "TechnicalUser"
    assert body["meta"]["location"] == f"{BASE}/TechnicalUsers/{robot.user_id}"
    assert got.headers["ETag"] == body["meta"]["version"]
    assert secret not in got.text and "password" not in got.text.lower()
    unchanged = client.get(
        f"/scim/v2/TechnicalUsers/{robot.user_id}",
        headers={**auth, "If-None-Match": body["meta"]["version"]},
    )
    assert unchanged.status_code == 304


def test_a_group_owned_technical_user_names_its_group_as_owner(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    creator = f.person(ctx)
    robot, _ = f.technical_user(ctx, owner=creator)
    before = client.get(f"/scim/v2/TechnicalUsers/{robot.user_id}", headers=auth).json()
    group_id = _group_owned(ctx, creator, robot)
    after = client.get(f"/scim/v2/TechnicalUsers/{robot.user_id}", headers=auth).json()
    assert after["owner"] == {
        "value": group_id,
        "type": "group",
        "$ref": f"{BASE}/Groups/{group_id}",
    }
    assert after["meta"]["version"] != before["meta"]["version"]
    # As a member, the technical user is listed by the id of its TechnicalUser.
    add = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": robot.user_id}]}],
    }
    group = client.patch(f"/scim/v2/Groups/{group_id}", headers=auth, json=add).json()
    member = next(m for m in group["members"] if m["value"] == robot.user_id)
    shown = client.get(f"/scim/v2/TechnicalUsers/{member['value']}", headers=auth)
    assert shown.json()["id"] == robot.user_id


def test_list_filters_pages_and_searches_like_the_other_types(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    owner = f.person(ctx)
    made = [
        f.technical_user(ctx, owner=owner, display_name=n)[0] for n in ("Alpha", "Beta", "Gamma")
    ]
    f.technical_user(ctx, owner=owner, display_name="Disabled", status=UserStatus.disabled)
    everything = client.get("/scim/v2/TechnicalUsers", headers=auth).json()
    assert everything["totalResults"] == 4
    assert [r["id"] for r in everything["Resources"][:3]] == [u.user_id for u in made]
    assert owner.user_id not in {r["id"] for r in everything["Resources"]}
    page = client.get("/scim/v2/TechnicalUsers?startIndex=2&count=1", headers=auth).json()
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (4, 2, 1)
    assert page["Resources"][0]["id"] == made[1].user_id
    owned = client.get(
        "/scim/v2/TechnicalUsers",
        params={"filter": f'owner.value eq "{owner.user_id}" and displayName sw "g"'},
        headers=auth,
    ).json()
    assert [r["id"] for r in owned["Resources"]] == [made[2].user_id]
    inactive = client.get(
        "/scim/v2/TechnicalUsers", params={"filter": "active eq false"}, headers=auth
    ).json()
    assert [r["displayName"] for r in inactive["Resources"]] == ["Disabled"]
    picked = client.get(
        "/scim/v2/TechnicalUsers", params={"attributes": "displayName"}, headers=auth
    ).json()
    assert set(picked["Resources"][0]) == {"schemas", "id", "meta", "displayName"}
    searched = client.post(
        "/scim/v2/TechnicalUsers/.search",
        headers=auth,
        json={"filter": f'id eq "{made[0].user_id}"'},
    ).json()
    assert [r["id"] for r in searched["Resources"]] == [made[0].user_id]
    everywhere = client.post(
        "/scim/v2/.search", headers=auth, json={"filter": f'id eq "{made[0].user_id}"'}
    ).json()
    assert [r["meta"]["resourceType"] for r in everywhere["Resources"]] == ["TechnicalUser"]
    bad = client.get("/scim/v2/TechnicalUsers", params={"filter": "owner eq"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidFilter"


def test_a_persons_id_is_no_technical_user(client: TestClient, ctx: AppContext) -> None:
    auth = token(client, ctx)
    someone = f.person(ctx)
    for wanted in (someone.user_id, "T999999"):
        missing = client.get(f"/scim/v2/TechnicalUsers/{wanted}", headers=auth)
        assert missing.status_code == 404
        assert missing.json()["schemas"] == [ERROR]
    robot, _ = f.technical_user(ctx, owner=someone)
    assert client.get(f"/scim/v2/Users/{robot.user_id}", headers=auth).status_code == 404


def test_writes_are_refused_with_a_scim_error_and_change_nothing(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    owner = f.person(ctx)
    robot, _ = f.technical_user(ctx, owner=owner)
    url = f"/scim/v2/TechnicalUsers/{robot.user_id}"
    before = client.get(url, headers=auth).json()
    body: dict[str, Any] = {"schemas": [SCHEMA], "displayName": "Made by an IdP"}
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    for refused in (
        client.post("/scim/v2/TechnicalUsers", headers=auth, json=body),
        client.put(url, headers=auth, json=body),
        client.patch(url, headers=auth, json=patch),
        client.delete(url, headers=auth),
    ):
        assert refused.status_code == 405, refused.text
        assert refused.headers["Allow"] == "GET"
        assert refused.json()["schemas"] == [ERROR]
        assert "read-only" in refused.json()["detail"]
    assert client.get(url, headers=auth).json() == before
    assert client.get(url).status_code == 401  # refusals come after authentication only


def test_discovery_publishes_the_type_and_a_schema_of_readonly_attributes(
    client: TestClient, ctx: AppContext
) -> None:
    auth = token(client, ctx)
    kind = client.get("/scim/v2/ResourceTypes/TechnicalUser", headers=auth).json()
    assert (kind["endpoint"], kind["schema"]) == ("/TechnicalUsers", SCHEMA)
    schema = client.get(f"/scim/v2/Schemas/{SCHEMA}", headers=auth).json()
    names = [a["name"] for a in schema["attributes"]]
    assert names == ["displayName", "description", "active", "owner", "homeSubaccount"]
    owner = next(a for a in schema["attributes"] if a["name"] == "owner")
    subs = {s["name"]: s for s in owner["subAttributes"]}
    assert subs["type"]["canonicalValues"] == ["person", "group"]
    assert subs["$ref"]["referenceTypes"] == ["User", "Group"]
    every = [*schema["attributes"], *owner["subAttributes"]]
    assert {a["mutability"] for a in every} == {"readOnly"}
    listed = client.get("/scim/v2/Schemas", headers=auth).json()
    assert SCHEMA in {s["id"] for s in listed["Resources"]}


def test_deleted_and_erased_users_are_absent(client: TestClient, ctx: AppContext) -> None:
    auth = token(client, ctx)
    boss = f.admin(ctx)
    owner = f.person(ctx)
    gone, _ = f.technical_user(ctx, owner=owner, display_name="Gone")
    erased, _ = f.technical_user(ctx, owner=owner, display_name="Erased")
    kept, _ = f.technical_user(ctx, owner=owner, display_name="Kept")
    with transaction(ctx.sessions) as s:
        row = s.get(User, gone.id)
        assert row is not None
        technical.delete(s, ctx, actor=s.merge(boss), user=row)
        # Erasure is for persons; a technical row marked erased must not come back either.
        marked = s.get(User, erased.id)
        assert marked is not None
        marked.status = UserStatus.erased
    listed = client.get("/scim/v2/TechnicalUsers", headers=auth).json()
    assert [r["id"] for r in listed["Resources"]] == [kept.user_id]
    for missing in (gone, erased):
        assert (
            client.get(f"/scim/v2/TechnicalUsers/{missing.user_id}", headers=auth).status_code
            == 404
        )
