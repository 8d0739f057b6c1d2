"""The shared, typed throttle and the shared replay protection (ostiary.gate).

Two contexts on one database stand for two worker processes (or nodes); time moves with
the FrozenClock, never by sleeping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.db import transaction
from ostiary.errors import Throttled
from ostiary.gate import replay
from ostiary.gate.models import AssertionJti, AuthFailure, AuthFailureClear
from ostiary.gate.throttle import Account, Kind, cleanup, unknown_account
from ostiary.settings import Settings
from tests.conftest import SmtpSink, link_token
from tests.factories import DEFAULT_PASSWORD, basic, person
from tests.test_console_tenancy import csrf_token

API = "/api/v1/subaccounts"
WRONG = "not-the-password-at-all"
NEW_PASSWORD = "correct-Horse-battery-staple-42"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def at(app: FastAPI, address: str) -> TestClient:
    """A client of ``app`` calling from ``address`` (the app's lifespan runs elsewhere)."""
    return TestClient(app, client=(address, 50000), raise_server_exceptions=False)


@pytest.fixture
def second(settings: Settings, clock: FrozenClock) -> Iterator[tuple[AppContext, TestClient]]:
    """A second "process": its own context and app on the same database and clock."""
    context = build_context(settings, clock=clock)
    with TestClient(create_app(settings, ctx=context), raise_server_exceptions=False) as c:
        yield context, c
    context.engine.dispose()


class Senders:
    """A sub-account with a Basic+OAuth flow, a technical user allowed to call it, and a
    way to make OAuth clients (with a secret, or a key for ``private_key_jwt``)."""

    def __init__(self, client: TestClient, ctx: AppContext) -> None:
        self.http = client
        self.root = basic(person(ctx, platform_admin=True).user_id)
        self.post(API, {"subdomain": "acme", "display_name": "Acme"})
        self.post(f"{API}/acme/flows", {"path": "orders", "auth": ["basic", "oauth"]})
        self.post(
            f"{API}/acme/role-collections", {"name": "Senders", "roles": ["ESBMessaging.send"]}
        )
        made = self.post("/api/v1/technical-users", {"display_name": "orders bot"})
        self.user, self.secret = made["user_id"], made["password"]
        answer = client.put(
            f"{API}/acme/users/{self.user}/role-collections",
            headers=self.root,
            json={"role_collections": ["Senders"]},
        )
        assert answer.status_code == 200, answer.text
        self.key = ec.generate_private_key(ec.SECP256R1())

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post(path, headers=self.root, json=body)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def client(self, *, with_key: bool = False) -> tuple[str, str]:
        """A new OAuth client of the technical user: its ID and secret."""
        extra: dict[str, Any] = {}
        if with_key:
            public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
            extra["jwks"] = {"keys": [{**public, "kid": "k1", "alg": "ES256"}]}
        made = self.post(
            f"{API}/acme/oauth-clients", {"user_id": self.user, "description": "d", **extra}
        )
        return made["client_id"], made["client_secret"]

    def assertion(self, client_id: str, jti: str, now: int) -> str:
        """A ``private_key_jwt`` client assertion (RFC 7523)."""
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": "http://testserver/oauth/token",
            "jti": jti,
            "iat": now,
            "exp": now + 120,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "k1"})


def send(http: TestClient, user: str, password: str) -> int:
    """Call the flow with Basic; the status code."""
    return http.post(
        "/t/acme/http/orders", content=b"<o/>", headers=basic(user, password)
    ).status_code


def token(http: TestClient, client_id: str, secret: str) -> int:
    """Ask for a token with ``client_secret_post``; the status code."""
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return http.post("/oauth/token", data=form).status_code


def me(http: TestClient, identifier: str, password: str = DEFAULT_PASSWORD) -> int:
    """``GET /api/v1/me`` with Basic; the status code."""
    return http.get("/api/v1/me", headers=basic(identifier, password)).status_code


# ---------------------------------------------------------------- machine credentials


def test_wrong_passwords_for_a_technical_user_never_stop_its_right_secret(
    client: TestClient, ctx: AppContext
) -> None:
    senders = Senders(client, ctx)
    for _ in range(ctx.settings.signin_failures_per_account):
        assert send(client, senders.user, WRONG) == 401
    assert send(client, senders.user, senders.secret) == 200
    assert me(client, senders.user, senders.secret) == 200


def test_console_sign_ins_as_client_colon_id_never_stop_that_client(
    client: TestClient, ctx: AppContext
) -> None:
    senders = Senders(client, ctx)
    client_id, secret = senders.client()
    for _ in range(ctx.settings.signin_failures_per_account + 1):
        form = client.get("/console/signin")
        answer = client.post(
            "/console/signin",
            data={
                "csrf_token": csrf_token(form.text),
                "identifier": f"client:{client_id}",
                "password": WRONG,
            },
        )
        assert answer.status_code in (401, 429)
    assert answer.status_code == 429  # the name itself is throttled, like any unknown name
    assert token(client, client_id, secret) == 200


def test_machine_failures_are_throttled_per_address_only_after_they_fail(
    client: TestClient, ctx: AppContext
) -> None:
    senders = Senders(client, ctx)
    client_id, secret = senders.client()
    elsewhere = at(client.app, "192.0.2.7")  # type: ignore[arg-type]
    for _ in range(ctx.settings.auth_failures_per_address):
        assert token(client, client_id, "wrong") == 401
    assert token(client, client_id, "wrong") == 429
    assert send(client, senders.user, WRONG) == 429  # the address, whatever it names
    assert token(client, client_id, secret) == 200  # the right secret, from that address
    assert send(client, senders.user, senders.secret) == 200
    assert token(elsewhere, client_id, "wrong") == 401  # another address is not throttled


# ---------------------------------------------------------------- human passwords


@pytest.fixture
def low_ceiling(settings: Settings, clock: FrozenClock) -> Iterator[tuple[AppContext, TestClient]]:
    """An app whose per-account ceiling is 20, so reaching it takes few argon2 runs."""
    tight = settings.model_copy(update={"signin_failures_per_account_ceiling": 20})
    context = build_context(tight, clock=clock)
    with TestClient(create_app(tight, ctx=context), raise_server_exceptions=False) as c:
        yield context, c
    context.engine.dispose()


def test_a_guesser_at_one_address_cannot_lock_the_owner_out_and_a_reset_ends_the_ceiling(
    low_ceiling: tuple[AppContext, TestClient], smtp: SmtpSink
) -> None:
    ctx, client = low_ceiling
    owner = person(ctx, email="owner@example.com")
    guesser, home, later = (
        at(client.app, a) for a in ("198.51.100.1", "203.0.113.5", "203.0.113.9")
    )  # type: ignore[arg-type]
    per_pair = ctx.settings.signin_failures_per_account
    for _ in range(per_pair):
        assert me(guesser, owner.user_id, WRONG) == 401
    assert me(guesser, owner.user_id) == 429  # even the right password, from that address
    assert me(home, "owner@example.com") == 200  # the owner, from another address
    # Distributed guessing: fewer than ``per_pair`` from each address, up to the ceiling.
    remaining = ctx.settings.signin_failures_per_account_ceiling - per_pair
    n = 0
    while remaining:
        spot = at(client.app, f"192.0.2.{100 + n}")  # type: ignore[arg-type]
        for _ in range(min(per_pair - 1, remaining)):
            assert me(spot, owner.user_id, WRONG) == 401
            remaining -= 1
        n += 1
    assert me(home, owner.user_id) == 429  # the ceiling holds for every address
    assert me(later, owner.user_id) == 429
    # A password reset mail always gets the owner back in.
    assert client.post("/api/v1/password-resets", json={"email": owner.email}).status_code == 202
    reset = link_token(smtp.wait_for("owner@example.com", subject="Reset"))
    confirmed = client.post(
        "/api/v1/password-resets/confirm", json={"token": reset, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204, confirmed.text
    assert me(home, owner.user_id, NEW_PASSWORD) == 200
    assert me(guesser, owner.user_id, NEW_PASSWORD) == 200


def test_retry_after_counts_down_with_the_clock_and_the_window_ends_by_itself(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    owner = person(ctx)
    window = ctx.settings.signin_window_seconds
    for _ in range(ctx.settings.signin_failures_per_account):
        assert me(client, owner.user_id, WRONG) == 401
    clock.advance(timedelta(seconds=100))
    throttled = client.get("/api/v1/me", headers=basic(owner.user_id))
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == str(window - 100)
    clock.advance(timedelta(seconds=window - 100))
    assert me(client, owner.user_id) == 200


# ---------------------------------------------------------------- shared by processes


def test_failures_through_one_process_throttle_the_other_after_its_poll(
    client: TestClient,
    ctx: AppContext,
    second: tuple[AppContext, TestClient],
    clock: FrozenClock,
) -> None:
    other_ctx, other = second
    owner = person(ctx)
    other_ctx.throttle.refresh()
    for _ in range(ctx.settings.signin_failures_per_account):
        assert me(client, owner.user_id, WRONG) == 401
    assert me(client, owner.user_id) == 429  # this process: at once
    assert ctx.throttle.flush()
    other_ctx.throttle.refresh()
    throttled = other.get("/api/v1/me", headers=basic(owner.user_id))
    assert throttled.status_code == 429  # the other: after its poll
    assert throttled.headers["retry-after"] == str(ctx.settings.signin_window_seconds)
    clock.advance(timedelta(seconds=ctx.settings.signin_window_seconds))
    other_ctx.throttle.refresh()
    assert me(other, owner.user_id) == 200


def test_counts_of_two_processes_add_up(
    client: TestClient, ctx: AppContext, second: tuple[AppContext, TestClient]
) -> None:
    other_ctx, other = second
    owner = person(ctx)
    half = ctx.settings.signin_failures_per_account // 2
    for http, context in ((client, ctx), (other, other_ctx)):
        for _ in range(half):
            assert me(http, owner.user_id, WRONG) == 401
        assert context.throttle.flush()
    for context in (ctx, other_ctx):
        context.throttle.refresh()
    assert me(client, owner.user_id) == 429
    assert me(other, owner.user_id) == 429


def test_a_reset_in_one_process_clears_what_the_other_counted_itself(
    client: TestClient, ctx: AppContext, second: tuple[AppContext, TestClient], smtp: SmtpSink
) -> None:
    other_ctx, other = second
    owner = person(ctx, email="twice@example.com")
    for _ in range(ctx.settings.signin_failures_per_account):
        assert me(other, owner.user_id, WRONG) == 401
    assert other_ctx.throttle.flush()
    other_ctx.throttle.refresh()
    assert client.post("/api/v1/password-resets", json={"email": owner.email}).status_code == 202
    reset = link_token(smtp.wait_for("twice@example.com", subject="Reset"))
    confirmed = client.post(
        "/api/v1/password-resets/confirm", json={"token": reset, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204, confirmed.text
    other_ctx.throttle.refresh()
    assert me(other, owner.user_id, NEW_PASSWORD) == 200


def test_failures_after_a_reset_are_shared_again(
    client: TestClient,
    ctx: AppContext,
    second: tuple[AppContext, TestClient],
    clock: FrozenClock,
    smtp: SmtpSink,
) -> None:
    """A reset forgets the failures before it, not those after it: the clear mark stays in
    every poll for a window, and it once deleted the fresh shared counts each time, so the
    processes only counted their own (N processes: N times the limit)."""
    other_ctx, other = second
    owner = person(ctx, email="again@example.com")
    assert client.post("/api/v1/password-resets", json={"email": owner.email}).status_code == 202
    reset = link_token(smtp.wait_for("again@example.com", subject="Reset"))
    confirmed = client.post(
        "/api/v1/password-resets/confirm", json={"token": reset, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204, confirmed.text
    clock.advance(timedelta(seconds=1))
    half = ctx.settings.signin_failures_per_account // 2
    for http, context in ((client, ctx), (other, other_ctx)):
        for _ in range(half):
            assert me(http, owner.user_id, WRONG) == 401
        assert context.throttle.flush()
    for context in (ctx, other_ctx):
        context.throttle.refresh()
    assert me(client, owner.user_id, NEW_PASSWORD) == 429
    assert me(other, owner.user_id, NEW_PASSWORD) == 429


def test_an_assertion_accepted_by_one_process_is_refused_by_the_other(
    client: TestClient, ctx: AppContext, second: tuple[AppContext, TestClient]
) -> None:
    other_ctx, other = second
    senders = Senders(client, ctx)
    first_id, _ = senders.client(with_key=True)
    second_id, _ = senders.client(with_key=True)
    other_ctx.grants.refresh()  # the other process's poll that sees both clients
    now = int(ctx.clock.now().timestamp())

    def ask(http: TestClient, client_id: str, jti: str) -> int:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": senders.assertion(client_id, jti, now),
        }
        return http.post("/oauth/token", data=form).status_code

    assert ask(client, first_id, "jti-1") == 200
    assert ask(other, first_id, "jti-1") == 401  # replayed to another worker or node
    assert ask(client, first_id, "jti-1") == 401
    assert ask(other, second_id, "jti-1") == 200  # a jti is unique per client only


# ---------------------------------------------------------------- the modules themselves


def test_unknown_identifiers_take_the_kind_their_syntax_says() -> None:
    assert unknown_account(" t000123 ") == Account(Kind.technical, "T000123")
    assert unknown_account("Ghost@Example.com") == Account(Kind.unknown, "ghost@example.com")
    assert unknown_account("client:oc-1") == Account(Kind.unknown, "client:oc-1")
    assert unknown_account("T12") == Account(Kind.unknown, "t12")


def test_hostile_account_names_and_addresses_are_stored_sanitised(ctx: AppContext) -> None:
    account = Account(Kind.unknown, "nul\x00byte-\ud800-" + "x" * 400)
    assert ctx.throttle.failed(account, "addr\x00" + "9" * 100) is None
    assert ctx.throttle.flush()
    with ctx.read_sessions() as session:
        stored = session.execute(select(AuthFailure.account, AuthFailure.address)).one()
    assert "\x00" not in stored.account and len(stored.account) == 320
    assert "\x00" not in stored.address and len(stored.address) == 64
    assert stored.account == account.id


def test_deciding_makes_no_query_in_the_callers_thread(ctx: AppContext) -> None:
    """The success path stays query-free, and a failure only hands a row to the writer."""
    caller = threading.get_ident()
    queries: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if threading.get_ident() == caller:
            queries.append(statement)

    engines = {ctx.engine, ctx.read_sessions.kw["bind"]}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    try:
        account = Account(Kind.person, "P000042")
        ctx.throttle.check(account, "192.0.2.1")
        assert ctx.throttle.failed(account, "192.0.2.1") is None
        ctx.throttle.check(account, "192.0.2.1")
        assert ctx.throttle.failed(Account(Kind.client, "oc-1"), "192.0.2.1") is None
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)
    assert queries == []


def test_a_failure_the_database_cannot_take_still_counts_here(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(ctx.throttle._log, "_sessions", broken)
    account = Account(Kind.person, "P000043")
    for _ in range(ctx.settings.signin_failures_per_account):
        assert ctx.throttle.failed(account, "192.0.2.1") is None  # never raises
    assert ctx.throttle.flush()
    ctx.throttle.refresh()
    with pytest.raises(Throttled):
        ctx.throttle.check(account, "192.0.2.1")
    ctx.throttle.check(account, "192.0.2.2")  # another address: still the owner's


def test_clearing_an_account_twice_keeps_one_mark_with_the_latest_time(
    ctx: AppContext, clock: FrozenClock
) -> None:
    account = Account(Kind.person, "P000044")
    for _ in range(2):
        ctx.throttle.failed(account, "192.0.2.1")
        with transaction(ctx.sessions) as session:
            ctx.throttle.clear(session, account)
        clock.advance(timedelta(seconds=5))
    with ctx.read_sessions() as session:
        marks = session.scalars(select(AuthFailureClear.at)).all()
        failures = session.scalar(select(func.count()).select_from(AuthFailure))
    assert marks == [clock.now() - timedelta(seconds=5)]
    assert failures == 0


def test_cleanup_deletes_failures_and_jtis_that_left_their_window(
    ctx: AppContext, clock: FrozenClock
) -> None:
    ctx.throttle.failed(Account(Kind.client, "oc-1"), "192.0.2.1")
    assert ctx.throttle.flush()
    store = replay.ReplayStore(ctx.sessions)
    now = clock.now()
    assert store.first_use(
        client_id="oc-1", jti="j", expires_at=now + timedelta(seconds=60), now=now
    )
    window = ctx.throttle.limits.window

    def rows() -> tuple[int, int]:
        with ctx.read_sessions() as session:
            failures = session.scalar(select(func.count()).select_from(AuthFailure))
            jtis = session.scalar(select(func.count()).select_from(AssertionJti))
        return int(failures or 0), int(jtis or 0)

    def clean_up(now: Callable[[], Any]) -> None:
        with transaction(ctx.sessions) as session:
            cleanup(session, now=now(), window=window)
            replay.cleanup(session, now=now())

    clean_up(clock.now)
    assert rows() == (1, 1)
    clock.advance(window)
    clean_up(clock.now)
    assert rows() == (0, 0)


def test_an_expired_jti_may_be_used_again(ctx: AppContext, clock: FrozenClock) -> None:
    store = replay.ReplayStore(ctx.sessions)
    now = clock.now()
    expiry = now + timedelta(seconds=60)
    long_jti = "j" * 1000 + "\x00"
    for jti in ("short", long_jti):
        assert store.first_use(client_id="oc-1", jti=jti, expires_at=expiry, now=now)
        assert not store.first_use(client_id="oc-1", jti=jti, expires_at=expiry, now=now)
    later = now + timedelta(seconds=61)
    assert store.first_use(
        client_id="oc-1", jti="short", expires_at=later + timedelta(seconds=60), now=later
    )


def test_a_poll_that_read_before_the_reset_committed_does_not_bring_the_ceiling_back(
    ctx: AppContext, clock: FrozenClock
) -> None:
    """The poller reads in its own thread: a poll that read the counts just before a reset
    committed may hand them over just after it. Those stale counts must not throttle the
    owner again (this raced under load: the reset got the owner in, the next poll out)."""
    account = Account(Kind.person, "P000045")
    for _ in range(ctx.settings.signin_failures_per_account):
        assert ctx.throttle.failed(account, "192.0.2.1") is None
    assert ctx.throttle.flush()
    ctx.throttle.refresh()
    stale: list[Any] = []
    handler = ctx.throttle._log._on_poll
    ctx.throttle._log._on_poll = stale.append  # read now, hand over later
    try:
        ctx.throttle._log.poll()
    finally:
        ctx.throttle._log._on_poll = handler
    assert stale and stale[0].over  # the poll saw the account over its limit
    with transaction(ctx.sessions) as session:
        ctx.throttle.clear(session, account)
    ctx.throttle.check(account, "192.0.2.1")  # the reset let the owner in
    handler(stale[0])
    ctx.throttle.check(account, "192.0.2.1")  # and the late poll does not shut them out
    # Failures after the reset count again, in this process and through the database.
    clock.advance(timedelta(seconds=1))
    for _ in range(ctx.settings.signin_failures_per_account):
        assert ctx.throttle.failed(account, "192.0.2.1") is None
    assert ctx.throttle.flush()
    ctx.throttle.refresh()
    with pytest.raises(Throttled):
        ctx.throttle.check(account, "192.0.2.1")
