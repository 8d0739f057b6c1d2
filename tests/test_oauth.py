"""OAuth 2.0: clients, the token endpoint, bearer tokens at the runtime and the admin API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.oauth.rfc9068_jwt import signing_key
from tests import factories as f

API = "/api/v1/subaccounts"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Setup:
    """A sub-account with an oauth flow and a client acting as an assigned technical user."""

    def __init__(self, client: TestClient, ctx: AppContext) -> None:
        self.http = client
        self.ctx = ctx
        self.root = f.basic(f.admin(ctx).user_id)
        for sd in ("acme", "other"):
            assert (
                client.post(
                    API, headers=self.root, json={"subdomain": sd, "display_name": sd}
                ).status_code
                == 201
            )
            assert (
                client.post(
                    f"{API}/{sd}/flows",
                    headers=self.root,
                    json={"path": "orders", "auth": ["oauth", "basic"]},
                ).status_code
                == 201
            )
            client.post(
                f"{API}/{sd}/role-collections",
                headers=self.root,
                json={"name": "Senders", "roles": ["ESBMessaging.send", "AuthGroup.ReadOnly"]},
            )
        made = client.post(
            "/api/v1/technical-users", headers=self.root, json={"display_name": "orders bot"}
        ).json()
        self.user = made["user_id"]
        self.assign(["Senders"])
        self.client_id, self.secret = self.new_client("acme")

    def assign(self, collections: list[str], sd: str = "acme") -> None:
        answer = self.http.put(
            f"{API}/{sd}/users/{self.user}/role-collections",
            headers=self.root,
            json={"role_collections": collections},
        )
        assert answer.status_code == 200

    def new_client(self, sd: str, **extra: Any) -> tuple[str, str]:
        answer = self.http.post(
            f"{API}/{sd}/oauth-clients",
            headers=self.root,
            json={"user_id": self.user, "description": "d", **extra},
        )
        assert answer.status_code == 201, answer.text
        return answer.json()["client_id"], answer.json()["client_secret"]

    def token_response(
        self, client_id: str | None = None, secret: str | None = None, **form: str
    ) -> Any:
        data = {
            "grant_type": "client_credentials",
            "client_id": client_id or self.client_id,
            "client_secret": secret or self.secret,
            **form,
        }
        return self.http.post("/oauth/token", data=data)

    def token(self, **form: str) -> str:
        answer = self.token_response(**form)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def call(self, token: str, sd: str = "acme") -> Any:
        return self.http.post(
            f"/t/{sd}/http/orders", content=b"<o/>", headers={"Authorization": f"Bearer {token}"}
        )

    def forge(self, claims: dict[str, Any], **header: Any) -> str:
        """A token signed with Ostiary's real signing key, with the given claims."""
        snapshot = self.ctx.grants.get()
        key = signing_key(snapshot, self.ctx.clock.now())
        private = self.ctx.keyring.private(key.kid, key.private_encrypted)
        return jwt.encode(
            claims, private, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt", **header}
        )

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(self.ctx.clock.now().timestamp())
        base = {
            "iss": "http://testserver",
            "sub": self.user,
            "aud": "http://testserver/t/acme",
            "client_id": self.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "scope": "ESBMessaging.send",
        }
        base.update(changes)
        return base


@pytest.fixture
def setup(client: TestClient, ctx: AppContext) -> Setup:
    return Setup(client, ctx)


def test_token_calls_a_flow_and_the_mpl_names_the_client(setup: Setup) -> None:
    answer = setup.token_response()
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "AuthGroup.ReadOnly ESBMessaging.send"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == setup.user and claims["client_id"] == setup.client_id
    assert claims["aud"] == "http://testserver/t/acme"
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    sent = setup.call(body["access_token"])
    assert sent.status_code == 200, sent.text
    entry = setup.http.get(f"{API}/acme/messages", headers=setup.root).json()["items"][0]
    assert entry["auth_method"] == "oauth" and entry["credential_id"] == setup.client_id


def test_client_secret_basic_works_too(setup: Setup) -> None:
    basic = base64.b64encode(f"{setup.client_id}:{setup.secret}".encode()).decode()
    answer = setup.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status_code == 200, answer.text


def test_wrong_secret_and_unknown_client_get_the_same_invalid_client(setup: Setup) -> None:
    wrong = setup.token_response(secret="x" * 43)
    unknown = setup.token_response(client_id="oc-nobody")
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert answer.json()["error"] == "invalid_client"
        assert answer.headers["www-authenticate"].startswith("Basic")
    assert wrong.json() == unknown.json()


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
    ],
)
def test_bad_grants_get_rfc6749_errors(setup: Setup, form: dict[str, str], error: str) -> None:
    answer = setup.http.post(
        "/oauth/token", data={"client_id": setup.client_id, "client_secret": setup.secret, **form}
    )
    assert answer.status_code == 400 and answer.json()["error"] == error


def test_malformed_token_requests_get_invalid_request(setup: Setup) -> None:
    as_json = setup.http.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    repeated = setup.http.post(
        "/oauth/token", headers=FORM, content=b"grant_type=client_credentials&grant_type=x"
    )
    assert repeated.json()["error"] == "invalid_request"
    both = setup.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": setup.client_id,
            "client_secret": setup.secret,
        },
        auth=(setup.client_id, setup.secret),
    )
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"


def test_requested_scope_narrows_the_token(setup: Setup) -> None:
    narrow = setup.token_response(scope="AuthGroup.ReadOnly").json()
    assert narrow["scope"] == "AuthGroup.ReadOnly"
    # The token lacks ESBMessaging.send, so the flow refuses it.
    assert setup.call(narrow["access_token"]).status_code == 403
    refused = setup.token_response(scope="AuthGroup.Administrator")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    "case",
    [
        "none",
        "hs256-confusion",
        "unknown-kid",
        "wrong-issuer",
        "other-subaccount",
        "not-yet-valid",
        "garbage",
    ],
)
def test_runtime_rejects_bad_tokens_with_invalid_token(setup: Setup, case: str) -> None:
    if case == "none":
        token = jwt.encode(setup.claims(), key="", algorithm="none", headers={"typ": "at+jwt"})
    elif case == "hs256-confusion":
        jwks = setup.http.get("/oauth/jwks").json()
        public_json = json.dumps(jwks["keys"][0]).encode()
        header = {"alg": "HS256", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]}
        segments = [
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
            for part in (header, setup.claims())
        ]

        signature = hmac.new(public_json, b".".join(segments), hashlib.sha256).digest()
        token = b".".join([*segments, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()
    elif case == "unknown-kid":
        stranger = ec.generate_private_key(ec.SECP256R1())
        token = jwt.encode(
            setup.claims(),
            stranger,
            algorithm="ES256",
            headers={"kid": "not-ours", "typ": "at+jwt"},
        )
    elif case == "wrong-issuer":
        token = setup.forge(setup.claims(iss="https://evil.example"))
    elif case == "other-subaccount":
        token = setup.forge(setup.claims(aud="http://testserver/t/other"))
    elif case == "not-yet-valid":
        later = int(setup.ctx.clock.now().timestamp()) + 3600
        token = setup.forge(setup.claims(iat=later, nbf=later, exp=later + 600))
    else:
        token = "not.a.jwt"
    answer = setup.call(token)
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_a_real_token_of_another_subaccount_is_refused(setup: Setup) -> None:
    setup.assign(["Senders"], sd="other")
    other_id, other_secret = setup.new_client("other")
    token = setup.token(client_id=other_id, secret=other_secret)
    assert setup.call(token, sd="other").status_code == 200
    assert setup.call(token, sd="acme").status_code == 401


def test_expired_token_is_refused(setup: Setup, clock: FrozenClock) -> None:
    token = setup.token()
    assert setup.call(token).status_code == 200
    clock.advance(timedelta(seconds=3601))
    answer = setup.call(token)
    assert answer.status_code == 401 and "invalid_token" in answer.headers["www-authenticate"]


def test_overlap_rotation_then_retirement(setup: Setup, clock: FrozenClock) -> None:
    until = (clock.now() + timedelta(hours=1)).isoformat()
    rotated = setup.http.post(
        f"{API}/acme/oauth-clients/{setup.client_id}/secrets",
        headers=setup.root,
        json={"old_valid_until": until},
    )
    assert rotated.status_code == 201
    new = rotated.json()["client_secret"]
    assert setup.token_response(secret=setup.secret).status_code == 200
    assert setup.token_response(secret=new).status_code == 200
    clock.advance(timedelta(hours=2))
    retired = setup.token_response(secret=setup.secret)
    assert retired.status_code == 401 and retired.json()["error"] == "invalid_client"
    assert setup.token_response(secret=new).status_code == 200


def test_an_overlap_longer_than_366_days_is_refused_by_the_api_too(
    setup: Setup, clock: FrozenClock
) -> None:
    """The cap lived only in the console; the service holds it now, for every edge."""
    url = f"{API}/acme/oauth-clients/{setup.client_id}/secrets"
    too_long = (clock.now() + timedelta(days=367)).isoformat()
    refused = setup.http.post(url, headers=setup.root, json={"old_valid_until": too_long})
    assert refused.status_code == 400, refused.text
    assert "366 days" in refused.json()["detail"]
    longest = (clock.now() + timedelta(days=366)).isoformat()
    assert (
        setup.http.post(url, headers=setup.root, json={"old_valid_until": longest}).status_code
        == 201
    )


def test_retiring_a_secret_ends_it_at_once(setup: Setup) -> None:
    rotated = setup.http.post(
        f"{API}/acme/oauth-clients/{setup.client_id}/secrets", headers=setup.root, json={}
    ).json()
    old_id = next(s["id"] for s in rotated["secrets"] if s["id"] != rotated["secret_id"])
    assert (
        setup.http.delete(
            f"{API}/acme/oauth-clients/{setup.client_id}/secrets/{old_id}", headers=setup.root
        ).status_code
        == 204
    )
    assert setup.token_response(secret=setup.secret).status_code == 401
    assert setup.token_response(secret=rotated["client_secret"]).status_code == 200


def test_expired_client_cannot_get_tokens(setup: Setup, clock: FrozenClock) -> None:
    expiring_id, expiring_secret = setup.new_client(
        "acme", expires_at=(clock.now() + timedelta(hours=1)).isoformat()
    )
    assert setup.token_response(client_id=expiring_id, secret=expiring_secret).status_code == 200
    clock.advance(timedelta(hours=2))
    answer = setup.token_response(client_id=expiring_id, secret=expiring_secret)
    assert answer.status_code == 401


def test_disabling_the_client_stops_live_tokens(setup: Setup) -> None:
    token = setup.token()
    assert setup.call(token).status_code == 200
    setup.http.patch(
        f"{API}/acme/oauth-clients/{setup.client_id}",
        headers=setup.root,
        json={"status": "disabled"},
    )
    assert setup.call(token).status_code == 401
    assert setup.token_response().status_code == 401


def test_unassigning_the_role_stops_live_tokens(setup: Setup) -> None:
    token = setup.token()
    assert setup.call(token).status_code == 200
    setup.assign([])
    assert setup.call(token).status_code == 403


def test_disabling_the_technical_user_stops_live_tokens(setup: Setup) -> None:
    token = setup.token()
    setup.http.patch(f"/api/v1/users/{setup.user}", headers=setup.root, json={"status": "disabled"})
    assert setup.call(token).status_code == 401
    assert setup.token_response().status_code == 401


def test_introspection_and_revocation(setup: Setup) -> None:
    token = setup.token()
    auth = {"client_id": setup.client_id, "client_secret": setup.secret}
    live = setup.http.post("/oauth/introspect", data={"token": token, **auth}).json()
    assert live["active"] is True and live["sub"] == setup.user
    assert live["client_id"] == setup.client_id and "ESBMessaging.send" in live["scope"]
    other_id, other_secret = setup.new_client("acme")
    foreign = setup.http.post(
        "/oauth/introspect",
        data={"token": token, "client_id": other_id, "client_secret": other_secret},
    ).json()
    assert foreign == {"active": False}
    revoked = setup.http.post("/oauth/revoke", data={"token": token, **auth})
    assert revoked.status_code == 200
    assert setup.call(token).status_code == 401
    after = setup.http.post("/oauth/introspect", data={"token": token, **auth}).json()
    assert after == {"active": False}
    assert setup.http.post("/oauth/revoke", data={"token": "junk", **auth}).status_code == 200
    nobody = setup.http.post("/oauth/introspect", data={"token": token})
    assert nobody.status_code == 401 and nobody.json()["error"] == "invalid_client"
    for path in ("/oauth/introspect", "/oauth/revoke"):  # RFC 7662 §2.1, RFC 7009 §2.1
        missing = setup.http.post(path, data=auth)
        assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_discovery_and_jwks(setup: Setup) -> None:
    meta = setup.http.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == "http://testserver"
    assert meta["token_endpoint"] == "http://testserver/oauth/token"
    assert meta["jwks_uri"] == "http://testserver/oauth/jwks"
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    }
    assert meta["tls_client_certificate_bound_access_tokens"] is True  # RFC 8705 §3.3
    jwks = setup.http.get("/oauth/jwks")
    assert "max-age" in jwks.headers["cache-control"]
    key = jwks.json()["keys"][0]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and "d" not in key
    token = setup.token()
    claims = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["ES256"],
        audience="http://testserver/t/acme",
        issuer="http://testserver",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["sub"] == setup.user


def test_bearer_token_authenticates_at_the_admin_api(setup: Setup) -> None:
    token = setup.token()
    me = setup.http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["user_id"] == setup.user
    bad = setup.http.get("/api/v1/me", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]


def test_private_key_jwt_client_authentication(setup: Setup) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    public.update({"kid": "client-key-1", "alg": "ES256"})
    client_id, _ = setup.new_client("acme", jwks={"keys": [public]})

    def assertion(jti: str, aud: str = "http://testserver/oauth/token") -> str:
        now = int(setup.ctx.clock.now().timestamp())
        return jwt.encode(
            {
                "iss": client_id,
                "sub": client_id,
                "aud": aud,
                "jti": jti,
                "iat": now,
                "exp": now + 120,
            },
            private,
            algorithm="ES256",
            headers={"kid": "client-key-1"},
        )

    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    ok = setup.http.post("/oauth/token", data={**form, "client_assertion": assertion("a1")})
    assert ok.status_code == 200, ok.text
    replay = setup.http.post("/oauth/token", data={**form, "client_assertion": assertion("a1")})
    assert replay.status_code == 401
    wrong_aud = setup.http.post(
        "/oauth/token",
        data={**form, "client_assertion": assertion("a2", aud="https://elsewhere/token")},
    )
    assert wrong_aud.status_code == 401


def test_signing_key_rotation_keeps_old_tokens_valid_until_they_expire(
    setup: Setup, clock: FrozenClock, ctx: AppContext
) -> None:
    from ostiary.db import transaction
    from ostiary.oauth.keys import rotate

    before = setup.token()
    with transaction(ctx.sessions) as session:
        rotate(
            session,
            secret_key=ctx.secret_key,
            clock=clock,
            grace=timedelta(minutes=5),
            token_lifetime=timedelta(seconds=3600),
        )
    assert len(setup.http.get("/oauth/jwks").json()["keys"]) == 2
    clock.advance(timedelta(minutes=6))
    after = setup.token()
    kid_before = jwt.get_unverified_header(before)["kid"]
    kid_after = jwt.get_unverified_header(after)["kid"]
    assert kid_before != kid_after
    assert setup.call(before).status_code == 200 and setup.call(after).status_code == 200
    clock.advance(timedelta(seconds=3600))
    kids = {k["kid"] for k in setup.http.get("/oauth/jwks").json()["keys"]}
    assert kids == {kid_after}


def test_failed_client_authentication_is_throttled_and_audited(setup: Setup) -> None:
    """Failures count per client address; beyond its budget they get 429 ``slow_down``,
    but the right secret is always admitted (client IDs are not secret)."""
    limit = setup.ctx.settings.auth_failures_per_address
    for _ in range(limit):
        assert setup.token_response(secret="wrong").status_code == 401
    throttled = setup.token_response(secret="wrong")
    assert throttled.status_code == 429 and throttled.json()["error"] == "slow_down"
    assert setup.token_response().status_code == 200
    deadline = time.monotonic() + 5  # denials are audited in the background
    while True:
        events = setup.http.get(
            "/api/v1/audit-events", headers=setup.root, params={"action": "oauth:token:denied"}
        ).json()["items"]
        if events or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert any(e["detail"]["reason"] == "wrong secret" for e in events)


def test_signing_keys_are_encrypted_at_rest(setup: Setup, ctx: AppContext) -> None:
    from cryptography.exceptions import InvalidTag
    from sqlalchemy import select

    from ostiary.oauth.keys import decrypt_private
    from ostiary.oauth.models import SigningKey

    with ctx.read_sessions() as session:
        stored = session.scalars(select(SigningKey)).first()
    assert stored is not None
    raw = base64.b64decode(stored.private_key_encrypted)
    assert b"PRIVATE KEY" not in raw and b"PRIVATE KEY" not in stored.private_key_encrypted.encode()
    assert decrypt_private(ctx.secret_key, stored.private_key_encrypted) is not None
    with pytest.raises(InvalidTag):
        decrypt_private(b"another-installation-secret-key", stored.private_key_encrypted)


def test_revocation_the_store_cannot_take_is_503_and_the_token_still_works(
    setup: Setup,
) -> None:
    """A 200 from /oauth/revoke promises the token is dead; if the revocation could not
    be written the client must hear so (and may retry)."""
    token = setup.token()
    auth = {"client_id": setup.client_id, "client_secret": setup.secret}
    runtime = setup.http.app.state.runtime  # type: ignore[attr-defined]
    setup.http.portal.call(runtime.writer.stop)  # type: ignore[union-attr]
    answer = setup.http.post("/oauth/revoke", data={"token": token, **auth})
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
    live = setup.http.post("/oauth/introspect", data={"token": token, **auth}).json()
    assert live["active"] is True


def test_oauth_endpoints_answer_503_when_the_grants_cannot_be_loaded(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = {"client_id": setup.client_id, "client_secret": setup.secret}

    def database_down() -> None:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(setup.ctx.grants, "get", database_down)
    for path, form in (
        ("/oauth/token", {"grant_type": "client_credentials", **auth}),
        ("/oauth/introspect", {"token": "x", **auth}),
        ("/oauth/revoke", {"token": "x", **auth}),
    ):
        answer = setup.http.post(path, data=form)
        assert answer.status_code == 503, (path, answer.text)
        assert answer.json()["error"] == "temporarily_unavailable"
        assert answer.headers["Retry-After"] == "1"
    assert setup.http.get("/oauth/jwks").status_code == 503
