"""Registration and activation through the API: no enumeration (contract C3), single-use links."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.identity.models import User, UserStatus
from tests.conftest import SmtpSink, body_of, link_token
from tests.factories import basic, person

PASSWORD = "correct horse battery staple"


def register(client: TestClient, email: str, password: str = PASSWORD) -> Response:
    """POST a registration for ``email``."""
    return client.post(
        "/api/v1/registrations",
        json={"email": email, "given_name": "Grace", "family_name": "Hopper", "password": password},
    )


def users_with_email(ctx: AppContext, email: str) -> int:
    """How many users carry this e-mail (compared case-insensitively)."""
    with ctx.sessions() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(User).where(User.email_normalized == email.lower())
            )
            or 0
        )


def assert_invalid_token(answer: Response) -> None:
    """A clear 4xx that names the problem, in the API's error shape."""
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_token"
    assert isinstance(body["detail"], str) and body["detail"]


def test_taken_email_answers_exactly_like_a_fresh_registration(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    person(ctx, email="owner@example.com")
    fresh = register(client, "newcomer@example.com")
    taken = register(client, "Owner@Example.com")
    assert fresh.status_code == taken.status_code == 202
    assert fresh.content == taken.content
    assert fresh.headers["content-type"] == taken.headers["content-type"]
    assert fresh.headers["content-length"] == taken.headers["content-length"]


def test_taken_email_mails_the_owner_a_notice_about_technical_users_and_creates_no_user(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    person(ctx, email="owner@example.com", given_name="Olga")
    assert register(client, "OWNER@example.com").status_code == 202
    notice = smtp.wait_for("owner@example.com", subject="register")
    text = body_of(notice)
    assert "Olga" in text
    assert "technical user" in text
    assert "token=" not in text  # a notice, not an activation link
    assert len(smtp.to("owner@example.com")) == 1
    assert users_with_email(ctx, "owner@example.com") == 1


def test_registration_creates_a_pending_user_who_cannot_sign_in_before_activation(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    assert register(client, "pending@example.com").status_code == 202
    smtp.wait_for("pending@example.com", subject="Activate")
    assert users_with_email(ctx, "pending@example.com") == 1
    answer = client.get("/api/v1/me", headers=basic("pending@example.com", PASSWORD))
    assert answer.status_code == 401


def test_activation_link_works_once_and_reuse_gets_invalid_token(
    client: TestClient, smtp: SmtpSink
) -> None:
    register(client, "once@example.com")
    token = link_token(smtp.wait_for("once@example.com", subject="Activate"))
    first = client.post("/api/v1/activations", json={"token": token})
    assert first.status_code == 200
    again = client.post("/api/v1/activations", json={"token": token})
    assert_invalid_token(again)
    assert "used" in again.json()["detail"]
    me = client.get("/api/v1/me", headers=basic("once@example.com", PASSWORD))
    assert me.status_code == 200
    assert me.json()["user_id"] == first.json()["user_id"]


def test_forged_activation_token_gets_invalid_token(client: TestClient, smtp: SmtpSink) -> None:
    register(client, "forged@example.com")
    real = link_token(smtp.wait_for("forged@example.com", subject="Activate"))
    for forged in ("A" * 43, real[:-1] + ("B" if real[-1] != "B" else "C"), real + "x"):
        assert_invalid_token(client.post("/api/v1/activations", json={"token": forged}))
    # The forged attempts did not burn the real link.
    assert client.post("/api/v1/activations", json={"token": real}).status_code == 200


def test_password_reset_token_is_not_an_activation_token(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    person(ctx, email="active@example.com")
    client.post("/api/v1/password-resets", json={"email": "active@example.com"})
    token = link_token(smtp.wait_for("active@example.com", subject="Reset"))
    assert_invalid_token(client.post("/api/v1/activations", json={"token": token}))


def test_expired_activation_token_gets_invalid_token_and_the_user_stays_pending(
    client: TestClient, ctx: AppContext, clock: FrozenClock, smtp: SmtpSink
) -> None:
    register(client, "late@example.com")
    token = link_token(smtp.wait_for("late@example.com", subject="Activate"))
    clock.advance(timedelta(hours=ctx.settings.activation_ttl_hours, seconds=1))
    answer = client.post("/api/v1/activations", json={"token": token})
    assert_invalid_token(answer)
    assert "expired" in answer.json()["detail"]
    with ctx.sessions() as session:
        user = session.scalar(select(User).where(User.email_normalized == "late@example.com"))
        assert user is not None
        assert user.status is UserStatus.pending


def test_activation_token_still_works_just_before_it_expires(
    client: TestClient, ctx: AppContext, clock: FrozenClock, smtp: SmtpSink
) -> None:
    register(client, "intime@example.com")
    token = link_token(smtp.wait_for("intime@example.com", subject="Activate"))
    clock.advance(timedelta(hours=ctx.settings.activation_ttl_hours) - timedelta(minutes=1))
    assert client.post("/api/v1/activations", json={"token": token}).status_code == 200
