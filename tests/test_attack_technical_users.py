"""Attacks on technical users across sub-accounts: an Administrator of one sub-account must
not make another sub-account's technical user theirs by bringing it in."""

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
    root: User
    alice: User  # Administrator of aaa only
    bob: User  # Administrator of bbb, owner of bot
    bot: User
    secret: str


@pytest.fixture
def world(client: TestClient, ctx: AppContext) -> World:
    root = f.admin(ctx)
    auth = f.basic(root.user_id)
    alice, bob = f.person(ctx), f.person(ctx)
    for sd, admin in (("aaa", alice), ("bbb", bob)):
        for url, body in (
            (f"{API}/subaccounts", {"subdomain": sd, "display_name": sd, "plan": "trial"}),
            (
                f"{API}/subaccounts/{sd}/members",
                {"user_id": admin.user_id, "roles": ["Administrator"]},
            ),
            (
                f"{API}/subaccounts/{sd}/role-collections",
                {"name": "Senders", "roles": ["ESBMessaging.send"]},
            ),
        ):
            answer = client.post(url, headers=auth, json=body)
            assert answer.status_code == 201, answer.text
    bot, secret = f.technical_user(ctx, owner=bob)
    joined = client.post(
        f"{API}/subaccounts/bbb/members",
        headers=f.basic(bob.user_id),
        json={"user_id": bot.user_id, "roles": ["Viewer"]},
    )
    assert joined.status_code == 201, joined.text
    return World(client, root, alice, bob, bot, secret)


def _take_over_refused(w: World) -> None:
    alice = f.basic(w.alice.user_id)
    rotated = w.client.post(
        f"{API}/technical-users/{w.bot.user_id}/secrets", headers=alice, json={}
    )
    assert rotated.status_code == 403, rotated.text
    taken = w.client.put(
        f"{API}/technical-users/{w.bot.user_id}/owner",
        headers=alice,
        json={"owner_user_id": w.alice.user_id},
    )
    assert taken.status_code == 403, taken.text
    me = w.client.get(f"{API}/me", headers=f.basic(w.bot.user_id, w.secret))
    assert me.status_code == 200, me.text


def test_an_administrator_cannot_add_another_sub_accounts_technical_user_as_member(
    world: World,
) -> None:
    added = world.client.post(
        f"{API}/subaccounts/aaa/members",
        headers=f.basic(world.alice.user_id),
        json={"user_id": world.bot.user_id, "roles": ["Viewer"]},
    )
    assert added.status_code == 403, added.text
    _take_over_refused(world)


def test_an_administrator_cannot_assign_role_collections_to_another_sub_accounts_technical_user(
    world: World,
) -> None:
    assigned = world.client.put(
        f"{API}/subaccounts/aaa/users/{world.bot.user_id}/role-collections",
        headers=f.basic(world.alice.user_id),
        json={"role_collections": ["Senders"]},
    )
    assert assigned.status_code == 403, assigned.text
    _take_over_refused(world)


def test_whoever_manages_the_technical_user_still_brings_it_in(world: World) -> None:
    bob = f.basic(world.bob.user_id)
    made = world.client.post(
        f"{API}/subaccounts/aaa/members",
        headers=f.basic(world.root.user_id),
        json={"user_id": world.bob.user_id, "roles": ["Administrator"]},
    )
    assert made.status_code == 201, made.text
    added = world.client.post(
        f"{API}/subaccounts/aaa/members",
        headers=bob,
        json={"user_id": world.bot.user_id, "roles": ["Viewer"]},
    )
    assert added.status_code == 201, added.text
    assigned = world.client.put(
        f"{API}/subaccounts/bbb/users/{world.bot.user_id}/role-collections",
        headers=bob,
        json={"role_collections": ["Senders"]},
    )
    assert assigned.status_code == 200, assigned.text
