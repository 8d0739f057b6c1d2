"""Sign-in with HTTP Basic: one answer for every failure, throttling, rehash-on-verify."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import update

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.db import transaction
from ostiary.identity.models import User, UserStatus
from ostiary.settings import Settings
from tests.factories import DEFAULT_PASSWORD, basic, person

WRONG = "not-the-password-at-all"


def answer_shape(answer: Response) -> tuple[int, bytes, str | None, str | None, str | None]:
    """Everything a caller could tell two refusals apart by."""
    return (
        answer.status_code,
        answer.content,
        answer.headers.get("www-authenticate"),
        answer.headers.get("content-type"),
        answer.headers.get("retry-after"),
    )


def test_active_person_authenticates_with_user_id_or_email_in_any_case(
    client: TestClient, ctx: AppContext
) -> None:
    user = person(ctx, email="Mixed.Case@Example.com")
    for identifier in (user.user_id, user.user_id.lower(), "mixed.case@example.com"):
        answer = client.get("/api/v1/me", headers=basic(identifier))
        assert answer.status_code == 200, (identifier, answer.text)
        assert answer.json()["user_id"] == user.user_id


def test_unknown_user_and_wrong_password_get_identical_answers(
    client: TestClient, ctx: AppContext
) -> None:
    user = person(ctx, email="known@example.com")
    wrong_by_email = client.get("/api/v1/me", headers=basic("known@example.com", WRONG))
    wrong_by_id = client.get("/api/v1/me", headers=basic(user.user_id, WRONG))
    unknown_email = client.get("/api/v1/me", headers=basic("nobody@example.com", WRONG))
    unknown_id = client.get("/api/v1/me", headers=basic("P999999", WRONG))
    no_credentials = client.get("/api/v1/me")
    assert wrong_by_email.status_code == 401
    assert wrong_by_email.headers["www-authenticate"].startswith("Basic ")
    assert wrong_by_email.json()["error"] == "unauthorized"
    expected = answer_shape(wrong_by_email)
    for other in (wrong_by_id, unknown_email, unknown_id, no_credentials):
        assert answer_shape(other) == expected


@pytest.mark.parametrize("status", [UserStatus.pending, UserStatus.locked, UserStatus.disabled])
def test_inactive_users_cannot_authenticate_and_look_like_unknown_users(
    client: TestClient, ctx: AppContext, status: UserStatus
) -> None:
    user = person(ctx, status=status)
    unknown = client.get("/api/v1/me", headers=basic("nobody@example.com"))
    for identifier in (user.user_id, user.email or ""):
        refused = client.get("/api/v1/me", headers=basic(identifier))  # the right password
        assert refused.status_code == 401
        assert answer_shape(refused) == answer_shape(unknown)


def test_locking_an_active_user_stops_their_next_request(
    client: TestClient, ctx: AppContext
) -> None:
    user = person(ctx)
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 200
    with transaction(ctx.sessions) as session:
        session.execute(
            update(User).where(User.id == user.id).values(status=UserStatus.locked.value)
        )
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 401


def _fail_until_throttled(client: TestClient, identifier: str, limit: int) -> None:
    for attempt in range(limit):
        answer = client.get("/api/v1/me", headers=basic(identifier, f"{WRONG}-{attempt}"))
        assert answer.status_code == 401, f"attempt {attempt + 1} of {limit}: {answer.text}"


def test_too_many_failures_throttle_the_account_even_for_the_right_password(
    client: TestClient, ctx: AppContext
) -> None:
    person(ctx, email="target@example.com")
    limit = ctx.settings.signin_failures_per_account
    _fail_until_throttled(client, "target@example.com", limit)
    throttled = client.get("/api/v1/me", headers=basic("target@example.com"))
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "too_many_requests"
    assert throttled.headers["retry-after"] == str(ctx.settings.signin_window_seconds)
    # The throttle is per account: another user (and other names) still get in.
    other = person(ctx)
    assert client.get("/api/v1/me", headers=basic(other.user_id)).status_code == 200


def test_unknown_accounts_are_throttled_exactly_like_existing_ones(
    client: TestClient, ctx: AppContext
) -> None:
    person(ctx, email="exists@example.com")
    limit = ctx.settings.signin_failures_per_account
    _fail_until_throttled(client, "exists@example.com", limit)
    _fail_until_throttled(client, "ghost@example.com", limit)
    existing = client.get("/api/v1/me", headers=basic("exists@example.com"))
    ghost = client.get("/api/v1/me", headers=basic("ghost@example.com"))
    assert existing.status_code == 429
    assert answer_shape(existing) == answer_shape(ghost)


@pytest.fixture
def tight_client(settings: Settings, clock: FrozenClock) -> Iterator[tuple[AppContext, TestClient]]:
    """An app whose per-address limit is small, so spraying it stays quick."""
    tight = settings.model_copy(update={"signin_failures_per_address": 5})
    context = build_context(tight, clock=clock)
    with TestClient(create_app(tight, ctx=context), raise_server_exceptions=False) as c:
        yield context, c
    context.engine.dispose()


def test_failures_spread_over_many_names_throttle_the_client_address(
    tight_client: tuple[AppContext, TestClient],
) -> None:
    ctx, client = tight_client
    user = person(ctx)
    per_address = ctx.settings.signin_failures_per_address
    assert per_address < ctx.settings.signin_failures_per_account
    for n in range(per_address):
        answer = client.get("/api/v1/me", headers=basic(f"spray{n}@example.com", WRONG))
        assert answer.status_code == 401
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 429


def test_throttled_account_opens_again_after_the_window(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    user = person(ctx)
    _fail_until_throttled(client, user.user_id, ctx.settings.signin_failures_per_account)
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 429
    # The throttle reads the injected clock: move it past the window (no sleeping).
    clock.advance(timedelta(seconds=ctx.settings.signin_window_seconds))
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 200


def test_hash_made_with_other_argon2_parameters_is_rehashed_after_sign_in(
    client: TestClient, ctx: AppContext
) -> None:
    user = person(ctx)
    weaker = Argon2Hasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID)
    old_hash = weaker.hash(DEFAULT_PASSWORD)
    with transaction(ctx.sessions) as session:
        session.execute(update(User).where(User.id == user.id).values(password_hash=old_hash))
    assert ctx.passwords.needs_rehash(old_hash)

    assert client.get("/api/v1/me", headers=basic(user.user_id, WRONG)).status_code == 401
    with ctx.sessions() as session:
        assert session.get(User, user.id).password_hash == old_hash  # type: ignore[union-attr]

    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 200
    with ctx.sessions() as session:
        new_hash = session.get(User, user.id).password_hash  # type: ignore[union-attr]
    assert new_hash is not None and new_hash != old_hash
    assert not ctx.passwords.needs_rehash(new_hash)
    assert ctx.passwords.verify(new_hash, DEFAULT_PASSWORD)
    assert client.get("/api/v1/me", headers=basic(user.user_id)).status_code == 200


def test_user_id_and_email_share_one_failure_budget(client: TestClient, ctx: AppContext) -> None:
    user = person(ctx)
    limit = ctx.settings.signin_failures_per_account
    for n in range(limit):
        identifier = user.user_id if n % 2 else (user.email or "")
        assert client.get("/api/v1/me", headers=basic(identifier, "wrong")).status_code == 401
    answer = client.get("/api/v1/me", headers=basic(user.email or "", DEFAULT_PASSWORD))
    assert answer.status_code == 429


def test_unknown_ids_cost_what_known_ones_of_their_kind_cost(
    client: TestClient, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown T… IDs take the keyed-hash path like real technical users (µs); unknown
    P… IDs and e-mails take argon2 like real persons, so timing tells nothing."""
    argon2_calls: list[str | None] = []
    real_verify = ctx.passwords.verify

    def counting(stored: str | None, password: str) -> bool:
        argon2_calls.append(stored)
        return real_verify(stored, password)

    monkeypatch.setattr(ctx.passwords, "verify", counting)
    assert client.get("/api/v1/me", headers=basic("T999999", "x" * 43)).status_code == 401
    assert argon2_calls == []
    assert client.get("/api/v1/me", headers=basic("P999999", "x" * 43)).status_code == 401
    assert client.get("/api/v1/me", headers=basic("nobody@example.com", "pw")).status_code == 401
    assert argon2_calls == [None, None]
