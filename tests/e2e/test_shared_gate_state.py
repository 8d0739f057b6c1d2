"""What the gate shares between processes, proven with real ``ostiary serve`` processes on
one database (issue 9): failed authentications counted on one server throttle on the other,
a client assertion accepted by one is refused by the other, and a credential just created
through one worker is admitted by the other worker at once (the re-check before refusing).
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server, StartServer

pytestmark = pytest.mark.e2e
ADMIN = (ADMIN_EMAIL, ADMIN_PASSWORD)
SD = "acme-shared"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _two_servers(start_server: StartServer) -> tuple[Server, Server]:
    """Two nodes of one installation: one database and one OSTIARY_PUBLIC_URL (the issuer
    and the token endpoint's audience, as README requires of all nodes)."""
    first = start_server()
    first.wait_ready()
    second = start_server(OSTIARY_PUBLIC_URL=first.url)
    second.wait_ready()
    return first, second


def _subaccount(api: httpx.Client) -> None:
    assert (
        api.post("/api/v1/subaccounts", json={"subdomain": SD, "display_name": "S"}).status_code
        == 201
    )
    assert (
        api.post(
            f"/api/v1/subaccounts/{SD}/flows", json={"path": "orders", "auth": ["basic", "oauth"]}
        ).status_code
        == 201
    )
    assert (
        api.post(
            f"/api/v1/subaccounts/{SD}/role-collections",
            json={"name": "Senders", "roles": ["ESBMessaging.send"]},
        ).status_code
        == 201
    )


def _sender(api: httpx.Client) -> tuple[str, str]:
    made = api.post("/api/v1/technical-users", json={"display_name": "bot", "subdomain": SD})
    assert made.status_code == 201, made.text
    user_id, secret = made.json()["user_id"], made.json()["password"]
    assigned = api.put(
        f"/api/v1/subaccounts/{SD}/users/{user_id}/role-collections",
        json={"role_collections": ["Senders"]},
    )
    assert assigned.status_code == 200, assigned.text
    return user_id, secret


def test_failures_on_one_server_throttle_the_other(start_server: StartServer) -> None:
    first, second = _two_servers(start_server)
    name = f"guess-{uuid.uuid4().hex[:8]}@example.com"  # counts like a person: throttled first
    with first.client() as a, second.client() as b:
        for attempt in range(10):  # OSTIARY_SIGNIN_FAILURES_PER_ACCOUNT
            answer = a.get("/api/v1/me", auth=(name, f"wrong-{attempt}"))
            assert answer.status_code == 401, answer.text
        assert a.get("/api/v1/me", auth=(name, "wrong-again")).status_code == 429
        # The other server learns of the failures through the database, within a poll
        # (0.2 s): well before its own failures (fewer than the limit) could throttle it.
        for _ in range(9):
            answer = b.get("/api/v1/me", auth=(name, "wrong-elsewhere"))
            if answer.status_code == 429:
                break
            assert answer.status_code == 401, answer.text
            time.sleep(0.2)  # a bounded poll on the observable answer, not an ordering guess
        assert answer.status_code == 429, "the second server counted only its own failures"
        assert int(answer.headers["retry-after"]) >= 1


def test_a_client_assertion_accepted_by_one_server_is_refused_by_the_other(
    start_server: StartServer,
) -> None:
    first, second = _two_servers(start_server)
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "k1", "alg": "ES256"})
    with httpx.Client(base_url=first.url, auth=ADMIN, timeout=10) as api:
        _subaccount(api)
        user_id, _ = _sender(api)
        made = api.post(
            f"/api/v1/subaccounts/{SD}/oauth-clients",
            json={"user_id": user_id, "description": "d", "jwks": {"keys": [public]}},
        )
        assert made.status_code == 201, made.text
        client_id = made.json()["client_id"]

    def assertion() -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + 120,
            "aud": f"{first.url}/oauth/token",
        }
        signed = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        }

    form = assertion()
    accepted = httpx.post(f"{first.url}/oauth/token", data=form, timeout=10)
    assert accepted.status_code == 200, accepted.text
    # The second server knows the client and takes assertions of its own ...
    own = httpx.post(f"{second.url}/oauth/token", data=assertion(), timeout=10)
    assert own.status_code == 200, own.text
    # ... but not the one the first server already accepted.
    replayed = httpx.post(f"{second.url}/oauth/token", data=form, timeout=10)
    assert replayed.status_code == 401, replayed.text
    assert replayed.json()["error"] == "invalid_client"


def test_a_credential_just_created_through_one_worker_is_admitted_by_the_other(
    start_server: StartServer,
) -> None:
    server = start_server(workers=2)
    server.wait_ready()
    with httpx.Client(base_url=server.url, auth=ADMIN, timeout=10) as api:
        _subaccount(api)
        refused = []
        for _ in range(8):
            user_id, secret = _sender(api)
            made = api.post(
                f"/api/v1/subaccounts/{SD}/oauth-clients",
                json={"user_id": user_id, "description": "d"},
            )
            assert made.status_code == 201, made.text
            client_id, client_secret = made.json()["client_id"], made.json()["client_secret"]
            # New connections, so the kernel spreads them over both workers at once.
            with httpx.Client(base_url=server.url, timeout=10) as fresh:
                call = fresh.post(f"/t/{SD}/http/orders", content=b"<o/>", auth=(user_id, secret))
            with httpx.Client(base_url=server.url, timeout=10) as fresh:
                token = fresh.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(client_id, client_secret),
                )
            refused += [a.status_code for a in (call, token) if a.status_code != 200]
    assert refused == []
