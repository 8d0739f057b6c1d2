"""The sub-account console pages in-process: member roles guard every form, trial plans show
Members and Authorizations (C2), technical user passwords appear once (C3, C5)."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.identity.models import User
from tests import factories as f

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'<code id="secret" class="secret">([^<]+)</code>')


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a console page."""
    found = CSRF.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def sign_in(client: TestClient, user: User, password: str = f.DEFAULT_PASSWORD) -> str:
    """Sign in through the console form; returns the session's CSRF token."""
    form = client.get("/console/signin")
    answer = client.post(
        "/console/signin",
        data={
            "csrf_token": csrf_token(form.text),
            "identifier": user.user_id,
            "password": password,
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.url.path == "/console/"  # the home
    return csrf_token(answer.text)


def subaccount_with(
    client: TestClient, ctx: AppContext, *, plan: str = "trial", **members: str
) -> dict[str, str]:
    """Sub-account ``acme-test`` made through the API, with ``user_id=role`` members."""
    auth = f.basic(f.admin(ctx).user_id)
    made = client.post(
        "/api/v1/subaccounts",
        headers=auth,
        json={"subdomain": "acme-test", "display_name": "Acme Test", "plan": plan},
    )
    assert made.status_code == 201, made.text
    for user_id, role in members.items():
        added = client.post(
            "/api/v1/subaccounts/acme-test/members",
            headers=auth,
            json={"user_id": user_id, "roles": [role]},
        )
        assert added.status_code == 201, added.text
    return auth


def test_signed_out_visitor_is_sent_to_sign_in(client: TestClient, ctx: AppContext) -> None:
    for path in ("/console/subaccounts", "/console/technical-users"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/signin"


def test_signed_in_with_an_expired_password_is_sent_to_change_it(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    user = f.person(ctx)
    clock.advance(timedelta(days=91))
    form = client.get("/console/signin")
    client.post(
        "/console/signin",
        data={
            "csrf_token": csrf_token(form.text),
            "identifier": user.user_id,
            "password": f.DEFAULT_PASSWORD,
        },
    )
    for path in ("/console/subaccounts", "/console/technical-users"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/account/password")


def test_viewer_cannot_add_a_member_and_gets_a_403_page(
    client: TestClient, ctx: AppContext
) -> None:
    viewer, other = f.person(ctx), f.person(ctx)
    auth = subaccount_with(client, ctx, **{viewer.user_id: "Viewer"})
    token = sign_in(client, viewer)

    page = client.get("/console/subaccounts/acme-test/members")
    assert page.status_code == 200
    assert viewer.user_id in page.text
    assert "Add member" not in page.text  # no form for what the role may not do

    refused = client.post(
        "/console/subaccounts/acme-test/members",
        data={"csrf_token": token, "user_id": other.user_id, "roles": ["Viewer"]},
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert "Access denied" in refused.text
    assert "subaccount:members:write" in refused.text

    members = client.get("/api/v1/subaccounts/acme-test/members", headers=auth).json()["items"]
    assert other.user_id not in {m["user_id"] for m in members}
    denials = client.get(
        "/api/v1/audit-events", headers=auth, params={"action": "access:denied"}
    ).json()["items"]
    assert denials and denials[0]["actor"] == viewer.user_id


def test_trial_subaccount_overview_links_to_members_and_authorizations(
    client: TestClient, ctx: AppContext
) -> None:
    boss = f.admin(ctx)
    token = sign_in(client, boss)
    created = client.post(
        "/console/subaccounts",
        data={
            "csrf_token": token,
            "subdomain": "acme-trial",
            "display_name": "Acme Trial",
            "plan": "trial",
        },
    )
    assert created.status_code == 200, created.text
    assert created.url.path == "/console/subaccounts/acme-trial"
    assert "badge-trial" in created.text
    assert 'id="limits"' in created.text

    for link in ("/members", "/security/authorizations"):
        href = f'href="/console/subaccounts/acme-trial{link}"'
        assert href in created.text, f"overview has no one-click link to {link}"
        page = client.get(f"/console/subaccounts/acme-trial{link}")
        assert page.status_code == 200, page.text
    members = client.get("/console/subaccounts/acme-trial/members")
    assert "Add member" in members.text and boss.user_id in members.text


def test_technical_user_password_is_shown_exactly_once(client: TestClient, ctx: AppContext) -> None:
    owner = f.person(ctx)
    token = sign_in(client, owner)

    created = client.post(
        "/console/technical-users",
        data={"csrf_token": token, "display_name": "ERP sender", "description": "order export"},
    )
    assert created.status_code == 200, created.text
    assert "will not be shown again" in created.text
    assert created.headers["cache-control"] == "no-store"
    found = SECRET.search(created.text)
    assert found, "the new password is not on the page"
    secret = found.group(1)
    issued = re.search(r'id="issued-user-id">(T\d+)<', created.text)
    assert issued, "the new user ID is not on the page"
    user_id = issued.group(1)
    assert secret not in str(created.headers)

    me = client.get("/api/v1/me", headers=f.basic(user_id, secret))
    assert me.status_code == 200, me.text
    for path in ("/console/technical-users", f"/console/technical-users/{user_id}"):
        page = client.get(path)
        assert page.status_code == 200
        assert user_id in page.text
        assert secret not in page.text

    reset = client.post(f"/console/technical-users/{user_id}/password", data={"csrf_token": token})
    assert reset.status_code == 200, reset.text
    renewed = SECRET.search(reset.text)
    assert renewed and renewed.group(1) != secret
    assert client.get("/api/v1/me", headers=f.basic(user_id, secret)).status_code == 401
    assert secret not in client.get(f"/console/technical-users/{user_id}").text
    assert renewed.group(1) not in client.get(f"/console/technical-users/{user_id}").text
