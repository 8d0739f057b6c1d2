"""Console pages for groups and invitations, in-process: platform administrators manage
groups, Administrators assign them role collections and invite by e-mail; the mailed link
registers and joins (issue 12)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ostiary.context import AppContext
from tests import factories as f
from tests.conftest import SmtpSink, link_token
from tests.test_console_tenancy import csrf_token, sign_in, subaccount_with


def test_a_group_gets_members_and_role_collections_in_the_console(
    client: TestClient, ctx: AppContext
) -> None:
    root = f.admin(ctx)
    bot, _ = f.technical_user(ctx, owner=root)
    subaccount_with(client, ctx)
    auth = f.basic(root.user_id)
    client.post(
        "/api/v1/subaccounts/acme-test/role-collections",
        headers=auth,
        json={"name": "Senders", "roles": ["ESBMessaging.send"]},
    )
    csrf = sign_in(client, root)
    made = client.post("/console/groups", data={"csrf_token": csrf, "name": "Integration Team"})
    assert made.status_code == 200 and "Integration Team" in made.text
    group_url = str(made.url.path)
    added = client.post(
        f"{group_url}/members", data={"csrf_token": csrf, "user_id": bot.user_id, "action": "add"}
    )
    assert bot.user_id in added.text and "was added to the group" in added.text
    group_id = group_url.rsplit("/", 1)[1]
    saved = client.post(
        f"/console/subaccounts/acme-test/security/authorizations/groups/{group_id}",
        data={"csrf_token": csrf, "role_collections": ["Senders"]},
    )
    assert saved.status_code == 200 and 'value="Senders" checked' in saved.text
    listing = client.get("/console/subaccounts/acme-test/security/authorizations/groups")
    assert "Integration Team" in listing.text and "Senders" in listing.text
    forged = client.post("/console/groups", data={"csrf_token": "forged", "name": "X"})
    assert forged.status_code == 403


def test_a_person_who_is_no_platform_administrator_cannot_create_groups(
    client: TestClient, ctx: AppContext
) -> None:
    person = f.person(ctx)
    csrf = sign_in(client, person)
    refused = client.post("/console/groups", data={"csrf_token": csrf, "name": "Mine"})
    assert refused.status_code == 403
    assert "New group" not in client.get("/console/groups").text


def test_an_invitation_sent_in_the_console_is_accepted_through_the_mailed_link(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    admin = f.person(ctx)
    subaccount_with(client, ctx, **{admin.user_id: "Administrator"})
    csrf = sign_in(client, admin)
    sent = client.post(
        "/console/subaccounts/acme-test/invitations",
        data={"csrf_token": csrf, "email": "ops@corp.local", "roles": ["Viewer"]},
    )
    assert sent.status_code == 200 and "ops@corp.local" in sent.text
    token = link_token(smtp.wait_for("ops@corp.local", subject="invited"))
    client.cookies.clear()
    form = client.get("/console/invitations/accept", params={"token": token})
    assert form.status_code == 200 and "Join Acme Test" in form.text
    joined = client.post(
        "/console/invitations/accept",
        data={
            "csrf_token": csrf_token(form.text),
            "token": token,
            "given_name": "Ops",
            "family_name": "Person",
            "password": f.DEFAULT_PASSWORD,
        },
    )
    assert joined.status_code == 200 and "now a member" in joined.text
    again = client.get("/console/invitations/accept", params={"token": token})
    assert again.status_code == 400
    members = client.get("/api/v1/subaccounts/acme-test/members", headers=f.basic(admin.user_id))
    assert "ops@corp.local" in members.text
