"""Console pages for people in-process: the users list with erasure, the password policies,
and one's sessions."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ostiary.app import create_app
from ostiary.context import AppContext
from tests import factories as f
from tests.test_console_tenancy import csrf_token, sign_in


def test_users_page_searches_and_erases_after_confirmation(
    client: TestClient, ctx: AppContext
) -> None:
    admin = f.admin(ctx)
    person = f.person(ctx, email="wanda@corp.local", given_name="Wanda", family_name="Wombat")
    sign_in(client, admin)
    listed = client.get("/console/users", params={"query": "wombat"})
    assert listed.status_code == 200
    assert person.user_id in listed.text and "wanda@corp.local" in listed.text
    assert admin.user_id not in listed.text.split('id="users"')[1]
    token = csrf_token(listed.text)
    unconfirmed = client.post(
        f"/console/users/{person.user_id}/erase", data={"csrf_token": token, "confirm": "no"}
    )
    assert unconfirmed.status_code == 400
    done = client.post(
        f"/console/users/{person.user_id}/erase",
        data={"csrf_token": token, "confirm": person.user_id},
    )
    assert done.status_code == 200 and done.url.path == "/console/users"
    assert "erased" in done.text and "wanda" not in done.text.lower()


def test_users_page_is_refused_to_people_who_administer_nothing(
    client: TestClient, ctx: AppContext
) -> None:
    sign_in(client, f.person(ctx))
    assert client.get("/console/users").status_code == 403
    assert client.get("/console/password-policies").status_code == 403


def test_password_policy_form_changes_the_policy_and_refuses_bad_values(
    client: TestClient, ctx: AppContext
) -> None:
    sign_in(client, f.admin(ctx))
    form = client.get("/console/password-policies")
    assert form.status_code == 200 and 'name="min_length"' in form.text
    token = csrf_token(form.text)
    saved = client.post(
        "/console/password-policies/person",
        data={"csrf_token": token, "min_length": "14", "history_count": "3", "expiry_days": ""},
    )
    assert saved.status_code == 200
    policy = client.get("/api/v1/password-policies").json()
    person = next(p for p in policy if p["kind"] == "person")
    assert (person["min_length"], person["history_count"], person["expiry_days"]) == (14, 3, None)
    assert person["check_common"] is False
    bad = client.post(
        "/console/password-policies/person",
        data={"csrf_token": token, "min_length": "four", "history_count": "3"},
    )
    assert bad.status_code == 400 and "whole number" in bad.text
    too_short = client.post(
        "/console/password-policies/person",
        data={"csrf_token": token, "min_length": "3", "history_count": "3"},
    )
    assert too_short.status_code == 400


def test_sessions_page_ends_another_browser(client: TestClient, ctx: AppContext) -> None:
    user = f.person(ctx)
    with TestClient(create_app(ctx.settings, ctx=ctx)) as other:
        sign_in(other, user)
        sign_in(client, user)
        listed = client.get("/console/account/sessions")
        assert listed.text.count("this one") == 1 and listed.text.count(">End<") == 1
        ended = client.post(
            "/console/account/sessions", data={"csrf_token": csrf_token(listed.text)}
        )
        assert ended.status_code == 200
        assert other.get("/api/v1/me").status_code == 401
        assert client.get("/api/v1/me").status_code == 200
