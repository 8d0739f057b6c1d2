"""A sub-account's Administrators read its own audit events (API, JSON lines, console);
sign-ins, sign-outs and password policy changes are audited (issue 11 item 7)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.identity.models import User
from tests import factories as f
from tests.test_console_tenancy import sign_in

BASE = "/api/v1/subaccounts/acme-test/audit-events"


@dataclass
class World:
    client: TestClient
    root: dict[str, str]
    boss: User
    viewer: User
    developer: User


def _subaccount(client: TestClient, root: dict[str, str], subdomain: str) -> None:
    made = client.post(
        "/api/v1/subaccounts",
        headers=root,
        json={"subdomain": subdomain, "display_name": subdomain, "plan": "standard"},
    )
    assert made.status_code == 201, made.text


def _member(
    client: TestClient, root: dict[str, str], subdomain: str, user: User, role: str
) -> None:
    added = client.post(
        f"/api/v1/subaccounts/{subdomain}/members",
        headers=root,
        json={"user_id": user.user_id, "roles": [role]},
    )
    assert added.status_code == 201, added.text


@pytest.fixture
def world(client: TestClient, ctx: AppContext, clock: FrozenClock) -> World:
    root = f.basic(f.admin(ctx).user_id)
    boss, viewer, developer = f.person(ctx), f.person(ctx), f.person(ctx)
    _subaccount(client, root, "acme-test")
    _subaccount(client, root, "other-one")
    clock.advance(timedelta(hours=1))
    _member(client, root, "acme-test", boss, "Administrator")
    _member(client, root, "acme-test", viewer, "Viewer")
    _member(client, root, "acme-test", developer, "Developer")
    _member(client, root, "other-one", f.person(ctx), "Viewer")
    return World(client, root, boss, viewer, developer)


def test_an_administrator_reads_only_their_sub_accounts_events(world: World) -> None:
    answer = world.client.get(BASE, headers=f.basic(world.boss.user_id))
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert {e["subdomain"] for e in items} == {"acme-test"}
    # the creator joins as its first Administrator, then the three members
    assert [e["action"] for e in items].count("subaccount:member:added") == 4
    other = world.client.get(
        "/api/v1/subaccounts/other-one/audit-events", headers=f.basic(world.boss.user_id)
    )
    assert other.status_code == 403


@pytest.mark.parametrize("who", ["viewer", "developer"])
def test_viewers_and_developers_may_not_read_the_audit_events(world: World, who: str) -> None:
    user = getattr(world, who)
    assert world.client.get(BASE, headers=f.basic(user.user_id)).status_code == 403
    export = world.client.get(f"{BASE}/export", headers=f.basic(user.user_id))
    assert export.status_code == 403 and "audit" in export.json()["detail"]


def test_filters_by_action_actor_and_time_and_pages_with_a_cursor(
    world: World, clock: FrozenClock
) -> None:
    auth = f.basic(world.boss.user_id)
    clock.advance(timedelta(minutes=5))
    start = clock.now()
    made = world.client.post(
        "/api/v1/subaccounts/acme-test/role-collections",
        headers=auth,
        json={"name": "Senders", "roles": ["ESBMessaging.send"]},
    )
    assert made.status_code == 201, made.text
    by_boss = world.client.get(BASE, headers=auth, params={"actor": world.boss.user_id}).json()
    assert [e["action"] for e in by_boss["items"]] == ["subaccount:role_collection:created"]
    added = world.client.get(
        BASE, headers=auth, params={"action": "subaccount:member:added", "limit": 3}
    ).json()
    assert len(added["items"]) == 3 and added["next_cursor"]
    rest = world.client.get(
        BASE,
        headers=auth,
        params={"action": "subaccount:member:added", "cursor": added["next_cursor"]},
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    ids = [e["id"] for e in added["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)
    since = world.client.get(BASE, headers=auth, params={"since": start.isoformat()}).json()
    assert [e["action"] for e in since["items"]] == ["subaccount:role_collection:created"]
    until = world.client.get(BASE, headers=auth, params={"until": start.isoformat()}).json()
    assert "subaccount:role_collection:created" not in [e["action"] for e in until["items"]]
    bad = world.client.get(BASE, headers=auth, params={"since": "yesterday"})
    assert bad.status_code == 422


def test_export_is_json_lines_oldest_first_with_the_chain_hashes(world: World) -> None:
    answer = world.client.get(
        f"{BASE}/export",
        headers=f.basic(world.boss.user_id),
        params={"action": "subaccount:member:added"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert len(lines) == 4 and [x["id"] for x in lines] == sorted(x["id"] for x in lines)
    assert {x["subdomain"] for x in lines} == {"acme-test"}
    assert all(len(x["hash"]) == 64 and len(x["prev_hash"]) == 64 for x in lines)


def test_the_console_audit_page_lists_and_filters_for_administrators(world: World) -> None:
    sign_in(world.client, world.boss)
    page = world.client.get("/console/subaccounts/acme-test/audit")
    assert page.status_code == 200
    assert page.text.count("subaccount:member:added</code>") == 4
    assert "/api/v1/subaccounts/acme-test/audit-events/export" in page.text
    filtered = world.client.get(
        "/console/subaccounts/acme-test/audit", params={"actor": world.boss.user_id}
    )
    assert "subaccount:member:added</code>" not in filtered.text
    assert "user:signed_in</code>" not in filtered.text  # sign-ins carry no sub-account
    bad = world.client.get("/console/subaccounts/acme-test/audit", params={"since": "soon"})
    assert bad.status_code == 400 and "From must be a date" in bad.text


def test_the_console_audit_page_is_refused_to_a_viewer(world: World) -> None:
    sign_in(world.client, world.viewer)
    assert world.client.get("/console/subaccounts/acme-test/audit").status_code == 403


def test_sign_in_and_sign_out_are_audited(world: World) -> None:
    csrf = sign_in(world.client, world.viewer)
    out = world.client.post("/console/signout", data={"csrf_token": csrf})
    assert out.status_code == 200
    events = world.client.get(
        "/api/v1/audit-events", headers=world.root, params={"actor": world.viewer.user_id}
    ).json()["items"]
    assert [e["action"] for e in events] == ["user:signed_out", "user:signed_in"]
    assert all(e["target"] == world.viewer.user_id for e in events)


def test_a_password_policy_change_is_audited_with_before_and_after(world: World) -> None:
    changed = world.client.patch(
        "/api/v1/password-policies/person", headers=world.root, json={"min_length": 14}
    )
    assert changed.status_code == 200, changed.text
    again = world.client.patch(
        "/api/v1/password-policies/person", headers=world.root, json={"min_length": 14}
    )
    assert again.status_code == 200
    events = world.client.get(
        "/api/v1/audit-events", headers=world.root, params={"action": "password_policy:changed"}
    ).json()["items"]
    assert len(events) == 1  # an unchanged policy is not a change
    assert events[0]["target"] == "password_policy:person"
    assert events[0]["detail"]["after"] == {"min_length": 14}
    assert events[0]["detail"]["before"]["min_length"] != 14
