"""One listing for every kind of credential (issue 11 item 1), on SQLite and PostgreSQL:
technical-user secrets, OAuth client secrets, client keys and certificates, each with its
ID, owner, sub-account, validity, status and last use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ostiary.certificates import issuing
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.credentials.service import CredentialKind, listing
from ostiary.db import transaction
from ostiary.identity import technical
from ostiary.identity.models import User
from ostiary.oauth import clients
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan, Subaccount
from tests import factories as f
from tests.test_certificates_service import csr_pem

ACTOR = "test"


@dataclass(frozen=True)
class World:
    """A sub-account, its technical user (owned by a person) and a second technical user."""

    sub: Subaccount
    bot: User
    other_bot: User
    owner: User


@pytest.fixture
def world(ctx: AppContext) -> World:
    owner = f.person(ctx)
    with transaction(ctx.sessions) as s:
        creator = s.merge(owner)
        sub = tenancy.create(
            s, clock=ctx.clock, actor=ACTOR, subdomain="acme", display_name="Acme", plan=Plan.trial
        )
        bot = technical.create(s, ctx, creator=creator, display_name="bot", home=sub).user
        other = technical.create(s, ctx, creator=creator, display_name="other").user
    return World(sub, bot, other, owner)


def public_jwk(kid: str) -> dict[str, object]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwk: dict[str, object] = ECAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": kid}


def test_every_kind_is_listed_with_owner_sub_account_and_validity(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        secret_client = clients.create(s, ctx, actor=ACTOR, subaccount=sub, user=bot).client
        clients.rotate(
            s,
            ctx,
            actor=ACTOR,
            subaccount=sub,
            client=secret_client,
            old_valid_until=clock.now() + timedelta(days=3),
        )
        key_client = clients.create(
            s, ctx, actor=ACTOR, subaccount=sub, user=bot, jwks={"keys": [public_jwk("k1")]}
        ).client
        cert = issuing.sign_csr(
            s, ctx, actor=ACTOR, subaccount=sub, user=bot, csr_pem=csr_pem(), validity_days=30
        ).certificate
        found = listing(s, now=clock.now(), user=bot)
        everything = listing(s, now=clock.now())

    kinds = sorted(c.kind.value for c in found)
    assert kinds == [
        "certificate",
        "client_key",
        "client_secret",
        "client_secret",
        "client_secret",
        "technical_user_secret",
    ]
    assert {c.user_id for c in found} == {world.bot.user_id}
    assert {c.owner for c in found} == {world.owner.user_id}
    assert {c.subaccount for c in found} == {"acme"}
    certificate = next(c for c in found if c.kind is CredentialKind.certificate)
    assert certificate.credential_id == cert.certificate_id
    assert certificate.expires_at == cert.not_after
    key = next(c for c in found if c.kind is CredentialKind.client_key)
    assert key.client_id == key_client.client_id and key.credential_id.endswith("k-k1")
    retiring = [
        c for c in found if c.client_id == secret_client.client_id and c.expires_at is not None
    ]
    assert len(retiring) == 1 and retiring[0].status == "active"
    # The other technical user has no home sub-account: its secret is listed without one.
    others = [c for c in everything if c.user_id == world.other_bot.user_id]
    assert [(c.kind, c.subaccount) for c in others] == [
        (CredentialKind.technical_user_secret, None)
    ]
    assert len({c.credential_id for c in everything}) == len(everything)


def test_status_follows_the_clock_and_expiring_within_filters(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    with transaction(ctx.sessions) as s:
        sub, bot = s.merge(world.sub), s.merge(world.bot)
        issuing.sign_csr(
            s, ctx, actor=ACTOR, subaccount=sub, user=bot, csr_pem=csr_pem(), validity_days=10
        )
    with transaction(ctx.read_sessions) as s:
        bot = s.merge(world.bot)
        soon = listing(s, now=clock.now(), user=bot, expiring_within=timedelta(days=11))
        later = listing(s, now=clock.now(), user=bot, expiring_within=timedelta(days=9))
    assert [c.kind for c in soon] == [CredentialKind.certificate]
    assert later == []
    clock.advance(timedelta(days=10, seconds=1))
    with transaction(ctx.read_sessions) as s:
        bot = s.merge(world.bot)
        after = listing(s, now=clock.now(), user=bot)
        expiring = listing(s, now=clock.now(), expiring_within=timedelta(days=30))
    assert {c.kind: c.status for c in after}[CredentialKind.certificate] == "expired"
    assert expiring == []  # an expired credential is not "expiring" any more
