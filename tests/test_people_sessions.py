"""One's own console sessions (issue 12 item 5): list, end one, sign out everywhere, and a
password change ends the others."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from ostiary.app import create_app
from ostiary.audit import service as audit
from ostiary.audit.actions import AuditAction
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.identity.models import User
from tests import factories as f
from tests.test_console_tenancy import sign_in

NEW_PASSWORD = "a-brand-new passphrase 42"


@pytest.fixture
def browsers(ctx: AppContext) -> Iterator[list[TestClient]]:
    """Three browsers (cookie jars) on one app."""
    application = create_app(ctx.settings, ctx=ctx)
    clients = [
        TestClient(application, raise_server_exceptions=False, headers={"User-Agent": f"B{n}"})
        for n in range(3)
    ]
    for c in clients:
        c.__enter__()
    yield clients
    for c in clients:
        c.__exit__(None, None, None)


def signed_in(browsers: list[TestClient], user: User) -> list[str]:
    """Sign ``user`` in on every browser; returns each browser's CSRF token."""
    return [sign_in(b, user) for b in browsers]


def mine(browser: TestClient) -> list[dict[str, object]]:
    answer = browser.get("/api/v1/me/sessions")
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, object]] = answer.json()
    return listed


def test_sessions_list_shows_each_browser_and_marks_the_current_one(
    browsers: list[TestClient], ctx: AppContext, clock: FrozenClock
) -> None:
    user = f.person(ctx)
    signed_in(browsers, user)
    clock.advance(timedelta(minutes=5))
    listed = mine(browsers[1])
    assert len(listed) == 3
    assert {s["user_agent"] for s in listed} == {"B0", "B1", "B2"}
    current = [s for s in listed if s["current"]]
    assert len(current) == 1 and current[0]["user_agent"] == "B1"
    assert current[0]["last_seen_at"] != current[0]["created_at"]  # touched by this request
    assert all(s["address"] for s in listed)
    # Another person sees none of them.
    other = f.person(ctx)
    with TestClient(browsers[0].app) as fresh:
        assert fresh.get("/api/v1/me/sessions", headers=f.basic(other.user_id)).json() == []


def test_ending_one_session_signs_out_that_browser_only(
    browsers: list[TestClient], ctx: AppContext
) -> None:
    user = f.person(ctx)
    tokens = signed_in(browsers, user)
    target = next(s for s in mine(browsers[0]) if s["user_agent"] == "B2")
    ended = browsers[0].delete(
        f"/api/v1/me/sessions/{target['session_id']}", headers={"X-CSRF-Token": tokens[0]}
    )
    assert ended.status_code == 204
    assert browsers[2].get("/api/v1/me").status_code == 401
    assert browsers[1].get("/api/v1/me").status_code == 200
    other = f.person(ctx)
    assert (
        browsers[1]
        .delete(f"/api/v1/me/sessions/{target['session_id']}", headers=f.basic(other.user_id))
        .status_code
        == 404
    )


def test_sign_out_everywhere_ends_every_session(
    browsers: list[TestClient], ctx: AppContext
) -> None:
    user = f.person(ctx)
    tokens = signed_in(browsers, user)
    kept = browsers[0].delete(
        "/api/v1/me/sessions", params={"keep_current": "true"}, headers={"X-CSRF-Token": tokens[0]}
    )
    assert kept.json() == {"ended": 2}
    assert [b.get("/api/v1/me").status_code for b in browsers] == [200, 401, 401]
    everywhere = browsers[0].delete("/api/v1/me/sessions", headers={"X-CSRF-Token": tokens[0]})
    assert everywhere.json() == {"ended": 1}
    assert browsers[0].get("/api/v1/me").status_code == 401
    with ctx.read_sessions() as session:
        ended = [
            e.detail["after"]["ended"]
            for e in audit.iter_events(session)
            if e.action == AuditAction.sessions_ended and e.target == user.user_id
        ]
    assert ended == [2, 1]


def test_a_password_change_through_the_api_ends_the_other_sessions(
    browsers: list[TestClient], ctx: AppContext
) -> None:
    user = f.person(ctx)
    tokens = signed_in(browsers, user)
    changed = browsers[0].post(
        "/api/v1/me/password",
        headers={"X-CSRF-Token": tokens[0]},
        json={"current_password": f.DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204, changed.text
    assert [b.get("/api/v1/me").status_code for b in browsers] == [200, 401, 401]


def test_a_password_change_with_basic_ends_every_console_session(
    browsers: list[TestClient], ctx: AppContext
) -> None:
    user = f.person(ctx)
    signed_in(browsers[:2], user)
    changed = browsers[2].post(
        "/api/v1/me/password",
        headers=f.basic(user.user_id),
        json={"current_password": f.DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204, changed.text
    assert [b.get("/api/v1/me").status_code for b in browsers[:2]] == [401, 401]
