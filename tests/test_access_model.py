"""Permission boundaries, technical users, plan limits and the audit chain (issue 3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from ostiary.access.decision import Allow, Deny, Grants, RoleRequirement, decide
from ostiary.access.permissions import Permission
from ostiary.audit.models import AuditEvent
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.identity.models import UserStatus
from tests import factories as f

API = "/api/v1/subaccounts"


class World:
    """Two sub-accounts with an admin each, built through the API."""

    def __init__(self, client: TestClient, ctx: AppContext) -> None:
        self.client = client
        self.ctx = ctx
        self.root = f.admin(ctx)
        self.root_auth = f.basic(self.root.user_id)
        for sd in ("acme-test", "acme-prod"):
            answer = client.post(
                API,
                headers=self.root_auth,
                json={"subdomain": sd, "display_name": sd, "plan": "trial"},
            )
            assert answer.status_code == 201, answer.text
        self.test_admin = self.member("acme-test", "Administrator")
        self.prod_admin = self.member("acme-prod", "Administrator")

    def member(self, subdomain: str, role: str) -> object:
        user = f.person(self.ctx)
        answer = self.client.post(
            f"{API}/{subdomain}/members",
            headers=self.root_auth,
            json={"user_id": user.user_id, "roles": [role]},
        )
        assert answer.status_code == 201, answer.text
        return user

    def as_(self, user: object) -> dict[str, str]:
        return f.basic(user.user_id)  # type: ignore[attr-defined]


@pytest.fixture
def world(client: TestClient, ctx: AppContext) -> World:
    return World(client, ctx)


def test_viewer_cannot_add_members(world: World) -> None:
    viewer = world.member("acme-test", "Viewer")
    other = f.person(world.ctx)
    answer = world.client.post(
        f"{API}/acme-test/members",
        headers=world.as_(viewer),
        json={"user_id": other.user_id, "roles": ["Viewer"]},
    )
    assert answer.status_code == 403
    assert (
        world.client.get(f"{API}/acme-test/members", headers=world.as_(viewer)).status_code == 200
    )


def test_developer_cannot_assign_role_collections(world: World) -> None:
    dev = world.member("acme-test", "Developer")
    world.client.post(
        f"{API}/acme-test/role-collections",
        headers=world.as_(world.test_admin),
        json={"name": "Senders", "roles": ["ESBMessaging.send"]},
    )
    answer = world.client.put(
        f"{API}/acme-test/users/{dev.user_id}/role-collections",  # type: ignore[attr-defined]
        headers=world.as_(dev),
        json={"role_collections": ["Senders"]},
    )
    assert answer.status_code == 403
    reads = world.client.get(f"{API}/acme-test/role-collections", headers=world.as_(dev))
    assert reads.status_code == 200 and reads.json()["items"][0]["name"] == "Senders"


def test_administrator_of_one_subaccount_cannot_touch_another(world: World) -> None:
    stranger = f.person(world.ctx)
    auth = world.as_(world.test_admin)
    attempts = [
        world.client.post(
            f"{API}/acme-prod/members",
            headers=auth,
            json={"user_id": stranger.user_id, "roles": ["Viewer"]},
        ),
        world.client.get(f"{API}/acme-prod/members", headers=auth),
        world.client.post(
            f"{API}/acme-prod/role-collections", headers=auth, json={"name": "X", "roles": []}
        ),
        world.client.put(
            f"{API}/acme-prod/users/{stranger.user_id}/role-collections",
            headers=auth,
            json={"role_collections": []},
        ),
        world.client.patch(f"{API}/acme-prod", headers=auth, json={"display_name": "mine"}),
        world.client.delete(f"{API}/acme-prod", headers=auth),
    ]
    assert [a.status_code for a in attempts] == [403] * 6
    listed = world.client.get(API, headers=auth).json()["items"]
    assert [s["subdomain"] for s in listed] == ["acme-test"]


def test_technical_user_cannot_sign_in_to_the_console(world: World) -> None:
    created = world.client.post(
        "/api/v1/technical-users",
        headers=world.as_(world.test_admin),
        json={"display_name": "orders", "subdomain": "acme-test"},
    )
    assert created.status_code == 201, created.text
    tu, secret = created.json()["user_id"], created.json()["password"]
    assert world.client.get("/api/v1/me", headers=f.basic(tu, secret)).status_code == 200
    page = world.client.get("/console/signin")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = world.client.post(
        "/console/signin",
        data={"csrf_token": token, "identifier": tu, "password": secret},
        follow_redirects=False,
    )
    assert answer.status_code == 401
    assert "ostiary_session" not in answer.cookies


def test_trial_subaccount_has_members_and_authorizations(world: World) -> None:
    overview = world.client.get(f"{API}/acme-test", headers=world.as_(world.test_admin)).json()
    assert overview["plan"] == "trial"
    assert overview["limits"]["members"] > 0
    auth = world.as_(world.test_admin)
    assert world.client.get(f"{API}/acme-test/members", headers=auth).status_code == 200
    assert world.client.get(f"{API}/acme-test/users", headers=auth).status_code == 200


def test_last_administrator_cannot_be_removed_or_demoted(world: World) -> None:
    auth = world.as_(world.prod_admin)
    root_id = world.root.user_id
    world.client.delete(f"{API}/acme-prod/members/{root_id}", headers=world.root_auth)
    last = world.prod_admin.user_id  # type: ignore[attr-defined]
    removed = world.client.delete(f"{API}/acme-prod/members/{last}", headers=auth)
    assert removed.status_code == 409 and "last Administrator" in removed.json()["detail"]
    demoted = world.client.patch(
        f"{API}/acme-prod/members/{last}", headers=auth, json={"roles": ["Viewer"]}
    )
    assert demoted.status_code == 409


def test_assigning_unknown_user_or_collection_is_a_clear_404(world: World) -> None:
    auth = world.as_(world.test_admin)
    unknown_user = world.client.put(
        f"{API}/acme-test/users/P999999/role-collections",
        headers=auth,
        json={"role_collections": []},
    )
    assert unknown_user.status_code == 404 and "P999999" in unknown_user.json()["detail"]
    user = f.person(world.ctx)
    unknown_rc = world.client.put(
        f"{API}/acme-test/users/{user.user_id}/role-collections",
        headers=auth,
        json={"role_collections": ["Nope"]},
    )
    assert unknown_rc.status_code == 404 and "Nope" in unknown_rc.json()["detail"]
    bad_role = world.client.post(
        f"{API}/acme-test/role-collections", headers=auth, json={"name": "X", "roles": ["No.such"]}
    )
    assert bad_role.status_code == 400


def test_removing_a_member_takes_their_role_collections(world: World) -> None:
    auth = world.as_(world.test_admin)
    user = world.member("acme-test", "Viewer")
    world.client.post(
        f"{API}/acme-test/role-collections",
        headers=auth,
        json={"name": "Senders", "roles": ["ESBMessaging.send"]},
    )
    uid = user.user_id  # type: ignore[attr-defined]
    world.client.put(
        f"{API}/acme-test/users/{uid}/role-collections",
        headers=auth,
        json={"role_collections": ["Senders"]},
    )
    assert world.client.delete(f"{API}/acme-test/members/{uid}", headers=auth).status_code == 204
    held = world.client.get(f"{API}/acme-test/users/{uid}/role-collections", headers=auth).json()
    assert held["role_collections"] == []


def test_trial_plan_limit_on_technical_users_is_a_clear_error(world: World) -> None:
    auth = world.as_(world.test_admin)
    limit = world.client.get(f"{API}/acme-test", headers=auth).json()["limits"]["technical_users"]
    for n in range(limit):
        ok = world.client.post(
            "/api/v1/technical-users",
            headers=auth,
            json={"display_name": f"tu{n}", "subdomain": "acme-test"},
        )
        assert ok.status_code == 201
    over = world.client.post(
        "/api/v1/technical-users",
        headers=auth,
        json={"display_name": "one too many", "subdomain": "acme-test"},
    )
    assert over.status_code == 409 and over.json()["error"] == "plan_limit"


def test_technical_user_reset_transfer_and_ownerless_inventory(world: World) -> None:
    owner = f.person(world.ctx)
    created = world.client.post(
        "/api/v1/technical-users",
        headers=f.basic(owner.user_id),
        json={"display_name": "billing sender"},
    )
    tu, old = created.json()["user_id"], created.json()["password"]
    assert tu.startswith("T") and len(old) >= 43  # 256 bits, URL-safe base64
    auth = world.as_(world.test_admin)
    world.client.post(
        f"{API}/acme-test/members",
        headers=auth,
        json={"user_id": tu, "roles": ["Viewer"], "description": "bot"},
    )
    # The sub-account administrator may reset it: the old password stops at once.
    reset = world.client.post(f"/api/v1/technical-users/{tu}/password", headers=auth)
    assert reset.status_code == 200
    new = reset.json()["password"]
    assert world.client.get("/api/v1/me", headers=f.basic(tu, old)).status_code == 401
    assert world.client.get("/api/v1/me", headers=f.basic(tu, new)).status_code == 200
    # A stranger may not.
    stranger = f.person(world.ctx)
    assert (
        world.client.post(
            f"/api/v1/technical-users/{tu}/password", headers=f.basic(stranger.user_id)
        ).status_code
        == 403
    )
    inventory = world.client.get(f"{API}/acme-test/technical-users", headers=auth).json()["items"]
    row = next(r for r in inventory if r["user_id"] == tu)
    assert row["owner"] == owner.user_id and row["ownerless"] is False
    assert row["credentials"][0]["kind"] == "technical_user_secret"
    # The owner is disabled: the technical user is flagged ownerless.
    world.client.patch(
        f"/api/v1/users/{owner.user_id}", headers=world.root_auth, json={"status": "disabled"}
    )
    inventory = world.client.get(f"{API}/acme-test/technical-users", headers=auth).json()["items"]
    assert next(r for r in inventory if r["user_id"] == tu)["ownerless"] is True
    moved = world.client.put(
        f"/api/v1/technical-users/{tu}/owner",
        headers=auth,
        json={"owner_user_id": world.test_admin.user_id},
    )  # type: ignore[attr-defined]
    assert moved.status_code == 200 and moved.json()["owner"] == world.test_admin.user_id  # type: ignore[attr-defined]


def test_converted_person_keeps_id_moves_to_technical_policy(
    world: World, clock: FrozenClock
) -> None:
    p_user = f.person(world.ctx)
    converted = world.client.post(
        f"/api/v1/users/{p_user.user_id}/convert-to-technical",
        headers=world.root_auth,
        json={"owner_user_id": world.test_admin.user_id},
    )  # type: ignore[attr-defined]
    assert converted.status_code == 200, converted.text
    assert converted.json()["user_id"] == p_user.user_id
    assert converted.json()["kind"] == "technical"
    clock.advance(timedelta(days=400))  # a person's password would have expired long ago
    me = world.client.get("/api/v1/me", headers=f.basic(p_user.user_id))
    assert me.status_code == 200 and me.json()["password_expires_at"] is None


def test_deleting_a_subaccount_with_content_needs_confirmation(world: World) -> None:
    auth = world.as_(world.test_admin)
    world.client.post(
        "/api/v1/technical-users",
        headers=auth,
        json={"display_name": "x", "subdomain": "acme-test"},
    )
    refused = world.client.delete(f"{API}/acme-test", headers=world.root_auth)
    assert refused.status_code == 409 and "technical users" in refused.json()["detail"]
    done = world.client.delete(
        f"{API}/acme-test", headers=world.root_auth, params={"confirm": "acme-test"}
    )
    assert done.status_code == 204
    events = world.client.get(
        "/api/v1/audit-events", headers=world.root_auth, params={"action": "subaccount:deleted"}
    ).json()["items"]
    assert events[0]["detail"]["before"]["dependents"] == {"technical_users": 1}


def test_audit_chain_detects_a_changed_event(world: World) -> None:
    assert (
        world.client.get("/api/v1/audit-events/verify", headers=world.root_auth).json()["ok"]
        is True
    )
    with world.ctx.sessions() as session, session.begin():
        session.execute(update(AuditEvent).where(AuditEvent.id == 2).values(target="forged"))
    check = world.client.get("/api/v1/audit-events/verify", headers=world.root_auth).json()
    assert check == {
        "ok": False,
        "events": 1,
        "first_broken_id": 2,
        "reason": "event 2 was changed: its content fails its MAC",
    }


def test_non_admin_cannot_read_the_audit_trail(world: World) -> None:
    answer = world.client.get("/api/v1/audit-events", headers=world.as_(world.test_admin))
    assert answer.status_code == 403


@pytest.mark.parametrize(
    ("grants", "requirement", "allowed", "reason_part"),
    [
        (
            Grants("P1", UserStatus.active, False, "s", frozenset({"Viewer"})),
            Permission.members_write,
            False,
            "do not include subaccount:members:write",
        ),
        (
            Grants("P1", UserStatus.active, False, "s", frozenset({"Developer"})),
            Permission.flows_write,
            True,
            "Developer",
        ),
        (
            Grants("P1", UserStatus.active, False, "s"),
            Permission.members_read,
            False,
            "not a member",
        ),
        (
            Grants("P1", UserStatus.active, True, "s"),
            Permission.members_write,
            True,
            "platform administrator",
        ),
        (Grants("P1", UserStatus.disabled, True, "s"), Permission.members_read, False, "disabled"),
        (
            Grants(
                "T1", UserStatus.active, False, "s", roles={"ESBMessaging.send": frozenset({"RC"})}
            ),
            RoleRequirement("ESBMessaging.send"),
            True,
            "RC",
        ),
        (
            Grants("T1", UserStatus.active, False, "s", frozenset({"Administrator"})),
            RoleRequirement("ESBMessaging.send"),
            False,
            "no role collection",
        ),
        (
            Grants(
                "T1", UserStatus.locked, False, "s", roles={"ESBMessaging.send": frozenset({"RC"})}
            ),
            RoleRequirement("ESBMessaging.send"),
            False,
            "locked",
        ),
    ],
)
def test_decide_returns_allow_or_the_missing_link(
    grants: Grants, requirement: Permission | RoleRequirement, allowed: bool, reason_part: str
) -> None:
    decision = decide(grants, requirement)
    assert isinstance(decision, Allow if allowed else Deny)
    text = decision.because if isinstance(decision, Allow) else decision.reason
    assert reason_part in text
