"""Invitations over real SMTP: invite, list pending, withdraw, register or sign in and join
through the single-use link (issue 12)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.identity.models import User
from tests import factories as f
from tests.conftest import SmtpSink, link_token

API = "/api/v1"
SD = f"{API}/subaccounts/acme"


@pytest.fixture
def root(client: TestClient, ctx: AppContext) -> User:
    admin = f.admin(ctx)
    made = client.post(
        f"{API}/subaccounts",
        headers=f.basic(admin.user_id),
        json={"subdomain": "acme", "display_name": "Acme", "plan": "trial"},
    )
    assert made.status_code == 201, made.text
    return admin


def _invite(client: TestClient, root: User, email: str, roles: list[str]) -> dict[str, object]:
    answer = client.post(
        f"{SD}/invitations", headers=f.basic(root.user_id), json={"email": email, "roles": roles}
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_an_invited_address_registers_through_the_mailed_link_and_joins_once(
    client: TestClient, root: User, smtp: SmtpSink
) -> None:
    made = _invite(client, root, "new.colleague@corp.local", ["Developer"])
    listed = client.get(f"{SD}/invitations", headers=f.basic(root.user_id)).json()
    assert [i["invitation_id"] for i in listed] == [made["invitation_id"]]
    mail = smtp.wait_for("new.colleague@corp.local", subject="invited")
    token = link_token(mail)
    joined = client.post(
        f"{API}/invitations/register",
        json={
            "token": token,
            "given_name": "New",
            "family_name": "Colleague",
            "password": f.DEFAULT_PASSWORD,
        },
    )
    assert joined.status_code == 201, joined.text
    user_id = joined.json()["user_id"]
    assert joined.json() == {"user_id": user_id, "subdomain": "acme", "roles": ["Developer"]}
    members = client.get(f"{SD}/members", headers=f.basic(root.user_id)).json()["items"]
    assert {m["user_id"]: m["roles"] for m in members}[user_id] == ["Developer"]
    me = client.get(f"{API}/me", headers=f.basic("new.colleague@corp.local")).json()
    assert (me["user_id"], me["status"]) == (user_id, "active")
    reused = client.post(
        f"{API}/invitations/register",
        json={"token": token, "given_name": "Again", "password": f.DEFAULT_PASSWORD},
    )
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_token"
    assert client.get(f"{SD}/invitations", headers=f.basic(root.user_id)).json() == []


def test_an_existing_person_signs_in_and_accepts_but_nobody_else_can(
    client: TestClient, ctx: AppContext, root: User, smtp: SmtpSink
) -> None:
    invited = f.person(ctx, email="known@example.test")
    other = f.person(ctx)
    _invite(client, root, "Known@example.test", ["Viewer", "Developer"])
    token = link_token(smtp.wait_for("Known@example.test", subject="invited"))
    register = client.post(
        f"{API}/invitations/register",
        json={"token": token, "given_name": "K", "password": f.DEFAULT_PASSWORD},
    )
    assert register.status_code == 409
    wrong = client.post(
        f"{API}/invitations/accept", headers=f.basic(other.user_id), json={"token": token}
    )
    assert wrong.status_code == 403
    anonymous = client.post(f"{API}/invitations/accept", json={"token": token})
    assert anonymous.status_code == 401
    accepted = client.post(
        f"{API}/invitations/accept", headers=f.basic(invited.user_id), json={"token": token}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["roles"] == ["Developer", "Viewer"]
    again = client.post(
        f"{API}/invitations/accept", headers=f.basic(invited.user_id), json={"token": token}
    )
    assert again.status_code == 400
    twice = client.post(
        f"{SD}/invitations",
        headers=f.basic(root.user_id),
        json={"email": "known@example.test", "roles": ["Viewer"]},
    )
    assert twice.status_code == 409  # already a member


def test_a_withdrawn_or_expired_invitation_link_stops_working(
    client: TestClient, ctx: AppContext, clock: FrozenClock, root: User, smtp: SmtpSink
) -> None:
    made = _invite(client, root, "gone@example.com", ["Viewer"])
    token = link_token(smtp.wait_for("gone@example.com", subject="invited"))
    duplicate = client.post(
        f"{SD}/invitations",
        headers=f.basic(root.user_id),
        json={"email": "GONE@example.com", "roles": ["Viewer"]},
    )
    assert duplicate.status_code == 409
    withdrawn = client.delete(
        f"{SD}/invitations/{made['invitation_id']}", headers=f.basic(root.user_id)
    )
    assert withdrawn.status_code == 204
    body = {"token": token, "given_name": "G", "password": f.DEFAULT_PASSWORD}
    assert client.post(f"{API}/invitations/register", json=body).status_code == 400
    assert (
        client.delete(
            f"{SD}/invitations/{made['invitation_id']}", headers=f.basic(root.user_id)
        ).status_code
        == 404
    )

    _invite(client, root, "late@example.com", ["Viewer"])
    late = link_token(smtp.wait_for("late@example.com", subject="invited"))
    clock.advance(timedelta(hours=ctx.settings.invitation_ttl_hours, seconds=1))
    expired = client.post(f"{API}/invitations/register", json={**body, "token": late})
    assert expired.status_code == 400 and "expired" in expired.json()["detail"]
    assert client.get(f"{SD}/invitations", headers=f.basic(root.user_id)).json() == []


def test_only_administrators_invite_and_bad_input_is_a_4xx(
    client: TestClient, ctx: AppContext, root: User
) -> None:
    viewer = f.person(ctx)
    client.post(
        f"{SD}/members",
        headers=f.basic(root.user_id),
        json={"user_id": viewer.user_id, "roles": ["Viewer"]},
    )
    refused = client.post(
        f"{SD}/invitations",
        headers=f.basic(viewer.user_id),
        json={"email": "a@example.com", "roles": ["Viewer"]},
    )
    assert refused.status_code == 403
    for body in (
        {"email": "no-at-sign", "roles": ["Viewer"]},
        {"email": "a@example.com", "roles": []},
        {"email": "a@example.com", "roles": ["Owner"]},
        {"email": "two words@example.com", "roles": ["Viewer"]},
    ):
        answer = client.post(f"{SD}/invitations", headers=f.basic(root.user_id), json=body)
        assert 400 <= answer.status_code < 500, (body, answer.status_code)
    assert client.post(f"{API}/invitations/register", json={"token": "x" * 300}).status_code == 422
