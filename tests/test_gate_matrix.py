"""The conformance matrix: every credential kind x every entry point x every state gets one
and the same verdict (issue 9, point 7).

A row is a credential kind (person password, technical-user secret, client secret, client
assertion, bearer token, X.509 client certificate); a column an entry point where that kind applies (runtime, admin
API, token endpoint, console sign-in); a case a state of the credential. For each case every
entry point must agree with the expected verdict: 2xx (or the console's redirect into the
account) for *allow*, a 401/403 (token endpoint: 400/401) for *deny*, never anything else.

"Just created on another worker" is a second application context on the same database (a
second process, with its own snapshot and caches): the credential is created there while
the first one does not poll, so only the gate's re-check before refusing can see it.

New credential kinds add a ``Kind`` entry, not code paths.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from tests import factories as f
from tests.pki import make, name
from tests.presenting import chain_header, presenting

API = "/api/v1/subaccounts"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Credential:
    """One credential as the matrix presents it."""

    user_id: str = ""
    secret: str = ""
    client_id: str = ""
    secret_id: str = ""
    token: str = ""
    key: Any = None
    #: The sub-account the call goes to (a state may point it elsewhere).
    subdomain: str = "acme"
    certificate_pem: str = ""
    certificate_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class World:
    """Two sub-accounts with an ``orders`` flow (Basic and OAuth) and ``Senders`` in each,
    a platform administrator, and a second "worker" on the same database."""

    def __init__(self, http: TestClient, ctx: AppContext, second: TestClient) -> None:
        self.http, self.ctx, self.second = http, ctx, second
        #: The first worker behind a pretend TLS terminator (tests/presenting.py).
        self.tls = TestClient(presenting(http.app), raise_server_exceptions=False)
        self.clock: FrozenClock = ctx.clock  # type: ignore[assignment]
        admin = f.admin(ctx)
        self.root = f.basic(admin.user_id)
        self.owner = f.person(ctx, given_name="Olive", family_name="Owner")
        for sd in ("acme", "other"):
            self.ok(http.post(API, headers=self.root, json={"subdomain": sd, "display_name": sd}))
            self.ok(
                http.post(
                    f"{API}/{sd}/flows",
                    headers=self.root,
                    json={"path": "orders", "auth": ["basic", "oauth", "certificate"]},
                )
            )
            self.ok(
                http.post(
                    f"{API}/{sd}/role-collections",
                    headers=self.root,
                    json={"name": "Senders", "roles": ["ESBMessaging.send"]},
                )
            )

    @staticmethod
    def ok(answer: Any) -> Any:
        assert answer.status_code in (200, 201, 204), answer.text
        return answer.json() if answer.content else None

    def on(self, worker: TestClient | None) -> TestClient:
        return worker or self.http

    # ------------------------------------------------------------ making credentials

    def assign(self, user_id: str, worker: TestClient | None = None) -> None:
        self.ok(
            self.on(worker).put(
                f"{API}/acme/users/{user_id}/role-collections",
                headers=self.root,
                json={"role_collections": ["Senders"]},
            )
        )

    def technical(self, worker: TestClient | None = None) -> Credential:
        made = self.ok(
            self.on(worker).post(
                "/api/v1/technical-users", headers=self.root, json={"display_name": "bot"}
            )
        )
        self.ok(
            self.on(worker).put(
                f"/api/v1/technical-users/{made['user_id']}/owner",
                headers=self.root,
                json={"owner_user_id": self.owner.user_id},
            )
        )
        self.assign(made["user_id"], worker)
        return Credential(user_id=made["user_id"], secret=made["password"])

    def client(self, worker: TestClient | None = None, **extra: Any) -> Credential:
        cred = self.technical(worker)
        made = self.ok(
            self.on(worker).post(
                f"{API}/acme/oauth-clients",
                headers=self.root,
                json={"user_id": cred.user_id, "description": "d", **extra},
            )
        )
        cred.client_id, cred.secret = made["client_id"], made["client_secret"]
        cred.secret_id = str(made["secret_id"])
        return cred

    def assertion_client(self, worker: TestClient | None = None, **extra: Any) -> Credential:
        key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        public.update({"kid": "k1", "alg": "ES256"})
        cred = self.client(worker, jwks={"keys": [public]}, **extra)
        cred.key = key
        return cred

    def bearer(self, worker: TestClient | None = None) -> Credential:
        cred = self.client(worker)
        answer = self.on(worker).post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": cred.client_id,
                "client_secret": cred.secret,
            },
        )
        cred.token = self.ok(answer)["access_token"]
        return cred

    def certificate(self, worker: TestClient | None = None) -> Credential:
        cred = self.technical(worker)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(name("ignored"))
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )
        made = self.ok(
            self.on(worker).post(
                f"{API}/acme/certificates",
                headers=self.root,
                json={"user_id": cred.user_id, "csr_pem": csr},
            )
        )
        cred.certificate_pem, cred.certificate_id = made["certificate_pem"], made["certificate_id"]
        return cred

    def person(self, worker: TestClient | None = None) -> Credential:
        ctx = self.ctx if worker is None else worker.app.state.ctx
        user = f.person(ctx)
        self.assign(user.user_id, worker)
        return Credential(user_id=user.user_id, secret=f.DEFAULT_PASSWORD)

    # ------------------------------------------------------------ changing their state

    def set_status(self, user_id: str, status: str) -> None:
        self.ok(
            self.http.patch(f"/api/v1/users/{user_id}", headers=self.root, json={"status": status})
        )

    def delete_technical(self, user_id: str) -> None:
        self.ok(self.http.delete(f"/api/v1/technical-users/{user_id}", headers=self.root))

    def client_patch(self, cred: Credential, **body: Any) -> None:
        self.ok(
            self.http.patch(
                f"{API}/acme/oauth-clients/{cred.client_id}", headers=self.root, json=body
            )
        )

    def assertion(self, cred: Credential, key: Any = None) -> str:
        now = int(self.clock.now().timestamp())
        claims = {
            "iss": cred.client_id,
            "sub": cred.client_id,
            "aud": "http://testserver/oauth/token",
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + 120,
        }
        return jwt.encode(claims, key or cred.key, algorithm="ES256", headers={"kid": "k1"})


# ---------------------------------------------------------------- entry points

Verdict = bool | None  # True allow, False deny, None: the entry point does not take this kind


def _verdict(answer: Any, allowed: tuple[int, ...], denied: tuple[int, ...]) -> bool:
    assert answer.status_code in allowed + denied, (answer.status_code, answer.text)
    return answer.status_code in allowed


def runtime(w: World, kind: str, cred: Credential) -> Verdict:
    if kind in ("client_secret", "client_assertion"):
        return None
    if kind == "certificate":
        answer = w.tls.post(
            f"/t/{cred.subdomain}/http/orders",
            content=b"<o/>",
            headers=chain_header([cred.certificate_pem]),
        )
        return _verdict(answer, (200,), (401, 403))
    headers = (
        {"Authorization": f"Bearer {cred.token}"}
        if kind == "bearer"
        else f.basic(cred.user_id, cred.secret)
    )
    answer = w.http.post(f"/t/{cred.subdomain}/http/orders", content=b"<o/>", headers=headers)
    return _verdict(answer, (200,), (401, 403))


def admin_api(w: World, kind: str, cred: Credential) -> Verdict:
    if kind in ("client_secret", "client_assertion", "certificate") or cred.subdomain != "acme":
        return None  # /me is not about a sub-account
    headers = (
        {"Authorization": f"Bearer {cred.token}"}
        if kind == "bearer"
        else f.basic(cred.user_id, cred.secret)
    )
    return _verdict(w.http.get("/api/v1/me", headers=headers), (200,), (401, 403))


def token_endpoint(w: World, kind: str, cred: Credential) -> Verdict:
    form = {"grant_type": "client_credentials"}
    if kind == "client_secret":
        form.update(client_id=cred.client_id, client_secret=cred.secret)
    elif kind == "client_assertion":
        assertion = cred.extra.get("assertion") or w.assertion(cred)
        form.update(client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)
    else:
        return None
    return _verdict(w.http.post("/oauth/token", data=form), (200,), (400, 401))


def console(w: World, kind: str, cred: Credential) -> Verdict:
    if kind != "person" or cred.subdomain != "acme":
        return None
    browser = TestClient(w.http.app)
    form = browser.get("/console/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    answer = browser.post(
        "/console/signin",
        data={"csrf_token": token.group(1), "identifier": cred.user_id, "password": cred.secret},
        follow_redirects=False,
    )
    assert answer.status_code in (303, 401, 429), answer.text
    return answer.status_code == 303 and answer.headers["location"] == "/console/"


ENTRY_POINTS: dict[str, Callable[[World, str, Credential], Verdict]] = {
    "runtime": runtime,
    "admin API": admin_api,
    "token endpoint": token_endpoint,
    "console": console,
}

# ---------------------------------------------------------------- the cases

MAKE: dict[str, Callable[[World, TestClient | None], Credential]] = {
    "person": World.person,
    "technical": World.technical,
    "client_secret": World.client,
    "client_assertion": World.assertion_client,
    "bearer": World.bearer,
    "certificate": World.certificate,
}


def _wrong(w: World, kind: str, cred: Credential) -> None:
    if kind == "client_assertion":
        cred.extra["assertion"] = w.assertion(cred, key=ec.generate_private_key(ec.SECP256R1()))
    elif kind == "certificate":  # a certificate nobody registered or vouches for
        cred.certificate_pem = make(name(cred.user_id)).pem
    elif kind == "bearer":
        head, body, signature = cred.token.split(".")
        cred.token = f"{head}.{body}.{signature[::-1]}"
    else:
        cred.secret = "not-the-" + cred.secret[:12]


def _expired(w: World, kind: str, cred: Credential) -> None:
    if kind == "person":
        w.clock.advance(timedelta(days=91))  # the person policy expires passwords after 90 days
    elif kind == "certificate":
        w.clock.advance(timedelta(days=366))  # issued for 365 days
    elif kind in ("client_secret", "client_assertion"):
        make = w.client if kind == "client_secret" else w.assertion_client
        soon = (w.clock.now() + timedelta(minutes=5)).isoformat()
        cred.__dict__.update(make(None, expires_at=soon).__dict__)
        w.clock.advance(timedelta(minutes=6))
    else:  # bearer
        w.clock.advance(timedelta(hours=2))


def _client_expired(w: World, kind: str, cred: Credential) -> None:
    """The client ends while its token is still live: the token must stop everywhere (the
    admin API once accepted it while the runtime refused it)."""
    soon = (w.clock.now() + timedelta(minutes=5)).isoformat()
    made = w.client(None, expires_at=soon)
    answer = w.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": made.client_id,
            "client_secret": made.secret,
        },
    )
    cred.__dict__.update(made.__dict__, token=w.ok(answer)["access_token"])
    w.clock.advance(timedelta(minutes=6))  # the token lives an hour


def _not_yet_valid(w: World, kind: str, cred: Credential) -> None:
    w.clock.advance(-timedelta(minutes=10))  # issued valid from five minutes ago


def _disabled(w: World, kind: str, cred: Credential) -> None:
    if kind in ("person", "technical", "certificate"):
        w.set_status(cred.user_id, "disabled")
    else:
        w.client_patch(cred, status="disabled")


def _revoked(w: World, kind: str, cred: Credential) -> None:
    if kind == "person":
        new = "An0ther-long-passphrase-77"
        w.ok(
            w.http.post(
                "/api/v1/me/password",
                headers=f.basic(cred.user_id, cred.secret),
                json={"current_password": cred.secret, "new_password": new},
            )
        )
    elif kind == "technical":
        w.ok(w.http.post(f"/api/v1/technical-users/{cred.user_id}/password", headers=w.root))
    elif kind == "certificate":
        w.ok(w.http.post(f"{API}/acme/certificates/{cred.certificate_id}/revoke", headers=w.root))
    elif kind == "client_secret":  # rotated with no overlap: the old secret ends now
        w.ok(
            w.http.post(
                f"{API}/acme/oauth-clients/{cred.client_id}/secrets",
                headers=w.root,
                json={"old_valid_until": w.clock.now().isoformat()},
            )
        )
    else:  # bearer
        w.ok(
            w.http.post(
                "/oauth/revoke",
                data={
                    "token": cred.token,
                    "client_id": cred.client_id,
                    "client_secret": cred.secret,
                },
            )
        )


def _owner_disabled(w: World, kind: str, cred: Credential) -> None:
    w.set_status(w.owner.user_id, "disabled")


def _user_deleted(w: World, kind: str, cred: Credential) -> None:
    w.delete_technical(cred.user_id)


def _wrong_subaccount(w: World, kind: str, cred: Credential) -> None:
    cred.subdomain = "other"  # the flow exists there too, but the caller holds nothing there


def _replayed(w: World, kind: str, cred: Credential) -> None:
    cred.extra["assertion"] = w.assertion(cred)
    assert token_endpoint(w, kind, cred) is True  # first use


#: state → (what it does, the kinds it applies to, the one verdict)
STATES: dict[str, tuple[Callable[[World, str, Credential], None] | None, set[str], bool]] = {
    "valid": (None, set(MAKE), True),
    "wrong secret": (_wrong, set(MAKE), False),
    "expired": (
        _expired,
        {"person", "client_secret", "client_assertion", "bearer", "certificate"},
        False,
    ),
    "not yet valid": (_not_yet_valid, {"certificate"}, False),
    "client expired": (_client_expired, {"bearer"}, False),
    "disabled": (_disabled, set(MAKE), False),
    "revoked": (
        _revoked,
        {"person", "technical", "client_secret", "bearer", "certificate"},
        False,
    ),
    "replayed": (_replayed, {"client_assertion"}, False),
    # Ownership is flagged in the inventory, never a reason to stop a production sender.
    "owner disabled": (
        _owner_disabled,
        {"technical", "client_secret", "client_assertion", "bearer", "certificate"},
        True,
    ),
    "user deleted": (
        _user_deleted,
        {"technical", "client_secret", "client_assertion", "bearer", "certificate"},
        False,
    ),
    "wrong sub-account": (
        _wrong_subaccount,
        {"person", "technical", "bearer", "certificate"},
        False,
    ),
    "just created on another worker": (None, set(MAKE), True),
}

CASES = [
    pytest.param(kind, state, id=f"{kind}-{state.replace(' ', '_')}")
    for state, (_, kinds, _) in STATES.items()
    for kind in MAKE
    if kind in kinds
]


@pytest.fixture
def world(client: TestClient, ctx: AppContext) -> Iterator[World]:
    other = build_context(ctx.settings, clock=ctx.clock)
    with TestClient(create_app(other.settings, ctx=other), raise_server_exceptions=False) as second:
        yield World(client, ctx, second)
    other.engine.dispose()


@pytest.mark.parametrize(("kind", "state"), CASES)
def test_every_entry_point_gives_one_verdict(world: World, kind: str, state: str) -> None:
    change, _, expected = STATES[state]
    if state == "just created on another worker":
        world.ctx.grants.get()
        world.ctx.grants.stop()  # no polling: only the re-check before refusing sees it
        cred = MAKE[kind](world, world.second)
    else:
        cred = MAKE[kind](world, None)
    if change is not None:
        change(world, kind, cred)
    verdicts = {name: point(world, kind, cred) for name, point in ENTRY_POINTS.items()}
    taken = {name: v for name, v in verdicts.items() if v is not None}
    assert taken, f"no entry point takes {kind}"
    assert taken == dict.fromkeys(taken, expected), f"{kind} {state}: {taken}"
