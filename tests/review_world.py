"""A sub-account with something for every kind of finding, for the review tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from ostiary.access import service as access
from ostiary.certificates import issuing
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.credentials.models import TechnicalUserSecret
from ostiary.db import transaction
from ostiary.identity import technical
from ostiary.identity.models import User, UserStatus
from ostiary.oauth import clients
from ostiary.runtime import flows
from ostiary.runtime.models import Message, MessageStatus
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan, Subaccount
from tests import factories as f
from tests.test_certificates_service import csr_pem

ACTOR = "test"


@dataclass(frozen=True)
class World:
    """``sender`` (owned, busy, holds Senders and Invoicers), ``idle`` (owner disabled),
    ``orphan`` (no owner, used lately), ``empty`` (no credential), and a second sub-account."""

    sub: Subaccount
    other: Subaccount
    owner: User
    sender: User
    idle: User
    orphan: User
    empty: User


def send(session: Session, *, sub: Subaccount, sender: User, path: str, at: object) -> None:
    """One accepted message in the processing log, as the runtime writes it."""
    flow = flows.get(session, subaccount=sub, path=path)
    session.add(
        Message(
            id=str(uuid.uuid4()),
            subaccount_id=sub.id,
            flow_id=flow.id,
            flow_path=path,
            sender=sender.user_id,
            credential_id="test",
            auth_method="basic",
            status=MessageStatus.stored,
            size=1,
            received_at=at,
        )
    )


def set_last_use(session: Session, user: User, at: object) -> None:
    """Mark every secret of ``user`` as used at ``at`` (legacy column and secret rows)."""
    session.execute(update(User).where(User.id == user.id).values(last_used_at=at))
    session.execute(
        update(TechnicalUserSecret)
        .where(TechnicalUserSecret.user_id == user.id)
        .values(last_used_at=at)
    )


def build(ctx: AppContext, clock: FrozenClock, *, age: timedelta = timedelta(days=100)) -> World:
    """Create the world, then move the clock ``age`` on (so its first secrets are old)."""
    owner = f.person(ctx)
    gone = f.person(ctx)
    with transaction(ctx.sessions) as s:
        creator, leaver = s.merge(owner), s.merge(gone)
        sub = tenancy.create(
            s, clock=clock, actor=ACTOR, subdomain="acme", display_name="Acme", plan=Plan.trial
        )
        other = tenancy.create(
            s, clock=clock, actor=ACTOR, subdomain="other", display_name="Other", plan=Plan.trial
        )
        sender = technical.create(s, ctx, creator=creator, display_name="sender", home=sub).user
        idle = technical.create(s, ctx, creator=leaver, display_name="idle", home=sub).user
        orphan = technical.create(s, ctx, creator=creator, display_name="orphan", home=sub).user
        empty = technical.create(s, ctx, creator=creator, display_name="empty", home=sub).user
        s.flush()
        orphan.owner_id = None
        leaver.status = UserStatus.disabled
        empty.password_hash = None
        s.execute(delete(TechnicalUserSecret).where(TechnicalUserSecret.user_id == empty.id))
        access.create_role(s, clock=clock, actor=ACTOR, subaccount=sub, name="Invoices.send")
        flows.create(s, clock=clock, actor=ACTOR, subaccount=sub, path="orders")
        flows.create(
            s,
            clock=clock,
            actor=ACTOR,
            subaccount=sub,
            path="invoices",
            required_role="Invoices.send",
        )
        for name, role in (("Senders", "ESBMessaging.send"), ("Invoicers", "Invoices.send")):
            access.create_collection(
                s, clock=clock, actor=ACTOR, subaccount=sub, name=name, roles=[role]
            )
        access.set_user_collections(
            s,
            clock=clock,
            actor=ACTOR,
            subaccount=sub,
            user=sender,
            names=["Senders", "Invoicers"],
        )
        # An OAuth client in another sub-account: not this sub-account's reviewers' business.
        clients.create(s, ctx, actor=ACTOR, subaccount=other, user=sender)
    clock.advance(age)
    with transaction(ctx.sessions) as s:
        sub = s.merge(sub)
        now = clock.now()
        for back in (0, 1, 1, 3):
            send(s, sub=sub, sender=sender, path="orders", at=now - timedelta(days=back))
        set_last_use(s, sender, now - timedelta(hours=1))
        set_last_use(s, orphan, now - timedelta(days=2))
        issuing.sign_csr(
            s,
            ctx,
            actor=ACTOR,
            subaccount=sub,
            user=s.merge(sender),
            csr_pem=csr_pem(),
            validity_days=10,
        )
    return World(sub, other, owner, sender, idle, orphan, empty)
