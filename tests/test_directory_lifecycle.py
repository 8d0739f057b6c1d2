"""Where the directory meets the credential lifecycle: a group-owned technical user outlives
its creator's erasure and its reminders reach the group; SCIM's DELETE is an erasure."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import text

from ostiary.audit.verify import verify_chain
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.credentials.secrets import add_secret
from ostiary.db import transaction
from ostiary.groups import ownership
from ostiary.groups import service as groups
from ostiary.identity import erasure
from ostiary.identity.models import User, UserStatus
from ostiary.scheduler.jobs import standard_scheduler
from tests import factories as f
from tests.conftest import SmtpSink, body_of

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_a_group_owned_technical_user_survives_its_creators_erasure_and_reminds_the_group(
    ctx: AppContext, smtp: SmtpSink, clock: FrozenClock
) -> None:
    creator = f.person(ctx, given_name="Grace", family_name="Hopper")
    colleague = f.person(ctx)
    boss = f.admin(ctx)
    bot, _ = f.technical_user(ctx, owner=creator, display_name="Order sender")
    with transaction(ctx.sessions) as s:
        team = groups.create(s, clock=clock, actor=boss.user_id, name="Integration Team")
        for person in (creator, colleague):
            groups.add_member(s, clock=clock, actor=boss.user_id, group=team, user=s.merge(person))
        row = s.get(User, bot.id)
        assert row is not None
        ownership.give_to_group(s, clock=clock, actor=s.merge(creator), user=row, group=team)
        secret_id = add_secret(
            s, ctx, user=row, expires_at=clock.now() + timedelta(days=40)
        ).row.secret_id
    with transaction(ctx.sessions) as s:
        target = s.get(User, creator.id)
        assert target is not None
        erasure.erase(s, ctx, actor=boss.user_id, user=target)  # no 409: the group owns it
    with transaction(ctx.read_sessions) as s:
        kept = s.get(User, bot.id)
        assert kept is not None and kept.status is UserStatus.active
        team_now = groups.find(s, reference="Integration Team")
        assert ownership.owner_group(s, user=kept) == team_now
        assert [m.user_id for m in groups.members(s, group=team_now)] == [colleague.user_id]
        assert verify_chain(s).ok
    clock.advance(timedelta(days=10, hours=1))  # inside 30 days of the secret's end
    assert standard_scheduler(ctx).run_once()
    mails = smtp.to(colleague.email or "")
    assert len(mails) == 1 and secret_id in body_of(mails[0]), smtp.summary()
    assert len(smtp.messages) == 1  # the erased creator gets nothing (no address is left)


def test_scim_delete_erases_the_person_and_keeps_the_chain(
    client: TestClient, ctx: AppContext
) -> None:
    boss = f.admin(ctx)
    made = client.post("/api/v1/scim-tokens", headers=f.basic(boss.user_id), json={})
    auth = {"Authorization": f"Bearer {made.json()['token']}"}
    body = {
        "schemas": [USER],
        "userName": "linus.erased@corp.local",
        "name": {"givenName": "Linus", "familyName": "Vanishing"},
        "emails": [{"value": "linus.erased@corp.local", "primary": True}],
    }
    user = client.post("/scim/v2/Users", headers=auth, json=body)
    assert user.status_code == 201, user.text
    scim_id = user.json()["id"]
    assert client.delete(f"/scim/v2/Users/{scim_id}", headers=auth).status_code == 204
    assert client.get(f"/scim/v2/Users/{scim_id}", headers=auth).status_code == 404
    listed = client.get("/scim/v2/Users", headers=auth).json()
    assert scim_id not in [r["id"] for r in listed.get("Resources", [])]
    with transaction(ctx.read_sessions) as s:
        erased = s.query(User).filter_by(user_id=scim_id).one()
        assert erased.status is UserStatus.erased and erased.email is None
        for table in ("users", "scim_users", "audit_events", "mail_outbox"):
            dumped = repr(s.execute(text(f"SELECT * FROM {table}")).all()).lower()
            assert "linus" not in dumped and "vanishing" not in dumped, table
        assert verify_chain(s).ok
