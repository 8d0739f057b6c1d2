"""What an attacker tried against the gate, as regression tests (each failed on the first
version of the gate): chosen passwords of technical users guessed without limit, digits of
other scripts in a technical user ID dodging the throttle, a token header that answered
500, throttled refusals that went unaudited, and client assertions with odd ``exp``."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ostiary.audit.models import AuditEvent
from ostiary.context import AppContext
from ostiary.db import transaction
from tests import factories as f

PER_ACCOUNT = 10  # OSTIARY_SIGNIN_FAILURES_PER_ACCOUNT's default


def _statuses(answers: list[int]) -> dict[int, int]:
    return {status: answers.count(status) for status in set(answers)}


def test_a_technical_user_with_a_chosen_password_is_throttled_like_a_person(
    client: TestClient, ctx: AppContext
) -> None:
    tech, secret = f.technical_user(ctx, owner=f.person(ctx))
    chosen = "Correct-Horse-Battery-Staple-42-and-some-more"
    changed = client.post(
        "/api/v1/me/password",
        headers=f.basic(tech.user_id, secret),
        json={"current_password": secret, "new_password": chosen},
    )
    assert changed.status_code == 204, changed.text
    answers = [
        client.get("/api/v1/me", headers=f.basic(tech.user_id, f"guess-{i}")).status_code
        for i in range(PER_ACCOUNT + 2)
    ]
    assert answers[:PER_ACCOUNT] == [401] * PER_ACCOUNT
    assert answers[PER_ACCOUNT:] == [429, 429]  # refused before argon2 runs, like a person's
    assert client.get("/api/v1/me", headers=f.basic(tech.user_id, chosen)).status_code == 429


def test_a_converted_person_keeps_the_person_throttle(client: TestClient, ctx: AppContext) -> None:
    admin = f.admin(ctx)
    victim = f.person(ctx)
    converted = client.post(
        f"/api/v1/users/{victim.user_id}/convert-to-technical",
        headers=f.basic(admin.user_id),
        json={"owner_user_id": admin.user_id},
    )
    assert converted.status_code == 200, converted.text
    answers = [
        client.post(
            "/t/nosuch/http/x", headers=f.basic(victim.user_id, f"g{i}"), content=b"x"
        ).status_code
        for i in range(PER_ACCOUNT + 1)
    ]
    assert answers == [401] * PER_ACCOUNT + [429]


def test_other_scripts_digits_are_no_technical_user_id(client: TestClient, ctx: AppContext) -> None:
    """``T`` and Arabic-Indic digits is no user ID: it is checked (and throttled) like a
    person's name, before argon2, so it cannot flood the failure log or the address."""
    name = "T\u0661\u0662\u0663\u0664\u0665\u0666"
    answers = [
        client.get("/api/v1/me", headers=f.basic(name, f"x{i}")).status_code
        for i in range(PER_ACCOUNT + 1)
    ]
    assert answers == [401] * PER_ACCOUNT + [429]


def _b64(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_a_token_header_with_a_non_string_typ_is_401_not_500(client: TestClient) -> None:
    token = _b64({"alg": "ES256", "typ": 1, "kid": "x"}) + "." + _b64({"a": 1}) + ".AAAA"
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert client.post("/t/x/http/y", headers=headers, content=b"x").status_code == 401


def test_a_refusal_answered_429_is_audited_too(client: TestClient, ctx: AppContext) -> None:
    def audited() -> int:
        with transaction(ctx.read_sessions) as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action == "access:authentication:failed")
                )
                or 0
            )

    limit = ctx.settings.auth_failures_per_address
    answers = [
        client.get("/api/v1/me", headers={"Authorization": "Bearer x.y.z"}).status_code
        for _ in range(limit + 3)
    ]
    assert _statuses(answers) == {401: limit, 429: 3}
    assert audited() == limit + 3


def test_assertions_with_a_non_numeric_exp_are_invalid_client(
    client: TestClient, ctx: AppContext
) -> None:
    root = f.basic(f.admin(ctx).user_id)
    assert (
        client.post(
            "/api/v1/subaccounts", headers=root, json={"subdomain": "acme", "display_name": "A"}
        ).status_code
        == 201
    )
    bot = client.post("/api/v1/technical-users", headers=root, json={"display_name": "b"}).json()
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "k1", "alg": "ES256"})
    made = client.post(
        "/api/v1/subaccounts/acme/oauth-clients",
        headers=root,
        json={"user_id": bot["user_id"], "description": "d", "jwks": {"keys": [public]}},
    )
    client_id = made.json()["client_id"]
    for exp in ("nan", [1], True, float(time.time() + 60) * 10):
        assertion = jwt.encode(
            {
                "iss": client_id,
                "sub": client_id,
                "jti": uuid.uuid4().hex,
                "aud": "http://testserver/oauth/token",
                "exp": exp,
            },
            key,
            algorithm="ES256",
            headers={"kid": "k1"},
        )
        answer = client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )
        assert answer.status_code == 401, (exp, answer.text)
        assert answer.json()["error"] == "invalid_client"
