"""Password expiry (contract C1), password policies, changing and resetting passwords."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from httpx import Response

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.identity.models import UserStatus
from tests.conftest import SmtpSink, link_token
from tests.factories import DEFAULT_PASSWORD, basic, person, technical_user

NEW_PASSWORD = "a fresh and rather long passphrase"
THIRD_PASSWORD = "yet another long passphrase 42"


def change(client: TestClient, identifier: str, current: str, new: str) -> Response:
    """POST /api/v1/me/password as ``identifier``."""
    return client.post(
        "/api/v1/me/password",
        json={"current_password": current, "new_password": new},
        headers=basic(identifier, current),
    )


def register(client: TestClient, email: str, password: str) -> Response:
    """POST a registration."""
    return client.post(
        "/api/v1/registrations",
        json={"email": email, "given_name": "Ann", "family_name": "Lee", "password": password},
    )


def assert_policy_refusal(answer: Response) -> None:
    """400 ``password_policy`` with a reason in ``detail``."""
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "password_policy"
    assert answer.json()["detail"]


# ---------------------------------------------------------------- expiry


def test_person_with_expired_password_gets_403_password_expired(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    user = person(ctx)
    clock.advance(timedelta(days=89))
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 200
    clock.advance(timedelta(days=1, seconds=1))
    answer = client.get("/api/v1/me", headers=basic(user.user_id))
    assert answer.status_code == 403
    assert answer.json()["error"] == "password_expired"
    assert "/api/v1/me/password" in answer.json()["detail"]


def test_expired_password_with_wrong_password_still_gets_the_generic_401(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    user = person(ctx)
    clock.advance(timedelta(days=91))
    answer = client.get("/api/v1/me", headers=basic(user.user_id, "wrong-password-here"))
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"


def test_expired_password_can_be_changed_and_then_the_api_works(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    user = person(ctx)
    clock.advance(timedelta(days=91))
    changed = change(client, user.user_id, DEFAULT_PASSWORD, NEW_PASSWORD)
    assert changed.status_code == 204, changed.text
    me = client.get("/api/v1/me", headers=basic(user.user_id, NEW_PASSWORD))
    assert me.status_code == 200
    expires = datetime.fromisoformat(me.json()["password_expires_at"])
    assert expires == clock.now() + timedelta(days=90)
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 401


def test_technical_user_password_never_expires(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    owner = person(ctx)
    machine, secret = technical_user(ctx, owner=owner)
    clock.advance(timedelta(days=5 * 365))
    me = client.get("/api/v1/me", headers=basic(machine.user_id, secret))
    assert me.status_code == 200, me.text
    assert me.json()["kind"] == "technical"
    assert me.json()["password_expires_at"] is None
    # The owner, a person, has long expired meanwhile.
    assert client.get("/api/v1/me", headers=basic(owner.user_id)).status_code == 403


def test_technical_user_with_wrong_secret_is_refused(client: TestClient, ctx: AppContext) -> None:
    machine, secret = technical_user(ctx, owner=person(ctx))
    wrong = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    assert client.get("/api/v1/me", headers=basic(machine.user_id, wrong)).status_code == 401


# ---------------------------------------------------------------- policy rules


def test_registration_with_a_short_or_common_password_is_refused_and_sends_nothing(
    client: TestClient, smtp: SmtpSink
) -> None:
    for password, reason in [
        ("short1!", "at least"),
        ("password1234", "common"),
        ("Qwertyuiop123", "common"),
    ]:
        answer = register(client, "weak@example.com", password)
        assert_policy_refusal(answer)
        assert reason in answer.json()["detail"]
    assert register(client, "strong@example.com", NEW_PASSWORD).status_code == 202
    smtp.wait_for("strong@example.com", subject="Activate")
    assert smtp.to("weak@example.com") == []


def test_change_to_a_short_or_common_password_is_refused(
    client: TestClient, ctx: AppContext
) -> None:
    user = person(ctx)
    for new in ("short1!", "password1234", "iloveyou123"):
        assert_policy_refusal(change(client, user.user_id, DEFAULT_PASSWORD, new))
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 200


def test_change_back_to_an_earlier_password_is_refused(client: TestClient, ctx: AppContext) -> None:
    user = person(ctx)
    assert change(client, user.user_id, DEFAULT_PASSWORD, NEW_PASSWORD).status_code == 204
    assert change(client, user.user_id, NEW_PASSWORD, THIRD_PASSWORD).status_code == 204
    for earlier in (DEFAULT_PASSWORD, NEW_PASSWORD):
        assert_policy_refusal(change(client, user.user_id, THIRD_PASSWORD, earlier))
    assert client.get("/api/v1/me", headers=basic(user.user_id, THIRD_PASSWORD)).status_code == 200


def test_change_with_a_wrong_current_password_is_refused(
    client: TestClient, ctx: AppContext
) -> None:
    user = person(ctx)
    answer = client.post(
        "/api/v1/me/password",
        json={"current_password": "not the current one", "new_password": NEW_PASSWORD},
        headers=basic(user.user_id),
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert client.get("/api/v1/me", headers=basic(user.user_id, NEW_PASSWORD)).status_code == 401


# ---------------------------------------------------------------- policy administration


def test_platform_admin_reads_the_default_policies(client: TestClient, ctx: AppContext) -> None:
    admin = person(ctx, platform_admin=True)
    answer = client.get("/api/v1/password-policies", headers=basic(admin.user_id))
    assert answer.status_code == 200
    by_kind = {p["kind"]: p for p in answer.json()}
    assert by_kind["person"]["expiry_days"] == 90
    assert by_kind["person"]["check_common"] is True
    assert by_kind["person"]["history_count"] > 0
    assert by_kind["technical"]["expiry_days"] is None


def test_only_platform_admins_may_read_or_change_policies(
    client: TestClient, ctx: AppContext
) -> None:
    admin = person(ctx, platform_admin=True)
    user = person(ctx)
    listing = client.get("/api/v1/password-policies", headers=basic(user.user_id))
    assert listing.status_code == 403
    assert listing.json()["error"] == "forbidden"
    patched = client.patch(
        "/api/v1/password-policies/person", json={"expiry_days": None}, headers=basic(user.user_id)
    )
    assert patched.status_code == 403
    assert client.get("/api/v1/password-policies").status_code == 401
    assert (
        client.patch("/api/v1/password-policies/person", json={"expiry_days": None}).status_code
        == 401
    )
    policies = client.get("/api/v1/password-policies", headers=basic(admin.user_id)).json()
    assert {p["kind"]: p["expiry_days"] for p in policies}["person"] == 90


def test_expiry_days_null_switches_expiry_off(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    admin = person(ctx, platform_admin=True)
    user = person(ctx)
    answer = client.patch(
        "/api/v1/password-policies/person", json={"expiry_days": None}, headers=basic(admin.user_id)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["expiry_days"] is None
    clock.advance(timedelta(days=400))
    me = client.get("/api/v1/me", headers=basic(user.user_id))
    assert me.status_code == 200
    assert me.json()["password_expires_at"] is None


def test_patch_changes_only_the_fields_sent(client: TestClient, ctx: AppContext) -> None:
    admin = person(ctx, platform_admin=True)
    answer = client.patch(
        "/api/v1/password-policies/person", json={"min_length": 20}, headers=basic(admin.user_id)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["min_length"] == 20
    assert answer.json()["expiry_days"] == 90
    too_short = register(client, "seventeen@example.com", "seventeen chars!!")
    assert_policy_refusal(too_short)
    assert "20" in too_short.json()["detail"]


def test_shorter_expiry_applies_to_existing_passwords(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    admin = person(ctx, platform_admin=True)
    user = person(ctx)
    client.patch(
        "/api/v1/password-policies/person", json={"expiry_days": 7}, headers=basic(admin.user_id)
    )
    clock.advance(timedelta(days=8))
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 403


def test_out_of_range_policy_values_are_refused(client: TestClient, ctx: AppContext) -> None:
    admin = person(ctx, platform_admin=True)
    for body in (
        {"min_length": 3},
        {"min_length": 10_000},
        {"expiry_days": 0},
        {"history_count": -1},
        {"check_common": "maybe"},
    ):
        answer = client.patch(
            "/api/v1/password-policies/person", json=body, headers=basic(admin.user_id)
        )
        assert 400 <= answer.status_code < 500, body
        assert answer.json()["error"] == "invalid_request"
    policies = client.get("/api/v1/password-policies", headers=basic(admin.user_id)).json()
    person_policy = {p["kind"]: p for p in policies}["person"]
    assert (person_policy["min_length"], person_policy["expiry_days"]) == (10, 90)


def test_unknown_policy_kind_is_a_4xx(client: TestClient, ctx: AppContext) -> None:
    admin = person(ctx, platform_admin=True)
    answer = client.patch(
        "/api/v1/password-policies/robot", json={"min_length": 12}, headers=basic(admin.user_id)
    )
    assert 400 <= answer.status_code < 500
    assert set(answer.json()) == {"error", "detail"}


# ---------------------------------------------------------------- reset by e-mail


def request_reset(client: TestClient, email: str) -> Response:
    """POST /api/v1/password-resets."""
    return client.post("/api/v1/password-resets", json={"email": email})


def test_password_reset_by_mail_replaces_the_old_password(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    user = person(ctx, email="forgetful@example.com")
    assert request_reset(client, "Forgetful@Example.com").status_code == 202
    token = link_token(smtp.wait_for("forgetful@example.com", subject="Reset"))
    confirmed = client.post(
        "/api/v1/password-resets/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204, confirmed.text
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 401
    assert client.get("/api/v1/me", headers=basic(user.user_id, NEW_PASSWORD)).status_code == 200
    reused = client.post(
        "/api/v1/password-resets/confirm", json={"token": token, "new_password": THIRD_PASSWORD}
    )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_token"
    assert client.get("/api/v1/me", headers=basic(user.user_id, NEW_PASSWORD)).status_code == 200


def test_password_reset_for_an_unknown_email_answers_identically_and_sends_nothing(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    person(ctx, email="known@example.com")
    pending = person(ctx, email="pending@example.com", status=UserStatus.pending)
    unknown = request_reset(client, "unknown@example.com")
    inactive = request_reset(client, pending.email or "")
    known = request_reset(client, "known@example.com")
    assert unknown.status_code == known.status_code == inactive.status_code == 202
    assert unknown.content == known.content == inactive.content
    # Mails go out in order, so once the known address has its mail, the others had their turn.
    smtp.wait_for("known@example.com", subject="Reset")
    assert smtp.to("unknown@example.com") == []
    assert smtp.to("pending@example.com") == []


def test_expired_reset_link_gets_invalid_token(
    client: TestClient, ctx: AppContext, clock: FrozenClock, smtp: SmtpSink
) -> None:
    user = person(ctx, email="slow@example.com")
    request_reset(client, "slow@example.com")
    token = link_token(smtp.wait_for("slow@example.com", subject="Reset"))
    clock.advance(timedelta(minutes=ctx.settings.reset_ttl_minutes, seconds=1))
    answer = client.post(
        "/api/v1/password-resets/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_token"
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 200


def test_reset_to_the_current_or_a_weak_password_is_refused_and_keeps_the_link(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    user = person(ctx, email="reuser@example.com")
    request_reset(client, "reuser@example.com")
    token = link_token(smtp.wait_for("reuser@example.com", subject="Reset"))
    for refused in (DEFAULT_PASSWORD, "password1234"):
        answer = client.post(
            "/api/v1/password-resets/confirm", json={"token": token, "new_password": refused}
        )
        assert_policy_refusal(answer)
    # A refused password does not burn the link.
    answer = client.post(
        "/api/v1/password-resets/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert answer.status_code == 204
    assert client.get("/api/v1/me", headers=basic(user.user_id, NEW_PASSWORD)).status_code == 200


def test_reset_also_lifts_an_expired_password(
    client: TestClient, ctx: AppContext, clock: FrozenClock, smtp: SmtpSink
) -> None:
    user = person(ctx, email="expired@example.com")
    clock.advance(timedelta(days=120))
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 403
    request_reset(client, "expired@example.com")
    token = link_token(smtp.wait_for("expired@example.com", subject="Reset"))
    client.post(
        "/api/v1/password-resets/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert client.get("/api/v1/me", headers=basic(user.user_id, NEW_PASSWORD)).status_code == 200
