"""Groups through the admin API: a flow call admitted through a group path, refused after
leaving the group; group-owned technical users managed by any active member (issue 12)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from ostiary.context import AppContext
from ostiary.identity.models import User
from tests import factories as f

API = "/api/v1"


@dataclass
class World:
    client: TestClient
    ctx: AppContext
    root: User
    bot: User
    secret: str

    @property
    def root_auth(self) -> dict[str, str]:
        return f.basic(self.root.user_id)

    def call(self) -> int:
        answer = self.client.post(
            "/t/acme/http/orders",
            content=b"<order/>",
            headers=f.basic(self.bot.user_id, self.secret),
        )
        return answer.status_code

    def group(self, name: str = "Integration Team") -> str:
        made = self.client.post(f"{API}/groups", headers=self.root_auth, json={"name": name})
        assert made.status_code == 201, made.text
        return str(made.json()["group_id"])


@pytest.fixture
def world(client: TestClient, ctx: AppContext) -> World:
    root = f.admin(ctx)
    auth = f.basic(root.user_id)
    for url, body in (
        (f"{API}/subaccounts", {"subdomain": "acme", "display_name": "Acme", "plan": "trial"}),
        (
            f"{API}/subaccounts/acme/role-collections",
            {"name": "Senders", "roles": ["ESBMessaging.send"]},
        ),
        (f"{API}/subaccounts/acme/flows", {"path": "orders", "auth": ["basic"]}),
    ):
        answer = client.post(url, headers=auth, json=body)
        assert answer.status_code == 201, answer.text
    bot, secret = f.technical_user(ctx, owner=root)
    return World(client, ctx, root, bot, secret)


def test_a_flow_call_is_admitted_through_a_group_and_refused_after_leaving_it(
    world: World,
) -> None:
    client, auth = world.client, world.root_auth
    group_id = world.group()
    assert world.call() == 403
    joined = client.post(
        f"{API}/groups/{group_id}/members", headers=auth, json={"user_id": world.bot.user_id}
    )
    assert joined.status_code == 201, joined.text
    assert [m["user_id"] for m in joined.json()["members"]] == [world.bot.user_id]
    assigned = client.put(
        f"{API}/subaccounts/acme/groups/{group_id}/role-collections",
        headers=auth,
        json={"role_collections": ["Senders"]},
    )
    assert assigned.status_code == 200, assigned.text
    assert world.call() == 200
    explained = client.get(
        f"{API}/subaccounts/acme/access/explain",
        headers=auth,
        params={"user_id": world.bot.user_id, "flow": "orders"},
    ).json()
    path = f"{world.bot.user_id} → group Integration Team → role collection Senders → ESBMessaging.send"
    assert explained["decision"] == "allow"
    assert explained["paths"] == [path]
    assert any(path in line for line in explained["chain"])
    checked = client.get(
        f"{API}/subaccounts/acme/access/check", headers=auth, params={"user_id": world.bot.user_id}
    ).json()
    assert path in checked["reason"]
    listed = client.get(f"{API}/subaccounts/acme/groups", headers=auth).json()
    assert listed == [
        {"group_id": group_id, "name": "Integration Team", "role_collections": ["Senders"]}
    ]

    left = client.delete(f"{API}/groups/{group_id}/members/{world.bot.user_id}", headers=auth)
    assert left.status_code == 204
    assert world.call() == 403
    again = client.delete(f"{API}/groups/{group_id}/members/{world.bot.user_id}", headers=auth)
    assert again.status_code == 404


def test_only_platform_administrators_create_groups_and_bad_input_is_a_4xx(world: World) -> None:
    client = world.client
    person = f.person(world.ctx)
    refused = client.post(f"{API}/groups", headers=f.basic(person.user_id), json={"name": "X"})
    assert refused.status_code == 403
    assert client.get(f"{API}/groups", headers=f.basic(person.user_id)).json()["items"] == []
    group_id = world.group("Ops")
    assert (
        client.get(f"{API}/groups/{group_id}", headers=f.basic(person.user_id)).status_code == 404
    )
    for body in ({"name": ""}, {"name": "x" * 101}, {}):
        assert client.post(f"{API}/groups", headers=world.root_auth, json=body).status_code == 422
    duplicate = client.post(f"{API}/groups", headers=world.root_auth, json={"name": "Ops"})
    assert duplicate.status_code == 409
    unknown = client.put(
        f"{API}/subaccounts/acme/groups/{group_id}/role-collections",
        headers=world.root_auth,
        json={"role_collections": ["Nope"]},
    )
    assert unknown.status_code == 404
    assert client.get(f"{API}/groups/G999999", headers=world.root_auth).status_code == 404
    renamed = client.patch(
        f"{API}/groups/{group_id}", headers=world.root_auth, json={"description": "on call"}
    )
    assert renamed.status_code == 200 and renamed.json()["description"] == "on call"
    page = client.get(f"{API}/groups", headers=world.root_auth, params={"query": "op"}).json()
    assert [g["name"] for g in page["items"]] == ["Ops"]


def test_any_active_member_of_an_owning_group_rotates_its_technical_user(world: World) -> None:
    client, ctx = world.client, world.ctx
    creator, colleague, stranger = f.person(ctx), f.person(ctx), f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=creator)
    group_id = world.group("Team")
    for member in (creator, colleague):
        client.post(
            f"{API}/groups/{group_id}/members",
            headers=world.root_auth,
            json={"user_id": member.user_id},
        )
    not_member = client.put(
        f"{API}/technical-users/{bot.user_id}/owner",
        headers=f.basic(stranger.user_id),
        json={"group_id": group_id},
    )
    assert not_member.status_code == 403
    both = client.put(
        f"{API}/technical-users/{bot.user_id}/owner",
        headers=f.basic(creator.user_id),
        json={"group_id": group_id, "owner_user_id": creator.user_id},
    )
    assert both.status_code == 400
    given = client.put(
        f"{API}/technical-users/{bot.user_id}/owner",
        headers=f.basic(creator.user_id),
        json={"group_id": group_id},
    )
    assert given.status_code == 200, given.text
    assert (given.json()["owner"], given.json()["owner_group"]) == (None, group_id)
    mine = client.get(f"{API}/technical-users", headers=f.basic(colleague.user_id)).json()
    assert [u["user_id"] for u in mine["items"]] == [bot.user_id]
    rotate = f"{API}/technical-users/{bot.user_id}/password"
    assert client.post(rotate, headers=f.basic(colleague.user_id)).status_code == 200
    assert client.post(rotate, headers=f.basic(stranger.user_id)).status_code == 403
    client.delete(f"{API}/groups/{group_id}/members/{colleague.user_id}", headers=world.root_auth)
    assert client.post(rotate, headers=f.basic(colleague.user_id)).status_code == 403
    kept = client.delete(f"{API}/groups/{group_id}", headers=world.root_auth)
    assert kept.status_code == 409 and bot.user_id in kept.json()["detail"]


def test_the_inventory_calls_a_group_owned_technical_user_ownerless_only_without_active_members(
    world: World,
) -> None:
    client, auth = world.client, world.root_auth
    group_id = world.group("Team")
    client.post(
        f"{API}/groups/{group_id}/members", headers=auth, json={"user_id": world.root.user_id}
    )
    client.post(
        f"{API}/subaccounts/acme/members",
        headers=auth,
        json={"user_id": world.bot.user_id, "roles": ["Viewer"]},
    )
    given = client.put(
        f"{API}/technical-users/{world.bot.user_id}/owner",
        headers=auth,
        json={"group_id": group_id},
    )
    assert given.status_code == 200, given.text

    def row() -> dict[str, object]:
        items = client.get(f"{API}/subaccounts/acme/technical-users", headers=auth).json()["items"]
        found: dict[str, object] = next(i for i in items if i["user_id"] == world.bot.user_id)
        return found

    assert (row()["owner_group"], row()["ownerless"]) == (group_id, False)
    client.delete(f"{API}/groups/{group_id}/members/{world.root.user_id}", headers=auth)
    assert row()["ownerless"] is True
    back = client.put(
        f"{API}/technical-users/{world.bot.user_id}/owner",
        headers=auth,
        json={"owner_user_id": world.root.user_id},
    )
    assert back.json()["owner_group"] is None and back.json()["owner"] == world.root.user_id
    assert client.delete(f"{API}/groups/{group_id}", headers=auth).status_code == 204
