"""Sub-accounts, members, role collections and assignments through the admin API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ostiary.context import AppContext
from tests import factories as f


def setup_subaccount(
    client: TestClient, ctx: AppContext, subdomain: str = "acme-test", plan: str = "trial"
) -> tuple[dict[str, str], object]:
    boss = f.admin(ctx)
    auth = f.basic(boss.user_id)
    answer = client.post(
        "/api/v1/subaccounts",
        headers=auth,
        json={"subdomain": subdomain, "display_name": "Acme Test", "plan": plan},
    )
    assert answer.status_code == 201, answer.text
    return auth, boss


def test_seed_steps_5_to_7_member_role_collection_assignment(
    client: TestClient, ctx: AppContext
) -> None:
    auth, _ = setup_subaccount(client, ctx)
    dev = f.person(ctx)
    added = client.post(
        "/api/v1/subaccounts/acme-test/members",
        headers=auth,
        json={"user_id": dev.user_id, "roles": ["Developer"], "description": "sends orders"},
    )
    assert added.status_code == 201, added.text
    members = client.get("/api/v1/subaccounts/acme-test/members", headers=auth).json()["items"]
    assert {m["user_id"]: m["description"] for m in members}[dev.user_id] == "sends orders"
    created = client.post(
        "/api/v1/subaccounts/acme-test/role-collections",
        headers=auth,
        json={"name": "Senders", "roles": ["ESBMessaging.send"]},
    )
    assert created.status_code == 201, created.text
    put = client.put(
        f"/api/v1/subaccounts/acme-test/users/{dev.user_id}/role-collections",
        headers=auth,
        json={"role_collections": ["Senders"]},
    )
    assert put.status_code == 200, put.text
    assert put.json()["role_collections"] == ["Senders"]
    ctx.grants.refresh()
    check = client.get(
        "/api/v1/subaccounts/acme-test/access/check",
        headers=auth,
        params={"user_id": dev.user_id, "role": "ESBMessaging.send"},
    ).json()
    assert check["decision"] == "allow"
    events = client.get(
        "/api/v1/audit-events", headers=auth, params={"subdomain": "acme-test"}
    ).json()
    actions = [e["action"] for e in events["items"]]
    assert "subaccount:assignments:changed" in actions and "subaccount:member:added" in actions
    assert client.get("/api/v1/audit-events/verify", headers=auth).json()["ok"] is True


def test_viewer_cannot_add_members_and_denial_is_audited(
    client: TestClient, ctx: AppContext
) -> None:
    auth, _ = setup_subaccount(client, ctx)
    viewer = f.person(ctx)
    client.post(
        "/api/v1/subaccounts/acme-test/members",
        headers=auth,
        json={"user_id": viewer.user_id, "roles": ["Viewer"]},
    )
    other = f.person(ctx)
    answer = client.post(
        "/api/v1/subaccounts/acme-test/members",
        headers=f.basic(viewer.user_id),
        json={"user_id": other.user_id, "roles": ["Viewer"]},
    )
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"
    events = client.get(
        "/api/v1/audit-events", headers=auth, params={"action": "access:denied"}
    ).json()["items"]
    assert events and events[0]["actor"] == viewer.user_id
    assert "subaccount:members:write" in events[0]["detail"]["reason"]
