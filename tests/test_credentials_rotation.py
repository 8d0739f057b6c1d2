"""Overlap rotation and expiry of credentials, moving the clock (issue 11 items 1, 2, 4):
both secrets work until the old one's end, then it is refused everywhere as "credential
expired" (runtime, admin API, token endpoint), audited as ``credential:expired``; last use
is recorded per credential, flushed, never written per request."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select

from ostiary.audit.models import AuditEvent
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.runtime.maintenance import flush_last_use
from tests import factories as f
from tests.test_runtime import API, Tenant


class Life(Tenant):
    """The runtime tenant, with an OAuth flow too, and a way to wait for background writes."""

    def __init__(self, client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
        super().__init__(client, ctx)
        self.clock = clock
        answer = client.post(
            f"{API}/acme/flows",
            headers=self.root,
            json={"path": "tokens/v1", "auth": ["oauth", "basic"]},
        )
        assert answer.status_code == 201, answer.text

    def rotate(self, user_id: str, **body: Any) -> Any:
        return self.client.post(
            f"/api/v1/technical-users/{user_id}/secrets",
            headers=self.root,
            json={k: v.isoformat() if isinstance(v, datetime) else v for k, v in body.items()},
        )

    def credentials(self, user_id: str) -> list[dict[str, Any]]:
        answer = self.client.get(
            f"/api/v1/technical-users/{user_id}/credentials", headers=self.root
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    def settle(self) -> None:
        """Flush last use and wait until every background write before it is committed
        (the writer commits in order: a write of nothing queued last is a barrier)."""
        runtime = self.client.app.state.runtime  # type: ignore[attr-defined]

        async def flushed() -> None:
            flush_last_use(runtime)
            await runtime.writer.write(lambda _: None, patient=True)

        assert self.client.portal is not None
        self.client.portal.call(flushed)

    def events(self, action: str) -> list[AuditEvent]:
        self.settle()
        with transaction(self.ctx.read_sessions) as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


@pytest.fixture
def life(client: TestClient, ctx: AppContext, clock: FrozenClock) -> Life:
    return Life(client, ctx, clock)


def test_both_secrets_work_until_the_old_ones_end_then_only_the_new(life: Life) -> None:
    old = life.secret
    until = life.clock.now() + timedelta(days=2)
    made = life.rotate(life.sender, old_valid_until=until)
    assert made.status_code == 201, made.text
    new = made.json()["password"]
    assert made.json()["secret_id"].startswith(f"pwd-{life.sender}-")
    assert len(new) >= 43 and new != old and made.json()["expires_at"] is None
    for secret in (old, new):
        assert life.send(life.sender, secret).status_code == 200
        assert (
            life.client.get("/api/v1/me", headers=f.basic(life.sender, secret)).status_code == 200
        )
    life.clock.advance(timedelta(days=2) - timedelta(seconds=1))
    assert life.send(life.sender, old).status_code == 200  # one second before its end
    life.clock.advance(timedelta(seconds=1))
    assert life.send(life.sender, old).status_code == 401
    assert life.client.get("/api/v1/me", headers=f.basic(life.sender, old)).status_code == 401
    assert life.send(life.sender, new).status_code == 200
    expired = life.events("credential:expired")
    assert len(expired) == 2 and {e.actor for e in expired} == {life.sender}
    assert all(e.detail["reason"].startswith("credential expired: pwd-") for e in expired)
    assert {e.target for e in expired} == {"/t/acme/http/orders/v1", "GET /api/v1/me"}
    listed = {c["credential_id"]: c for c in life.credentials(life.sender)}
    assert sorted(c["status"] for c in listed.values()) == ["active", "expired"]


def test_a_new_secret_with_an_expiry_stops_at_it_and_the_explanation_says_so(
    life: Life,
) -> None:
    ends = life.clock.now() + timedelta(days=10)
    made = life.rotate(life.sender, expires_at=ends)
    assert made.status_code == 201, made.text
    new = made.json()["password"]
    assert datetime.fromisoformat(made.json()["expires_at"]) == ends
    assert life.send(life.sender, life.secret).status_code == 401  # no overlap: ended now
    assert life.send(life.sender, new).status_code == 200
    assert "working secret" in " ".join(life.explain(life.sender)["chain"])
    life.clock.advance(timedelta(days=10))
    assert life.send(life.sender, new).status_code == 401
    explained = life.explain(life.sender)
    # orders/v1 accepts only Basic: with every secret ended, that is the missing link.
    assert explained["decision"] == "deny"
    assert explained["missing_link"].startswith("credential expired")
    assert [e.detail["reason"] for e in life.events("credential:expired")][-1].startswith(
        "credential expired"
    )


def test_rotation_limits_are_the_services(life: Life) -> None:
    now = life.clock.now()
    refused = {
        "overlap beyond 366 days": {"old_valid_until": now + timedelta(days=367)},
        "overlap in the past": {"old_valid_until": now - timedelta(seconds=1)},
        "expiry in the past": {"expires_at": now - timedelta(days=1)},
        "expiry beyond ten years": {"expires_at": now + timedelta(days=3661)},
        "no time zone": {"expires_at": "2030-01-01T00:00:00"},
        "not a time": {"expires_at": "soon"},
    }
    for why, body in refused.items():
        answer = life.rotate(life.sender, **body)
        assert answer.status_code in (400, 422), why
        assert answer.json()["error"], why
    assert life.send(life.sender, life.secret).status_code == 200  # nothing half-done
    assert len(life.credentials(life.sender)) == 1
    stranger = f.person(life.ctx)
    assert (
        life.client.post(
            f"/api/v1/technical-users/{life.sender}/secrets",
            headers=f.basic(stranger.user_id),
            json={},
        ).status_code
        == 403
    )
    assert (
        life.client.get(
            f"/api/v1/technical-users/{life.sender}/credentials", headers=f.basic(stranger.user_id)
        ).status_code
        == 403
    )


def test_a_sub_accounts_maximum_validity_bounds_and_defaults_new_secrets(life: Life) -> None:
    bot = life.client.post(
        "/api/v1/technical-users",
        headers=life.root,
        json={"display_name": "homed", "subdomain": "acme"},
    ).json()["user_id"]
    policy = life.client.put(
        f"{API}/acme/credential-policy", headers=life.root, json={"max_validity_days": 30}
    )
    assert policy.status_code == 200 and policy.json()["max_validity_days"] == 30
    assert life.client.get(f"{API}/acme/credential-policy", headers=life.root).json() == {
        "subdomain": "acme",
        "max_validity_days": 30,
    }
    too_long = life.rotate(bot, expires_at=life.clock.now() + timedelta(days=31))
    assert too_long.status_code == 400 and "30 days" in too_long.json()["detail"]
    defaulted = life.rotate(bot)
    assert defaulted.status_code == 201
    assert datetime.fromisoformat(defaulted.json()["expires_at"]) == life.clock.now() + timedelta(
        days=30
    )
    # The sender of the other tests holds roles in acme too: the policy reaches it.
    assert life.rotate(life.sender).json()["expires_at"] is not None
    assert (
        life.client.put(
            f"{API}/acme/credential-policy", headers=life.root, json={"max_validity_days": 0}
        ).status_code
        == 422
    )


def test_last_use_and_address_per_secret_from_runtime_and_admin_api(life: Life) -> None:
    old = life.secret
    new = life.rotate(life.sender, old_valid_until=life.clock.now() + timedelta(days=1)).json()
    assert life.send(life.sender, old).status_code == 200
    first = life.clock.now()
    life.clock.advance(timedelta(minutes=5))
    headers = f.basic(life.sender, new["password"])
    assert life.client.get("/api/v1/me", headers=headers).status_code == 200
    life.settle()
    listed = {c["credential_id"]: c for c in life.credentials(life.sender)}
    assert datetime.fromisoformat(listed[new["secret_id"]]["last_used_at"]) == life.clock.now()
    [old_entry] = [c for k, c in listed.items() if k != new["secret_id"]]
    assert datetime.fromisoformat(old_entry["last_used_at"]) == first
    assert {c["last_address"] for c in listed.values()} == {"testclient"}


def test_client_secret_overlap_expiry_and_last_use_at_the_token_endpoint(life: Life) -> None:
    made = life.client.post(
        f"{API}/acme/oauth-clients",
        headers=life.root,
        json={"user_id": life.sender, "description": "d"},
    ).json()
    client_id, old = made["client_id"], made["client_secret"]
    until = life.clock.now() + timedelta(hours=6)
    rotated = life.client.post(
        f"{API}/acme/oauth-clients/{client_id}/secrets",
        headers=life.root,
        json={"old_valid_until": until.isoformat()},
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["client_secret"]

    def token(secret: str) -> Any:
        return life.client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )

    assert token(old).status_code == 200 and token(new).status_code == 200
    life.clock.advance(timedelta(hours=6))
    refused = token(old)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    access = token(new).json()["access_token"]
    call = life.client.post(
        "/t/acme/http/tokens/v1", content=b"<o/>", headers={"Authorization": f"Bearer {access}"}
    )
    assert call.status_code == 200
    expired = life.events("credential:expired")
    assert [e.target for e in expired] == ["/oauth/token"]
    assert expired[0].detail["reason"].startswith(f"credential expired: {client_id}.s-")
    secrets = [c for c in life.credentials(life.sender) if c["kind"] == "client_secret"]
    by_status = {c["status"]: c for c in secrets}
    assert set(by_status) == {"active", "expired"}
    assert by_status["active"]["last_used_at"] is not None
    assert datetime.fromisoformat(by_status["active"]["last_used_at"]) == life.clock.now()
    assert by_status["expired"]["last_used_at"] is not None  # its last use before its end
    assert by_status["active"]["last_address"] == "testclient"


def test_client_keys_rotate_with_overlap_and_keep_last_use_per_key(life: Life) -> None:
    keys = {kid: ec.generate_private_key(ec.SECP256R1()) for kid in ("k1", "k2")}

    def public(kid: str) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(keys[kid].public_key()))
        return {**jwk, "kid": kid, "alg": "ES256"}

    made = life.client.post(
        f"{API}/acme/oauth-clients",
        headers=life.root,
        json={"user_id": life.sender, "description": "d", "jwks": {"keys": [public("k1")]}},
    )
    assert made.status_code == 201, made.text
    client_id = made.json()["client_id"]
    jti = iter(range(100))

    def token(kid: str) -> Any:
        now = int(life.clock.now().timestamp())
        assertion = jwt.encode(
            {
                "iss": client_id,
                "sub": client_id,
                "aud": "http://testserver/oauth/token",
                "jti": f"j{next(jti)}",
                "exp": now + 60,
            },
            keys[kid],
            algorithm="ES256",
            headers={"kid": kid},
        )
        return life.client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )

    assert token("k1").status_code == 200
    url = f"{API}/acme/oauth-clients/{client_id}/keys"
    private = {**public("k2"), "d": "AAAA"}
    assert life.client.post(url, headers=life.root, json={"jwk": private}).status_code == 400
    duplicate = life.client.post(url, headers=life.root, json={"jwk": public("k1")})
    assert duplicate.status_code == 400
    until = life.clock.now() + timedelta(hours=1)
    rotated = life.client.post(
        url, headers=life.root, json={"jwk": public("k2"), "old_valid_until": until.isoformat()}
    )
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["credential_id"] == f"{client_id}.k-k2"
    assert token("k1").status_code == 200 and token("k2").status_code == 200
    used_k1 = life.clock.now()
    life.clock.advance(timedelta(hours=1))
    assert token("k1").status_code == 401
    assert token("k2").status_code == 200
    [expired] = life.events("credential:expired")
    assert expired.detail["reason"].startswith(f"credential expired: {client_id}.k-k1")
    listed = {
        c["credential_id"]: c for c in life.credentials(life.sender) if c["kind"] == "client_key"
    }
    assert {k: v["status"] for k, v in listed.items()} == {
        f"{client_id}.k-k1": "expired",
        f"{client_id}.k-k2": "active",
    }
    k1, k2 = listed[f"{client_id}.k-k1"], listed[f"{client_id}.k-k2"]
    assert datetime.fromisoformat(k1["last_used_at"]) == used_k1
    assert datetime.fromisoformat(k2["last_used_at"]) == life.clock.now()
    assert k2["last_address"] == "testclient" and k2["expires_at"] is None
