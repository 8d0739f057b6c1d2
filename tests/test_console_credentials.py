"""The technical-user page's credentials table and rotation form, in-process: bad input is
refused with a reason and changes nothing, a stranger gets 403, and the CSRF token counts."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from ostiary.context import AppContext
from ostiary.credentials.models import TechnicalUserSecret
from ostiary.db import transaction
from tests import factories as f
from tests.test_console_tenancy import csrf_token, sign_in


def secrets(ctx: AppContext) -> list[str]:
    with transaction(ctx.read_sessions) as s:
        return list(s.scalars(select(TechnicalUserSecret.secret_id)))


def test_rotation_form_refuses_bad_input_and_shows_the_new_secret_once(
    client: TestClient, ctx: AppContext
) -> None:
    owner = f.person(ctx)
    bot, old = f.technical_user(ctx, owner=owner)
    token = sign_in(client, owner)
    url = f"/console/technical-users/{bot.user_id}/secrets"
    before = secrets(ctx)
    for overlap, valid, reason in (
        ("soon", "", "whole number of days"),
        ("367", "", "366 days"),
        ("0", "99999", "days ahead"),
    ):
        answer = client.post(
            url, data={"csrf_token": token, "overlap_days": overlap, "valid_days": valid}
        )
        assert answer.status_code == 400, (overlap, valid)
        assert reason in answer.text, (overlap, valid)
    assert client.post(url, data={"csrf_token": "wrong", "overlap_days": "1"}).status_code == 403
    assert secrets(ctx) == before
    page = client.get(f"/console/technical-users/{bot.user_id}")
    assert before[0] in page.text and "no expiry" in page.text
    made = client.post(
        url, data={"csrf_token": csrf_token(page.text), "overlap_days": "2", "valid_days": "30"}
    )
    assert made.status_code == 200, made.text
    assert "Previous secrets work until" in made.text
    assert client.get("/api/v1/me", headers=f.basic(bot.user_id, old)).status_code == 200
    ends = (ctx.clock.now() + timedelta(days=2)).strftime("%Y-%m-%d %H:%M UTC")
    again = client.get(f"/console/technical-users/{bot.user_id}").text
    assert ends in again and len(secrets(ctx)) == 2
    stranger = f.person(ctx)
    client.cookies.clear()
    sign_in(client, stranger)
    assert client.get(f"/console/technical-users/{bot.user_id}").status_code == 403
